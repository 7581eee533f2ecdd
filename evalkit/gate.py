"""Release gates: a policy (YAML) + a ``comparison.json`` -> a :class:`Verdict` (JUnit, Markdown, JSON).

A policy lists gates on metrics named ``TASK.METRIC`` (``mmlu.acc``) or, for breakdown rows,
``TASK.KIND/KEY/METRIC`` (``mmlu.subject/anatomy/acc``)::

    baseline: base                    # optional; must equal the comparison's baseline
    gates:
      - metric: mmlu.acc
        max_drop: 0.02                # may lose at most 0.02 absolute ...
        significance: 0.05            # ... a larger drop fails only if significant, else warns

Each gate has exactly one operator (``min_gain``, ``max_drop``, ``min_relative_gain``,
``max_relative_drop``, ``min``, ``max``) and applies to every non-baseline checkpoint unless
``checkpoints: [labels]`` narrows it. "Gain" and "drop" follow the metric's direction: for a
lower-is-better metric (``higher_is_better: false`` in the comparison row, e.g. an invalid rate) a
rise is a drop. ``min``/``max`` are plain bounds on the value. Missing or undefined values fail
(a gate that cannot be checked must not pass silently). See ``docs/gating.md``.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import load_comparison
from .compare._common import LOWER_IS_BETTER_FRAGMENTS
from .errors import UsageError, did_you_mean

__all__ = [
    "Gate",
    "Policy",
    "Check",
    "Verdict",
    "OPERATORS",
    "load_policy",
    "parse_policy",
    "evaluate_policy",
    "verdict_markdown",
    "write_junit",
    "write_gate_outputs",
    "load_comparison",
    "gate_main",
    "demo_policy_text",
    "attach_verdict",
    "junit_xml",
    "verdict_text",
]

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
_POLICY_KEYS = ("baseline", "gates")
_SEVERITIES = ("error", "warn")
_STATUS_ORDER = {"pass": 0, "warn": 1, "fail": 2}
# Used only when neither the row nor the task's metric row says which direction is better; the same
# fragments as evalkit.compare uses (not imported: that module pulls in numpy).


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
    """A validated policy file."""

    gates: tuple[Gate, ...]
    baseline: str | None = None
    source: str = "<policy>"

    def task_names(self) -> set[str]:
        """Tasks the gates refer to (the part of each metric name before the first dot)."""
        return {gate.metric.split(".", 1)[0] for gate in self.gates}


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file; raise :class:`UsageError` naming the file and gate.

    Only the file's structure is checked here, so a bad policy fails before any evaluation starts;
    metric names and checkpoint labels are checked against the comparison by :func:`evaluate_policy`.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: policy file not found.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the policy file ({exc}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise UsageError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', None) or exc}).") from None
    return parse_policy(data, source=str(path))


def parse_policy(data: Any, source: str = "<policy>") -> Policy:
    """Validate an already-parsed policy mapping (see :func:`load_policy`)."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a policy must be a YAML mapping with a 'gates' list, e.g. "
                         "gates: [{metric: mmlu.acc, max_drop: 0.02}].")
    unknown = sorted(str(k) for k in data if k not in _POLICY_KEYS)
    if unknown:
        raise UsageError(f"{source}: unknown key {unknown[0]!r}; allowed keys: {', '.join(_POLICY_KEYS)}.")
    baseline = data.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise UsageError(f"{source}: 'baseline' must be a checkpoint label (a string), got {baseline!r}.")
    gates = data.get("gates")
    if not isinstance(gates, list) or not gates:
        raise UsageError(f"{source}: 'gates' must be a non-empty list of gates, got {gates!r}.")
    parsed = tuple(_parse_gate(item, index, source) for index, item in enumerate(gates, start=1))
    return Policy(gates=parsed, baseline=baseline, source=source)


def _parse_gate(item: Any, index: int, source: str) -> Gate:
    where = f"{source}: gate {index}"
    if not isinstance(item, dict):
        raise UsageError(f"{where}: a gate must be a mapping like {{metric: mmlu.acc, max_drop: 0.02}}, got {item!r}.")
    unknown = sorted(str(k) for k in item if k not in _GATE_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r};{did_you_mean(unknown[0], _GATE_KEYS)}")
    metric = item.get("metric")
    if not isinstance(metric, str) or "." not in metric.strip(".") or metric != metric.strip():
        raise UsageError(f"{where}: 'metric' must be named TASK.METRIC or TASK.KIND/KEY/METRIC "
                         f"(e.g. mmlu.acc, mmlu.subject/anatomy/acc), got {metric!r}.")
    operator = _gate_operator(item, where)
    threshold = _number(item[operator], f"{where}: '{operator}'")
    if operator in _DROP_OPERATORS and threshold < 0:
        raise UsageError(f"{where}: '{operator}' must be >= 0 (an allowed loss), got {threshold}; "
                         "to require an improvement use min_gain or min_relative_gain.")
    return Gate(index=index, metric=metric, operator=operator, threshold=threshold,
                significance=_significance(item, operator, where), severity=_severity(item, where),
                checkpoints=_checkpoint_labels(item, where), higher_is_better=_direction(item, where),
                name=_gate_name(item, where))


