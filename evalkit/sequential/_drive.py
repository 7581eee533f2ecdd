"""Drive the evaluation of gated tasks chunk by chunk and stop once every gate on a task is decided.

For a task whose gates can all be decided sequentially (see ``_gates``), the samples are visited in a
seeded uniform random order, ``chunk_size`` at a time. Every checkpoint evaluates the chunk (a stored
record is reused, never re-evaluated; a baseline with a complete stored run or a results file costs
nothing), the records are committed to the store as usual, and then every gate's confidence sequence is
updated over all samples so far. The task stops when every gate is decided; otherwise it runs to the
end and is finished as an ordinary run (the fixed-sample rule then decides its gates).

A stopped task's run stays unfinished in the store with the samples evaluated so far, so a later run,
sequential or not, continues from them: the random order is a function of the seed and the task, so a
later sequential run replays the same order and pays only for the samples beyond the earlier stop.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EvalkitError, EvaluationError, UsageError
from ..parallel import ShardView
from ..progress import note
from ..gate.sequential_verdict import EARLY_SHARE
from ..records import SampleRecord, TaskResult
from ._gates import DEFAULT_ALPHA, GateState, SequentialGate, decide, spec_reason, unsupported_reason

__all__ = ["drive_sequential", "TaskOutcome", "DEFAULT_CHUNK_SIZE", "sample_order"]

#: Samples per chunk: small enough to stop soon after the verdict settles, large enough for full batches.
DEFAULT_CHUNK_SIZE = 100
BOUND_NAME = (
    "predictable plug-in empirical-Bernstein confidence sequence, sampling without replacement "
    "(Waudby-Smith & Ramdas 2023, JRSS-B, Thm 2 and Sec. 6)"
)


@dataclass
class TaskOutcome:
    """How one task was evaluated under ``--sequential`` (a value of ``comparison["sequential"]["tasks"]``)."""

    task: str
    sequential: bool
    reason: str
    samples_used: int = 0
    samples_total: int = 0
    stopped_early: bool = False
    gates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequential": self.sequential,
            "stopped_early": self.stopped_early,
            "reason": self.reason,
            "samples_used": self.samples_used,
            "samples_total": self.samples_total,
            "gates": list(self.gates),
        }


def sample_order(sample_ids: list[str], task: str, seed: int) -> list[str]:
    """The seeded uniform random order of a task's samples (the same for every checkpoint and every run).

    Examples
    --------
    >>> sample_order(["a", "b", "c", "d"], "mmlu", 0) == sample_order(["a", "b", "c", "d"], "mmlu", 0)
    True
    >>> sorted(sample_order(["a", "b", "c", "d"], "mmlu", 1))
    ['a', 'b', 'c', 'd']
    """
    rng = np.random.default_rng([seed, zlib.crc32(task.encode("utf-8"))])
    return [sample_ids[i] for i in rng.permutation(len(sample_ids))]


# ----------------------------------------------------------------------------------- the sources
class _Source:
    """One checkpoint's records of one task: stored/given records, plus a way to evaluate missing ones."""

    def __init__(self, label: str, records: Mapping[str, SampleRecord], checkpoint=None, key=None):
        self.label, self.records, self.checkpoint, self.key = label, dict(records), checkpoint, key
        self.evaluated = 0

    @property
    def live(self) -> bool:
        return self.checkpoint is not None

    def ensure(self, chunk: list[str], evaluator, store) -> None:
        """Evaluate the chunk's samples this checkpoint has no record of, committing them to the store."""
        missing = [s for s in chunk if s not in self.records]
        if not missing:
            return
        if not self.live:
            raise UsageError(
                f"the results file of {self.label!r} has no record of sample {missing[0]!r} of task "
                f"{evaluator.config.name!r}; evaluate that checkpoint instead of reading its results file."
            )
        lm = self.checkpoint.lm
        if hasattr(lm, "check_coverage"):
            lm.check_coverage(evaluator.config.name, missing)
        saved: list[SampleRecord] = []

        def save(batch: list[SampleRecord]) -> None:
            store.add_samples(self.key, batch)
            saved.extend(batch)

        try:  # the view shows every other sample as done, so any evaluator evaluates just this chunk
            evaluator.run(lm, done=ShardView(self.records, set(missing)), save=save)
        except EvalkitError:
            raise
        except Exception as exc:
            raise EvaluationError(
                f"task {evaluator.config.name!r} on checkpoint {self.label!r} failed: {type(exc).__name__}: {exc} "
                f"(finished samples are stored; evaluate again to resume)."
            ) from exc
        self.records.update((r.sample_id, r) for r in saved)
        self.evaluated += len(saved)


