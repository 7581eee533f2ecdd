"""The Python API: :func:`evaluate` a model, :func:`compare` results, gate the comparison.

The command line is a thin layer over these functions; ``docs/python-api.md`` walks through them::

    import evalkit

    base = evalkit.evaluate("models/base", ["voc_sample", "mmlu"])
    tuned = evalkit.evaluate(model, ["voc_sample", "mmlu"], tokenizer=tokenizer, label="tuned")
    comparison = evalkit.compare(base, tuned)
    verdict = comparison.gate("policy.yaml")
    comparison.write("reports/tuned")
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Iterator

from .errors import ParameterTypeError, UsageError, did_you_mean
from .records import EvalResult

if TYPE_CHECKING:
    from .checkpoints import LoadOptions
    from .comparison import Comparison

__all__ = [
    "evaluate",
    "compare",
    "as_checkpoint",
    "load_options",
    "resolve",
    "with_limit",
    "open_store",
    "DEFAULT_SAMPLE_SEED",
]

#: The seed of the samples ``evaluate(..., limit=N)`` and ``EvalkitCallback(limit=N)`` draw when none is given.
DEFAULT_SAMPLE_SEED = 0


def load_options(**options: Any) -> LoadOptions:
    """:class:`~evalkit.checkpoints.LoadOptions` from keyword arguments, refusing unknown names.

    ``model_args`` may be a mapping or a ``"KEY=VALUE,KEY=VALUE"`` string.
    """
    from ._pairs import parse_pairs, split_commas
    from .checkpoints import LoadOptions

    allowed = [f.name for f in dataclasses.fields(LoadOptions)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ParameterTypeError(f"unknown option {unknown[0]!r}.{did_you_mean(unknown[0], allowed)}", param=unknown[0])
    if "model_args" in options and not isinstance(options["model_args"], (str, Mapping)):
        raise ParameterTypeError(
            f"model_args must be a mapping or 'KEY=VALUE,...', got {type(options['model_args']).__name__}.",
            param="model_args",
        )
    if isinstance(options.get("model_args"), str):
        options["model_args"] = parse_pairs(split_commas(options["model_args"]), param="model_args")
    return LoadOptions(**options)


def resolve(tasks: Any, overrides: Any = None) -> list:
    """Task configs from names, task-file paths or :class:`~evalkit.taskconfig.TaskConfig` objects.

    ``tasks`` may be one of those, a list of them or a comma-separated string. ``overrides`` is
    ``{"mmlu": {"num_fewshot": 5}}`` or a list of ``"TASK.KEY=VALUE"`` strings; overridden configs are
    copies, the caller's objects are left as they were.
    """
    from .taskconfig import TaskConfig, parse_overrides, resolve_tasks

    one = (str, os.PathLike, TaskConfig)
    if isinstance(tasks, one):
        tasks = [tasks]
    if not isinstance(tasks, (list, tuple)) or not tasks or not all(isinstance(t, one) for t in tasks):
        raise ParameterTypeError(
            f"tasks must be a task name, a task file path, a TaskConfig or a non-empty list of "
            f"them, got {type(tasks).__name__} {tasks!r:.60}.",
            param="tasks",
        )
    if overrides is not None and not isinstance(overrides, (str, Mapping, list, tuple)):
        raise ParameterTypeError(
            f"overrides must be a mapping or a list of 'TASK.KEY=VALUE' strings, got {type(overrides).__name__}.",
            param="overrides",
        )
    items: list[TaskConfig | str] | str = [t if isinstance(t, TaskConfig) else str(t) for t in tasks]
    if len(items) == 1 and isinstance(items[0], str) and "," in items[0]:
        items = items[0]
    if isinstance(overrides, str):  # one "TASK.KEY=VALUE"
        overrides = [overrides]
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = parse_overrides(list(overrides))
    return resolve_tasks(items, dict(overrides or {}))


def with_limit(task_configs: list, limit: int | None, sample_seed: int | None = DEFAULT_SAMPLE_SEED) -> list:
    """Copies of ``task_configs`` that evaluate ``limit`` samples of each task (of each subtask of an lm-eval
    group such as MMLU): drawn with ``sample_seed`` (the same ones at every call, in every process), or the
    first ``limit`` when ``sample_seed`` is None. ``limit=None`` leaves the configs as they are.
    """
    from . import _validate

    _validate.seed(sample_seed, param="sample_seed", optional=True)  # wrong even when unused: say so now
    if limit is None:
        return task_configs
    _validate.integer(limit, param="limit", minimum=1, what="a positive integer (samples per task)")
    return [
        dataclasses.replace(t, options={**t.options, "limit": limit, "sample_seed": sample_seed}) for t in task_configs
    ]


def as_checkpoint(
    model: Any,
    *,
    tokenizer: Any = None,
    label: str | None = None,
    note: str | None = None,
    fingerprint: str | None = None,
    options: Any = None,
    index: int = 0,
) -> Any:
    """A checkpoint object for ``model``: a spec string or path, a model object, or a checkpoint already.

    An unlabelled Trainer save folder ``RUN/checkpoint-STEP`` is labelled ``RUN.stepSTEP``, so the
    checkpoints of several runs keep apart in one comparison.
    """
    from .checkpoints import Checkpoint, LoadOptions
    from .checkpoints.memory import InMemoryCheckpoint

    from . import _validate

    options = options or LoadOptions()
    if label is not None:
        _validate.label(label, param="label")
    if isinstance(model, (Checkpoint, InMemoryCheckpoint)):
        return model
    if isinstance(model, (str, os.PathLike)):
        from .checkpoints.spec import split_spec_label, trainer_position

        checkpoint = Checkpoint.from_string(os.fspath(model), options, index=index)
        position = trainer_position(checkpoint.spec)
        if label is None and position and split_spec_label(checkpoint.spec.raw)[0] is None:
            label = f"{position[0]}.step{position[1]}"
        if label is not None or note is not None:
            checkpoint.spec = dataclasses.replace(
                checkpoint.spec,
                label=label or checkpoint.spec.label,
                note=note if note is not None else checkpoint.spec.note,
            )
        if fingerprint is not None:
            raise TypeError(
                "fingerprint= applies to in-memory models; a checkpoint spec is fingerprinted from its files."
            )
        return checkpoint
    return InMemoryCheckpoint(
        model, tokenizer=tokenizer, label=label, note=note, options=options, fingerprint=fingerprint
    )


@contextmanager
def open_store(store: Any) -> Iterator[Any]:
    """A :class:`~evalkit.store.ResultStore` for ``store``: None (the default store), a path, a
    ``postgresql://`` URL, or a store (left open for its owner)."""
    from .store import ResultStore

    if isinstance(store, ResultStore):
        yield store
        return
    if store is not None:  # an int or a list would become a file name ("123") in the working directory
        from . import _validate

        _validate.path(store, param="store")
    with ResultStore(store) as opened:
        yield opened


