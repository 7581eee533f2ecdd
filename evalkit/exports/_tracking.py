"""What the experiment-tracker integrations log, named once: metric keys and the numbers under them."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["metric_key", "checkpoint_metrics", "comparison_metrics", "COMPARATIVE_FIELDS"]

#: Fields of a metric row that describe the comparison with the baseline (logged on the parent run too).
COMPARATIVE_FIELDS = ("delta", "p_value", "q_value", "relative")
_KEY_UNSAFE = re.compile(r"[^\w.\- :/]")


def metric_key(*parts: str) -> str:
    """An MLflow metric key from evalkit names (characters MLflow refuses become ``_``).

    >>> metric_key("voc_sample.leaf_macro_f1", "ci_low")
    'voc_sample.leaf_macro_f1.ci_low'
    >>> metric_key("mmlu.acc@5", "")
    'mmlu.acc_5'
    """
    return _KEY_UNSAFE.sub("_", ".".join(part for part in parts if part))


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    """The row's numeric fields (not flags), in name order."""
    return {
        key: value
        for key, value in sorted(row.items())
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def checkpoint_metrics(comparison: dict[str, Any], label: str) -> dict[str, float]:
    """``{key: value}`` of one checkpoint's nested run: every numeric field of its metric rows."""
    metrics = {}
    for row in comparison["metrics"]:
        if row["checkpoint"] == label:
            name = f"{row['task']}.{row['metric']}"
            metrics.update(
                {metric_key(name, "" if field == "value" else field): value for field, value in _numbers(row).items()}
            )
    return metrics


def comparison_metrics(comparison: dict[str, Any]) -> dict[str, float]:
    """``{key: value}`` of the parent run: each non-baseline row's deltas and p-values, keyed by checkpoint."""
    metrics = {}
    for row in comparison["metrics"]:
        if row["checkpoint"] == comparison.get("baseline"):
            continue
        prefix = f"{row['checkpoint']}/{row['task']}.{row['metric']}"
        metrics.update(
            {
                metric_key(prefix, field): value
                for field, value in _numbers(row).items()
                if field.startswith(COMPARATIVE_FIELDS)
            }
        )
    return metrics
