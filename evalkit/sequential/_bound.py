"""Anytime-valid confidence sequences for the mean of bounded observations.

The bound is the predictable plug-in empirical-Bernstein confidence sequence (PrPl-EB) of
Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting", JRSS-B 86(1), 2023,
Theorem 2, with the sampling-without-replacement correction of their Section 6 (Waudby-Smith &
Ramdas, "Confidence sequences for sampling without replacement", NeurIPS 2020). It is the formula of
the authors' ``confseq`` package (``confseq.predmix.predmix_empbern_twosided_cs``; that package needs
Boost headers to build, so evalkit carries the formula and checks it against the package's numbers in
``tests/test_sequential_bound.py``).

Why this bound: it is closed-form (cumulative sums, O(n) per update), adapts to the variance of the
paired differences (most questions agree between two checkpoints, so the variance is small), and is
valid at every sample size simultaneously, so evaluation may stop whenever it lies beyond or inside a
gate's threshold without inflating the error rate.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["confidence_sequence"]

#: Largest bet (lambda); the paper's default 1/2 keeps psi_E(lambda) finite and the bound stable.
TRUNCATION = 0.5


def confidence_sequence(
    x, *, alpha: float = 0.05, lower: float = 0.0, upper: float = 1.0, population: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided anytime-valid confidence sequence for the mean of observations in ``[lower, upper]``.

    With probability at least ``1 - alpha`` the mean lies in ``[low[t], high[t]]`` for every ``t`` at
    once, so one may look after every observation and stop at any data-dependent time.

    Parameters
    ----------
    x : array-like of shape (n,)
        Observations in their arrival order; must be a uniformly random order of the population
        (``population`` given) or i.i.d. draws (``population=None``).
    alpha : float
        Error level in (0, 1): the sequence misses the mean at some time with probability <= alpha.
    lower, upper : float
        Known bounds of every observation, ``lower < upper``.
    population : int, optional
        Size N of the finite population the observations are drawn from without replacement; the
        sequence then covers the population mean and shrinks to it as ``t -> N``. None: an
        infinite population (i.i.d. observations).

    Returns
    -------
    low, high : ndarray of shape (n,)
        The bounds after each observation, intersected over time (each is at least as tight as
        the one before), clipped to ``[lower, upper]``.

    References
    ----------
    Waudby-Smith, I. and Ramdas, A. (2023). Estimating means of bounded random variables by betting.
    JRSS-B 86(1), 1-27, Theorem 2 (PrPl-EB) and Section 6.

    Examples
    --------
    >>> low, high = confidence_sequence([1, 0, 1, 1, 0, 1, 1, 1] * 50, alpha=0.05)
    >>> round(float(low[-1]), 3), round(float(high[-1]), 3)  # the mean 0.75 after 400 draws
    (0.667, 0.827)

    Paired differences in [-1, 1] (mean 1/12): the whole population of 6,000 seen, the sequence
    closes in on its mean; the same data as i.i.d. draws from an infinite population do not.

    >>> import numpy as np
    >>> diffs = np.tile([1.0, 0, 0, 0, 0, 0, 0, 0, 0, -1.0, 1, 0], 500)
    >>> [round(float(b[-1]), 3) for b in confidence_sequence(diffs, lower=-1, upper=1, population=6000)]
    [0.078, 0.088]
    >>> [round(float(b[-1]), 3) for b in confidence_sequence(diffs, lower=-1, upper=1)]
    [0.057, 0.109]
    """
    values = _validated(x, alpha, lower, upper, population)
    scaled = (values - lower) / (upper - lower)
    low = _lower_sequence(scaled, alpha / 2, population)
    high = 1.0 - _lower_sequence(1.0 - scaled, alpha / 2, population)
    low, high = np.maximum.accumulate(low), np.minimum.accumulate(high)  # running intersection
    return lower + (upper - lower) * low, lower + (upper - lower) * high


def _validated(x, alpha: float, lower: float, upper: float, population: int | None) -> np.ndarray:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(
            f"The 'alpha' parameter of confidence_sequence must be a float in (0, 1). Got {alpha!r} instead."
        )
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(
            f"The 'lower' and 'upper' parameters of confidence_sequence must be finite with lower < upper. "
            f"Got {lower!r} and {upper!r} instead."
        )
    values = np.asarray(x, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"x must be one-dimensional, got shape {values.shape}.")
    if values.size and (not np.isfinite(values).all() or values.min() < lower or values.max() > upper):
        raise ValueError(
            f"x must be finite and within [lower, upper] = [{lower}, {upper}]; "
            f"got values in [{values.min()}, {values.max()}]."
        )
    if population is not None:
        if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < values.size:
            raise ValueError(
                f"The 'population' parameter of confidence_sequence must be an int >= len(x) = "
                f"{values.size} or None. Got {population!r} instead."
            )
    return values


def _lower_sequence(x: np.ndarray, alpha: float, population: int | None) -> np.ndarray:
    """One-sided PrPl-EB lower bound at level ``alpha`` for observations in [0, 1] (confseq's predmix_lower_cs)."""
    n = x.size
    if n == 0:
        return np.zeros(0)
    t = np.arange(1, n + 1, dtype=float)
    lambdas = _bets(x, alpha, t)
    mean_before = np.append(0.0, (np.cumsum(x) / t)[:-1])  # predictable centre of the variance proxy
    psi = -np.log1p(-lambdas) - lambdas
    variance_terms = np.cumsum((x - mean_before) ** 2 * psi)
    if population is None:
        z_star, w_star = 0.0, 0.0
    else:  # without replacement: the unseen part of the population carries the observed sum forward
        sum_before = np.append(0.0, np.cumsum(x)[:-1])
        remaining = population - t + 1
        z_star, w_star = sum_before / remaining, (t - 1) / remaining
    weights = np.cumsum(lambdas * (1 + w_star))
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.cumsum(lambdas * (x + z_star)) / weights
        margin = (math.log(1 / alpha) + variance_terms) / weights
    bound = np.where(weights > 0, centre - margin, 0.0)
    return np.clip(bound, 0.0, 1.0)


def _bets(x: np.ndarray, alpha: float, t: np.ndarray) -> np.ndarray:
    """Predictable bets lambda_t from the regularised running variance (one fake observation of 1/4)."""
    mean = np.minimum((0.5 + np.cumsum(x)) / (t + 1), 1.0)
    variance = (0.25 + np.cumsum((x - mean) ** 2)) / (t + 1)
    variance_before = np.append(0.25, variance[:-1])
    lambdas = np.sqrt(2 * math.log(1 / alpha) / (t * np.log1p(t) * variance_before))
    return np.minimum(np.nan_to_num(lambdas, nan=0.0), TRUNCATION)
