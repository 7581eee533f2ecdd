"""Multiplicity on the top-level rows: one family of tests per checkpoint, its tasks' primary metrics.

A comparison tests every metric of every task; marking each row whose interval excludes 0 marks some
row in about one null comparison in five (two equally good checkpoints, the VOC task alone: 19.5 %). So
the marker a reader counts (✱, colour, the summary's significant regressions and improvements) belongs
to one family per checkpoint: the primary metric each task's evaluator declares
(``TaskResult.primary_metric``), adjusted with Holm's step-down procedure (family-wise error <= alpha,
``evalkit.metrics.stats.holm_adjust``, equal to statsmodels' ``multipletests(method="holm")``). A
primary row is marked when its Holm-adjusted p-value is below alpha *and* its delta interval excludes 0,
so no marker sits beside an interval that spans 0. Every other row is exploratory (``family:
"exploratory"``): its interval and raw p-value are shown, with no marker. A metric identical to another by
construction (``TaskResult.same_as``) is tested once, as its representative: its own row (``family: "alias"``,
``alias_of``) repeats the representative's numbers with no marker and joins no family.
"""

from __future__ import annotations

from typing import Any

from ..metrics.stats import holm_adjust

__all__ = ["adjust_primary_family"]


def adjust_primary_family(rows: list[dict[str, Any]], baseline: str, alpha: float) -> None:
    """Set ``family``, ``p_value_adjusted``, ``family_size`` and the marker ``significant`` of metric rows (in place)."""
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("alias_of"):  # its representative's row carries the test and the marker
            row.update(family="alias", p_value_adjusted=None, family_size=None, significant=None)
            continue
        row.update(family="primary" if row["is_primary"] else "exploratory", p_value_adjusted=None, family_size=None)
        if row["checkpoint"] == baseline:
            continue
        if not row["is_primary"]:
            row["significant"] = None  # exploratory: no marker (the interval is shown)
        elif row["p_value"] is not None:
            families.setdefault(row["checkpoint"], []).append(row)
    for members in families.values():
        adjusted = holm_adjust([row["p_value"] for row in members])
        for row, p_adjusted in zip(members, adjusted):
            row.update(p_value_adjusted=float(p_adjusted), family_size=len(members))
            if row["significant"] is not None:
                row["significant"] = bool(row["significant"] and p_adjusted < alpha)