def _sources(task, evaluator, checkpoints, keys, prior, store) -> dict[str, _Source]:
    sources: dict[str, _Source] = {}
    for result in prior:
        tr = result.tasks.get(task.name)
        sources[result.checkpoint.label] = _Source(
            result.checkpoint.label, {r.sample_id: r for r in (tr.samples if tr else [])}
        )
    for checkpoint, key in zip(checkpoints, keys):
        complete = store.completed_result(key)
        if complete is not None:  # a finished run answers every sample without the model
            sources[checkpoint.label] = _Source(checkpoint.label, {r.sample_id: r for r in complete.samples})
        else:
            store.start_run(key, checkpoint.info.to_dict())
            sources[checkpoint.label] = _Source(checkpoint.label, store.load_samples(key), checkpoint, key)
    return sources


# ----------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class _Planned:
    """A gate on one checkpoint before the metric's declaration is known (it comes with the first records)."""

    gate: Any
    checkpoint: str
    alpha: float


def _plan(task, policy, labels: list[str], baseline: str) -> tuple[list[_Planned], str | None]:
    """The task's gates per checkpoint, or the reason the task runs in full."""
    gates = [g for g in policy.gates if g.metric.split(".", 1)[0] == task.name]
    if not gates:
        return [], "no gate on this task"
    planned = []
    for gate in gates:
        reason = unsupported_reason(gate)
        if reason:
            return [], f"gate {gate.index} ({gate.description}): {reason}"
        for label in _targets(gate, labels, baseline):
            # The gate's one-sided level alpha is split between the early looks and the final fixed-sample
            # look (gate.sequential_verdict.EARLY_SHARE): a two-sided sequence at level 2*EARLY_SHARE*alpha spends
            # EARLY_SHARE*alpha per side, the final bounds the rest, so each side errs with probability <= alpha.
            level = gate.significance if gate.significance is not None else DEFAULT_ALPHA
            planned.append(_Planned(gate, label, 2 * EARLY_SHARE * level))
    return planned, None


def _targets(gate, labels: list[str], baseline: str) -> list[str]:
    if gate.checkpoints:
        return [label for label in labels if label in gate.checkpoints]
    return [label for label in labels if label != baseline]


def _resolve(planned: list[_Planned], task: str, evaluator, records: list[SampleRecord]) -> list[SequentialGate] | str:
    """Sequential gates from the declared metric specs (of the first chunk's result), or why there are none."""
    from ..evaluators.base import metric_spec

    result = evaluator.aggregate(records)
    gates = []
    for item in planned:
        metric = item.gate.metric.split(".", 1)[1]
        spec = metric_spec(result, metric)
        reason = spec_reason(spec, metric)
        if reason:
            return f"gate {item.gate.index} ({item.gate.description}): {reason}; decided on the full data"
        direction = item.gate.higher_is_better if item.gate.higher_is_better is not None else spec.higher_is_better
        gates.append(
            SequentialGate(item.gate, task, metric, item.checkpoint, direction, item.alpha, spec.score_field(metric))
        )
    return gates


def _per_sample_values(records: list[SampleRecord], field_path: str) -> np.ndarray | None:
    """The records' per-sample scores as floats, or None unless every one is a number in [0, 1]."""
    from ..evaluators.base import record_value

    values = []
    for record in records:
        value = record_value(record, field_path)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            return None
        values.append(float(value))
    return np.asarray(values, dtype=float)


# ----------------------------------------------------------------------------------- the loop
def _gate_states(
    gates: list[SequentialGate], sources: dict[str, _Source], used: list[str], baseline: str, total: int
) -> dict[int, GateState] | str:
    """Each gate's state over the samples used so far, or why the task cannot be decided sequentially."""
    states = {}
    for number, gate in enumerate(gates):
        values = _per_sample_values([sources[gate.checkpoint].records[s] for s in used], gate.score)
        base = _per_sample_values([sources[baseline].records[s] for s in used], gate.score) if gate.paired else None
        if values is None or (gate.paired and base is None):
            return (
                f"gate {gate.gate.index} ({gate.gate.description}): the per-sample scores {gate.score} are not "
                "all numbers in [0, 1], which the confidence sequence needs; decided on the full data"
            )
        states[number] = decide(
            gate,
            gate.observations(values, base),
            total,
            baseline_mean=float(base.mean()) if base is not None and base.size else None,
        )
    return states


