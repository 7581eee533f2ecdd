"""Errors evalkit reports to users.

Every error a user can cause (bad spec, missing file, invalid config) is an :class:`EvalkitError` whose
message is one line naming the thing at fault and what to do. The CLI prints it without a traceback
and exits with :attr:`EvalkitError.exit_code`.
"""

from __future__ import annotations

__all__ = ["EvalkitError", "UsageError", "EvaluationError", "did_you_mean"]


class EvalkitError(Exception):
    """Base class: a problem with the user's input or environment (exit code 2).

    ``param`` names the argument at fault in the Python API's words (``"notes"``, ``"baseline"``,
    ``"tasks"``); the message itself speaks no command-line vocabulary, and the CLI prefixes the
    matching flag (``--note``) when it prints the error.
    """

    exit_code = 2

    def __init__(self, *args: object, param: str | None = None):
        super().__init__(*args)
        self.param = param


class UsageError(EvalkitError):
    """Bad input: a spec, file, option or configuration value (exit code 2)."""


class EvaluationError(EvalkitError):
    """An evaluation started but could not finish (exit code 3)."""

    exit_code = 3


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """Return a suffix like " Did you mean 'mmlu'? Available: a, b, c." for unknown-name errors."""
    import difflib

    ordered = sorted(choices)
    close = difflib.get_close_matches(name, ordered, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if len(ordered) > 40:  # a long index (lm-eval has thousands of tasks): a sample and the count
        return f"{hint} Available: {', '.join(ordered[:12])} … ({len(ordered)} in all)."
    return f"{hint} Available: {', '.join(ordered) or '(none)'}."
