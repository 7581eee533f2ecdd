"""The ``voc`` evaluator: hierarchical voice-of-customer classification (the domain axis).

A task file names the data and how to ask the model::

    name: voc_sample
    evaluator: voc
    data: data/voc_sample/test.csv        # CSV, JSONL or Parquet (relative to the task file)
    train_data: data/voc_sample/train.csv # or split_field/test_split/train_split on one file
    taxonomy: data/voc_sample/taxonomy.txt  # optional; default: the label paths seen in the data
    text_field: text
    id_field: id                          # default: the row number
    label_field: label                    # one path column, or label_fields: [l1, l2, l3, l4]
    mode: generate                        # or constrained (top-down log-likelihood ranking)
    label_options: none                   # none | paths | levels: list the labels in the prompt
    num_fewshot: 0

Each sample becomes one record: the comment (``input``), the true path (``target``, also ``group``),
the predicted path or None when the output could not be parsed (``prediction``), whether the path is
exactly right (``correct``), and in ``extra`` the raw output, the parse rule and the invalid flag.
Invalid outputs count as misses of their true class and are reported as ``invalid_rate``.
Corpus metrics come from :func:`evalkit.metrics.hierarchical.hierarchical_report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validate import task_seeds
from ..errors import UsageError
from ..evaluators.base import BREAKDOWN_COUNT_FIELDS, MetricSpec, SaveBatch, declared_specs, register_evaluator
from ..records import SampleRecord, TaskResult
from ..taskconfig import TaskConfig, check_choice, validate_options
from .aggregation import (
    declared_identities,
    record_paths,
    recorded_settings,
    resample_breakdown,
    resample_metrics,
    routing_metrics,
    sample_record,
)
from .answering import Answerer

if TYPE_CHECKING:
    from .dataset import DataSpec, VocData, VocExample
    from .prompting import PromptPlan

__all__ = ["VocOptions", "VocEvaluator"]

MODES = ("generate", "constrained")

#: What each metric is (docs/statistics.md): path accuracy and the invalid rate are per-sample
#: proportions; F1 scores, hierarchical/LCA scores and the first-error depth are corpus statistics.
_UNIT = (0.0, 1.0)  # the range of a precision, recall, F1 or accuracy
VOC_METRIC_SPECS: dict[str, MetricSpec] = {
    "path_accuracy": MetricSpec(level="sample", score="correct", bounds=_UNIT, binary=True),
    "invalid_rate": MetricSpec(
        higher_is_better=False, level="sample", score="extra.invalid", bounds=_UNIT, binary=True
    ),
    "mean_first_error_depth": MetricSpec(level="corpus"),  # deeper first error = right for longer
    # calibration and auto-routing (voc/routing.py), where records carry a confidence
    # (a cut or a binning is not smooth in the data: bootstrap intervals, see MetricSpec.interval)
    "*_ece": MetricSpec(level="corpus", higher_is_better=False, bounds=_UNIT, interval="bootstrap"),
    "*_brier": MetricSpec(level="corpus", higher_is_better=False, bounds=_UNIT),
    "coverage_at_precision/*": MetricSpec(level="corpus", bounds=_UNIT, interval="bootstrap"),
    "routed_precision/*": MetricSpec(level="corpus", bounds=_UNIT, interval="bootstrap"),
    "leaf_*": MetricSpec(level="corpus", bounds=_UNIT),  # F1, precision, recall: [0, 1]
    "level[0-9]*": MetricSpec(level="corpus", bounds=_UNIT),  # level1_macro_f1 ... (not the level/ breakdown)
    "hier_*": MetricSpec(level="corpus", bounds=_UNIT),
    "lca_*": MetricSpec(level="corpus", bounds=_UNIT),
    "class/recall": MetricSpec(level="sample", score="correct", group_by="group", binary=True),  # of a true class
    "class/*": MetricSpec(level="corpus"),
    "level/*": MetricSpec(level="corpus"),
    "frequency/*": MetricSpec(level="corpus"),
}


@dataclass
class VocOptions:
    """The ``voc`` evaluator's task-file keys (see the module docstring)."""

    data: str
    text_field: str = "text"
    label_field: str | None = None
    label_fields: list | None = None
    id_field: str | None = None
    sep: str = " > "
    taxonomy: str | None = None
    train_data: str | None = None
    split_field: str | None = None
    test_split: str = "test"
    train_split: str = "train"
    mode: str = "generate"
    prompt_template: str | None = None
    label_options: str = "none"
    label_options_fallback: bool = True
    min_comment_tokens: int = 64
    num_fewshot: int = 0
    chat_template: bool | None = None
    max_gen_toks: int = 64
    until: list | None = None
    parse_cutoff: float = 0.8
    batch_docs: int = 64
    limit: int | None = None
    sample_seed: int | None = None  # with limit: that many test rows drawn with this seed, not the first ones
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    label_holes: str = "skip"  # an empty level inside a label path: skip it (with a warning) or refuse the row
    score_confidence: bool = True  # generate mode: one log-likelihood pass scores the parsed path (voc/confidence.py)
    coverage_precisions: list = dataclasses.field(default_factory=lambda: [0.9, 0.95])  # coverage_at_precision/P


