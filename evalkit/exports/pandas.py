"""pandas tables of evalkit's results: :meth:`Comparison.to_pandas` (and the column names of
:meth:`EvalResult.to_pandas`, made in :mod:`evalkit.records`, which sits below this module).

The column names are part of evalkit's interface (``docs/integrations.md``): they change only with
:data:`COLUMNS_VERSION`, which every table carries in ``frame.attrs["evalkit_columns_version"]``.
Fields a newer comparison adds to its rows (an adjusted p-value, a new decision field) follow the
documented columns, in name order, so nothing the comparison holds is lost.
"""

from __future__ import annotations

from typing import Any

from ..records import COLUMNS_VERSION, SAMPLE_COLUMNS, columns_frame

__all__ = ["COLUMNS_VERSION", "SAMPLE_COLUMNS", "METRIC_COLUMNS", "BREAKDOWN_COLUMNS", "comparison_frame"]

#: ``Comparison.to_pandas()``: one row per (task, metric, checkpoint), as ``comparison.json["metrics"]``.
METRIC_COLUMNS = (
    "task",
    "metric",
    "checkpoint",
    "axis",
    "is_primary",
    "higher_is_better",
    "level",
    "n",
    "value",
    "ci_low",
    "ci_high",
    "ci_method",
    "baseline",
    "baseline_value",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "relative",
    "test",
    "p_value",
    "p_value_adjusted",
    "significant",
    "decision",
)
#: ``Comparison.to_pandas("breakdowns")``: one row per breakdown key, as ``comparison.json["breakdowns"]``.
BREAKDOWN_COLUMNS = (
    "task",
    "kind",
    "key",
    "metric",
    "checkpoint",
    "n",
    "value",
    "baseline",
    "baseline_value",
    "delta",
    "test",
    "p_value",
    "p_value_adjusted",
    "q_value",
    "family_size",
    "significant",
    "decision",
)
_TABLES = ("metrics", "breakdowns")


def comparison_frame(comparison: dict[str, Any], table: str = "metrics"):
    """The comparison's metric (or breakdown) rows with the verdict's decision per row.

    ``significant`` is the report's marker: the comparison's own (the delta interval excludes 0; null
    without an interval), else, for comparisons written before it existed, the deciding p-value
    (Holm-adjusted when the row has one) below 0.05; ``decision`` is the worst gate status of the checks on the row's
    metric and checkpoint (``pass``, ``warn``, ``fail``, or any status the gate adds), None when no
    gate checks it.
    """
    from ..report import marked

    if table not in _TABLES:
        raise ValueError(f"table must be one of {', '.join(_TABLES)}; got {table!r}.")
    documented = METRIC_COLUMNS if table == "metrics" else BREAKDOWN_COLUMNS
    decisions = _decisions(comparison)
    rows = []
    for row in comparison.get(table) or []:
        row = dict(row)
        if "significant" not in row:  # older comparisons: the report's fallback on the p-value
            row["significant"] = marked(row)
        row["decision"] = decisions.get((_gate_name(row), str(row.get("checkpoint"))))
        rows.append(row)
    extra = sorted({key for row in rows for key in row} - set(documented))
    return columns_frame(rows, list(documented) + extra)


def _gate_name(row: dict[str, Any]) -> str:
    """The metric as a policy names it: ``task.metric`` or ``task.kind/key/metric``."""
    if "kind" in row:
        return f"{row.get('task')}.{row.get('kind')}/{row.get('key')}/{row.get('metric')}"
    return f"{row.get('task')}.{row.get('metric')}"


def _decisions(comparison: dict[str, Any]) -> dict[tuple[str, str], str]:
    from ..comparison_format import checkpoint_statuses

    checks = [c for c in ((comparison.get("verdict") or {}).get("checks") or []) if isinstance(c, dict)]
    by_row: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for check in checks:
        by_row.setdefault((str(check.get("metric")), str(check.get("checkpoint"))), []).append(check)
    return {key: checkpoint_statuses(group)[key[1]] for key, group in by_row.items()}
