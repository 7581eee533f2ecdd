"""Paired significance tests and confidence intervals for comparing checkpoints.

Pure, vectorised functions in the style of :mod:`sklearn.metrics`: array-likes in, floats or small
named tuples out, parameters validated up front with a :class:`ValueError` that names the parameter.

Conventions
-----------
* "A" is the reference (baseline) and "B" the candidate; every delta is ``B - A``.
* McNemar counts: ``n01`` = A wrong and B right (B gained), ``n10`` = A right and B wrong (B lost).
* Bootstrap resamples are index arrays of shape ``(n_resamples, n)`` drawn with replacement from
  ``numpy.random.default_rng(random_state)``; the *same* indices are applied to A and B, which is
  what makes the bootstrap paired. Results are deterministic for a given ``random_state``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from numbers import Integral, Real
from typing import Any, NamedTuple, overload

import numpy as np

__all__ = [
    "McNemarResult",
    "BootstrapResult",
    "mcnemar_test",
    "proportion_ci",
    "normal_ci",
    "iter_bootstrap_indices",
    "bootstrap_summary",
    "paired_bootstrap",
    "bootstrap_mean_ci",
    "paired_proportion_difference_ci",
    "IntervalResult",
    "contain",
    "cut_to_range",
    "jackknife_indices",
    "bca_interval",
    "jackknife_stderr",
    "jackknife_ci",
    "MeanResult",
    "mean_ci",
    "PairedTestResult",
    "paired_mean_test",
    "RandomizationResult",
    "randomization_test",
    "holm_adjust",
    "bh_adjust",
    "minimum_detectable_effect",
    "paired_proportion_stderr",
    "one_sided_bounds",
    "paired_proportion_bounds",
    "proportion_bounds",
    "paired_counts",
]

#: Below this many discordant pairs, :func:`mcnemar_test` uses the exact binomial test by default
#: (the chi-square approximation is poor for small counts).
EXACT_DISCORDANT_LIMIT = 25

#: At most this many index entries (resamples x samples) are materialised at once, so a bootstrap of
#: 14,000 MMLU questions does not allocate gigabytes.
_MAX_INDEX_ENTRIES = 2_000_000


class McNemarResult(NamedTuple):
    """Outcome of :func:`mcnemar_test`."""

    statistic: float
    p_value: float
    method: str  # "exact" or "chi2"
    n01: int  # A wrong, B right
    n10: int  # A right, B wrong
    is_bound: bool = False  # True: the p-value is below the floating-point range; p_value is an upper bound


#: Smallest p-value reported as a number; a smaller one is reported as this bound with ``is_bound``.
P_VALUE_FLOOR = float(np.finfo(float).tiny)


def _floored(p_value: float) -> tuple[float, bool]:
    """``(max(p, P_VALUE_FLOOR), was_floored)``: a p-value of exactly 0 would claim certainty."""
    return (P_VALUE_FLOOR, True) if p_value < P_VALUE_FLOOR else (float(p_value), False)


class BootstrapResult(NamedTuple):
    """Outcome of :func:`paired_bootstrap`: observed delta ``B - A``, its percentile CI and p-value."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float


# --------------------------------------------------------------------------- validation helpers
def _check_confidence(confidence: Any, func: str) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise ValueError(f"The 'confidence' parameter of {func} must be a float in (0, 1). Got {confidence!r} instead.")
    return float(confidence)


def _check_n_resamples(n_resamples: Any, func: str) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, Integral) or n_resamples < 1:
        raise ValueError(f"The 'n_resamples' parameter of {func} must be an int >= 1. Got {n_resamples!r} instead.")
    return int(n_resamples)


def _as_binary(values: Any, name: str, func: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"The '{name}' parameter of {func} must be 1-D. Got shape {array.shape} instead.")
    if array.dtype != bool:
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError(f"The '{name}' parameter of {func} must contain only 0/1 or booleans.")
        array = array.astype(bool)
    return array


@functools.lru_cache(maxsize=64)
def _z(confidence: float) -> float:
    """Two-sided normal quantile; cached, since scipy's ppf costs more than a whole gate decision.

    ``scipy.special.ndtri`` is what ``scipy.stats.norm.ppf`` computes, bit for bit, without importing
    scipy.stats (~1.8 s, more than the rest of ``evalkit gate``)."""
    from scipy.special import ndtri

    return float(ndtri(0.5 + confidence / 2))


# --------------------------------------------------------------------------- McNemar
def mcnemar_test(correct_a: Any, correct_b: Any, *, exact: bool | None = None) -> McNemarResult:
    """McNemar's test of paired right/wrong outcomes of two systems on the same samples.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool or {0, 1}, shape (n,)
        Per-sample correctness of the reference (A) and the candidate (B), aligned by sample.
    exact : bool or None, default=None
        ``True``: exact two-sided binomial test of ``n10`` successes in ``n01 + n10`` trials with
        p = 0.5 (:func:`scipy.stats.binomtest`); ``False``: chi-square with continuity correction,
        ``(max(|n01 - n10| - 1, 0))**2 / (n01 + n10)`` on 1 degree of freedom; ``None``: exact when
        fewer than 25 pairs are discordant, else chi-square.

    Returns
    -------
    McNemarResult
        ``statistic`` (``min(n01, n10)`` for the exact test, the chi-square value otherwise),
        ``p_value``, ``method`` ("exact" or "chi2"), ``n01`` and ``n10``. With no discordant pairs
        the p-value is 1. A p-value below the smallest normal float (:data:`P_VALUE_FLOOR`) is
        reported as that floor with ``is_bound=True`` (it is an upper bound, never 0).

    Examples
    --------
    >>> mcnemar_test([1] * 4100 + [0] * 100, [0] * 4000 + [1] * 200).is_bound  # chi-square 3,700
    True
    >>> a = [1, 1, 1, 1, 1, 1, 0, 0]
    >>> b = [1, 0, 0, 0, 0, 0, 0, 1]
    >>> result = mcnemar_test(a, b)
    >>> result.method, result.n01, result.n10, round(result.p_value, 4)
    ('exact', 1, 5, 0.2188)
    """
    func = "mcnemar_test"
    a = _as_binary(correct_a, "correct_a", func)
    b = _as_binary(correct_b, "correct_b", func)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b of {func} must have the same length. Got {a.size} and {b.size}.")
    if exact is not None and not isinstance(exact, bool):
        raise ValueError(f"The 'exact' parameter of {func} must be True, False or None. Got {exact!r} instead.")
    n01 = int(np.count_nonzero(~a & b))
    n10 = int(np.count_nonzero(a & ~b))
    discordant = n01 + n10
    use_exact = discordant < EXACT_DISCORDANT_LIMIT if exact is None else exact
    if discordant == 0:
        return McNemarResult(0.0, 1.0, "exact" if use_exact else "chi2", n01, n10)
    if use_exact:
        from scipy.stats import binomtest

        p_value, bound = _floored(min(binomtest(n10, discordant, 0.5, alternative="two-sided").pvalue, 1.0))
        return McNemarResult(float(min(n01, n10)), p_value, "exact", n01, n10, bound)
    from scipy.stats import chi2

    statistic = max(abs(n01 - n10) - 1, 0) ** 2 / discordant
    p_value, bound = _floored(float(chi2.sf(statistic, 1)))
    return McNemarResult(float(statistic), p_value, "chi2", n01, n10, bound)


