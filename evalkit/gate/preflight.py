"""Check a policy against the tasks of a run *before* anything is evaluated.

``evalkit compare --policy`` used to evaluate every checkpoint and only then find that a gate named a
task or metric the run does not produce. Here each gate's ``TASK.METRIC`` is checked against the
``--tasks`` and against the metrics the task's evaluator declares (for an lm-eval task: the metrics
of its lm-eval configuration), so a typo costs a second, not an evaluation.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from ..errors import UsageError, did_you_mean

__all__ = ["check_policy_fits_tasks", "reported_metric_names"]


def check_policy_fits_tasks(policy: Any, task_configs: list[Any]) -> None:
    """Raise :class:`UsageError` naming the gate when its task is not run or its metric is not reported.

    Breakdown gates (``TASK.KIND/KEY/METRIC``) are checked for the task only: their keys (subjects,
    classes) exist only once data has been read.
    """
    by_name = {config.name: config for config in task_configs}
    for gate in policy.gates:
        task, _, metric = gate.metric.partition(".")
        where = f"{policy.source}: gate {gate.index} ({gate.metric})"
        if task not in by_name:
            raise UsageError(
                f"{where}: task {task!r} is not among the tasks ({', '.join(by_name)}); the policy can "
                f"only gate tasks that are evaluated.{did_you_mean(task, list(by_name))}"
            )
        if "/" in metric:
            continue
        names = reported_metric_names(by_name[task])
        if names is not None and not any(fnmatchcase(metric, pattern) for pattern in names):
            raise UsageError(
                f"{where}: task {task!r} does not report a metric {metric!r}."
                f"{did_you_mean(metric, names)} Fix the policy's metric name."
            )


def reported_metric_names(config: Any) -> set[str] | None:
    """Top-level metric names (or ``fnmatch`` patterns) a task will report; None when not knowable up front."""
    from ..evaluators.base import get_evaluator

    cls = get_evaluator(config.evaluator)
    if config.evaluator == "lm_eval":
        return _lm_eval_names(cls(config))
    declared = getattr(cls, "metric_specs", None)
    if not declared:
        return None  # a plug-in that declares nothing: the comparison will tell
    return {name for name in declared if "/" not in name}


def _lm_eval_names(evaluator: Any) -> set[str]:
    """The flat score names of the lm-eval task's configuration (``acc``, ``prompt_level_strict_acc`` ...).

    Loads the lm-eval task (its configuration, not a model): the same load evaluation starts with.
    """
    loaded = evaluator._load()  # noqa: SLF001 - the evaluator's own view of lm-eval's metric names
    names = set(loaded.all_score_names().values())
    if evaluator.kind.name == "mmlu_letter":  # evalkit adds the generative answer's parse failures
        names.add("parse_failure_rate")
    return names
