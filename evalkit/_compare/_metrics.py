"""Metric rows: each task x checkpoint x metric with its CI, and its delta and paired test against the baseline.

The interval and test follow the evaluator's declaration of the metric
(:class:`~evalkit.evaluators.MetricSpec`; the table and references are in docs/statistics.md):

* per-sample (``level="sample"``) metrics whose declared values reproduce the reported value: a 0/1
  proportion over independent samples gets a Wilson interval, McNemar's test and Newcombe's paired
  interval of the delta; other values get t intervals and the paired t test; clustered units
  (IFEval instructions of one prompt, a task's ``cluster_field``) get cluster-robust intervals and
  the cluster-robust paired t test;
* corpus metrics (macro F1, hierarchical F1) get normal intervals with jackknife standard errors
  (leave-one-out values through the evaluator's ``resample_metrics`` hook; paired leave-one-out
  differences for the delta) and the approximate randomization test; without the hook, a reported
  interval or value ± z·stderr and no test. The jackknife, not a bootstrap: over a long tail of
  classes a bootstrap underestimates the spread of macro F1 and BCa chases a population value a
  test set of this size does not estimate (coverage figures in bench/stats/README.md).

Every interval contains its estimate; a reported interval that misses it is widened to it
(``ci_extended``), with a warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm

from ..evaluators.base import record_value
from ..metrics.stats import (
    contain,
    cut_to_range,
    jackknife_ci,
    jackknife_stderr,
    mcnemar_test,
    mean_ci,
    minimum_detectable_effect,
    normal_ci,
    paired_counts,
    paired_mean_test,
    paired_proportion_difference_ci,
    paired_proportion_stderr,
    proportion_ci,
)
from ..records import TaskResult
from ._common import Context, aligned, finite, higher_is_better, resample_hook, spec_of
from ._family import adjust_primary_family
from ._bootstrap import bootstrap_delta_ci, bootstrap_value_ci, wants_bootstrap
from ._resampling import jackknife_values, randomization
from ._units import sample_units, units_of


def metric_order(task_result: TaskResult) -> list[str]:
    """The primary metric first, then the others alphabetically."""
    primary = task_result.primary_metric
    rest = sorted(m for m in task_result.metrics if m != primary)
    return ([primary] if primary in task_result.metrics else []) + rest


def task_aliases(ctx: Context, task: str) -> dict[str, str]:
    """Alias -> representative of the metrics identical by construction (``TaskResult.same_as``) on every
    checkpoint of ``task``: only then is the alias's delta the representative's too."""

    def compute():
        declared = [tr.same_as for tr in (ctx.task(label, task) for label in ctx.labels) if tr is not None]
        common = dict(declared[0]) if declared else {}
        return {a: r for a, r in common.items() if all(d.get(a) == r for d in declared)}

    return ctx.cached(("task_aliases", task), compute)


def tested_metrics(ctx: Context, task: str, task_result: TaskResult) -> list[str]:
    """:func:`metric_order` without the aliases: each identity is computed and tested once."""
    aliases = task_aliases(ctx, task)
    return [m for m in metric_order(task_result) if m not in aliases]


def metric_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    for task in ctx.tasks:
        aliases = task_aliases(ctx, task)
        for label in ctx.labels:
            task_result = ctx.task(label, task)
            if task_result is None:
                continue
            tests = paired_tests(ctx, task, label)
            own = {
                metric: _metric_row(ctx, task, label, task_result, metric, tests.get(metric))
                for metric in tested_metrics(ctx, task, task_result)
            }
            rows += [
                own[m] if m in own else _alias_row(own[aliases[m]], m)
                for m in metric_order(task_result)
                if m in own or aliases.get(m) in own
            ]
    adjust_primary_family(rows, ctx.baseline, alpha=1 - ctx.confidence)
    return rows


def _alias_row(representative: dict[str, Any], metric: str) -> dict[str, Any]:
    """An alias's row: the representative's numbers (the same by construction), ``alias_of`` naming it, no test
    or marker of its own; the representative lists its ``aliases``, which the reports show as a note."""
    representative.setdefault("aliases", []).append(metric)
    return {
        **representative,
        "metric": metric,
        "alias_of": representative["metric"],
        "aliases": None,
        "is_primary": False,
    }


_TEST_FIELDS = (
    "significant",
    "delta_ci_low",
    "delta_ci_high",
    "p_value",
    "p_value_is_bound",
    "n_resamples",
    "test",
    "n_paired",
    "mde",
    "delta_ci_extended",
    "delta_stderr",
    "delta_df",
    "paired_counts",
)


def _metric_row(ctx: Context, task: str, label: str, tr: TaskResult, metric: str, test: dict | None) -> dict[str, Any]:
    base_tr = ctx.task(ctx.baseline, task)
    value = finite(tr.metrics[metric])
    base_value = finite(base_tr.metrics.get(metric)) if base_tr is not None else None
    ci_low, ci_high, ci_method, extended = value_ci(ctx, task, label, tr, metric)
    is_baseline = label == ctx.baseline
    has_delta = value is not None and base_value is not None
    row = {
        "task": task,
        "metric": metric,
        "checkpoint": label,
        "axis": tr.axis,
        "is_primary": metric == tr.primary_metric,
        "higher_is_better": higher_is_better(ctx, task, label, metric),
        "level": spec_of(ctx, task, label, metric).level,
        "metric_bounds": _declared_bounds(ctx, task, label, metric),
        "value": value,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "ci_method": ci_method,
        "ci_extended": extended,
        "ci_target": CI_TARGETS.get(ci_method),
        "stderr": finite(tr.stderr.get(metric)),
        "n": tr.n_samples,
        "baseline": ctx.baseline,
        "baseline_value": base_value,
        "delta": (value - base_value) if has_delta else None,
        "relative": (value / base_value) if has_delta and base_value != 0 else None,
        **value_spread(ctx, task, label, tr, metric),
        **dict.fromkeys(_TEST_FIELDS),
        "n_paired": _n_paired(ctx, task, label),
    }
    if is_baseline:
        row["delta"] = 0.0 if value is not None else None
    elif test:
        row.update({k: test[k] for k in _TEST_FIELDS if k in test})
        _contain_delta(ctx, task, label, metric, row)
        _cut_delta_to_range(spec_of(ctx, task, label, metric).bounds, row)
        row["significant"] = interval_excludes_zero(row["delta_ci_low"], row["delta_ci_high"])
    return row


def _declared_bounds(ctx: Context, task: str, label: str, metric: str) -> list[float] | None:
    """The metric's declared range (MetricSpec.bounds), which the gate's bounds are cut to as the row's intervals are."""
    bounds = spec_of(ctx, task, label, metric).bounds
    return [float(bounds[0]), float(bounds[1])] if bounds is not None else None