# --------------------------------------------------------------------------- intervals
def proportion_ci(successes: Any, n: Any, *, confidence: float = 0.95, method: str = "wilson"):
    """Confidence interval for a binomial proportion ``successes / n`` (vectorised).

    Parameters
    ----------
    successes, n : int or array-like of int
        Success counts and trial counts (broadcast together); ``0 <= successes <= n``.
    confidence : float, default=0.95
        Two-sided coverage in (0, 1).
    method : {"wilson", "wald"}, default="wilson"
        Wilson score interval (good near 0 and 1) or the normal-approximation (Wald) interval,
        clipped to [0, 1].

    Returns
    -------
    low, high : float or ndarray
        NaN where ``n == 0``.

    Examples
    --------
    >>> low, high = proportion_ci(0, 10)
    >>> round(float(low), 4), round(float(high), 4)
    (0.0, 0.2775)
    >>> [round(float(x), 4) for x in proportion_ci(5, 10, method="wald")]
    [0.1901, 0.8099]
    """
    func = "proportion_ci"
    confidence = _check_confidence(confidence, func)
    if method not in ("wilson", "wald"):
        raise ValueError(
            f"The 'method' parameter of {func} must be a str among {{'wilson', 'wald'}}. Got {method!r} instead."
        )
    k = np.asarray(successes, dtype=float)
    total = np.asarray(n, dtype=float)
    if np.any(k < 0) or np.any(total < 0) or np.any(k > total):
        raise ValueError(f"{func} needs 0 <= successes <= n. Got successes={successes!r}, n={n!r}.")
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / total
        if method == "wald":
            half = z * np.sqrt(p * (1 - p) / total)
            low, high = np.clip(p - half, 0, 1), np.clip(p + half, 0, 1)
        else:
            denom = total + z**2
            centre = (k + z**2 / 2) / denom
            half = z / denom * np.sqrt(k * (total - k) / total + z**2 / 4)
            low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low, high = np.where(total > 0, low, np.nan), np.where(total > 0, high, np.nan)
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


