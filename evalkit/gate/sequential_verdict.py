"""Early decisions into the verdict: a stopped task's gates are decided by their confidence sequences.

The gate's rule for comparisons made by ``compare --sequential`` (:mod:`evalkit.sequential`, which runs
above the gate and reads :data:`EARLY_SHARE` from here).

The fixed-sample rule on the few hundred samples a stopped task used would be the "peeking" the
sequence exists to avoid, so for a task that stopped early each check takes the sequence's decision.
A gate the sequential run did not monitor (``evalkit gate`` with another policy on the same
comparison.json) cannot be checked on a random part of the data and fails with a message saying so.
Tasks that ran to the end keep the ordinary fixed-sample check (the sequence's bounds are attached), at
the level left for the final look: the early looks spent :data:`EARLY_SHARE` of each gate's level per
side, so the final fixed-sample bounds use the rest and the whole procedure errs at the threshold, on
each side, with probability at most the level (a union bound over the two stages).
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply_sequential_verdict", "final_share", "EARLY_SHARE"]

#: Share of a gate's one-sided level spent on the early looks (the confidence sequence); the final
#: fixed-sample look of a task that ran to the end gets the remaining ``1 - EARLY_SHARE``.
EARLY_SHARE = 0.2


def final_share(comparison: dict[str, Any], metric: str) -> float:
    """The share of a gate's level its fixed-sample bounds may use: ``1 - EARLY_SHARE`` when a sequential
    run monitored the gate's task and reached its end, else 1 (no early looks were taken)."""
    tasks = (comparison.get("sequential") or {}).get("tasks") or {}
    outcome = tasks.get(metric.split(".", 1)[0])
    if outcome and outcome.get("sequential") and not outcome.get("stopped_early"):
        return 1.0 - EARLY_SHARE
    return 1.0


def apply_sequential_verdict(verdict, comparison: dict[str, Any]):
    """Replace the checks of early-stopped tasks in ``verdict`` by their sequential decisions (in place).

    Parameters
    ----------
    verdict : Verdict
        From :func:`evalkit.gate.evaluate_policy` on ``comparison``.
    comparison : dict
        A comparison with a ``sequential`` section (``evalkit compare --sequential``); without one the
        verdict is returned unchanged.

    Returns
    -------
    Verdict
        The same object, its ``status`` recomputed.
    """
    tasks = (comparison.get("sequential") or {}).get("tasks") or {}
    for check in verdict.checks:
        outcome = tasks.get(check.metric.split(".", 1)[0])
        if not outcome or not outcome.get("sequential"):
            continue
        entry = _matching_entry(check, outcome.get("gates") or [])
        if entry is not None:
            check.sequential = _summary(entry, outcome)
        if outcome.get("stopped_early"):
            _decide_early(check, entry, outcome)
    verdict.refresh_status()  # the Verdict's own rule
    return verdict


def _matching_entry(check, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    for entry in entries:
        if (entry.get("metric"), entry.get("checkpoint"), entry.get("operator")) == (
            check.metric,
            check.checkpoint,
            check.operator,
        ) and abs(float(entry.get("threshold", float("nan"))) - check.threshold) < 1e-12:
            return entry
    return None


def _summary(entry: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        "samples_used": outcome.get("samples_used"),
        "samples_total": outcome.get("samples_total"),
        "stopped_early": bool(outcome.get("stopped_early")),
        "reason": outcome.get("reason"),
        "quantity": entry.get("quantity"),
        "cs_low": entry.get("cs_low"),
        "cs_high": entry.get("cs_high"),
        "estimate": entry.get("estimate"),
        "alpha": entry.get("alpha"),
        "decision": entry.get("status"),
    }


def _decide_early(check, entry: dict[str, Any] | None, outcome: dict[str, Any]) -> None:
    used, total = outcome.get("samples_used"), outcome.get("samples_total")
    if entry is None or entry.get("status") not in ("pass", "fail"):
        check.status = "fail"
        check.message = (
            f"task stopped after {used} of {total} samples by a sequential run that did not monitor "
            "this gate; it cannot be checked on part of the data (run the sequential comparison with "
            "this policy, or a full comparison)"
        )
    else:
        check.status = entry["status"]
        check.observed = entry.get("estimate")
        check.underpowered = False  # decided by the bound itself: a power concern of the partial data does not apply
        check.bound_low, check.bound_high = entry.get("cs_low"), entry.get("cs_high")
        check.alpha = entry.get("alpha")
        relation = _relation(entry)
        limit = entry.get("decision_threshold", check.threshold)
        check.message = (
            f"sequential: {entry['quantity']} in [{entry['cs_low']:.3f}, {entry['cs_high']:.3f}] "
            f"{relation} {limit:g} after {used} of {total} samples "
            f"(anytime-valid, {entry['alpha'] / 2:g} per side)"
        )
    if check.status == "fail" and check.severity == "warn":
        check.status = "warn"
        check.message += " [severity: warn]"


def _relation(entry: dict[str, Any]) -> str:
    fails_above = entry["operator"] in ("max_drop", "max", "max_relative_drop")
    if entry["status"] == "fail":
        return "entirely above" if fails_above else "entirely below"
    return "within" if fails_above else "at or above"
