"""The one compare corridor: checkpoints in -> one preparation -> evaluation -> comparison -> verdict.

``evalkit compare`` (the CLI), :func:`compare_checkpoints` (Python) and ``EvalkitCallback`` all go
through here, so every rule about what may be compared is written once, in the preparation step, and
checked before any model loads:

* :func:`prepare_tasks`: the tasks resolve (names, files, overrides, ``limit``), the policy loads and fits
  them (a gate on a task or metric the run cannot produce), the evaluators' prerequisites hold;
* :func:`prepare`: at least two checkpoints, unique labels, the baseline is one of them and agrees
  with the policy's, every note names a checkpoint; ``--sequential`` has a policy and one process.

:func:`run` then evaluates in one of two modes: *fixed* (every sample of every task) or *sequential*
(gated tasks in seeded random chunks until their gates are decided, :mod:`evalkit.sequential`; the rest
as in fixed mode). :func:`conclude` compares and gates; ``Comparison.write`` writes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._validate import enough_checkpoints
from .errors import UsageError, did_you_mean, arg
from .progress import note
from .records import EvalResult
from .sequential import DEFAULT_CHUNK_SIZE

if TYPE_CHECKING:
    from .comparison import Comparison

__all__ = [
    "TaskPlan",
    "ComparePlan",
    "Sequential",
    "prepare_tasks",
    "prepare",
    "with_evaluators",
    "check_labels",
    "evaluate_one",
    "run",
    "conclude",
    "compare_checkpoints",
    "compare_sequential",
]


@dataclass(frozen=True)
class Sequential:
    """The sequential mode's settings: the seed of the random sample order and the samples per look."""

    seed: int = 0
    chunk_size: int = DEFAULT_CHUNK_SIZE


@dataclass
class TaskPlan:
    """What the tasks are, the policy that gates them (or None) and their evaluators, all checked."""

    task_configs: list
    evaluators: list
    policy: Any = None


@dataclass
class ComparePlan:
    """Everything :func:`run` needs, checked: the tasks, the checkpoints to evaluate and the given results."""

    tasks: TaskPlan
    checkpoints: list
    prior: list[EvalResult]
    baseline: str
    notes: dict[str, str] = field(default_factory=dict)
    sequential: Sequential | None = None

    @property
    def labels(self) -> list[str]:
        return [r.checkpoint.label for r in self.prior] + [c.label for c in self.checkpoints]


# ----------------------------------------------------------------------------------- preparation
def prepare_tasks(
    tasks: Any, *, policy: Any = None, overrides: Any = None, limit: int | None = None, sample_seed: int | None = 0
) -> TaskPlan:
    """Resolve ``tasks`` (with ``overrides`` and ``limit``), load ``policy`` and check it fits the tasks.

    The evaluators are built by :func:`with_evaluators` (after the cheaper checks of :func:`prepare`)."""
    from . import api
    from .gate import as_policy
    from .gate.preflight import check_policy_fits_tasks

    task_configs = api.with_limit(api.resolve(tasks, overrides), limit, sample_seed)
    policy_obj = as_policy(policy) if policy is not None else None
    if policy_obj is not None:  # a gate on a task or metric this run cannot produce fails now, not after evaluating
        check_policy_fits_tasks(policy_obj, task_configs)
    return TaskPlan(task_configs, [], policy_obj)