def interval_excludes_zero(low: float | None, high: float | None) -> bool | None:
    """Whether the delta interval shown excludes 0 (None without one): the marker's first condition, so a
    star never sits next to an interval that spans 0; the family's Holm adjustment (``_family``) is the second."""
    if low is None or high is None:
        return None
    return bool(low > 0 or high < 0)


#: What each interval method covers (docs/statistics.md): the population value, or for jackknife intervals of
#: corpus metrics the expected score on a test set of this size; None: the evaluator's own, not known.
CI_TARGETS = {
    "wilson": "population",
    "t": "population",
    "cluster_t": "population",
    "jackknife": "finite_sample_expectation",
    "cluster_jackknife": "finite_sample_expectation",
}


def _cut_delta_to_range(bounds: tuple[float, float] | None, row: dict[str, Any]) -> None:
    """Cut the delta interval to the changes the metric's range allows from the baseline's value (cut_to_range)."""
    row["delta_ci_low"], row["delta_ci_high"] = cut_to_range(
        row["delta_ci_low"], row["delta_ci_high"], bounds, baseline=row["baseline_value"]
    )


def _contain_delta(ctx: Context, task: str, label: str, metric: str, row: dict[str, Any]) -> None:
    """Widen the delta interval to the reported delta (a bootstrap interval of a biased statistic can miss it)."""
    low, high, delta = row["delta_ci_low"], row["delta_ci_high"], row["delta"]
    if None in (low, high, delta):
        return
    result = contain(delta, low, high)
    if result.extended:
        row.update(delta_ci_low=result.low, delta_ci_high=result.high, delta_ci_extended=True)
        ctx.warn(
            f"{task}: the {row['test'] or 'delta'} interval of {metric!r} for {label!r} did not contain the "
            "delta; it was widened to it."
        )


def _n_paired(ctx: Context, task: str, label: str) -> int:
    if label == ctx.baseline:
        return len(ctx.records(label, task))
    return len(aligned(ctx, task, label)[0]) if ctx.task(ctx.baseline, task) is not None else 0


