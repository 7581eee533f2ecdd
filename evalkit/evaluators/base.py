"""The evaluator protocol and the one registry of evaluators.

An evaluator turns a task configuration into per-sample records (by asking an lm-eval ``LM`` object)
and turns per-sample records into corpus metrics. The two steps are separate on purpose: per-sample
records are what the store keeps and what comparisons pair; corpus metrics (macro F1, lm-eval's
weighted group means) are not means of per-sample values and are recomputed from the records.

Built-in evaluators register with :func:`register_evaluator`; third-party packages expose theirs
through the ``evalkit.evaluators`` entry-point group (``name = "pkg.module:EvaluatorClass"``).

Every evaluator also *declares* its metrics (:class:`MetricSpec`): which direction is better,
whether a metric is the mean of a per-sample score (``level="sample"``) or a corpus statistic
(``level="corpus"``), what is paired across checkpoints and what clusters the samples. The
comparison picks its tests and intervals from these declarations (``docs/statistics.md``); it never
infers them from the numbers. A declaration lives on the class (``metric_specs``, names or
:mod:`fnmatch` patterns) and/or in the :class:`~evalkit.records.TaskResult` an evaluator returns
(``TaskResult.metric_specs``, for metrics known only at run time); :func:`metric_spec` answers
"what is metric M of this task result". Example of a third-party evaluator::

    from evalkit.evaluators import MetricSpec, register_evaluator

    @register_evaluator
    class ExactMatch:
        name = "my_exact_match"
        version = "1"
        needs = frozenset({"generate_until"})
        metric_specs = {
            # mean of SampleRecord.scores["exact"] (0/1 per sample, declared binary): Wilson CI, McNemar test
            "exact": MetricSpec(higher_is_better=True, level="sample", score="scores.exact", binary=True,
                                bounds=(0, 1)),
            # mean of a per-answer 0/1 list: each element is a unit, clustered by the sample
            "step_acc": MetricSpec(level="sample", score="scores.step_ok", unit="element", cluster="sample_id",
                                   binary=True, bounds=(0, 1)),
            # mean of a per-sample score that is not 0/1 (a similarity): t interval, paired t test
            "similarity": MetricSpec(level="sample", score="scores.similarity", bounds=(0, 1)),
            # a corpus statistic: jackknife CI and randomization test through resample_metrics()
            "macro_f1": MetricSpec(level="corpus"),
            # a breakdown metric ("KIND/METRIC"): per-class recall is the mean of `correct` per `group`
            "class/recall": MetricSpec(level="sample", score="correct", group_by="group", binary=True),
        }
        ...
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

# MetricSpec travels with stored results (TaskResult.metric_specs), so it lives beside them in records;
# it is re-exported here, where evaluators declare their metrics.
from ..registry import Registry
from ..records import BREAKDOWN_COUNT_FIELDS, LEVELS, UNITS, MetricSpec, SampleRecord, TaskResult, record_value

__all__ = [
    "Evaluator",
    "EVALUATORS",
    "register_evaluator",
    "get_evaluator",
    "evaluator_names",
    "SaveBatch",
    "MetricSpec",
    "LEVELS",
    "UNITS",
    "BREAKDOWN_COUNT_FIELDS",
    "metric_spec",
    "declared_specs",
    "record_value",
]

ENTRY_POINT_GROUP = "evalkit.evaluators"

#: Called by an evaluator with each finished batch of records; the store commits it atomically.
SaveBatch = Callable[[list["SampleRecord"]], None]


def declared_specs(evaluator: Any, names: Iterable[str]) -> dict[str, MetricSpec]:
    """The class-level declarations (``metric_specs``) of ``evaluator`` for ``names``.

    An exact key wins over a pattern; among patterns the first in declaration order wins. Names
    without a declaration are left out.

    Examples
    --------
    >>> class E:
    ...     metric_specs = {"acc": MetricSpec(), "*_f1": MetricSpec(level="corpus")}
    >>> sorted((k, v.level) for k, v in declared_specs(E, ["acc", "macro_f1", "loss"]).items())
    [('acc', 'sample'), ('macro_f1', 'corpus')]
    """
    table = getattr(evaluator, "metric_specs", None) or {}
    if not isinstance(table, Mapping):
        return {}
    found = {}
    for name in names:
        spec = table.get(name)
        if spec is None:
            spec = next((s for pattern, s in table.items() if fnmatch.fnmatchcase(name, pattern)), None)
        if spec is not None:
            found[name] = MetricSpec.from_dict(spec)
    return found


def metric_spec(task_result: "TaskResult", metric: str) -> MetricSpec | None:
    """What ``metric`` of ``task_result`` is: the spec stored with the result, else the class declaration.

    ``metric`` is a metric name (``"acc"``) or a breakdown metric ``"KIND/METRIC"`` (``"subject/acc"``).
    None when neither the result nor its evaluator (looked up in the registry) declares it.
    """
    stored = (task_result.metric_specs or {}).get(metric)
    cls = EVALUATORS.find(task_result.evaluator)
    declared = declared_specs(cls, [metric]).get(metric) if cls is not None else None
    spec = declared if stored is None else MetricSpec.from_dict(stored)
    if spec is None or spec.binary is not None:
        return spec
    # stored before declarations said "binary" (None: not stated): the class's declaration of the metric says it
    return dataclasses.replace(spec, binary=declared is not None and bool(declared.binary))


@runtime_checkable
class Evaluator(Protocol):
    """What every evaluator provides.

    ``__init__(config)`` receives a validated :class:`~evalkit.taskconfig.TaskConfig`; the
    evaluator reads its own options from ``config.options``.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    #: Metric declarations (see :class:`MetricSpec`); keys are metric names, ``"KIND/METRIC"`` for
    #: breakdown metrics, or fnmatch patterns. Metrics known only at run time go into
    #: ``TaskResult.metric_specs`` instead (the result's entry wins).
    metric_specs: ClassVar[Mapping[str, MetricSpec]]
    #: "loglikelihood" and/or "generate_until": lets a spec kind refuse a task up front
    #: (a predictions file cannot produce log-likelihoods).
    needs: ClassVar[frozenset[str]]

    def config_hash(self) -> str:
        """Hash of everything that changes the outcome: options, data content, prompt template."""

    def check_ready(self) -> None:
        """Raise :class:`~evalkit.errors.UsageError` if a prerequisite is missing. Runs before any model loads."""

    def sample_ids(self) -> list[str]:
        """The ids of the samples this task will evaluate, in a deterministic order."""

    def run(self, lm: Any, *, done: Mapping[str, "SampleRecord"], save: SaveBatch) -> list["SampleRecord"]:
        """Evaluate the samples not in ``done`` with ``lm``, calling ``save`` after each batch; return all records."""

    def aggregate(self, records: list["SampleRecord"]) -> "TaskResult":
        """Corpus metrics, breakdowns and CIs from the records (no model needed)."""

    # Optional hook, used by comparisons for the intervals and paired tests of corpus metrics (metrics
    # that are not a mean of one per-unit value, such as macro F1):
    #
    #     @classmethod
    #     def resample_metrics(cls, records: list[SampleRecord], names: list[str],
    #                          indices: numpy.ndarray) -> dict[str, numpy.ndarray]
    #
    # ``indices`` has shape (B, m) of positions into ``records`` (m need not equal len(records));
    # return, per metric name, the B metric values, each row scored as if its records were the whole
    # data set. The comparison passes leave-one-out rows (jackknife intervals) and, for approximate
    # randomization, rows into the two checkpoints' records concatenated (docs/statistics.md).


#: The evaluators: built-ins register when their modules are imported, plug-ins through entry points.
EVALUATORS: Registry[type] = Registry(
    "evaluator", entry_point_group=ENTRY_POINT_GROUP, builtins=("evalkit.general.evaluator", "evalkit.voc.evaluator")
)


def register_evaluator(cls: type) -> type:
    """Class decorator: add an evaluator under its ``name``."""
    return EVALUATORS.register(cls)


def evaluator_names() -> list[str]:
    return EVALUATORS.names()


def get_evaluator(name: str) -> type:
    """Return the evaluator class registered as ``name``; unknown names get a did-you-mean error."""
    return EVALUATORS.get(name)