def prepare(
    models: Sequence[Any],
    tasks: TaskPlan,
    *,
    baseline_results: Sequence[Any] = (),
    baseline: str | None = None,
    notes: Mapping[str, str] | None = None,
    load_options: Any = None,
    sequential: Sequential | None = None,
) -> ComparePlan:
    """Check every rule of a comparison before anything slow starts; see the module docstring."""
    from . import api
    from ._compare import load_results_files

    if sequential is not None:
        _check_sequential(sequential, tasks.policy)
    prior = load_results_files(list(baseline_results))
    enough_checkpoints(
        len(models) + len(prior),
        f"compare needs at least two checkpoints ({arg('models')} and/or {arg('baseline_results')} files).",
        param="models",
    )
    options = load_options if load_options is not None else api.load_options()
    checkpoints = [api.as_checkpoint(model, options=options, index=i) for i, model in enumerate(models)]
    labels = [r.checkpoint.label for r in prior] + [c.label for c in checkpoints]
    chosen = check_labels(labels, baseline=baseline, notes=notes, policy=tasks.policy)
    with_evaluators(tasks)
    return ComparePlan(tasks, checkpoints, prior, chosen, dict(notes or {}), sequential)


def with_evaluators(tasks: TaskPlan) -> TaskPlan:
    """``tasks`` with its evaluators built: bad task options and missing task data fail before any model loads."""
    from .run import build_evaluators

    if not tasks.evaluators:
        tasks.evaluators = build_evaluators(tasks.task_configs)
    return tasks


def check_labels(
    labels: list[str], *, baseline: str | None = None, notes: Mapping[str, str] | None = None, policy: Any = None
) -> str:
    """The baseline label (``baseline``, default the first) after the label rules: labels unique, the
    baseline one of them and the policy's if it names one, every note for a checkpoint."""
    from ._compare import pick_baseline
    from ._validate import unique_labels
    from .gate import check_policy_baseline

    unique_labels(labels)
    chosen = pick_baseline(labels, baseline)
    if policy is not None:
        check_policy_baseline(policy, chosen)
    unknown = sorted(set(notes or {}) - set(labels))
    if unknown:
        raise UsageError(
            f"a note is given for {', '.join(map(repr, unknown))}, which is not a checkpoint label."
            f"{did_you_mean(unknown[0], labels)}",
            param="notes",
        )
    return chosen


def _check_sequential(sequential: Sequential, policy: Any) -> None:
    from . import _validate
    from .parallel import current_ranks

    if policy is None:
        raise UsageError(
            f"{arg('sequential', True)} stops a task once its gates are decided, so it needs {arg('policy', 'FILE')}.",
            param="policy",
        )
    _validate.seed(sequential.seed, param="seed")  # numpy's SeedSequence would refuse it mid-run
    _validate.integer(
        sequential.chunk_size, param="chunk_size", minimum=1, what="a positive integer (samples per look)"
    )
    if current_ranks().parallel:
        raise UsageError(
            f"{arg('sequential', True)} decides after every chunk in one process; run it without torchrun/accelerate."
        )


# ----------------------------------------------------------------------------------- evaluation
def run(plan: ComparePlan, store: Any = None, *, rerun: bool = False, verbose: bool = False) -> Comparison | None:
    """Evaluate ``plan`` (fixed or sequential mode), compare and gate; None on a non-main rank of a
    multi-process launch (only rank 0 compares)."""
    from . import api
    from .parallel import current_ranks
    from .progress import quiet_third_party

    with api.open_store(store) as opened, quiet_third_party(verbose):
        if plan.sequential is None:
            evaluated = [evaluate_one(c, plan.tasks, opened, rerun=rerun) for c in plan.checkpoints]
            prior, summary = plan.prior, None
        else:
            prior, evaluated, summary = _run_sequential(plan, opened, rerun=rerun)
    if not current_ranks().main:  # under torchrun/accelerate only rank 0 compares, writes and gates
        return None
    return conclude(
        prior, evaluated, baseline=plan.baseline, notes=plan.notes, policy=plan.tasks.policy, sequential=summary
    )


