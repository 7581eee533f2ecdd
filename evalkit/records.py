"""Versioned result records: the store's cache entries and the comparison's input.

A :class:`TaskResult` is what one evaluator produced for one checkpoint on one task (corpus metrics,
breakdowns and the per-sample records). An :class:`EvalResult` gathers the task results of one
checkpoint with its identity and library versions; ``evalkit eval --out DIR`` writes it as
``DIR/results.json``. The same dictionaries are stored in the result store, so a report can be
rebuilt from either without a model.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = [
    "SCHEMA_VERSION",
    "SampleRecord",
    "TaskResult",
    "CheckpointInfo",
    "EvalResult",
    "sample_order_key",
    "in_sample_order",
    "MetricSpec",
    "record_value",
    "LEVELS",
    "UNITS",
    "BREAKDOWN_COUNT_FIELDS",
    "COLUMNS_VERSION",
    "SAMPLE_COLUMNS",
    "columns_frame",
    "check_field",
]

#: Bump when a field changes meaning; readers refuse newer major versions.
SCHEMA_VERSION = 1


LEVELS = ("sample", "corpus")
#: Counts stored beside breakdown metrics; they are not metrics and need no declaration.
BREAKDOWN_COUNT_FIELDS = frozenset({"n", "n_classes", "support"})
UNITS = ("sample", "element")
INTERVALS = (None, "jackknife", "bootstrap")
_FIELD_ROOTS = ("sample_id", "correct", "group", "target", "prediction")


@dataclass(frozen=True)
class MetricSpec:
    """What one metric is: the declaration the comparison's statistics follow.

    Parameters
    ----------
    higher_is_better : bool, default=True
        Direction of improvement (an invalid rate or a loss is ``False``).
    level : {"sample", "corpus"}, default="sample"
        ``"sample"``: the metric is the mean of the per-unit values of ``score`` over all units
        (accuracy, exact match, IFEval instruction-level accuracy): it gets Wilson / CLT intervals
        and paired tests on the per-unit values. ``"corpus"``: anything else (macro F1, a ratio of
        sums, a lm-eval group mean of subtask means): jackknife intervals and randomization tests
        through the evaluator's ``resample_metrics`` hook.
    score : str, optional
        Only for ``level="sample"``: the record field holding the per-unit values, as
        ``"correct"``, ``"scores.NAME"`` or ``"extra.NAME"`` (see :func:`record_value`). Default
        ``"scores.<metric name>"``.
    unit : {"sample", "element"}, default="sample"
        What is paired across checkpoints: the sample (by ``sample_id``) or, for list-valued scores
        (one value per instruction of an IFEval prompt), each element (by ``sample_id`` and position).
    cluster : str, optional
        Record field whose equal values make units dependent (``"sample_id"`` for element units:
        instructions of one prompt; ``"extra.passage_id"`` for questions on one passage). Intervals and
        tests then use cluster-robust standard errors. A task's ``cluster_field`` option overrides it.
    group_by : str, optional
        Only for breakdown metrics (declared as ``"KIND/METRIC"``): the record field whose value is
        the breakdown key of a record (``"group"``, ``"extra.category"``; for element units a list of
        keys, one per element, e.g. ``"extra.instruction_ids"``).
    binary : bool, default=False
        Only for ``level="sample"``: each unit's value is 0 or 1, so the metric is a proportion. It then
        gets a Wilson interval, McNemar's test and Newcombe's paired interval (independent units), where
        other sample metrics get t intervals and the paired t test. The choice follows this declaration,
        never the values: a metric whose values merely happen to be 0/1 is compared as a mean, and a
        declared-binary metric whose values are not 0/1 is compared as a mean with a warning. None
        (what :meth:`from_dict` reads from a stored sample spec written before the field existed):
        not stated; :func:`~evalkit.evaluators.metric_spec` takes it from the evaluator class's declaration.
    bounds : (float, float), optional
        The range the metric cannot leave (``(0.0, 1.0)`` for an F1 or a precision). Normal
        (jackknife) intervals of corpus metrics are cut to it, so an F1 near 1 never gets an upper
        bound above 1; None for unbounded metrics (a depth, a perplexity).
    interval : {"jackknife", "bootstrap"}, optional
        Only for corpus metrics: how their interval and the interval of their paired delta are
        resampled. Default (None) the jackknife; ``"bootstrap"`` (percentile intervals, the delta from
        the same resamples of both checkpoints) for statistics that are not smooth in the data, such as
        a coverage at a chosen confidence cut, where leave-one-out values barely move and the
        jackknife undercovers (83 % for a nominal 95 % in a seeded study, ``tests/test_voc_routing.py``).

    Examples
    --------
    >>> MetricSpec(level="corpus", higher_is_better=True).score_field("leaf_macro_f1") is None
    True
    >>> MetricSpec().score_field("acc")
    'scores.acc'
    >>> MetricSpec(level="corpus", bounds=[0, 1]).bounds
    (0.0, 1.0)
    >>> MetricSpec(level="middle")
    Traceback (most recent call last):
    ...
    ValueError: MetricSpec level must be one of ('sample', 'corpus'); got 'middle'.
    """

    higher_is_better: bool = True
    level: str = "sample"
    score: str | None = None
    unit: str = "sample"
    cluster: str | None = None
    group_by: str | None = None
    bounds: tuple[float, float] | None = None
    interval: str | None = None
    binary: bool | None = False

    def __post_init__(self) -> None:
        if not isinstance(self.higher_is_better, bool):
            raise ValueError(f"MetricSpec higher_is_better must be True or False; got {self.higher_is_better!r}.")
        if self.level not in LEVELS:
            raise ValueError(f"MetricSpec level must be one of {LEVELS}; got {self.level!r}.")
        if self.unit not in UNITS:
            raise ValueError(f"MetricSpec unit must be one of {UNITS}; got {self.unit!r}.")
        if self.level == "corpus" and (self.score is not None or self.unit != "sample"):
            raise ValueError("MetricSpec: a corpus metric has no per-unit 'score' and its unit is 'sample'.")
        for name in ("score", "cluster", "group_by"):
            value = getattr(self, name)
            if value is not None:
                check_field(value, f"MetricSpec {name}")
        if self.bounds is not None:
            object.__setattr__(self, "bounds", _check_bounds(self.bounds))
        if self.interval not in INTERVALS:
            raise ValueError(f"MetricSpec interval must be one of {INTERVALS}; got {self.interval!r}.")
        if self.binary is None and self.level != "sample":  # a corpus metric has no per-unit values: never 0/1
            object.__setattr__(self, "binary", False)
        if not isinstance(self.binary, bool) and self.binary is not None:
            raise ValueError(f"MetricSpec binary must be True or False; got {self.binary!r}.")
        if self.binary and self.level != "sample":
            raise ValueError(
                "MetricSpec: 'binary' says a sample metric's per-unit values are 0/1; a corpus metric has none."
            )
        if self.interval is not None and self.level != "corpus":
            raise ValueError(
                "MetricSpec: 'interval' chooses how a corpus metric is resampled; a sample metric has none."
            )

    def score_field(self, metric: str) -> str | None:
        """The record field of the per-unit values (None for a corpus metric)."""
        if self.level != "sample":
            return None
        return self.score or f"scores.{metric}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["interval"] is None:  # the default: declarations written before the field existed stay as they were
            del data["interval"]
        if (
            self.level != "sample" or self.binary is None
        ):  # only sample metrics say it; None: a stored spec predating it
            del data["binary"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MetricSpec":
        if isinstance(data, MetricSpec):
            return data
        known = {f.name for f in dataclasses.fields(cls)}
        # a spec stored before 'binary' existed did not state it: None (unknown), not the default False
        return cls(**{"binary": None, **{k: v for k, v in dict(data).items() if k in known}})


class _NotPlainJson(Exception):
    """A value :func:`_json_copy` leaves to ``dataclasses.asdict``."""


_ATOMS = frozenset({str, int, float, bool, type(None)})


def _json_copy(value: Any) -> Any:
    """A copy of a plain JSON value (exact types only: a numpy float or a tuple raises :class:`_NotPlainJson`)."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {_json_copy(k): _json_copy(v) for k, v in value.items()}
    if kind is list:
        return [_json_copy(v) for v in value]
    raise _NotPlainJson


