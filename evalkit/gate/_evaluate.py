"""A policy applied to a comparison -> :class:`Verdict` of one :class:`Check` per gate and checkpoint.

Multiplicity: for one checkpoint, the drop gates of a policy that carry a ``significance`` level are
one family of tests. Their p-values (for a breakdown row, its Holm-adjusted p-value within the
breakdown family) are Holm-adjusted together, and each gate compares the adjusted p-value with its
level (Holm's procedure at that level when the levels are equal): a policy of twenty gates at 0.05
fails a checkpoint that is as good as the baseline with probability at most 0.05, not about 0.64.

Power: a comparative gate whose threshold is below the row's minimum detectable effect (``mde``:
the smallest true change a test at the comparison's level detects with power 0.8) is marked
``underpowered``: its pass means little, because drops of its size are not detectable here. A gate that
fails has detected its violation, so power does not qualify it (its ``mde`` is still recorded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import UsageError, did_you_mean

from ._policy import _COMPARATIVE, _STATUS_ORDER, Gate, Policy
# ------------------------------------------------------------------------------------ evaluation


@dataclass
class Check:
    """The outcome of one gate on one checkpoint (a row of ``verdict["checks"]``).

    ``observed`` is the quantity compared with ``threshold``: the value (``min``/``max``), the gain
    (``min_gain``), the drop (``max_drop``) or their relative forms, oriented so that a gain is
    always an improvement, whatever the metric's direction.
    """

    gate: str
    metric: str
    checkpoint: str
    status: str
    severity: str
    operator: str
    threshold: float
    message: str
    value: float | None = None
    baseline_value: float | None = None
    delta: float | None = None
    p_value: float | None = None
    observed: float | None = None
    significance: float | None = None
    higher_is_better: bool = True
    gate_index: int = 0
    p_value_adjusted: float | None = None  # Holm over the policy's significance gates for this checkpoint
    mde: float | None = None  # minimum detectable effect, in the threshold's units
    underpowered: bool = False
    #: ``compare --sequential``: samples used, the confidence sequence's bounds at the stop, its alpha.
    sequential: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: _json_number(value) for key, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Check":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class Verdict:
    """All checks of a policy on a comparison; ``status`` is the worst check status."""

    status: str
    policy: str
    baseline: str
    checks: list[Check] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every gate passed (warnings allowed), 1 when one failed."""
        return 1 if self.status == "fail" else 0

    def counts(self) -> dict[str, int]:
        return {status: sum(c.status == status for c in self.checks) for status in _STATUS_ORDER}

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "policy": self.policy, "baseline": self.baseline,
                "checks": [check.to_dict() for check in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        """Read :meth:`to_dict` output (``verdict.json``, a comparison's ``verdict``)."""
        try:
            return cls(status=data["status"], policy=data["policy"], baseline=data["baseline"],
                       checks=[Check.from_dict(check) for check in data.get("checks", [])])
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"not an evalkit verdict ({type(exc).__name__}: {exc}); write it with Comparison.gate "
                             f"or `evalkit gate`.") from None

    def _repr_html_(self) -> str:
        """Jupyter's view: the report's verdict section."""
        from ..integrations.notebook import verdict_html

        return verdict_html(self)

    @property
    def passed(self) -> bool:
        """True when no gate failed (warnings allowed)."""
        return self.status != "fail"

    @property
    def failures(self) -> list[Check]:
        """The failed checks, in policy order."""
        return [check for check in self.checks if check.status == "fail"]

