"""The Python entry point of sequential gating: models in, a gated :class:`~evalkit.comparison.Comparison` out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import UsageError
from ._drive import DEFAULT_CHUNK_SIZE, collect_results_sequential

__all__ = ["compare_sequential"]


def compare_sequential(*models: Any, tasks: Any, policy: Any, baseline: str | None = None,
                       baseline_results: Sequence[str] = (), store: Any = None, seed: int = 0,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, rerun: bool = False, overrides: Any = None,
                       notes: Mapping[str, str] | None = None, load_options: Any = None, **options: Any):
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
    from .. import _validate, api
    from .._compare import load_results_files
    from .._validate import unique_labels
    from ..gate import as_policy
    from ..run import build_evaluators

    from ..gate.preflight import check_policy_fits_tasks

    _validate.seed(seed, param="seed")  # numpy's SeedSequence would refuse it mid-run
    _validate.integer(chunk_size, param="chunk_size", minimum=1, what="a positive integer (samples per look)")
    policy_obj = as_policy(policy)
    task_configs = api.resolve(tasks, overrides)
    check_policy_fits_tasks(policy_obj, task_configs)  # a gate on a task this run lacks fails now
    prior = load_results_files(list(baseline_results))
    if len(models) + len(prior) < 2:
        raise UsageError("compare needs at least two checkpoints (models and/or baseline_results files).")
    options_obj = load_options if load_options is not None else api.load_options(**options)
    checkpoints = [api.as_checkpoint(model, options=options_obj, index=i) for i, model in enumerate(models)]
    unique_labels([r.checkpoint.label for r in prior] + [c.label for c in checkpoints])
    evaluators = build_evaluators(task_configs)  # prerequisites checked before any model loads
    with api.open_store(store) as opened:
        results, summary = collect_results_sequential(checkpoints, task_configs, evaluators, opened, policy_obj,
                                                      baseline=baseline, prior=prior, seed=seed,
                                                      chunk_size=chunk_size, rerun=rerun)
    comparison = api.compare(*results, baseline=baseline, notes=notes)
    comparison.results = results[len(prior):]  # results files are compared, not written again
    _attach(comparison.data, summary)
    comparison.gate(policy_obj)
    return comparison


def _attach(data: dict[str, Any], summary: dict[str, Any]) -> None:
    """The sequential outcome into the comparison, with a warning for each task that used part of the data."""
    from .._compare import json_safe

    data["sequential"] = json_safe(summary)
    for name, outcome in summary["tasks"].items():
        if outcome["stopped_early"]:
            data["warnings"].append(
                f"task {name!r} stopped after {outcome['samples_used']} of {outcome['samples_total']} samples "
                "(--sequential): its metrics are over that uniformly random subset; its gates were decided by "
                "anytime-valid confidence sequences.")
