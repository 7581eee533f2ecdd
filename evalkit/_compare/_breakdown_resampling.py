"""Intervals and paired tests for corpus breakdown rows (per-class F1, per-level macro F1, head / torso / tail
macro F1) through the evaluator's optional ``resample_breakdown(records, kind, metric, keys, indices, settings)
-> (B, len(keys))`` hook (``settings``: the checkpoint's task settings, e.g. which classes a band holds).

For one task, checkpoint, kind and metric, every key is handled at once: the jackknife of each key's value
(normal interval with leave-one-out standard errors, cut to the metric's bounds, as for corpus metrics),
the paired jackknife interval of the delta, and the approximate randomization test (each comment's pair
of outputs swapped with probability 1/2, one seeded stream for the whole family, ``n_resamples`` swaps;
two-sided, ``p = (1 + #|delta*| >= |delta|) / (1 + R)``). The rows' p-values are then Holm-adjusted
within their family like every breakdown row (``_breakdowns.adjust_families``). A key whose hook value
does not reproduce the reported row value gets nothing; a key whose leave-one-out values are all equal (a
precision of 1 on a handful of predictions) gets no interval rather than a zero-width one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics.stats import cut_to_range, jackknife_ci, jackknife_indices
from ..records import SampleRecord
from ._common import Context, aligned, finite, spec_of

TOLERANCE = 1e-6


def breakdown_hook(evaluator: str):
    from ..evaluators import EVALUATORS

    cls = EVALUATORS.find(evaluator)
    return getattr(cls, "resample_breakdown", None) if cls is not None else None


def _bind(hook, settings: dict[str, Any]):
    """``hook`` with the task settings it reads bound: ``(records, kind, metric, keys, indices)``."""
    return lambda records, kind, metric, keys, indices: hook(records, kind, metric, keys, indices, settings)


def _run(hook, records: list[SampleRecord], kind: str, metric: str, keys: list[str], chunks) -> np.ndarray:
    return np.concatenate([np.asarray(hook(records, kind, metric, keys, idx), dtype=float) for idx in chunks])


def _jackknife(hook, records, kind, metric, keys) -> np.ndarray:
    """Leave-one-out values (n, len(keys)); callers make sure there are at least 3 records."""
    return _run(hook, records, kind, metric, keys, jackknife_indices(len(records)))


def corpus_breakdown_stats(
    ctx: Context,
    task: str,
    label: str,
    kind: str,
    metric: str,
    values: dict[str, float | None],
    base_values: dict[str, float | None],
) -> dict[str, dict]:
    """Per key: ``ci_low``/``ci_high``/``ci_method`` and, against the baseline, ``delta_ci_low``/``delta_ci_high``,
    ``p_value``, ``test``, ``n_paired``. {} without a hook or when the hook fails."""
    tr = ctx.task(label, task)
    hook = breakdown_hook(tr.evaluator) if tr is not None else None
    if tr is None or hook is None:
        return {}
    try:  # the checkpoint's settings: a band's classes come from the data, the same for both checkpoints
        return _stats(ctx, task, label, kind, metric, values, base_values, _bind(hook, dict(tr.settings)))
    except Exception as exc:  # a plug-in hook must not sink the comparison
        ctx.warn(
            f"{task}: resample_breakdown of evaluator {getattr(tr, 'evaluator', '?')!r} failed for {kind}/{metric} on {label!r} "
            f"({type(exc).__name__}: {exc}); those rows have no interval or test."
        )
        return {}


def _stats(ctx, task, label, kind, metric, values, base_values, hook) -> dict[str, dict]:
    records = list(ctx.records(label, task).values())
    keys = sorted(k for k, v in values.items() if v is not None)
    if not keys or len(records) < 3:
        return {}
    point = _run(hook, records, kind, metric, keys, [np.arange(len(records))[None, :]])[0]
    keys = [k for k, p in zip(keys, point) if abs(p - values[k]) <= TOLERANCE * max(1.0, abs(values[k]))]
    if not keys:
        return {}
    bounds = spec_of(ctx, task, label, f"{kind}/{metric}").bounds or (0.0, 1.0)
    jack = _jackknife(hook, records, kind, metric, keys)
    out: dict[str, dict[str, Any]] = {}
    for j, key in enumerate(keys):
        low, high, stderr = jackknife_ci(values[key], jack[:, j], confidence=ctx.confidence, bounds=bounds)
        # every leave-one-out value equal (a precision of 1 on few predictions): no spread to build on
        usable = finite(stderr) is not None and stderr > 0
        out[key] = {
            "ci_low": finite(low) if usable else None,
            "ci_high": finite(high) if usable else None,
            "ci_method": "jackknife" if usable else None,
        }
    if label != ctx.baseline and ctx.task(ctx.baseline, task) is not None:
        paired = [k for k in keys if base_values.get(k) is not None]
        for key, stats in _paired(ctx, task, label, kind, metric, paired, hook).items():
            # a change from the baseline's value stays within the metric's range, as on metric rows
            stats["delta_ci_low"], stats["delta_ci_high"] = cut_to_range(
                stats["delta_ci_low"], stats["delta_ci_high"], bounds, baseline=base_values[key]
            )
            out[key].update(stats)
    return out


def _paired(ctx, task, label, kind, metric, keys, hook) -> dict[str, dict]:
    recs_a, recs_b = aligned(ctx, task, label)
    n = len(recs_a)
    if not keys or n < 3:
        return {}
    everything = [np.arange(n)[None, :]]
    observed = (
        _run(hook, recs_b, kind, metric, keys, everything)[0] - _run(hook, recs_a, kind, metric, keys, everything)[0]
    )
    jack = _jackknife(hook, recs_b, kind, metric, keys) - _jackknife(hook, recs_a, kind, metric, keys)
    p_values, is_bound = _randomization(ctx, hook, recs_a + recs_b, kind, metric, keys, observed)
    out = {}
    for j, key in enumerate(keys):
        low, high, stderr = jackknife_ci(float(observed[j]), jack[:, j], confidence=ctx.confidence)
        out[key] = {
            "delta_ci_low": finite(low),
            "delta_ci_high": finite(high),
            "delta_stderr": finite(stderr),
            "p_value": float(p_values[j]),
            "p_value_is_bound": bool(is_bound[j]),
            "test": "approximate_randomization",
            "n_paired": n,
        }
    return out


def _randomization(
    ctx, hook, both: list[SampleRecord], kind, metric, keys, observed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided approximate randomization p-value of every key, from one seeded stream of swaps, and whether
    it is only a bound (no resample as extreme: p = 1 / (R + 1))."""
    n = len(both) // 2
    rng = np.random.default_rng(ctx.random_state)
    rows = max(1, 2_000_000 // max(n, len(keys), 1))  # bounds the (rows, n) swaps and (rows, keys) values
    base = np.arange(n)
    extreme, done = np.zeros(len(keys)), 0
    tolerance = 1e-12 * np.maximum(1.0, np.abs(observed))
    while done < ctx.n_resamples:
        k = min(rows, ctx.n_resamples - done)
        swap = rng.random((k, n)) < 0.5
        delta = hook(both, kind, metric, keys, base + n * ~swap) - hook(both, kind, metric, keys, base + n * swap)
        extreme += (np.abs(delta) >= np.abs(observed) - tolerance).sum(axis=0)
        done += k
    return (extreme + 1) / (done + 1), extreme == 0