def _gate_operator(item: dict, where: str) -> str:
    present = [op for op in OPERATORS if op in item]
    if not present:
        raise UsageError(f"{where} ({item.get('metric')}): no operator; give exactly one of "
                         f"{', '.join(OPERATORS)}.")
    if len(present) > 1:
        raise UsageError(f"{where} ({item.get('metric')}): several operators ({', '.join(present)}); "
                         "give exactly one per gate and split the others into their own gates.")
    return present[0]


_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number(value: Any, what: str) -> float:
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        value = float(value)   # YAML 1.1 reads 2e-2 (no dot) as a string
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        hint = " (write fractions, e.g. 0.05 for 5%)" if isinstance(value, str) and value.strip().endswith("%") else ""
        raise UsageError(f"{what} must be a finite number, got {value!r}{hint}.")
    return float(value)


def _significance(item: dict, operator: str, where: str) -> float | None:
    if "significance" not in item:
        return None
    if operator not in _DROP_OPERATORS:
        raise UsageError(f"{where}: 'significance' applies only to {' and '.join(_DROP_OPERATORS)} "
                         f"(a drop beyond the threshold fails only if significant), not to '{operator}'.")
    value = _number(item["significance"], f"{where}: 'significance'")
    if not 0 < value < 1:
        raise UsageError(f"{where}: 'significance' must be between 0 and 1 (exclusive), e.g. 0.05, got {value}.")
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
        raise UsageError(f"{where}: 'checkpoints' must be a non-empty list of checkpoint labels, "
                         f"e.g. [tuned], got {labels!r}.")
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

    def to_dict(self) -> dict[str, Any]:
        return {key: _json_number(value) for key, value in self.__dict__.items()}


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
    checks = []
    for gate in policy.gates:
        rows = _rows_for(gate, index, policy.source)
        for label in _target_checkpoints(gate, labels, baseline, policy.source):
            checks.append(_check(gate, rows.get(label), label, _higher_is_better(gate, rows, comparison)))
    status = max((c.status for c in checks), key=_STATUS_ORDER.__getitem__, default="pass")
    return Verdict(status=status, policy=policy.source, baseline=str(baseline), checks=checks)


