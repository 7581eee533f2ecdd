"""Structure checks for the JSON files evalkit reads back (comparison.json, results.json).

Files come from users, CI caches and older or newer evalkits, so their inside is checked at the
boundary, once, against one schema per file kind; code further in can then trust types and shapes.
A mismatch is a :class:`~evalkit.errors.UsageError` naming the file and the JSON path of the first
bad value (``comparison.json: metrics[3].value: expected a finite number or null, got 'x'``).

A schema is built from small pieces: ``STR``, ``INT``, ``NUM`` (finite, not bool), ``BOOL``, ``ANY``,
``Opt(s)`` (``s`` or null), ``ListOf(s)``, ``MapOf(s)`` (string keys), and ``Obj(required, optional)``
(mappings of key -> schema; other keys are allowed, so newer files with extra fields still load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ._validate import label_problem
from .errors import UsageError

__all__ = [
    "STR",
    "INT",
    "NUM",
    "BOOL",
    "ANY",
    "LABEL",
    "Opt",
    "ListOf",
    "MapOf",
    "Obj",
    "validate",
    "COMPARISON",
    "RESULTS",
]


@dataclass(frozen=True)
class _Scalar:
    name: str

    def problem(self, value: Any) -> str | None:
        ok = {
            "a string": lambda v: isinstance(v, str),
            "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "a finite number": _is_finite_number,
            "a checkpoint label (non-empty, at most 255 characters, no control characters)": lambda v: (
                label_problem(v) is None
            ),
            "true or false": lambda v: isinstance(v, bool),
            "a number between 0 and 1 (exclusive)": lambda v: (
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
            ),
            "anything": lambda v: True,
        }[self.name](value)
        return None if ok else self.name


def _is_finite_number(value: Any) -> bool:
    """A number a float holds: an int beyond float range (``10**400``) is not, and must not raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


STR, INT, NUM, BOOL, ANY = (
    _Scalar(n) for n in ("a string", "an integer", "a finite number", "true or false", "anything")
)
LABEL = _Scalar("a checkpoint label (non-empty, at most 255 characters, no control characters)")


@dataclass(frozen=True)
class Opt:
    inner: Any


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    value: Any


@dataclass(frozen=True)
class Obj:
    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)


def _describe(schema: Any) -> str:
    if isinstance(schema, _Scalar):
        return schema.name
    if isinstance(schema, Opt):
        return f"{_describe(schema.inner)} or null"
    if isinstance(schema, ListOf):
        return "a list"
    return "an object"


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '…' if len(text) > 60 else text}"


def _check(value: Any, schema: Any, where: str) -> str | None:
    """The first problem as ``"where: expected X, got Y"``, or None."""
    if isinstance(schema, Opt):
        return None if value is None else _check(value, schema.inner, where)
    if isinstance(schema, _Scalar):
        wrong = schema.problem(value)
        return f"{where}: expected {wrong}, got {_got(value)}" if wrong else None
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            return f"{where}: expected a list, got {_got(value)}"
        for i, item in enumerate(value):
            if problem := _check(item, schema.item, f"{where}[{i}]"):
                return problem
        return None
    if not isinstance(value, dict):
        return f"{where}: expected {_describe(schema)}, got {_got(value)}"
    if isinstance(schema, MapOf):
        for key, item in value.items():
            if problem := _check(item, schema.value, f"{where}.{key}"):
                return problem
        return None
    for key, sub in schema.required.items():
        if key not in value:
            return f"{where}: missing key {key!r}"
        if problem := _check(value[key], sub, f"{where}.{key}"):
            return problem
    for key, sub in schema.optional.items():
        if key in value and (problem := _check(value[key], sub, f"{where}.{key}")):
            return problem
    return None


def _non_finite(tree: Any, where: str, skip: tuple[str, ...]) -> str | None:
    """The path of the first NaN or infinity in ``tree`` (JSON readers accept them, the files' spec does not)."""
    if isinstance(tree, float) and not math.isfinite(tree):
        return where
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        if key in skip:
            continue
        if found := _non_finite(value, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]", skip):
            return found
    return None