def _check_options(opts: VocOptions, config: TaskConfig) -> VocOptions:
    from .prompting import LABEL_OPTIONS

    check_choice(opts.mode, MODES, "mode", config)
    check_choice(opts.label_options, LABEL_OPTIONS, "label_options", config)
    check_choice(opts.label_holes, ("skip", "refuse"), "label_holes", config)
    if (opts.label_field is None) == (opts.label_fields is None):
        raise UsageError(
            f"{config.source}: give exactly one of 'label_field' (one path column) or "
            f"'label_fields' (one column per level); got {opts.label_field!r} and {opts.label_fields!r}."
        )
    if opts.label_fields is not None and (
        not opts.label_fields or not all(isinstance(c, str) for c in opts.label_fields)
    ):
        raise UsageError(
            f"{config.source}: key 'label_fields' must be a non-empty list of column names, got {opts.label_fields!r}."
        )
    if opts.until is not None and not all(isinstance(s, str) and s for s in opts.until):
        raise UsageError(f"{config.source}: key 'until' must be a list of non-empty strings, got {opts.until!r}.")
    for key, low in (
        ("num_fewshot", 0),
        ("max_gen_toks", 1),
        ("batch_docs", 1),
        ("min_comment_tokens", 0),
        ("n_resamples", 0),
        ("limit", 1),
    ):
        value = getattr(opts, key)
        if value is not None and value < low:
            raise UsageError(f"{config.source}: key {key!r} must be an integer >= {low}, got {value!r}.")
    task_seeds(opts, ("seed", "sample_seed"), source=config.source)
    if not 0.0 < opts.parse_cutoff <= 1.0:
        raise UsageError(f"{config.source}: key 'parse_cutoff' must be in (0, 1], got {opts.parse_cutoff!r}.")
    if (
        not isinstance(opts.coverage_precisions, list)
        or not opts.coverage_precisions
        or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 1 for p in opts.coverage_precisions
        )
    ):
        raise UsageError(
            f"{config.source}: key 'coverage_precisions' must be a non-empty list of precisions in (0, 1], "
            f"e.g. [0.9, 0.95]; got {opts.coverage_precisions!r}."
        )
    if not 0.0 < opts.confidence < 1.0:
        raise UsageError(f"{config.source}: key 'confidence' must be in (0, 1), got {opts.confidence!r}.")
    if not opts.sep.strip():
        raise UsageError(f"{config.source}: key 'sep' must contain a visible character (e.g. ' > '), got {opts.sep!r}.")
    return opts


