"""Calibration and selective-prediction metrics of a classifier's confidence, vectorised over resamples.

Every function takes ``y_correct`` (1 where the decision was right, 0 where it was wrong, per sample) and
``confidence`` (the classifier's probability that it is right, in [0, 1]). For the domain axis these are
the leaf decision (path exactly right) and the path probability (``extra.confidence`` of a VOC record);
per level, the level-``k`` prefix and the probability of that prefix.

* :func:`reliability_curve`, :func:`expected_calibration_error` — bins of equal mass (``"quantile"``,
  the adaptive ECE of Nixon et al. 2019, "Measuring Calibration in Deep Learning": with equal-width bins
  an overconfident model puts nearly every sample into the top bin and the error hides there) or of equal
  width (``"uniform"``, Naeini et al. 2015); the binning is scikit-learn's ``calibration_curve``.
* :func:`brier_score` — the mean squared difference (Brier 1950), scikit-learn's ``brier_score_loss``.
* :func:`risk_coverage_curve`, :func:`coverage_at_precision` — selective classification (Geifman and
  El-Yaniv 2017): accept the samples whose confidence is at least a cut and send the rest to a human;
  coverage is the accepted share, precision the share of accepted samples that are right.
  ``coverage_at_precision`` chooses the cut by **cross-fitting**: the cut applied to the samples of
  fold ``k`` is the lowest one at which the *other* folds reach the target precision, so no sample is
  measured with a cut tuned on it, and every sample is still measured (a held-out calibration split
  would halve the rows the coverage is measured on, and widen its interval).

The ``*_rows`` functions compute the same on each row of a ``(B, n)`` array: that is how the comparison's
jackknife and randomization resamples are scored.
"""

from __future__ import annotations

import hashlib
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "reliability_curve",
    "expected_calibration_error",
    "brier_score",
    "risk_coverage_curve",
    "coverage_at_precision",
    "fold_ids",
    "ece_rows",
    "coverage_rows",
    "accepted_rows",
    "STRATEGIES",
]

STRATEGIES = ("quantile", "uniform")
_MAX_ENTRIES = 1_000_000  # (rows x samples x bin edges) booleans per chunk


def _check_pair(y_correct: Any, confidence: Any, func: str) -> tuple[np.ndarray, np.ndarray]:
    correct = np.asarray(y_correct, dtype=float)
    conf = np.asarray(confidence, dtype=float)
    if correct.ndim != 1 or conf.shape != correct.shape:
        raise ValueError(
            f"The 'y_correct' and 'confidence' parameters of {func} must be 1-D arrays of equal length. "
            f"Got shapes {correct.shape} and {conf.shape} instead."
        )
    if not np.isin(correct, (0.0, 1.0)).all():
        raise ValueError(f"The 'y_correct' parameter of {func} must hold only 0 and 1 (or False and True).")
    if not (np.isfinite(conf).all() and ((conf >= 0) & (conf <= 1)).all()):
        raise ValueError(f"The 'confidence' parameter of {func} must hold numbers in [0, 1].")
    return correct, conf


def _check_bins(n_bins: Any, strategy: Any, func: str) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, Integral) or n_bins < 1:
        raise ValueError(f"The 'n_bins' parameter of {func} must be an int >= 1. Got {n_bins!r} instead.")
    if strategy not in STRATEGIES:
        raise ValueError(f"The 'strategy' parameter of {func} must be one of {STRATEGIES}. Got {strategy!r} instead.")
    return int(n_bins)


def _check_precision(precision: Any, func: str) -> float:
    if isinstance(precision, bool) or not isinstance(precision, Real) or not 0.0 < float(precision) <= 1.0:
        raise ValueError(f"The 'precision' parameter of {func} must be a number in (0, 1]. Got {precision!r} instead.")
    return float(precision)