def _drive_task(task, evaluator, planned, sources, baseline, store, *, seed, chunk_size) -> TaskOutcome:
    from ..progress import bar

    ids = evaluator.sample_ids()
    for source in sources.values():
        lacking = [] if source.live else [s for s in ids if s not in source.records]
        if lacking:
            return TaskOutcome(
                task.name,
                False,
                f"the results of {source.label!r} lack per-sample records of "
                f"{len(lacking)} of its {len(ids)} samples, so the task cannot be paired chunk by chunk",
                samples_total=len(ids),
            )
    if not any(source.live for source in sources.values()):  # nothing to save: use every sample
        return TaskOutcome(
            task.name,
            False,
            "every checkpoint's results are complete already (store or results file); decided on all samples",
            samples_total=len(ids),
        )
    order = sample_order(ids, task.name, seed)
    used: list[str] = []
    states: dict[int, GateState] | str = {}
    gates: list[SequentialGate] | str = []
    with bar(len(order), f"{task.name} (sequential)", unit="sample") as progress:
        for start in range(0, len(order), chunk_size):
            chunk = order[start : start + chunk_size]
            for source in sources.values():
                source.ensure(chunk, evaluator, store)
            used += chunk
            progress.update(len(chunk))
            if not gates:
                gates = _resolve(planned, task.name, evaluator, [sources[baseline].records[s] for s in used])
            states = gates if isinstance(gates, str) else _gate_states(gates, sources, used, baseline, len(order))
            if isinstance(states, str):
                break
            progress.set_postfix_str(_bounds_text(gates, states), refresh=False)
            if progress.disable and _is_log_point(len(used), chunk_size):
                note(f"{task.name}: {len(used)}/{len(order)} samples, {_bounds_text(gates, states)}")
            if all(s.status != "undecided" for s in states.values()):
                break
    if isinstance(states, str):
        return TaskOutcome(task.name, False, states, samples_total=len(order))
    stopped = len(used) < len(order)
    reason = (
        "every gate decided by its confidence sequence"
        if stopped
        else "data ran out before every gate was decided; the fixed-sample rule applies"
    )
    return TaskOutcome(
        task.name,
        True,
        reason,
        samples_used=len(used),
        samples_total=len(order),
        stopped_early=stopped,
        gates=[_gate_entry(g, states[i]) for i, g in enumerate(gates)],
    )


def _is_log_point(n: int, chunk_size: int) -> bool:
    """Log lines at 1, 2, 4, 8, ... chunks when no progress bar is shown (CI logs stay short)."""
    chunks = n // chunk_size
    return n % chunk_size == 0 and chunks & (chunks - 1) == 0


def _bounds_text(gates: list[SequentialGate], states: dict[int, GateState]) -> str:
    parts = []
    for i, gate in enumerate(gates):
        s = states[i]
        parts.append(
            f"{gate.checkpoint} {gate.metric} {gate.quantity} in [{s.low:.3f}, {s.high:.3f}] "
            f"({gate.operator} {gate.threshold:g}: {s.status})"
        )
    return "; ".join(parts)


def _gate_entry(gate: SequentialGate, state: GateState) -> dict[str, Any]:
    return {
        "gate": gate.gate.description,
        "gate_index": gate.gate.index,
        "metric": f"{gate.task}.{gate.metric}",
        "checkpoint": gate.checkpoint,
        "operator": gate.operator,
        "threshold": gate.threshold,
        "decision_threshold": gate.decision_threshold,
        "quantity": gate.quantity,
        "status": state.status,
        "estimate": state.estimate,
        "cs_low": state.low,
        "cs_high": state.high,
        "alpha": gate.alpha,
        "n": state.n,
    }


