"""Calibration and selective-prediction metrics (evalkit.metrics.calibration): hand cases, scikit-learn,
hiclass, the cross-fitting property and a seeded coverage study of the coverage-at-precision interval."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics.calibration import (accepted_rows, brier_score, coverage_at_precision, coverage_rows, ece_rows,
                                         expected_calibration_error, fold_ids, reliability_curve, risk_coverage_curve)


def _calibrated(rng, n):
    conf = rng.uniform(0, 1, n)
    return (rng.uniform(0, 1, n) < conf).astype(float), conf


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reliability_curve_and_brier_equal_scikit_learn(strategy, seed):
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(seed)
    correct, conf = _calibrated(rng, 200)
    conf[:40] = np.round(conf[:40], 1)  # ties and values on bin edges
    accuracy, mean_conf, counts = reliability_curve(correct, conf, n_bins=8, strategy=strategy)
    want_acc, want_conf = calibration_curve(correct, conf, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(accuracy, want_acc, rtol=1e-12)
    np.testing.assert_allclose(mean_conf, want_conf, rtol=1e-12)
    assert counts.sum() == 200
    ece = expected_calibration_error(correct, conf, n_bins=8, strategy=strategy)
    assert ece == pytest.approx(float(np.sum(counts / 200 * np.abs(want_acc - want_conf))), rel=1e-12)
    assert brier_score(correct, conf) == pytest.approx(brier_score_loss(correct, conf), rel=1e-12)


def test_ece_hand_cases():
    # two equal-mass bins: {0.2 wrong, 0.4 right} -> |0.3 - 0.5|, {0.8, 0.9 right} -> |0.85 - 1|
    assert expected_calibration_error([0, 1, 1, 1], [0.2, 0.4, 0.8, 0.9], n_bins=2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.15)
    assert expected_calibration_error([1, 0] * 5, [0.5] * 10) == 0.0  # one bin, confidence = accuracy
    assert expected_calibration_error([1] * 4, [0.0] * 4) == 1.0
    rows = ece_rows(np.array([[1, 0], [1, 1]]), np.array([[1.0, 0.0], [0.5, 0.5]]), n_bins=2)
    assert rows.tolist() == [0.0, 0.5]


def test_ece_equals_hiclass_top_label_ece_with_equal_width_bins():
    """hiclass's ``expected_calibration_error`` (equal-width bins on the top-label probability of one level)."""
    pytest.importorskip("hiclass")
    from hiclass import LocalClassifierPerParentNode
    from hiclass.metrics import expected_calibration_error as hiclass_ece
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    top = np.where(x[:, 0] + rng.normal(scale=1.0, size=120) > 0, "A", "B")
    low = np.where(x[:, 1] + rng.normal(scale=1.0, size=120) > 0, "x", "y")
    y = np.column_stack([top, np.char.add(top, low)])
    clf = LocalClassifierPerParentNode(local_classifier=LogisticRegression(), return_all_probabilities=True)
    clf.fit(x[:90], y[:90])
    probs = clf.predict_proba(x[90:])
    pred = clf.predict(x[90:])
    for level in (0, 1):
        prob = np.asarray(probs[level], dtype=np.float32)  # hiclass works in float32
        want = hiclass_ece(clf, y[90:], prob, pred, level=level, n_bins=10)
        conf = prob.max(axis=1).astype(float)
        assert conf.max() < 1.0  # hiclass drops a probability of exactly 1 from every bin
        correct = (pred[:, level] == y[90:, level]).astype(float)
        assert expected_calibration_error(correct, conf, n_bins=10, strategy="uniform") == pytest.approx(want, abs=1e-6)


def test_risk_coverage_curve_accepts_ties_together():
    coverage, precision, cuts = risk_coverage_curve([1, 1, 0, 1], [0.9, 0.8, 0.8, 0.3])
    assert coverage.tolist() == [0.25, 0.75, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 2 / 3, 0.75])
    assert cuts.tolist() == [0.9, 0.8, 0.3]


