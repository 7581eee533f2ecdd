"""The one ``KEY=VALUE`` parser (notes, model arguments, task overrides all go through it)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import UsageError

__all__ = ["parse_pairs", "split_commas", "split_labelled"]


def split_commas(text: str | None) -> list[str]:
    """``"a=1, b=2,"`` -> ``["a=1", "b=2"]`` (empty parts dropped)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_pairs(items: Iterable[str], *, param: str, form: str = "KEY=VALUE") -> dict[str, str]:
    """``["a=1", "b = x=y"]`` -> ``{"a": "1", "b": "x=y"}``: split at the first ``=``, strip both sides.

    Raises :class:`~evalkit.errors.UsageError` (with ``param``) for an item without ``=`` or an empty key.

    Examples
    --------
    >>> parse_pairs(["tuned=seed 7", "base = the reference"], param="notes", form="LABEL=TEXT")
    {'tuned': 'seed 7', 'base': 'the reference'}
    >>> parse_pairs(["oops"], param="notes", form="LABEL=TEXT")
    Traceback (most recent call last):
    ...
    evalkit.errors.UsageError: expected LABEL=TEXT, got 'oops'.
    """
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"expected {form}, got {item!r}.", param=param)
        parsed[key.strip()] = value.strip()
    return parsed


def split_labelled(text: str, label_pattern: re.Pattern | None = None) -> tuple[str | None, str]:
    """``"LABEL=SPEC"`` -> ``("LABEL", "SPEC")``; ``(None, text)`` when there is no ``=``, when the whole text
    is an existing path (paths may contain ``=``), or when the part before ``=`` does not match ``label_pattern``.

    Examples
    --------
    >>> split_labelled("tuned=models/run-1")
    ('tuned', 'models/run-1')
    >>> split_labelled("http://host/v1?a=b#m", re.compile(r"[A-Za-z0-9_.-]+"))
    (None, 'http://host/v1?a=b#m')
    """
    from ._validate import path_exists

    head, sep, rest = text.partition("=")
    if not sep or path_exists(text):
        return None, text
    if label_pattern is not None and not label_pattern.fullmatch(head):
        return None, text
    return (head or None), rest
