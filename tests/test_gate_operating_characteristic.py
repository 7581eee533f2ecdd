"""The gate errs at its threshold no more often than its level, in fixed and sequential mode (issue 23).

Seeded simulations through evalkit's own decision path (:func:`evalkit.sequential.operating_characteristic`
builds the 2x2 table a comparison row carries and calls the gate; the sequential mode replays the
confidence sequence and the final fixed-sample look). The larger study with its figures is bench/gating/.
Bounds allow for Monte-Carlo error (about two standard errors above alpha); the rule this replaced failed
22% of runs at the threshold, so each bound can fail.
"""

from __future__ import annotations

import pytest

from evalkit.sequential import operating_characteristic

ALPHA = 0.05


def _rates(**kwargs):
    result = operating_characteristic(baseline_accuracy=0.75, alpha=ALPHA, **kwargs)
    return {k: result.rate(k) for k in ("pass", "fail", "inconclusive")}, result


@pytest.mark.parametrize("sequential, n_runs", [(False, 400), (True, 300)])
def test_at_the_threshold_neither_pass_nor_fail_exceeds_alpha(sequential, n_runs):
    rates, _ = _rates(drop=0.02, discordance=0.1, n=1000, threshold=0.02, sequential=sequential, n_runs=n_runs,
                      random_state=11)
    slack = 2 * (ALPHA * (1 - ALPHA) / n_runs) ** 0.5
    assert rates["fail"] <= ALPHA + slack and rates["pass"] <= ALPHA + slack, rates


@pytest.mark.parametrize("sequential", [False, True])
def test_twice_the_threshold_almost_never_passes(sequential):
    rates, _ = _rates(drop=0.04, discordance=0.1, n=1000, threshold=0.02, sequential=sequential, n_runs=200,
                      random_state=12)
    assert rates["pass"] <= ALPHA and rates["fail"] > 0.5, rates


def test_the_seed_case_passes_a_two_point_margin():
    """MMLU 0.75 -> 0.74, 10% of 14,042 questions answered differently, max_drop 0.02."""
    rates, _ = _rates(drop=0.01, discordance=0.1, n=14042, threshold=0.02, n_runs=100, random_state=13)
    assert rates["pass"] >= 0.95, rates


def test_a_collapse_fails_after_at_most_two_percent_of_the_questions_in_sequential_mode():
    """MMLU 0.75 -> 0.47 against max_drop 0.02: stopped and failed within 2% of 14,042 questions."""
    rates, result = _rates(drop=0.28, discordance=0.3, n=14042, threshold=0.02, sequential=True, n_runs=30,
                           random_state=14)
    assert rates["fail"] == 1.0 and result.samples_used.max() <= 0.02 * 14042


def test_operating_characteristic_validates_its_parameters():
    with pytest.raises(ValueError, match="discordance"):
        operating_characteristic(baseline_accuracy=0.75, drop=0.2, discordance=0.1, n=100, threshold=0.02)
