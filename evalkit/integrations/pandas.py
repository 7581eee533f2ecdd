"""pandas tables of evalkit's results: :meth:`EvalResult.to_pandas` and :meth:`Comparison.to_pandas`.

The column names are part of evalkit's interface (``docs/integrations.md``): they change only with
:data:`COLUMNS_VERSION`, which every table carries in ``frame.attrs["evalkit_columns_version"]``.
Fields a newer comparison adds to its rows (an adjusted p-value, a new decision field) follow the
documented columns, in name order, so nothing the comparison holds is lost.
"""

from __future__ import annotations

from typing import Any

from ..records import EvalResult, record_value

__all__ = ["COLUMNS_VERSION", "SAMPLE_COLUMNS", "METRIC_COLUMNS", "BREAKDOWN_COLUMNS", "samples_frame",
           "comparison_frame"]

#: Bumped when a documented column is renamed, removed or changes meaning.
COLUMNS_VERSION = 1
#: ``EvalResult.to_pandas()``: one row per (task, sample); then ``score.NAME`` per per-sample score,
#: ``breakdown.KIND`` per declared breakdown key (the record field its ``group_by`` names).
SAMPLE_COLUMNS = ("checkpoint", "task", "axis", "sample_id", "input", "target", "prediction", "correct",
                  "confidence", "group")
#: ``Comparison.to_pandas()``: one row per (task, metric, checkpoint), as ``comparison.json["metrics"]``.
METRIC_COLUMNS = ("task", "metric", "checkpoint", "axis", "is_primary", "higher_is_better", "level", "n",
                  "value", "ci_low", "ci_high", "ci_method", "baseline", "baseline_value", "delta",
                  "delta_ci_low", "delta_ci_high", "relative", "test", "p_value", "p_value_adjusted",
                  "significant", "decision")
#: ``Comparison.to_pandas("breakdowns")``: one row per breakdown key, as ``comparison.json["breakdowns"]``.
BREAKDOWN_COLUMNS = ("task", "kind", "key", "metric", "checkpoint", "n", "value", "baseline", "baseline_value",
                     "delta", "test", "p_value", "p_value_adjusted", "q_value", "family_size", "significant",
                     "decision")
_TABLES = ("metrics", "breakdowns")


def samples_frame(result: EvalResult):
    """One row per sample of every task of ``result`` (see :data:`SAMPLE_COLUMNS`)."""
    import pandas as pd

    rows, extra_columns = [], {}
    for name, task in result.tasks.items():
        keys = _breakdown_fields(task)
        for record in task.samples:
            row = {"checkpoint": result.checkpoint.label, "task": name, "axis": task.axis,
                   "sample_id": record.sample_id, "input": record.input, "target": record.target,
                   "prediction": record.prediction, "correct": record.correct,
                   "confidence": _confidence(record), "group": record.group}
            row.update({f"score.{key}": value for key, value in record.scores.items()})
            row.update({f"breakdown.{kind}": record_value(record, field) for kind, field in keys.items()})
            extra_columns.update(dict.fromkeys(k for k in row if k not in SAMPLE_COLUMNS))
            rows.append(row)
    return _frame(pd, rows, list(SAMPLE_COLUMNS) + sorted(extra_columns))


def _breakdown_fields(task) -> dict[str, str]:
    """``{kind: record field}`` of the task's breakdowns whose metrics declare a ``group_by`` field."""
    from ..evaluators.base import metric_spec

    fields = {}
    for kind, groups in sorted(task.breakdowns.items()):
        metrics = sorted({name for values in groups.values() for name in values})
        specs = (metric_spec(task, f"{kind}/{name}") for name in metrics)
        group_by = next((spec.group_by for spec in specs if spec is not None and spec.group_by), None)
        if group_by:
            fields[kind] = group_by
    return fields


def _confidence(record) -> Any:
    """A record's confidence where the evaluator gave one (a field of its own, or a score / extra entry)."""
    value = getattr(record, "confidence", None)
    if value is None:
        value = record.scores.get("confidence", record.extra.get("confidence"))
    return value


def comparison_frame(comparison: dict[str, Any], table: str = "metrics"):
    """The comparison's metric (or breakdown) rows with the verdict's decision per row.

    ``significant`` marks rows whose deciding p-value (Holm-adjusted when the row has one) is below
    0.05, as the report's markers do; ``decision`` is the worst gate status of the checks on the row's
    metric and checkpoint (``pass``, ``warn``, ``fail``, or any status the gate adds), None when no
    gate checks it.
    """
    import pandas as pd

    from ..report._view import decision_p, is_significant

    if table not in _TABLES:
        raise ValueError(f"table must be one of {', '.join(_TABLES)}; got {table!r}.")
    documented = METRIC_COLUMNS if table == "metrics" else BREAKDOWN_COLUMNS
    decisions = _decisions(comparison)
    rows = []
    for row in comparison.get(table) or []:
        row = dict(row)
        row["significant"] = is_significant(decision_p(row))
        row["decision"] = decisions.get((_gate_name(row), str(row.get("checkpoint"))))
        rows.append(row)
    extra = sorted({key for row in rows for key in row} - set(documented))
    return _frame(pd, rows, list(documented) + extra)


def _gate_name(row: dict[str, Any]) -> str:
    """The metric as a policy names it: ``task.metric`` or ``task.kind/key/metric``."""
    if "kind" in row:
        return f"{row.get('task')}.{row.get('kind')}/{row.get('key')}/{row.get('metric')}"
    return f"{row.get('task')}.{row.get('metric')}"


def _decisions(comparison: dict[str, Any]) -> dict[tuple[str, str], str]:
    from ..gate._policy import checkpoint_statuses

    checks = [c for c in ((comparison.get("verdict") or {}).get("checks") or []) if isinstance(c, dict)]
    by_row: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for check in checks:
        by_row.setdefault((str(check.get("metric")), str(check.get("checkpoint"))), []).append(check)
    return {key: checkpoint_statuses(group)[key[1]] for key, group in by_row.items()}


def _frame(pd, rows: list[dict[str, Any]], columns: list[str]):
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["evalkit_columns_version"] = COLUMNS_VERSION
    return frame
