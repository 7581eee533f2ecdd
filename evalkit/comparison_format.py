"""What ``comparison.json`` is, written once: its kind and schema version, the significance level behind
its ``significant`` flags and the reports' markers, the one validator every reader uses, and the order of
its verdict's statuses (each checkpoint's own status, read by the gate, the report and the integrations).

The builder (``evalkit._compare``), the readers (``load_comparison``, :class:`evalkit.Comparison`), the
gate and the report writers all take these from here, one floor below them all (schema:
``docs/comparison-schema.md``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ._schema import COMPARISON, validate
from .errors import UsageError

__all__ = [
    "COMPARISON_KIND",
    "COMPARISON_SCHEMA_VERSION",
    "SIGNIFICANCE",
    "check_comparison",
    "load_comparison",
    "is_significant",
    "decision_p",
    "row_significant",
    "STATUS_ORDER",
    "checkpoint_statuses",
]

COMPARISON_KIND = "evalkit.comparison"
#: The newest schema this evalkit writes and reads.
COMPARISON_SCHEMA_VERSION = 1
#: A paired test's p-value below this is "significant": the summary's flags and counts, the reports' ✱ marks.
SIGNIFICANCE = 0.05


def is_significant(p_value: Any) -> bool:
    """True for a finite p-value below :data:`SIGNIFICANCE`.

    >>> is_significant(0.01), is_significant(0.05), is_significant(None), is_significant(float("nan"))
    (True, False, False, False)
    """
    finite = isinstance(p_value, (int, float)) and not isinstance(p_value, bool) and math.isfinite(p_value)
    return finite and p_value < SIGNIFICANCE


def decision_p(row: dict[str, Any]) -> Any:
    """The p-value a row's marker falls back on: Holm-adjusted within the row's family when it has one."""
    adjusted = row.get("p_value_adjusted")
    finite = isinstance(adjusted, (int, float)) and not isinstance(adjusted, bool) and math.isfinite(adjusted)
    return adjusted if finite else row.get("p_value")


def row_significant(row: dict[str, Any]) -> bool:
    """Whether a row's change is significant: the comparison's ``significant`` flag (its delta interval
    excludes 0); a row without one (no interval, a breakdown row, an older comparison) by :func:`decision_p`;
    an exploratory row (outside the primary family, ``evalkit._compare._family``) never. The summary's counts,
    the reports' markers and the tables read this, never a threshold of their own.

    >>> row_significant({"significant": False, "p_value": 0.0001}), row_significant({"p_value": 0.01})
    (False, True)
    >>> row_significant({"p_value": 0.01, "p_value_adjusted": 0.2}), row_significant({"family": "exploratory",
    ...                                                                                "p_value": 0.0001})
    (False, False)
    """
    if row.get("family") == "exploratory":  # outside the primary family: shown, never marked
        return False
    flag = row.get("significant")
    return flag if isinstance(flag, bool) else is_significant(decision_p(row))


def check_comparison(data: Any, *, source: str = "comparison", hint: str = "", file: bool = False) -> dict[str, Any]:
    """Return ``data`` if it is a comparison this evalkit reads; else a one-line :class:`UsageError` naming ``source``.

    Checks the kind and the schema version (a dictionary built in Python may leave out the kind). A file (``file=True``) is checked field by field too, NaN and
    infinity refused; a dictionary built in Python needs its three tables, and is checked for non-finite
    numbers when it is written (a ``ValueError`` there).
    """
    if not isinstance(data, dict):
        raise UsageError(f"{source} must be a dict (the content of comparison.json), got {type(data).__name__}.")
    if (file or "kind" in data) and data.get("kind") != COMPARISON_KIND:  # a minimal dict may leave it out
        raise UsageError(
            f"{source}: not an evalkit comparison (kind {data.get('kind')!r}, expected "
            f"{COMPARISON_KIND!r}); give the comparison.json written by `evalkit compare`."
        )
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"{source}: 'schema_version' must be a positive integer, got {version!r}.")
    if version > COMPARISON_SCHEMA_VERSION:
        raise UsageError(
            f"{source}: schema_version {version} is newer than this evalkit reads "
            f"({COMPARISON_SCHEMA_VERSION}); upgrade evalkit."
        )
    if file:
        return validate(data, COMPARISON, source=source, hint=hint, finite_except=())
    for key in ("checkpoints", "tasks", "metrics"):
        if not isinstance(data.get(key), list):
            raise UsageError(f"{source}: field '{key}' must be a list; re-run `evalkit compare` to rebuild it.")
    return data


def load_comparison(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``comparison.json``; a missing, invalid or too-new file is a one-line :class:`UsageError`.

    Here, beside the validator, so that reading one (``evalkit gate``) imports no comparison builder.
    """
    from ._io import read_json_object

    path = Path(path)
    data = read_json_object(path, what="comparison file", hint=" (written by `evalkit compare --out DIR`)")
    return check_comparison(data, source=str(path), hint="; regenerate it with `evalkit compare`", file=True)


# ------------------------------------------------------------------------------ verdict statuses

#: Statuses from best to worst; a verdict's status is the worst of its checks.
STATUS_ORDER = {"pass": 0, "warn": 1, "inconclusive": 2, "fail": 3}


def checkpoint_statuses(checks: list[dict[str, Any]]) -> dict[str, str]:
    """Each checkpoint's own verdict: the worst status of its checks, in first-seen order.

    >>> checkpoint_statuses([{"checkpoint": "a", "status": "fail"}, {"checkpoint": "b", "status": "pass"},
    ...                      {"checkpoint": "a", "status": "pass"}, {"checkpoint": "b", "status": "warn"}])
    {'a': 'fail', 'b': 'warn'}
    """
    statuses: dict[str, str] = {}
    for check in checks:
        label, status = str(check.get("checkpoint")), str(check.get("status"))
        if STATUS_ORDER.get(status, 3) >= STATUS_ORDER.get(statuses.get(label, "pass"), 0):
            statuses[label] = status
    return statuses
