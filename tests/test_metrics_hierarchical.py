"""Tests for evalkit.metrics.hierarchical: hand-computed cases, sklearn and hiclass agreement, validation, bootstrap."""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import pytest

from evalkit.metrics import hierarchical as hm
from evalkit.taxonomy import Taxonomy

SEP = " > "


def random_paths(rng, n, n_top=3, n_mid=3, n_leaf=3, p_short=0.2):
    """Random label paths with repeated names under different parents and some shorter paths."""
    out = []
    for _ in range(n):
        path = (f"T{rng.integers(n_top)}", f"M{rng.integers(n_mid)}", "Other" if rng.random() < 0.3 else f"L{rng.integers(n_leaf)}")
        out.append(SEP.join(path[:2] if rng.random() < p_short else path))
    return out


def with_invalid(rng, paths, rate=0.15):
    return [None if rng.random() < rate else p for p in paths]


# ================================================================================ sklearn agreement
@pytest.mark.parametrize("average", ["macro", "micro", "weighted", None])
@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
def test_leaf_equals_sklearn_without_invalid(average, zero_division):
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y_true, y_pred = random_paths(rng, 300), random_paths(rng, 300)
    ours = hm.leaf_precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=zero_division)
    theirs = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=zero_division)
    for a, b in zip(ours[:3], theirs[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    if average is None:
        np.testing.assert_array_equal(ours[3], theirs[3])


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", None])
def test_leaf_with_invalid_equals_sklearn_on_valid_label_set(average):
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(1)
    y_true = random_paths(rng, 400)
    y_pred = with_invalid(rng, random_paths(rng, 400))
    assert any(p is None for p in y_pred)
    labels = sorted(set(y_true) | {p for p in y_pred if p is not None}, key=lambda s: tuple(s.split(SEP)))
    sk_pred = ["<invalid>" if p is None else p for p in y_pred]
    ours = hm.leaf_precision_recall_fscore_support(y_true, y_pred, average=average)
    theirs = precision_recall_fscore_support(y_true, sk_pred, labels=labels, average=average, zero_division=0.0)
    for a, b in zip(ours[:3], theirs[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # micro precision counts only valid predictions: higher than accuracy when some are invalid
    if average == "micro":
        assert ours[0] > hm.path_accuracy_score(y_true, y_pred)


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_level_equals_sklearn_on_truncated_labels(level, average):
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(2)
    y_true = random_paths(rng, 300)
    y_pred = with_invalid(rng, random_paths(rng, 300))
    cut = lambda p: SEP.join(p.split(SEP)[:level])  # noqa: E731 - shorter paths stay whole, as documented
    t_cut = [cut(p) for p in y_true]
    p_cut = ["<invalid>" if p is None else cut(p) for p in y_pred]
    labels = sorted(set(t_cut) | {p for p in p_cut if p != "<invalid>"})
    ours = hm.level_precision_recall_fscore_support(y_true, y_pred, level=level, average=average)
    theirs = precision_recall_fscore_support(t_cut, p_cut, labels=labels, average=average, zero_division=0.0)
    np.testing.assert_allclose(ours[:3], theirs[:3], rtol=1e-12)
    assert hm.level_f1_score(y_true, y_pred, level=level, average=average) == pytest.approx(theirs[2], rel=1e-12)


def test_explicit_labels_order_and_absent_label():
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = ["A > x", "B", "B"], ["A > x", "A > x", "B"]
    labels = ["B", "C > z", "A > x"]
    ours = hm.leaf_precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None)
    theirs = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0.0)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)
    assert ours[3].tolist() == [2, 0, 1]


# ================================================================================ hand-computed cases
def test_zero_division_class_never_predicted():
    y_true, y_pred = ["A", "A", "B"], ["A", "A", "A"]
    # A: P=2/3 R=1; B: never predicted -> precision undefined
    assert hm.leaf_precision_score(y_true, y_pred, zero_division=0.0) == pytest.approx((2 / 3 + 0) / 2)
    assert hm.leaf_precision_score(y_true, y_pred, zero_division=1.0) == pytest.approx((2 / 3 + 1) / 2)
    assert hm.leaf_precision_score(y_true, y_pred, zero_division=np.nan) == pytest.approx(2 / 3)  # nan ignored
    p, *_ = hm.leaf_precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=np.nan)
    assert p[0] == pytest.approx(2 / 3) and math.isnan(p[1])
    with pytest.warns(hm.UndefinedMetricWarning, match="Precision is ill-defined"):
        assert hm.leaf_precision_score(y_true, y_pred, zero_division="warn") == pytest.approx(1 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hm.leaf_precision_score(y_true, y_pred, zero_division=0.0)  # no warning when set explicitly


def test_single_class():
    assert hm.leaf_f1_score(["A > x"] * 3, ["A > x"] * 3) == 1.0
    assert hm.hierarchical_precision_recall_fscore(["A > x"] * 3, ["A > x"] * 3) == (1.0, 1.0, 1.0)
    # one class, one invalid prediction: P=1 (valid ones right), R=2/3
    p, r, f, _ = hm.leaf_precision_recall_fscore_support(["A"] * 3, ["A", "A", None])
    assert (p, r, f) == pytest.approx((1.0, 2 / 3, 0.8))


def test_class_missing_from_predictions_and_predicted_class_missing_from_truth():
    y_true, y_pred = ["A", "B", "C"], ["A", "A", "D"]
    # label set = {A, B, C, D}; F1: A=2/3, B=0, C=0, D=0
    assert hm.leaf_f1_score(y_true, y_pred) == pytest.approx((2 / 3) / 4)
    assert hm.leaf_f1_score(y_true, y_pred, average="weighted") == pytest.approx((2 / 3) / 3)
    assert hm.leaf_recall_score(y_true, y_pred, average="micro") == pytest.approx(1 / 3)


def test_all_predictions_invalid():
    y_true, y_pred = ["A > x", "B"], [None, ""]
    assert hm.invalid_rate(y_true, y_pred) == 1.0
    assert hm.leaf_f1_score(y_true, y_pred) == 0.0
    assert hm.leaf_precision_score(y_true, y_pred, average="micro", zero_division=1.0) == 1.0
    assert hm.hierarchical_precision_recall_fscore(y_true, y_pred) == (0.0, 0.0, 0.0)
    assert hm.hierarchical_precision_recall_fscore(y_true, y_pred, zero_division=1.0)[0] == 1.0
    assert hm.lca_precision_recall_fscore(y_true, y_pred) == (0.0, 0.0, 0.0)
    assert hm.mean_first_error_depth(y_true, y_pred) == 1.0


def test_invalid_prediction_is_not_a_class():
    y_true, y_pred = ["A", "B"], ["A", None]
    _, _, f, support = hm.leaf_precision_recall_fscore_support(y_true, y_pred, average=None)
    assert f.tolist() == [1.0, 0.0] and support.tolist() == [1, 1]  # no third class for "None"
    assert hm.per_class_table(y_true, y_pred) == [
        {"class": "A", "support": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0},
        {"class": "B", "support": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0},
    ]


def test_malformed_and_unknown_predictions_are_invalid():
    tax = Taxonomy.from_paths(["A > x", "B"])
    y_true = ["A > x", "B", "B", "A > x"]
    y_pred = ["A >  > x", "C", "B", "A > x > deeper"]
    assert hm.invalid_rate(y_true, y_pred, taxonomy=tax) == 0.75
    assert hm.invalid_rate(y_true, y_pred) == 0.25  # without a taxonomy unknown paths are classes


def test_repeated_names_under_different_parents_never_match():
    y_true = ["Billing > Other", "Delivery > Other"]
    y_pred = ["Delivery > Other", "Billing > Other"]
    assert hm.leaf_f1_score(y_true, y_pred) == 0.0
    assert hm.hierarchical_precision_recall_fscore(y_true, y_pred) == (0.0, 0.0, 0.0)
    assert hm.level_f1_score(y_true, y_pred, level=2) == 0.0
    assert hm.mean_first_error_depth(y_true, y_pred) == 1.0


def test_unequal_depths_hierarchical_lca_and_first_error():
    # true A>B>C (3 nodes); pred A>B (its parent): hP = 2/2, hR = 2/3
    y_true, y_pred = ["A > B > C"], ["A > B"]
    assert hm.hierarchical_precision_recall_fscore(y_true, y_pred) == pytest.approx((1.0, 2 / 3, 0.8))
    # LCA = A>B: T_aug = {A>B, A>B>C}, P_aug = {A>B}
    assert hm.lca_precision_recall_fscore(y_true, y_pred) == pytest.approx((1.0, 0.5, 2 / 3))
    assert hm.mean_first_error_depth(y_true, y_pred) == 3.0
    # too deep: true A>B, pred A>B>C
    assert hm.hierarchical_precision_recall_fscore(["A > B"], ["A > B > C"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert hm.mean_first_error_depth(["A > B"], ["A > B > C"]) == 3.0
    # level 3 of a 2-level path is the path itself
    assert hm.level_f1_score(["A > B", "A > B > C"], ["A > B", "A > B > D"], level=3, average="micro") == 0.5


def test_lca_root_and_exact_match():
    # different top levels: LCA is the uncounted root -> empty intersection, whole paths in the sets
    assert hm.lca_precision_recall_fscore(["A > x"], ["B > y > z"]) == (0.0, 0.0, 0.0)
    assert hm.lca_precision_recall_fscore(["A > x > 1", "B"], ["A > x > 1", "B"]) == (1.0, 1.0, 1.0)
    # siblings deep in the tree: hierarchical F is high, LCA F is not inflated by shared ancestors
    y_true, y_pred = ["A > B > C > D"], ["A > B > C > E"]
    assert hm.hierarchical_precision_recall_fscore(y_true, y_pred)[2] == pytest.approx(0.75)
    assert hm.lca_precision_recall_fscore(y_true, y_pred)[2] == pytest.approx(0.5)


def test_path_accuracy_and_mean_first_error_depth():
    y_true = ["A > x > 1", "A > x > 1", "A > x > 1", "B"]
    y_pred = ["A > x > 1", "A > y > 1", None, "B"]
    assert hm.path_accuracy_score(y_true, y_pred) == 0.5
    assert hm.mean_first_error_depth(y_true, y_pred) == pytest.approx((2 + 1) / 2)
    assert math.isnan(hm.mean_first_error_depth(["A"], ["A"]))


def test_frequency_breakdown_buckets():
    y_true = ["H"] * 4 + ["M"] * 2 + ["T", "U"]
    y_pred = ["H"] * 4 + ["H", "M"] + ["T", None]
    train = {"H": 500, "M": 50, "T": 3}  # U never seen in training -> tail
    out = hm.frequency_breakdown(y_true, y_pred, train)
    assert out["head"] == {"macro_f1": pytest.approx(2 * 4 / (4 + 5)), "n": 4, "n_classes": 1}
    assert out["torso"] == {"macro_f1": pytest.approx(2 / 3), "n": 2, "n_classes": 1}
    assert out["tail"] == {"macro_f1": pytest.approx(0.5), "n": 2, "n_classes": 2}
    # the same from a list of training labels, and custom bins
    labels = ["H"] * 500 + ["M"] * 50 + ["T"] * 3
    assert hm.frequency_breakdown(y_true, y_pred, labels) == out
    assert hm.frequency_breakdown(y_true, y_pred, train, bins=(1, 1000))["tail"]["n_classes"] == 1
    assert hm.frequency_breakdown(["A"], ["A"], {})["head"] == {"macro_f1": None, "n": 0, "n_classes": 0}


def test_frequency_bands_resample_as_frequency_breakdown_averages():
    """A band's macro F1 on a resample averages its classes present in that resample's truth (issue 27)."""
    y_true = ["H"] * 4 + ["M"] * 2 + ["T", "U"]
    y_pred = ["H"] * 4 + ["H", "M"] + ["T", None]
    bands = hm.frequency_bands(y_true, {"H": 500, "M": 50, "T": 3})
    assert bands == {"head": ["H"], "torso": ["M"], "tail": ["T", "U"]}
    keys = ["head", "torso", "tail"]
    everything, without_u, without_t_u = np.arange(8), np.array([0, 1, 2, 3, 4, 5, 6, 6]), np.array([0, 1, 2, 3, 4, 5, 0, 1])
    values = hm.resampled_breakdown(y_true, y_pred, "frequency", "macro_f1", keys,
                                    np.stack([everything, without_u, without_t_u]), bands=bands)
    full = hm.frequency_breakdown(y_true, y_pred, {"H": 500, "M": 50, "T": 3})
    assert values[0].tolist() == pytest.approx([full[k]["macro_f1"] for k in keys])  # 8/9, 2/3, (1 + 0) / 2
    assert values[1, 2] == 1.0  # U absent: the tail is T alone, predicted right twice
    assert math.isnan(values[2, 2])  # no tail class in the truth: undefined, as frequency_breakdown's None
    with pytest.raises(ValueError, match="'bands' parameter of resampled_breakdown"):
        hm.resampled_breakdown(y_true, y_pred, "frequency", "macro_f1", keys, everything[None, :], bands={"head": []})


def test_fast_path_with_node_ids_matches_strings():
    rng = np.random.default_rng(3)
    y_true = random_paths(rng, 200)
    y_pred = with_invalid(rng, random_paths(rng, 200))
    tax = Taxonomy.from_data(y_true + y_pred)
    t_ids, p_ids = tax.encode(y_true), tax.encode(y_pred)
    for fn in (hm.hierarchical_precision_recall_fscore, hm.lca_precision_recall_fscore, hm.leaf_f1_score,
               hm.path_accuracy_score, hm.mean_first_error_depth):
        assert fn(t_ids, p_ids, taxonomy=tax) == pytest.approx(fn(y_true, y_pred))
    tuples = [tuple(p.split(SEP)) for p in y_true]
    assert hm.leaf_f1_score(tuples, y_pred) == pytest.approx(hm.leaf_f1_score(y_true, y_pred))


# ================================================================================ hiclass
def to_levels(paths, depth):
    return np.array([list(p.split(SEP)) + [""] * (depth - len(p.split(SEP))) if p else [""] * depth for p in paths], dtype=object)


def test_hiclass_agrees_when_names_are_unique():
    from hiclass import metrics as hcm

    rng = np.random.default_rng(4)
    # unique names: include the parent in every name
    names = [f"T{a}" + SEP + f"T{a}M{b}" + SEP + f"T{a}M{b}L{c}" for a in range(3) for b in range(3) for c in range(3)]
    y_true = [names[i] for i in rng.integers(len(names), size=200)]
    y_pred = [names[i] for i in rng.integers(len(names), size=200)]
    y_pred[:20] = [SEP.join(p.split(SEP)[:2]) for p in y_pred[:20]]  # unequal depths
    t2, p2 = to_levels(y_true, 3), to_levels(y_pred, 3)
    ours = hm.hierarchical_precision_recall_fscore(y_true, y_pred)
    theirs = (hcm.precision(t2, p2), hcm.recall(t2, p2), hcm.f1(t2, p2))
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert hm.hierarchical_precision_recall_fscore(t2, p2) == pytest.approx(ours)  # 2-D per-level input


def test_hiclass_counts_repeated_name_as_match_and_we_do_not():
    from hiclass import metrics as hcm

    y_true = ["Billing > Other"]
    y_pred = ["Delivery > Other"]
    t2, p2 = to_levels(y_true, 2), to_levels(y_pred, 2)
    assert hcm.precision(t2, p2) == 0.5  # "Other" matched by name
    assert hm.hierarchical_precision_recall_fscore(y_true, y_pred) == (0.0, 0.0, 0.0)


# ================================================================================ validation
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: hm.leaf_f1_score(["A"], ["A"], average="weighed"),
         r"The 'average' parameter of leaf_f1_score must be one of 'macro', 'micro', 'weighted' or None. Got 'weighed' instead."),
        (lambda: hm.leaf_precision_score(["A"], ["A"], average="binary"), r"'average' parameter of leaf_precision_score"),
        (lambda: hm.leaf_recall_score(["A"], ["A"], zero_division=2), r"The 'zero_division' parameter of leaf_recall_score must be one of 0.0, 1.0, nan or 'warn'. Got 2 instead."),
        (lambda: hm.leaf_f1_score(["A"], ["A"], zero_division=True), r"'zero_division'.*Got True"),
        (lambda: hm.leaf_f1_score(["A", "B"], ["A"]), r"leaf_f1_score: y_true and y_pred must have the same length. Got 2 and 1."),
        (lambda: hm.leaf_f1_score([], []), r"empty"),
        (lambda: hm.leaf_f1_score("A", "A"), r"'y_true' parameter of leaf_f1_score must be a sequence"),
        (lambda: hm.leaf_f1_score(["A", None], ["A", "A"]), r"y_true contains an invalid label None"),
        (lambda: hm.leaf_f1_score(["A >  > B"], ["A"]), r"empty name at level 2"),
        (lambda: hm.level_f1_score(["A > B"], ["A > B"], level=3), r"The 'level' parameter of level_f1_score must be an int in \[1, 2\]. Got 3 instead."),
        (lambda: hm.level_f1_score(["A > B"], ["A > B"], level=0), r"'level'"),
        (lambda: hm.leaf_f1_score(["A"], ["A"], labels=["Z"], taxonomy=Taxonomy.from_paths(["A"])), r"'labels' contains 'Z'"),
        (lambda: hm.leaf_f1_score(["Z"], ["A"], taxonomy=Taxonomy.from_paths(["A"])), r"y_true\[0\] = 'Z' is missing or not a node"),
        (lambda: hm.leaf_f1_score(np.array([5]), np.array([0]), taxonomy=Taxonomy.from_paths(["A"])), r"y_true\[0\] = 5 is not a node id"),
        (lambda: hm.frequency_breakdown(["A"], ["A"], {"A": 1}, bins=(5, 1)), r"The 'bins' parameter of frequency_breakdown"),
        (lambda: hm.frequency_breakdown(["A"], ["A"], {"A": -1}), r"train_counts\['A'\] must be a count"),
        (lambda: hm.resampled_scores(["A"], ["A"], ["nope"], np.zeros((1, 1), int)), r"The 'metrics' parameter of resampled_scores"),
        (lambda: hm.resampled_scores(["A"], ["A"], ["hier_f1"], np.ones((1, 1), int)), r"The 'indices' parameter"),
        (lambda: hm.bootstrap_ci(["A"], ["A"], n_resamples=0), r"The 'n_resamples' parameter of bootstrap_ci must be an int >= 1. Got 0"),
        (lambda: hm.bootstrap_ci(["A"], ["A"], confidence=95), r"The 'confidence' parameter of bootstrap_ci"),
    ],
)
def test_parameter_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ================================================================================ resampling, CIs, report
def test_resampled_scores_equal_metrics_recomputed_on_each_resample():
    rng = np.random.default_rng(5)
    y_true = random_paths(rng, 120)
    y_pred = with_invalid(rng, random_paths(rng, 120))
    indices = rng.integers(0, 120, size=(6, 120))
    names = hm.metric_names(3)
    scores = hm.resampled_scores(y_true, y_pred, names, indices)
    for b, row in enumerate(indices):
        t = [y_true[i] for i in row]
        p = [y_pred[i] for i in row]
        prf = hm.leaf_precision_recall_fscore_support(t, p)
        expected = {
            "leaf_macro_precision": prf[0], "leaf_macro_recall": prf[1], "leaf_macro_f1": prf[2],
            "leaf_micro_f1": hm.leaf_f1_score(t, p, average="micro"),
            "leaf_weighted_f1": hm.leaf_f1_score(t, p, average="weighted"),
            "hier_precision": hm.hierarchical_precision_recall_fscore(t, p)[0],
            "hier_f1": hm.hierarchical_precision_recall_fscore(t, p)[2],
            "lca_recall": hm.lca_precision_recall_fscore(t, p)[1],
            "lca_f1": hm.lca_precision_recall_fscore(t, p)[2],
            "path_accuracy": hm.path_accuracy_score(t, p),
            "invalid_rate": hm.invalid_rate(t, p),
            "mean_first_error_depth": hm.mean_first_error_depth(t, p),
        }
        for k in (1, 2, 3):
            expected[f"level{k}_macro_f1"] = hm.level_f1_score(t, p, level=k)
            expected[f"level{k}_micro_f1"] = hm.level_f1_score(t, p, level=k, average="micro")
        for name, value in expected.items():
            assert scores[name][b] == pytest.approx(value, rel=1e-12), name


