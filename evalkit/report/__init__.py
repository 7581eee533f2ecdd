"""Reports from a comparison dict: ``report.html``, ``report.md``, ``comparison.json``, ``metrics.csv``.

>>> from evalkit.report import write_reports            # doctest: +SKIP
>>> write_reports(comparison, Path("reports/run1"))      # doctest: +SKIP
[PosixPath('reports/run1/report.html'), ...]
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from . import _view as view
from .html import render_html
from .markdown import render_markdown

__all__ = ["write_reports", "render_html", "render_markdown", "comparison_json", "metrics_csv"]

#: Column order of metrics.csv: the schema's row keys first, any extra keys after in first-seen order.
METRIC_COLUMNS = ["task", "metric", "checkpoint", "axis", "is_primary", "higher_is_better", "value", "ci_low",
                  "ci_high", "stderr", "n", "baseline", "baseline_value", "delta", "delta_ci_low", "delta_ci_high",
                  "relative", "p_value", "test", "n_paired"]


def comparison_json(comparison: dict[str, Any]) -> str:
    """The comparison as JSON text: keys sorted, NaN refused (the schema says ``null`` instead)."""
    try:
        return json.dumps(comparison, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as exc:
        raise ValueError(f"comparison contains NaN or infinity ({exc}); use null for undefined values.") from exc


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def metrics_csv(comparison: dict[str, Any]) -> str:
    """Tidy CSV text: one row per ``comparison["metrics"]`` row, one column per row key."""
    rows = comparison.get("metrics") or []
    columns = list(METRIC_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(row.get(key)) for key in columns})
    return buffer.getvalue()



def write_reports(comparison: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``report.html``, ``report.md``, ``comparison.json`` and ``metrics.csv`` into ``out``.

    Everything is rendered in memory first, so a rendering error writes nothing; each file is then
    written atomically (temporary file + rename), creating ``out`` if needed.

    Returns
    -------
    list of Path
        The written files, in the order above.
    """
    view.check_comparison(comparison)
    out = Path(out)
    texts = {"report.html": render_html(comparison), "report.md": render_markdown(comparison),
             "comparison.json": comparison_json(comparison), "metrics.csv": metrics_csv(comparison)}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        atomic_write_text(out / name, text)
        paths.append(out / name)
    return paths
