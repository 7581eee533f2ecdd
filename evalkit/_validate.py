"""The one check for values from users that reach numpy, matplotlib, the filesystem or lm-eval.

Option values (seeds, limits, counts), checkpoint labels and text probed as paths come from command
lines, task files, comparison files and Python callers. Checked here, once, each fails as a
:class:`~evalkit.errors.UsageError` naming the parameter, before any work, instead of as numpy's
``SeedSequence`` error, an ``OSError: File name too long`` or a chart that cannot draw a label after an
hour of evaluation. Standard library only: the CLI imports it before anything heavy.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from .errors import ParameterTypeError, UsageError

__all__ = [
    "MAX_SEED",
    "MAX_LABEL_CHARS",
    "integer",
    "seed",
    "label",
    "label_problem",
    "unique_labels",
    "enough_checkpoints",
    "path_exists",
    "path_is_dir",
    "task_seeds",
    "of_type",
    "path",
    "flag",
    "text",
    "text_mapping",
]

#: Largest seed accepted: numpy and the store (SQLite INTEGER) both hold it.
MAX_SEED = 2**63 - 1
#: Longest checkpoint label: a file name's limit on common filesystems (labels name output files,
#: after :func:`evalkit._io.safe_file_name`, and appear in every table and chart).
MAX_LABEL_CHARS = 255


def of_type(value: Any, types: type | tuple[type, ...], *, param: str, what: str) -> Any:
    """``value`` if it is an instance of ``types`` (a bool is no number here), else a ParameterTypeError.

    >>> of_type(3, str, param="note", what="a string")
    Traceback (most recent call last):
    ...
    evalkit.errors.ParameterTypeError: note must be a string, got int 3.
    """
    wants_bool = bool in (types if isinstance(types, tuple) else (types,))
    if not isinstance(value, types) or (isinstance(value, bool) and not wants_bool):
        raise ParameterTypeError(f"{param} must be {what}, got {type(value).__name__} {_shown(value)}.", param=param)
    return value


def path(value: Any, *, param: str) -> "os.PathLike | str":
    """A non-empty path (str or ``os.PathLike``) for ``param``; the value itself."""
    of_type(value, (str, os.PathLike), param=param, what="a path (str or pathlib.Path)")
    try:
        empty = not str(os.fspath(value)).strip()
    except TypeError:  # an os.PathLike whose __fspath__ returns no str/bytes
        raise ParameterTypeError(
            f"{param} must be a path (str or pathlib.Path), got {_shown(value)}.", param=param
        ) from None
    if empty:
        raise UsageError(f"{param} must be a path, got an empty string.", param=param)
    return value


def flag(value: Any, *, param: str) -> bool:
    """``value`` if it is True or False (not 1, not "yes")."""
    return of_type(value, bool, param=param, what="True or False")


def text(value: Any, *, param: str, optional: bool = True) -> str | None:
    """``value`` if it is a string (or None when ``optional``)."""
    if value is None and optional:
        return None
    return of_type(value, str, param=param, what="a string" + (" or None" if optional else ""))


def text_mapping(value: Any, *, param: str) -> dict[str, str] | None:
    """``value`` if it is None or a mapping of strings to strings (notes by label)."""
    from collections.abc import Mapping

    if value is None:
        return None
    of_type(value, Mapping, param=param, what="a mapping of label to text")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ParameterTypeError(
                f"{param} must map labels (strings) to text (strings), got {_shown(key)}: {_shown(item)}.", param=param
            )
    return dict(value)


def integer(
    value: Any, *, param: str, minimum: int | None = None, maximum: int | None = None, what: str = "an integer"
) -> int:
    """``value`` if it is an integer (not a bool, not 1.5) within [minimum, maximum]; else a UsageError.

    Examples
    --------
    >>> integer(3, param="limit", minimum=1)
    3
    >>> integer(1.5, param="sample_seed")
    Traceback (most recent call last):
    ...
    evalkit.errors.UsageError: sample_seed must be an integer, got 1.5.
    """
    low_ok = minimum is None or (isinstance(value, int) and value >= minimum)
    high_ok = maximum is None or (isinstance(value, int) and value <= maximum)
    if isinstance(value, bool) or not isinstance(value, int) or not (low_ok and high_ok):
        bounds = (f" >= {minimum}" if minimum is not None else "") + (
            f"{' and' if minimum is not None else ''} <= {maximum}" if maximum is not None else ""
        )
        raise UsageError(f"{param} must be {what}{bounds}, got {_shown(value)}.", param=param)
    return value


def seed(value: Any, *, param: str, optional: bool = False) -> int | None:
    """A random seed: an integer in [0, 2**63 - 1] (None too when ``optional``).

    Examples
    --------
    >>> seed(-1, param="seed")
    Traceback (most recent call last):
    ...
    evalkit.errors.UsageError: seed must be an integer from 0 to 2**63 - 1, got -1.
    """
    if value is None and optional:
        return None
    try:
        return integer(value, param=param, minimum=0, maximum=MAX_SEED)
    except UsageError:
        none = " (or None)" if optional else ""
        raise UsageError(
            f"{param} must be an integer from 0 to 2**63 - 1{none}, got {_shown(value)}.", param=param
        ) from None


def task_seeds(options: Any, names: tuple[str, ...], *, source: str) -> None:
    """The seed keys of a task file (already integers or null by the file's schema) within [0, 2**63 - 1]:
    numpy refuses a negative seed, but only once a bootstrap or a few-shot draw needs it."""
    for name in names:
        value = getattr(options, name, None)
        if value is not None and not 0 <= value <= MAX_SEED:
            raise UsageError(f"{source}: key {name!r} must be an integer from 0 to 2**63 - 1, got {value!r}.")


def label_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as a checkpoint label, or None: a non-empty string of at most
    :data:`MAX_LABEL_CHARS` characters without control characters (lone surrogates are kept: results
    store them losslessly and reports escape them).

    Examples
    --------
    >>> [label_problem(x) for x in ("tuned", " ", "a\\nb", "x" * 300, 7)]
    [None, 'is empty', 'holds a control character (U+000A)', 'is 300 characters long (at most 255)', 'is not a string']
    """
    if not isinstance(value, str):
        return "is not a string"
    if not value.strip():
        return "is empty"
    if len(value) > MAX_LABEL_CHARS:
        return f"is {len(value)} characters long (at most {MAX_LABEL_CHARS})"
    control = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"holds a control character (U+{ord(control):04X})"
    return None


def label(value: Any, *, param: str = "label", source: str = "") -> str:
    """``value`` if it is a usable checkpoint label (see :func:`label_problem`), else a UsageError."""
    problem = label_problem(value)
    if problem:
        where = f"{source}: " if source else ""
        raise UsageError(
            f"{where}checkpoint label {_shown(value)} {problem}; choose a short printable name (LABEL=SPEC).",
            param=param,
        )
    return value


def unique_labels(labels: list[str]) -> None:
    """A UsageError when two checkpoints share a label (their results would overwrite each other).

    The one label rule: ``evalkit compare`` checks it before evaluating (:mod:`evalkit.compare_run`),
    :func:`evalkit.compare` / ``build_comparison`` for results given directly.
    """
    seen: set[str] = set()
    for name in labels:
        if name in seen:
            raise UsageError(
                f"checkpoint label {name!r} is used twice; give each checkpoint its own label with "
                f"LABEL=SPEC (e.g. old=runs/a new=runs/b).",
                param="label",
            )
        seen.add(name)


def enough_checkpoints(count: int, message: str, *, param: str | None = None) -> None:
    """A UsageError with ``message`` when fewer than two checkpoints are to be compared (a baseline and one
    to compare with it).

    The one count rule: ``evalkit compare`` checks it before evaluating (:func:`evalkit.compare_run.prepare`),
    :func:`evalkit.compare` for results given directly, ``evalkit report`` for results files; each message
    names the caller's own inputs.
    """
    if count < 2:
        raise UsageError(message, param=param)


def path_exists(text: Any) -> bool:
    """Whether ``text`` names an existing file or folder; text that cannot be a path (too long for the
    filesystem, a NUL byte, not a string) is simply no existing path, never an ``OSError``."""
    try:
        return os.path.exists(os.path.expanduser(os.fspath(text)))
    except (OSError, TypeError, ValueError):
        return False


def path_is_dir(text: Any) -> bool:
    """Whether ``text`` names an existing folder; like :func:`path_exists`, never an ``OSError``."""
    try:
        return os.path.isdir(os.path.expanduser(os.fspath(text)))
    except (OSError, TypeError, ValueError):
        return False


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
