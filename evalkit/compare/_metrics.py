"""Metric rows: each task x checkpoint x metric with its CI, and its delta and paired test against the baseline.

Which paired test a metric gets follows the evaluator's declaration (:class:`~evalkit.evaluators.MetricSpec`;
docs/statistics.md):

* a ``level="sample"`` metric over samples, whose declared per-sample values reproduce the reported
  value and are 0/1 on both checkpoints -> McNemar (exact below 25 discordant pairs, else
  chi-square), delta CI by Newcombe's paired score interval;
* such a metric whose values are not 0/1 -> paired bootstrap of the mean difference;
* a corpus metric (macro F1), an element-level metric (IFEval instruction-level accuracy, resampled
  by prompt) or a declaration the records do not reproduce -> paired bootstrap through the
  evaluator's optional ``resample_metrics`` hook; without the hook, p_value and test are null.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics.stats import (bootstrap_mean_ci, iter_bootstrap_indices, mcnemar_test, normal_ci,
                             paired_bootstrap, paired_proportion_difference_ci, proportion_ci)
from ..records import SampleRecord, TaskResult
from ._common import (Context, aligned, finite, higher_is_better, is_binary, reproduces, resample_hook, spec_of,
                      unit_values)


def metric_order(task_result: TaskResult) -> list[str]:
    """The primary metric first, then the others alphabetically."""
    primary = task_result.primary_metric
    rest = sorted(m for m in task_result.metrics if m != primary)
    return ([primary] if primary in task_result.metrics else []) + rest


def metric_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    for task in ctx.tasks:
        for label in ctx.labels:
            task_result = ctx.task(label, task)
            if task_result is None:
                continue
            tests = paired_tests(ctx, task, label)
            for metric in metric_order(task_result):
                rows.append(_metric_row(ctx, task, label, task_result, metric, tests.get(metric)))
    return rows


def _metric_row(ctx: Context, task: str, label: str, tr: TaskResult, metric: str, test: dict | None) -> dict[str, Any]:
    base_tr = ctx.task(ctx.baseline, task)
    value = finite(tr.metrics[metric])
    base_value = finite(base_tr.metrics.get(metric)) if base_tr is not None else None
    ci_low, ci_high, ci_method = value_ci(ctx, task, label, tr, metric)
    is_baseline = label == ctx.baseline
    has_delta = value is not None and base_value is not None
    row = {
        "task": task, "metric": metric, "checkpoint": label, "axis": tr.axis,
        "is_primary": metric == tr.primary_metric, "higher_is_better": higher_is_better(ctx, task, label, metric),
        "level": spec_of(ctx, task, label, metric).level,
        "value": value, "ci_low": ci_low, "ci_high": ci_high, "ci_method": ci_method,
        "stderr": finite(tr.stderr.get(metric)), "n": tr.n_samples,
        "baseline": ctx.baseline, "baseline_value": base_value,
        "delta": (value - base_value) if has_delta else None,
        "relative": (value / base_value) if has_delta and base_value != 0 else None,
        "delta_ci_low": None, "delta_ci_high": None, "p_value": None, "test": None,
        "n_paired": _n_paired(ctx, task, label),
    }
    if is_baseline:
        row["delta"] = 0.0 if value is not None else None
    elif test:
        row.update({k: test.get(k) for k in ("delta_ci_low", "delta_ci_high", "p_value", "test", "n_paired")})
    return row


def _n_paired(ctx: Context, task: str, label: str) -> int:
    if label == ctx.baseline:
        return len(ctx.records(label, task))
    return len(aligned(ctx, task, label)[0]) if ctx.task(ctx.baseline, task) is not None else 0


# --------------------------------------------------------------------------- the value's own CI
def value_ci(ctx: Context, task: str, label: str, tr: TaskResult, metric: str) -> tuple[float | None, float | None, str | None]:
    """CI of one checkpoint's metric: as reported, else value ± z·stderr, else Wilson/bootstrap from the records."""
    reported = tr.ci.get(metric)
    if isinstance(reported, (list, tuple)) and len(reported) == 2:
        return finite(reported[0]), finite(reported[1]), "reported"
    records = list(ctx.records(label, task).values())
    matches = is_sample_mean(ctx, task, label, metric)
    values = sample_values(ctx, task, label, metric, records) if matches else None
    if matches and is_binary(values):  # a proportion: Wilson stays inside [0, 1], value ± z·se may not
        low, high = proportion_ci(int(values.sum()), values.size, confidence=ctx.confidence)
        return finite(low), finite(high), "wilson"
    value, stderr = finite(tr.metrics.get(metric)), finite(tr.stderr.get(metric))
    if value is not None and stderr is not None:
        low, high = normal_ci(value, stderr, confidence=ctx.confidence)
        return low, high, "stderr"
    if matches:
        _, low, high = bootstrap_mean_ci(values, n_resamples=ctx.n_resamples, confidence=ctx.confidence,
                                         random_state=ctx.random_state)
        return finite(low), finite(high), "bootstrap"
    resampled = own_resamples(ctx, task, label).get(metric)
    if resampled is not None and np.isfinite(resampled).any():
        alpha = 1 - ctx.confidence
        low, high = np.nanquantile(resampled, [alpha / 2, 1 - alpha / 2])
        return finite(low), finite(high), "bootstrap"
    return None, None, None


