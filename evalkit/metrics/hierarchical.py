"""Metrics for hierarchical (label-path) classification, vectorised over integer-encoded paths.

Labels are *paths*: tuples of names from the top level down (``("Delivery", "Late")``) or the same
joined with a separator (``"Delivery > Late"``). A node is identified by its full path, so two
``"Other"`` nodes under different parents are different classes (unlike hiclass, which compares names).

Conventions shared by every function
------------------------------------
* ``y_true`` and ``y_pred`` are sequences of equal length; a true label must be a valid path.
* A prediction of ``None`` or ``""`` (or a malformed path, or, when ``taxonomy=`` is given, a path that is
  not a node of it) is **invalid**: it is a miss for its true class and is *not* a class of its own in
  averages (it never enters the label set, so it adds no precision term).
* Without ``taxonomy=`` the taxonomy is derived from ``y_true``, the valid predictions and ``labels``.
  With ``taxonomy=`` and integer arrays, the arrays are taken as node ids (``taxonomy.encode`` output,
  -1 for invalid): the fast path that skips string handling.
* ``zero_division`` is the value of an undefined ratio (0.0, 1.0, nan, or "warn" = 0.0 with a warning),
  as in scikit-learn; averages ignore nan values.

The leaf-level and per-level scores equal :func:`sklearn.metrics.precision_recall_fscore_support` on the
same labels as strings (with ``labels=`` the valid label set when there are invalid predictions).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evalkit.metrics._validation import (
    Encoded,
    check_average,
    check_confidence,
    check_int,
    check_level,
    check_zero_division,
    encode,
)
from evalkit.taxonomy import DEFAULT_SEP, Taxonomy

__all__ = [
    "UndefinedMetricWarning",
    "leaf_precision_recall_fscore_support",
    "leaf_precision_score",
    "leaf_recall_score",
    "leaf_f1_score",
    "level_precision_recall_fscore_support",
    "level_f1_score",
    "hierarchical_precision_recall_fscore",
    "lca_precision_recall_fscore",
    "path_accuracy_score",
    "invalid_rate",
    "mean_first_error_depth",
    "frequency_breakdown",
    "per_class_table",
    "metric_names",
    "resampled_scores",
    "resampled_breakdown",
    "bootstrap_ci",
    "jackknife_ci",
    "hierarchical_report",
    "DEFAULT_FREQUENCY_BINS",
    "frequency_bands",
    "DEFAULT_CI_METRICS",
]

#: Training-count boundaries of the frequency buckets: tail < 20 <= torso <= 100 < head (the many-,
#: medium- and few-shot split of long-tailed recognition, Liu et al. 2019, "Large-Scale Long-Tailed
#: Recognition in an Open World"). Absolute counts, so the buckets do not move between checkpoints.
DEFAULT_FREQUENCY_BINS = (20, 100)
DEFAULT_CI_METRICS = ("leaf_macro_f1", "leaf_micro_f1", "hier_f1", "lca_f1", "path_accuracy")
_MAX_INDEX_ENTRIES = 2_000_000  # resample chunk size bound (entries of the (B, n) index array)


class UndefinedMetricWarning(UserWarning):
    """A ratio had a zero denominator and ``zero_division="warn"`` set it to 0.0."""


# ================================================================================ counting helpers
def _class_counts(true: np.ndarray, pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, true counts and (valid) predicted counts."""
    hit = true == pred  # an invalid prediction (-1) never equals a true id (>= 0)
    tp = np.bincount(true[hit], minlength=n_classes)
    true_count = np.bincount(true, minlength=n_classes)
    pred_count = np.bincount(pred[pred >= 0], minlength=n_classes)
    return tp, true_count, pred_count


def _default_labels(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """scikit-learn's label set: classes in the truth or among the valid predictions, sorted."""
    return np.unique(np.concatenate([true, pred[pred >= 0]]))


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float | str, what: str, why: str) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    zero = den == 0
    out = num / np.where(zero, 1.0, den)
    if zero.any():
        out[zero] = 0.0 if zero_division == "warn" else zero_division
        if zero_division == "warn":
            warnings.warn(
                f"{what} is ill-defined and being set to 0.0 in labels with no {why} samples. "
                "Use `zero_division` parameter to control this behavior.",
                UndefinedMetricWarning,
                stacklevel=4,
            )
    return out