def evaluate(
    model: Any,
    tasks: Any,
    *,
    tokenizer: Any = None,
    label: str | None = None,
    store: Any = None,
    rerun: bool = False,
    overrides: Any = None,
    limit: int | None = None,
    sample_seed: int | None = DEFAULT_SAMPLE_SEED,
    note: str | None = None,
    fingerprint: str | None = None,
    ranks: Any = None,
    verbose: bool = False,
    **options: Any,
) -> EvalResult:
    """Evaluate ``model`` on ``tasks``; results come from the store where it already has them.

    Parameters
    ----------
    model : str, path, transformers model, PEFT model or lm-eval ``LM``
        A checkpoint spec as on the command line (model or adapter folder, weights file,
        ``http://HOST/v1#MODEL``, predictions ``.jsonl``), or a model object in this process. An
        object is evaluated as it is (in eval mode, restored afterwards) and never saved; it is
        fingerprinted by hashing its weights, config and tokenizer.
    tasks : str, path, TaskConfig or a list of them
        Shipped task names (``"mmlu"``), task YAML files, lm-eval task names or task configs.
    tokenizer : transformers tokenizer, optional
        Needed for a transformers or PEFT model object.
    label : str, optional
        The checkpoint's name in results and reports.
    store : str, path or ResultStore, optional
        Where per-sample records are kept: a SQLite file path, a ``postgresql://USER@HOST:PORT/DB`` URL
        (needs ``evalkit[postgres]``) or an open store (default: ``$EVALKIT_STORE``, else a SQLite file in
        the user cache). See docs/store.md.
    rerun : bool
        Evaluate again even if the store has the results.
    overrides : mapping or list of str, optional
        Task option overrides, ``{"mmlu": {"num_fewshot": 5}}`` or ``["mmlu.num_fewshot=5"]``.
    limit : int, optional
        Evaluate only this many samples of each task (of each subtask of a group such as MMLU): a
        quick look, or the same small subset at every training step.
    sample_seed : int or None, default 0
        With ``limit``: the seed the samples are drawn with, so two calls (two checkpoints, two
        steps) evaluate the same samples and pair in :func:`compare`; None takes the first ``limit``.
        On the command line: ``--limit N --sample-seed S``. Tasks also accept them as options
        (``overrides={"mmlu": {"limit": 20, "sample_seed": 0}}``), where a ``limit`` without a seed
        keeps lm-eval's meaning: the first ``limit`` samples.
    note : str, optional
        Shown beside the checkpoint in reports.
    fingerprint : str, optional
        The store key of a model object that cannot be hashed (an lm-eval ``LM`` without weights).
    ranks : evalkit.parallel.Ranks, optional
        This process's place in a multi-process launch (default: read from torchrun's / accelerate's
        environment variables, and each process evaluates its share of the samples). ``Ranks()``
        evaluates everything in this process alone, e.g. on the main process of a training job while
        the others wait (what ``EvalkitCallback`` does).
    verbose : bool, default False
        Let transformers, lm-eval, datasets and their progress bars speak (warnings such as "Token
        indices sequence length is longer than ...", weight-loading bars, lm-eval's hints). By default
        they are silenced while evaluating; errors still raise.
    **options
        Load options, as the command line's flags: ``batch_size``, ``device``, ``dtype``,
        ``max_length``, ``chat_template``, ``model_args``, ``base``, ``config``, ...

    Returns
    -------
    EvalResult
    """
    from . import _validate
    from .checkpoints.memory import InMemoryCheckpoint, evaluation_mode
    from .progress import quiet_third_party
    from .run import build_evaluators, evaluate_checkpoint

    _validate.flag(rerun, param="rerun")
    _validate.text(note, param="note")
    task_configs = with_limit(resolve(tasks, overrides), limit, sample_seed)
    checkpoint = as_checkpoint(
        model, tokenizer=tokenizer, label=label, note=note, fingerprint=fingerprint, options=load_options(**options)
    )
    with quiet_third_party(verbose):
        evaluators = build_evaluators(task_configs)  # bad task options fail before the store file is created
    in_memory = isinstance(checkpoint, InMemoryCheckpoint) and not checkpoint.is_lm
    with (
        open_store(store) as opened,
        evaluation_mode(checkpoint.model) if in_memory else nullcontext(),
        quiet_third_party(verbose),
    ):
        return evaluate_checkpoint(checkpoint, task_configs, opened, evaluators=evaluators, rerun=rerun, ranks=ranks)


