"""Errors evalkit reports to users.

Every error a user can cause (bad spec, missing file, invalid config) is an :class:`EvalkitError` whose
message is one line naming the thing at fault and what to do. The CLI prints it without a traceback
and exits with :attr:`EvalkitError.exit_code`.
"""

from __future__ import annotations

import re

from .parameter_words import arg, python_words, render_args  # re-exported: errors mark parameters with arg

__all__ = [
    "EvalkitError",
    "UsageError",
    "ParameterTypeError",
    "EvaluationError",
    "ServerError",
    "did_you_mean",
    "arg",
    "render_args",
    "python_words",
    "path_name_error",
    "register_secret",
    "redact",
    "printable",
    "redact_secrets",
    "warn",
]


class EvalkitError(Exception):
    """Base class: a problem with the user's input or environment (exit code 2).

    ``param`` names the argument at fault in the Python API's words (``"notes"``, ``"baseline"``,
    ``"tasks"``); other parameters a message mentions (a hint: "pass config=DIR") are marked with
    :func:`arg`. The message itself speaks no command-line vocabulary: ``str(error)`` shows Python
    names, and the CLI renders :attr:`marked` with its flags and prefixes the flag of ``param``.
    """

    exit_code = 2

    def __init__(self, *args: object, param: str | None = None):
        marked = args[0] if args and isinstance(args[0], str) else None
        if marked is not None and python_words(marked) != marked:
            args = (python_words(marked), *args[1:])
        super().__init__(*args)
        self.param = param
        self.marked = marked if marked is not None else str(self)


class UsageError(EvalkitError):
    """Bad input: a spec, file, option or configuration value (exit code 2)."""


class ParameterTypeError(UsageError, TypeError):
    """A Python caller passed an argument of the wrong type, or one the function does not take (exit code 2).

    A :class:`UsageError` naming the parameter (``param``) and also a ``TypeError``, as Python's own
    "unexpected keyword argument" is, so either ``except`` catches it.
    """


class EvaluationError(EvalkitError):
    """An evaluation started but could not finish (exit code 3)."""

    exit_code = 3


class ServerError(EvaluationError):
    """A model server kept failing or answering malformed replies after every retry (exit code 4).

    Neither the user's input (2) nor a bug in evalkit (3): the server is down, overloaded or not
    OpenAI-compatible in the way the request needs. Finished samples are stored, so fixing the server and
    evaluating again resumes the run.
    """

    exit_code = 4


def path_name_error(exc: BaseException) -> UsageError | None:
    """A one-line UsageError for an ``OSError`` whose cause is a path name the user gave (too long for the
    filesystem, a symlink loop), wherever in evalkit it was first touched; None for any other error.

    >>> error = path_name_error(OSError(36, "File name too long", "runs/" + "x" * 300))
    >>> str(error).split(": ", 1)[1], len(str(error)) < 160
    ('cannot use this path (the name is longer than the filesystem allows); choose a shorter path.', True)
    >>> path_name_error(FileNotFoundError(2, "No such file", "x")) is None
    True
    """
    import errno as errnos

    # errnos by which the filesystem refuses a *name*, never evalkit's own files or a full disk
    codes = {
        errnos.ENAMETOOLONG: "the name is longer than the filesystem allows",
        errnos.ELOOP: "too many levels of symbolic links",
    }
    if not isinstance(exc, OSError) or exc.errno not in codes:
        return None
    name = str(exc.filename or "a path")
    shown = name if len(name) <= 64 else name[:63] + "…"
    return UsageError(f"{shown}: cannot use this path ({codes[exc.errno]}); choose a shorter path.")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """Return a suffix like " Did you mean 'mmlu'? Available: a, b, c." for unknown-name errors."""
    import difflib

    ordered = sorted(choices)
    close = difflib.get_close_matches(name, ordered, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if len(ordered) > 40:  # a long index (lm-eval has thousands of tasks): a sample and the count
        return f"{hint} Available: {', '.join(ordered[:12])} … ({len(ordered)} in all)."
    return f"{hint} Available: {', '.join(ordered) or '(none)'}."


# ------------------------------------------------------------------------------------ secrets

_SECRETS: set[str] = set()
#: Credentials in text a server echoed back (its error body may repeat the request headers). A scheme word
#: joined by a hyphen is prose, not a header ("the model's 1024-token context" kept its last word as ***).
_CREDENTIAL = re.compile(
    r"(?i)((?<![\w-])(?:bearer|basic|token)\s+|\b(?:authorization|x-api-key|api[-_]?key|access[-_]?token)\b[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic|token)\s+)?)([^\s\"',;&}]+)"
)
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret (an API key read from the environment) so it is redacted from every output."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with registered secrets and any Authorization / Bearer / API-key value replaced by ``***``.

    Examples
    --------
    >>> redact('HTTP 500: {"headers": {"Authorization": "Bearer sk-abc123"}}')
    'HTTP 500: {"headers": {"Authorization": "Bearer ***"}}'
    >>> redact("api_key=sk-abc123&x=1")
    'api_key=***&x=1'
    >>> redact("the model's 1024-token context")
    "the model's 1024-token context"
    """
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _CREDENTIAL.sub(lambda m: m.group(1) + REDACTED, text)


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (an escape sequence in a label or a model's
    output) shown escaped instead of driving the terminal.

    Examples
    --------
    >>> printable("tuned\\x1b[2J model")
    'tuned\\\\x1b[2J model'
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def redact_secrets(data: bytes) -> bytes:
    """``data`` with every registered secret replaced (output files: only exact secrets, never patterns,
    so a model's output that merely mentions "Bearer" is written as it is)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        data = data.replace(secret.encode("utf-8", errors="backslashreplace"), REDACTED.encode())
    return data


def warn(message: str) -> None:
    """Something was done to the user's input or environment that they should know: one line through the
    current reporter (:mod:`evalkit.progress`; on the command line, stderr)."""
    from .progress import warning

    warning(message)