def _metric_index(comparison: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """Gate name -> checkpoint label -> row, for metric rows and breakdown rows."""
    index: dict[str, dict[str, dict]] = {}
    for section, fields in (("metrics", ("task", "metric", "checkpoint")),
                            ("breakdowns", ("task", "kind", "key", "metric", "checkpoint"))):
        for number, row in enumerate(comparison.get(section) or [], start=1):
            missing = [key for key in fields if not isinstance(row, dict) or key not in row]
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
    """The gate's override, else the rows' flag, else the task metric's flag, else the name's usual sense."""
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
    return not any(fragment in str(some_row["metric"]) for fragment in LOWER_IS_BETTER_FRAGMENTS)


# Thresholds are inclusive; the slack keeps 0.60 - 0.55 (= 0.04999...) from failing "min_gain: 0.05".
_EPSILON = 1e-9


def _check(gate: Gate, row: dict | None, label: str, higher_is_better: bool) -> Check:
    check = Check(gate=gate.description, metric=gate.metric, checkpoint=label, status="fail",
                  severity=gate.severity, operator=gate.operator, threshold=gate.threshold, message="",
                  significance=gate.significance, higher_is_better=higher_is_better, gate_index=gate.index)
    if row is None:
        check.message = f"no {gate.metric} row for checkpoint {label!r} in the comparison"
        return _apply_severity(check)
    check.value, check.baseline_value = _float(row.get("value")), _float(row.get("baseline_value"))
    check.p_value = _float(row.get("p_value"))
    check.delta = _float(row.get("delta"))
    if check.delta is None and None not in (check.value, check.baseline_value):
        check.delta = check.value - check.baseline_value
    if gate.operator in ("min", "max"):
        _check_bound(check)
    else:
        _check_comparative(check)
    return _apply_severity(check)


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
    """A drop beyond the threshold: fail, unless a significance level is set and it is not significant."""
    if check.significance is None:
        return "fail"
    if check.p_value is None:
        check.message += ", no p-value available (treated as significant)"
        return "fail"
    if check.p_value < check.significance:
        check.message += f", significant (p={check.p_value:.3g} < {check.significance:g})"
        return "fail"
    check.message += f", not significant (p={check.p_value:.3g} >= {check.significance:g})"
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


# --------------------------------------------------------------------------------------- outputs

_STATUS_MARK = {"pass": "✅", "warn": "⚠️", "fail": "❌"}


def _summary_line(verdict: Verdict) -> str:
    counts = verdict.counts()
    return (f"{len(verdict.checks)} checks: {counts['pass']} passed, {counts['warn']} warning"
            f"{'' if counts['warn'] == 1 else 's'}, {counts['fail']} failed")


def _md_cell(text: Any) -> str:
    """Untrusted text in a Markdown table cell: no pipes, newlines or HTML tags.

    ``<`` is backslash-escaped (CommonMark), which keeps "p <= 0.05" readable on a console too.
    """
    text = " ".join(str(text).split())
    for char in ("\\", "|", "<", "`"):
        text = text.replace(char, "\\" + char)
    return text


def _md_code(text: Any) -> str:
    """Untrusted text as a code span: literal inside, so only backticks need replacing."""
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def _md_number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def verdict_markdown(verdict: Verdict) -> str:
    """The verdict as a Markdown section (GitHub step summary, report.md, console)."""
    lines = [
        f"### evalkit gate: {_STATUS_MARK[verdict.status]} {verdict.status.upper()}",
        "",
        f"Policy {_md_code(verdict.policy)}, baseline {_md_code(verdict.baseline)}: {_summary_line(verdict)}.",
        "",
        "| | Checkpoint | Gate | Value | Baseline | Delta | p | Result |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for c in verdict.checks:
        p_value = "–" if c.p_value is None else f"{c.p_value:.3g}"
        lines.append(f"| {_STATUS_MARK[c.status]} | {_md_cell(c.checkpoint)} | {_md_cell(c.gate)} | "
                     f"{_md_number(c.value)} | {_md_number(c.baseline_value)} | {_md_number(c.delta, True)} | "
                     f"{p_value} | {_md_cell(c.message)} |")
    return "\n".join(lines) + "\n"


def verdict_text(verdict: Verdict) -> str:
    """A short plain-text verdict for the console: failures and warnings first, one line each."""
    ordered = sorted(verdict.checks, key=lambda c: -_STATUS_ORDER[c.status])
    lines = [f"{c.status.upper():<4}  {c.checkpoint}  {c.gate}: {c.message}" for c in ordered]
    lines.append(f"gate: {verdict.status.upper()} ({_summary_line(verdict)})")
    return "\n".join(lines)


# XML 1.0 forbids most control characters, and ElementTree does not escape them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: Any) -> str:
    return _XML_INVALID.sub("\N{REPLACEMENT CHARACTER}", str(value))


def _check_details(check: Check) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.6g}"

    return (f"{check.checkpoint}: {check.gate}: {check.status.upper()}: {check.message}\n"
            f"value={number(check.value)} baseline={number(check.baseline_value)} delta={number(check.delta)} "
            f"observed={number(check.observed)} threshold={number(check.threshold)} p_value={number(check.p_value)}")


def junit_xml(verdict: Verdict) -> bytes:
    """The verdict as JUnit XML: one ``<testsuite>`` per checkpoint, one ``<testcase>`` per gate.

    Failed checks carry ``<failure message=... type="evalkit.gate">``; warnings are passing test
    cases whose ``<system-out>`` starts with ``WARNING:`` (they do not fail the build, and
    "skipped" would claim the check did not run). Every case has its numbers in ``<system-out>``.
    """
    import xml.etree.ElementTree as ET

    counts = verdict.counts()
    root = ET.Element("testsuites", name="evalkit gate", tests=str(len(verdict.checks)),
                      failures=str(counts["fail"]), errors="0", skipped="0", time="0")
    for label in dict.fromkeys(c.checkpoint for c in verdict.checks):
        checks = [c for c in verdict.checks if c.checkpoint == label]
        suite = ET.SubElement(root, "testsuite", name=_xml_text(f"evalkit.gate.{label}"), tests=str(len(checks)),
                              failures=str(sum(c.status == "fail" for c in checks)), errors="0", skipped="0",
                              time="0")
        properties = ET.SubElement(suite, "properties")
        for name, value in (("policy", verdict.policy), ("baseline", verdict.baseline), ("status", verdict.status)):
            ET.SubElement(properties, "property", name=name, value=_xml_text(value))
        for check in checks:
            _junit_case(suite, check)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _junit_case(suite, check: Check) -> None:
    import xml.etree.ElementTree as ET

    case = ET.SubElement(suite, "testcase", classname=_xml_text(f"evalkit.gate.{check.checkpoint}"),
                         name=_xml_text(check.gate), time="0")
    details = _xml_text(_check_details(check))
    if check.status == "fail":
        failure = ET.SubElement(case, "failure", message=_xml_text(f"{check.message}"), type="evalkit.gate")
        failure.text = details
    prefix = "WARNING: " if check.status == "warn" else ""
    ET.SubElement(case, "system-out").text = prefix + details


def write_junit(verdict: Verdict, path: str | Path) -> Path:
    """Write :func:`junit_xml` atomically to ``path``; return the path."""
    from ._io import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, junit_xml(verdict))
    return path