def _bin_ids(conf: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Bin of each entry of each row, as ``calibration_curve`` bins one row (``searchsorted`` on inner edges)."""
    if strategy == "quantile":
        edges = np.percentile(conf, np.linspace(0, 100, n_bins + 1), axis=1).T  # (B, n_bins + 1)
    else:
        edges = np.broadcast_to(np.linspace(0.0, 1.0, n_bins + 1), (conf.shape[0], n_bins + 1))
    inner = edges[:, 1:-1]
    return (inner[:, None, :] < conf[:, :, None]).sum(axis=2)  # searchsorted(side="left") row by row


def _bin_sums(correct: np.ndarray, conf: np.ndarray, n_bins: int, strategy: str):
    """Per row and bin: count, summed confidence, summed correctness (arrays of shape (B, n_bins))."""
    rows = conf.shape[0]
    ids = _bin_ids(conf, n_bins, strategy) + (np.arange(rows) * n_bins)[:, None]
    size = rows * n_bins
    count = np.bincount(ids.ravel(), minlength=size).reshape(rows, n_bins)
    conf_sum = np.bincount(ids.ravel(), weights=conf.ravel(), minlength=size).reshape(rows, n_bins)
    hits = np.bincount(ids.ravel(), weights=correct.ravel(), minlength=size).reshape(rows, n_bins)
    return count, conf_sum, hits


def _chunks(rows: int, width: int):
    step = max(1, _MAX_ENTRIES // max(width, 1))
    return (slice(s, s + step) for s in range(0, rows, step))


def ece_rows(correct: np.ndarray, conf: np.ndarray, *, n_bins: int = 10, strategy: str = "quantile") -> np.ndarray:
    """:func:`expected_calibration_error` of each row of two ``(B, n)`` arrays (nan for an empty row)."""
    correct, conf = np.atleast_2d(np.asarray(correct, dtype=float)), np.atleast_2d(np.asarray(conf, dtype=float))
    out = np.full(conf.shape[0], np.nan)
    if conf.shape[1] == 0:
        return out
    for part in _chunks(conf.shape[0], conf.shape[1] * n_bins):
        count, conf_sum, hits = _bin_sums(correct[part], conf[part], n_bins, strategy)
        out[part] = np.abs(conf_sum - hits).sum(axis=1) / count.sum(axis=1)  # sum_b n_b/n * |mean conf - accuracy|
    return out


def reliability_curve(
    y_correct, confidence, *, n_bins=10, strategy="quantile"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy and mean confidence per non-empty bin, with the bin sizes.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 where the decision was right, else 0.
    confidence : array-like of shape (n_samples,)
        Probability in [0, 1] that the decision is right.
    n_bins : int, default=10
        Number of bins (fewer are returned when some are empty, e.g. tied confidences).
    strategy : {"quantile", "uniform"}, default="quantile"
        Equal-mass bins (edges at quantiles of ``confidence``) or equal-width bins on [0, 1].

    Returns
    -------
    accuracy, mean_confidence, counts : ndarray
        The first two equal ``sklearn.calibration.calibration_curve(y_correct, confidence, n_bins=n_bins,
        strategy=strategy)``.

    Examples
    --------
    >>> acc, conf, counts = reliability_curve([0, 1, 1, 1], [0.2, 0.4, 0.8, 0.9], n_bins=2)
    >>> acc.tolist(), conf.tolist(), counts.tolist()
    ([0.5, 1.0], [0.30000000000000004, 0.8500000000000001], [2, 2])
    """
    func = "reliability_curve"
    correct, conf = _check_pair(y_correct, confidence, func)
    n_bins = _check_bins(n_bins, strategy, func)
    if conf.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)
    count, conf_sum, hits = (a[0] for a in _bin_sums(correct[None, :], conf[None, :], n_bins, strategy))
    keep = count > 0
    return hits[keep] / count[keep], conf_sum[keep] / count[keep], count[keep].astype(int)


