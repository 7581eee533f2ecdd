"""A policy applied to a comparison -> :class:`Verdict` of one :class:`Check` per gate and checkpoint.

The decision rule (docs/gating.md). A gate with a level alpha (its ``significance``, or the policy's)
computes two one-sided ``1 - alpha`` confidence bounds of its quantity (the gain, the drop, their
relative forms, or the value for ``min``/``max``) and compares them with its threshold:

* *pass* when the bound on the unfavourable side is within the threshold (the true change is within
  the margin, unless an event of probability <= alpha happened);
* *fail* when the bound on the favourable side is beyond it (the true change is beyond the margin);
* *inconclusive* otherwise: the data cannot tell; the policy's ``on_inconclusive`` decides the exit code.

So at a true quantity exactly at the threshold, P(pass) <= alpha and P(fail) <= alpha: the level is
one-sided, per gate and per side (a checkpoint with k gates errs somewhere with probability <= k*alpha;
divide the level to control that). The frame is one: the test items are a sample from the population
of such items, and every bound is an interval for the population quantity. A gate without a level
compares the point estimate with the threshold (inclusively) and says that it has no error control.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import UsageError, did_you_mean

from ..metrics.stats import cut_to_range, one_sided_bounds, paired_proportion_bounds, proportion_bounds
from .policy import _COMPARATIVE, Gate, Policy, check_policy_baseline
from ._verdict import Check, Verdict, worst_status
from .sequential_verdict import apply_sequential_verdict, final_share
# ------------------------------------------------------------------------------------ evaluation


def evaluate_policy(policy: Policy, comparison: dict[str, Any]) -> Verdict:
    """Apply every gate of ``policy`` to every checkpoint it targets in ``comparison``.

    Raises :class:`UsageError` when the policy does not fit the comparison (baseline mismatch,
    unknown metric or checkpoint label). A metric row that is missing for a targeted checkpoint, or
    whose value is undefined, is a failed check rather than an error: the gate could not be shown
    to hold.
    """
    baseline = comparison.get("baseline")
    check_policy_baseline(policy, baseline)
    labels = [str(c.get("label")) for c in comparison.get("checkpoints", [])]
    index = _metric_index(comparison)
    targets = [(gate, _rows_for(gate, index, policy.source)) for gate in policy.gates]
    pairs = [
        (gate, rows, label)
        for gate, rows in targets
        for label in _target_checkpoints(gate, labels, baseline, policy.source)
    ]
    checks = [
        check_row(
            gate,
            rows.get(label),
            label,
            _higher_is_better(gate, rows, comparison),
            rows.get(str(baseline)),
            final_share(comparison, gate.metric),
        )
        for gate, rows, label in pairs
    ]
    verdict = Verdict(
        status=worst_status(checks),
        policy=policy.source,
        baseline=str(baseline),
        checks=checks,
        on_inconclusive=policy.on_inconclusive,
    )
    if comparison.get("sequential"):  # tasks stopped early are decided by their confidence sequences
        apply_sequential_verdict(verdict, comparison)
    return verdict


def _row_p_value(row: dict | None) -> float | None:
    """A row's p-value as the report shows it: Holm-adjusted within its breakdown family when it has one."""
    if row is None:
        return None
    adjusted = _float(row.get("p_value_adjusted"))
    return adjusted if adjusted is not None else _float(row.get("p_value"))


