"""Which gates can be decided sequentially, and the decision rule on a confidence sequence.

A gate is decided early only when its quantity is the mean of a per-sample score in [0, 1]:

* ``max_drop`` / ``min_gain``: the mean paired difference (a drop or gain, oriented by the metric's
  direction), each difference in [-1, 1];
* ``min`` / ``max``: the mean score of the gated checkpoint itself, in [0, 1];
* ``max_relative_drop: r`` / ``min_relative_gain: g``: a relative drop beyond r of the baseline's mean
  B is a mean drop beyond r * B, so the quantity is the mean of ``drop - r * baseline`` per sample
  (``gain - g * baseline``), compared with 0; each term is bounded by the corners of [0, 1]^2.

Gates on breakdown rows (``mmlu.subject/anatomy/acc``) and gates on corpus metrics (macro F1) are decided
on the full data, so their tasks run in full.

Decision rule, with ``[low, high]`` the (1 - alpha) confidence sequence of the gate's quantity and
thresholds inclusive as in the fixed-sample rule: a gate that fails above its threshold (``max_drop``,
``max``, ``max_relative_drop`` with threshold 0) fails once ``low > threshold`` and passes once
``high <= threshold``; one that fails below it (``min_gain``, ``min``, ``min_relative_gain``) fails once
``high < threshold`` and passes once ``low >= threshold``. Because the
sequence holds at every sample size at once, the probability that an early verdict is wrong is at
most alpha (at most alpha/2 per side).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics.stats import cut_to_range
from ._bound import confidence_sequence

__all__ = ["SequentialGate", "GateState", "DEFAULT_ALPHA", "unsupported_reason", "spec_reason", "decide"]

#: Error level of a gate without ``significance``: the anytime-valid alpha of its sequence.
DEFAULT_ALPHA = 0.05
_SEQUENTIAL_OPERATORS = ("max_drop", "min_gain", "min", "max", "max_relative_drop", "min_relative_gain")
_FAILS_ABOVE = ("max_drop", "max", "max_relative_drop")
_RELATIVE = ("max_relative_drop", "min_relative_gain")


@dataclass(frozen=True)
class SequentialGate:
    """One policy gate applied to one checkpoint, as a confidence-sequence test.

    ``gate`` is the policy's :class:`~evalkit.gate.Gate`; ``metric`` the per-sample score name (the part
    after ``TASK.``); ``alpha`` the gate's ``significance`` or :data:`DEFAULT_ALPHA`.
    """

    gate: object
    task: str
    metric: str
    checkpoint: str
    higher_is_better: bool
    alpha: float
    score: str = ""  # the record field of the per-sample score (MetricSpec.score_field), e.g. "scores.acc"

    @property
    def operator(self) -> str:
        return self.gate.operator

    @property
    def threshold(self) -> float:
        return self.gate.threshold

    @property
    def decision_threshold(self) -> float:
        """What the sequence is compared with: the gate's threshold, 0 for a relative gate (see module doc)."""
        return 0.0 if self.operator in _RELATIVE else self.threshold

    @property
    def paired(self) -> bool:
        """Whether the quantity is a difference against the baseline (else the checkpoint's own mean)."""
        return self.operator not in ("min", "max")

    @property
    def quantity(self) -> str:
        """What the bounds are bounds of: ``drop``, ``gain``, ``value`` or ``drop - r*baseline`` (relative)."""
        if self.operator in _RELATIVE:
            return f"{'drop' if self.operator == 'max_relative_drop' else 'gain'} - {self.threshold:g}*baseline"
        return {"max_drop": "drop", "min_gain": "gain"}.get(self.operator, "value")

    def observations(self, values: np.ndarray, baseline_values: np.ndarray | None) -> np.ndarray:
        """Per-sample contributions to the gate's quantity (a drop is baseline minus checkpoint for higher-is-better)."""
        if not self.paired:
            return values
        gain = values - baseline_values if self.higher_is_better else baseline_values - values
        change = -gain if self.operator in ("max_drop", "max_relative_drop") else gain
        return change - self.threshold * baseline_values if self.operator in _RELATIVE else change

    def feasible(self, baseline_mean: float | None) -> tuple[float, float]:
        """The quantity's range once the baseline's mean is known: the checkpoint's mean anywhere in [0, 1].

        The fixed-sample gate cuts its bounds the same way (the report's delta intervals too: ``cut_to_range``)."""
        if not self.paired or baseline_mean is None:
            return self.range
        ends = self.observations(np.array([0.0, 1.0]), np.array([baseline_mean, baseline_mean]))
        return float(ends.min()), float(ends.max())

    @property
    def range(self) -> tuple[float, float]:
        """Bounds of one observation: from the corners of (baseline, value) in [0, 1]^2."""
        if not self.paired:
            return (0.0, 1.0)
        corners = self.observations(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0, 1.0]))
        return float(corners.min()), float(corners.max())


