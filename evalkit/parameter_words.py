"""Parameters named inside library text (an error's hint, a progress line): marked, so each reader names them
in its own words: a Python caller sees ``config=DIR``, the command line ``--config DIR`` (``evalkit/cli/_flags.py``).

Below :mod:`evalkit.errors` and :mod:`evalkit.progress`, which both render them.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["arg", "render_args", "python_words"]

#: Around a parameter named in a message (:func:`arg`): private-use characters no user text carries.
_OPEN, _SEP, _CLOSE = "\ue000", "\ue001", "\ue002"


def arg(name: str, value: object = None) -> str:
    """A parameter named inside a message: ``name=value`` (or ``name``) to a Python caller, its flag on
    the command line, which renders it through its one parameter -> flag table (:func:`render_args`).

    >>> python_words(f"pass {arg('config', 'DIR')} or {arg('allow_pickle', True)}; see {arg('tasks')}.")
    'pass config=DIR or allow_pickle=True; see tasks.'
    """
    inside = name if value is None else f"{name}{_SEP}{value}"
    return f"{_OPEN}{inside}{_CLOSE}"


def render_args(text: str, word: Callable[[str, str | None], str]) -> str:
    """``text`` with each :func:`arg` replaced by ``word(name, value)`` (value None when none was given)."""
    head, *marked = text.split(_OPEN)
    parts = [head]
    for part in marked:
        inside, _, rest = part.partition(_CLOSE)
        name, sep, value = inside.partition(_SEP)
        parts.append(word(name, value if sep else None) + rest)
    return "".join(parts)


def python_words(text: str) -> str:
    """``text`` with each :func:`arg` as the Python API names it: ``name=value`` or ``name``."""
    return render_args(text, lambda name, value: name if value is None else f"{name}={value}")