def sample_values(ctx: Context, task: str, label: str, metric: str, records: list[SampleRecord]) -> np.ndarray | None:
    """The declared per-sample values of a sample-level metric over samples (None otherwise)."""
    spec = spec_of(ctx, task, label, metric)
    field = spec.score_field(metric)
    return unit_values(records, field) if field is not None and spec.unit == "sample" else None


def is_sample_mean(ctx: Context, task: str, label: str, metric: str) -> bool:
    """Whether ``metric`` is declared a per-sample mean and its records reproduce the reported value."""

    def compute():
        spec = spec_of(ctx, task, label, metric)
        if spec.level != "sample" or spec.unit != "sample":
            return False
        tr = ctx.task(label, task)
        values = sample_values(ctx, task, label, metric, list(ctx.records(label, task).values()))
        if reproduces(values, tr.metrics.get(metric)):
            return True
        if values is not None or ctx.records(label, task):
            ctx.warn(f"{task}: {metric!r} is declared the mean of {spec.score_field(metric)} but {label!r}'s records "
                     f"{'do not reproduce its value' if values is not None else 'lack that field'}; it is compared "
                     "as a corpus metric.")
        return False

    return ctx.cached(("is_sample_mean", task, label, metric), compute)


def corpus_metrics(ctx: Context, task: str, label: str) -> list[str]:
    tr = ctx.task(label, task)
    return [m for m in metric_order(tr) if not is_sample_mean(ctx, task, label, m)]


def own_resamples(ctx: Context, task: str, label: str) -> dict[str, np.ndarray]:
    """Bootstrap values of this checkpoint's corpus metrics over all its records (sorted by sample_id)."""

    def compute():
        tr = ctx.task(label, task)
        records = list(ctx.records(label, task).values())
        names = corpus_metrics(ctx, task, label)
        return run_hook(ctx, task, label, tr.evaluator, records, names)

    return ctx.cached(("own_resamples", task, label), compute)


def run_hook(ctx: Context, task: str, label: str, evaluator: str, records: list[SampleRecord],
             names: list[str]) -> dict[str, np.ndarray]:
    """Call the evaluator's ``resample_metrics`` on shared bootstrap indices; {} without hook or on failure."""
    hook = resample_hook(evaluator)
    if hook is None or not records or not names:
        return {}
    names, rejected, error = _supported_names(hook, records, names)
    if rejected:
        ctx.warn(f"{task}: resample_metrics of evaluator {evaluator!r} cannot resample {', '.join(rejected)} "
                 f"on {label!r} ({error}); those metrics have no bootstrap CI or p-value.")
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    from ..progress import bar

    try:
        with bar(ctx.n_resamples, f"bootstrap {task} [{label}]", unit="resample") as progress:
            for indices in iter_bootstrap_indices(len(records), n_resamples=ctx.n_resamples, random_state=ctx.random_state):
                values = hook(records, list(names), indices)
                for name in names:
                    got = values.get(name) if isinstance(values, dict) else None
                    chunks[name].append(np.full(len(indices), np.nan) if got is None else np.asarray(got, dtype=float).reshape(-1))
                progress.update(len(indices))
    except Exception as exc:  # a broken plug-in hook must not sink the whole comparison
        ctx.warn(f"{task}: resample_metrics of evaluator {evaluator!r} failed on {label!r} "
                 f"({type(exc).__name__}: {exc}); its corpus metrics have no bootstrap CI or p-value.")
        return {}
    joined = {name: np.concatenate(parts) for name, parts in chunks.items()}
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