@dataclass
class GateState:
    """A sequential gate after some samples: the bounds, the point estimate and the decision so far."""

    status: str  # "pass", "fail" or "undecided"
    low: float | None
    high: float | None
    estimate: float | None
    n: int


def unsupported_reason(gate) -> str | None:
    """Why ``gate`` cannot be decided before all samples are in (None when it can, given a per-sample metric)."""
    if gate.operator not in _SEQUENTIAL_OPERATORS:
        return f"{gate.operator} has no sequential form; decided on the full data"
    if "/" in gate.metric:
        return "gates on breakdown rows are decided on the full data"
    return None


def spec_reason(spec, metric: str) -> str | None:
    """Why a metric with declaration ``spec`` (a MetricSpec or None) cannot be bounded sample by sample."""
    if spec is None:
        return f"{metric} has no metric declaration"
    if spec.level != "sample":
        return f"{metric} is a corpus metric (not a mean of per-sample scores)"
    if spec.unit != "sample":
        return f"{metric} is a mean over elements of a sample (e.g. instructions), not over samples"
    return None


def decide(
    gate: SequentialGate, observations: np.ndarray, population: int, baseline_mean: float | None = None
) -> GateState:
    """The gate's state after ``observations`` (its per-sample quantity, in sampling order).

    Parameters
    ----------
    gate : SequentialGate
    observations : ndarray of shape (n,)
        From :meth:`SequentialGate.observations`, in the seeded random order.
    population : int
        Number of samples of the task (for the record: the sequence bounds the mean of the population the
        samples are drawn from, not of these samples, so it does not narrow as the task runs out).
    baseline_mean : float, optional
        The baseline's mean score on the same samples (paired gates): the bounds are cut to the changes it
        allows (a gain from 0.008 cannot exceed 0.992), as the fixed-sample gate's are.

    Returns
    -------
    GateState

    Examples
    --------
    >>> from evalkit.gate import parse_policy
    >>> policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_drop": 0.05}]})
    >>> gate = SequentialGate(policy.gates[0], "mmlu", "acc", "tuned", True, 0.05, "scores.acc")
    >>> drops = gate.observations(np.zeros(400), np.tile([1.0, 0.0], 200))  # tuned loses half the questions
    >>> state = decide(gate, drops, population=14042)
    >>> state.status, round(state.estimate, 2), bool(state.low > 0.05)
    ('fail', 0.5, True)
    """
    low, high = (None, None)
    if observations.size:
        # One frame for both modes: the samples are draws from the population of such items (i.i.d.),
        # so the sequence bounds the population mean, as the fixed-sample bounds do; ``population`` only
        # states how many samples the task has.
        lows, highs = confidence_sequence(observations, alpha=gate.alpha, lower=gate.range[0], upper=gate.range[1])
        low, high = cut_to_range(float(lows[-1]), float(highs[-1]), gate.feasible(baseline_mean))
    estimate = float(observations.mean()) if observations.size else None
    return GateState(status=_status(gate, low, high), low=low, high=high, estimate=estimate, n=int(observations.size))


def _status(gate: SequentialGate, low: float | None, high: float | None) -> str:
    if low is None:
        return "undecided"
    threshold = gate.decision_threshold
    if gate.operator in _FAILS_ABOVE:
        return "fail" if low > threshold else "pass" if high <= threshold else "undecided"
    return "fail" if high < threshold else "pass" if low >= threshold else "undecided"