@register_evaluator
class VocEvaluator:
    """Hierarchical classification of customer comments, by generation or constrained decoding."""

    name = "voc"
    # 2: records carry extra["confidence"] (voc/confidence.py); version-1 records stay as they were stored
    version = "2"
    metric_specs = VOC_METRIC_SPECS
    needs = frozenset({"generate_until"})  # class default; instances answer by their mode

    def __init__(self, config: TaskConfig) -> None:
        self.config = config
        self.options = _check_options(validate_options(config.options, VocOptions, config), config)
        self.needs = frozenset({"loglikelihood" if self.options.mode == "constrained" else "generate_until"})

    # ----------------------------------------------------------------------------- inputs
    @cached_property
    def _spec(self):
        from .dataset import DataSpec

        return DataSpec.from_options(self.options, self.config.resolve_path)

    @cached_property
    def data(self) -> "VocData":
        from .dataset import load_voc_data

        self._spec.check_files_exist(self.config.source, self.config.name)
        data = load_voc_data(self._spec)
        if self.options.num_fewshot and not data.train:
            raise UsageError(
                f"{self.config.source}: num_fewshot={self.options.num_fewshot} needs train rows; "
                f"set 'train_data' or 'split_field' (train rows: {self.options.train_split!r})."
            )
        return data

    @cached_property
    def template_text(self) -> str:
        from .prompting import load_template_text

        return load_template_text(self.options.prompt_template, self.config.base_dir)

    @cached_property
    def examples(self) -> list["VocExample"]:
        """The test examples evaluated, in file order (``limit`` of them when set: see ``evaluators.subset``)."""
        from ..evaluators.subset import subset_positions

        test = self.data.test
        return [test[i] for i in subset_positions(len(test), self.options.limit, self.options.sample_seed)]

    def config_hash(self) -> str:
        return _config_hash(self._spec, self.options, self.template_text, self.version)

    def check_ready(self) -> None:
        from .prompting import PromptBuilder

        PromptBuilder(self.template_text, self.data.taxonomy)  # raises on template syntax errors
        if not self.examples:
            raise UsageError(f"{self.config.source}: no test rows to evaluate in {self._spec.data}.")

    def sample_ids(self) -> list[str]:
        return [ex.sample_id for ex in self.examples]

    # ----------------------------------------------------------------------------- running
    def run(self, lm: Any, *, done: Mapping[str, SampleRecord], save: SaveBatch) -> list[SampleRecord]:
        from ..progress import bar

        todo = [ex for ex in self.examples if ex.sample_id not in done]
        new: dict[str, SampleRecord] = {}
        if todo:
            plan = self._plan(lm)
            size = self.options.batch_docs
            with bar(len(todo), f"{self.config.name} ({self.options.mode})") as progress:
                for start in range(0, len(todo), size):
                    batch = self._run_batch(lm, plan, todo[start : start + size])
                    save(batch)
                    new.update((r.sample_id, r) for r in batch)
                    progress.update(len(batch))
        return [done[ex.sample_id] if ex.sample_id in done else new[ex.sample_id] for ex in self.examples]

    def _plan(self, lm: Any) -> "PromptPlan":
        from .prompting import PromptBuilder, plan_prompts

        o = self.options
        chat = getattr(lm, "evalkit_chat_template", None)  # --chat-template/--no-chat-template, when the loader sets it
        tax = self.data.taxonomy
        # Room for the answer: the generation budget, or (constrained) a generous 2 chars per token of the longest path.
        answer = o.max_gen_toks if o.mode == "generate" else max(len(tax.format(p)) for p in tax.labels) // 2 + 8
        return plan_prompts(
            lm,
            PromptBuilder(self.template_text, tax),
            label_options=o.label_options,
            chat_template=o.chat_template if chat is None else chat,
            answer_tokens=answer,
            min_comment_tokens=o.min_comment_tokens,
            fallback=o.label_options_fallback,
        )

    def _run_batch(self, lm: Any, plan: "PromptPlan", batch: list["VocExample"]) -> list[SampleRecord]:
        from .prompting import fewshot_examples

        o = self.options
        built = [
            plan.build(ex.text, fewshot_examples(self.data.train, ex.sample_id, o.num_fewshot, o.seed)) for ex in batch
        ]
        prompts = [prompt for prompt, _, _ in built]
        common = {
            "label_options": plan.label_options,
            "chat_template": plan.chat,
            "tokens_counted_by": plan.counter.method,
        }
        if o.mode == "generate":
            outcomes = self._answerer.generate(lm, batch, prompts, chat=plan.chat)
        else:
            outcomes = self._answerer.constrained(lm, batch, prompts)
        return [
            self._record(ex, path, {**extra, **common, "truncated": truncated, "num_fewshot_used": shots})
            for ex, (path, extra), (_, truncated, shots) in zip(batch, outcomes, built)
        ]

    @cached_property
    def _answerer(self) -> Answerer:
        return Answerer(self.config.name, self.options, self.data.taxonomy)

    def _record(self, example: "VocExample", path: tuple[str, ...] | None, extra: dict) -> SampleRecord:
        return sample_record(self.data.taxonomy, example, path, extra)

    def _unscorable(self) -> str | None:
        """Why generate mode's confidence pass could not run on this model (None: it ran, or no run yet)."""
        return self._answerer.unscorable if "_answerer" in self.__dict__ else None

    # ----------------------------------------------------------------------------- metrics
    def aggregate(self, records: list[SampleRecord]) -> TaskResult:
        from ..metrics.hierarchical import hierarchical_report

        o = self.options
        y_true, y_pred = record_paths(records)
        report = hierarchical_report(
            y_true,
            y_pred,
            taxonomy=self.data.taxonomy,
            train_counts=self.data.train_counts() or None,
            n_resamples=o.n_resamples,
            confidence=o.confidence,
            random_state=o.seed,
        )
        metrics = dict(report["metrics"])  # None where undefined (e.g. mean_first_error_depth with no errors)
        metrics.update(routing_metrics(records, self.data.taxonomy.depth, o.coverage_precisions))
        breakdowns = report.get("breakdowns", {})
        specs = declared_specs(type(self), _metric_names(metrics, breakdowns))
        same_as = declared_identities(o.mode, self.data.taxonomy, y_true, metrics)
        return TaskResult(
            task=self.config.name,
            evaluator=self.name,
            evaluator_version=self.version,
            config_hash=self.config_hash(),
            metrics=metrics,
            n_samples=len(records),
            axis="domain",
            primary_metric="leaf_macro_f1",
            higher_is_better={k: specs[k].higher_is_better for k in metrics},
            metric_specs=specs,
            ci=report.get("ci", {}),
            breakdowns=breakdowns,
            settings=recorded_settings(records, o, self.data, self._unscorable()),
            samples=list(records),
            same_as=same_as,
        )

    @classmethod
    def resample_metrics(cls, records: list[SampleRecord], names: list[str], indices: Any) -> dict[str, Any]:
        """Corpus metrics on resamples (rows of ``indices``), for the comparison's intervals and tests."""
        return resample_metrics(records, names, indices)

    @classmethod
    def resample_breakdown(
        cls,
        records: list[SampleRecord],
        kind: str,
        metric: str,
        keys: list[str],
        indices: Any,
        settings: dict[str, Any],
    ) -> np.ndarray:
        """Breakdown values on resamples, shape (B, len(keys)) (see :func:`.aggregation.resample_breakdown`)."""
        return resample_breakdown(records, kind, metric, keys, indices, settings)


