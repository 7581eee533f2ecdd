"""The commands' bodies over the Python API (:mod:`evalkit.api`): evaluate -> compare -> gate -> report.

Inputs are checked before anything slow starts (task files, specs, labels, policy file), so a typo
fails in a second, not after an hour of evaluation.
"""

from __future__ import annotations

from pathlib import Path

import click

from .._io import read_json_object
from .._validate import unique_labels
from ..errors import UsageError

__all__ = ["compare_pipeline", "report_pipeline", "gate_pipeline", "collect_results"]


def collect_results(specs: list[str], task_configs, store, load_options, *, rerun: bool = False,
                    prior: list | None = None, verbose: bool = False) -> list:
    """Evaluate every spec through the API (answered from the store when possible) after the prior results."""
    from .. import api
    from ..run import build_evaluators, evaluation_line

    checkpoints = [api.as_checkpoint(spec, options=load_options, index=i) for i, spec in enumerate(specs)]
    prior = list(prior or [])
    unique_labels([r.checkpoint.label for r in prior] + [c.label for c in checkpoints])
    evaluators = build_evaluators(task_configs)  # prerequisites checked once, before any model loads
    results = prior
    for checkpoint in checkpoints:
        click.echo(evaluation_line(checkpoint, task_configs, store, evaluators=evaluators, rerun=rerun), err=True)
        results.append(api.evaluate(checkpoint, task_configs, store=store, rerun=rerun, verbose=verbose))
    return results


def _check_compare_outputs(out: Path, specs: list[str], prior: list, policy: bool):
    """The output folder, checked before any model loads: writable, no output name taken by a folder."""
    from .._io import MANIFEST_NAME, OutputFolder
    from ..checkpoints.spec import parse_spec
    from ..comparison import results_file_name
    from ..gate import GATE_OUTPUTS
    from ..report import REPORT_FILES

    labels = [parse_spec(s, index=i).label for i, s in enumerate(specs)]  # --baseline-results are not rewritten
    names = [*REPORT_FILES, MANIFEST_NAME, *(GATE_OUTPUTS if policy else ())]
    return OutputFolder(out, option="--out").check(*names, *(results_file_name(label) for label in labels))


def compare_pipeline(*, specs: list[str], tasks: str, out: Path, baseline: str | None, baseline_results: list[str],
                     policy: str | None, notes: list[str], overrides: list[str], rerun: bool, load_options,
                     limit: int | None = None, sample_seed: int | None = 0,
                     store_path: str | None, sequential: bool = False, sequential_seed: int = 0,
                     sequential_chunk: int | None = None, verbose: bool = False, trackers: list[str] = ()) -> int:
    """``evalkit compare``: returns the exit code (0 pass, 1 a gate failed).

    ``sequential=True`` (needs ``policy``) evaluates gated tasks in seeded random chunks and stops each
    once its gates are decided by anytime-valid confidence sequences (:mod:`evalkit.sequential`).
    Other libraries' bars and warnings are silenced while evaluating unless ``verbose``; every input is
    checked before (so a usage error never waits for torch or transformers to import).
    ``trackers`` (``"mlflow"``, ``"wandb"``) also record the written comparison there.
    """
    from .. import api
    from .._pairs import parse_pairs
    from .._compare import load_results_files
    from ..gate import verdict_text
    from ..parallel import current_ranks
    from ..progress import quiet_third_party

    note_map = parse_pairs(notes, param="notes", form="LABEL=TEXT")
    task_configs = api.with_limit(api.resolve(tasks, overrides), limit, sample_seed)
    policy_obj = _load_policy(policy)
    if policy_obj is not None:  # a gate on a task or metric this run cannot produce fails now, not after evaluating
        from ..gate.preflight import check_policy_fits_tasks

        check_policy_fits_tasks(policy_obj, task_configs)
    _check_trackers(trackers)  # a missing extra fails now, not after evaluating
    prior = load_results_files(baseline_results)
    if len(specs) + len(prior) < 2:
        raise UsageError("compare needs at least two checkpoints (specs and/or --baseline-results files).")
    if sequential and policy_obj is None:
        raise UsageError("--sequential stops a task once its gates are decided, so it needs --policy FILE.")
    if current_ranks().main:  # before any model loads; under torchrun only rank 0 writes, so only it checks
        _check_compare_outputs(out, list(specs), prior, policy_obj is not None)
    if sequential:
        with quiet_third_party(verbose):
            comparison = _compare_sequential(specs, task_configs, policy_obj, baseline, baseline_results, store_path,
                                             sequential_seed, sequential_chunk, rerun, note_map, load_options)
        click.echo(verdict_text(comparison.verdict))
        _echo_written(comparison.write(out))
        _log_to_trackers(comparison, trackers)
        return comparison.verdict.exit_code
    with api.open_store(store_path) as store, quiet_third_party(verbose):
        results = collect_results(list(specs), task_configs, store, load_options, rerun=rerun, prior=prior,
                                  verbose=verbose)
    if not current_ranks().main:  # under torchrun/accelerate only rank 0 compares, writes and gates
        return 0
    # Results read from --baseline-results files are compared but not written again (they are files already).
    comparison = api.compare(*baseline_results, *results[len(prior):], baseline=baseline, notes=note_map)
    if policy_obj is not None:
        click.echo(verdict_text(comparison.gate(policy_obj)))
    _echo_written(comparison.write(out))
    _log_to_trackers(comparison, trackers)
    return comparison.verdict.exit_code if comparison.verdict is not None else 0


