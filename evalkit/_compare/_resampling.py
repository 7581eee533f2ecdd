"""Corpus metrics on resamples through the evaluator's ``resample_metrics`` hook.

The hook scores any ``(k, m)`` array of positions into a record list, which serves two purposes:
leave-one-out rows (jackknife standard errors) and approximate randomization, where the records of both checkpoints are concatenated (``A + B``, length ``2n``)
and row ``r`` of the candidate's positions is ``i + n * (1 - swap[r, i])``: each sample's pair of
outputs is swapped with probability 1/2, in one vectorised hook call per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..metrics.stats import RandomizationResult, jackknife_indices, randomization_test
from ..records import SampleRecord
from ._common import Context, resample_hook

#: Approximate randomization resamples at most this many times ``n_resamples`` when p is near alpha.
RANDOMIZATION_CAP_FACTOR = 10


def run_hook(
    ctx: Context,
    task: str,
    label: str,
    evaluator: str,
    records: list[SampleRecord],
    names: list[str],
    chunks: Callable[[], Iterable[np.ndarray]],
    total: int,
    what: str,
) -> dict[str, np.ndarray]:
    """The hook's values of ``names`` on each row of the index arrays ``chunks()`` yields.

    {} without a hook or when it fails (with a warning); names the hook rejects are left out.
    """
    hook = resample_hook(evaluator)
    if hook is None or not records or not names:
        return {}
    names, rejected, error = _supported_names(hook, records, names)
    if rejected:
        ctx.warn(
            f"{task}: resample_metrics of evaluator {evaluator!r} cannot resample {', '.join(rejected)} "
            f"on {label!r} ({error}); those metrics have no interval from resampling and no p-value."
        )
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    from ..progress import bar

    try:
        with bar(total, f"{what} {task} [{label}]", unit="resample") as progress:
            for indices in chunks():
                values = hook(records, list(names), indices)
                for name in names:
                    got = values.get(name) if isinstance(values, dict) else None
                    parts[name].append(
                        np.full(len(indices), np.nan) if got is None else np.asarray(got, dtype=float).reshape(-1)
                    )
                progress.update(len(indices))
    except Exception as exc:  # a broken plug-in hook must not sink the whole comparison
        ctx.warn(
            f"{task}: resample_metrics of evaluator {evaluator!r} failed on {label!r} "
            f"({type(exc).__name__}: {exc}); its corpus metrics have no interval from resampling and no p-value."
        )
        return {}
    joined = {name: np.concatenate(values) if values else np.zeros(0) for name, values in parts.items()}
    return {name: values for name, values in joined.items() if np.isfinite(values).any()}


def _supported_names(hook, records: list[SampleRecord], names: list[str]) -> tuple[list[str], list[str], str]:
    """Split ``names`` into those the hook resamples and those it rejects (probed on one resample)."""
    identity = np.arange(len(records))[None, :]
    try:
        hook(records, list(names), identity)
        return list(names), [], ""
    except Exception as exc:  # e.g. a metric the hook does not know: keep the ones it does
        error = f"{type(exc).__name__}: {exc}"
    supported, rejected = [], []
    for name in names:
        try:
            hook(records, [name], identity)
            supported.append(name)
        except Exception:  # this name is simply not resamplable
            rejected.append(name)
    return supported, rejected, error


def jackknife_values(
    ctx: Context,
    task: str,
    label: str,
    evaluator: str,
    records: list[SampleRecord],
    names: list[str],
    clusters: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Leave-one-out values of ``names``; with ``clusters`` (a label per record), leave-one-cluster-out
    values in sorted cluster order (the delete-a-group jackknife). {} below 3 records or 2 clusters."""
    if len(records) < 3:
        return {}
    if clusters is None:
        return run_hook(
            ctx,
            task,
            label,
            evaluator,
            records,
            names,
            lambda: jackknife_indices(len(records)),
            len(records),
            what="jackknife",
        )
    groups = sorted(set(clusters))
    if len(groups) < 2:
        return {}
    per_group = run_hook(
        ctx,
        task,
        label,
        evaluator,
        records,
        names,
        lambda: _leave_cluster_out(clusters, groups),
        len(groups),
        what="cluster jackknife",
    )
    return per_group


def _leave_cluster_out(clusters: list[str], groups: list[str]):
    """One (1, m) index row per cluster, all positions but that cluster's, in ``groups`` order."""
    labels = np.asarray(clusters, dtype=object)
    for group in groups:
        yield np.flatnonzero(labels != group)[None, :]


def cluster_ids(clusters: list[str] | None) -> np.ndarray | None:
    """Integer cluster labels for :func:`randomization`."""
    return None if clusters is None else np.unique(np.asarray(clusters, dtype=str), return_inverse=True)[1].ravel()


def randomization(
    ctx: Context,
    task: str,
    evaluator: str,
    recs_a: list[SampleRecord],
    recs_b: list[SampleRecord],
    name: str,
    observed: float,
    clusters: list[str] | None = None,
) -> RandomizationResult | None:
    """Approximate randomization test of ``name`` between aligned records (None when the hook cannot score it)."""
    hook = resample_hook(evaluator)
    n = len(recs_a)
    if hook is None or n == 0:
        return None
    both = list(recs_a) + list(recs_b)
    base = np.arange(n)

    def deltas(swap: np.ndarray) -> np.ndarray:
        index_a = base + n * swap
        index_b = base + n * ~swap
        values_a = hook(both, [name], index_a).get(name)
        values_b = hook(both, [name], index_b).get(name)
        return np.asarray(values_b, dtype=float) - np.asarray(values_a, dtype=float)

    try:
        return randomization_test(
            deltas,
            n,
            observed,
            n_resamples=ctx.n_resamples,
            max_resamples=RANDOMIZATION_CAP_FACTOR * ctx.n_resamples,
            alpha=1 - ctx.confidence,
            random_state=ctx.random_state,
            groups=cluster_ids(clusters),
        )
    except Exception as exc:  # a plug-in hook that cannot score mixed records: no test rather than no comparison
        ctx.warn(
            f"{task}: approximate randomization of {name!r} failed in resample_metrics of {evaluator!r} "
            f"({type(exc).__name__}: {exc}); it has no p-value."
        )
        return None