def _as_results(items: Iterable[Any]) -> tuple[list[EvalResult], list[EvalResult]]:
    """(all results, the ones given as objects): paths are read, lists flattened."""
    from ._compare import load_results_files

    results: list[EvalResult] = []
    given: list[EvalResult] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            inner, inner_given = _as_results(item)
            results += inner
            given += inner_given
        elif isinstance(item, EvalResult):
            results.append(item)
            given.append(item)
        elif isinstance(item, Mapping):
            results.append(EvalResult.from_dict(dict(item)))
            given.append(results[-1])
        elif isinstance(item, (str, os.PathLike)):
            results += load_results_files([os.fspath(item)])
        else:
            raise UsageError(
                f"cannot compare a {type(item).__name__}: give EvalResult objects, their dicts, or "
                f"results.json / comparison.json paths.",
                param="results",
            )
    return results, given


def compare(
    *results: Any, baseline: str | None = None, notes: Mapping[str, str] | None = None, **settings: Any
) -> Comparison:
    """Compare checkpoints' results against a baseline: paired deltas, intervals, tests, breakdowns, flips.

    Parameters
    ----------
    *results : EvalResult, dict, path, or lists of them
        One per checkpoint, in display order (paths are ``results.json`` or ``comparison.json``
        files, ``LABEL=path`` relabels one).
    baseline : str, optional
        Label of the reference checkpoint (default: the first).
    notes : mapping of label to text, optional
        Shown beside each checkpoint in the report.
    **settings
        ``n_resamples``, ``random_state``, ``max_flips`` (see ``build_comparison``).

    Returns
    -------
    Comparison
    """
    from . import _validate
    from ._compare import build_comparison
    from .comparison import Comparison

    _check_compare_arguments(baseline, notes, settings)
    parsed, given = _as_results(results)
    _validate.enough_checkpoints(
        len(parsed), f"compare needs at least two checkpoints' results, got {len(parsed)}.", param="results"
    )
    data = build_comparison(parsed, baseline=baseline, notes=notes, **settings)
    return Comparison(data, results=given)


#: ``compare(**settings)``: each setting's check (the statistics' own ValueErrors name no API parameter).
_COMPARE_SETTINGS: dict[str, dict[str, Any]] = {
    "n_resamples": dict(minimum=1, what="an integer"),
    "max_flips": dict(minimum=0, what="an integer"),
}


def _check_compare_arguments(baseline: Any, notes: Any, settings: dict[str, Any]) -> None:
    from . import _validate

    _validate.text(baseline, param="baseline")
    _validate.text_mapping(notes, param="notes")
    for name, value in settings.items():
        if name == "random_state":
            _validate.seed(value, param=name)
        elif name in _COMPARE_SETTINGS:
            _validate.integer(value, param=name, **_COMPARE_SETTINGS[name])
        else:
            known = ["random_state", *_COMPARE_SETTINGS]
            raise ParameterTypeError(f"unknown setting {name!r}.{did_you_mean(name, known)}", param=name)