def evaluate_one(checkpoint: Any, tasks: TaskPlan, store: Any, *, rerun: bool = False) -> EvalResult:
    """One checkpoint on ``tasks``, answered from the store where it can be (the line says which)."""
    from .checkpoints.memory import InMemoryCheckpoint, evaluation_mode
    from .run import evaluate_checkpoint, evaluation_line

    note(evaluation_line(checkpoint, tasks.task_configs, store, evaluators=tasks.evaluators, rerun=rerun))
    in_memory = isinstance(checkpoint, InMemoryCheckpoint) and not checkpoint.is_lm
    with evaluation_mode(checkpoint.model) if in_memory else nullcontext():
        return evaluate_checkpoint(checkpoint, tasks.task_configs, store, evaluators=tasks.evaluators, rerun=rerun)


def _run_sequential(
    plan: ComparePlan, store: Any, *, rerun: bool
) -> tuple[list[EvalResult], list[EvalResult], dict[str, Any]]:
    """Gated tasks chunk by chunk until decided, the other tasks as in fixed mode (one result per checkpoint)."""
    from .run import library_versions
    from .sequential import drive_sequential

    assert plan.sequential is not None
    stopped, summary = drive_sequential(
        plan.checkpoints,
        plan.tasks.task_configs,
        plan.tasks.evaluators,
        store,
        plan.tasks.policy,
        baseline=plan.baseline,
        prior=plan.prior,
        seed=plan.sequential.seed,
        chunk_size=plan.sequential.chunk_size,
        rerun=rerun,
    )
    versions = library_versions()
    evaluated = []
    for checkpoint in plan.checkpoints:  # the rest as ordinary runs (their stored runs were discarded on rerun)
        tasks = dict(stopped[checkpoint.label])
        rest = [(t, e) for t, e in zip(plan.tasks.task_configs, plan.tasks.evaluators) if t.name not in tasks]
        if rest:
            remaining = TaskPlan([t for t, _ in rest], [e for _, e in rest], plan.tasks.policy)
            tasks.update(evaluate_one(checkpoint, remaining, store).tasks)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        ordered = {t.name: tasks[t.name] for t in plan.tasks.task_configs}
        evaluated.append(EvalResult(checkpoint=checkpoint.info, versions=versions, tasks=ordered, created=now))
    prior = [_with_stopped_tasks(r, stopped[r.checkpoint.label]) for r in plan.prior]
    return prior, evaluated, summary


def _with_stopped_tasks(result: EvalResult, stopped: dict[str, Any]) -> EvalResult:
    """A results-file checkpoint with its stopped tasks cut to the samples used, like every other checkpoint."""
    if not stopped:
        return result
    return EvalResult(
        checkpoint=result.checkpoint,
        versions=result.versions,
        tasks={**result.tasks, **stopped},
        created=result.created,
        schema_version=result.schema_version,
    )


# ----------------------------------------------------------------------------------- comparison and verdict
def conclude(
    prior: list[EvalResult],
    evaluated: list[EvalResult],
    *,
    baseline: str | None,
    notes: Mapping[str, str] | None = None,
    policy: Any = None,
    sequential: dict[str, Any] | None = None,
) -> Comparison:
    """The comparison of ``prior`` then ``evaluated`` (only these are written as results files), with the
    sequential outcome if any, gated by ``policy`` if given."""
    from . import api

    comparison = api.compare(*prior, *evaluated, baseline=baseline, notes=notes)
    comparison.results = list(evaluated)  # results files are compared, not written again
    if sequential is not None:
        _attach(comparison.data, sequential)
    if policy is not None:
        comparison.gate(policy)
    return comparison


def _attach(data: dict[str, Any], summary: dict[str, Any]) -> None:
    """The sequential outcome into the comparison, with a warning for each task that used part of the data."""
    from ._compare import json_safe

    data["sequential"] = json_safe(summary)
    for name, outcome in summary["tasks"].items():
        if outcome["stopped_early"]:
            data["warnings"].append(
                f"task {name!r} stopped after {outcome['samples_used']} of {outcome['samples_total']} samples "
                "(--sequential): its metrics are over that uniformly random subset; its gates were decided by "
                "anytime-valid confidence sequences."
            )


