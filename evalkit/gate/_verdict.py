"""What a gate decided: :class:`Check` (one gate on one checkpoint), :class:`Verdict` (all of a policy's) and
the verdict's console text, which ``str(verdict)`` is (plain text, no Markdown).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import math
from typing import Any

from ..comparison_format import STATUS_ORDER, checkpoint_statuses
from ..errors import UsageError, printable
from .policy import ON_INCONCLUSIVE


def _json_number(value: Any) -> Any:
    """JSON has no NaN or infinity: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    p_value_adjusted: float | None = None  # the row's own (within its breakdown family), for information
    mde: float | None = None  # minimum detectable effect, in the threshold's units
    underpowered: bool = False  # only for gates without a level: the point comparison decides little
    #: the one-sided 1 - alpha bounds of ``observed`` that decided the check (None without a level)
    bound_low: float | None = None
    bound_high: float | None = None
    #: the one-sided level each bound was computed at (the gate's significance; in a sequential run
    #: that reached the end, the share left for the final look)
    alpha: float | None = None
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
    on_inconclusive: str = ON_INCONCLUSIVE[0]

    @property
    def exit_code(self) -> int:
        """1 when a gate failed, or one was inconclusive and the policy says ``on_inconclusive: fail``; else 0."""
        blocking = ("fail", "inconclusive") if self.on_inconclusive == "fail" else ("fail",)
        return 1 if self.status in blocking else 0

    def counts(self) -> dict[str, int]:
        return {status: sum(c.status == status for c in self.checks) for status in STATUS_ORDER}

    def refresh_status(self) -> None:
        """Recompute ``status`` from the checks, after some were decided anew (a sequential run's early stops)."""
        self.status = worst_status(self.checks)

    def __str__(self) -> str:
        """The console text: failures and warnings first, one line each (:func:`~evalkit.gate.verdict_text`)."""
        return verdict_text(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "policy": self.policy,
            "baseline": self.baseline,
            "on_inconclusive": self.on_inconclusive,
            "checks": [check.to_dict() for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        """Read :meth:`to_dict` output (``verdict.json``, a comparison's ``verdict``)."""
        try:
            return cls(
                status=data["status"],
                policy=data["policy"],
                baseline=data["baseline"],
                checks=[Check.from_dict(check) for check in data.get("checks", [])],
                on_inconclusive=data.get("on_inconclusive", ON_INCONCLUSIVE[0]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"not an evalkit verdict ({type(exc).__name__}: {exc}); write it with Comparison.gate "
                f"or `evalkit gate`."
            ) from None

    def _repr_html_(self) -> str:
        """Jupyter's view: the report's verdict section."""
        from ..report.notebook import verdict_html

        return verdict_html(self)

    @property
    def passed(self) -> bool:
        """True when the exit code is 0: no gate failed, and none was inconclusive under ``on_inconclusive: fail``."""
        return self.exit_code == 0

    @property
    def failures(self) -> list[Check]:
        """The failed checks, in policy order."""
        return [check for check in self.checks if check.status == "fail"]

    @property
    def inconclusive(self) -> list[Check]:
        """The checks whose bounds straddle their threshold, in policy order."""
        return [check for check in self.checks if check.status == "inconclusive"]


def worst_status(checks: list[Check]) -> str:
    """The verdict's status: the worst of its checks' (pass < warn < inconclusive < fail)."""
    return max((c.status for c in checks), key=STATUS_ORDER.__getitem__, default="pass")


# ------------------------------------------------------------------------------------ console text


def is_warning(check: Check) -> bool:
    """What JUnit marks ``WARNING:`` and the console lists as a warning: a warn, or a pass that is underpowered."""
    return check.status == "warn" or (check.status == "pass" and check.underpowered)


_COUNT_WORDS = {"pass": "passed", "warn": "warning", "inconclusive": "inconclusive", "fail": "failed"}


def summary_line(verdict: Verdict) -> str:
    counts = dict(verdict.counts())
    for check in verdict.checks:  # statuses the counts do not know yet are counted too
        counts.setdefault(check.status, sum(c.status == check.status for c in verdict.checks))
    weak = sum(c.status == "pass" and c.underpowered for c in verdict.checks)
    counts["warn"] = sum(is_warning(c) for c in verdict.checks)  # the checks JUnit marks WARNING:, no more
    parts = []
    for status, n in counts.items():
        word = _COUNT_WORDS.get(status, status)
        parts.append(
            f"{n} {word}{'s' if status == 'warn' and n != 1 else ''}"
            + (f" ({weak} underpowered, each a warning)" if status == "pass" and weak else "")
        )
    line = f"{len(verdict.checks)} checks: " + ", ".join(parts)
    if counts.get("inconclusive"):
        line += f" (on_inconclusive: {verdict.on_inconclusive}, exit code {verdict.exit_code})"
    return line


def verdict_text(verdict: Verdict) -> str:
    """A plain-text verdict for the console (no Markdown): failures and warnings first, one line each.

    The warnings are the checks JUnit marks ``WARNING:``, underpowered passes included. Control
    characters in labels and messages are shown escaped (:func:`evalkit.errors.printable`).
    """
    ordered = sorted(verdict.checks, key=lambda c: (-STATUS_ORDER.get(c.status, 1), not is_warning(c)))
    lines = [
        f"{c.status.upper():<4}  {c.checkpoint}  {c.gate}: {c.message}"
        + (" [warning]" if c.status == "pass" and is_warning(c) else "")
        for c in ordered
    ]
    if verdict.inconclusive:
        lines.append(
            f"inconclusive checks {'fail' if verdict.on_inconclusive == 'fail' else 'only warn'} "
            f"(policy on_inconclusive: {verdict.on_inconclusive})"
        )
    own = checkpoint_statuses([c.to_dict() for c in verdict.checks])
    lines.append(
        f"gate: {verdict.status.upper()} ({summary_line(verdict)}); per checkpoint: "
        + ", ".join(f"{label} {status.upper()}" for label, status in own.items())
    )
    return "\n".join(printable(line) for line in lines)
