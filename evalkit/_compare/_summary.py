"""The report header: per non-baseline checkpoint, its primary metrics on each axis against the baseline."""

from __future__ import annotations

from typing import Any

from ..comparison_format import row_significant
from ._common import Context


def summary_rows(
    ctx: Context, metric_rows: list[dict[str, Any]], flip_counts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    for label in ctx.labels:
        if label == ctx.baseline:
            continue
        primaries = [_entry(r) for r in metric_rows if r["checkpoint"] == label and r["is_primary"]]
        domain = [e for e in primaries if e["axis"] == "domain"]
        general = [e for e in primaries if e["axis"] != "domain"]
        counts = [c for c in flip_counts if c["checkpoint"] == label]
        rows.append(
            {
                "checkpoint": label,
                "domain": domain,
                "general": general,
                "mean_domain_delta": _mean([e["delta"] for e in domain]),
                "mean_general_retention": _mean([e["relative"] for e in general]),
                "significant_regressions": sum(e["significant"] and e["worse"] for e in primaries),
                "significant_improvements": sum(e["significant"] and e["better"] for e in primaries),
                "right_to_wrong": sum(c["right_to_wrong"] for c in counts),
                "wrong_to_right": sum(c["wrong_to_right"] for c in counts),
            }
        )
    return rows


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    delta, p_value = row["delta"], row["p_value"]
    sign = 1 if row["higher_is_better"] else -1
    return {
        "task": row["task"],
        "metric": row["metric"],
        "axis": row["axis"],
        "value": row["value"],
        "baseline_value": row["baseline_value"],
        "delta": delta,
        "relative": row["relative"],
        "p_value": p_value,
        "test": row["test"],
        "higher_is_better": row["higher_is_better"],
        "significant": row_significant(row),
        "worse": delta is not None and sign * delta < 0,
        "better": delta is not None and sign * delta > 0,
    }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