def _check_bounds(bounds: Any) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"MetricSpec bounds must be two finite numbers, low < high; got {bounds!r}.")
    return low, high


def check_field(path: Any, what: str) -> str:
    if not isinstance(path, str) or not (
        path in _FIELD_ROOTS or (path.startswith(("scores.", "extra.")) and len(path.split(".", 1)[1]) > 0)
    ):
        raise ValueError(
            f"{what} must be one of {', '.join(_FIELD_ROOTS)} or 'scores.NAME' / 'extra.NAME'; got {path!r}."
        )
    return path


def record_value(record: "SampleRecord", path: str) -> Any:
    """The value of a record field named as in :class:`MetricSpec` (None when absent).

    Examples
    --------
    >>> from evalkit.records import SampleRecord
    >>> r = SampleRecord("q1", correct=True, scores={"acc": 1.0}, extra={"passage": "p7"})
    >>> record_value(r, "scores.acc"), record_value(r, "extra.passage"), record_value(r, "correct")
    (1.0, 'p7', True)
    """
    if path in _FIELD_ROOTS:
        return getattr(record, path)
    root, _, key = check_field(path, "record field").partition(".")
    return getattr(record, root).get(key)


@dataclass
class SampleRecord:
    """One evaluated sample, paired across checkpoints by ``sample_id``.

    ``correct`` is the sample's main right/wrong outcome (what McNemar pairs); ``scores`` holds every
    per-sample metric value the evaluator computed (e.g. lm-eval's ``acc`` or IFEval's
    ``prompt_level_strict_acc``); ``group`` is the breakdown key (MMLU subject, VOC true leaf);
    ``extra`` carries evaluator-specific detail (per-choice log-likelihoods, instruction ids, parse
    status) that must stay JSON-serialisable.
    """

    sample_id: str
    target: Any = None
    prediction: Any = None
    correct: bool | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    group: str | None = None
    input: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``, without its per-value ``deepcopy`` where every value is plain JSON
        (str, int, float, bool, None, dict, list: asdict's copy of those is the same), which records nearly
        always are; anything else takes ``asdict`` itself. Called twice per sample (store, results)."""
        try:
            return {
                "sample_id": self.sample_id,
                "target": _json_copy(self.target),
                "prediction": _json_copy(self.prediction),
                "correct": _json_copy(self.correct),
                "scores": _json_copy(self.scores),
                "group": _json_copy(self.group),
                "input": _json_copy(self.input),
                "extra": _json_copy(self.extra),
            }
        except _NotPlainJson:
            return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SampleRecord":
        return cls(
            **{
                f.name: data.get(f.name, f.default if f.default is not dataclasses.MISSING else {})
                for f in dataclasses.fields(cls)
            }
        )


_DIGITS = re.compile(r"([0-9]+)")


def sample_order_key(sample_id: object) -> tuple:
    """The canonical order of samples: sample ids in natural order (``2`` before ``10``).

    Every producer of records (a fresh run, a resumed run, a run answered from the store, a results
    file) lists samples in this one order, so the same inputs give byte-identical results.json and
    order-dependent computations (bootstrap resamples) see the same sequence.

    Examples
    --------
    >>> sorted(["q/10", "q/2", "q/1", "p/3", "q/02"], key=sample_order_key)
    ['p/3', 'q/1', 'q/02', 'q/2', 'q/10']
    """
    parts = _DIGITS.split(str(sample_id))
    # Text and digit runs alternate (text first), so each position compares like with like; digit runs
    # compare by value without int() (ids may hold more digits than Python converts).
    return tuple(
        part if i % 2 == 0 else (len(part.lstrip("0")), part.lstrip("0"), part) for i, part in enumerate(parts)
    )


def in_sample_order(records: "list[SampleRecord]") -> "list[SampleRecord]":
    """``records`` sorted by :func:`sample_order_key` of their ids."""
    return sorted(records, key=lambda r: sample_order_key(r.sample_id))


@dataclass
class TaskResult:
    """Corpus-level outcome of one task on one checkpoint.

    ``metrics`` maps flat metric names (``acc``, ``leaf_macro_f1``, ``prompt_level_strict_acc``) to
    values; ``stderr`` and ``ci`` are optional uncertainty per metric (``ci`` as ``[low, high]``);
    ``breakdowns`` maps a breakdown kind (``subject``, ``category``, ``instruction``, ``level``,
    ``class``, ``frequency``) to ``{key: {metric: value, "n": count}}``.
    ``axis`` is ``"domain"`` or ``"general"``; ``primary_metric`` names the headline metric.
    ``timing`` describes this run, not the result, and is volatile (excluded from "same inputs, same
    bytes"): ``{"answered_from_store": False, "seconds": ..., "model_load_seconds": ..., "resumed_samples": ...}``
    when evaluated now, ``{"answered_from_store": True, "evaluated_run": <that run's timing>}`` when the
    result came from the result store.
    ``metric_specs`` holds the evaluator's run-time metric declarations
    (:class:`~evalkit.evaluators.MetricSpec`, by metric name or ``"KIND/METRIC"``).
    ``same_as`` maps a metric that equals another by construction in this run to that one (its
    representative: ``{"hier_f1": "hier_precision"}``); the comparison tests the representative once and
    shows the alias as a note on its row. The evaluator declares it from what it knows (mode, taxonomy),
    never from the values.
    """

    task: str
    evaluator: str
    evaluator_version: str
    config_hash: str
    metrics: dict[str, float]
    n_samples: int
    axis: str = "general"
    primary_metric: str | None = None
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    breakdowns: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    samples: list[SampleRecord] = field(default_factory=list)
    metric_specs: dict[str, Any] = field(default_factory=dict)
    same_as: dict[str, str] = field(default_factory=dict)

    def to_dict(self, *, with_samples: bool = True) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, samples=[], metric_specs={}))
        data["metric_specs"] = {name: MetricSpec.from_dict(spec).to_dict() for name, spec in self.metric_specs.items()}
        data["samples"] = [s.to_dict() for s in in_sample_order(self.samples)] if with_samples else []
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskResult":
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["samples"] = [SampleRecord.from_dict(s) for s in data.get("samples", [])]
        if kwargs.get("metric_specs"):
            kwargs["metric_specs"] = {k: MetricSpec.from_dict(v) for k, v in kwargs["metric_specs"].items()}
        return cls(**kwargs)


@dataclass
class CheckpointInfo:
    """Who was evaluated: label, the spec as given, its kind and content fingerprint.

    ``settings`` holds the load options that can change the model's outputs (``--dtype``,
    ``--max-length``, ``--chat-template``, ``--model-args``; see ``LoadOptions.output_settings``),
    ``{}`` for the defaults: the fingerprint covers the files, not how they were loaded.
    ``run`` and ``step`` place a checkpoint in a training run (a Trainer's ``run/checkpoint-500``
    folder, or the Trainer callback); None otherwise. Trajectory reports order checkpoints by them.
    """

    label: str
    spec: str
    kind: str
    fingerprint: str
    note: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    run: str | None = None
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckpointInfo":
        """Read ``to_dict`` output; files written before ``settings`` existed (or by a newer evalkit
        with extra keys) still load."""
        if not isinstance(data, dict):
            raise TypeError(f"checkpoint must be an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["settings"] = kwargs.get("settings") or {}
        if not isinstance(kwargs["settings"], dict):
            raise TypeError(f"checkpoint settings must be an object, got {type(kwargs['settings']).__name__}")
        return cls(**kwargs)


@dataclass
class EvalResult:
    """Everything ``evalkit eval`` learned about one checkpoint (``results.json``)."""

    checkpoint: CheckpointInfo
    versions: dict[str, str]
    tasks: dict[str, TaskResult]
    created: str = ""
    schema_version: int = SCHEMA_VERSION

    def __repr__(self) -> str:
        tasks = ", ".join(f"{name} n={task.n_samples}" for name, task in self.tasks.items()) or "no tasks"
        return f"<EvalResult {self.checkpoint.label} ({self.checkpoint.kind}): {tasks}>"

    def _repr_html_(self) -> str:
        """Jupyter's view: the checkpoint and each task's metrics with their intervals."""
        from .report.notebook import result_html

        return result_html(self)

    def to_pandas(self) -> Any:
        """One row per sample of every task: prediction, correctness, confidence where present, breakdown keys.

        Columns (``frame.attrs["evalkit_columns_version"]``): :data:`SAMPLE_COLUMNS`, then ``score.NAME``
        per per-sample score and ``breakdown.KIND`` per breakdown whose stored declaration names its
        record field (``group_by``); see ``docs/integrations.md``.
        """
        return _samples_frame(self)

    def to_dict(self, *, with_samples: bool = True) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created": self.created,
            "checkpoint": self.checkpoint.to_dict(),
            "versions": dict(self.versions),
            "tasks": {name: t.to_dict(with_samples=with_samples) for name, t in self.tasks.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "results") -> "EvalResult":
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise UsageError(
                f"{source}: schema_version {version!r} is not one this evalkit reads "
                f"(<= {SCHEMA_VERSION}); upgrade evalkit or regenerate the file."
            )
        from ._schema import RESULTS, validate

        # Per-sample detail and timing stay as evalkit wrote them; the rest reaches comparison.json, where
        # NaN has no place.
        validate(
            data,
            RESULTS,
            source=source,
            hint="; regenerate it with `evalkit eval --out`",
            finite_except=("samples", "timing"),
        )
        for name, task in data["tasks"].items():  # samples are paired by id: a repeated id would pair twice
            ids = [s["sample_id"] for s in task.get("samples") or []]
            if len(ids) != len(set(ids)):
                repeated = sorted({i for i in ids if ids.count(i) > 1}, key=sample_order_key)
                raise UsageError(
                    f"{source}: tasks.{name}.samples: sample id(s) {', '.join(map(repr, repeated[:5]))} "
                    f"appear more than once; regenerate it with `evalkit eval --out`."
                )
        try:
            return cls(
                checkpoint=CheckpointInfo.from_dict(data["checkpoint"]),
                versions=data.get("versions", {}),
                tasks={k: TaskResult.from_dict(v) for k, v in data["tasks"].items()},
                created=data.get("created", ""),
                schema_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # e.g. a metric declaration MetricSpec refuses
            raise UsageError(
                f"{source}: not an evalkit results file ({exc}); regenerate it with `evalkit eval --out`."
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> "EvalResult":
        from ._io import read_json_object

        return cls.from_dict(read_json_object(path), source=str(path))


# ------------------------------------------------------------------------------------ pandas

#: Bumped when a documented column of evalkit's pandas tables is renamed, removed or changes meaning.
COLUMNS_VERSION = 1
#: ``EvalResult.to_pandas()``: one row per (task, sample), then ``score.NAME`` and ``breakdown.KIND`` columns.
SAMPLE_COLUMNS = (
    "checkpoint",
    "task",
    "axis",
    "sample_id",
    "input",
    "target",
    "prediction",
    "correct",
    "confidence",
    "group",
)


def columns_frame(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    """A ``pandas.DataFrame`` of ``rows`` in ``columns``, tagged with :data:`COLUMNS_VERSION`."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["evalkit_columns_version"] = COLUMNS_VERSION
    return frame


def _samples_frame(result: EvalResult) -> Any:
    rows, extra_columns = [], {}
    for name, task in result.tasks.items():
        keys = _breakdown_fields(task)
        for record in task.samples:
            row = {
                "checkpoint": result.checkpoint.label,
                "task": name,
                "axis": task.axis,
                "sample_id": record.sample_id,
                "input": record.input,
                "target": record.target,
                "prediction": record.prediction,
                "correct": record.correct,
                "confidence": _confidence(record),
                "group": record.group,
            }
            row.update({f"score.{key}": value for key, value in record.scores.items()})
            row.update({f"breakdown.{kind}": record_value(record, field) for kind, field in keys.items()})
            extra_columns.update(dict.fromkeys(k for k in row if k not in SAMPLE_COLUMNS))
            rows.append(row)
    return columns_frame(rows, list(SAMPLE_COLUMNS) + sorted(extra_columns))


def _breakdown_fields(task: TaskResult) -> dict[str, str]:
    """``{kind: record field}`` of the breakdowns whose stored declaration (``"KIND/METRIC"``) has ``group_by``."""
    fields: dict[str, str] = {}
    for name, spec in sorted((task.metric_specs or {}).items()):
        group_by = MetricSpec.from_dict(spec).group_by
        if "/" in name and group_by and "*" not in name:
            fields.setdefault(name.split("/", 1)[0], group_by)
    return fields


def _confidence(record: SampleRecord) -> Any:
    """A record's confidence where the evaluator gave one (a field of its own, or a score / extra entry)."""
    value = getattr(record, "confidence", None)
    if value is None:
        value = record.scores.get("confidence", record.extra.get("confidence"))
    if isinstance(value, dict):  # the voc evaluator's versioned object (voc/confidence.py): the path's probability
        value = value.get("path")
    return value
