"""Reading and writing ``comparison.json``, and building a comparison from ``results.json`` files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, read_json_object
from ..errors import UsageError
from ..records import EvalResult
from ._build import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION, build_comparison


def load_comparison(path: str | Path) -> dict[str, Any]:
    """Read a ``comparison.json``; a missing, invalid or too-new file is a one-line :class:`UsageError`."""
    path = Path(path)
    data = read_json_object(path, what="comparison file", hint=" (written by `evalkit compare --out DIR`)")
    if data.get("kind") != COMPARISON_KIND:
        found = data.get("kind")
        raise UsageError(f"{path}: not an evalkit comparison (kind {found!r}, expected {COMPARISON_KIND!r}); "
                         f"give the comparison.json written by `evalkit compare`.")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"{path}: 'schema_version' must be a positive integer, got {version!r}.")
    if version > COMPARISON_SCHEMA_VERSION:
        raise UsageError(f"{path}: schema_version {version} is newer than this evalkit reads "
                         f"({COMPARISON_SCHEMA_VERSION}); upgrade evalkit.")
    return data


def write_comparison(comparison: dict[str, Any], path: str | Path) -> Path:
    """Write ``comparison`` as sorted, NaN-free JSON, atomically; returns the path."""
    path = Path(path)
    text = json.dumps(comparison, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    return path


def _split_label(item: str) -> tuple[str | None, Path]:
    """``LABEL=path`` -> (LABEL, path); a plain path (even one containing '=') -> (None, path)."""
    if Path(item).exists() or "=" not in item:
        return None, Path(item)
    label, _, path = item.partition("=")
    return (label or None), Path(path)


def comparison_from_results_files(paths: list[str | Path], baseline: str | None = None, **options: Any) -> dict[str, Any]:
    """Build a comparison from ``results.json`` files (``LABEL=path`` relabels a checkpoint).

    ``options`` are passed to :func:`build_comparison` (notes, n_resamples, random_state, max_flips).
    """
    results = []
    for item in paths:
        label, path = _split_label(str(item))
        result = EvalResult.load(path)
        if label is not None:
            result.checkpoint.label = label
        results.append(result)
    return build_comparison(results, baseline=baseline, **options)