def test_bootstrap_is_deterministic_and_contains_point_estimate():
    rng = np.random.default_rng(6)
    y_true = random_paths(rng, 300)
    y_pred = [t if rng.random() < 0.6 else p for t, p in zip(y_true, with_invalid(rng, random_paths(rng, 300)))]
    ci1 = hm.bootstrap_ci(y_true, y_pred, n_resamples=300, random_state=7)
    ci2 = hm.bootstrap_ci(y_true, y_pred, n_resamples=300, random_state=7)
    ci3 = hm.bootstrap_ci(y_true, y_pred, n_resamples=300, random_state=8)
    assert ci1 == ci2 and ci1 != ci3
    point = {
        "leaf_macro_f1": hm.leaf_f1_score(y_true, y_pred),
        "leaf_micro_f1": hm.leaf_f1_score(y_true, y_pred, average="micro"),
        "hier_f1": hm.hierarchical_precision_recall_fscore(y_true, y_pred)[2],
        "lca_f1": hm.lca_precision_recall_fscore(y_true, y_pred)[2],
        "path_accuracy": hm.path_accuracy_score(y_true, y_pred),
    }
    for name, value in point.items():
        low, high = ci1[name]
        assert low < value < high, name
        assert high - low < 0.2, name


def test_report_names_values_and_json():
    rng = np.random.default_rng(8)
    y_true = random_paths(rng, 150)
    y_pred = with_invalid(rng, [t if rng.random() < 0.5 else p for t, p in zip(y_true, random_paths(rng, 150))])
    train = {p: int(c) for p, c in zip(sorted(set(y_true)), rng.integers(0, 200, size=len(set(y_true))))}
    report = hm.hierarchical_report(y_true, y_pred, train_counts=train, n_resamples=200)
    names = ["leaf_macro_precision", "leaf_macro_recall", "leaf_macro_f1", "leaf_micro_f1", "leaf_weighted_f1",
             "level1_macro_f1", "level1_micro_f1", "level2_macro_f1", "level2_micro_f1", "level3_macro_f1",
             "level3_micro_f1", "hier_precision", "hier_recall", "hier_f1", "lca_precision", "lca_recall", "lca_f1",
             "path_accuracy", "invalid_rate", "mean_first_error_depth"]
    assert list(report["metrics"]) == names
    m = report["metrics"]
    assert m["leaf_macro_f1"] == pytest.approx(hm.leaf_f1_score(y_true, y_pred))
    assert m["leaf_macro_precision"] == pytest.approx(hm.leaf_precision_score(y_true, y_pred))
    assert m["hier_recall"] == pytest.approx(hm.hierarchical_precision_recall_fscore(y_true, y_pred)[1])
    assert m["level2_micro_f1"] == pytest.approx(hm.level_f1_score(y_true, y_pred, level=2, average="micro"))
    assert m["invalid_rate"] == pytest.approx(hm.invalid_rate(y_true, y_pred))
    assert set(report["ci"]) == set(hm.DEFAULT_CI_METRICS)
    bd = report["breakdowns"]
    assert set(bd["level"]) == {"1", "2", "3"} and bd["level"]["1"]["n"] == 150
    assert bd["level"]["2"]["micro_f1"] == m["level2_micro_f1"]
    row = hm.per_class_table(y_true, y_pred)[0]
    assert bd["class"][row["class"]] == {"precision": row["precision"], "recall": row["recall"], "f1": row["f1"], "n": row["support"]}
    assert set(bd["frequency"]) == {"head", "torso", "tail"}
    text = json.dumps(report, allow_nan=False)  # no NaN anywhere
    assert json.loads(text) == report


