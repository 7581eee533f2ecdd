"""Seeded simulation of sequential gating on a known population: error rates and samples needed.

It replays exactly what ``compare --sequential`` does (a uniformly random order, a look after every
chunk, the same bound and decision rule) on a population of per-sample gate quantities whose mean is
known, so the false-fail rate at a threshold and the fraction of samples used can be measured
(``bench/sequential/``) or planned before a release check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._bound import confidence_sequence
from ._gates import DEFAULT_ALPHA, SequentialGate, _status

__all__ = ["simulate_stopping", "SimulationResult", "operating_characteristic", "OperatingCharacteristic"]


@dataclass
class SimulationResult:
    """Per simulated run: the decision (``"pass"``, ``"fail"`` or ``"undecided"`` when the data ran out)
    and the number of samples used."""

    decisions: np.ndarray
    samples_used: np.ndarray
    population: int

    def rate(self, decision: str) -> float:
        return float(np.mean(self.decisions == decision))

    @property
    def median_fraction(self) -> float:
        """Median over runs of the fraction of the population evaluated."""
        return float(np.median(self.samples_used) / self.population)


def simulate_stopping(
    observations,
    *,
    operator: str,
    threshold: float,
    alpha: float = DEFAULT_ALPHA,
    chunk_size: int = 100,
    n_runs: int = 1000,
    random_state: int = 0,
) -> SimulationResult:
    """Run sequential gating ``n_runs`` times over random orders of a fixed population.

    Parameters
    ----------
    observations : array-like of shape (N,)
        The population's per-sample gate quantities: paired drops or gains in [-1, 1] for
        ``max_drop``/``min_gain``, scores in [0, 1] for ``min``/``max``.
    operator : {"max_drop", "min_gain", "min", "max"}
    threshold : float
    alpha : float
        Anytime-valid error level of the confidence sequence.
    chunk_size : int
        Samples between two looks.
    n_runs : int
        Number of random orders.
    random_state : int
        Seed; the same seed gives the same result.

    Returns
    -------
    SimulationResult

    Examples
    --------
    >>> drops = np.r_[np.ones(2800), np.zeros(11242)]  # a 28-point drop on 14,042 questions ...
    >>> result = simulate_stopping(drops, operator="max_drop", threshold=0.05, n_runs=20)
    >>> result.rate("fail"), result.median_fraction < 0.05  # ... fails every time, after < 5% of them
    (1.0, True)
    """
    from ..gate import Gate

    population = np.asarray(observations, dtype=float)
    if population.ndim != 1 or population.size == 0:
        raise ValueError("observations must be a non-empty one-dimensional array.")
    if isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1:
        raise ValueError(f"The 'n_runs' parameter of simulate_stopping must be an int >= 1. Got {n_runs!r} instead.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(
            f"The 'chunk_size' parameter of simulate_stopping must be an int >= 1. Got {chunk_size!r} instead."
        )
    gate = SequentialGate(
        Gate(index=1, metric="task.metric", operator=operator, threshold=float(threshold)),
        "task",
        "metric",
        "candidate",
        True,
        alpha,
    )
    rng = np.random.default_rng(random_state)
    n = population.size
    looks = np.minimum(np.arange(chunk_size, n + chunk_size, chunk_size), n) - 1
    decisions, used = [], []
    for _ in range(n_runs):
        lows, highs = confidence_sequence(
            rng.permutation(population), alpha=alpha, lower=gate.range[0], upper=gate.range[1]
        )
        decision, at = "undecided", n
        for look in looks:
            status = _status(gate, float(lows[look]), float(highs[look]))
            if status != "undecided":
                decision, at = status, look + 1
                break
        decisions.append(decision)
        used.append(at)
    return SimulationResult(np.asarray(decisions), np.asarray(used), n)


@dataclass
class OperatingCharacteristic:
    """Outcome rates of a gate over seeded simulated comparisons (:func:`operating_characteristic`)."""

    decisions: np.ndarray  # "pass", "fail" or "inconclusive" per run
    samples_used: np.ndarray
    n: int

    def rate(self, decision: str) -> float:
        return float(np.mean(self.decisions == decision))

    @property
    def median_fraction(self) -> float:
        return float(np.median(self.samples_used) / self.n)


def operating_characteristic(
    *,
    baseline_accuracy: float,
    drop: float,
    discordance: float,
    n: int,
    threshold: float,
    alpha: float = DEFAULT_ALPHA,
    sequential: bool = False,
    chunk_size: int = 100,
    n_runs: int = 1000,
    random_state: int = 0,
) -> OperatingCharacteristic:
    """P(pass), P(fail), P(inconclusive) of a ``max_drop: threshold`` gate at level ``alpha`` on paired 0/1 scores.

    Each run draws ``n`` questions from a population in which the tuned checkpoint is right on a question
    the baseline got wrong with probability ``(discordance - drop) / 2`` and the reverse with
    ``(discordance + drop) / 2`` (so the population drop is ``drop`` and a share ``discordance`` of the
    questions is answered differently), and decides with evalkit's own rule: the fixed-sample gate on the
    2x2 table, or (``sequential=True``) the confidence sequence after every ``chunk_size`` questions at
    the early looks' share of ``alpha`` and, when the questions run out undecided, the fixed-sample gate
    at the share left.

    Examples
    --------
    >>> oc = operating_characteristic(baseline_accuracy=0.75, drop=0.04, discordance=0.1, n=1000,
    ...                               threshold=0.02, n_runs=200)
    >>> oc.rate("pass") <= 0.05
    True
    """
    from ..gate import Gate, check_row
    from ..gate.sequential_verdict import EARLY_SHARE

    if not 0 <= abs(drop) <= discordance <= 1 or not 0 <= baseline_accuracy <= 1:
        raise ValueError(
            "operating_characteristic needs 0 <= |drop| <= discordance <= 1 and a baseline accuracy in [0, 1]."
        )
    gate = Gate(index=1, metric="task.acc", operator="max_drop", threshold=float(threshold), significance=alpha)
    lost, gained = (discordance + drop) / 2, (discordance - drop) / 2
    both = max(baseline_accuracy - lost, 0.0)
    cells = np.array([both, lost, gained, max(1.0 - both - lost - gained, 0.0)])  # n11, n10, n01, n00
    cells /= cells.sum()
    rng = np.random.default_rng(random_state)
    seq_gate = SequentialGate(gate, "task", "acc", "tuned", True, 2 * EARLY_SHARE * alpha)
    looks = np.minimum(np.arange(chunk_size, n + chunk_size, chunk_size), n) - 1
    decisions, used = [], []
    for _ in range(n_runs):
        kinds = rng.choice(4, size=n, p=cells)
        decision, at = None, n
        if sequential:
            drops = np.select([kinds == 1, kinds == 2], [1.0, -1.0], 0.0)
            lows, highs = confidence_sequence(drops, alpha=seq_gate.alpha, lower=-1.0, upper=1.0)
            for look in looks[:-1]:
                status = _status(seq_gate, float(lows[look]), float(highs[look]))
                if status != "undecided":
                    decision, at = status, look + 1
                    break
        if decision is None:
            counts = [int(c) for c in np.bincount(kinds, minlength=4)]
            base, tuned = (counts[0] + counts[1]) / n, (counts[0] + counts[2]) / n
            row = {"value": tuned, "baseline_value": base, "delta": tuned - base, "paired_counts": counts}
            share = 1 - EARLY_SHARE if sequential else 1.0
            decision = check_row(gate, row, "tuned", True, None, share).status
        decisions.append(decision)
        used.append(at)
    return OperatingCharacteristic(np.asarray(decisions), np.asarray(used), n)