def write_gate_outputs(verdict: Verdict, out_dir: str | Path) -> list[Path]:
    """Write ``junit.xml`` and ``verdict.json`` into ``out_dir``; append to ``$GITHUB_STEP_SUMMARY``.

    Returns the paths written (the step summary is not included: it belongs to the CI runner).
    """
    from ._io import atomic_write_text, dump_json

    out_dir = Path(out_dir)
    junit = write_junit(verdict, out_dir / "junit.xml")
    verdict_path = out_dir / "verdict.json"
    atomic_write_text(verdict_path, dump_json(verdict.to_dict()))
    _append_step_summary(verdict)
    return [junit, verdict_path]


def _append_step_summary(verdict: Verdict) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return
    try:
        with open(summary, "a", encoding="utf-8") as handle:  # appended: other steps write there too
            handle.write("\n" + verdict_markdown(verdict))
    except OSError as exc:  # a summary we cannot write must not change the gate's outcome
        print(f"evalkit: warning: cannot append to GITHUB_STEP_SUMMARY ({summary}): {exc}", file=sys.stderr)


# ------------------------------------------------------------------------------------ the command


def gate_main(comparison_path: str | Path, policy_path: str | Path, out_dir: str | Path | None = None) -> int:
    """The ``evalkit gate`` command: load, evaluate, write outputs, print the verdict; return the exit code.

    Outputs go to ``out_dir`` (default: the comparison's folder). Raises :class:`UsageError` on bad
    input, which the CLI turns into exit code 2.
    """
    policy = load_policy(policy_path)
    comparison = load_comparison(comparison_path)
    verdict = evaluate_policy(policy, comparison)
    written = write_gate_outputs(verdict, Path(out_dir) if out_dir is not None else Path(comparison_path).parent)
    print(verdict_text(verdict))
    for path in written:
        print(f"wrote {path}")
    return verdict.exit_code


def attach_verdict(comparison: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """A copy of ``comparison`` with ``verdict`` embedded (what the report renders)."""
    return {**comparison, "verdict": verdict.to_dict()}


def demo_policy_text(domain_task: str, general_task: str, *, domain_metric: str = "acc",
                     general_metric: str = "acc", baseline: str = "base", min_domain_gain: float = 0.2,
                     max_general_drop: float = 0.05, significance: float = 0.05) -> str:
    """Policy YAML for the demo: the tuned checkpoints must learn the domain without forgetting.

    With the demo's numbers a domain-only checkpoint fails the general gate (its accuracy falls
    far and significantly) while the mixed checkpoint passes both.

    Examples
    --------
    >>> text = demo_policy_text("demo_domain", "demo_general")
    >>> parse_policy(__import__("yaml").safe_load(text)).gates[1].metric
    'demo_general.acc'
    """
    return (
        f"# Demo release policy: learn the domain, keep general knowledge.\n"
        f"baseline: {baseline}\n"
        f"gates:\n"
        f"  - metric: {domain_task}.{domain_metric}\n"
        f"    min_gain: {min_domain_gain:g}        # the fine-tune must actually teach the domain\n"
        f"  - metric: {general_task}.{general_metric}\n"
        f"    max_drop: {max_general_drop:g}       # forgetting beyond this fails ...\n"
        f"    significance: {significance:g}   # ... when significant; otherwise it only warns\n"
    )