# --------------------------------------------------------------------------- paired tests
def paired_tests(ctx: Context, task: str, label: str) -> dict[str, dict[str, Any]]:
    """Per metric: p_value, test, delta CI and n_paired of ``label`` against the baseline."""
    base_tr, tr = ctx.task(ctx.baseline, task), ctx.task(label, task)
    if label == ctx.baseline or base_tr is None:
        return {}
    recs_a, recs_b = aligned(ctx, task, label)
    common = [m for m in metric_order(tr) if m in base_tr.metrics]
    if not recs_a:
        return {m: {"n_paired": 0} for m in common}
    tests, corpus = {}, []
    for metric in common:
        if is_sample_mean(ctx, task, ctx.baseline, metric) and is_sample_mean(ctx, task, label, metric):
            va = sample_values(ctx, task, ctx.baseline, metric, recs_a)
            vb = sample_values(ctx, task, label, metric, recs_b)
            tests[metric] = _binary_test(va, vb, ctx) if is_binary(va) and is_binary(vb) else _mean_test(va, vb, ctx)
        else:
            corpus.append(metric)
    tests.update(_corpus_tests(ctx, task, label, corpus, recs_a, recs_b))
    for test in tests.values():
        test["n_paired"] = len(recs_a)
    return tests


def _binary_test(va: np.ndarray, vb: np.ndarray, ctx: Context) -> dict[str, Any]:
    result = mcnemar_test(va, vb)
    _, low, high = paired_proportion_difference_ci(va, vb, confidence=ctx.confidence, method="newcombe")
    return {"p_value": result.p_value, "test": f"mcnemar_{result.method}", "delta_ci_low": low, "delta_ci_high": high}


def _mean_test(va: np.ndarray, vb: np.ndarray, ctx: Context) -> dict[str, Any]:
    result = paired_bootstrap(None, va, vb, n_resamples=ctx.n_resamples, confidence=ctx.confidence,
                              random_state=ctx.random_state)
    return _bootstrap_fields(result)


def _bootstrap_fields(result) -> dict[str, Any]:
    return {"p_value": finite(result.p_value), "test": "paired_bootstrap" if finite(result.p_value) is not None else None,
            "delta_ci_low": finite(result.ci_low), "delta_ci_high": finite(result.ci_high)}


def _corpus_tests(ctx: Context, task: str, label: str, names: list[str], recs_a: list[SampleRecord],
                  recs_b: list[SampleRecord]) -> dict[str, dict[str, Any]]:
    if not names:
        return {}
    base_tr, tr = ctx.task(ctx.baseline, task), ctx.task(label, task)
    covers_all = len(recs_a) == len(ctx.records(ctx.baseline, task)) == len(ctx.records(label, task))
    if covers_all:  # same sorted ids, same n, same seed: each checkpoint's own resamples are the paired ones
        scores_a, scores_b = own_resamples(ctx, task, ctx.baseline), own_resamples(ctx, task, label)
        # A metric can look like a per-sample mean on one checkpoint by coincidence (a macro F1 of 0
        # equals the mean of all-wrong outcomes); then only one side has own resamples: ask the hook.
        covers_all = all(name in scores_a and name in scores_b for name in names)
    if not covers_all:
        scores_a = run_hook(ctx, task, ctx.baseline, base_tr.evaluator, recs_a, names)
        scores_b = run_hook(ctx, task, label, tr.evaluator, recs_b, names)
    tests = {}
    for name in names:
        if name in scores_a and name in scores_b:
            result = paired_bootstrap(scores_a=scores_a[name], scores_b=scores_b[name], confidence=ctx.confidence)
            tests[name] = _bootstrap_fields(result)
    return tests