def normal_ci(value: float, stderr: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval ``value ± z * stderr`` (z = 1.96 for 95 %).

    Examples
    --------
    >>> [round(x, 3) for x in normal_ci(0.5, 0.1)]
    [0.304, 0.696]
    """
    z = _z(_check_confidence(confidence, "normal_ci"))
    return float(value - z * stderr), float(value + z * stderr)


def paired_proportion_difference_ci(
    correct_a: Any, correct_b: Any, *, confidence: float = 0.95, method: str = "newcombe"
) -> tuple[float, float, float]:
    """Interval for the difference of two paired proportions, ``mean(correct_b) - mean(correct_a)``.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool or {0, 1}, shape (n,)
        Per-sample correctness, aligned by sample.
    confidence : float, default=0.95
    method : {"newcombe", "wald"}, default="newcombe"
        ``"newcombe"``: Newcombe's (1998) hybrid score interval for paired data ("method 10"): Wilson
        intervals of both proportions combined with the phi correlation of the 2x2 table; stays in
        [-1, 1] and behaves well near 0 and 1. ``"wald"``: ``d ± z * sqrt(n01 + n10 - n*d**2) / n``.

    Returns
    -------
    delta, low, high : float
        NaN for empty input.

    Examples
    --------
    >>> a = [1] * 60 + [0] * 40
    >>> b = [1] * 50 + [0] * 10 + [1] * 5 + [0] * 35
    >>> [round(x, 4) for x in paired_proportion_difference_ci(a, b, method="wald")]
    [-0.05, -0.1253, 0.0253]
    """
    func = "paired_proportion_difference_ci"
    confidence = _check_confidence(confidence, func)
    if method not in ("newcombe", "wald"):
        raise ValueError(
            f"The 'method' parameter of {func} must be a str among {{'newcombe', 'wald'}}. Got {method!r} instead."
        )
    a = _as_binary(correct_a, "correct_a", func)
    b = _as_binary(correct_b, "correct_b", func)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b of {func} must have the same length. Got {a.size} and {b.size}.")
    n = a.size
    if n == 0:
        return math.nan, math.nan, math.nan
    n11, n01 = int(np.sum(a & b)), int(np.sum(~a & b))
    n10, n00 = int(np.sum(a & ~b)), int(np.sum(~a & ~b))
    delta = (n01 - n10) / n
    if method == "wald":
        half = _z(confidence) * math.sqrt(max(n01 + n10 - n * delta**2, 0.0)) / n
        return delta, max(delta - half, -1.0), min(delta + half, 1.0)
    return (delta, *_newcombe_paired(n11, n10, n01, n00, confidence))


def _newcombe_paired(n11: int, n10: int, n01: int, n00: int, confidence: float) -> tuple[float, float]:
    n = n11 + n10 + n01 + n00
    p_b, p_a = (n11 + n01) / n, (n11 + n10) / n
    low_b, high_b = proportion_ci(n11 + n01, n, confidence=confidence)
    low_a, high_a = proportion_ci(n11 + n10, n, confidence=confidence)
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    phi = (n11 * n00 - n10 * n01) / math.sqrt(margins) if margins > 0 else 0.0
    delta = p_b - p_a
    below = (p_b - low_b) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a) + (high_a - p_a) ** 2
    above = (high_b - p_b) ** 2 - 2 * phi * (high_b - p_b) * (p_a - low_a) + (p_a - low_a) ** 2
    return max(delta - math.sqrt(max(below, 0.0)), -1.0), min(delta + math.sqrt(max(above, 0.0)), 1.0)


def paired_counts(correct_a: Any, correct_b: Any) -> tuple[int, int, int, int]:
    """The 2x2 table ``(n11, n10, n01, n00)`` of paired right/wrong outcomes (first digit: A right).

    Examples
    --------
    >>> paired_counts([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    (2, 1, 1, 1)
    """
    a = _as_binary(correct_a, "correct_a", "paired_counts")
    b = _as_binary(correct_b, "correct_b", "paired_counts")
    if a.shape != b.shape:
        raise ValueError(
            f"correct_a and correct_b of paired_counts must have the same length. Got {a.size} and {b.size}."
        )
    return (int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b)), int(np.sum(~a & ~b)))


# --------------------------------------------------------------------------- one-sided bounds (gates)
def _check_alpha(alpha: Any, func: str) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 < alpha < 0.5:
        raise ValueError(f"The 'alpha' parameter of {func} must be a float in (0, 0.5). Got {alpha!r} instead.")
    return float(alpha)


@overload
def cut_to_range(
    low: float, high: float, bounds: tuple[float, float] | None, *, baseline: float | None = 0.0
) -> tuple[float, float]: ...


@overload
def cut_to_range(
    low: float | None, high: float | None, bounds: tuple[float, float] | None, *, baseline: float | None = 0.0
) -> tuple[float | None, float | None]: ...


def cut_to_range(low, high, bounds, *, baseline=0.0):
    """Cut an interval of ``value - baseline`` to the changes a value in ``bounds`` allows.

    The one place intervals and bounds are cut to a metric's range (its ``MetricSpec.bounds``): with
    ``baseline=0`` an interval of the value itself, else of its change from ``baseline``. A metric in
    [0, 1] that starts from 0.008 cannot gain more than 0.992, so ``[+0.87, +1.004]`` reads
    ``[+0.87, +0.992]``; the true value lies in the range, so cutting keeps coverage. None (an end, the
    bounds or the baseline) leaves that part as it is.

    Examples
    --------
    >>> cut_to_range(0.87, 1.004, (0.0, 1.0), baseline=0.008)
    (0.87, 0.992)
    >>> cut_to_range(-0.02, 1.03, (0.0, 1.0))
    (0.0, 1.0)
    >>> cut_to_range(0.1, None, None)
    (0.1, None)
    """
    if bounds is None or baseline is None:
        return low, high
    least, most = bounds[0] - baseline, bounds[1] - baseline
    return (
        None if low is None else float(min(max(low, least), most)),
        None if high is None else float(max(min(high, most), least)),
    )


def one_sided_bounds(
    estimate: float,
    stderr: float,
    *,
    alpha: float = 0.05,
    df: int | None = None,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Lower and upper one-sided ``1 - alpha`` confidence bounds ``estimate -+ q * stderr``.

    Each bound on its own is exceeded by the true value with probability at most ``alpha`` (``q`` is the
    ``1 - alpha`` quantile of Student's t with ``df`` degrees of freedom, or of the normal when ``df``
    is None), so the pair is a two-sided ``1 - 2 * alpha`` interval. ``bounds`` cuts both to the range
    the quantity can take (the true value lies in it, so coverage is unchanged).

    Examples
    --------
    >>> [round(x, 4) for x in one_sided_bounds(0.01, 0.002, alpha=0.05)]
    [0.0067, 0.0133]
    >>> [round(x, 4) for x in one_sided_bounds(0.5, 0.1, alpha=0.05, df=9)]
    [0.3167, 0.6833]
    """
    alpha = _check_alpha(alpha, "one_sided_bounds")
    if not (math.isfinite(estimate) and math.isfinite(stderr)) or stderr < 0:
        return math.nan, math.nan
    # scipy.special's quantiles are scipy.stats' norm.ppf and t.ppf bit for bit, without importing scipy.stats
    # (~1.8 s of an `evalkit gate`, which needs these bounds only)
    if df is None:
        from scipy.special import ndtri

        q = float(ndtri(1 - alpha))
    else:
        from scipy.special import stdtrit

        q = float(stdtrit(df, 1 - alpha)) if df >= 1 else math.inf
    low, high = cut_to_range(estimate - q * stderr, estimate + q * stderr, bounds)
    return float(low), float(high)


def paired_proportion_bounds(n11: int, n10: int, n01: int, n00: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """One-sided ``1 - alpha`` bounds of the paired difference of proportions ``p_B - p_A`` from its 2x2 table.

    Newcombe's (1998) paired score interval with continuity correction ("method 11": continuity-corrected
    Wilson intervals of both proportions and a continuity-corrected phi) at confidence ``1 - 2 * alpha``;
    each end alone is exceeded by the true difference with probability at most about ``alpha``. Without
    the correction (:func:`paired_proportion_difference_ci`) an end errs 5.1-5.7 % of the time at
    alpha = 0.05 for n = 300-1,000 and a difference of 0.02-0.05 (seeded simulation, 200,000 tables per
    case); with it, 4.4-5.0 %. Stays within [-1, 1] and is not degenerate when no pair is discordant.

    Examples
    --------
    >>> [round(x, 4) for x in paired_proportion_bounds(600, 80, 60, 260, alpha=0.05)]
    [-0.0399, -0.0001]
    >>> [round(x, 4) for x in paired_proportion_bounds(300, 0, 0, 0, alpha=0.05)]  # no discordant pair
    [-0.012, 0.012]
    """
    alpha = _check_alpha(alpha, "paired_proportion_bounds")
    counts = (n11, n10, n01, n00)
    if any(isinstance(c, bool) or not isinstance(c, Integral) or c < 0 for c in counts) or sum(counts) == 0:
        raise ValueError(f"paired_proportion_bounds needs four counts >= 0, not all 0. Got {counts!r}.")
    n11, n10, n01, n00 = (int(c) for c in counts)
    n = n11 + n10 + n01 + n00
    z = _z(1 - 2 * alpha)
    p_b, p_a = (n11 + n01) / n, (n11 + n10) / n
    low_b, high_b = _wilson_cc(n11 + n01, n, z)
    low_a, high_a = _wilson_cc(n11 + n10, n, z)
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    numerator = n11 * n00 - n10 * n01
    numerator = numerator - n / 2 if numerator > n / 2 else (numerator if numerator < 0 else 0.0)
    phi = numerator / math.sqrt(margins) if margins > 0 else 0.0
    delta = p_b - p_a
    below = (p_b - low_b) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a) + (high_a - p_a) ** 2
    above = (high_b - p_b) ** 2 - 2 * phi * (high_b - p_b) * (p_a - low_a) + (p_a - low_a) ** 2
    return max(delta - math.sqrt(max(below, 0.0)), -1.0), min(delta + math.sqrt(max(above, 0.0)), 1.0)


def _wilson_cc(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval with continuity correction (Newcombe 1998a, method 4) at quantile z."""
    p, q = k / n, 1 - k / n
    low = (
        0.0
        if k == 0
        else (2 * n * p + z * z - 1 - z * math.sqrt(max(z * z - 2 - 1 / n + 4 * p * (n * q + 1), 0.0)))
        / (2 * (n + z * z))
    )
    high = (
        1.0
        if k == n
        else (2 * n * p + z * z + 1 + z * math.sqrt(max(z * z + 2 - 1 / n + 4 * p * (n * q - 1), 0.0)))
        / (2 * (n + z * z))
    )
    return max(low, 0.0), min(high, 1.0)


def proportion_bounds(successes: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """One-sided ``1 - alpha`` bounds of a proportion: the ends of the continuity-corrected Wilson interval
    at confidence ``1 - 2 * alpha`` (conservative, like :func:`paired_proportion_bounds`).

    Examples
    --------
    >>> [round(x, 4) for x in proportion_bounds(0, 300, alpha=0.05)]
    [0.0, 0.012]
    """
    alpha = _check_alpha(alpha, "proportion_bounds")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1 or not 0 <= successes <= n:
        raise ValueError(f"proportion_bounds needs 0 <= successes <= n and n >= 1. Got {successes!r}, {n!r}.")
    return _wilson_cc(int(successes), int(n), _z(1 - 2 * alpha))


# --------------------------------------------------------------------------- bootstrap
def iter_bootstrap_indices(
    n: int, *, n_resamples: int = 1000, random_state: Any = 0, max_entries: int = _MAX_INDEX_ENTRIES
) -> Iterator[np.ndarray]:
    """Yield bootstrap index arrays (chunks of shape ``(k, n)``, ``k`` rows summing to ``n_resamples``).

    The chunks come from one ``numpy.random.default_rng(random_state)`` stream, so the same arguments
    always give the same resamples. Chunking bounds memory to about ``max_entries`` indices.

    Examples
    --------
    >>> chunks = list(iter_bootstrap_indices(3, n_resamples=4, random_state=0, max_entries=6))
    >>> [c.shape for c in chunks]
    [(2, 3), (2, 3)]
    """
    func = "iter_bootstrap_indices"
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ValueError(f"The 'n' parameter of {func} must be an int >= 1. Got {n!r} instead.")
    n_resamples = _check_n_resamples(n_resamples, func)
    rng = np.random.default_rng(random_state)
    rows = max(1, int(max_entries) // int(n))
    dtype = np.int32 if n < 2**31 else np.int64
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n), dtype=dtype)


def bootstrap_summary(observed_delta: float, resampled_deltas: Any, *, confidence: float = 0.95) -> BootstrapResult:
    """Percentile CI and two-sided p-value from resampled deltas.

    The p-value is ``min(1, 2 * min(P(d* <= 0), P(d* >= 0)))`` with each tail estimated as
    ``(count + 1) / (B + 1)`` (so it is never exactly 0): small when nearly all resampled deltas lie
    on one side of zero, 1 when they are all zero. It agrees with the percentile interval: the
    interval excludes 0 roughly when ``p < 1 - confidence``. NaN resamples (metric undefined on a
    resample) are dropped.

    Examples
    --------
    >>> bootstrap_summary(0.1, [0.05, 0.1, 0.15, 0.2]).p_value
    0.4
    """
    confidence = _check_confidence(confidence, "bootstrap_summary")
    deltas = np.asarray(resampled_deltas, dtype=float).ravel()
    deltas = deltas[np.isfinite(deltas)]
    if deltas.size == 0:
        return BootstrapResult(float(observed_delta), math.nan, math.nan, math.nan)
    alpha = 1 - confidence
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    tail_low = (np.count_nonzero(deltas <= 0) + 1) / (deltas.size + 1)
    tail_high = (np.count_nonzero(deltas >= 0) + 1) / (deltas.size + 1)
    return BootstrapResult(
        float(observed_delta), float(low), float(high), float(min(1.0, 2 * min(tail_low, tail_high)))
    )


def _mean_metric(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return values[indices].mean(axis=1)


def paired_bootstrap(
    metric: Callable[[Any, np.ndarray], Any] | None = None,
    a: Any = None,
    b: Any = None,
    *,
    scores_a: Any = None,
    scores_b: Any = None,
    observed_delta: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: Any = 0,
) -> BootstrapResult:
    """Paired bootstrap of the difference of a metric between two systems on the same samples.

    Either give ``a`` and ``b`` (aligned per-sample data of length n) with ``metric(data, indices)``
    returning one metric value per row of the ``(k, n)`` index array (``metric=None`` means the mean
    of numeric per-sample values), or give precomputed per-resample values ``scores_a`` and
    ``scores_b`` of shape ``(B,)`` that were computed on shared resamples.

    Parameters
    ----------
    metric : callable or None
        ``metric(data, indices) -> array of shape (k,)``.
    a, b : sequence of length n
        Reference (A) and candidate (B) per-sample data, aligned by sample.
    scores_a, scores_b : array-like of shape (B,)
        Precomputed resampled metric values (instead of ``metric``/``a``/``b``).
    observed_delta : float, optional
        Point estimate ``B - A``. Default: the metric on the full data, or with precomputed scores
        the mean resampled delta.
    n_resamples : int, default=1000
    confidence : float, default=0.95
    random_state : int or numpy Generator, default=0

    Returns
    -------
    BootstrapResult
        ``delta``, percentile ``ci_low``/``ci_high``, and the two-sided p-value of
        :func:`bootstrap_summary`.

    Examples
    --------
    >>> a = [0.2, 0.4, 0.6, 0.8, 1.0] * 4
    >>> b = [x + 0.1 for x in a]
    >>> result = paired_bootstrap(None, a, b, n_resamples=200)
    >>> round(result.delta, 3), round(result.ci_low, 3), round(result.ci_high, 3), round(result.p_value, 3)
    (0.1, 0.1, 0.1, 0.01)
    """
    func = "paired_bootstrap"
    confidence = _check_confidence(confidence, func)
    if scores_a is not None or scores_b is not None:
        return _bootstrap_from_scores(scores_a, scores_b, observed_delta, confidence)
    if a is None or b is None:
        raise ValueError(f"{func} needs either 'a' and 'b' or 'scores_a' and 'scores_b'.")
    if metric is None:
        metric = _mean_metric
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    elif not callable(metric):
        raise ValueError(f"The 'metric' parameter of {func} must be callable or None. Got {metric!r} instead.")
    n = len(a)
    if n != len(b) or n == 0:
        raise ValueError(f"a and b of {func} must be non-empty and of the same length. Got {n} and {len(b)}.")
    if observed_delta is None:
        everything = np.arange(n)[None, :]
        observed_delta = float(np.asarray(metric(b, everything))[0] - np.asarray(metric(a, everything))[0])
    deltas = [
        np.asarray(metric(b, idx), dtype=float) - np.asarray(metric(a, idx), dtype=float)
        for idx in iter_bootstrap_indices(n, n_resamples=n_resamples, random_state=random_state)
    ]
    return bootstrap_summary(observed_delta, np.concatenate(deltas), confidence=confidence)


def _bootstrap_from_scores(
    scores_a: Any, scores_b: Any, observed_delta: float | None, confidence: float
) -> BootstrapResult:
    sa, sb = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if sa.ndim != 1 or sa.shape != sb.shape or sa.size == 0:
        raise ValueError(
            f"scores_a and scores_b of paired_bootstrap must be non-empty 1-D arrays of equal length. "
            f"Got shapes {sa.shape} and {sb.shape}."
        )
    deltas = sb - sa
    if observed_delta is None:
        observed_delta = float(np.nanmean(deltas)) if np.isfinite(deltas).any() else math.nan
    return bootstrap_summary(observed_delta, deltas, confidence=confidence)


def bootstrap_mean_ci(
    values: Any, *, n_resamples: int = 1000, confidence: float = 0.95, random_state: Any = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval.

    Returns
    -------
    mean, low, high : float
        NaN for empty input.

    Examples
    --------
    >>> [round(x, 3) for x in bootstrap_mean_ci([1.0, 1.0, 1.0])]
    [1.0, 1.0, 1.0]
    """
    func = "bootstrap_mean_ci"
    confidence = _check_confidence(confidence, func)
    data = np.asarray(values, dtype=float)
    if data.ndim != 1:
        raise ValueError(f"The 'values' parameter of {func} must be 1-D. Got shape {data.shape} instead.")
    if data.size == 0:
        return math.nan, math.nan, math.nan
    means = np.concatenate(
        [
            _mean_metric(data, idx)
            for idx in iter_bootstrap_indices(data.size, n_resamples=n_resamples, random_state=random_state)
        ]
    )
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(data.mean()), float(low), float(high)


# --------------------------------------------------------------------------- intervals that cover
class IntervalResult(NamedTuple):
    """An estimate with its interval; ``extended`` when the interval was widened to contain the estimate."""

    estimate: float
    low: float
    high: float
    extended: bool = False


def contain(estimate: float, low: float, high: float) -> IntervalResult:
    """The interval ``[low, high]`` widened, if needed, so that it contains ``estimate``.

    A bootstrap interval of a strongly biased statistic can miss its own estimate; a reader cannot
    interpret such a row, and widening only raises coverage. ``extended`` says it happened.

    Examples
    --------
    >>> contain(0.435, 0.365, 0.432)
    IntervalResult(estimate=0.435, low=0.365, high=0.435, extended=True)
    >>> contain(0.4, 0.3, 0.5).extended
    False
    """
    if not all(math.isfinite(x) for x in (estimate, low, high)):
        return IntervalResult(float(estimate), float(low), float(high), False)
    new_low, new_high = min(low, estimate), max(high, estimate)
    return IntervalResult(float(estimate), float(new_low), float(new_high), bool(new_low != low or new_high != high))


def jackknife_indices(n: int, *, max_entries: int = _MAX_INDEX_ENTRIES) -> Iterator[np.ndarray]:
    """Yield leave-one-out index arrays: chunks of shape ``(k, n - 1)``, row ``i`` = every position but ``i``.

    Examples
    --------
    >>> [chunk.tolist() for chunk in jackknife_indices(3, max_entries=4)]
    [[[1, 2], [0, 2]], [[0, 1]]]
    """
    func = "jackknife_indices"
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 2:
        raise ValueError(f"The 'n' parameter of {func} must be an int >= 2. Got {n!r} instead.")
    base = np.arange(n - 1)
    rows = max(1, int(max_entries) // (n - 1))
    for start in range(0, n, rows):
        left_out = np.arange(start, min(n, start + rows))[:, None]
        yield base[None, :] + (base[None, :] >= left_out)


def bca_interval(estimate: float, resampled: Any, jackknife: Any, *, confidence: float = 0.95) -> tuple[float, float]:
    """Bias-corrected and accelerated (BCa) bootstrap interval from precomputed values.

    Efron & Tibshirani (1993), sections 14.3 and 15.4, computed as :func:`scipy.stats.bootstrap`
    does with ``method="BCa"``: the bias correction ``z0`` from the share of resampled values below
    the estimate (ties count half), the acceleration ``a`` from the leave-one-out (jackknife) values,
    and linear-interpolated quantiles of the resampled values at the adjusted levels. Unlike the
    percentile interval it follows a statistic whose bootstrap distribution is shifted from the
    estimate (macro F1 over many rare classes).

    Parameters
    ----------
    estimate : float
        The statistic on the full data.
    resampled : array-like of shape (B,)
        The statistic on B bootstrap resamples (NaN values, where it is undefined, are dropped).
    jackknife : array-like of shape (n,)
        The statistic with each sample left out in turn (NaN values dropped).
    confidence : float, default=0.95

    Returns
    -------
    low, high : float
        NaN when no resampled value is finite. The interval is *not* forced to contain the
        estimate (see :func:`contain`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> data = rng.exponential(size=30)
    >>> idx = rng.integers(0, 30, size=(2000, 30))
    >>> jack = np.array([np.delete(data, i).mean() for i in range(30)])
    >>> low, high = bca_interval(data.mean(), data[idx].mean(axis=1), jack)
    >>> bool(low < data.mean() < high)
    True
    """
    from scipy.special import ndtr, ndtri

    confidence = _check_confidence(confidence, "bca_interval")
    boot = np.asarray(resampled, dtype=float).ravel()
    boot = boot[np.isfinite(boot)]
    jack = np.asarray(jackknife, dtype=float).ravel()
    jack = jack[np.isfinite(jack)]
    if boot.size == 0 or not math.isfinite(estimate):
        return math.nan, math.nan
    if np.ptp(boot) == 0:
        return float(boot[0]), float(boot[0])
    share = (np.count_nonzero(boot < estimate) + np.count_nonzero(boot <= estimate)) / (2 * boot.size)
    share = min(max(share, 0.5 / boot.size), 1 - 0.5 / boot.size)  # z0 finite when the estimate is outside
    z0 = float(ndtri(share))
    accel = 0.0
    if jack.size > 2:
        u = (jack.size - 1) * (jack.mean() - jack)
        den = np.sum(u**2) / jack.size**2
        accel = float(np.sum(u**3) / jack.size**3 / (6 * den**1.5)) if den > 0 else 0.0
    z_alpha = float(ndtri((1 - confidence) / 2))
    levels = [float(ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))) for z in (z_alpha, -z_alpha)]
    low, high = np.quantile(boot, levels)
    return float(low), float(high)


def jackknife_stderr(jackknife: Any) -> float:
    """Jackknife standard error ``sqrt((n - 1) / n * sum((t_i - mean(t))**2))`` from leave-one-out values.

    Examples
    --------
    >>> data = np.array([1.0, 2.0, 4.0, 7.0])
    >>> jack = [np.delete(data, i).mean() for i in range(4)]
    >>> bool(np.isclose(jackknife_stderr(jack), data.std(ddof=1) / 2))
    True
    """
    values = np.asarray(jackknife, dtype=float).ravel()
    values = values[np.isfinite(values)]
    n = values.size
    if n < 2:
        return math.nan
    return float(np.sqrt((n - 1) / n * np.sum((values - values.mean()) ** 2)))


def jackknife_ci(
    estimate: float, jackknife: Any, *, confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """Normal interval ``estimate ± z * jackknife_stderr`` (Efron & Stein 1981: the jackknife variance
    errs on the large side, which keeps coverage for corpus metrics over long-tailed classes, where a
    bootstrap underestimates the spread; bench/stats/README.md).

    ``bounds`` (the metric's range, e.g. ``(0, 1)`` for an F1) cuts the interval to values the metric
    can take: the true value lies in the range, so coverage is unchanged, and an F1 of 0.95 no longer
    reads ``[0.85, 1.04]``.

    Returns
    -------
    low, high, stderr : float

    Examples
    --------
    >>> [round(x, 4) for x in jackknife_ci(0.5, [0.49, 0.5, 0.51, 0.5])]
    [0.476, 0.524, 0.0122]
    >>> [round(x, 4) for x in jackknife_ci(0.99, [0.97, 0.99, 1.0, 1.0], bounds=(0, 1))]  # not 1.0316
    [0.9484, 1.0, 0.0212]
    """
    confidence = _check_confidence(confidence, "jackknife_ci")
    stderr = jackknife_stderr(jackknife)
    if not (math.isfinite(stderr) and math.isfinite(estimate)):
        return math.nan, math.nan, stderr
    half = _z(confidence) * stderr
    low, high = cut_to_range(estimate - half, estimate + half, bounds)
    return float(low), float(high), stderr


# --------------------------------------------------------------------------- means, clustered or not
class MeanResult(NamedTuple):
    """Mean with its (cluster-robust) standard error, t interval and degrees of freedom."""

    mean: float
    low: float
    high: float
    stderr: float
    df: int


def _clusters_of(clusters: Any, n: int, func: str) -> np.ndarray | None:
    if clusters is None:
        return None
    labels = np.asarray(clusters, dtype=object).ravel()
    if labels.size != n:
        raise ValueError(f"The 'clusters' parameter of {func} must have one label per value ({n}). Got {labels.size}.")
    return np.unique(labels.astype(str), return_inverse=True)[1]


def _mean_stderr(values: np.ndarray, cluster_ids: np.ndarray | None) -> tuple[float, int]:
    """Standard error of the mean and its t degrees of freedom.

    Without clusters: ``sd / sqrt(n)`` with n - 1 df. With clusters: the cluster-robust (sandwich)
    standard error of an intercept-only OLS with statsmodels' small-sample correction,
    ``sqrt(G / (G - 1) * sum_g (sum_{i in g} e_i)**2) / N`` with G - 1 df (Cameron & Miller 2015).
    """
    n = values.size
    residuals = values - values.mean()
    if cluster_ids is None:
        return (float(np.sqrt(np.sum(residuals**2) / (n * (n - 1)))) if n > 1 else math.nan), n - 1
    sums = np.bincount(cluster_ids, weights=residuals)
    g = sums.size
    if g < 2:
        return math.nan, 0
    return float(np.sqrt(g / (g - 1) * np.sum(sums**2)) / n), g - 1


def mean_ci(values: Any, *, clusters: Any = None, confidence: float = 0.95) -> MeanResult:
    """Mean of ``values`` with a t interval, cluster-robust when ``clusters`` is given.

    Parameters
    ----------
    values : array-like of shape (n,)
    clusters : array-like of shape (n,), optional
        Cluster label of each value (e.g. the prompt of each IFEval instruction). Values of one
        cluster may be correlated; the standard error is then the cluster-robust one that
        ``statsmodels.OLS(values, ones).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)``
        reports, with G - 1 degrees of freedom.
    confidence : float, default=0.95

    Returns
    -------
    MeanResult
        ``mean``, ``low``, ``high``, ``stderr``, ``df``; NaN interval for fewer than 2 values (or clusters).

    Examples
    --------
    >>> r = mean_ci([1, 0, 1, 1, 0, 1, 1, 1], clusters=["a", "a", "b", "b", "c", "c", "d", "d"])
    >>> round(r.mean, 3), round(r.stderr, 4), r.df
    (0.75, 0.1443, 3)
    """
    func = "mean_ci"
    confidence = _check_confidence(confidence, func)
    data = np.asarray(values, dtype=float).ravel()
    if data.size == 0:
        return MeanResult(math.nan, math.nan, math.nan, math.nan, 0)
    stderr, df = _mean_stderr(data, _clusters_of(clusters, data.size, func))
    mean = float(data.mean())
    if not math.isfinite(stderr) or df < 1:
        return MeanResult(mean, math.nan, math.nan, stderr, df)
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, df)) * stderr
    return MeanResult(mean, mean - half, mean + half, stderr, df)


class PairedTestResult(NamedTuple):
    """Outcome of :func:`paired_mean_test`: delta ``B - A``, its interval, two-sided p-value, standard error."""

    delta: float
    low: float
    high: float
    p_value: float
    stderr: float
    df: int


def paired_mean_test(a: Any, b: Any, *, clusters: Any = None, confidence: float = 0.95) -> PairedTestResult:
    """Paired t test and interval of ``mean(b) - mean(a)`` (cluster-robust with ``clusters``).

    Without clusters this is :func:`scipy.stats.ttest_rel`; with clusters the test of the intercept
    of the per-unit differences under cluster-robust standard errors (statsmodels' ``cov_type="cluster"``).
    Differences that are all equal give a zero standard error: p = 1 when they are 0, else 0.

    Examples
    --------
    >>> r = paired_mean_test([0.2, 0.4, 0.6, 0.8], [0.3, 0.6, 0.6, 1.0])
    >>> round(r.delta, 3), round(r.p_value, 4)
    (0.125, 0.0796)
    """
    func = "paired_mean_test"
    confidence = _check_confidence(confidence, func)
    va, vb = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if va.shape != vb.shape or va.size == 0:
        raise ValueError(f"a and b of {func} must be non-empty and of the same length. Got {va.size} and {vb.size}.")
    diff = vb - va
    delta = float(diff.mean())
    stderr, df = _mean_stderr(diff, _clusters_of(clusters, diff.size, func))
    if not math.isfinite(stderr) or df < 1:
        return PairedTestResult(delta, math.nan, math.nan, math.nan, stderr, df)
    if stderr == 0:
        return PairedTestResult(delta, delta, delta, 1.0 if delta == 0 else 0.0, 0.0, df)
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, df)) * stderr
    p_value = float(2 * t.sf(abs(delta) / stderr, df))
    return PairedTestResult(delta, delta - half, delta + half, min(p_value, 1.0), stderr, df)