# --------------------------------------------------------------------------- the value's own CI
def value_ci(ctx: Context, task: str, label: str, tr: TaskResult, metric: str) -> tuple[Any, Any, str | None, bool]:
    """``(low, high, method, extended)`` of one checkpoint's metric (methods in the module docstring)."""
    value = finite(tr.metrics.get(metric))
    low, high, method = _raw_ci(ctx, task, label, tr, metric)
    if value is None or low is None or high is None:
        return low, high, method, False
    result = contain(value, low, high)
    if result.extended:
        ctx.warn(
            f"{task}: the {method} interval of {metric!r} for {label!r} did not contain its value; it was "
            "widened to it."
        )
    return result.low, result.high, method, result.extended


def _raw_ci(ctx: Context, task: str, label: str, tr: TaskResult, metric: str) -> tuple[Any, Any, str | None]:
    units = sample_units(ctx, task, label, metric)
    if units is not None:
        if units.clusters is None and units.binary:  # Wilson stays inside [0, 1] where value ± z·se may not
            low, high = proportion_ci(int(units.values.sum()), units.values.size, confidence=ctx.confidence)
            return finite(low), finite(high), "wilson"
        result = mean_ci(units.values, clusters=units.clusters, confidence=ctx.confidence)
        # a bounded mean (a clustered proportion, a score in [0, 1]) stays in its declared range
        low, high = cut_to_range(result.low, result.high, spec_of(ctx, task, label, metric).bounds)
        return finite(low), finite(high), "cluster_t" if units.clusters is not None else "t"
    if _is_resampled(ctx, task, label, metric) and wants_bootstrap(ctx, task, label, metric):
        low, high = bootstrap_value_ci(ctx, task, label, metric)
        if low is not None:
            return low, high, "bootstrap_percentile"
    elif _is_resampled(ctx, task, label, metric):
        value = finite(tr.metrics.get(metric))
        jack = own_jackknife(ctx, task, label).get(metric)
        if value is not None and jack is not None:
            bounds = spec_of(ctx, task, label, metric).bounds
            low, high, _ = jackknife_ci(value, jack, confidence=ctx.confidence, bounds=bounds)
            if finite(low) is not None:
                return (
                    finite(low),
                    finite(high),
                    "cluster_jackknife" if _is_clustered(ctx, task, label) else "jackknife",
                )
    reported = tr.ci.get(metric)
    if isinstance(reported, (list, tuple)) and len(reported) == 2 and None not in reported:
        return finite(reported[0]), finite(reported[1]), "reported"
    value, stderr = finite(tr.metrics.get(metric)), finite(tr.stderr.get(metric))
    if value is not None and stderr is not None:
        low, high = normal_ci(value, stderr, confidence=ctx.confidence)
        return low, high, "stderr"
    return None, None, None


def value_spread(ctx: Context, task: str, label: str, tr: TaskResult, metric: str) -> dict[str, Any]:
    """What a gate's one-sided bound on the value needs (``min``/``max``; ``docs/gating.md``).

    ``value_counts`` ``[successes, n]`` for an independent 0/1 proportion (Wilson bounds), else the
    standard error ``value_stderr`` with its t degrees of freedom ``value_df`` (None: normal), from the
    same units or jackknife as the value's interval.
    """
    out: dict[str, Any] = {"value_stderr": None, "value_df": None, "value_counts": None}
    units = sample_units(ctx, task, label, metric)
    if units is not None:
        if units.clusters is None and units.binary:
            out["value_counts"] = [int(units.values.sum()), int(units.values.size)]
        result = mean_ci(units.values, clusters=units.clusters, confidence=ctx.confidence)
        out.update(value_stderr=finite(result.stderr), value_df=int(result.df) if result.df >= 1 else None)
        return out
    if wants_bootstrap(ctx, task, label, metric):  # the spread of the bootstrap interval the row shows
        low, high = bootstrap_value_ci(ctx, task, label, metric)
        if low is not None and high is not None:
            out["value_stderr"] = (high - low) / (2 * float(norm.ppf(0.5 + ctx.confidence / 2)))
        return out
    jack = own_jackknife(ctx, task, label).get(metric)
    if jack is not None:
        out["value_stderr"] = finite(jackknife_stderr(jack))
    else:
        out["value_stderr"] = finite(tr.stderr.get(metric))
    return out


def _is_resampled(ctx: Context, task: str, label: str, metric: str) -> bool:
    """Metrics that go through the hook: corpus metrics and declarations the records do not reproduce."""
    return sample_units(ctx, task, label, metric) is None


def corpus_metrics(ctx: Context, task: str, label: str) -> list[str]:
    tr = ctx.task(label, task)
    return [m for m in tested_metrics(ctx, task, tr) if _is_resampled(ctx, task, label, m)]


