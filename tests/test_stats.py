"""Statistics of evalkit.metrics.stats against SciPy and hand-computed values."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2

from evalkit.metrics import stats
from evalkit.metrics.stats import (bootstrap_mean_ci, bootstrap_summary, iter_bootstrap_indices, mcnemar_test,
                                   normal_ci, paired_bootstrap, paired_proportion_difference_ci, proportion_ci)


def _pairs(n01: int, n10: int, n11: int = 5, n00: int = 5) -> tuple[list[int], list[int]]:
    a = [0] * n01 + [1] * n10 + [1] * n11 + [0] * n00
    b = [1] * n01 + [0] * n10 + [1] * n11 + [0] * n00
    return a, b


def test_doctests_pass():
    assert doctest.testmod(stats).failed == 0


# ----------------------------------------------------------------------------------- McNemar
def test_mcnemar_exact_hand_value():
    # two-sided binomial, 1 vs 5 discordant: 2 * (C(6,0) + C(6,1)) / 2**6
    result = mcnemar_test(*_pairs(n01=1, n10=5))
    assert (result.method, result.n01, result.n10, result.statistic) == ("exact", 1, 5, 1.0)
    assert result.p_value == pytest.approx(2 * 7 / 64)


@pytest.mark.parametrize("n01,n10", [(0, 3), (7, 2), (12, 12), (4, 20)])
def test_mcnemar_exact_matches_scipy_binomtest(n01, n10):
    result = mcnemar_test(*_pairs(n01, n10), exact=True)
    assert result.p_value == pytest.approx(binomtest(n10, n01 + n10, 0.5).pvalue)


def test_mcnemar_chi2_hand_value():
    result = mcnemar_test(*_pairs(n01=30, n10=10))
    assert result.method == "chi2"
    assert result.statistic == pytest.approx((20 - 1) ** 2 / 40)
    # chi-square with 1 df: sf(x) = erfc(sqrt(x / 2))
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(result.statistic / 2)))
    assert result.p_value == pytest.approx(chi2.sf(9.025, 1))


def test_mcnemar_switches_to_chi2_at_25_discordant_pairs():
    assert mcnemar_test(*_pairs(12, 12)).method == "exact"
    assert mcnemar_test(*_pairs(12, 13)).method == "chi2"
    assert mcnemar_test(*_pairs(12, 13), exact=True).method == "exact"
    assert mcnemar_test(*_pairs(1, 2), exact=False).method == "chi2"


def test_mcnemar_no_discordant_pairs_and_balanced_chi2_give_p_one():
    assert mcnemar_test([1, 0, 1], [1, 0, 1]).p_value == 1.0
    assert mcnemar_test(*_pairs(20, 20), exact=False).p_value == 1.0  # continuity correction clipped at 0


def test_mcnemar_accepts_booleans_and_is_symmetric():
    a, b = _pairs(3, 9)
    forward = mcnemar_test(np.array(a, bool), np.array(b, bool))
    backward = mcnemar_test(b, a)
    assert forward.p_value == pytest.approx(backward.p_value)
    assert (forward.n01, forward.n10) == (backward.n10, backward.n01)


@pytest.mark.parametrize("a,b,kwargs,match", [
    ([1, 0], [1], {}, "same length"),
    ([1, 2], [1, 0], {}, "correct_a"),
    ([[1, 0]], [[1, 0]], {}, "1-D"),
    ([1, 0], [1, 0], {"exact": "yes"}, "'exact'"),
])
def test_mcnemar_validates(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mcnemar_test(a, b, **kwargs)


# ----------------------------------------------------------------------------------- intervals
def test_wilson_hand_values():
    # 0/10: centre = half-width = (z^2/2) / (10 + z^2)
    z = 1.959963984540054
    assert proportion_ci(0, 10) == pytest.approx((0.0, z**2 / (10 + z**2)))
    assert proportion_ci(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_wilson_is_vectorised_and_nan_for_empty():
    low, high = proportion_ci(np.array([0, 5, 0]), np.array([10, 10, 0]))
    assert low.shape == (3,) and np.isnan(low[2]) and np.isnan(high[2])
    assert low[1] == pytest.approx(proportion_ci(5, 10)[0])


def test_wald_interval_and_normal_ci():
    assert proportion_ci(5, 10, method="wald") == pytest.approx((0.5 - 1.96 * math.sqrt(0.025), 0.5 + 1.96 * math.sqrt(0.025)), abs=1e-4)
    assert normal_ci(0.5, 0.1, confidence=0.9) == pytest.approx((0.5 - 0.16449, 0.5 + 0.16449), abs=1e-4)


@pytest.mark.parametrize("kwargs,match", [({"method": "exact"}, "'method'"), ({"confidence": 1.0}, "'confidence'"),
                                          ({"confidence": True}, "'confidence'")])
def test_proportion_ci_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        proportion_ci(1, 2, **kwargs)
    with pytest.raises(ValueError, match="successes <= n"):
        proportion_ci(3, 2)


def test_paired_difference_wald_hand_value():
    a, b = _pairs(n01=5, n10=10, n11=50, n00=35)
    delta, low, high = paired_proportion_difference_ci(a, b, method="wald")
    half = 1.959964 * math.sqrt(15 - 100 * 0.05**2) / 100
    assert (delta, low, high) == pytest.approx((-0.05, -0.05 - half, -0.05 + half))


def test_newcombe_stays_in_range_and_contains_estimate():
    delta, low, high = paired_proportion_difference_ci([1] * 10, [0] * 10)
    assert delta == -1.0 and low == -1.0 and -1.0 < high < -0.5
    delta, low, high = paired_proportion_difference_ci(*_pairs(5, 10, 50, 35))
    assert low < delta < high and high - low < 0.2


def test_newcombe_matches_published_example():
    # Newcombe (1998), Stat Med 17:2635, example (e, f, g, h) = (36, 12, 2, 0): 0.0569 to 0.3404 for f - g
    a, b = _pairs(n01=2, n10=12, n11=36, n00=0)
    delta, low, high = paired_proportion_difference_ci(b, a)
    assert (delta, low, high) == pytest.approx((0.2, 0.0569, 0.3404), abs=5e-5)


def test_newcombe_coverage_is_near_nominal():
    rng = np.random.default_rng(0)
    # P(A right) = 0.5; B right = (u < 0.6) flipped 10 % of the time: 0.6 * 0.9 + 0.4 * 0.1 = 0.58
    covered, trials, true_delta = 0, 400, 0.08
    for _ in range(trials):
        u = rng.random(80)
        a, b = u < 0.5, (u < 0.6) ^ (rng.random(80) < 0.1)
        _, low, high = paired_proportion_difference_ci(a, b)
        covered += low <= true_delta <= high
    assert 0.9 <= covered / trials <= 1.0


# ----------------------------------------------------------------------------------- bootstrap
def test_bootstrap_summary_p_value_formula():
    result = bootstrap_summary(0.1, [-0.1, 0.05, 0.1, 0.2])
    # tails: #<=0 -> 1, #>=0 -> 3; p = 2 * (1 + 1) / 5
    assert result.p_value == pytest.approx(0.8)
    assert bootstrap_summary(0.0, np.zeros(50)).p_value == 1.0
    assert math.isnan(bootstrap_summary(0.0, [np.nan]).p_value)


def test_paired_bootstrap_is_deterministic_and_seed_dependent():
    rng = np.random.default_rng(1)
    a = rng.normal(size=60)
    b = a + rng.normal(0.2, 1.0, size=60)
    first = paired_bootstrap(None, a, b, n_resamples=300, random_state=7)
    assert first == paired_bootstrap(None, a, b, n_resamples=300, random_state=7)
    assert first != paired_bootstrap(None, a, b, n_resamples=300, random_state=8)
    assert first.delta == pytest.approx(np.mean(b - a))


def test_paired_bootstrap_identical_and_shifted_systems():
    a = np.linspace(0, 1, 40)
    same = paired_bootstrap(None, a, a, n_resamples=200)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shifted = paired_bootstrap(None, a, a + 0.3, n_resamples=200)
    assert shifted.p_value == pytest.approx(2 / 201)


def test_paired_bootstrap_coverage_sanity():
    rng = np.random.default_rng(3)
    covered, trials = 0, 60
    for trial in range(trials):
        a = rng.normal(size=50)
        b = a + rng.normal(0.1, 1.0, size=50)
        result = paired_bootstrap(None, a, b, n_resamples=300, random_state=trial)
        covered += result.ci_low <= 0.1 <= result.ci_high
    assert covered / trials >= 0.85


def test_paired_bootstrap_callable_and_precomputed_scores_agree():
    rng = np.random.default_rng(5)
    a, b = rng.random(30), rng.random(30)

    def median(values, indices):
        return np.median(values[indices], axis=1)

    direct = paired_bootstrap(median, a, b, n_resamples=100, random_state=2)
    idx = np.concatenate(list(iter_bootstrap_indices(30, n_resamples=100, random_state=2)))
    via_scores = paired_bootstrap(scores_a=median(a, idx), scores_b=median(b, idx), observed_delta=direct.delta)
    assert direct == pytest.approx(via_scores)
    assert direct.delta == pytest.approx(np.median(b) - np.median(a))


def test_bootstrap_indices_are_chunked_but_identical_per_seed():
    chunks = list(iter_bootstrap_indices(10, n_resamples=25, random_state=0, max_entries=100))
    assert [c.shape for c in chunks] == [(10, 10), (10, 10), (5, 10)]
    again = list(iter_bootstrap_indices(10, n_resamples=25, random_state=0, max_entries=100))
    assert all(np.array_equal(x, y) for x, y in zip(chunks, again))
    assert min(c.min() for c in chunks) >= 0 and max(c.max() for c in chunks) <= 9


def test_bootstrap_mean_ci():
    assert bootstrap_mean_ci([2.0] * 5) == (2.0, 2.0, 2.0)
    mean, low, high = bootstrap_mean_ci(np.arange(100.0), n_resamples=500)
    assert low < mean == 49.5 < high
    assert all(math.isnan(x) for x in bootstrap_mean_ci([]))


@pytest.mark.parametrize("kwargs,match", [
    ({"a": [1.0], "b": [1.0, 2.0]}, "same length"),
    ({"a": [1.0], "b": [1.0], "n_resamples": 0}, "'n_resamples'"),
    ({"a": [1.0], "b": [1.0], "metric": "mean"}, "'metric'"),
    ({}, "either"),
    ({"scores_a": [1.0, 2.0], "scores_b": [1.0]}, "equal length"),
])
def test_paired_bootstrap_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(**kwargs)


# ----------------------------------------------------------------------------------- BCa
def test_bca_interval_equals_scipy_bootstrap_on_the_same_resamples():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    data = rng.lognormal(size=60)  # skewed: BCa differs from the percentile interval
    for confidence in (0.9, 0.95):
        ref = bootstrap((data,), np.mean, n_resamples=2000, method="BCa", confidence_level=confidence,
                        random_state=np.random.default_rng(11), vectorized=True)
        idx = np.random.default_rng(11).integers(0, data.size, (2000, data.size))  # scipy's draws
        jack = np.concatenate([data[chunk].mean(axis=1) for chunk in stats.jackknife_indices(data.size)])
        low, high = stats.bca_interval(data.mean(), data[idx].mean(axis=1), jack, confidence=confidence)
        assert (low, high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), rel=1e-12)


def test_bca_edge_cases():
    assert stats.bca_interval(0.5, [0.5] * 10, [0.5] * 4) == (0.5, 0.5)
    assert all(math.isnan(x) for x in stats.bca_interval(0.5, [math.nan] * 3, [0.5] * 3))
    low, high = stats.bca_interval(2.0, [0.0, 0.5, 1.0, 1.5], [1.0, 1.1, 0.9])  # estimate above every resample
    assert math.isfinite(low) and math.isfinite(high)
    assert stats.contain(2.0, low, high) == (2.0, low, 2.0, True)


def test_jackknife_indices_leave_each_position_out():
    rows = np.concatenate(list(stats.jackknife_indices(5, max_entries=8)))
    assert rows.shape == (5, 4)
    for i, row in enumerate(rows):
        assert sorted(set(range(5)) - set(row.tolist())) == [i]
    with pytest.raises(ValueError, match="'n'"):
        next(stats.jackknife_indices(1))


# ----------------------------------------------------------------------------------- means and clusters
def test_mean_ci_and_paired_mean_test_equal_scipy_without_clusters():
    from scipy.stats import t, ttest_rel

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=40), rng.normal(0.3, size=40)
    r = stats.mean_ci(a)
    sem = a.std(ddof=1) / math.sqrt(a.size)
    assert (r.low, r.high) == pytest.approx(t.interval(0.95, 39, loc=a.mean(), scale=sem))
    paired = stats.paired_mean_test(a, b)
    ref = ttest_rel(b, a)
    assert paired.p_value == pytest.approx(ref.pvalue) and paired.df == 39
    ci = ref.confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ci.low, ci.high))


def test_cluster_robust_mean_and_paired_test_equal_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 6, size=50)  # 50 prompts with 1-5 instructions each, correlated within a prompt
    clusters = np.repeat(np.arange(50), sizes)
    prompt_effect = np.repeat(rng.normal(size=50), sizes)
    a = (prompt_effect + rng.normal(size=clusters.size) > 0).astype(float)
    b = (prompt_effect + 0.3 + rng.normal(size=clusters.size) > 0).astype(float)
    ones = np.ones(clusters.size)
    fit = sm.OLS(a, ones).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    r = stats.mean_ci(a, clusters=clusters)
    assert r.stderr == pytest.approx(fit.bse[0], rel=1e-10) and r.df == 49
    assert (r.low, r.high) == pytest.approx(tuple(fit.conf_int(0.05)[0]), rel=1e-10)
    fit_d = sm.OLS(b - a, ones).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
    paired = stats.paired_mean_test(a, b, clusters=clusters)
    assert paired.stderr == pytest.approx(fit_d.bse[0], rel=1e-10)
    assert paired.p_value == pytest.approx(fit_d.pvalues[0], rel=1e-8)
    assert (paired.low, paired.high) == pytest.approx(tuple(fit_d.conf_int(0.05)[0]), rel=1e-10)
    # ignoring the clusters understates the uncertainty of correlated units
    assert stats.mean_ci(a).stderr < r.stderr


def test_paired_mean_test_degenerate_differences():
    assert stats.paired_mean_test([0, 1], [0, 1])[:4] == (0.0, 0.0, 0.0, 1.0)
    assert stats.paired_mean_test([0, 1], [1, 2]).p_value == 0.0
    with pytest.raises(ValueError, match="same length"):
        stats.paired_mean_test([0, 1], [1])
    with pytest.raises(ValueError, match="clusters"):
        stats.mean_ci([0, 1], clusters=["a"])


# ----------------------------------------------------------------------------------- randomization
def _swap_stat(a, b):
    def deltas(swap):
        return np.where(swap, a, b).mean(axis=1) - np.where(swap, b, a).mean(axis=1)
    return deltas


def test_randomization_test_is_exact_under_the_null_and_reports_its_resolution():
    rng = np.random.default_rng(0)
    rejections = 0
    for _ in range(200):
        a, b = rng.random(30), rng.random(30)
        r = stats.randomization_test(_swap_stat(a, b), 30, float(b.mean() - a.mean()), n_resamples=199,
                                     max_resamples=199, random_state=rng)
        rejections += r.p_value < 0.05
    assert rejections / 200 <= 0.09  # nominal 5 %, binomial spread over 200 repeats
    a = np.zeros(50)
    b = np.ones(50)
    r = stats.randomization_test(_swap_stat(a, b), 50, 1.0, n_resamples=500)
    assert r.is_bound and r.count == 0 and r.p_value == r.resolution == 1 / 501


def test_randomization_test_resamples_more_near_alpha():
    rng = np.random.default_rng(1)
    a = rng.normal(size=60)
    b = a + rng.normal(size=60)
    observed = float(b.mean() - a.mean())
    first = stats.randomization_test(_swap_stat(a, b), 60, observed, n_resamples=200, max_resamples=200, alpha=0.5)
    adaptive = stats.randomization_test(_swap_stat(a, b), 60, observed, n_resamples=200, max_resamples=3200,
                                        alpha=first.p_value)  # p right at alpha: keeps doubling to the cap
    assert adaptive.n_resamples == 3200 and adaptive.resolution == 1 / 3201


# ----------------------------------------------------------------------------------- multiplicity
def test_holm_and_bh_equal_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.random(40), rng.random(17) * 0.01])
    assert stats.holm_adjust(p) == pytest.approx(multitest.multipletests(p, method="holm")[1])
    assert stats.bh_adjust(p) == pytest.approx(multitest.multipletests(p, method="fdr_bh")[1])
    with_none = stats.holm_adjust([0.01, None, 0.02])
    assert math.isnan(with_none[1]) and with_none[[0, 2]].tolist() == pytest.approx([0.02, 0.02])
    with pytest.raises(ValueError, match="probabilities"):
        stats.bh_adjust([1.5])


def test_holm_null_simulation_on_57_subjects():
    """Two checkpoints with equal accuracy and independent errors on MMLU-sized subjects: after Holm,
    at most 5 % of 200 seeded repeats flag any subject (raw p-values flag most repeats)."""
    rng = np.random.default_rng(2024)
    sizes = rng.integers(100, 400, size=57)
    flagged_holm = flagged_raw = 0
    for _ in range(200):
        p_values = []
        for n in sizes:
            a, b = rng.random(n) < 0.6, rng.random(n) < 0.6
            p_values.append(mcnemar_test(a, b).p_value)
        flagged_holm += bool(np.any(stats.holm_adjust(p_values) < 0.05))
        flagged_raw += bool(np.any(np.asarray(p_values) < 0.05))
    assert flagged_holm / 200 <= 0.05
    assert flagged_raw / 200 > 0.5


# ----------------------------------------------------------------------------------- power
def test_minimum_detectable_effect():
    assert stats.minimum_detectable_effect(0.01) == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-6)
    assert stats.minimum_detectable_effect(0.01, alpha=0.01, power=0.9) == pytest.approx((2.575829 + 1.281552) * 0.01,
                                                                                          rel=1e-6)
    assert math.isnan(stats.minimum_detectable_effect(math.nan))
    assert math.isnan(stats.minimum_detectable_effect(0.0))  # nothing varied: power is unknown, not perfect
    with pytest.raises(ValueError, match="'power'"):
        stats.minimum_detectable_effect(0.01, power=1.0)
    assert stats.paired_proportion_stderr([1, 1, 0, 0] * 25, [1, 1, 0, 1] * 25) == pytest.approx(5 / 100)
    assert stats.paired_proportion_stderr([1] * 100, [1] * 100) == pytest.approx(math.sqrt(3) / 100)


# ----------------------------------------------------------------------------------- coverage (seeded)
def _coverage_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "stats" / "coverage.py"
    spec = importlib.util.spec_from_file_location("evalkit_bench_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wilson_and_newcombe_cover_in_a_seeded_simulation():
    figures = _coverage_module().accuracy_coverage(n=300, reps=1500, seed=3)
    for name, coverage in figures.items():  # nominal 95 %; Monte Carlo SE about 0.6 %
        assert 0.93 <= coverage <= 0.975, (name, coverage)


@pytest.mark.slow
def test_jackknife_intervals_of_long_tail_macro_f1_cover_where_bootstrap_ones_do_not():
    """300 Zipf classes, 600 samples per test set (most classes seen 0-3 times), 100 seeded test sets.
    The larger study with its figures is bench/stats/README.md."""
    figures = _coverage_module().macro_f1_coverage(k=300, n=600, reps=100, seed=4, n_resamples=300, truth_reps=800)
    for what in ("value", "delta"):
        assert 0.91 <= figures[f"macro F1 {what}: normal, jackknife SE"] <= 0.995, figures
        assert figures[f"macro F1 {what}: BCa"] < 0.9, figures  # why evalkit does not use it here


def test_grouped_randomization_swaps_whole_clusters_and_stays_valid():
    rng = np.random.default_rng(9)
    groups = np.repeat(np.arange(20), 5)  # 20 clusters of 5 strongly dependent samples
    seen = []

    def record(swap):
        seen.append(swap)
        return np.zeros(len(swap))

    stats.randomization_test(record, 100, 1.0, n_resamples=50, max_resamples=50, groups=groups)
    swap = np.concatenate(seen)
    assert all((row.reshape(20, 5) == row.reshape(20, 5)[:, :1]).all() for row in swap)  # constant within a cluster
    rejections_grouped = rejections_plain = 0
    for _ in range(100):  # null: equal systems, cluster-level noise in their difference
        effect = np.repeat(rng.normal(size=20), 5)
        a = rng.normal(size=100)
        b = a + effect + 0.1 * rng.normal(size=100)
        b -= b.mean() - a.mean() - effect.mean()  # keep the cluster noise, no systematic shift
        observed = float(b.mean() - a.mean())
        for key, grouping in (("grouped", groups), ("plain", None)):
            r = stats.randomization_test(_swap_stat(a, b), 100, observed, n_resamples=199, max_resamples=199,
                                         groups=grouping, random_state=rng)
            if r.p_value < 0.05:
                if key == "grouped":
                    rejections_grouped += 1
                else:
                    rejections_plain += 1
    assert rejections_grouped / 100 <= 0.1 < rejections_plain / 100  # ignoring clusters rejects far too often


def test_jackknife_intervals_stay_inside_the_metric_range():
    """An F1 near 1 over a few rare classes: the normal interval would pass 1; the declared range cuts it."""
    from evalkit.voc.evaluator import VOC_METRIC_SPECS
    from evalkit.evaluators.base import declared_specs
    from evalkit.metrics import hierarchical

    y_true = ["A>a"] * 30 + ["B>b"] * 3 + ["C>c"] * 2
    y_pred = ["A>a"] * 30 + ["B>b"] * 3 + ["C>c", "A>a"]
    ci = hierarchical.jackknife_ci(y_true, y_pred, metrics=["leaf_macro_f1", "path_accuracy"])
    for name, (low, high) in ci.items():
        assert 0.0 <= low <= high <= 1.0, (name, low, high)
    point = hierarchical.leaf_f1_score(y_true, y_pred, average="macro")
    unclipped = stats.jackknife_ci(point, [point - 0.05, point + 0.05] * 10)
    assert unclipped[1] > 1.0  # what the range prevents
    class E:
        metric_specs = VOC_METRIC_SPECS
    specs = declared_specs(E, ["leaf_macro_f1", "level1_macro_f1", "hier_f1", "mean_first_error_depth", "level/f1"])
    assert specs["leaf_macro_f1"].bounds == specs["level1_macro_f1"].bounds == specs["hier_f1"].bounds == (0.0, 1.0)
    assert specs["mean_first_error_depth"].bounds is None and specs["level/f1"].bounds is None


def test_mcnemar_p_value_is_never_zero_below_the_float_range():
    """statsmodels' mcnemar returns exactly 0.0 on 4,000 vs 100 discordant pairs; evalkit returns a bound."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    from evalkit.metrics.stats import P_VALUE_FLOOR, mcnemar_test

    a = [1] * 4000 + [0] * 100 + [1] * 50
    b = [0] * 4000 + [1] * 100 + [1] * 50
    reference = sm_mcnemar([[50, 4000], [100, 0]], exact=False, correction=True).pvalue
    result = mcnemar_test(a, b)
    assert reference == 0.0 and result.p_value == P_VALUE_FLOOR > 0 and result.is_bound
    moderate = mcnemar_test([1] * 60 + [0] * 40, [1] * 45 + [0] * 15 + [1] * 10 + [0] * 30)
    assert not moderate.is_bound
    assert moderate.p_value == pytest.approx(sm_mcnemar([[45, 15], [10, 30]], exact=False, correction=True).pvalue)


def test_paired_bounds_err_at_most_alpha_on_one_side():
    """The lower end of the gate's paired bounds exceeds the true difference at most about alpha of the time
    (seeded 4,000 tables at n = 300 and a 0.05 difference, where uncorrected Newcombe erred 5.7 %)."""
    import numpy as np

    from evalkit.metrics.stats import paired_proportion_bounds

    rng = np.random.default_rng(5)
    n, true_delta = 300, -0.05  # p10 = 0.075, p01 = 0.025
    tables = rng.multinomial(n, [0.675, 0.075, 0.025, 0.225], size=4000)
    misses_low = sum(paired_proportion_bounds(*map(int, t), alpha=0.05)[0] > true_delta for t in tables)
    assert misses_low / 4000 <= 0.05 + 2 * (0.05 * 0.95 / 4000) ** 0.5
