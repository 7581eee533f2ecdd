"""The commands' bodies over the Python API (:mod:`evalkit.api`): evaluate -> compare -> gate -> report.

Inputs are checked before anything slow starts (task files, specs, labels, policy file), so a typo
fails in a second, not after an hour of evaluation.
"""

from __future__ import annotations

from pathlib import Path

import click

from .._io import read_json_object
from .._validate import enough_checkpoints
from ..errors import UsageError

__all__ = ["compare_pipeline", "report_pipeline", "gate_pipeline"]


def _check_compare_outputs(out: Path, specs: list[str], policy: bool):
    """The output folder, checked before any model loads: writable, no output name taken by a folder."""
    from .._io import MANIFEST_NAME, OutputFolder
    from ..checkpoints.spec import parse_spec
    from ..comparison import results_file_name
    from ..gate import GATE_OUTPUTS
    from ..report import REPORT_FILES

    labels = [parse_spec(s, index=i).label for i, s in enumerate(specs)]  # --baseline-results are not rewritten
    names = [*REPORT_FILES, MANIFEST_NAME, *(GATE_OUTPUTS if policy else ())]
    return OutputFolder(out, option="--out").check(*names, *(results_file_name(label) for label in labels))


def compare_pipeline(
    *,
    specs: list[str],
    tasks: str,
    out: Path,
    baseline: str | None,
    baseline_results: list[str],
    policy: str | None,
    notes: list[str],
    overrides: list[str],
    rerun: bool,
    load_options,
    limit: int | None = None,
    sample_seed: int | None = 0,
    store_path: str | None,
    sequential: bool = False,
    sequential_seed: int = 0,
    sequential_chunk: int | None = None,
    verbose: bool = False,
    trackers: list[str] = (),
) -> int:
    """``evalkit compare``: returns the exit code (0 pass, 1 a gate failed).

    The one compare path (:mod:`evalkit.compare_run`) with the command line's outputs around it: every
    input is checked by its preparation step before anything slow starts (so a usage error never waits
    for torch or transformers to import), then the output folder and the trackers; ``sequential=True``
    is its sequential mode. ``trackers`` (``"mlflow"``, ``"wandb"``) also record the written comparison there.
    """
    from .. import compare_run
    from .._pairs import parse_pairs
    from ..gate import verdict_text
    from ..parallel import current_ranks
    from ..sequential import DEFAULT_CHUNK_SIZE

    note_map = parse_pairs(notes, param="notes", form="LABEL=TEXT")
    mode = compare_run.Sequential(sequential_seed, sequential_chunk or DEFAULT_CHUNK_SIZE) if sequential else None
    task_plan = compare_run.prepare_tasks(
        tasks, policy=_policy_path(policy), overrides=overrides, limit=limit, sample_seed=sample_seed
    )
    _check_trackers(trackers)  # a missing extra fails now, not after evaluating
    plan = compare_run.prepare(
        specs,
        task_plan,
        baseline_results=baseline_results,
        baseline=baseline,
        notes=note_map,
        load_options=load_options,
        sequential=mode,
    )
    if current_ranks().main:  # before any model loads; under torchrun only rank 0 writes, so only it checks
        _check_compare_outputs(out, list(specs), policy is not None)
    comparison = compare_run.run(plan, store_path, rerun=rerun, verbose=verbose)
    if comparison is None:  # under torchrun/accelerate only rank 0 compares, writes and gates
        return 0
    if comparison.verdict is not None:
        click.echo(verdict_text(comparison.verdict))
    _echo_written(comparison.write(out))
    _log_to_trackers(comparison, trackers)
    return comparison.verdict.exit_code if comparison.verdict is not None else 0


def _policy_path(policy: str | None) -> Path | None:
    return Path(policy) if policy is not None else None


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
    enough_checkpoints(
        len(results), "report needs a comparison.json, or at least two results.json files / stored checkpoint labels."
    )
    _echo_written(api.compare(*results, baseline=baseline).write_report(out))


def _result_from_store(label: str, store_path: str | None):
    """The newest complete run of every task stored for checkpoint ``label``."""
    from ..records import CheckpointInfo, EvalResult
    from ..run import library_versions
    from ..store import ResultStore

    with ResultStore(store_path) as store:
        runs = store.runs(label=label)
        if not runs:
            raise UsageError(
                f"{label!r} is neither a file nor a checkpoint label with results in the store {store.location}."
            )
        newest: dict[str, dict] = {}
        for run in runs:  # newest first
            newest.setdefault(run["task"], run)
        tasks = {task: store.result_by_run_key(run["run_key"]) for task, run in sorted(newest.items())}
        info = CheckpointInfo.from_dict(runs[0]["checkpoint"])  # runs stored before settings/run/step load too
    return EvalResult(checkpoint=info, versions=library_versions(), tasks=tasks)


def gate_pipeline(*, comparison: Path, policy: Path, out: Path | None) -> int:
    """``evalkit gate``: apply a policy to a comparison.json, write junit.xml and the verdict."""
    from ..gate import gate_files, verdict_text

    verdict, written = gate_files(comparison, policy, out)
    click.echo(verdict_text(verdict))
    _echo_written(written)
    return verdict.exit_code