def _nanaverage(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean ignoring nan (scikit-learn's rule); all-zero weights fall back to the plain mean."""
    keep = ~np.isnan(values)
    if not keep.any():
        return math.nan
    if weights is not None and weights[keep].sum() > 0:
        return float(np.average(values[keep], weights=weights[keep]))
    return float(values[keep].mean())


def _prf(tp, true_count, pred_count, average, zero_division):
    """Precision, recall, F1 and support from per-class counts (already restricted to the label set)."""
    if average == "micro":
        tp, true_count, pred_count = (np.array([x.sum()]) for x in (tp, true_count, pred_count))
    precision = _divide(tp, pred_count, zero_division, "Precision", "predicted")
    recall = _divide(tp, true_count, zero_division, "Recall", "true")
    # F1 from counts (scikit-learn >= 1.3): defined whenever the class was seen at all.
    f1 = _divide(2 * tp, true_count + pred_count, zero_division, "F-score", "true nor predicted")
    if average is None:
        return precision, recall, f1, true_count
    weights = true_count.astype(float) if average == "weighted" else None
    return _nanaverage(precision, weights), _nanaverage(recall, weights), _nanaverage(f1, weights), None


def _truncation_table(taxonomy: Taxonomy, level: int) -> np.ndarray:
    """Node id -> id of its prefix of length ``level`` (the node itself when it is shallower)."""
    n = len(taxonomy.nodes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cols = np.minimum(level, taxonomy.node_depth) - 1
    return taxonomy.ancestors[np.arange(n), cols]


def _truncate(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.where(ids >= 0, table[np.maximum(ids, 0)], -1)


def _prf_on_ids(enc: Encoded, true, pred, labels, average, zero_division):
    label_ids = _default_labels(true, pred) if labels is None else labels
    tp, true_count, pred_count = _class_counts(true, pred, len(enc.taxonomy.nodes))
    return _prf(tp[label_ids], true_count[label_ids], pred_count[label_ids], average, zero_division)


# ================================================================================ leaf level
def leaf_precision_recall_fscore_support(
    y_true, y_pred, *, labels=None, average="macro", zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP
):
    """Precision, recall, F1 and support of exact (full-path) classes.

    Parameters
    ----------
    y_true : sequence of paths
        True label paths (tuples of names or ``sep``-joined strings).
    y_pred : sequence of paths or None
        Predicted paths; None, ``""`` or a malformed/unknown path is an invalid prediction.
    labels : sequence of paths, default=None
        The classes to score and average over, in this order. Default: the classes present in
        ``y_true`` or among the valid predictions (scikit-learn's convention), sorted by path.
    average : {"macro", "micro", "weighted"} or None, default="macro"
        None returns per-class arrays; "micro" pools the counts (invalid predictions add to no
        class, so micro precision is over valid predictions only); "weighted" weights by support.
    zero_division : {0.0, 1.0, nan, "warn"}, default=0.0
        Value of an undefined ratio ("warn": 0.0 plus an :class:`UndefinedMetricWarning`).
    taxonomy : Taxonomy, default=None
        Fixes the node ids; allows integer node-id arrays as inputs.
    sep : str, default=" > "
        Separator of string paths.

    Returns
    -------
    precision, recall, fscore : float or ndarray
    support : None or ndarray
        Number of true samples per class (None when averaged, as in scikit-learn).

    Examples
    --------
    >>> y_true = ["A > x", "A > x", "B > Other", "A > Other"]
    >>> y_pred = ["A > x", "A > Other", "B > Other", None]
    >>> p, r, f, _ = leaf_precision_recall_fscore_support(y_true, y_pred)
    >>> round(p, 4), round(r, 4), round(f, 4)
    (0.6667, 0.5, 0.5556)
    """
    func = "leaf_precision_recall_fscore_support"
    average, zero_division = check_average(average, func), check_zero_division(zero_division, func)
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, labels=labels, sep=sep)
    return _prf_on_ids(enc, enc.true, enc.pred, enc.labels, average, zero_division)


def leaf_precision_score(
    y_true, y_pred, *, labels=None, average="macro", zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP
):
    """Precision of exact (full-path) classes; see :func:`leaf_precision_recall_fscore_support`.

    Examples
    --------
    >>> leaf_precision_score(["A > x", "A > y"], ["A > x", "A > x"])
    0.25
    """
    return _one_of_prf("leaf_precision_score", 0, y_true, y_pred, labels, average, zero_division, taxonomy, sep)


def leaf_recall_score(
    y_true, y_pred, *, labels=None, average="macro", zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP
):
    """Recall of exact (full-path) classes; see :func:`leaf_precision_recall_fscore_support`.

    Examples
    --------
    >>> leaf_recall_score(["A > x", "A > y"], ["A > x", None])
    0.5
    """
    return _one_of_prf("leaf_recall_score", 1, y_true, y_pred, labels, average, zero_division, taxonomy, sep)


def leaf_f1_score(y_true, y_pred, *, labels=None, average="macro", zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP):
    """F1 of exact (full-path) classes; see :func:`leaf_precision_recall_fscore_support`.

    Examples
    --------
    >>> leaf_f1_score(["A > x", "A > y", "B"], ["A > x", "A > x", None], average="micro")
    0.4
    >>> leaf_f1_score(["A > x"], ["A > x"], average="weighed")
    Traceback (most recent call last):
    ...
    ValueError: The 'average' parameter of leaf_f1_score must be one of 'macro', 'micro', 'weighted' or None. Got 'weighed' instead.
    """
    return _one_of_prf("leaf_f1_score", 2, y_true, y_pred, labels, average, zero_division, taxonomy, sep)


def _one_of_prf(func, which, y_true, y_pred, labels, average, zero_division, taxonomy, sep):
    average, zero_division = check_average(average, func), check_zero_division(zero_division, func)
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, labels=labels, sep=sep)
    return _prf_on_ids(enc, enc.true, enc.pred, enc.labels, average, zero_division)[which]


# ================================================================================ per level
def level_precision_recall_fscore_support(
    y_true, y_pred, *, level, labels=None, average="macro", zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP
):
    """Precision, recall, F1 and support of the level-``level`` prefixes of the paths.

    Each path is cut to its first ``level`` names; a path shorter than ``level`` is kept whole (its
    deepest class stands for itself at the deeper levels). Invalid predictions stay invalid. Other
    parameters as in :func:`leaf_precision_recall_fscore_support`; ``labels`` are level-``level`` paths.

    Examples
    --------
    >>> y_true = ["A > x", "A > y", "B > z"]
    >>> y_pred = ["A > y", "B > z", "B > z"]
    >>> p, r, f, s = level_precision_recall_fscore_support(y_true, y_pred, level=1, average=None)
    >>> p.tolist(), r.tolist(), s.tolist()
    ([1.0, 0.5], [0.5, 1.0], [2, 1])
    """
    func = "level_precision_recall_fscore_support"
    return _level_prf(func, y_true, y_pred, level, labels, average, zero_division, taxonomy, sep)


def level_f1_score(
    y_true, y_pred, *, level, labels=None, average="macro", zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP
):
    """F1 of the level-``level`` prefixes; see :func:`level_precision_recall_fscore_support`.

    Examples
    --------
    >>> level_f1_score(["A > x", "A > y", "B"], ["A > y", "B", None], level=1, average="micro")
    0.4
    """
    return _level_prf("level_f1_score", y_true, y_pred, level, labels, average, zero_division, taxonomy, sep)[2]


def _level_prf(func, y_true, y_pred, level, labels, average, zero_division, taxonomy, sep):
    average, zero_division = check_average(average, func), check_zero_division(zero_division, func)
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, labels=labels, sep=sep)
    level = check_level(level, enc.taxonomy.depth, func)
    table = _truncation_table(enc.taxonomy, level)
    return _prf_on_ids(enc, table[enc.true], _truncate(enc.pred, table), enc.labels, average, zero_division)


# ================================================================================ set-based hierarchical
def _common_depth(taxonomy: Taxonomy, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per sample, the number of leading path nodes shared by truth and prediction (= depth of the LCA).

    Node ids are path-aware, so equal ids at level k imply equal ids at every level above it.
    """
    valid = pred >= 0
    anc_true = taxonomy.ancestors[true]
    anc_pred = taxonomy.ancestors[np.where(valid, pred, 0)]
    return ((anc_true == anc_pred) & (anc_true >= 0)).sum(axis=1) * valid


def _set_sizes(enc: Encoded, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample |T ∩ P|, |T| and |P| of the augmented sets of ``kind`` ("hier" or "lca")."""
    depth = enc.taxonomy.node_depth
    common = _common_depth(enc.taxonomy, enc.true, enc.pred)
    true_size = depth[enc.true]
    pred_size = np.where(enc.pred >= 0, depth[np.maximum(enc.pred, 0)], 0)
    if kind == "hier":
        return common, true_size, pred_size
    # LCA sets keep the nodes from the LCA down: |path| - depth(LCA) + 1 when the LCA is a real node;
    # when the LCA is the (uncounted) root, the whole paths and an empty intersection.
    shared = common > 0
    return shared.astype(np.int64), true_size - common + shared, pred_size - common + shared


def _ratio_triple(inter: float, true_total: float, pred_total: float, zero_division, func: str):
    zd = check_zero_division(zero_division, func)
    inter, true_total, pred_total = (np.array([x]) for x in (inter, true_total, pred_total))
    precision = float(_divide(inter, pred_total, zd, "Precision", "predicted")[0])
    recall = float(_divide(inter, true_total, zd, "Recall", "true")[0])
    f1 = float(_divide(2 * inter, true_total + pred_total, zd, "F-score", "true nor predicted")[0])
    return precision, recall, f1


def hierarchical_precision_recall_fscore(y_true, y_pred, *, zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP):
    """Hierarchical precision, recall and F1 (Kiritchenko et al. 2005), micro-averaged over samples.

    Each path is augmented with all its ancestors (the virtual root excluded; nodes are full paths,
    so a repeated name under two parents never matches). With T_i, P_i the augmented true and predicted
    sets: ``hP = Σ|T_i ∩ P_i| / Σ|P_i|``, ``hR = Σ|T_i ∩ P_i| / Σ|T_i|``, ``hF = 2 hP hR / (hP + hR)``.
    An invalid prediction is the empty set (it lowers hR, not hP). ``zero_division`` applies to hP
    when every prediction is invalid. This equals hiclass's micro ``precision``/``recall``/``f1``
    whenever names are unique in the tree.

    Returns
    -------
    (precision, recall, f1) : tuple of float

    Examples
    --------
    >>> hierarchical_precision_recall_fscore(["A > x > 1", "B > y"], ["A > x > 2", None])
    (0.6666666666666666, 0.4, 0.5)
    """
    func = "hierarchical_precision_recall_fscore"
    zd = check_zero_division(zero_division, func)
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, sep=sep)
    inter, true_size, pred_size = _set_sizes(enc, "hier")
    return _ratio_triple(inter.sum(), true_size.sum(), pred_size.sum(), zd, func)


def lca_precision_recall_fscore(y_true, y_pred, *, zero_division=0.0, taxonomy=None, sep=DEFAULT_SEP):
    """LCA-based precision, recall and F1 (Kosmopoulos et al. 2015), micro-averaged over samples.

    For one true and one predicted path in a tree, the lowest common ancestor (LCA) is their longest
    shared prefix. The augmented sets keep only the nodes from the LCA down: ``T_aug`` = the nodes of
    the true path strictly below the LCA plus the LCA, ``P_aug`` likewise; so ``|T ∩ P| = 1`` (the LCA)
    and ancestors above the LCA, which every error high in the tree would share, do not inflate the
    score. ``lcaP = Σ|T∩P| / Σ|P_aug|``, ``lcaR = Σ|T∩P| / Σ|T_aug|``, ``lcaF`` their harmonic mean.

    Edge cases (our choices, documented because the paper's root handling is implicit):

    * exact match: ``T_aug = P_aug = {leaf}``, so the sample counts 1/1/1;
    * prediction an ancestor (or descendant) of the truth: the LCA is the shorter path, e.g. true
      ``A>B>C``, predicted ``A>B``: ``T_aug = {A>B, A>B>C}``, ``P_aug = {A>B}``;
    * LCA = the root (paths differ at level 1): the root is not a class and is not counted, so
      ``T_aug``/``P_aug`` are the whole paths and the intersection is empty;
    * invalid prediction: ``P_aug`` is empty and ``T_aug`` the whole true path.

    Examples
    --------
    >>> lca_precision_recall_fscore(["A > x > 1", "B > y"], ["A > x > 2", None])
    (0.5, 0.25, 0.3333333333333333)
    """
    func = "lca_precision_recall_fscore"
    zd = check_zero_division(zero_division, func)
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, sep=sep)
    inter, true_size, pred_size = _set_sizes(enc, "lca")
    return _ratio_triple(inter.sum(), true_size.sum(), pred_size.sum(), zd, func)