def _metric_index(comparison: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """Gate name -> checkpoint label -> row, for metric rows and breakdown rows."""
    index: dict[str, dict[str, dict]] = {}
    for section, required in (
        ("metrics", ("task", "metric", "checkpoint")),
        ("breakdowns", ("task", "kind", "key", "metric", "checkpoint")),
    ):
        for number, row in enumerate(comparison.get(section) or [], start=1):
            missing = [key for key in required if not isinstance(row, dict) or key not in row]
            if missing:
                raise UsageError(
                    f"comparison: {section} row {number} lacks {', '.join(missing)}; "
                    "is it a comparison.json written by `evalkit compare`?"
                )
            name = (
                f"{row['task']}.{row['metric']}"
                if section == "metrics"
                else f"{row['task']}.{row['kind']}/{row['key']}/{row['metric']}"
            )
            index.setdefault(name, {})[str(row["checkpoint"])] = row
    _resolve_aliases(index, comparison.get("metrics") or [])
    return index


def _resolve_aliases(index: dict[str, dict[str, dict]], rows: list[dict]) -> None:
    """A gate on an alias (``alias_of``: identical to another metric by construction) decides on its representative's row."""
    for row in rows:
        representative = index.get(f"{row['task']}.{row.get('alias_of')}", {}).get(str(row["checkpoint"]))
        if isinstance(row.get("alias_of"), str) and representative is not None:
            index[f"{row['task']}.{row['metric']}"][str(row["checkpoint"])] = representative


def _rows_for(gate: Gate, index: dict[str, dict[str, dict]], source: str) -> dict[str, dict]:
    if gate.metric in index:
        return index[gate.metric]
    task = gate.metric.split(".", 1)[0]
    is_breakdown = "/" in gate.metric
    choices = [n for n in index if ("/" in n) == is_breakdown and (not is_breakdown or n.startswith(task + "."))]
    tasks = sorted({n.split(".", 1)[0] for n in index})
    hint = "" if task in tasks else f" The comparison's tasks are: {', '.join(tasks) or '(none)'}."
    if not is_breakdown:
        hint += " Breakdown rows are named TASK.KIND/KEY/METRIC, e.g. mmlu.subject/anatomy/acc."
    raise UsageError(
        f"{source}: gate {gate.index}: unknown metric {gate.metric!r} in the comparison."
        f"{did_you_mean(gate.metric, choices or list(index))}{hint}"
    )


def _target_checkpoints(gate: Gate, labels: list[str], baseline: Any, source: str) -> list[str]:
    where = f"{source}: gate {gate.index} ({gate.metric})"
    if gate.checkpoints is None:
        targets = [label for label in labels if label != baseline]
        if not targets:
            raise UsageError(f"{where}: the comparison has no checkpoint besides the baseline {baseline!r} to gate.")
        return targets
    for label in gate.checkpoints:
        if label not in labels:
            raise UsageError(f"{where}: unknown checkpoint {label!r} in 'checkpoints'.{did_you_mean(label, labels)}")
        if label == baseline and gate.operator in _COMPARATIVE:
            raise UsageError(
                f"{where}: '{gate.operator}' compares with the baseline, so it cannot apply to the "
                f"baseline {label!r} itself; use min or max to bound the baseline's value."
            )
    return [label for label in labels if label in gate.checkpoints]


def _higher_is_better(gate: Gate, rows: dict[str, dict], comparison: dict[str, Any]) -> bool:
    """The gate's override, else the rows' declared flag, else the task metric's; never guessed from the name."""
    if gate.higher_is_better is not None:
        return gate.higher_is_better
    for row in rows.values():
        if isinstance(row.get("higher_is_better"), bool):
            return row["higher_is_better"]
    some_row = next(iter(rows.values()))
    for row in comparison.get("metrics") or []:
        if row["task"] == some_row["task"] and row["metric"] == some_row["metric"]:
            if isinstance(row.get("higher_is_better"), bool):
                return row["higher_is_better"]
    return True  # comparisons written by evalkit always carry the flag; a hand-made one may set higher_is_better


# Thresholds are inclusive; the slack keeps 0.60 - 0.55 (= 0.04999...) from failing "min_gain: 0.05".
_EPSILON = 1e-9
#: Operators that fail above their threshold (the others fail below it).
_AT_MOST = ("max_drop", "max_relative_drop", "max")


def check_row(
    gate: Gate, row: dict | None, label: str, higher_is_better: bool, baseline_row: dict | None, share: float = 1.0
) -> Check:
    """One gate decided on one checkpoint's comparison row; ``share`` is the part of the gate's level this look may
    spend (1 for a fixed-sample run; a sequential run's final look gets what its early looks left)."""
    check = Check(
        gate=gate.description,
        metric=gate.metric,
        checkpoint=label,
        status="fail",
        severity=gate.severity,
        operator=gate.operator,
        threshold=gate.threshold,
        message="",
        significance=gate.significance,
        higher_is_better=higher_is_better,
        gate_index=gate.index,
    )
    if row is None:
        check.message = f"no {gate.metric} row for checkpoint {label!r} in the comparison"
        return _apply_severity(check)
    check.value, check.baseline_value = _float(row.get("value")), _float(row.get("baseline_value"))
    check.p_value = _float(row.get("p_value"))
    check.p_value_adjusted = _row_p_value(row)
    check.delta = _float(row.get("delta"))
    if check.delta is None and None not in (check.value, check.baseline_value):
        check.delta = check.value - check.baseline_value
    if not _observe(check):
        return _apply_severity(check)
    if gate.significance is None:
        _decide_by_point(check)
        _check_power(check, row)
    else:
        check.alpha = gate.significance * share
        check.bound_low, check.bound_high = _bounds(check, row, baseline_row, check.alpha)
        _decide_by_bounds(check)
        _note_mde(check, row)
    if row.get("aliases") and not gate.metric.endswith(f".{row['metric']}"):  # the gate named an alias
        check.message += f" (decided on {row['metric']}, identical by construction)"
    return _apply_severity(check)


def _observe(check: Check) -> bool:
    """Set ``observed`` (value, gain, drop or their relative forms); False (a failed check) when undefined."""
    if check.operator in ("min", "max"):
        check.observed = check.value
        if check.value is None:
            check.message = "value undefined"
        return check.value is not None
    if check.value is None or check.baseline_value is None:
        check.message = "value or baseline value undefined"
        return False
    relative = "relative" in check.operator
    gain = _relative_gain(check) if relative else (check.delta if check.higher_is_better else -check.delta)
    check.observed = gain if check.operator.startswith("min") else -gain
    return True


def _decide_by_point(check: Check) -> None:
    """No level: the point estimate against the (inclusive) threshold, with no error control."""
    at_most = check.operator in _AT_MOST
    ok = check.observed <= check.threshold + _EPSILON if at_most else check.observed >= check.threshold - _EPSILON
    check.status = "pass" if ok else "fail"
    relation = _relation_text(check, ok)
    decided = (
        f"{_observed_text(check)} {relation}"
        if check.operator in ("min", "max")
        else f"{_observed_text(check)} ({relation})"
    )
    check.message = f"{decided}; point estimate, no error control (the gate has no significance level)"


def _decide_by_bounds(check: Check) -> None:
    """The decision rule of the module docstring on the bounds of ``observed``."""
    low, high, t = check.bound_low, check.bound_high, check.threshold
    confidence = (
        f"{1 - check.alpha:.0%}" if round(100 * (1 - check.alpha), 6).is_integer() else f"{1 - check.alpha:.1%}"
    )
    if low is None or high is None:
        check.status = "inconclusive"
        check.message = (
            f"{_observed_text(check)}; the comparison has no interval for this row, so the gate "
            "cannot be decided at its level"
        )
        return
    if check.operator in _AT_MOST:
        status = "pass" if high <= t + _EPSILON else "fail" if low > t + _EPSILON else "inconclusive"
    else:
        status = "pass" if low >= t - _EPSILON else "fail" if high < t - _EPSILON else "inconclusive"
    check.status = status
    name, limit = _quantity_name(check), _fmt_amount(t, "relative" in check.operator)
    relative = "relative" in check.operator
    span = (
        f"{name} in [{_fmt_amount(low, relative, signed=True)}, {_fmt_amount(high, relative, signed=True)}] "
        f"(one-sided {confidence} bounds)"
    )
    if status == "inconclusive":
        check.message = (
            f"{_observed_text(check)}; {span}: straddles the {_limit_word(check)} {limit}, "
            "cannot tell (more samples would)"
        )
    else:
        check.message = f"{_observed_text(check)}; {span}: {_relation_text(check, status == 'pass')}"


def _quantity_name(check: Check) -> str:
    return {
        "min": "value",
        "max": "value",
        "min_gain": "gain",
        "max_drop": "drop",
        "min_relative_gain": "relative gain",
        "max_relative_drop": "relative drop",
    }[check.operator]


def _limit_word(check: Check) -> str:
    return {
        "min": "minimum",
        "max": "maximum",
        "min_gain": "required gain",
        "max_drop": "allowed drop",
        "min_relative_gain": "required gain",
        "max_relative_drop": "allowed drop",
    }[check.operator]


def _observed_text(check: Check) -> str:
    if check.operator in ("min", "max"):
        return f"value {check.value:.3f}"
    relative = "relative" in check.operator
    gain = check.observed if check.operator.startswith("min") else -check.observed
    return _change_text(gain, check.higher_is_better, relative)


def _relation_text(check: Check, ok: bool) -> str:
    limit = _fmt_amount(check.threshold, "relative" in check.operator)
    if check.operator in ("min", "max"):
        sign = {("min", True): ">=", ("min", False): "<", ("max", True): "<=", ("max", False): ">"}
        return f"{sign[check.operator, ok]} {check.operator} {check.threshold:g}"
    if check.operator in _AT_MOST:
        return f"{'<=' if ok else '>'} {limit} allowed"
    return f"{'meets' if ok else 'below'} the required gain of {limit}"


def _bounds(check: Check, row: dict, baseline_row: dict | None, alpha: float) -> tuple[float | None, float | None]:
    """One-sided ``1 - alpha`` bounds of ``observed``, cut to what the metric's declared range allows."""
    low, high = _raw_bounds(check, row, baseline_row, alpha)
    return _cut_to_metric_range(check, low, high, row.get("metric_bounds"))


def _cut_to_metric_range(
    check: Check, low: float | None, high: float | None, metric_bounds: Any
) -> tuple[float | None, float | None]:
    """Cut the bounds of ``observed`` as the report cuts its delta intervals (``cut_to_range``).

    ``observed`` is ``scale * (value - start)``: start 0 for ``min``/``max``, the baseline value for the
    others; scale -1 for a drop (and for a gain when lower is better), 1/|baseline| for relative forms."""
    if low is None or high is None or not (isinstance(metric_bounds, list) and len(metric_bounds) == 2):
        return low, high
    if check.operator in ("min", "max"):
        return cut_to_range(low, high, (metric_bounds[0], metric_bounds[1]))
    scale = (1.0 if check.higher_is_better else -1.0) * (1.0 if check.operator.startswith("min") else -1.0)
    if "relative" in check.operator:
        if not check.baseline_value:
            return low, high
        scale /= abs(check.baseline_value)
    cut_low, cut_high = cut_to_range(
        min(low / scale, high / scale),
        max(low / scale, high / scale),
        (metric_bounds[0], metric_bounds[1]),
        baseline=check.baseline_value,
    )
    return min(cut_low * scale, cut_high * scale), max(cut_low * scale, cut_high * scale)


def _raw_bounds(check: Check, row: dict, baseline_row: dict | None, alpha: float) -> tuple[float | None, float | None]:
    """One-sided ``1 - alpha`` bounds of ``observed`` from the row's declared statistics (None: none given)."""
    if check.operator in ("min", "max"):
        return _value_bounds(row, alpha)
    if "relative" in check.operator:
        return _relative_bounds(check, row, baseline_row, alpha)
    low, high = _delta_bounds(row, alpha)
    if low is None:
        return None, None
    gain_low, gain_high = (low, high) if check.higher_is_better else (-high, -low)
    return (gain_low, gain_high) if check.operator == "min_gain" else (-gain_high, -gain_low)


def _value_bounds(row: dict, alpha: float) -> tuple[float | None, float | None]:
    """Wilson bounds for an independent 0/1 proportion, else value -+ q * stderr (t or normal)."""
    counts = row.get("value_counts")
    if isinstance(counts, list) and len(counts) == 2 and counts[1]:
        return proportion_bounds(int(counts[0]), int(counts[1]), alpha=alpha)
    return _normal_bounds(_float(row.get("value")), _float(row.get("value_stderr")), row.get("value_df"), alpha)


def _delta_bounds(row: dict, alpha: float) -> tuple[float | None, float | None]:
    """Bounds of ``value - baseline``: Newcombe's paired score bounds from the 2x2 table, else delta -+ q * stderr."""
    counts = row.get("paired_counts")
    if isinstance(counts, list) and len(counts) == 4 and sum(counts) > 0:
        return paired_proportion_bounds(*(int(c) for c in counts), alpha=alpha)
    return _normal_bounds(_float(row.get("delta")), _float(row.get("delta_stderr")), row.get("delta_df"), alpha)


def _normal_bounds(
    estimate: float | None, stderr: float | None, df: Any, alpha: float
) -> tuple[float | None, float | None]:
    if estimate is None or stderr is None:
        return None, None
    low, high = one_sided_bounds(estimate, stderr, alpha=alpha, df=df if isinstance(df, int) and df >= 1 else None)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else (None, None)


def _relative_bounds(
    check: Check, row: dict, baseline_row: dict | None, alpha: float
) -> tuple[float | None, float | None]:
    """Bounds of the relative gain or drop, from the paired quantity ``s*B - (s + g*sign(A))*A``.

    A relative gain of at least g means ``s*(B - A) - g*|A| >= 0`` (s = +1 when higher is better, -1
    otherwise); its standard error comes from the delta method with Cov(A, B) recovered from the
    three standard errors the comparison gives (Var(B - A) = Var A + Var B - 2 Cov). Its bounds,
    divided by |A| and shifted by g, are bounds of the relative gain (A held at its estimate).
    """
    a, b = check.baseline_value, check.value
    if not a:
        return None, None
    se_b = _float(row.get("value_stderr"))
    se_a = _float((baseline_row or {}).get("value_stderr"))
    se_d = _float(row.get("delta_stderr"))
    if None in (se_a, se_b, se_d):
        return None, None
    s = 1.0 if check.higher_is_better else -1.0
    g = check.threshold if check.operator == "min_relative_gain" else -check.threshold
    c = s + g * math.copysign(1.0, a)
    covariance = (se_a**2 + se_b**2 - se_d**2) / 2
    variance = se_b**2 + c**2 * se_a**2 - 2 * s * c * covariance
    low, high = _normal_bounds(s * b - c * a, math.sqrt(max(variance, 0.0)), None, alpha)
    if low is None:
        return None, None
    gain_low, gain_high = low / abs(a) + g, high / abs(a) + g
    return (gain_low, gain_high) if check.operator == "min_relative_gain" else (-gain_high, -gain_low)


def _note_mde(check: Check, row: dict) -> None:
    """Record the MDE in the threshold's units; the bounds already decide, so it never changes the status."""
    mde = _float(row.get("mde"))
    if mde is None or check.operator in ("min", "max"):
        return
    if "relative" in check.operator:
        if not check.baseline_value:
            return
        mde = mde / abs(check.baseline_value)
    check.mde = mde


def _check_power(check: Check, row: dict) -> None:
    """A point-compared pass that noise of the size of the minimum detectable effect could overturn decides
    little: its threshold is below the MDE and the estimate lies within one MDE of it. A decisive pass (far
    from its threshold) is not flagged; a fail needs no power argument."""
    _note_mde(check, row)
    if check.mde is None or check.status == "fail" or check.operator in ("min", "max"):
        return
    relative = "relative" in check.operator
    if check.threshold < check.mde and abs(check.observed - check.threshold) < check.mde:
        check.underpowered = True
        check.message += (
            f"; underpowered: with {row.get('n_paired')} paired samples a change of "
            f"{_fmt_amount(check.mde, relative)} is detected with probability 0.8 "
            f"(threshold {_fmt_amount(check.threshold, relative)})"
        )


def _relative_gain(check: Check) -> float:
    """(value - baseline) / |baseline|, oriented so positive = better; +-inf from a zero baseline."""
    diff = check.value - check.baseline_value
    if check.baseline_value == 0:
        raw = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        raw = diff / abs(check.baseline_value)
    return raw if check.higher_is_better else -raw


def _apply_severity(check: Check) -> Check:
    if check.status in ("fail", "inconclusive") and check.severity == "warn":
        check.message += f" [{check.status}; severity: warn]"
        check.status = "warn"
    return check


def _change_text(gain: float, higher_is_better: bool, relative: bool) -> str:
    amount = _fmt_amount(abs(gain), relative)
    if higher_is_better:
        return f"{'gained' if gain >= 0 else 'dropped'} {amount}"
    return f"{'fell' if gain >= 0 else 'rose'} {amount} (lower is better)"


def _fmt_amount(amount: float, relative: bool, signed: bool = False) -> str:
    if math.isinf(amount):
        return "infinitely (baseline value 0)" if relative else "inf"
    sign = "+" if signed else ""
    return f"{amount:{sign}.1%}" if relative else f"{amount:{sign}.3f}"


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
