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

from ._evaluate import Check, Verdict, check_row, evaluate_policy
from ._outputs import (
    GATE_OUTPUTS,
    checkpoint_statuses,
    demo_policy_text,
    gate_files,
    junit_xml,
    load_comparison,
    verdict_markdown,
    write_gate_outputs,
    write_junit,
)
from ._verdict import verdict_text
from .policy import OPERATORS, Gate, Policy, as_policy, check_policy_baseline, load_policy, parse_policy

__all__ = [
    "Gate",
    "Policy",
    "Check",
    "Verdict",
    "OPERATORS",
    "load_policy",
    "parse_policy",
    "as_policy",
    "check_policy_baseline",
    "evaluate_policy",
    "check_row",
    "verdict_markdown",
    "write_junit",
    "write_gate_outputs",
    "load_comparison",
    "gate_files",
    "demo_policy_text",
    "checkpoint_statuses",
    "junit_xml",
    "verdict_text",
    "GATE_OUTPUTS",
]
