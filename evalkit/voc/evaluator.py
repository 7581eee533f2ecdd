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
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validate import task_seeds
from ..errors import UsageError, arg
from ..evaluators.base import BREAKDOWN_COUNT_FIELDS, MetricSpec, SaveBatch, declared_specs, register_evaluator
from ..records import SampleRecord, TaskResult
from ..taskconfig import TaskConfig, check_choice, validate_options

if TYPE_CHECKING:
    from .dataset import VocData, VocExample
    from .prompting import PromptPlan

__all__ = ["VocOptions", "VocEvaluator"]

MODES = ("generate", "constrained")

#: What each metric is (docs/statistics.md): path accuracy and the invalid rate are per-sample
#: proportions; F1 scores, hierarchical/LCA scores and the first-error depth are corpus statistics.
_UNIT = (0.0, 1.0)  # the range of a precision, recall, F1 or accuracy
VOC_METRIC_SPECS: dict[str, MetricSpec] = {
    "path_accuracy": MetricSpec(level="sample", score="correct", bounds=_UNIT, binary=True),
    "invalid_rate": MetricSpec(higher_is_better=False, level="sample", score="extra.invalid", bounds=_UNIT,
                               binary=True),
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
        raise UsageError(f"{config.source}: give exactly one of 'label_field' (one path column) or "
                         f"'label_fields' (one column per level); got {opts.label_field!r} and {opts.label_fields!r}.")
    if opts.label_fields is not None and (not opts.label_fields or not all(isinstance(c, str) for c in opts.label_fields)):
        raise UsageError(f"{config.source}: key 'label_fields' must be a non-empty list of column names, got {opts.label_fields!r}.")
    if opts.until is not None and not all(isinstance(s, str) and s for s in opts.until):
        raise UsageError(f"{config.source}: key 'until' must be a list of non-empty strings, got {opts.until!r}.")
    for key, low in (("num_fewshot", 0), ("max_gen_toks", 1), ("batch_docs", 1), ("min_comment_tokens", 0),
                     ("n_resamples", 0), ("limit", 1)):
        value = getattr(opts, key)
        if value is not None and value < low:
            raise UsageError(f"{config.source}: key {key!r} must be an integer >= {low}, got {value!r}.")
    task_seeds(opts, ("seed", "sample_seed"), source=config.source)
    if not 0.0 < opts.parse_cutoff <= 1.0:
        raise UsageError(f"{config.source}: key 'parse_cutoff' must be in (0, 1], got {opts.parse_cutoff!r}.")
    if (not isinstance(opts.coverage_precisions, list) or not opts.coverage_precisions
            or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 1 for p in opts.coverage_precisions)):
        raise UsageError(f"{config.source}: key 'coverage_precisions' must be a non-empty list of precisions in (0, 1], "
                         f"e.g. [0.9, 0.95]; got {opts.coverage_precisions!r}.")
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
        self._unscorable: str | None = None  # why generate mode's confidence pass could not run on this model

    # ----------------------------------------------------------------------------- inputs
    @cached_property
    def _spec(self):
        from .dataset import DataSpec

        o, path = self.options, self.config.resolve_path
        return DataSpec(data=path(o.data), text_field=o.text_field, id_field=o.id_field, label_field=o.label_field,
                        label_fields=tuple(o.label_fields) if o.label_fields else None, sep=o.sep,
                        split_field=o.split_field, test_split=o.test_split, train_split=o.train_split,
                        train_data=path(o.train_data) if o.train_data else None,
                        taxonomy=path(o.taxonomy) if o.taxonomy else None, label_holes=o.label_holes)

    @cached_property
    def data(self) -> "VocData":
        from .dataset import load_voc_data

        for key in ("data", "train_data", "taxonomy"):
            path = getattr(self._spec, key)
            if path is not None and not path.exists():
                raise UsageError(f"{self.config.source}: {key} file {path} does not exist; put it there or point the "
                                 f"task at it with {arg('overrides', repr(f'{self.config.name}.{key}=PATH'))}.")
        data = load_voc_data(self._spec)
        if self.options.num_fewshot and not data.train:
            raise UsageError(f"{self.config.source}: num_fewshot={self.options.num_fewshot} needs train rows; "
                             f"set 'train_data' or 'split_field' (train rows: {self.options.train_split!r}).")
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
        from .._io import stable_hash
        from .._io import hash_file

        spec = self._spec
        files = {key: hash_file(p) if p is not None and p.is_file() else None
                 for key, p in (("data", spec.data), ("train_data", spec.train_data), ("taxonomy", spec.taxonomy))}
        # label_holes never changes an outcome (the data loads the same way or not at all): left out.
        options = {k: v for k, v in dataclasses.asdict(self.options).items() if k not in ("batch_docs", "label_holes")}
        if options["sample_seed"] is None:  # unset: the key results stored before the option existed were under
            del options["sample_seed"]
        # Paths are replaced by content hashes so moving a file does not invalidate stored results.
        for key in ("data", "train_data", "taxonomy", "prompt_template"):
            options.pop(key)
        return stable_hash({"options": options, "files": files, "template": self.template_text, "version": self.version})

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
                    batch = self._run_batch(lm, plan, todo[start:start + size])
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
        return plan_prompts(lm, PromptBuilder(self.template_text, tax), label_options=o.label_options,
                            chat_template=o.chat_template if chat is None else chat, answer_tokens=answer,
                            min_comment_tokens=o.min_comment_tokens, fallback=o.label_options_fallback)

    def _request(self, kind: str, example: "VocExample", arguments: tuple, idx: int):
        from lm_eval.api.instance import Instance

        inst = Instance(request_type=kind, doc={"id": example.sample_id, "text": example.text},
                        arguments=arguments, idx=idx)
        inst.task_name = self.config.name
        inst.evalkit_sample_id = example.sample_id
        return inst

    def _run_batch(self, lm: Any, plan: "PromptPlan", batch: list["VocExample"]) -> list[SampleRecord]:
        from .prompting import fewshot_examples

        o = self.options
        built = [plan.build(ex.text, fewshot_examples(self.data.train, ex.sample_id, o.num_fewshot, o.seed))
                 for ex in batch]
        prompts = [prompt for prompt, _, _ in built]
        common = {"label_options": plan.label_options, "chat_template": plan.chat, "tokens_counted_by": plan.counter.method}
        if o.mode == "generate":
            outcomes = self._generate(lm, batch, prompts, chat=plan.chat)
        else:
            outcomes = self._constrained(lm, batch, prompts)
        return [self._record(ex, path, {**extra, **common, "truncated": truncated, "num_fewshot_used": shots})
                for ex, (path, extra), (_, truncated, shots) in zip(batch, outcomes, built)]

    def _generate(self, lm: Any, batch: list["VocExample"], prompts: list[str], *, chat: bool) -> list[tuple]:
        o = self.options
        # Completion prompts end at "Label:", so the answer is the rest of the line. Chat models may open
        # with a blank line or a <think> block, so there only EOS (and max_gen_toks) stops the answer and
        # the parser takes the first non-empty line after the reasoning.
        until = list(o.until) if o.until is not None else ([] if chat else ["\n"])
        kwargs = {"until": until, "max_gen_toks": o.max_gen_toks, "do_sample": False, "temperature": 0.0}
        requests = [self._request("generate_until", ex, (prompt, dict(kwargs)), i)
                    for i, (ex, prompt) in enumerate(zip(batch, prompts))]
        outputs = lm.generate_until(requests)
        parser = self._parser
        outcomes = []
        for raw in outputs:
            parsed = parser.parse(raw)
            outcomes.append((parsed.path, {"raw_output": raw, "parse_rule": parsed.rule, "invalid": parsed.invalid}))
        for (_, extra), confidence in zip(outcomes, self._generated_confidences(lm, batch, prompts, outcomes, requests)):
            if confidence is not None:
                extra["confidence"] = confidence
        return outcomes

    def _generated_confidences(self, lm: Any, batch: list["VocExample"], prompts: list[str], outcomes: list[tuple],
                               requests: list) -> list[dict[str, Any] | None]:
        """Confidences of generated predictions: a predictions file's own, else one scoring pass (when possible)."""
        from .confidence import continuation_confidences, scoring_unavailable, stored_confidence

        given = getattr(lm, "confidence_for", None)
        if callable(given):
            values = [given(request) for request in requests]
            return [stored_confidence(v) if v is not None else None for v in values]
        if not callable(getattr(lm, "loglikelihood", None)):
            self._unscorable = "the model answers no log-likelihood requests"
        if not self.options.score_confidence or self._unscorable is not None:
            return [None] * len(batch)
        tax = self.data.taxonomy
        answers = [tax.format(path) if path else None for path, _ in outcomes]
        try:
            return [*continuation_confidences(
                lm, prompts, answers, lambda i, context, continuation: self._request("loglikelihood", batch[i],
                                                                                     (context, continuation), i))]
        except (UsageError, NotImplementedError) as exc:  # served by an endpoint without prompt log-probabilities
            self._unscorable = scoring_unavailable(exc)
            return [None] * len(batch)

    @cached_property
    def _parser(self):
        from .parsing import OutputParser

        return OutputParser(self.data.taxonomy, cutoff=self.options.parse_cutoff)

    def _constrained(self, lm: Any, batch: list["VocExample"], prompts: list[str]) -> list[tuple]:
        from .confidence import constrained_confidence
        from .constrained import constrained_predict

        tax = self.data.taxonomy
        results = constrained_predict(
            lm, prompts, tax, lambda i, context, continuation: self._request("loglikelihood", batch[i], (context, continuation), i))
        return [(r.path, {"raw_output": tax.format(r.path), "parse_rule": "constrained", "invalid": False,
                          "level_logprobs": r.logprobs, "level_margins": r.margins,
                          "confidence": constrained_confidence(r)}) for r in results]

    def _record(self, example: "VocExample", path: tuple[str, ...] | None, extra: dict) -> SampleRecord:
        tax = self.data.taxonomy
        target = tax.format(example.path)
        return SampleRecord(
            sample_id=example.sample_id, target=target, prediction=tax.format(path) if path else None,
            correct=path == example.path, scores={"path_correct": float(path == example.path)}, group=target,
            input=example.text,
            extra={**extra, "target_path": list(example.path), "pred_path": list(path) if path else None},
        )

    # ----------------------------------------------------------------------------- metrics
    @staticmethod
    def _paths(records: list[SampleRecord]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...] | None]]:
        y_true = [tuple(r.extra["target_path"]) for r in records]
        y_pred = [tuple(r.extra["pred_path"]) if r.extra.get("pred_path") else None for r in records]
        return y_true, y_pred

    def aggregate(self, records: list[SampleRecord]) -> TaskResult:
        from ..metrics.hierarchical import hierarchical_report

        o = self.options
        y_true, y_pred = self._paths(records)
        report = hierarchical_report(y_true, y_pred, taxonomy=self.data.taxonomy, train_counts=self.data.train_counts() or None,
                                     n_resamples=o.n_resamples, confidence=o.confidence, random_state=o.seed)
        metrics = dict(report["metrics"])  # None where undefined (e.g. mean_first_error_depth with no errors)
        metrics.update(self._routing_metrics(records))
        breakdowns = report.get("breakdowns", {})
        names = [*metrics, *(f"{kind}/{m}" for kind, rows in breakdowns.items()
                             for m in sorted({m for stats in rows.values() for m in stats} - BREAKDOWN_COUNT_FIELDS))]
        specs = declared_specs(type(self), names)
        return TaskResult(
            task=self.config.name, evaluator=self.name, evaluator_version=self.version, config_hash=self.config_hash(),
            metrics=metrics, n_samples=len(records), axis="domain", primary_metric="leaf_macro_f1",
            higher_is_better={k: specs[k].higher_is_better for k in metrics}, metric_specs=specs,
            ci=report.get("ci", {}),
            breakdowns=breakdowns, settings=self._settings(records), samples=list(records),
        )

    def _routing_metrics(self, records: list[SampleRecord]) -> dict[str, float | None]:
        """Calibration and coverage metrics (voc/routing.py); none unless every record has a confidence."""
        from .routing import routing_arrays, routing_metric_names, routing_scores

        depth = self.data.taxonomy.depth
        arrays = routing_arrays(records, depth)
        if arrays is None:
            return {}
        names = routing_metric_names(depth, self.options.coverage_precisions, levels="level1" in arrays)
        values = routing_scores(arrays, names, np.arange(len(records))[None, :])
        return {name: (float(v[0]) if np.isfinite(v[0]) else None) for name, v in values.items()}

    def _settings(self, records: list[SampleRecord]) -> dict[str, Any]:
        o, tax = self.options, self.data.taxonomy
        extras = [r.extra for r in records]
        return {
            "mode": o.mode, "n_samples": len(records), "num_fewshot": o.num_fewshot,
            "label_options": o.label_options,
            "label_options_used": sorted({e.get("label_options") for e in extras if e.get("label_options")}),
            "chat_template": sorted({bool(e.get("chat_template")) for e in extras}),
            "tokens_counted_by": sorted({e.get("tokens_counted_by") for e in extras if e.get("tokens_counted_by")}),
            "n_invalid": sum(bool(e.get("invalid")) for e in extras),
            "n_truncated": sum(bool(e.get("truncated")) for e in extras),
            "n_fewshot_reduced": sum(e.get("num_fewshot_used", o.num_fewshot) < o.num_fewshot for e in extras),
            "parse_rules": dict(sorted(Counter(e.get("parse_rule", "?") for e in extras).items())),
            "prompt_template": o.prompt_template or "default", "sep": tax.sep, "n_labels": len(tax.labels),
            "n_leaves": len(tax.leaves), "depth": tax.depth, "n_train": len(self.data.train), "seed": o.seed,
            "limit": o.limit, "sample_seed": o.sample_seed,
            "confidence": sorted({(e.get("confidence") or {}).get("method", "none") for e in extras}),
            **({"confidence_unavailable": self._unscorable} if self._unscorable else {}),
            **self._frequency_bands(records),
        }

    def _frequency_bands(self, records: list[SampleRecord]) -> dict[str, Any]:
        """The classes of each head / torso / tail band, which the comparison's resamples of a band average
        over (``resample_breakdown``); nothing without training data (no frequency breakdown then)."""
        from ..metrics.hierarchical import frequency_bands

        train_counts = self.data.train_counts()
        if not train_counts or not records:
            return {}
        y_true, _ = self._paths(records)
        return {"frequency_bands": frequency_bands(y_true, train_counts, taxonomy=self.data.taxonomy)}

    @classmethod
    def resample_metrics(cls, records: list[SampleRecord], names: list[str], indices: Any) -> dict[str, Any]:
        """Corpus metrics on resamples (rows of ``indices``), for the comparison's intervals and tests."""
        from ..metrics.hierarchical import resampled_scores
        from .routing import is_routing_metric, routing_arrays, routing_scores

        routing = [n for n in names if is_routing_metric(n)]
        hierarchical = [n for n in names if not is_routing_metric(n)]
        y_true, y_pred = cls._paths(records)
        out = resampled_scores(y_true, y_pred, hierarchical, indices) if hierarchical else {}
        if routing:
            depth = max([len(t) for t in y_true] + [int(n[5:].split("_")[0]) for n in routing if n.startswith("level")])
            arrays = routing_arrays(records, depth)
            if arrays is None:
                raise ValueError("calibration and routing metrics need a confidence on every record")
            out.update(routing_scores(arrays, routing, indices))
        return {name: out[name] for name in names}

    @classmethod
    def resample_breakdown(cls, records: list[SampleRecord], kind: str, metric: str, keys: list[str],
                           indices: Any, settings: dict[str, Any]) -> np.ndarray:
        """Per-class, per-level and per-frequency-band breakdown values on resamples, shape (B, len(keys)): the
        comparison's intervals and tests for breakdown rows (``metrics.hierarchical.resampled_breakdown``).

        The bands' classes come from the task's ``settings["frequency_bands"]``; results stored before they
        were recorded get nan (the comparison then leaves those rows without an interval, as before)."""
        from ..metrics.hierarchical import resampled_breakdown

        bands = settings.get("frequency_bands")
        if kind == "frequency" and not isinstance(bands, dict):
            return np.full((len(indices), len(keys)), np.nan)
        y_true, y_pred = cls._paths(records)
        return resampled_breakdown(y_true, y_pred, kind, metric, keys, indices, bands=bands)
