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

from .._io import OutputFolder, dump_json
from . import _view as view
from ._view import fmt_delta, fmt_value, marked, study_table
from .html import render_html
from .markdown import render_markdown

__all__ = [
    "write_reports",
    "render_html",
    "render_markdown",
    "comparison_json",
    "metrics_csv",
    # what the object API and the integrations show the way the report does
    "fmt_value",
    "fmt_delta",
    "marked",
    "study_table",
]

#: Column order of metrics.csv: the schema's row keys first, any extra keys after in first-seen order.
METRIC_COLUMNS = [
    "task",
    "metric",
    "checkpoint",
    "axis",
    "is_primary",
    "higher_is_better",
    "value",
    "ci_low",
    "ci_high",
    "stderr",
    "n",
    "baseline",
    "baseline_value",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "relative",
    "p_value",
    "test",
    "n_paired",
]


def comparison_json(comparison: dict[str, Any]) -> str:
    """The comparison as JSON text: keys sorted, NaN refused (the schema says ``null`` instead)."""
    try:
        return dump_json(comparison, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"comparison contains NaN or infinity ({exc}); use null for undefined values.") from exc


#: A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), +cmd|...).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """One CSV cell; text that a spreadsheet would run as a formula gets a leading ``'`` (OWASP).

    >>> _csv_cell("=HYPERLINK(1)"), _csv_cell(-0.5), _csv_cell("tuned")
    ("'=HYPERLINK(1)", -0.5, 'tuned')
    """
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
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


#: The files :func:`write_reports` writes (checked before any work by the pipeline).
REPORT_FILES = ("report.html", "report.md", "comparison.json", "metrics.csv")


def write_reports(comparison: dict[str, Any], out: str | Path | OutputFolder) -> list[Path]:
    """Write ``report.html``, ``report.md``, ``comparison.json`` and ``metrics.csv`` into ``out``.

    Everything is rendered in memory first, so a rendering error writes nothing; each file is then
    written atomically (temporary file + rename), creating ``out`` if needed. ``out`` is a folder
    path (its ``manifest.json`` is written last) or an open :class:`~evalkit._io.OutputFolder` of a
    larger batch of outputs.

    Returns
    -------
    list of Path
        The written files, in the order above.
    """
    view.check_comparison(comparison)
    texts = {
        "report.html": render_html(comparison),
        "report.md": render_markdown(comparison),
        "comparison.json": comparison_json(_with_recommendation(comparison)),
        "metrics.csv": metrics_csv(comparison),
    }
    if not isinstance(out, OutputFolder):
        with OutputFolder(out) as folder:
            return [folder.write_text(name, text=text) for name, text in texts.items()]
    return [out.write_text(name, text=text) for name, text in texts.items()]


def _with_recommendation(comparison: dict[str, Any]) -> dict[str, Any]:
    """The comparison with its trajectory's recommended checkpoint (``recommendation``: label, run, step and the
    rule; derived, as the report shows it) when its checkpoints form a training trajectory."""
    from .trajectory import trajectory

    context = trajectory(comparison)
    return comparison if context is None else {**comparison, "recommendation": context["recommended"]}