def own_jackknife(ctx: Context, task: str, label: str) -> dict[str, np.ndarray]:
    """Leave-one-out values of this checkpoint's corpus metrics over all its records (sorted by sample_id)."""

    def compute():
        tr = ctx.task(label, task)
        records = list(ctx.records(label, task).values())
        return jackknife_values(
            ctx,
            task,
            label,
            tr.evaluator,
            records,
            _hook_reproduces(ctx, task, label),
            _task_clusters(ctx, task, label, records),
        )

    return ctx.cached(("own_jackknife", task, label), compute)


def _is_clustered(ctx: Context, task: str, label: str) -> bool:
    field = ctx.task(label, task).settings.get("cluster_field")
    return isinstance(field, str) and bool(field)


def _task_clusters(ctx: Context, task: str, label: str, records) -> list[str] | None:
    """Cluster label per record from the task's ``cluster_field`` (corpus metrics), None without one.

    A record without the field is a cluster of its own."""
    if not _is_clustered(ctx, task, label):
        return None
    field = ctx.task(label, task).settings["cluster_field"]
    values = [record_value(r, field) for r in records]
    return [f"{v}" if v is not None else f"\x00{r.sample_id}" for v, r in zip(values, records)]


def _hook_reproduces(ctx: Context, task: str, label: str) -> list[str]:
    """The corpus metrics the resample hook reproduces on all records; the others get no interval from it
    (a hook that averages per-sample values cannot stand for a corpus F1 or BLEU), with a warning."""
    return ctx.cached(("hook_reproduces", task, label), lambda: _check_hook(ctx, task, label))


def _check_hook(ctx: Context, task: str, label: str) -> list[str]:
    tr = ctx.task(label, task)
    names = corpus_metrics(ctx, task, label)
    hook = resample_hook(tr.evaluator)
    records = list(ctx.records(label, task).values())
    if hook is None or not names or not records:
        return names
    everything = np.arange(len(records))[None, :]
    kept = []
    for name in names:
        try:
            got = hook(records, [name], everything).get(name)
        except Exception:  # rejected names are reported by run_hook
            kept.append(name)
            continue
        reported = finite(tr.metrics.get(name))
        value = finite(np.asarray(got, dtype=float).ravel()[0]) if got is not None else None
        if reported is None or value is None or abs(value - reported) <= 1e-6 * max(1.0, abs(reported)):
            kept.append(name)
        else:
            ctx.warn(
                f"{task}: resample_metrics of evaluator {tr.evaluator!r} gives {value:.6g} for {name!r} on "
                f"{label!r}'s records, not the reported {reported:.6g}; it gets no interval or test from it."
            )
    return kept


# --------------------------------------------------------------------------- paired tests
def paired_tests(ctx: Context, task: str, label: str) -> dict[str, dict[str, Any]]:
    """Per metric: p_value, test, delta CI, MDE and n_paired of ``label`` against the baseline."""
    base_tr, tr = ctx.task(ctx.baseline, task), ctx.task(label, task)
    if label == ctx.baseline or base_tr is None:
        return {}
    recs_a, recs_b = aligned(ctx, task, label)
    common = [m for m in tested_metrics(ctx, task, tr) if m in base_tr.metrics]
    if not recs_a:
        return {m: {"n_paired": 0} for m in common}
    tests, corpus = {}, []
    for metric in common:
        if (
            sample_units(ctx, task, ctx.baseline, metric) is not None
            and sample_units(ctx, task, label, metric) is not None
        ):
            tests[metric] = _unit_test(ctx, task, label, metric, recs_a, recs_b)
        else:
            corpus.append(metric)
    tests.update(_corpus_tests(ctx, task, label, corpus, recs_a, recs_b))
    for test in tests.values():
        test["n_paired"] = len(recs_a)
    return tests


def _unit_test(ctx: Context, task: str, label: str, metric: str, recs_a, recs_b) -> dict[str, Any]:
    units_a = units_of(ctx, task, ctx.baseline, metric, recs_a)
    units_b = units_of(ctx, task, label, metric, recs_b)
    va, vb, clusters = units_a.paired_with(units_b)
    if clusters is None and units_a.binary and units_b.binary:
        result = mcnemar_test(va, vb)
        _, low, high = paired_proportion_difference_ci(va, vb, confidence=ctx.confidence, method="newcombe")
        counts = paired_counts(va, vb)
        n, delta = len(va), (counts[2] - counts[1]) / len(va)
        wald_stderr = (max(counts[1] + counts[2] - n * delta**2, 0.0)) ** 0.5 / n
        return {
            "p_value": result.p_value,
            "test": f"mcnemar_{result.method}",
            "delta_ci_low": low,
            "delta_ci_high": high,
            "p_value_is_bound": result.is_bound,
            "paired_counts": list(counts),
            "delta_stderr": wald_stderr,
            "delta_df": None,
            "mde": finite(minimum_detectable_effect(paired_proportion_stderr(va, vb), alpha=1 - ctx.confidence)),
        }
    result = paired_mean_test(va, vb, clusters=clusters, confidence=ctx.confidence)
    return {
        "p_value": finite(result.p_value),
        "test": "cluster_paired_t" if clusters is not None else "paired_t",
        "delta_ci_low": finite(result.low),
        "delta_ci_high": finite(result.high),
        "p_value_is_bound": False,
        "delta_stderr": finite(result.stderr),
        "delta_df": int(result.df) if result.df >= 1 else None,
        "mde": finite(minimum_detectable_effect(result.stderr, alpha=1 - ctx.confidence)),
    }