def validate(
    data: Any, schema: Any, *, source: str, hint: str = "", finite_except: tuple[str, ...] | None = None
) -> Any:
    """Return ``data`` if it matches ``schema``; else raise a UsageError naming ``source`` and the bad path.

    With ``finite_except`` every number outside the keys named there must be finite too (NaN and
    infinity in a free-form field would otherwise reach an output that refuses them).
    """
    if finite_except is not None and (where := _non_finite(data, "", finite_except)):
        raise UsageError(
            f"{source}: {where.lstrip('.') or 'top level'}: NaN or infinity, where the file "
            f"format has a finite number or null{hint}."
        )
    problem = _check(data, schema, "")
    if problem:
        where, _, what = problem.partition(": ")
        location = where.lstrip(".") or "top level"
        raise UsageError(f"{source}: {location}: {what}{hint}.")
    return data


# ------------------------------------------------------------------------- comparison.json

_NUMS = Opt(NUM)
_ROW_NUMBERS = (
    "value",
    "ci_low",
    "ci_high",
    "stderr",
    "baseline_value",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "relative",
    "p_value",
    "p_value_adjusted",
    "q_value",
    "mde",
    "n_resamples",
    "family_size",
    "delta_stderr",
    "value_stderr",
    "delta_df",
    "value_df",
)
_ROW_FLAGS = {k: Opt(BOOL) for k in ("ci_extended", "delta_ci_extended", "p_value_is_bound", "underpowered")}
_METRIC_ROW = Obj(
    {"task": STR, "metric": STR, "checkpoint": STR},
    {
        **{k: _NUMS for k in _ROW_NUMBERS},
        "n": _NUMS,
        "n_paired": _NUMS,
        "axis": Opt(STR),
        "is_primary": Opt(BOOL),
        "higher_is_better": Opt(BOOL),
        "baseline": Opt(STR),
        "test": Opt(STR),
        "ci_method": Opt(STR),
        "ci_target": Opt(STR),
        "level": Opt(STR),
        "metric_bounds": Opt(ListOf(NUM)),
        "family": Opt(STR),
        "paired_counts": Opt(ListOf(INT)),
        "alias_of": Opt(STR),
        "aliases": Opt(ListOf(STR)),
        "value_counts": Opt(ListOf(INT)),
        "significant": Opt(BOOL),
        **_ROW_FLAGS,
    },
)
_BREAKDOWN_ROW = Obj(
    {"task": STR, "kind": STR, "key": STR, "metric": STR, "checkpoint": STR},
    {
        **{k: _NUMS for k in _ROW_NUMBERS},
        "n": _NUMS,
        "n_paired": _NUMS,
        "baseline": Opt(STR),
        "test": Opt(STR),
        "higher_is_better": Opt(BOOL),
        "paired_counts": Opt(ListOf(INT)),
        **_ROW_FLAGS,
    },
)
_SUMMARY_ROW = Obj(
    {"task": STR, "metric": STR},
    {
        **{k: _NUMS for k in _ROW_NUMBERS},
        "axis": Opt(STR),
        "test": Opt(STR),
        "higher_is_better": Opt(BOOL),
        "significant": Opt(BOOL),
        "worse": Opt(BOOL),
        "better": Opt(BOOL),
    },
)
_CHECK = Obj(
    {"status": STR, "checkpoint": STR, "gate": STR},
    {
        **{
            k: _NUMS
            for k in (
                "value",
                "baseline_value",
                "delta",
                "p_value",
                "observed",
                "threshold",
                "p_value_adjusted",
                "mde",
                "significance",
                "bound_low",
                "bound_high",
                "alpha",
            )
        },
        "message": Opt(STR),
        "metric": Opt(STR),
        "operator": Opt(STR),
        "severity": Opt(STR),
        "underpowered": Opt(BOOL),
        "higher_is_better": Opt(BOOL),
    },
)
#: The comparison's statistical settings; ``confidence`` is a probability (the report derives alpha from it).
_SETTINGS = Obj(
    {},
    {
        "confidence": _Scalar("a number between 0 and 1 (exclusive)"),
        "max_flips": Opt(INT),
        "n_resamples": Opt(INT),
        "random_state": Opt(INT),
    },
)

