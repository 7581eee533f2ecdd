"""Shared helpers of the comparison: the build context, record pairing, JSON safety."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluators.base import MetricSpec, metric_spec
from ..records import EvalResult, SampleRecord, TaskResult

#: A declared per-sample metric must be reproduced by the mean of its per-sample values to this
#: tolerance (float rounding); otherwise the declaration does not fit the data and the metric is
#: compared as a corpus metric, with a warning.
MEAN_TOLERANCE = 1e-6

#: Untrusted sample texts are cut to this many characters in flips (the report escapes them).
MAX_TEXT_CHARS = 1000


@dataclass
class Context:
    """Everything the row builders share: checkpoints by label, the baseline, the task list, options."""

    results: dict[str, EvalResult]
    baseline: str
    tasks: list[str]
    n_resamples: int
    random_state: int
    confidence: float = 0.95
    warnings: list[str] = field(default_factory=list)
    _cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.results)

    def task(self, label: str, name: str) -> TaskResult | None:
        return self.results[label].tasks.get(name)

    def cached(self, key: Any, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def records(self, label: str, task: str) -> dict[str, SampleRecord]:
        """``label``'s records of ``task`` by sample_id in natural id order (cached: sorting is the slow part)."""
        return self.cached(("records", label, task), lambda: records_by_id(self.task(label, task).samples))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def natural_key(sample_id: str) -> tuple:
    """Sort key putting "q2" before "q10": digit runs compare as numbers."""
    parts = re.split(r"(\d+)", sample_id)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def records_by_id(records: list[SampleRecord]) -> dict[str, SampleRecord]:
    """Records keyed by ``sample_id`` in natural id order (sorting makes pairing independent of record order)."""
    by_id = {str(r.sample_id): r for r in records}
    return {sid: by_id[sid] for sid in sorted(by_id, key=natural_key)}


def aligned(ctx: Context, task: str, label: str) -> tuple[list[SampleRecord], list[SampleRecord]]:
    """Baseline and ``label`` records of ``task`` on the samples both have, in sorted sample_id order."""

    def compute():
        base, cand = ctx.records(ctx.baseline, task), ctx.records(label, task)
        common = [sid for sid in base if sid in cand]
        if len(common) < max(len(base), len(cand)):
            ctx.warn(
                f"{task}: {label!r} and baseline {ctx.baseline!r} share {len(common)} of "
                f"{len(base)}/{len(cand)} samples; paired tests use the shared ones only."
            )
        return [base[s] for s in common], [cand[s] for s in common]

    return ctx.cached(("aligned", task, label), compute)


def spec_of(ctx: Context, task: str, label: str, metric: str) -> MetricSpec:
    """The declared :class:`MetricSpec` of ``metric`` (or ``"KIND/METRIC"``) on ``label``'s ``task``.

    An undeclared metric is compared as a corpus metric (resampled through the evaluator's hook, if
    any) with the direction the result states, and the comparison warns: nothing is inferred from values.
    """

    def compute():
        tr = ctx.task(label, task)
        spec = metric_spec(tr, metric)
        if spec is None:
            direction = tr.higher_is_better.get(metric.rsplit("/", 1)[-1])
            spec = MetricSpec(higher_is_better=True if direction is None else bool(direction), level="corpus")
            ctx.warn(
                f"{task}: evaluator {tr.evaluator!r} does not declare metric {metric!r}; it is compared as a "
                f"corpus metric{'' if direction is not None else ' with higher values better'} "
                "(declare it: docs/statistics.md)."
            )
        return spec

    return ctx.cached(("spec", task, label, metric), compute)


def higher_is_better(ctx: Context, task: str, label: str, metric: str) -> bool:
    return spec_of(ctx, task, label, metric).higher_is_better


def is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.integer, np.floating)) and math.isfinite(float(value))


def is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def reproduces(values: np.ndarray | None, reported: Any) -> bool:
    """Whether the mean of ``values`` is the reported metric (a check of the declaration, not a guess)."""
    return (
        values is not None
        and values.size > 0
        and is_number(reported)
        and abs(values.mean() - float(reported)) <= MEAN_TOLERANCE
    )


def finite(value: Any) -> float | None:
    """A JSON-safe float: None for None, NaN and infinities."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_safe(obj: Any) -> Any:
    """Recursively turn numpy scalars into Python ones and NaN/inf into None; tuples into lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite(obj)
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def truncate(value: Any, limit: int = MAX_TEXT_CHARS) -> Any:
    """Cut long strings (inside lists/dicts too) to ``limit`` characters plus an ellipsis; texts are not otherwise changed."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, (list, tuple)):
        return [truncate(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: truncate(v, limit) for k, v in value.items()}
    return value


def resample_hook(evaluator: str):
    """The evaluator class's optional ``resample_metrics`` classmethod, or None."""
    from ..evaluators import EVALUATORS

    cls = EVALUATORS.find(evaluator)
    return getattr(cls, "resample_metrics", None) if cls is not None else None
