"""The gate's console text: a plain-text verdict (no Markdown), shared by ``str(verdict)`` and the other outputs.

Its own module because :class:`~evalkit.gate._evaluate.Verdict` renders itself with it (``__str__``) while the
writers in ``_outputs`` need the verdict class: this module needs only the verdict's fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..comparison_format import STATUS_ORDER, checkpoint_statuses
from ..errors import printable

if TYPE_CHECKING:
    from ._evaluate import Check, Verdict


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