# ----------------------------------------------------------------------------------- entry point
def drive_sequential(
    checkpoints: list,
    task_configs: list,
    evaluators: list,
    store,
    policy,
    *,
    baseline: str,
    prior: list | None = None,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rerun: bool = False,
) -> tuple[dict[str, dict[str, TaskResult]], dict[str, Any]]:
    """Evaluate the gated tasks of ``task_configs`` chunk by chunk, stopping each once ``policy``'s gates are decided.

    The sequential mode of :func:`evalkit.compare_run.run`, which checked the inputs (labels, baseline, policy,
    seed, chunk size) and evaluates every task not stopped here as an ordinary run.

    Parameters
    ----------
    checkpoints : list of Checkpoint
        Checkpoints to evaluate (their models load only if a sample is missing from the store).
    task_configs, evaluators : lists of TaskConfig and evaluators, same order
    store : ResultStore
    policy : Policy
        The gates; tasks without a gate, or with a gate that needs the full data, run in full.
    baseline : str
        The baseline label.
    prior : list of EvalResult, optional
        Checkpoints given as results files (with per-sample records); they are never evaluated.
    seed : int
        Seed of the random sample order.
    chunk_size : int
        Samples evaluated between two looks at the confidence sequences.
    rerun : bool
        Discard stored runs first.

    Returns
    -------
    stopped : dict of label to dict of task name to TaskResult
        Per checkpoint (``prior`` and ``checkpoints``), the tasks stopped early, over the samples used.
    summary : dict
        ``comparison["sequential"]``: seed, chunk size, bound and a :class:`TaskOutcome` per task.
    """
    from ..run import check_capabilities, library_versions, run_keys

    prior = list(prior or [])
    labels = [r.checkpoint.label for r in prior] + [c.label for c in checkpoints]
    versions = library_versions()
    keys = {c.label: run_keys(c, task_configs, evaluators, versions) for c in checkpoints}
    if rerun:
        for checkpoint in checkpoints:
            for key in keys[checkpoint.label]:
                store.discard_run(key)
    outcomes: dict[str, TaskOutcome] = {}
    stopped: dict[str, dict[str, TaskResult]] = {label: {} for label in labels}
    for index, (task, evaluator) in enumerate(zip(task_configs, evaluators)):
        planned, reason = _plan(task, policy, labels, baseline)
        if reason is None:
            for checkpoint in checkpoints:
                check_capabilities(checkpoint, task, evaluator)
            sources = _sources(task, evaluator, checkpoints, [keys[c.label][index] for c in checkpoints], prior, store)
            started = time.perf_counter()
            outcome = _drive_task(task, evaluator, planned, sources, baseline, store, seed=seed, chunk_size=chunk_size)
            if outcome.stopped_early:
                seconds = time.perf_counter() - started
                for label in stopped:
                    stopped[label][task.name] = _partial_result(evaluator, sources[label], outcome, seed, seconds)
        else:
            outcome = TaskOutcome(task.name, False, reason)
        outcomes[task.name] = outcome
        _echo_outcome(outcome)
    summary = {
        "seed": seed,
        "chunk_size": chunk_size,
        "bound": BOUND_NAME,
        "baseline": baseline,
        "tasks": {name: o.to_dict() for name, o in outcomes.items()},
    }
    return stopped, summary


def _partial_result(evaluator, source: _Source, outcome: TaskOutcome, seed: int, seconds: float) -> TaskResult:
    """The corpus result over the samples used (in the evaluator's sample order); the stored run stays open."""
    used = set(sample_order(evaluator.sample_ids(), outcome.task, seed)[: outcome.samples_used])
    records = [source.records[s] for s in evaluator.sample_ids() if s in used]
    result = evaluator.aggregate(records)
    result.samples = result.samples or records
    result.timing = {
        "seconds": round(seconds, 3),
        "evaluated_samples": source.evaluated,
        "samples_used": outcome.samples_used,
        "samples_total": outcome.samples_total,
    }
    return result


def _echo_outcome(outcome: TaskOutcome) -> None:
    if not outcome.sequential:
        note(f"{outcome.task}: evaluated in full ({outcome.reason}).")
        return
    head = (
        f"{outcome.task}: stopped after {outcome.samples_used} of {outcome.samples_total} samples"
        if outcome.stopped_early
        else f"{outcome.task}: all {outcome.samples_total} samples evaluated"
    )
    gates = "; ".join(
        f"{g['checkpoint']} {g['gate']}: {g['status']}, {g['quantity']} in "
        f"[{g['cs_low']:.3f}, {g['cs_high']:.3f}] (anytime-valid, alpha {g['alpha']:g})"
        for g in outcome.gates
    )
    note(f"{head} ({outcome.reason}): {gates}")
    sys.stderr.flush()
