"""Policy files: YAML -> validated :class:`Policy` of :class:`Gate` (errors name file, gate and key)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError, did_you_mean, arg

__all__ = ["OPERATORS", "ON_INCONCLUSIVE", "Gate", "Policy", "load_policy", "as_policy", "parse_policy"]

#: Operator -> what its threshold means (used in error messages and docs).
OPERATORS = {
    "min_gain": "must beat the baseline by at least this much (absolute)",
    "max_drop": "may fall behind the baseline by at most this much (absolute, >= 0)",
    "min_relative_gain": "must beat the baseline by at least this fraction of the baseline value",
    "max_relative_drop": "may fall behind the baseline by at most this fraction of the baseline value (>= 0)",
    "min": "the value must be at least this",
    "max": "the value must be at most this",
}
_COMPARATIVE = ("min_gain", "max_drop", "min_relative_gain", "max_relative_drop")
_DROP_OPERATORS = ("max_drop", "max_relative_drop")
_GATE_KEYS = ("metric", *OPERATORS, "significance", "severity", "checkpoints", "higher_is_better", "name")
_POLICY_KEYS = ("baseline", "gates", "significance", "on_inconclusive")
_SEVERITIES = ("error", "warn")
#: What an inconclusive check does to the exit code (``on_inconclusive``); the first is the default.
ON_INCONCLUSIVE = ("fail", "warn")
# --------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Gate:
    """One validated gate of a policy; ``index`` is its 1-based position in the file."""

    index: int
    metric: str
    operator: str
    threshold: float
    significance: float | None = None
    severity: str = "error"
    checkpoints: tuple[str, ...] | None = None
    higher_is_better: bool | None = None
    name: str | None = None

    @property
    def description(self) -> str:
        """Human name, e.g. ``"mmlu.acc max_drop 0.02 (significance 0.05)"``; JUnit test name."""
        if self.name:
            return self.name
        text = f"{self.metric} {self.operator} {_fmt_threshold(self.threshold)}"
        if self.significance is not None:
            text += f" (significance {_fmt_threshold(self.significance)})"
        return text + (" [warn]" if self.severity == "warn" else "")


@dataclass(frozen=True)
class Policy:
    """A validated policy file.

    ``significance`` is the policy-wide level (each gate without its own takes it); ``on_inconclusive``
    says whether a check whose bounds straddle its threshold fails the run (``"fail"``, the default) or
    only warns (``"warn"``).
    """

    gates: tuple[Gate, ...]
    baseline: str | None = None
    source: str = "<policy>"
    significance: float | None = None
    on_inconclusive: str = "fail"

    def task_names(self) -> set[str]:
        """Tasks the gates refer to (the part of each metric name before the first dot)."""
        return {gate.metric.split(".", 1)[0] for gate in self.gates}


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file; raise :class:`UsageError` naming the file and gate.

    Only the file's structure is checked here, so a bad policy fails before any evaluation starts;
    metric names and checkpoint labels are checked against the comparison by :func:`evaluate_policy`.
    """
    from .._io import load_yaml

    path = Path(path)
    return parse_policy(load_yaml(path, what="policy file"), source=str(path))


def as_policy(policy: Any) -> Policy:
    """A :class:`Policy` from a YAML file path, a policy mapping or a Policy (returned as it is)."""
    from collections.abc import Mapping

    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return parse_policy(dict(policy), source="<policy dict>")
    if isinstance(policy, (str, Path)):
        return load_policy(policy)
    raise UsageError(
        f"policy must be a YAML file path, a mapping or a Policy, got {type(policy).__name__}.", param="policy"
    )


def check_policy_baseline(policy: Policy, baseline: Any) -> None:
    """A UsageError unless ``policy`` names no baseline or names ``baseline`` (the comparison's)."""
    if policy.baseline is not None and policy.baseline != baseline:
        raise UsageError(
            f"{policy.source}: 'baseline' is {policy.baseline!r} but the comparison's baseline is "
            f"{baseline!r}; compare against {policy.baseline!r} ({arg('baseline')}) or fix the policy."
        )