def evaluate_policy(policy: Policy, comparison: dict[str, Any]) -> Verdict:
    """Apply every gate of ``policy`` to every checkpoint it targets in ``comparison``.

    Raises :class:`UsageError` when the policy does not fit the comparison (baseline mismatch,
    unknown metric or checkpoint label). A metric row that is missing for a targeted checkpoint, or
    whose value is undefined, is a failed check rather than an error: the gate could not be shown
    to hold.
    """
    baseline = comparison.get("baseline")
    if policy.baseline is not None and policy.baseline != baseline:
        raise UsageError(f"{policy.source}: 'baseline' is {policy.baseline!r} but the comparison's baseline is "
                         f"{baseline!r}; compare against {policy.baseline!r} (--baseline) or fix the policy.")
    labels = [str(c.get("label")) for c in comparison.get("checkpoints", [])]
    index = _metric_index(comparison)
    targets = [(gate, _rows_for(gate, index, policy.source)) for gate in policy.gates]
    pairs = [(gate, rows, label) for gate, rows in targets
             for label in _target_checkpoints(gate, labels, baseline, policy.source)]
    adjusted = _policy_family_adjusted(pairs)
    checks = [_check(gate, rows.get(label), label, _higher_is_better(gate, rows, comparison),
                     adjusted.get((gate.index, label))) for gate, rows, label in pairs]
    status = max((c.status for c in checks), key=_STATUS_ORDER.__getitem__, default="pass")
    verdict = Verdict(status=status, policy=policy.source, baseline=str(baseline), checks=checks)
    if comparison.get("sequential"):  # tasks stopped early are decided by their confidence sequences
        from ..sequential._verdict import apply_sequential_verdict

        apply_sequential_verdict(verdict, comparison)
    return verdict


def _row_p_value(row: dict | None) -> float | None:
    """A row's p-value for decisions: Holm-adjusted within its breakdown family when it has one."""
    if row is None:
        return None
    adjusted = _float(row.get("p_value_adjusted"))
    return adjusted if adjusted is not None else _float(row.get("p_value"))


def _policy_family_adjusted(pairs: list[tuple[Gate, dict, str]]) -> dict[tuple[int, str], float]:
    """Holm-adjusted p-values of the significance gates, one family per checkpoint (module docstring)."""
    from ..metrics.stats import holm_adjust

    families: dict[str, list[tuple[int, float]]] = {}
    for gate, rows, label in pairs:
        p_value = _row_p_value(rows.get(label))
        if gate.significance is not None and p_value is not None:
            families.setdefault(label, []).append((gate.index, p_value))
    adjusted = {}
    for label, members in families.items():
        for (index, _), value in zip(members, holm_adjust([p for _, p in members])):
            adjusted[(index, label)] = float(value)
    return adjusted


