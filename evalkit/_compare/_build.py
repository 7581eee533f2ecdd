"""``build_comparison``: EvalResults of N checkpoints -> the ``comparison.json`` dictionary (schema v1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

from ..comparison_format import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION
from .._validate import unique_labels
from ..errors import UsageError, did_you_mean
from ..records import EvalResult
from ._breakdowns import breakdown_rows
from ._common import Context, json_safe, spec_of
from ._flips import flip_rows
from ._format import format_rows
from ._hierarchy import hierarchy_rows
from ._routing import routing_rows
from ._metrics import metric_order, metric_rows
from ._summary import summary_rows

CONFIDENCE = 0.95


def build_comparison(
    results: Sequence[EvalResult],
    *,
    baseline: str | None = None,
    notes: Mapping[str, str] | None = None,
    n_resamples: int = 1000,
    random_state: int = 0,
    max_flips: int = 200,
) -> dict[str, Any]:
    """Compare checkpoints against a baseline: metric and breakdown deltas, paired tests, flips.

    Parameters
    ----------
    results : sequence of EvalResult (or their ``to_dict()`` dictionaries)
        One per checkpoint, in display order; labels must be unique.
    baseline : str, optional
        Label of the reference checkpoint; default the first.
    notes : mapping of label to text, optional
        Shown beside a checkpoint in the report; overrides the note stored in the results.
    n_resamples, random_state : int
        Approximate randomization resamples (more, up to 10x, when a p-value is near 0.05) and their
        seed (the output is deterministic for fixed inputs and these).
    max_flips : int
        At most this many flipped samples per task, checkpoint and direction.

    Returns
    -------
    dict
        JSON-safe (no NaN; ``json.dumps(..., allow_nan=False)`` works) as described in
        ``docs/comparison-schema.md``.
    """
    _check_int(n_resamples, "n_resamples", 1)
    _check_int(max_flips, "max_flips", 0)
    by_label = _by_label(results)
    base = pick_baseline(list(by_label), baseline)
    unknown = sorted(set(notes or {}) - set(by_label))
    if unknown:
        raise UsageError(
            f"a note is given for {', '.join(map(repr, unknown))}, which is not a checkpoint label."
            f"{did_you_mean(unknown[0], list(by_label))}",
            param="notes",
        )
    ctx = Context(
        results=by_label,
        baseline=base,
        tasks=[],
        n_resamples=int(n_resamples),
        random_state=random_state,
        confidence=CONFIDENCE,
    )
    ctx.tasks = _task_names(ctx)
    metrics = metric_rows(ctx)
    flips, flip_counts = flip_rows(ctx, int(max_flips))
    comparison = {
        "schema_version": COMPARISON_SCHEMA_VERSION,
        "kind": COMPARISON_KIND,
        "created": max((r.created or "" for r in by_label.values()), default=""),
        "evalkit_version": _evalkit_version(),
        "baseline": base,
        "settings": {
            "n_resamples": int(n_resamples),
            "random_state": random_state,
            "confidence": CONFIDENCE,
            "max_flips": int(max_flips),
        },
        "checkpoints": [_checkpoint_entry(ctx, label, notes or {}) for label in ctx.labels],
        "tasks": [_task_entry(ctx, task) for task in ctx.tasks],
        "metrics": metrics,
        "breakdowns": breakdown_rows(ctx),
        "format_vs_knowledge": format_rows(ctx, metrics),
        "flips": flips,
        "flip_counts": flip_counts,
        "summary": summary_rows(ctx, metrics, flip_counts),
        "verdict": None,
    }
    # domain diagnostics: only where records carry label paths / confidences (other comparisons stay as they were)
    for key, rows in (("routing", routing_rows(ctx)), ("hierarchy_errors", hierarchy_rows(ctx))):
        if rows:
            comparison[key] = rows
    comparison["warnings"] = list(ctx.warnings)
    return json_safe(comparison)


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(
            f"The '{name}' parameter of build_comparison must be an int >= {minimum}. Got {value!r} instead."
        )


def _by_label(results: Sequence[EvalResult]) -> dict[str, EvalResult]:
    parsed = [r if isinstance(r, EvalResult) else EvalResult.from_dict(r) for r in results]
    if not parsed:
        raise UsageError("nothing to compare: give at least one checkpoint (or results.json file).")
    unique_labels([result.checkpoint.label for result in parsed])  # the rule evalkit compare checks before evaluating
    return {result.checkpoint.label: result for result in parsed}


def pick_baseline(labels: list[str], baseline: str | None) -> str:
    """``baseline`` if it is one of ``labels``, the first label when None, else a UsageError."""
    if baseline is None:
        return labels[0]
    if baseline not in labels:
        raise UsageError(
            f"baseline {baseline!r} is not one of the checkpoint labels.{did_you_mean(baseline, labels)}",
            param="baseline",
        )
    return baseline


def _task_names(ctx: Context) -> list[str]:
    """Tasks in order of first appearance; a task some checkpoints lack is kept and warned about."""
    names: list[str] = []
    for result in ctx.results.values():
        names.extend(t for t in result.tasks if t not in names)
    for task in names:
        missing = [label for label in ctx.labels if ctx.task(label, task) is None]
        if missing:
            ctx.warn(f"task {task!r} is missing for {', '.join(missing)}; it is compared only where present.")
    return names


def _checkpoint_entry(ctx: Context, label: str, notes: Mapping[str, str]) -> dict[str, Any]:
    result = ctx.results[label]
    info = result.checkpoint
    return {
        "label": label,
        "spec": info.spec,
        "kind": info.kind,
        "fingerprint": info.fingerprint,
        "settings": dict(info.settings),  # load options that change outputs ({} for defaults)
        "note": notes.get(label, info.note),
        "created": result.created,
        "versions": dict(result.versions),
        "run": info.run,
        "step": info.step,  # place in a training run (trajectory reports), null otherwise
        "timing": {name: dict(tr.timing) for name, tr in result.tasks.items()},
    }


def _task_entry(ctx: Context, task: str) -> dict[str, Any]:
    present = [label for label in ctx.labels if ctx.task(label, task) is not None]
    ref_label = ctx.baseline if ctx.baseline in present else present[0]
    ref = ctx.task(ref_label, task)
    hashes = {ctx.task(label, task).config_hash for label in present}
    if len(hashes) > 1:
        ctx.warn(
            f"task {task!r} was run with different configurations ({', '.join(sorted(hashes))}) "
            f"across checkpoints; its deltas may compare different setups."
        )
    return {
        "name": task,
        "axis": ref.axis,
        "primary_metric": ref.primary_metric,
        "evaluator": ref.evaluator,
        "evaluator_version": ref.evaluator_version,
        "config_hash": ref.config_hash,
        "settings": dict(ref.settings),
        "checkpoints": present,
        "n_samples": {label: ctx.task(label, task).n_samples for label in present},
        "metrics": metric_order(ref),
        "higher_is_better": {m: spec_of(ctx, task, ref_label, m).higher_is_better for m in metric_order(ref)},
        "metric_specs": {m: spec_of(ctx, task, ref_label, m).to_dict() for m in metric_order(ref)},
    }


def _evalkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evalkit")
    except PackageNotFoundError:
        return "unknown"