# --------------------------------------------------------------------------- approximate randomization
class RandomizationResult(NamedTuple):
    """Outcome of :func:`randomization_test`.

    ``p_value`` is ``(count + 1) / (n_resamples + 1)``; when ``count`` is 0 the true p-value is only
    known to be below ``resolution = 1 / (n_resamples + 1)`` and ``is_bound`` is True.
    """

    p_value: float
    count: int
    n_resamples: int
    resolution: float
    is_bound: bool


def randomization_test(
    deltas: Callable[[np.ndarray], Any],
    n: int,
    observed: float,
    *,
    n_resamples: int = 1000,
    max_resamples: int = 20000,
    alpha: float = 0.05,
    random_state: Any = 0,
    groups: Any = None,
    max_entries: int = _MAX_INDEX_ENTRIES,
) -> RandomizationResult:
    """Two-sided paired approximate randomization test (Noreen 1989; Dror et al. 2018).

    Under the null the two systems are exchangeable on each sample, so each sample's pair of outputs
    is swapped with probability 1/2; ``deltas(swap)`` returns the statistic ``B' - A'`` for each row of
    a boolean ``(k, n)`` swap array. The p-value counts resamples at least as extreme as ``|observed|``.
    When the p-value is close to ``alpha`` (within 2.58 Monte Carlo standard errors) the number of
    resamples doubles, up to ``max_resamples``, so the decision at ``alpha`` is not a coin flip.
    With ``groups`` (one integer cluster label per sample) whole clusters are swapped together, as
    dependent samples must be.

    Examples
    --------
    >>> a = np.array([1, 0, 1, 1, 0, 1, 0, 0] * 10, dtype=float)
    >>> b = np.array([1, 1, 1, 1, 0, 1, 1, 0] * 10, dtype=float)
    >>> def stat(swap):
    ...     return np.where(swap, a, b).mean(axis=1) - np.where(swap, b, a).mean(axis=1)
    >>> r = randomization_test(stat, 80, float(b.mean() - a.mean()), n_resamples=999)
    >>> r.is_bound, r.p_value == r.resolution
    (True, True)
    """
    func = "randomization_test"
    n_resamples = _check_n_resamples(n_resamples, func)
    max_resamples = max(_check_n_resamples(max_resamples, func), n_resamples)
    rng = np.random.default_rng(random_state)
    rows = max(1, int(max_entries) // max(int(n), 1))
    labels = None if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    if labels is not None and labels.size != n:
        raise ValueError(f"The 'groups' parameter of {func} must have one label per sample ({n}). Got {labels.size}.")
    width = n if labels is None else int(labels.max()) + 1
    tolerance = 1e-12 * max(1.0, abs(observed))
    count, done, target = 0, 0, n_resamples
    while True:
        while done < target:
            k = min(rows, target - done)
            swap = rng.random((k, width)) < 0.5
            values = np.asarray(deltas(swap if labels is None else swap[:, labels]), dtype=float)
            count += int(np.count_nonzero(np.abs(values) >= abs(observed) - tolerance))
            done += k
        p_value = (count + 1) / (done + 1)
        near = abs(p_value - alpha) < 2.58 * math.sqrt(alpha * (1 - alpha) / done)
        if not near or done >= max_resamples:
            break
        target = min(2 * done, max_resamples)
    return RandomizationResult(float(p_value), count, done, 1 / (done + 1), count == 0)


# --------------------------------------------------------------------------- multiplicity
def _adjust(p_values: Any, func: str, step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``step`` (sorted ascending p-values -> adjusted ones) to the finite entries; None/NaN stay NaN."""
    p = np.asarray([math.nan if v is None else v for v in p_values], dtype=float)
    present = np.isfinite(p)
    if np.any((p[present] < 0) | (p[present] > 1)):
        raise ValueError(f"The 'p_values' parameter of {func} must hold probabilities in [0, 1] (or None).")
    out = np.full(p.size, math.nan)
    values = p[present]
    if values.size:
        order = np.argsort(values, kind="stable")
        adjusted = np.empty(values.size)
        adjusted[order] = np.minimum(step(values[order]), 1.0)
        out[present] = adjusted
    return out


def holm_adjust(p_values: Any) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; controls the family-wise error rate.

    None or NaN entries are not part of the family and stay NaN. Equals
    ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``.

    Examples
    --------
    >>> holm_adjust([0.01, 0.04, 0.03, None]).round(3).tolist()
    [0.03, 0.06, 0.06, nan]
    """

    def step(ordered: np.ndarray) -> np.ndarray:  # max over j <= i of (m - j) p_(j)
        return np.maximum.accumulate((ordered.size - np.arange(ordered.size)) * ordered)

    return _adjust(p_values, "holm_adjust", step)


def bh_adjust(p_values: Any) -> np.ndarray:
    """Benjamini–Hochberg (1995) q-values; control the false discovery rate.

    None or NaN entries stay NaN. Equals ``multipletests(p, method="fdr_bh")[1]``.

    Examples
    --------
    >>> bh_adjust([0.01, 0.04, 0.03, None]).round(3).tolist()
    [0.03, 0.04, 0.04, nan]
    """

    def step(ordered: np.ndarray) -> np.ndarray:  # min over j >= i of m p_(j) / j
        m = ordered.size
        return np.minimum.accumulate((ordered * m / np.arange(1, m + 1))[::-1])[::-1]

    return _adjust(p_values, "bh_adjust", step)


# --------------------------------------------------------------------------- power
def minimum_detectable_effect(stderr: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true difference a two-sided test at ``alpha`` detects with probability ``power``.

    ``(z_{1-alpha/2} + z_{power}) * stderr`` (normal approximation; Miller 2024, section 5), where
    ``stderr`` is the standard error of the paired difference under the null.

    Examples
    --------
    >>> round(minimum_detectable_effect(0.01), 4)
    0.028
    """
    func = "minimum_detectable_effect"
    for name, value in (("alpha", alpha), ("power", power)):
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < 1:
            raise ValueError(f"The '{name}' parameter of {func} must be a float in (0, 1). Got {value!r} instead.")
    if not math.isfinite(stderr) or stderr <= 0:  # no spread seen: the data say nothing about power
        return math.nan
    return float((_z(1 - alpha) + _z(2 * power - 1)) * stderr)


def paired_proportion_stderr(correct_a: Any, correct_b: Any) -> float:
    """Null standard error of a paired difference of proportions: ``sqrt(n01 + n10) / n``.

    With fewer than 3 discordant pairs, 3 are assumed (the 95 % upper bound of a count of which none
    was seen, the "rule of three"): two identical checkpoints do not make every change detectable.

    Examples
    --------
    >>> paired_proportion_stderr([1, 1, 0, 0], [1, 0, 1, 0])
    0.4330127018922193
    >>> round(paired_proportion_stderr([1] * 100, [1] * 100), 4)
    0.0173
    """
    a = _as_binary(correct_a, "correct_a", "paired_proportion_stderr")
    b = _as_binary(correct_b, "correct_b", "paired_proportion_stderr")
    if a.size == 0 or a.shape != b.shape:
        return math.nan
    return math.sqrt(max(np.count_nonzero(a != b), 3)) / a.size