def test_coverage_at_precision_hand_cases():
    correct, conf = [1, 1, 1, 0, 1, 0], [0.95, 0.9, 0.85, 0.8, 0.6, 0.3]
    assert coverage_at_precision(correct, conf, precision=0.9) == (0.5, 1.0)  # cut 0.85: 3 of 6, all right
    assert coverage_at_precision(correct, conf, precision=0.75) == (5 / 6, 0.8)  # cut 0.6: 4 of 5 right
    # cross-fitted: fold 0's cut comes from fold 1 (0.9) and fold 1's from fold 0 (0.6)
    assert coverage_at_precision(correct, conf, precision=0.9, folds=[0, 1, 0, 1, 0, 1]) == (0.5, pytest.approx(2 / 3))
    coverage, realised = coverage_at_precision([0, 0], [0.9, 0.8], precision=0.9)
    assert coverage == 0.0 and np.isnan(realised)  # never precise enough: nothing is routed


def test_cross_fitting_never_uses_a_fold_to_cut_itself():
    """Each fold is accepted at the cut the other folds choose (recomputed here from the risk-coverage curve),
    so flipping the outcomes of fold 0's samples changes no decision about fold 0's samples."""
    rng = np.random.default_rng(3)
    correct, conf = _calibrated(rng, 300)
    conf[:60] = np.round(conf[:60], 1)  # ties across folds
    folds = fold_ids([f"id{i}" for i in range(300)], 5)
    accepted = accepted_rows(correct, conf, folds, precision=0.8)[0]
    for fold in range(5):
        mine = folds == fold
        assert (accepted[mine] == (conf[mine] >= _cut(correct[~mine], conf[~mine], 0.8))).all()
    flipped = np.where(folds == 0, 1 - correct, correct)
    again = accepted_rows(flipped, conf, folds, precision=0.8)[0]
    assert (again[folds == 0] == accepted[folds == 0]).all()
    assert (again[folds != 0] != accepted[folds != 0]).any()  # fold 0 does help cut the others
    coverage, realised = coverage_rows(correct, conf, folds, precision=0.8)
    assert coverage[0] == accepted.mean() and realised[0] == correct[accepted].mean()


def _cut(correct, conf, precision):
    _, prec, cuts = risk_coverage_curve(correct, conf)
    ok = prec >= precision
    return cuts[np.flatnonzero(ok)[-1]] if ok.any() else np.inf


@pytest.mark.parametrize("call, message", [
    (lambda: brier_score([0, 2], [0.1, 0.2]), "must hold only 0 and 1"),
    (lambda: brier_score([0, 1], [0.1, 1.2]), r"must hold numbers in \[0, 1\]"),
    (lambda: brier_score([0, 1], [0.1]), "1-D arrays of equal length"),
    (lambda: expected_calibration_error([1], [0.5], n_bins=0), "'n_bins' parameter .* int >= 1"),
    (lambda: expected_calibration_error([1], [0.5], strategy="equal"), "'strategy' parameter"),
    (lambda: coverage_at_precision([1], [0.5], precision=1.5), r"'precision' parameter .* in \(0, 1\]"),
    (lambda: fold_ids(["a"], 1), "'n_folds' parameter"),
])
def test_bad_parameters_name_themselves(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.slow
def test_bootstrap_interval_of_cross_fitted_coverage_covers_in_a_seeded_study():
    """Calibrated confidences ~ U(0, 1): precision above a cut t is (1 + t) / 2, so leaf precision >= 0.9 is
    reached above t = 0.8 and the true coverage is 0.2. The percentile bootstrap interval (what the
    comparison gives ``coverage_at_precision``, MetricSpec interval="bootstrap") covers it at about the
    nominal rate; the estimate is close to unbiased."""
    rng = np.random.default_rng(20261207)
    n, reps, n_boot = 300, 80, 200
    folds = fold_ids([f"s{i}" for i in range(n)], 5)
    covered, estimates = 0, []
    for _ in range(reps):
        correct, conf = _calibrated(rng, n)
        estimate = coverage_rows(correct[None], conf[None], folds[None], precision=0.9)[0][0]
        rows = rng.integers(0, n, (n_boot, n))
        values = coverage_rows(correct[rows], conf[rows], folds[rows], precision=0.9)[0]
        low, high = np.quantile(values, [0.025, 0.975])
        covered += low <= 0.2 <= high
        estimates.append(estimate)
    assert covered / reps >= 0.86  # 95 % nominal; 80 reps: a binomial 3-sigma band reaches 0.87
    assert abs(np.mean(estimates) - 0.2) < 0.03
