"""Reading and writing ``comparison.json``, and building a comparison from ``results.json`` files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._io import OutputFolder, dump_json, read_json_object
from ..comparison_format import COMPARISON_KIND, load_comparison
from ..errors import UsageError
from ..records import CheckpointInfo, EvalResult, TaskResult
from ._build import build_comparison


def write_comparison(comparison: dict[str, Any], path: str | Path) -> Path:
    """Write ``comparison`` as sorted, NaN-free JSON, atomically; returns the path."""
    folder, name = OutputFolder.of_file(path)
    return folder.write_text(name, text=dump_json(comparison, allow_nan=False))


def split_label(item: str) -> tuple[str | None, Path]:
    """``LABEL=path`` -> (LABEL, path); a plain path (even one containing '=') -> (None, path)."""
    from .._pairs import split_labelled

    label, path = split_labelled(item)
    return label, Path(path)


def load_results_files(items: list[str | Path]) -> list[EvalResult]:
    """``[LABEL=]results.json`` or ``comparison.json`` files -> one EvalResult per checkpoint.

    A comparison.json gives metrics only (no per-sample records, so no paired tests against it);
    ``LABEL=`` relabels the checkpoint of a single results.json.
    """
    results: list[EvalResult] = []
    for item in items:
        label, path = split_label(str(item))
        data = read_json_object(path)
        found = (
            _results_from_comparison(load_comparison(path), path)
            if data.get("kind") == COMPARISON_KIND
            else [EvalResult.from_dict(data, source=str(path))]
        )
        if label is not None:
            if len(found) != 1:
                raise UsageError(
                    f"{path}: holds {len(found)} checkpoints; LABEL= only applies to a single results.json."
                )
            found[0].checkpoint.label = label
        results += found
    return results


def comparison_from_results_files(
    paths: list[str | Path], baseline: str | None = None, **options: Any
) -> dict[str, Any]:
    """Build a comparison from ``results.json`` files (``LABEL=path`` relabels a checkpoint).

    ``options`` are passed to :func:`build_comparison` (notes, n_resamples, random_state, max_flips).
    """
    return build_comparison(load_results_files(paths), baseline=baseline, **options)


def _results_from_comparison(data: dict[str, Any], path: Path) -> list:
    """Rebuild per-checkpoint results (metrics only, no per-sample records) from a comparison.json."""
    results = []
    tasks = {t["name"]: t for t in data.get("tasks", [])}
    for cp in data.get("checkpoints", []):
        rows = [r for r in data.get("metrics", []) if r.get("checkpoint") == cp["label"]]
        task_results = {}
        for name, task in tasks.items():
            metrics = {r["metric"]: r["value"] for r in rows if r["task"] == name and r.get("value") is not None}
            if metrics:
                task_results[name] = TaskResult(
                    task=name,
                    evaluator=task.get("evaluator", "unknown"),
                    evaluator_version="",
                    config_hash=task.get("config_hash", ""),
                    metrics=metrics,
                    n_samples=int(task.get("n_samples", {}).get(cp["label"], 0)),
                    axis=task.get("axis", "general"),
                    primary_metric=task.get("primary_metric"),
                    ci={
                        r["metric"]: [r["ci_low"], r["ci_high"]]
                        for r in rows
                        if r["task"] == name and r.get("ci_low") is not None
                    },
                    settings=task.get("settings", {}),
                    same_as={r["metric"]: r["alias_of"] for r in rows if r["task"] == name and r.get("alias_of")},
                )
        info = CheckpointInfo.from_dict(cp)  # tolerates files written before settings/run/step existed
        results.append(
            EvalResult(
                checkpoint=info, versions=cp.get("versions", {}), tasks=task_results, created=data.get("created", "")
            )
        )
    if not results:
        raise UsageError(f"{path}: comparison has no checkpoints.")
    return results
