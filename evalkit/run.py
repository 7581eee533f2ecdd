"""Evaluate one checkpoint on a list of tasks, through the result store.

For each task: build its evaluator, check prerequisites (before any model loads), look the run key up
in the store, and only for runs that are missing or unfinished load the model (once) and evaluate the
samples not yet stored. Records are committed batch by batch; the corpus result is computed from all
records and stored last.
"""

from __future__ import annotations

import datetime as _dt
import time
from importlib import metadata

from .errors import EvalkitError, EvaluationError, UsageError, arg
from .evaluators.base import get_evaluator
from .parallel import Ranks, ShardView, current_ranks, wait_until
from .progress import note
from .records import EvalResult, TaskResult, in_sample_order
from .store import ResultStore, RunKey, settings_hash
from .checkpoints import Checkpoint
from .taskconfig import TaskConfig

__all__ = [
    "evaluate_checkpoint",
    "library_versions",
    "build_evaluators",
    "run_keys",
    "stored_task_names",
    "evaluation_line",
    "check_capabilities",
]


def library_versions() -> dict[str, str]:
    """Versions that change results, read from package metadata (no heavy imports)."""
    out = {}
    for dist in ("evalkit", "lm-eval", "transformers", "torch", "peft"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def build_evaluators(tasks: list[TaskConfig]) -> list:
    """Instantiate and pre-check every task's evaluator (raises on bad configs or missing prerequisites)."""
    evaluators = [get_evaluator(task.evaluator)(task) for task in tasks]
    for evaluator in evaluators:
        evaluator.check_ready()
    return evaluators


def check_capabilities(checkpoint: Checkpoint, task: TaskConfig, evaluator) -> None:
    for need in sorted(evaluator.needs):
        reason = _unsupported_reason(checkpoint, need)
        if reason:
            raise UsageError(
                f"task {task.name!r} needs {need} requests, which checkpoint {checkpoint.label!r} "
                f"({checkpoint.kind}) cannot answer: {reason}; or leave the task out."
            )


def _unsupported_reason(checkpoint, need: str) -> str | None:
    """The checkpoint's reason (naming what to pass) when it has one; checkpoints that only say yes/no get a generic one.

    A :class:`~evalkit.checkpoints.Checkpoint`'s keeps its parameter marks, so the CLI names its flags."""
    if isinstance(checkpoint, Checkpoint):
        return checkpoint.unsupported_reason(need, marked=True)
    if hasattr(checkpoint, "unsupported_reason"):
        return checkpoint.unsupported_reason(need)
    return None if checkpoint.supports(need) else "use a generation-only task or another checkpoint kind"


def evaluate_checkpoint(
    checkpoint: Checkpoint,
    tasks: list[TaskConfig],
    store: ResultStore,
    *,
    evaluators: list | None = None,
    rerun: bool = False,
    ranks: Ranks | None = None,
) -> EvalResult:
    """Results of ``checkpoint`` on ``tasks``, from the store where possible.

    Under a multi-process launch each rank evaluates its share of every pending task (evalkit.parallel).
    """
    ranks = ranks or current_ranks()
    _refuse_parallel_rerun(ranks, rerun)
    evaluators = evaluators if evaluators is not None else build_evaluators(tasks)
    versions = library_versions()
    info = checkpoint.info
    results: dict[str, TaskResult] = {}
    keys = run_keys(checkpoint, tasks, evaluators, versions)
    for task, key in zip(tasks, keys):
        if rerun:
            store.discard_run(key)  # rerun: no stored result and no stored samples to resume from
        results[task.name] = _from_store(store.completed_result(key))
    pending = [(t, e, k) for t, e, k in zip(tasks, evaluators, keys) if results[t.name] is None]
    for task, evaluator, _ in pending:  # data problems surface before a (possibly huge) model loads
        check_capabilities(checkpoint, task, evaluator)
        evaluator.sample_ids()
    for task, evaluator, key in pending:
        results[task.name] = _run_task(checkpoint, task, evaluator, store, key, ranks)
    for task in tasks:  # not part of the run key: clustering changes the statistics, not the outputs
        if task.cluster_field:
            results[task.name].settings["cluster_field"] = task.cluster_field
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return EvalResult(checkpoint=info, versions=versions, tasks=results, created=now)


def run_keys(
    checkpoint: Checkpoint, tasks: list[TaskConfig], evaluators: list, versions: dict[str, str] | None = None
) -> list[RunKey]:
    """The store's key of each task's run on ``checkpoint`` (what makes two runs interchangeable)."""
    versions = versions or library_versions()
    info = checkpoint.info
    settings = settings_hash(info.settings)  # --dtype, --max-length, ...: same files, other outputs
    return [
        RunKey(
            info.fingerprint,
            task.name,
            evaluator.config_hash(),
            evaluator.name,
            evaluator.version,
            versions["lm-eval"],
            settings,
        )
        for task, evaluator in zip(tasks, evaluators)
    ]


def stored_task_names(
    checkpoint: Checkpoint, tasks: list[TaskConfig], evaluators: list, store: ResultStore
) -> list[str]:
    """The tasks whose complete results ``store`` already holds for ``checkpoint`` (no model loads for them)."""
    keys = run_keys(checkpoint, tasks, evaluators)
    return [task.name for task, key in zip(tasks, keys) if store.completed_result(key) is not None]


def evaluation_line(
    checkpoint: Checkpoint,
    tasks: list[TaskConfig],
    store: ResultStore,
    *,
    evaluators: list | None = None,
    rerun: bool = False,
) -> str:
    """ "evaluating LABEL (kind: where)", or "LABEL (...): answered from the store" when no model will run."""
    from .checkpoints import format_settings

    settings = format_settings(getattr(checkpoint, "settings", None) or {})  # e.g. a server's endpoint
    what = f"{checkpoint.label} ({checkpoint.kind}: {checkpoint.display})" + (f" [{settings}]" if settings else "")
    evaluators = evaluators if evaluators is not None else build_evaluators(tasks)
    stored = [] if rerun else stored_task_names(checkpoint, tasks, evaluators, store)
    if len(stored) == len(tasks):
        return f"{what}: answered from the store ({arg('rerun', True)} evaluates again)"
    if stored:
        return f"evaluating {what}; {', '.join(stored)} answered from the store"
    return f"evaluating {what}"


def _from_store(result: TaskResult | None) -> TaskResult | None:
    """A stored result says it was answered from the store; the run that evaluated it keeps its timing."""
    if result is not None:
        result.timing = {"answered_from_store": True, "evaluated_run": dict(result.timing)}
    return result


def _refuse_parallel_rerun(ranks: Ranks, rerun: bool) -> None:
    # Ranks start at different moments: one rank's discard could delete samples another already stored.
    if rerun and ranks.parallel:
        raise UsageError(
            "rerun cannot be used with several processes (WORLD_SIZE > 1): one rank could discard "
            "samples another already stored; use a new store file instead.",
            param="rerun",
        )


def _request_stats(lm) -> dict[str, float]:
    """Server request totals so far (the LM is shared by tasks, so callers take differences)."""
    stats = getattr(lm, "request_stats", None)
    if stats is None:
        return {}
    return {
        "requests": stats.requests,
        "retries": stats.retries,
        "request_seconds": stats.seconds,
        "next_token_requests": stats.next_token_requests,
        "exact_token_requests": stats.exact_token_requests,
        "rescored_per_option": stats.rescored_per_option,
    }


def _scoring_setting(lm, evaluator, timing: dict) -> str | None:
    """How a server scored the task's choices: ``shared_prefix`` or ``per_option`` (None: not a server's
    log-likelihoods). Shown in the result's settings, not in the run key: both give the same numbers."""
    if not hasattr(lm, "uses_shared_prefix") or "loglikelihood" not in getattr(evaluator, "needs", ()):
        return None
    return "shared_prefix" if timing.get("next_token_requests") else "per_option"


def _run_task(
    checkpoint: Checkpoint, task: TaskConfig, evaluator, store: ResultStore, key: RunKey, ranks: Ranks
) -> TaskResult:
    store.start_run(key, checkpoint.info.to_dict())
    done = store.load_samples(key)
    started = time.perf_counter()
    lm = checkpoint.lm  # loaded once per checkpoint, shared by every task
    load_seconds = time.perf_counter() - started
    requests_before = _request_stats(lm)
    if hasattr(lm, "check_coverage"):  # a predictions file: every sample's output must be there
        lm.check_coverage(task.name, [s for s in evaluator.sample_ids() if s not in done])
    try:
        records = _evaluate_records(evaluator, lm, done, store, key, ranks)
        if records is None:  # another rank than 0: rank 0 aggregates and finishes the run
            return wait_until(lambda: store.completed_result(key), lambda: f"rank 0 to finish task {task.name}")
        # One canonical order whether the records came fresh, resumed or from several ranks: bootstrap
        # CIs depend on it, and results.json must be byte-identical for the same inputs.
        records = in_sample_order(list(records))
        result = evaluator.aggregate(records)
        result.samples = in_sample_order(result.samples or records)
    except EvalkitError:
        raise
    except Exception as exc:  # the model or a library failed mid-run: samples so far are kept
        raise EvaluationError(
            f"task {task.name!r} on checkpoint {checkpoint.label!r} failed: {type(exc).__name__}: {exc} "
            f"(finished samples are stored; evaluate again to resume)."
        ) from exc
    result.timing = {
        "answered_from_store": False,
        "seconds": round(time.perf_counter() - started, 3),
        "model_load_seconds": round(load_seconds, 3),
        "resumed_samples": len(done),
    }
    result.timing.update({k: round(v - requests_before[k], 3) for k, v in _request_stats(lm).items()})
    scoring = _scoring_setting(lm, evaluator, result.timing)
    if scoring:
        result.settings["loglikelihood_scoring"] = scoring
    store.finish_run(key, result)
    return result


def _evaluate_records(evaluator, lm, done: dict, store: ResultStore, key: RunKey, ranks: Ranks) -> list | None:
    """All records of the task (rank 0 or a single process), or None on the other ranks."""
    save = lambda batch: store.add_samples(key, batch)  # noqa: E731
    if not ranks.parallel:
        return evaluator.run(lm, done=done, save=save)
    ids = evaluator.sample_ids()
    owned = ranks.owned(ids)
    evaluator.run(lm, done=ShardView(done, owned), save=save)
    note(
        f"rank {ranks.rank}/{ranks.world_size}: evaluated {len(owned - done.keys())} of {len(ids)} samples of "
        f"task {key.task} ({len(owned & done.keys())} of its share were stored already)"
    )
    if not ranks.main:
        return None
    stored = wait_until(
        lambda: _all_stored(store, key, ids),
        lambda: f"{store.count_samples(key)}/{len(ids)} samples of task {key.task} stored",
    )
    return [stored[sample_id] for sample_id in ids]


def _all_stored(store: ResultStore, key: RunKey, ids: list[str]) -> dict | None:
    if store.count_samples(key) < len(ids):  # cheap check first: loading parses every record
        return None
    stored = store.load_samples(key)
    return stored if all(sample_id in stored for sample_id in ids) else None