def _compare_sequential(specs, task_configs, policy_obj, baseline, baseline_results, store_path, seed, chunk_size,
                        rerun, notes, load_options):
    """``--sequential``: one process drives every checkpoint chunk by chunk (no torchrun/accelerate ranks)."""
    from ..parallel import current_ranks
    from ..sequential import DEFAULT_CHUNK_SIZE, compare_sequential

    if current_ranks().parallel:
        raise UsageError("--sequential decides after every chunk in one process; run it without torchrun/accelerate.")
    return compare_sequential(*specs, tasks=task_configs, policy=policy_obj, baseline=baseline,
                              baseline_results=baseline_results, store=store_path, seed=seed,
                              chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size, rerun=rerun,
                              notes=notes, load_options=load_options)


def _load_policy(policy: str | None):
    if policy is None:
        return None
    from ..gate import load_policy

    return load_policy(Path(policy))


#: ``--log`` choices: the library module each needs and the tracker's name.
TRACKERS = {"mlflow": ("mlflow", "MLflow"), "wandb": ("wandb", "Weights & Biases")}


def _check_trackers(trackers) -> None:
    from ..exports.extras import require

    for name in trackers:
        require(TRACKERS[name][0], f"logging to {TRACKERS[name][1]}", param="log")


def _log_to_trackers(comparison, trackers) -> None:
    for name in trackers:
        run_id = comparison.log_to_mlflow() if name == "mlflow" else comparison.log_to_wandb()
        click.echo(f"logged to {TRACKERS[name][1]} run {run_id}")


def _echo_written(paths: list[Path]) -> None:
    for path in paths:
        click.echo(f"wrote {path}")


def report_pipeline(*, sources: list[str], out: Path, baseline: str | None, store_path: str | None = None) -> None:
    """``evalkit report``: from one comparison.json, results.json files, or checkpoint labels in the store."""
    from .. import api
    from ..comparison import Comparison
    from .._compare import load_results_files, split_label

    from .._io import MANIFEST_NAME, OutputFolder
    from ..report import REPORT_FILES

    OutputFolder(out, option="--out").check(*REPORT_FILES, MANIFEST_NAME)
    if len(sources) == 1 and Path(sources[0]).is_file():
        data = read_json_object(Path(sources[0]))
        if data.get("kind") == "evalkit.comparison":
            _echo_written(Comparison.load(Path(sources[0])).write_report(out))
            return
    results = []
    for item in sources:
        is_file = split_label(item)[1].is_file()
        results += load_results_files([item]) if is_file else [_result_from_store(item, store_path)]
    if len(results) < 2:
        raise UsageError("report needs a comparison.json, or at least two results.json files / stored checkpoint labels.")
    unique_labels([r.checkpoint.label for r in results])
    _echo_written(api.compare(*results, baseline=baseline).write_report(out))


def _result_from_store(label: str, store_path: str | None):
    """The newest complete run of every task stored for checkpoint ``label``."""
    from ..records import CheckpointInfo, EvalResult
    from ..run import library_versions
    from ..store import ResultStore

    with ResultStore(store_path) as store:
        runs = store.runs(label=label)
        if not runs:
            raise UsageError(f"{label!r} is neither a file nor a checkpoint label with results in the store {store.location}.")
        newest: dict[str, dict] = {}
        for run in runs:  # newest first
            newest.setdefault(run["task"], run)
        tasks = {task: store.result_by_run_key(run["run_key"]) for task, run in sorted(newest.items())}
        info = CheckpointInfo.from_dict(runs[0]["checkpoint"])  # runs stored before settings/run/step load too
    return EvalResult(checkpoint=info, versions=library_versions(), tasks=tasks)


def gate_pipeline(*, comparison: Path, policy: Path, out: Path | None) -> int:
    """``evalkit gate``: apply a policy to a comparison.json, write junit.xml and the verdict."""
    from ..gate import gate_main

    return gate_main(comparison, policy, out)