def _metric_index(comparison: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """Gate name -> checkpoint label -> row, for metric rows and breakdown rows."""
    index: dict[str, dict[str, dict]] = {}
    for section, required in (("metrics", ("task", "metric", "checkpoint")),
                            ("breakdowns", ("task", "kind", "key", "metric", "checkpoint"))):
        for number, row in enumerate(comparison.get(section) or [], start=1):
            missing = [key for key in required if not isinstance(row, dict) or key not in row]
            if missing:
                raise UsageError(f"comparison: {section} row {number} lacks {', '.join(missing)}; "
                                 "is it a comparison.json written by `evalkit compare`?")
            name = (f"{row['task']}.{row['metric']}" if section == "metrics"
                    else f"{row['task']}.{row['kind']}/{row['key']}/{row['metric']}")
            index.setdefault(name, {})[str(row["checkpoint"])] = row
    return index


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
    raise UsageError(f"{source}: gate {gate.index}: unknown metric {gate.metric!r} in the comparison."
                     f"{did_you_mean(gate.metric, choices or list(index))}{hint}")


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
            raise UsageError(f"{where}: '{gate.operator}' compares with the baseline, so it cannot apply to the "
                             f"baseline {label!r} itself; use min or max to bound the baseline's value.")
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


def _check(gate: Gate, row: dict | None, label: str, higher_is_better: bool, p_adjusted: float | None) -> Check:
    check = Check(gate=gate.description, metric=gate.metric, checkpoint=label, status="fail",
                  severity=gate.severity, operator=gate.operator, threshold=gate.threshold, message="",
                  significance=gate.significance, higher_is_better=higher_is_better, gate_index=gate.index)
    if row is None:
        check.message = f"no {gate.metric} row for checkpoint {label!r} in the comparison"
        return _apply_severity(check)
    check.value, check.baseline_value = _float(row.get("value")), _float(row.get("baseline_value"))
    check.p_value = _float(row.get("p_value"))
    check.p_value_adjusted = p_adjusted if p_adjusted is not None else _row_p_value(row)
    check.delta = _float(row.get("delta"))
    if check.delta is None and None not in (check.value, check.baseline_value):
        check.delta = check.value - check.baseline_value
    if gate.operator in ("min", "max"):
        _check_bound(check)
    else:
        _check_comparative(check)
        _check_power(check, row)
    return _apply_severity(check)


def _check_power(check: Check, row: dict) -> None:
    """Mark a comparative gate whose threshold is below the minimum detectable effect (module docstring)."""
    mde = _float(row.get("mde"))
    if mde is None:
        return
    relative = "relative" in check.operator
    if relative:
        if not check.baseline_value:
            return
        mde = mde / abs(check.baseline_value)
    check.mde = mde
    if check.status == "fail":  # a violation that was detected needs no power argument
        return
    if check.threshold >= mde:
        check.message += f"; MDE {_fmt_amount(mde, relative)}"
    else:
        check.underpowered = True
        n = row.get("n_paired")
        check.message += (f"; underpowered: with {n} paired samples a change under {_fmt_amount(mde, relative)} "
                          f"cannot be detected (threshold {_fmt_amount(check.threshold, relative)})")


def _check_bound(check: Check) -> None:
    if check.value is None:
        check.message = "value undefined"
        return
    check.observed = check.value
    is_min = check.operator == "min"
    ok = check.value >= check.threshold - _EPSILON if is_min else check.value <= check.threshold + _EPSILON
    sign = (">=" if is_min else "<=") if ok else ("<" if is_min else ">")
    check.status = "pass" if ok else "fail"
    check.message = f"value {check.value:.3f} {sign} {check.operator} {check.threshold:g}"


def _check_comparative(check: Check) -> None:
    if check.value is None or check.baseline_value is None:
        check.message = "value or baseline value undefined"
        return
    relative = "relative" in check.operator
    gain = _relative_gain(check) if relative else (check.delta if check.higher_is_better else -check.delta)
    is_gain = check.operator.startswith("min")
    check.observed = gain if is_gain else -gain
    ok = gain >= check.threshold - _EPSILON if is_gain else -gain <= check.threshold + _EPSILON
    limit = _fmt_amount(check.threshold, relative)
    change = _change_text(gain, check.higher_is_better, relative)
    if is_gain:
        check.message = f"{change}; {'meets' if ok else 'below'} the required gain of {limit}"
    else:
        check.message = f"{change} ({'<=' if ok else '>'} {limit} allowed)"
    check.status = "pass" if ok else _drop_violation(check)


def _relative_gain(check: Check) -> float:
    """(value - baseline) / |baseline|, oriented so positive = better; +-inf from a zero baseline."""
    diff = check.value - check.baseline_value
    if check.baseline_value == 0:
        raw = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        raw = diff / abs(check.baseline_value)
    return raw if check.higher_is_better else -raw


def _drop_violation(check: Check) -> str:
    """A drop beyond the threshold: fail, unless a significance level is set and it is not significant
    (judged on the Holm-adjusted p-value of the policy's family)."""
    if check.significance is None:
        return "fail"
    p_value = check.p_value_adjusted if check.p_value_adjusted is not None else check.p_value
    if p_value is None:
        check.message += ", no p-value available (treated as significant)"
        return "fail"
    name = "adjusted p" if check.p_value_adjusted is not None and check.p_value_adjusted != check.p_value else "p"
    if p_value < check.significance:
        check.message += f", significant ({name}={p_value:.3g} < {check.significance:g})"
        return "fail"
    check.message += f", not significant ({name}={p_value:.3g} >= {check.significance:g})"
    return "warn"


def _apply_severity(check: Check) -> Check:
    if check.status == "fail" and check.severity == "warn":
        check.status = "warn"
        check.message += " [severity: warn]"
    return check


def _change_text(gain: float, higher_is_better: bool, relative: bool) -> str:
    amount = _fmt_amount(abs(gain), relative)
    if higher_is_better:
        return f"{'gained' if gain >= 0 else 'dropped'} {amount}"
    return f"{'fell' if gain >= 0 else 'rose'} {amount} (lower is better)"


def _fmt_amount(amount: float, relative: bool) -> str:
    if math.isinf(amount):
        return "infinitely (baseline value 0)" if relative else "inf"
    return f"{amount:.1%}" if relative else f"{amount:.3f}"


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _json_number(value: Any) -> Any:
    """JSON has no NaN or infinity: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


