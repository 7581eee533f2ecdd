"""Anytime-valid sequential gating: evaluate gated tasks in a random order and stop once the verdict is settled.

``evalkit compare BASE TUNED --tasks mmlu --policy P --sequential`` evaluates each task that has gates on a
per-sample metric in seeded random chunks and stops it as soon as every gate's confidence sequence lies
beyond (fail) or inside (pass) its threshold; see ``docs/gating.md``. The parts:

* :func:`confidence_sequence`: the bound (Waudby-Smith & Ramdas 2023, predictable plug-in empirical Bernstein);
* :func:`decide`: a gate's decision from its confidence sequence;
* :func:`drive_sequential`: the evaluation loop over checkpoints, tasks and chunks, the sequential mode of
  the one compare path (:mod:`evalkit.compare_run`, whose :func:`~evalkit.compare_run.compare_sequential` is
  models in, a gated :class:`~evalkit.comparison.Comparison` out);
* :func:`apply_sequential_verdict`: early decisions into the policy's verdict (the gate's rule, re-exported);
* :func:`simulate_stopping`: error rates and savings on a known population (``bench/sequential``);
* :func:`operating_characteristic`: P(pass / fail / inconclusive) of a gate in either mode (``bench/gating``).
"""

from ._bound import confidence_sequence
from ._drive import DEFAULT_CHUNK_SIZE, TaskOutcome, drive_sequential, sample_order
from ._gates import DEFAULT_ALPHA, GateState, SequentialGate, decide, unsupported_reason
from ._simulate import OperatingCharacteristic, SimulationResult, operating_characteristic, simulate_stopping
from ..gate.sequential_verdict import apply_sequential_verdict

__all__ = [
    "confidence_sequence",
    "decide",
    "SequentialGate",
    "GateState",
    "DEFAULT_ALPHA",
    "DEFAULT_CHUNK_SIZE",
    "TaskOutcome",
    "drive_sequential",
    "sample_order",
    "unsupported_reason",
    "apply_sequential_verdict",
    "simulate_stopping",
    "SimulationResult",
    "operating_characteristic",
    "OperatingCharacteristic",
]