def _corpus_tests(ctx: Context, task: str, label: str, names: list[str], recs_a, recs_b) -> dict[str, dict[str, Any]]:
    trusted = set(_hook_reproduces(ctx, task, ctx.baseline)) & set(_hook_reproduces(ctx, task, label))
    names = [name for name in names if name in trusted]
    if not names:
        return {}
    base_tr, tr = ctx.task(ctx.baseline, task), ctx.task(label, task)
    clusters = _task_clusters(ctx, task, ctx.baseline, recs_a)
    covers_all = len(recs_a) == len(ctx.records(ctx.baseline, task)) == len(ctx.records(label, task))
    covers_all = covers_all and clusters == _task_clusters(ctx, task, label, recs_b)  # same groups on both sides
    if covers_all:  # same sorted ids and n: each checkpoint's own leave-one-out rows are the paired ones
        jack_a, jack_b = own_jackknife(ctx, task, ctx.baseline), own_jackknife(ctx, task, label)
        covers_all = all(name in jack_a and name in jack_b for name in names)
    if not covers_all:
        jack_a = jackknife_values(ctx, task, ctx.baseline, base_tr.evaluator, recs_a, names, clusters)
        jack_b = jackknife_values(ctx, task, label, tr.evaluator, recs_b, names, clusters)
    tests = {}
    for name in names:
        if name in jack_a and name in jack_b:
            tests[name] = _corpus_test(ctx, task, label, name, recs_a, recs_b, jack_b[name] - jack_a[name], clusters)
    return tests


def _corpus_test(
    ctx: Context, task: str, label: str, name: str, recs_a, recs_b, jack_delta: np.ndarray, clusters: list[str] | None
) -> dict[str, Any]:
    """Jackknife interval of the paired delta and the approximate randomization p-value, on the aligned records."""
    evaluator = ctx.task(ctx.baseline, task).evaluator
    observed = _observed_delta(evaluator, recs_a, recs_b, name)
    out: dict[str, Any] = {"delta_ci_low": None, "delta_ci_high": None, "p_value": None, "test": None}
    if observed is None:
        return out
    low, high, stderr = jackknife_ci(observed, jack_delta, confidence=ctx.confidence)
    if wants_bootstrap(ctx, task, label, name):  # a cut-based statistic: paired bootstrap (_bootstrap.py)
        low, high = bootstrap_delta_ci(ctx, task, label, name, recs_a, recs_b, observed)
        stderr = (high - low) / (2 * float(norm.ppf(0.5 + ctx.confidence / 2))) if None not in (low, high) else None
    out.update(
        delta_ci_low=finite(low),
        delta_ci_high=finite(high),
        delta_df=None,
        delta_stderr=finite(stderr) if stderr is not None else None,
        mde=finite(minimum_detectable_effect(stderr, alpha=1 - ctx.confidence)) if stderr is not None else None,
    )
    result = randomization(ctx, task, evaluator, recs_a, recs_b, name, observed, clusters)
    if result is not None:
        out.update(
            p_value=result.p_value,
            p_value_is_bound=result.is_bound,
            n_resamples=result.n_resamples,
            test="cluster_approximate_randomization" if clusters else "approximate_randomization",
        )
    return out


def _observed_delta(evaluator: str, recs_a, recs_b, name: str) -> float | None:
    hook = resample_hook(evaluator)
    everything = np.arange(len(recs_a))[None, :]
    try:
        a = hook(list(recs_a), [name], everything).get(name)
        b = hook(list(recs_b), [name], everything).get(name)
    except Exception:  # the hook already failed visibly while resampling
        return None
    if a is None or b is None:
        return None
    return finite(float(np.asarray(b, dtype=float).ravel()[0] - np.asarray(a, dtype=float).ravel()[0]))