def _config_hash(spec: DataSpec, options: VocOptions, template_text: str, version: str) -> str:
    """What keys the stored results of a voc task: its options, its files' contents, the template, the version."""
    from .._io import hash_file, stable_hash

    files = {
        key: hash_file(p) if p is not None and p.is_file() else None
        for key, p in (("data", spec.data), ("train_data", spec.train_data), ("taxonomy", spec.taxonomy))
    }
    # label_holes never changes an outcome (the data loads the same way or not at all): left out.
    kept = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("batch_docs", "label_holes")}
    if kept["sample_seed"] is None:  # unset: the key results stored before the option existed were under
        del kept["sample_seed"]
    # Paths are replaced by content hashes so moving a file does not invalidate stored results.
    for key in ("data", "train_data", "taxonomy", "prompt_template"):
        kept.pop(key)
    return stable_hash({"options": kept, "files": files, "template": template_text, "version": version})


def _metric_names(metrics: dict[str, Any], breakdowns: dict[str, Any]) -> list[str]:
    """The task's metrics, then each breakdown's ``KIND/METRIC`` columns (their count fields left out)."""
    return [
        *metrics,
        *(
            f"{kind}/{m}"
            for kind, rows in breakdowns.items()
            for m in sorted({m for stats in rows.values() for m in stats} - BREAKDOWN_COUNT_FIELDS)
        ),
    ]