# ================================================================================ simple rates
def path_accuracy_score(y_true, y_pred, *, taxonomy=None, sep=DEFAULT_SEP) -> float:
    """Fraction of samples whose predicted path equals the true path exactly (invalid = wrong).

    Examples
    --------
    >>> path_accuracy_score(["A > x", "A > y", "B"], ["A > x", "A", None])
    0.3333333333333333
    """
    enc = encode(y_true, y_pred, "path_accuracy_score", taxonomy=taxonomy, sep=sep)
    return float(np.mean(enc.true == enc.pred))


def invalid_rate(y_true, y_pred, *, taxonomy=None, sep=DEFAULT_SEP) -> float:
    """Fraction of invalid predictions (None, blank, malformed, or not a node of ``taxonomy``).

    Examples
    --------
    >>> invalid_rate(["A", "B", "C", "D"], ["A", None, "", "A >  > B"])
    0.75
    """
    enc = encode(y_true, y_pred, "invalid_rate", taxonomy=taxonomy, sep=sep)
    return float(np.mean(enc.pred < 0))


def _first_error_depth(enc: Encoded) -> tuple[np.ndarray, np.ndarray]:
    wrong = enc.true != enc.pred
    return _common_depth(enc.taxonomy, enc.true, enc.pred) + 1, wrong