def parse_policy(data: Any, source: str = "<policy>") -> Policy:
    """Validate an already-parsed policy mapping (see :func:`load_policy`)."""
    if not isinstance(data, dict):
        raise UsageError(
            f"{source}: a policy must be a YAML mapping with a 'gates' list, e.g. "
            "gates: [{metric: mmlu.acc, max_drop: 0.02}]."
        )
    unknown = sorted(str(k) for k in data if k not in _POLICY_KEYS)
    if unknown:
        raise UsageError(f"{source}: unknown key {unknown[0]!r}; allowed keys: {', '.join(_POLICY_KEYS)}.")
    baseline = data.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise UsageError(f"{source}: 'baseline' must be a checkpoint label (a string), got {baseline!r}.")
    gates = data.get("gates")
    if not isinstance(gates, list) or not gates:
        raise UsageError(f"{source}: 'gates' must be a non-empty list of gates, got {gates!r}.")
    level = _level(data, source) if "significance" in data else None
    on_inconclusive = data.get("on_inconclusive", ON_INCONCLUSIVE[0])
    if on_inconclusive not in ON_INCONCLUSIVE:
        raise UsageError(
            f"{source}: 'on_inconclusive' must be one of {', '.join(ON_INCONCLUSIVE)}, got {on_inconclusive!r}."
        )
    parsed = tuple(_parse_gate(item, index, source, level) for index, item in enumerate(gates, start=1))
    return Policy(gates=parsed, baseline=baseline, source=source, significance=level, on_inconclusive=on_inconclusive)


def _parse_gate(item: Any, index: int, source: str, default_level: float | None = None) -> Gate:
    where = f"{source}: gate {index}"
    if not isinstance(item, dict):
        raise UsageError(f"{where}: a gate must be a mapping like {{metric: mmlu.acc, max_drop: 0.02}}, got {item!r}.")
    unknown = sorted(str(k) for k in item if k not in _GATE_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r};{did_you_mean(unknown[0], _GATE_KEYS)}")
    metric = item.get("metric")
    if not isinstance(metric, str) or "." not in metric.strip(".") or metric != metric.strip():
        raise UsageError(
            f"{where}: 'metric' must be named TASK.METRIC or TASK.KIND/KEY/METRIC "
            f"(e.g. mmlu.acc, mmlu.subject/anatomy/acc), got {metric!r}."
        )
    operator = _gate_operator(item, where)
    threshold = _number(item[operator], f"{where}: '{operator}'")
    if operator in _DROP_OPERATORS and threshold < 0:
        raise UsageError(
            f"{where}: '{operator}' must be >= 0 (an allowed loss), got {threshold}; "
            "to require an improvement use min_gain or min_relative_gain."
        )
    return Gate(
        index=index,
        metric=metric,
        operator=operator,
        threshold=threshold,
        significance=_level(item, where) if "significance" in item else default_level,
        severity=_severity(item, where),
        checkpoints=_checkpoint_labels(item, where),
        higher_is_better=_direction(item, where),
        name=_gate_name(item, where),
    )


def _gate_operator(item: dict, where: str) -> str:
    present = [op for op in OPERATORS if op in item]
    if not present:
        raise UsageError(f"{where} ({item.get('metric')}): no operator; give exactly one of {', '.join(OPERATORS)}.")
    if len(present) > 1:
        raise UsageError(
            f"{where} ({item.get('metric')}): several operators ({', '.join(present)}); "
            "give exactly one per gate and split the others into their own gates."
        )
    return present[0]


_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number(value: Any, what: str) -> float:
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 2e-2 (no dot) as a string
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        hint = " (write fractions, e.g. 0.05 for 5%)" if isinstance(value, str) and value.strip().endswith("%") else ""
        raise UsageError(f"{what} must be a finite number, got {value!r}{hint}.")
    return float(value)


def _level(item: dict, where: str) -> float:
    """A gate's (or the policy's) ``significance``: the one-sided error level of each of its decisions."""
    value = _number(item["significance"], f"{where}: 'significance'")
    if not 0 < value < 0.5:
        raise UsageError(
            f"{where}: 'significance' must be between 0 and 0.5 (exclusive; it is a one-sided "
            f"error level), e.g. 0.05, got {value}."
        )
    return value


def _severity(item: dict, where: str) -> str:
    severity = item.get("severity", "error")
    if severity not in _SEVERITIES:
        raise UsageError(f"{where}: 'severity' must be one of {', '.join(_SEVERITIES)}, got {severity!r}.")
    return severity


def _checkpoint_labels(item: dict, where: str) -> tuple[str, ...] | None:
    if "checkpoints" not in item:
        return None
    labels = item["checkpoints"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise UsageError(
            f"{where}: 'checkpoints' must be a non-empty list of checkpoint labels, e.g. [tuned], got {labels!r}."
        )
    return tuple(dict.fromkeys(labels))


def _direction(item: dict, where: str) -> bool | None:
    value = item.get("higher_is_better")
    if value is not None and not isinstance(value, bool):
        raise UsageError(f"{where}: 'higher_is_better' must be true or false, got {value!r}.")
    return value


def _gate_name(item: dict, where: str) -> str | None:
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise UsageError(f"{where}: 'name' must be a non-empty string, got {name!r}.")
    return name.strip() if name else None


def _fmt_threshold(value: float) -> str:
    return f"{value:g}"