def expected_calibration_error(y_correct, confidence, *, n_bins=10, strategy="quantile") -> float:
    """Expected calibration error: the bin-size-weighted mean gap between confidence and accuracy.

    ``sum_b (n_b / n) * |mean confidence_b - accuracy_b|`` over the bins of :func:`reliability_curve`;
    0 is perfectly calibrated, lower is better. With ``strategy="quantile"`` (default) the bins hold
    equal numbers of samples (adaptive ECE); nan without samples.

    Examples
    --------
    >>> round(expected_calibration_error([0, 1, 1, 1], [0.2, 0.4, 0.8, 0.9], n_bins=2), 4)
    0.175
    >>> expected_calibration_error([1, 1], [1.0, 1.0])
    0.0
    """
    func = "expected_calibration_error"
    correct, conf = _check_pair(y_correct, confidence, func)
    n_bins = _check_bins(n_bins, strategy, func)
    return float(ece_rows(correct[None, :], conf[None, :], n_bins=n_bins, strategy=strategy)[0])


def brier_score(y_correct, confidence) -> float:
    """Mean squared difference between confidence and correctness (lower is better; nan without samples).

    Equals ``sklearn.metrics.brier_score_loss(y_correct, confidence)``.

    Examples
    --------
    >>> round(brier_score([0, 1, 1], [0.5, 1.0, 0.8]), 4)
    0.0967
    """
    correct, conf = _check_pair(y_correct, confidence, "brier_score")
    return float(np.mean((conf - correct) ** 2)) if conf.size else float("nan")


def risk_coverage_curve(y_correct, confidence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage and precision of "accept when confidence >= t" for every distinct ``t``, highest first.

    Returns
    -------
    coverage, precision, thresholds : ndarray
        ``coverage[i]`` is the share of samples with confidence >= ``thresholds[i]``, ``precision[i]``
        the share of those that are right (the risk is ``1 - precision``). Tied confidences are accepted
        together, so there is one point per distinct value.

    Examples
    --------
    >>> cov, prec, thr = risk_coverage_curve([1, 1, 0, 1], [0.9, 0.8, 0.8, 0.3])
    >>> cov.tolist(), prec.round(3).tolist(), thr.tolist()
    ([0.25, 0.75, 1.0], [1.0, 0.667, 0.75], [0.9, 0.8, 0.3])
    """
    correct, conf = _check_pair(y_correct, confidence, "risk_coverage_curve")
    order = np.argsort(-conf, kind="stable")
    conf, correct = conf[order], correct[order]
    last = np.append(conf[:-1] > conf[1:], True) if conf.size else np.zeros(0, dtype=bool)
    accepted = np.arange(1, conf.size + 1)[last]
    return accepted / max(conf.size, 1), np.cumsum(correct)[last] / accepted, conf[last]


def fold_ids(sample_ids, n_folds: int = 5) -> np.ndarray:
    """A fold in ``[0, n_folds)`` per sample id, from a hash of the id (the same for every checkpoint and run).

    Examples
    --------
    >>> folds = fold_ids(["a", "b", "a"], 5).tolist()
    >>> folds[0] == folds[2] == int(fold_ids(["a"], 5)[0]), 0 <= folds[1] < 5
    (True, True)
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, Integral) or n_folds < 2:
        raise ValueError(f"The 'n_folds' parameter of fold_ids must be an int >= 2. Got {n_folds!r} instead.")
    return np.asarray(
        [
            int.from_bytes(hashlib.blake2b(str(s).encode("utf-8"), digest_size=8).digest(), "big") % n_folds
            for s in sample_ids
        ],
        dtype=np.int64,
    )