def test_report_without_errors_has_none_not_nan():
    report = hm.hierarchical_report(["A > x", "B"], ["A > x", "B"], n_resamples=20)
    assert report["metrics"]["mean_first_error_depth"] is None
    assert report["ci"]["path_accuracy"] == [1.0, 1.0]
    assert "frequency" not in report["breakdowns"]
    json.dumps(report, allow_nan=False)
    assert hm.hierarchical_report(["A"], ["B"], n_resamples=0)["ci"] == {}


def test_bootstrap_speed_1000_resamples_441_classes():
    rng = np.random.default_rng(9)
    classes = [f"P{i // 100} > S{i // 10} > L{i}" for i in range(441)]
    y_true = [classes[i] for i in rng.integers(441, size=1000)]
    y_pred = [classes[i] for i in rng.integers(441, size=1000)]
    start = time.perf_counter()
    ci = hm.bootstrap_ci(y_true, y_pred, metrics=["leaf_macro_f1", "leaf_micro_f1", "hier_f1"], n_resamples=1000)
    elapsed = time.perf_counter() - start
    assert ci["hier_f1"][0] is not None
    assert elapsed < 6.0, f"1000 resamples took {elapsed:.2f} s (target < 2 s on an idle core)"


def test_cfpb_labels_report_and_name_collisions(shared_data):
    import csv

    from hiclass import metrics as hcm

    path = shared_data / "voc" / "cfpb" / "cfpb_narratives_4level.csv"
    if not path.exists():
        pytest.skip("CFPB narratives absent")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    y_true = [SEP.join(x for x in (r["product"], r["sub_product"], r["issue"], r["sub_issue"]) if x) for r in rows]
    tax = Taxonomy.from_data(y_true)
    report = hm.hierarchical_report(y_true, list(y_true), taxonomy=tax, n_resamples=50)
    assert report["metrics"]["leaf_macro_f1"] == 1.0 and report["metrics"]["hier_f1"] == 1.0
    assert report["metrics"]["mean_first_error_depth"] is None
    json.dumps(report, allow_nan=False)
    # Two real leaves with the same name under different parents: hiclass credits the name, we do not.
    by_name: dict[str, list[tuple[str, ...]]] = {}
    for leaf in tax.leaves:
        by_name.setdefault(leaf[-1], []).append(leaf)
    a, b = next(v[:2] for v in by_name.values() if len(v) > 1 and len(v[0]) == len(v[1]) and v[0][0] != v[1][0])
    t2, p2 = to_levels([SEP.join(a)], len(a)), to_levels([SEP.join(b)], len(b))
    assert hcm.precision(t2, p2) > 0
    assert hm.hierarchical_precision_recall_fscore([a], [b], taxonomy=tax) == (0.0, 0.0, 0.0)