def mean_first_error_depth(y_true, y_pred, *, taxonomy=None, sep=DEFAULT_SEP) -> float:
    """Mean 1-based level of the first disagreement, over the wrong predictions only.

    For a wrong prediction the first error depth is (length of the shared prefix) + 1: 1 when the
    top level is already wrong or the prediction is invalid; ``len(shorter path) + 1`` when one path is
    a prefix of the other (a too-short or too-deep prediction errs where it stops or goes on).
    Correct predictions have no error and are left out; with no wrong prediction the result is nan.
    Higher means the model goes wrong deeper in the tree.

    Examples
    --------
    >>> mean_first_error_depth(["A > x > 1", "A > x > 1", "B", "C"], ["A > x > 2", "A > y", None, "C"])
    2.0
    """
    enc = encode(y_true, y_pred, "mean_first_error_depth", taxonomy=taxonomy, sep=sep)
    depth, wrong = _first_error_depth(enc)
    return float(depth[wrong].mean()) if wrong.any() else math.nan


# ================================================================================ breakdowns
def _per_class_f1(enc: Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(classes, precision, recall, f1, support) per class of the default label set, zero_division 0."""
    classes = _default_labels(enc.true, enc.pred)
    tp, true_count, pred_count = (x[classes] for x in _class_counts(enc.true, enc.pred, len(enc.taxonomy.nodes)))
    precision = _divide(tp, pred_count, 0.0, "Precision", "predicted")
    recall = _divide(tp, true_count, 0.0, "Recall", "true")
    f1 = _divide(2 * tp, true_count + pred_count, 0.0, "F-score", "true nor predicted")
    return classes, precision, recall, f1, true_count


def per_class_table(y_true, y_pred, *, taxonomy=None, sep=DEFAULT_SEP) -> list[dict[str, Any]]:
    """One row per class of the default label set, sorted by path: class, support, precision, recall, f1.

    ``class`` is the ``sep``-joined path; ratios with a zero denominator are 0.0.

    Examples
    --------
    >>> per_class_table(["A > x", "B"], ["A > x", "A > x"])[0]
    {'class': 'A > x', 'support': 1, 'precision': 0.5, 'recall': 1.0, 'f1': 0.6666666666666666}
    """
    enc = encode(y_true, y_pred, "per_class_table", taxonomy=taxonomy, sep=sep)
    classes, precision, recall, f1, support = _per_class_f1(enc)
    tax = enc.taxonomy
    return [
        {
            "class": tax.format(tax.nodes[c]),
            "support": int(s),
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
        }
        for c, s, p, r, f in zip(classes.tolist(), support.tolist(), precision, recall, f1)
    ]


def _train_count_array(train_counts: Any, taxonomy: Taxonomy, func: str) -> np.ndarray:
    """Training count per node id from a mapping {path: count} or a sequence of training labels."""
    if not isinstance(train_counts, Mapping):
        if isinstance(train_counts, (str, bytes)) or not hasattr(train_counts, "__iter__"):
            raise ValueError(
                f"The 'train_counts' parameter of {func} must be a mapping path -> count or a sequence of training labels. Got {type(train_counts).__name__} instead."
            )
        train_counts = Counter(tuple(v) if isinstance(v, list) else v for v in train_counts)
    counts = np.zeros(len(taxonomy.nodes), dtype=np.int64)
    for key, value in train_counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{func}: train_counts[{key!r}] must be a count >= 0. Got {value!r}.")
        node = taxonomy.encode([key])[0]
        if node >= 0:  # training classes absent from the evaluation data do not matter here
            counts[node] += int(value)
    return counts


def _check_bins(bins: Any, func: str) -> tuple[int, int]:
    ok = (
        isinstance(bins, (tuple, list))
        and len(bins) == 2
        and all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in bins)
    )
    if not ok or not 0 <= bins[0] <= bins[1]:
        raise ValueError(
            f"The 'bins' parameter of {func} must be two ints (tail_below, head_above) with 0 <= tail_below <= head_above. Got {bins!r} instead."
        )
    return int(bins[0]), int(bins[1])


def frequency_breakdown(
    y_true, y_pred, train_counts, *, bins=DEFAULT_FREQUENCY_BINS, taxonomy=None, sep=DEFAULT_SEP
) -> dict[str, dict[str, Any]]:
    """Macro F1 of head, torso and tail classes, bucketed by the training frequency of the true class.

    With ``bins=(t, h)``: tail = classes with fewer than ``t`` training examples (including classes
    never seen in training), torso = ``t`` to ``h`` inclusive, head = more than ``h``. The default
    (20, 100) is the few/medium/many-shot split of Liu et al. (2019). Per-class F1 uses the whole
    confusion counts (so over-predicting a head class lowers head precision); each bucket averages the
    F1 of its classes that occur in ``y_true``. ``n`` counts test samples, ``n_classes`` classes.

    Parameters
    ----------
    train_counts : mapping path -> int, or sequence of training labels
        Training examples per class (paths as tuples or ``sep``-strings).

    Examples
    --------
    >>> out = frequency_breakdown(["A", "A", "B", "C"], ["A", "A", "A", "C"], {"A": 500, "B": 50})
    >>> out["head"], out["torso"]["macro_f1"], out["tail"]["n"]
    ({'macro_f1': 0.8, 'n': 2, 'n_classes': 1}, 0.0, 1)
    """
    func = "frequency_breakdown"
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, sep=sep)
    classes, _, _, f1, support = _per_class_f1(enc)
    in_truth = support > 0
    bucket_of = _band_codes(classes, train_counts, bins, enc.taxonomy, func)
    out = {}
    for code, name in enumerate(FREQUENCY_BANDS):
        members = in_truth & (bucket_of == code)
        out[name] = {
            "macro_f1": float(f1[members].mean()) if members.any() else None,
            "n": int(support[members].sum()),
            "n_classes": int(members.sum()),
        }
    return out


FREQUENCY_BANDS = ("head", "torso", "tail")


def _band_codes(classes: np.ndarray, train_counts: Any, bins: Any, taxonomy: Taxonomy, func: str) -> np.ndarray:
    """0 (head), 1 (torso) or 2 (tail) for each node id of ``classes``, from their training counts."""
    tail_below, head_above = _check_bins(bins, func)
    counts = _train_count_array(train_counts, taxonomy, func)[classes]
    return np.where(counts > head_above, 0, np.where(counts >= tail_below, 1, 2))


def frequency_bands(
    y_true, train_counts, *, bins=DEFAULT_FREQUENCY_BINS, taxonomy=None, sep=DEFAULT_SEP
) -> dict[str, list[str]]:
    """The classes of ``y_true`` in each band of :func:`frequency_breakdown`: ``{"head": [paths], ...}``.

    What a resample of the band's macro F1 averages over (:func:`resampled_breakdown`, ``kind="frequency"``);
    paths are ``sep``-joined and sorted.

    Examples
    --------
    >>> frequency_bands(["A", "A", "B", "C"], {"A": 500, "B": 50})
    {'head': ['A'], 'torso': ['B'], 'tail': ['C']}
    """
    func = "frequency_bands"
    enc = encode(y_true, y_true, func, taxonomy=taxonomy, sep=sep)
    classes = np.unique(enc.true)
    codes = _band_codes(classes, train_counts, bins, enc.taxonomy, func)
    tax = enc.taxonomy
    return {
        name: sorted(tax.format(tax.nodes[c]) for c in classes[codes == code].tolist())
        for code, name in enumerate(FREQUENCY_BANDS)
    }


# ================================================================================ resampling
def metric_names(depth: int) -> list[str]:
    """All metric names :func:`resampled_scores` and :func:`hierarchical_report` know, for a tree of ``depth`` levels.

    Examples
    --------
    >>> metric_names(1)[:5]
    ['leaf_macro_precision', 'leaf_macro_recall', 'leaf_macro_f1', 'leaf_micro_f1', 'leaf_weighted_f1']
    """
    names = ["leaf_macro_precision", "leaf_macro_recall", "leaf_macro_f1", "leaf_micro_f1", "leaf_weighted_f1"]
    for k in range(1, depth + 1):
        names += [f"level{k}_macro_f1", f"level{k}_micro_f1"]
    names += [
        "hier_precision",
        "hier_recall",
        "hier_f1",
        "lca_precision",
        "lca_recall",
        "lca_f1",
        "path_accuracy",
        "invalid_rate",
        "mean_first_error_depth",
    ]
    return names


def _compact(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Renumber the default label set 0..C-1 (invalid stays -1) so per-resample counts stay small."""
    classes = _default_labels(true, pred)
    lookup = np.full(int(max(true.max(), pred.max())) + 1, -1, dtype=np.int64)
    lookup[classes] = np.arange(classes.size)
    return lookup[true], np.where(pred >= 0, lookup[np.maximum(pred, 0)], -1), classes.size


class _SampleStats:
    """Per-sample quantities from which every metric of :func:`metric_names` is a ratio of sums."""

    def __init__(self, enc: Encoded, names: Sequence[str]):
        self.names = list(names)
        self.flat: dict[str, tuple[np.ndarray, int]] = {}  # "leaf" / "level3" -> (compact true, pred), C
        wanted_levels = {n.split("_")[0] for n in names if n.startswith("level")}
        if any(n.startswith("leaf_") for n in names):
            self.flat["leaf"] = _compact(enc.true, enc.pred)
        for key in sorted(wanted_levels):
            table = _truncation_table(enc.taxonomy, int(key[5:]))
            self.flat[key] = _compact(table[enc.true], _truncate(enc.pred, table))
        self.sets = {kind: _set_sizes(enc, kind) for kind in ("hier", "lca")}
        self.correct = (enc.true == enc.pred).astype(np.int64)
        self.invalid = (enc.pred < 0).astype(np.int64)
        depth, wrong = _first_error_depth(enc)
        self.error_depth, self.wrong = depth * wrong, wrong.astype(np.int64)

    def scores(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key, (true, pred, n_classes) in self.flat.items():
            out.update(_flat_scores(key, true[indices], pred[indices], n_classes))
        for kind, (inter, t_size, p_size) in self.sets.items():
            i, t, p = (x[indices].sum(axis=1).astype(float) for x in (inter, t_size, p_size))
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"{kind}_precision"] = np.where(p > 0, i / np.where(p > 0, p, 1), 0.0)
                out[f"{kind}_recall"] = i / t
                out[f"{kind}_f1"] = 2 * i / (t + p)
        out["path_accuracy"] = self.correct[indices].mean(axis=1)
        out["invalid_rate"] = self.invalid[indices].mean(axis=1)
        n_wrong = self.wrong[indices].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["mean_first_error_depth"] = np.where(
                n_wrong > 0, self.error_depth[indices].sum(axis=1) / n_wrong, np.nan
            )
        return {name: out[name] for name in self.names}


def _flat_scores(key: str, true: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Macro/micro/weighted scores of each row of (B, n) compact class ids, with zero_division=0."""
    n_rows = true.shape[0]
    offsets = (np.arange(n_rows, dtype=np.int64) * n_classes)[:, None]
    size = n_rows * n_classes
    valid = pred >= 0
    tp = np.bincount((true + offsets)[true == pred], minlength=size).reshape(n_rows, n_classes)
    tc = np.bincount((true + offsets).ravel(), minlength=size).reshape(n_rows, n_classes)
    pc = np.bincount((pred + offsets)[valid], minlength=size).reshape(n_rows, n_classes)
    present = (tc + pc) > 0  # the default label set of each resample
    n_present = present.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(present, 2 * tp / (tc + pc), 0.0)
        out = {
            f"{key}_macro_f1": f1.sum(axis=1) / n_present,
            f"{key}_micro_f1": 2 * tp.sum(axis=1) / (tc.sum(axis=1) + pc.sum(axis=1)),
        }
        if key == "leaf":
            out["leaf_macro_precision"] = np.where(pc > 0, tp / pc, 0.0).sum(axis=1) / n_present
            out["leaf_macro_recall"] = np.where(tc > 0, tp / tc, 0.0).sum(axis=1) / n_present
            out["leaf_weighted_f1"] = (f1 * tc).sum(axis=1) / tc.sum(axis=1)
    return out


def _check_metrics(metrics: Any, depth: int, func: str) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    known = metric_names(depth)
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise ValueError(
            f"The 'metrics' parameter of {func} must be a non-empty list of names among {known}. Got {list(metrics)!r} instead."
        )
    return list(dict.fromkeys(metrics))


def _check_indices(indices: Any, n: int, func: str) -> np.ndarray:
    indices = np.asarray(indices)
    if (
        indices.ndim != 2
        or indices.dtype.kind not in "iu"
        or (indices.size and (indices.min() < 0 or indices.max() >= n))
    ):
        raise ValueError(
            f"The 'indices' parameter of {func} must be a 2-D int array (n_resamples, n) of positions in [0, {n}). Got shape {indices.shape}, dtype {indices.dtype}."
        )
    return indices


def resampled_scores(y_true, y_pred, metrics, indices, *, taxonomy=None, sep=DEFAULT_SEP) -> dict[str, np.ndarray]:
    """Values of ``metrics`` on each resample, for bootstrap CIs and paired bootstrap tests.

    Parameters
    ----------
    metrics : list of str
        Names from :func:`metric_names` (e.g. ``"leaf_macro_f1"``, ``"level2_micro_f1"``, ``"hier_f1"``).
    indices : int array of shape (B, n)
        Positions into ``y_true``/``y_pred``; row b is resample b. Pass the same indices for two
        checkpoints to pair them. Each resample is scored as if it were the whole data set (its own
        default label set, zero_division=0.0), with per-resample confusion counts from one
        ``np.bincount`` per chunk of rows instead of B calls of a scalar metric.

    Returns
    -------
    dict of str to ndarray of shape (B,)
        nan where a metric is undefined on a resample (mean_first_error_depth without errors).

    Examples
    --------
    >>> out = resampled_scores(["A", "B", "B"], ["A", "B", "A"], ["path_accuracy", "leaf_macro_f1"],
    ...                        np.array([[0, 1, 2], [1, 1, 1]]))
    >>> out["path_accuracy"].tolist(), out["leaf_macro_f1"].tolist()
    ([0.6666666666666666, 1.0], [0.6666666666666666, 1.0])
    """
    func = "resampled_scores"
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, sep=sep)
    names = _check_metrics(metrics, enc.taxonomy.depth, func)
    indices = _check_indices(indices, len(enc.true), func)
    stats = _SampleStats(enc, names)
    rows = max(1, _MAX_INDEX_ENTRIES // max(indices.shape[1], 1))
    parts = [stats.scores(indices[s : s + rows]) for s in range(0, indices.shape[0], rows)]
    return {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0) for name in names}


BREAKDOWN_KINDS = {
    "class": ("precision", "recall", "f1"),
    "level": ("macro_f1", "micro_f1"),
    "frequency": ("macro_f1",),
}


def resampled_breakdown(
    y_true, y_pred, kind, metric, keys, indices, *, bands=None, taxonomy=None, sep=DEFAULT_SEP
) -> np.ndarray:
    """Values of one breakdown metric for each of ``keys`` on each resample: an array of shape (B, len(keys)).

    ``kind="class"``: ``keys`` are class paths (``"A > x"``), ``metric`` precision, recall or F1 of that
    class as :func:`per_class_table` computes it (0.0 when undefined in a resample, as there); a key that
    is not a node of the data scores 0.0. ``kind="level"``: ``keys`` are levels (``"1"``, ``"2"``) and
    ``metric`` ``macro_f1`` or ``micro_f1`` (:func:`resampled_scores`' ``level{k}_*``).
    ``kind="frequency"``: ``keys`` are bands (``"head"``, ``"torso"``, ``"tail"``), ``metric`` ``macro_f1``,
    ``bands`` the classes of each band (:func:`frequency_bands`); as :func:`frequency_breakdown`, a band
    averages the F1 of its classes that occur in the resample's truth (nan when none does).

    Examples
    --------
    >>> resampled_breakdown(["A", "B", "B"], ["A", "B", "A"], "class", "f1", ["A", "B"],
    ...                     np.array([[0, 1, 2], [1, 1, 1]])).round(3).tolist()
    [[0.667, 0.667], [0.0, 1.0]]
    >>> resampled_breakdown(["A", "B", "B"], ["A", "B", "A"], "frequency", "macro_f1", ["head"],
    ...                     np.array([[0, 1, 2], [1, 1, 1]]), bands={"head": ["A", "B"]}).round(3).tolist()
    [[0.667], [1.0]]
    """
    func = "resampled_breakdown"
    if kind not in BREAKDOWN_KINDS or metric not in BREAKDOWN_KINDS[kind]:
        raise ValueError(
            f"The 'kind' and 'metric' parameters of {func} must be one of {BREAKDOWN_KINDS}. "
            f"Got {kind!r}, {metric!r} instead."
        )
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, sep=sep)
    indices = _check_indices(indices, len(enc.true), func)
    keys = [str(k) for k in keys]
    if kind == "level":
        names = [f"level{k}_{metric}" for k in keys]
        scores = resampled_scores(enc.true, enc.pred, list(dict.fromkeys(names)), indices, taxonomy=enc.taxonomy)
        return np.column_stack([scores[name] for name in names]) if names else np.zeros((len(indices), 0))
    if kind == "frequency":
        return _band_scores(enc, keys, indices, _check_bands(bands, keys, func))
    return _class_metric(enc, enc.taxonomy.encode(keys), indices, metric)


def _check_bands(bands: Any, keys: list[str], func: str) -> dict[str, list[str]]:
    ok = isinstance(bands, Mapping) and all(isinstance(bands.get(k), (list, tuple)) for k in keys)
    if not ok:
        raise ValueError(
            f"The 'bands' parameter of {func} must map every key ({', '.join(keys)}) to a list of "
            f"class paths (frequency_bands). Got {type(bands).__name__} instead."
        )
    return {k: [str(c) for c in bands[k]] for k in keys}


def _class_metric(enc: Encoded, ids: np.ndarray, indices: np.ndarray, metric: str) -> np.ndarray:
    """(B, len(ids)) values of ``metric`` (precision, recall, f1 or support) per class, in chunks of resamples."""
    rows = max(1, _MAX_INDEX_ENTRIES // max(indices.shape[1], len(ids), 1))
    parts = [
        _class_scores(enc.true[part], enc.pred[part], ids, metric)
        for part in (indices[s : s + rows] for s in range(0, indices.shape[0], rows))
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(ids)))


def _band_scores(enc: Encoded, keys: list[str], indices: np.ndarray, bands: dict[str, list[str]]) -> np.ndarray:
    """Mean F1 of each band's classes present in each resample's truth; nan for a band with none present."""
    members = sorted({c for k in keys for c in bands[k]})
    ids = enc.taxonomy.encode(members)
    f1 = _class_metric(enc, ids, indices, "f1")
    present = _class_metric(enc, ids, indices, "support") > 0
    column = {c: j for j, c in enumerate(members)}
    out = np.full((len(indices), len(keys)), np.nan)
    for i, key in enumerate(keys):
        cols = [column[c] for c in bands[key]]
        count = present[:, cols].sum(axis=1)
        total = np.where(present[:, cols], f1[:, cols], 0.0).sum(axis=1)
        out[:, i] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def _class_scores(true: np.ndarray, pred: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Per-class precision / recall / F1 (zero division 0) or support of node ``ids`` on each row of (B, n) node ids."""
    lookup = np.full(
        int(max(true.max(initial=0), pred.max(initial=0), ids.max(initial=0))) + 2, len(ids), dtype=np.int64
    )
    known = ids >= 0
    lookup[ids[known]] = np.flatnonzero(known)
    width = len(ids) + 1  # column len(ids): every class not asked for
    offsets = (np.arange(true.shape[0], dtype=np.int64) * width)[:, None]
    t, p = lookup[true] + offsets, np.where(pred >= 0, lookup[np.maximum(pred, 0)], len(ids)) + offsets
    size = true.shape[0] * width
    tp = np.bincount(t[true == pred], minlength=size).reshape(-1, width)[:, :-1]
    tc = np.bincount(t.ravel(), minlength=size).reshape(-1, width)[:, :-1]
    pc = np.bincount(p[pred >= 0], minlength=size).reshape(-1, width)[:, :-1]
    if metric == "support":
        return tc.astype(float)
    num, den = (tp, pc) if metric == "precision" else (tp, tc) if metric == "recall" else (2 * tp, tc + pc)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def bootstrap_ci(
    y_true,
    y_pred,
    *,
    metrics=DEFAULT_CI_METRICS,
    n_resamples=1000,
    confidence=0.95,
    random_state=0,
    taxonomy=None,
    sep=DEFAULT_SEP,
) -> dict[str, list[float | None]]:
    """BCa bootstrap confidence intervals ``{name: [low, high]}`` of corpus metrics.

    Resamples of the samples are drawn with replacement from ``numpy.random.default_rng(random_state)``
    (so results are deterministic for a seed); each resample is scored as the same function of its
    data as the full sample (classes absent from a resample are absent from its average). With many
    rare classes the bootstrap distribution of macro F1 is shifted from the estimate, so the interval
    is the bias-corrected and accelerated one (:func:`evalkit.metrics.stats.bca_interval`, with the
    acceleration from leave-one-out values), not the percentile one; in the rare case it still misses
    the estimate it is widened to it. Resamples where a metric is undefined are dropped; an interval
    that cannot be computed is ``[None, None]``.

    Examples
    --------
    >>> ci = bootstrap_ci(["A", "B"] * 20, ["A", "A"] * 20, metrics=["path_accuracy"], n_resamples=200)
    >>> low, high = ci["path_accuracy"]
    >>> low < 0.5 < high
    True
    """
    from evalkit.metrics.stats import bca_interval, contain, iter_bootstrap_indices

    func = "bootstrap_ci"
    n_resamples = check_int(n_resamples, "n_resamples", func)
    confidence = check_confidence(confidence, func)
    stats, point, jack = _point_and_jackknife(y_true, y_pred, metrics, taxonomy, sep, func)
    parts = [
        stats.scores(chunk)
        for chunk in iter_bootstrap_indices(
            len(stats.correct), n_resamples=n_resamples, random_state=random_state, max_entries=_MAX_INDEX_ENTRIES
        )
    ]
    out = {}
    for name in stats.names:
        estimate = float(point[name][0])
        values = np.concatenate([p[name] for p in parts])
        low, high = bca_interval(estimate, values, jack.get(name, np.zeros(0)), confidence=confidence)
        if math.isfinite(estimate) and math.isfinite(low) and math.isfinite(high):
            low, high = contain(estimate, low, high)[1:3]
        out[name] = [_json_float(low), _json_float(high)]
    return out


def jackknife_ci(
    y_true, y_pred, *, metrics=DEFAULT_CI_METRICS, confidence=0.95, taxonomy=None, sep=DEFAULT_SEP
) -> dict[str, list[float | None]]:
    """Normal intervals ``{name: [low, high]}`` with jackknife standard errors (leave-one-out values).

    Over a long tail of classes this is the interval that covers (97 % for macro F1 over 300 Zipf
    classes, where bootstrap intervals give 76-89 %: bench/stats/README.md); it always contains the
    estimate. An interval that cannot be computed (fewer than 2 samples, undefined metric) is
    ``[None, None]``.

    Examples
    --------
    >>> low, high = jackknife_ci(["A", "B"] * 20, ["A", "A"] * 20, metrics=["path_accuracy"])["path_accuracy"]
    >>> round(low, 3), round(high, 3)
    (0.343, 0.657)
    """
    from evalkit.metrics.stats import jackknife_ci as normal_jackknife_ci

    func = "jackknife_ci"
    confidence = check_confidence(confidence, func)
    stats, point, jack = _point_and_jackknife(y_true, y_pred, metrics, taxonomy, sep, func)
    out = {}
    for name in stats.names:
        if name not in jack:
            out[name] = [None, None]
            continue
        bounds = None if name == "mean_first_error_depth" else (0.0, 1.0)  # the rest are rates and F-scores
        low, high, _ = normal_jackknife_ci(float(point[name][0]), jack[name], confidence=confidence, bounds=bounds)
        out[name] = [_json_float(low), _json_float(high)]
    return out


def _point_and_jackknife(y_true, y_pred, metrics, taxonomy, sep, func: str):
    """``(stats, point values, leave-one-out values)`` of ``metrics``; no leave-one-out values below 2 samples."""
    from evalkit.metrics.stats import jackknife_indices

    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, sep=sep)
    stats = _SampleStats(enc, _check_metrics(metrics, enc.taxonomy.depth, func))
    n = len(enc.true)
    point = stats.scores(np.arange(n)[None, :])
    parts = [stats.scores(chunk) for chunk in jackknife_indices(n)] if n >= 2 else []
    jack = {name: np.concatenate([p[name] for p in parts]) for name in stats.names} if parts else {}
    return stats, point, jack


# ================================================================================ report
def _json_float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def hierarchical_report(
    y_true,
    y_pred,
    *,
    taxonomy=None,
    train_counts=None,
    n_resamples=1000,
    confidence=0.95,
    random_state=0,
    ci_metrics=DEFAULT_CI_METRICS,
    sep=DEFAULT_SEP,
) -> dict[str, Any]:
    """All hierarchical metrics, their jackknife CIs and breakdowns, as a JSON-serialisable dict.

    Returns ``{"metrics": {name: value}, "ci": {name: [low, high]}, "breakdowns": {"level": {...},
    "class": {...}, "frequency": {...}}}``. Metric names are :func:`metric_names` (``depth`` levels);
    values are python floats, with None for an undefined value (never nan). The CIs are
    :func:`jackknife_ci` (``n_resamples`` only switches them: ``n_resamples=0`` skips them); the frequency breakdown is present only with ``train_counts``. The level breakdown cuts paths as
    :func:`level_precision_recall_fscore_support` does; ``n`` is the number of samples, ``n_classes``
    the size of the level's label set.

    Examples
    --------
    >>> report = hierarchical_report(["A > x", "A > y", "B"], ["A > x", "A > x", None], n_resamples=50)
    >>> report["metrics"]["path_accuracy"], report["breakdowns"]["level"]["1"]["micro_f1"]
    (0.3333333333333333, 0.8)
    """
    func = "hierarchical_report"
    n_resamples = check_int(n_resamples, "n_resamples", func, minimum=0)
    enc = encode(y_true, y_pred, func, taxonomy=taxonomy, sep=sep)
    fast = {"taxonomy": enc.taxonomy}  # reuse the encoding: every call below takes node ids
    names = metric_names(enc.taxonomy.depth)
    point = resampled_scores(enc.true, enc.pred, names, np.arange(len(enc.true))[None, :], **fast)
    report: dict[str, Any] = {"metrics": {name: _json_float(point[name][0]) for name in names}, "ci": {}}
    if n_resamples:
        report["ci"] = jackknife_ci(enc.true, enc.pred, metrics=ci_metrics, confidence=confidence, **fast)
    report["breakdowns"] = _breakdowns(enc, point, train_counts)
    return report


def _breakdowns(enc: Encoded, point: dict[str, np.ndarray], train_counts: Any) -> dict[str, Any]:
    tax, n = enc.taxonomy, len(enc.true)
    levels = {}
    for k in range(1, tax.depth + 1):
        table = _truncation_table(tax, k)
        n_classes = _default_labels(table[enc.true], _truncate(enc.pred, table)).size
        levels[str(k)] = {
            "macro_f1": _json_float(point[f"level{k}_macro_f1"][0]),
            "micro_f1": _json_float(point[f"level{k}_micro_f1"][0]),
            "n": n,
            "n_classes": int(n_classes),
        }
    rows = per_class_table(enc.true, enc.pred, taxonomy=tax)
    classes = {
        r["class"]: {"precision": r["precision"], "recall": r["recall"], "f1": r["f1"], "n": r["support"]} for r in rows
    }
    out = {"level": levels, "class": classes}
    if train_counts is not None:
        out["frequency"] = frequency_breakdown(enc.true, enc.pred, train_counts, taxonomy=tax)
    return out