def accepted_rows(correct: np.ndarray, conf: np.ndarray, folds: np.ndarray | None, *, precision: float) -> np.ndarray:
    """Which entries of each row of ``(B, n)`` arrays the cross-fitted rule accepts (same shape, input order).

    ``folds`` (same shape, or None for one in-sample cut) gives each entry's fold; the entries of fold ``k``
    are accepted when their confidence reaches the lowest cut at which the *other* folds' precision is
    at least ``precision``. A fold whose other folds never reach it accepts nothing.
    """
    correct = np.atleast_2d(np.asarray(correct, dtype=float))
    conf = np.atleast_2d(np.asarray(conf, dtype=float))
    in_sample = folds is None
    folds = np.zeros(conf.shape, dtype=np.int64) if in_sample else np.atleast_2d(np.asarray(folds))
    rows, n = conf.shape
    accepted = np.zeros((rows, n), dtype=bool)
    if n == 0:
        return accepted
    order = np.argsort(-conf, axis=1, kind="stable")
    conf, correct, folds = (np.take_along_axis(a, order, axis=1) for a in (conf, correct, folds))
    last_of_tie = np.ones((rows, n), dtype=bool)
    last_of_tie[:, :-1] = conf[:, :-1] > conf[:, 1:]  # a cut can only fall between distinct confidences
    for fold in np.unique(folds):
        chooser = np.ones_like(folds, dtype=bool) if in_sample else folds != fold
        tp, seen = np.cumsum(correct * chooser, axis=1), np.cumsum(chooser, axis=1)
        # a cut at a tie block's value is a candidate only if the block holds a sample the cut is chosen on
        ends = np.where(last_of_tie, seen, 0)
        before = np.maximum.accumulate(
            np.concatenate([np.zeros((rows, 1), dtype=ends.dtype), ends[:, :-1]], axis=1), axis=1
        )
        ok = last_of_tie & (seen > before) & (tp >= precision * seen - 1e-9)
        cut_at = n - 1 - np.argmax(ok[:, ::-1], axis=1)  # the lowest cut that keeps the precision
        cut = np.where(ok.any(axis=1), conf[np.arange(rows), cut_at], np.inf)
        np.put_along_axis(
            accepted,
            order,
            np.take_along_axis(accepted, order, axis=1) | ((folds == fold) & (conf >= cut[:, None])),
            axis=1,
        )
    return accepted


def coverage_rows(
    correct: np.ndarray, conf: np.ndarray, folds: np.ndarray | None, *, precision: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted (coverage, realised precision) of each row of ``(B, n)`` arrays (:func:`accepted_rows`).

    Realised precision is nan where nothing is accepted.
    """
    correct = np.atleast_2d(np.asarray(correct, dtype=float))
    accepted = accepted_rows(correct, conf, folds, precision=precision)
    if accepted.shape[1] == 0:
        return np.full(accepted.shape[0], np.nan), np.full(accepted.shape[0], np.nan)
    count = accepted.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return count / accepted.shape[1], np.where(count > 0, (accepted * correct).sum(axis=1) / count, np.nan)


def coverage_at_precision(y_correct, confidence, *, precision=0.95, folds=None) -> tuple[float, float]:
    """Share of samples that can be accepted automatically while keeping ``precision``, and the precision kept.

    Parameters
    ----------
    y_correct, confidence : array-like of shape (n_samples,)
        As for :func:`risk_coverage_curve`.
    precision : float in (0, 1], default=0.95
        The precision the accepted samples must reach.
    folds : array-like of int, optional
        Fold of each sample (:func:`fold_ids`): each fold is accepted with the lowest cut at which the
        other folds reach ``precision`` (cross-fitting, the honest estimate). None: one cut chosen on
        all samples and measured on them (optimistic; what the in-sample curve shows).

    Returns
    -------
    coverage, realised_precision : float
        The accepted share, and the precision of the accepted samples (nan when none is accepted).

    Examples
    --------
    >>> correct = [1, 1, 1, 0, 1, 0]
    >>> conf = [0.95, 0.9, 0.85, 0.8, 0.6, 0.3]
    >>> coverage_at_precision(correct, conf, precision=0.9)
    (0.5, 1.0)
    >>> coverage_at_precision(correct, conf, precision=0.9, folds=[0, 1, 0, 1, 0, 1])  # cuts 0.9 and 0.6
    (0.5, 0.6666666666666666)
    """
    func = "coverage_at_precision"
    correct, conf = _check_pair(y_correct, confidence, func)
    precision = _check_precision(precision, func)
    if folds is not None:
        folds = np.asarray(folds)
        if folds.shape != conf.shape or folds.dtype.kind not in "iu":
            raise ValueError(f"The 'folds' parameter of {func} must be an int array of the length of 'confidence'.")
    coverage, realised = coverage_rows(
        correct[None, :], conf[None, :], None if folds is None else folds[None, :], precision=precision
    )
    return float(coverage[0]), float(realised[0])