COMPARISON = Obj(
    {
        "schema_version": INT,
        "kind": STR,
        "checkpoints": ListOf(
            Obj(
                {"label": LABEL},
                {
                    "spec": Opt(STR),
                    "kind": Opt(STR),
                    "fingerprint": Opt(STR),
                    "note": Opt(STR),
                    "settings": Opt(MapOf(ANY)),
                    "versions": Opt(MapOf(ANY)),
                    "timing": Opt(MapOf(ANY)),
                    "created": Opt(STR),
                },
            )
        ),
        "metrics": ListOf(_METRIC_ROW),
    },
    {
        "baseline": Opt(STR),
        "created": Opt(STR),
        "evalkit_version": Opt(STR),
        "tasks": Opt(
            ListOf(
                Obj(
                    {"name": STR},
                    {
                        "axis": Opt(STR),
                        "primary_metric": Opt(STR),
                        "evaluator": Opt(STR),
                        "config_hash": Opt(STR),
                        "settings": Opt(MapOf(ANY)),
                        "n_samples": Opt(MapOf(_NUMS)),
                        "checkpoints": Opt(ListOf(STR)),
                        "metrics": Opt(ListOf(STR)),
                        "higher_is_better": Opt(MapOf(Opt(BOOL))),
                    },
                )
            )
        ),
        "breakdowns": Opt(ListOf(_BREAKDOWN_ROW)),
        "format_vs_knowledge": Opt(
            ListOf(Obj({"checkpoint": STR, "loglik_task": STR, "generative_task": STR}, {"diagnosis": Opt(STR)}))
        ),
        "flips": Opt(
            ListOf(Obj({"task": STR, "checkpoint": STR, "direction": STR}, {"sample_id": Opt(ANY), "group": Opt(ANY)}))
        ),
        "flip_counts": Opt(
            ListOf(
                Obj(
                    {"task": STR, "checkpoint": STR},
                    {"right_to_wrong": Opt(INT), "wrong_to_right": Opt(INT), "n_paired": Opt(INT)},
                )
            )
        ),
        "summary": Opt(
            ListOf(
                Obj(
                    {"checkpoint": STR},
                    {
                        "domain": Opt(ListOf(_SUMMARY_ROW)),
                        "general": Opt(ListOf(_SUMMARY_ROW)),
                        "mean_domain_delta": _NUMS,
                        "mean_general_retention": _NUMS,
                        "significant_regressions": Opt(INT),
                        "significant_improvements": Opt(INT),
                        "right_to_wrong": Opt(INT),
                        "wrong_to_right": Opt(INT),
                    },
                )
            )
        ),
        "warnings": Opt(ListOf(STR)),
        "settings": Opt(_SETTINGS),
        "verdict": Opt(
            Obj(
                {"status": STR, "checks": ListOf(_CHECK)},
                {"policy": Opt(STR), "baseline": Opt(STR), "on_inconclusive": Opt(STR)},
            )
        ),
    },
)

# ---------------------------------------------------------------------------- results.json

_SAMPLE = Obj(
    {"sample_id": STR},
    {"correct": Opt(BOOL), "scores": Opt(MapOf(ANY)), "group": Opt(STR), "input": Opt(STR), "extra": Opt(MapOf(ANY))},
)
_TASK = Obj(
    {"task": STR, "evaluator": STR, "metrics": MapOf(_NUMS), "n_samples": INT},
    {
        "evaluator_version": Opt(STR),
        "config_hash": Opt(STR),
        "axis": Opt(STR),
        "primary_metric": Opt(STR),
        "higher_is_better": Opt(MapOf(BOOL)),
        "stderr": Opt(MapOf(_NUMS)),
        "ci": Opt(MapOf(Opt(ListOf(_NUMS)))),
        "breakdowns": Opt(MapOf(MapOf(MapOf(_NUMS)))),
        "settings": Opt(MapOf(ANY)),
        "timing": Opt(MapOf(ANY)),
        "samples": Opt(ListOf(_SAMPLE)),
        "same_as": Opt(MapOf(STR)),
    },
)
RESULTS = Obj(
    {
        "schema_version": INT,
        "checkpoint": Obj(
            {"label": LABEL, "spec": STR, "kind": STR, "fingerprint": STR},
            {"note": Opt(STR), "settings": Opt(MapOf(ANY))},
        ),
        "tasks": MapOf(_TASK),
    },
    {"created": Opt(STR), "versions": Opt(MapOf(ANY))},
)