# ----------------------------------------------------------------------------------- the Python entry points
def compare_checkpoints(
    *models: Any,
    tasks: Any,
    policy: Any = None,
    baseline: str | None = None,
    baseline_results: Sequence[str] = (),
    store: Any = None,
    sequential: Sequential | None = None,
    rerun: bool = False,
    overrides: Any = None,
    limit: int | None = None,
    sample_seed: int | None = 0,
    notes: Mapping[str, str] | None = None,
    load_options: Any = None,
    verbose: bool = False,
    **options: Any,
) -> Comparison:
    """Evaluate and compare ``models`` (what ``evalkit compare`` runs); gated when ``policy`` is given.

    ``sequential=Sequential(seed, chunk_size)`` (needs ``policy``) stops each gated task once its gates are
    decided; see :func:`compare_sequential`.
    """
    from . import api

    task_plan = prepare_tasks(tasks, policy=policy, overrides=overrides, limit=limit, sample_seed=sample_seed)
    options_obj = load_options if load_options is not None else api.load_options(**options)
    plan = prepare(
        models,
        task_plan,
        baseline_results=baseline_results,
        baseline=baseline,
        notes=notes,
        load_options=options_obj,
        sequential=sequential,
    )
    comparison = run(plan, store, rerun=rerun, verbose=verbose)
    if comparison is None:
        raise UsageError("compare_checkpoints runs in one process; under torchrun only rank 0 compares.")
    return comparison


def compare_sequential(
    *models: Any,
    tasks: Any,
    policy: Any,
    baseline: str | None = None,
    baseline_results: Sequence[str] = (),
    store: Any = None,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rerun: bool = False,
    overrides: Any = None,
    notes: Mapping[str, str] | None = None,
    load_options: Any = None,
    **options: Any,
) -> Comparison:
    """Evaluate and compare ``models``, stopping each gated task once ``policy``'s gates are decided.

    What ``evalkit compare ... --policy P --sequential`` runs (see ``docs/gating.md``): each task with gates
    on per-sample metrics is evaluated in a seeded random order, ``chunk_size`` samples at a time, until
    every gate's anytime-valid confidence sequence lies beyond or inside its threshold.

    Parameters
    ----------
    *models : str, path or model object
        Checkpoints as for :func:`evalkit.evaluate` (``"base=models/base"``, a folder, a model object).
    tasks : str, path, TaskConfig or a list of them
    policy : str, path, mapping or Policy
        The release policy; its gates decide when a task may stop.
    baseline : str, optional
        The baseline label (default: the first checkpoint).
    baseline_results : sequence of str
        ``results.json`` / ``comparison.json`` files (``LABEL=path``) standing for checkpoints that are not
        evaluated; they need per-sample records for their tasks to stop early.
    store : str, path or ResultStore, optional
        A SQLite file path, a ``postgresql://`` URL or an open store (default: ``$EVALKIT_STORE``).
    seed : int
        Seed of the random sample order (a later run with the same seed continues the same order).
    chunk_size : int
        Samples between two looks at the confidence sequences.
    rerun : bool
        Discard stored runs first.
    overrides : mapping or list of str, optional
        Task option overrides (``["mmlu.limit=20"]``).
    notes : mapping of label to text, optional
    load_options : LoadOptions, optional
        Load options as an object; otherwise built from ``**options`` (``batch_size``, ``device``, ...).

    Returns
    -------
    Comparison
        Gated (``comparison.verdict``); ``comparison.data["sequential"]`` holds samples used, stopping
        reasons and the bounds at the stop; ``comparison.write(out)`` writes the report folder.
    """
    return compare_checkpoints(
        *models,
        tasks=tasks,
        policy=policy,
        baseline=baseline,
        baseline_results=baseline_results,
        store=store,
        sequential=Sequential(seed, chunk_size),
        rerun=rerun,
        overrides=overrides,
        limit=None,
        notes=notes,
        load_options=load_options,
        **options,
    )
