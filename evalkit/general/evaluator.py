"""The ``lm_eval`` evaluator: any lm-eval task or group (MMLU, IFEval, hellaswag, ...), per sample.

Requests are built, filtered, scored and aggregated by lm-eval's own machinery (``TaskManager``,
``Task.build_all_requests``, the task's filter ensembles, ``Task.process_results``, lm-eval's task and
group aggregation), so the numbers equal ``lm_eval.simple_evaluate``'s on the same model and data.
What evalkit adds: documents are sent to the model in chunks of ``batch_docs`` and each chunk's
per-sample records are saved before the next starts (a killed run resumes where it stopped); local
data folders for MMLU and IFEval; a letter-answer MMLU variant; breakdowns per subject, category and
instruction type. Loading, the per-kind differences, request scheduling, scoring into records, aggregation and
the options/settings live in :mod:`evalkit.general.lmeval`; this class ties them to the evaluator protocol.

Task file keys (see ``evalkit/tasks/mmlu.yaml``)::

    lm_eval_task: mmlu        # lm-eval task or group name (required)
    lm_eval_config: null      # a custom lm-eval task YAML or folder (relative to the task file)
    num_fewshot: 0            # null: the task's own default
    data: null                # local data: MMLU folder, IFEval JSONL (null: the hub)
    limit: null               # docs per subtask (int) or fraction (< 1), as lm-eval's --limit
    sample_seed: null         # with limit: docs drawn with this seed (evaluators.subset); null: the first ones
    batch_docs: 64            # docs per saved batch
    generation: {}            # generation kwargs overrides (generate_until tasks)
    chat_template: null       # true/false; null: applied to generation tasks when the model has one
    system_instruction: null
    seed: 1234                # lm-eval's few-shot sampler seed
    variant_of: null          # a generative task: the log-likelihood task it restates (format vs knowledge)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..evaluators.base import SaveBatch, register_evaluator
from ..records import SampleRecord, TaskResult
from ..taskconfig import TaskConfig, validate_options
from .lmeval.aggregation import Aggregator, micro_means, resample_metrics
from .lmeval.generation import GenerationFit, fit_generation_lengths
from .lmeval.kinds import TaskKind, instruction_breakdown, kind_for
from .lmeval.lazy import LazyTasks
from .lmeval.loading import LM_EVAL_SEEDS, LoadedTasks
from .lmeval.requests import Doc, PairEncoder, answer, build_docs, chunks, order_for_generation, order_for_model
from .lmeval.scoring import RecordScorer
from .lmeval.settings import LmEvalOptions, TaskSettings, check_options
from .lmeval.specs import LM_EVAL_STATIC_SPECS, lm_eval_metric_specs

__all__ = ["LmEvalEvaluator", "LmEvalOptions", "instruction_breakdown"]

_NEEDS = {
    "multiple_choice": "loglikelihood",
    "loglikelihood": "loglikelihood",
    "loglikelihood_rolling": "loglikelihood",
    "generate_until": "generate_until",
}


@dataclass
class _Built:
    """Docs built for one LM and chat setting, kept so repeated ``run`` calls (resume, sequential chunks)
    neither rebuild prompts nor redraw few-shot examples."""

    lm: Any
    apply_chat: bool
    docs: list[Doc]
    encoder: PairEncoder | None
    scoring_states: dict | None = None  # sample id -> (random state before, after) its scoring (see RecordScorer)


def _build(loaded: LoadedTasks, kind: TaskKind, options: LmEvalOptions, lm: Any, apply_chat: bool) -> _Built:
    """The docs of ``loaded`` with their requests for ``lm``, and the encoder that orders and chunks them."""
    docs = build_docs(
        loaded,
        kind,
        limit=options.limit,
        sample_seed=options.sample_seed,
        lm=lm,
        apply_chat=apply_chat,
        system_instruction=options.system_instruction,
    )
    return _Built(lm, apply_chat, docs, PairEncoder(lm) if PairEncoder.supports(lm) else None)


def _use_chat_template(lm: Any, option: bool | None, load: Callable[[], LoadedTasks]) -> bool:
    """Whether prompts go through ``lm``'s chat template: the command line's choice, else the task file's
    ``chat_template``, else yes for generation tasks when the model has a template (``load`` is called only
    then: it may load the tasks)."""
    flag = getattr(lm, "evalkit_chat_template", None)  # set by the loader from --chat-template/--no-chat-template
    if flag is not None:  # the command line wins over the task file
        return bool(flag)
    if option is not None:
        return option
    tokenizer = getattr(lm, "tokenizer", None)
    return load().generative and bool(getattr(tokenizer, "chat_template", None)) and hasattr(lm, "apply_chat_template")


def _seed_everything() -> None:
    """The global seeds ``simple_evaluate`` sets (sampling generation depends on them)."""
    import random

    import numpy as np

    random.seed(LM_EVAL_SEEDS[0])
    np.random.seed(LM_EVAL_SEEDS[1])
    try:
        import torch

        torch.manual_seed(LM_EVAL_SEEDS[2])
    except ImportError:  # an API-only LM does not need torch
        pass


@register_evaluator
class LmEvalEvaluator:
    """Runs one lm-eval task or group through an lm-eval ``LM`` with per-sample, resumable records."""

    name = "lm_eval"
    metric_specs = LM_EVAL_STATIC_SPECS  # fallback for stored results; aggregate() declares from lm-eval's configs
    version = "1"

    def __init__(self, config: TaskConfig):
        self.config = config
        self.options: LmEvalOptions = validate_options(config.options, LmEvalOptions, config)
        check_options(self.options, config)
        self._task_settings = TaskSettings(config, self.options)
        self.kind: TaskKind = kind_for(
            self.options.lm_eval_task,
            self.options.lm_eval_config is not None,
            self._task_settings.data_path(),
            config.source,
        )
        if self.options.data is not None and not self.kind.accepts_data:
            raise UsageError(
                f"{config.source}: key 'data' is supported for lm_eval_task mmlu, mmlu_letter and ifeval; for "
                f"{self.options.lm_eval_task!r} write an lm-eval YAML with dataset_path/dataset_kwargs.data_files "
                "and set lm_eval_config to it."
            )
        self._tasks = LazyTasks(self.kind, self.options, self._task_settings, config.source)
        self._scorer = RecordScorer(self._tasks.load, self._tasks.reload, self.kind, config.name)
        self._aggregator = Aggregator(self._tasks.load)
        self._built: _Built | None = None  # the last one used
        self._builds: list[_Built] = []  # one per LM and chat setting
        self._chat_applied: bool | None = None
        self._generation_fit: GenerationFit | None = None  # the last run's max_gen_toks plan

    # ------------------------------------------------------------------ identity and checks
    @property
    def needs(self) -> frozenset[str]:
        """Request types the model must answer, from the lm-eval tasks' output types."""
        if self.kind.request_type is not None:
            return frozenset({self.kind.request_type})
        return frozenset(_NEEDS[t.OUTPUT_TYPE] for t in self._load().tasks.values() if t.OUTPUT_TYPE in _NEEDS)

    def config_hash(self) -> str:
        """Hash of options, data content, custom YAML content and the generated-template version."""
        return self._task_settings.config_hash(self.kind, self.version)

    def check_ready(self) -> None:
        """Data paths exist, the task name is known, NLTK punkt_tab is there for IFEval (before any model loads)."""
        custom = self._task_settings.config_path()
        if custom is not None and not custom.exists():
            raise UsageError(
                f"{self.config.source}: key 'lm_eval_config': {custom} does not exist (an lm-eval task YAML or folder)."
            )
        self.kind.check_data(self.options.num_fewshot)
        if self.kind.data is None:  # offline, the hub would be retried for half a minute: say at once what to do
            from .hub import hub_data_problem

            problem = hub_data_problem(self.config.name, self.kind.name)
            if problem:
                raise UsageError(f"{self.config.source}: {problem}.")
        if self.kind.uses_ifeval:
            from .punkt import ensure_punkt_tab

            ensure_punkt_tab()
        self._task_manager()  # unknown names fail here, with a did-you-mean

    # ------------------------------------------------------------------ lm-eval task loading
    def _task_manager(self):
        """(TaskManager, lm-eval name) indexing only the YAML folders this task needs."""
        return self._tasks.manager()

    def _load(self) -> LoadedTasks:
        return self._tasks.load()

    # ------------------------------------------------------------------ samples
    def sample_ids(self) -> list[str]:
        """Ids of the docs this task evaluates, in lm-eval's order (subtasks, then doc index)."""
        from .lmeval.requests import doc_indices, doc_positions, iter_docs

        ids: list[str] = []
        limit, seed = self.options.limit, self.options.sample_seed
        for subtask, task in self._load().tasks.items():
            positions = doc_positions(task, limit, seed)
            indices = None if self.kind.ids_read_docs else doc_indices(task, limit, positions)
            if indices is None:
                ids.extend(
                    self.kind.sample_id(subtask, index, doc) for _, index, doc in iter_docs(task, limit, positions)
                )
            else:  # the ids are positions: the docs need not be read (a second's pass over full MMLU)
                ids.extend(self.kind.sample_id(subtask, index, None) for _, index in indices)
        return ids

    def _use_chat_template(self, lm: Any) -> bool:
        return _use_chat_template(lm, self.options.chat_template, self._load)

    def _docs(self, lm: Any, apply_chat: bool) -> _Built:
        """The built docs for ``lm`` (built once per LM and chat setting).

        Every LM's build is kept: ``compare --sequential`` alternates between checkpoints chunk by chunk,
        and rebuilding full MMLU's requests at each switch would cost about as much as evaluating a chunk.
        """
        for built in self._builds:
            if built.lm is lm and built.apply_chat == apply_chat:
                self._built = built
                return built
        self._built = _build(self._load(), self.kind, self.options, lm, apply_chat)
        self._builds.append(self._built)
        return self._built

    def run(self, lm: Any, *, done: Mapping[str, SampleRecord], save: SaveBatch) -> list[SampleRecord]:
        """Evaluate the docs not in ``done``, ``batch_docs`` at a time, saving each batch's records."""
        from ..progress import bar

        _seed_everything()
        apply_chat = self._use_chat_template(lm)
        self._chat_applied = apply_chat
        built = self._docs(lm, apply_chat)
        docs = built.docs
        self._generation_fit = fit_generation_lengths([i for d in docs for i in d.instances], lm, self.config.name)
        pending = [d for d in docs if d.sample_id not in done]
        states = None
        if not self._load().generative:
            pending = order_for_model(pending, built.encoder)
        elif self.kind.replayable_scoring:
            # lm-eval generates in its global length order and scores in document order; IFEval's scoring
            # draws from ``random``. Each doc is scored from the random state lm-eval scores it from
            # (replayed once in document order, once per build), so the length order changes no score.
            if built.scoring_states is None:
                built.scoring_states = self._scorer.scoring_states(built.docs)
            states = built.scoring_states
            pending = order_for_generation(pending, built.encoder)
        # else: other generation tasks keep document order (their scoring might draw from ``random``).
        new: dict[str, SampleRecord] = {}
        with bar(len(docs), f"{self.config.name}", unit="doc", initial=len(docs) - len(pending)) as progress:
            for chunk in chunks(pending, self.options.batch_docs, built.encoder):
                answer(lm, chunk, self.config.name, built.encoder)
                self._scorer.apply_filters(chunk)
                records = self._scorer.records(chunk, states)
                save(records)
                new.update((r.sample_id, r) for r in records)
                progress.update(len(chunk))
        return [new[d.sample_id] if d.sample_id in new else done[d.sample_id] for d in docs]

    # ------------------------------------------------------------------ corpus metrics
    def aggregate(self, records: list[SampleRecord]) -> TaskResult:
        """Corpus metrics with lm-eval's own task and group aggregation, plus breakdowns."""
        loaded = self._load()
        aggregator = self._aggregator
        results = aggregator.lm_eval_results(records)
        metrics, stderr = aggregator.flat_metrics(results.get(loaded.name, {}))
        settings = self._task_settings.recorded(
            records, self._load(), self.kind, chat_applied=self._chat_applied, fit=self._generation_fit
        )
        if not metrics and records:  # a group without aggregate_metric_list: lm-eval reports none
            metrics = micro_means(records)
            settings["aggregation"] = "micro mean over samples (the lm-eval group defines no aggregation)"
        metrics.update(self.kind.extra_metrics(records))
        direction = aggregator.higher_is_better(metrics)
        breakdowns = self.kind.breakdowns(records, results, loaded, aggregator.flat_metrics)
        specs = lm_eval_metric_specs(
            loaded.tasks,
            loaded.groups,
            loaded.score_names,
            metrics,
            direction,
            breakdowns,
            micro_means="aggregation" in settings,
        )
        return TaskResult(
            task=self.config.name,
            evaluator=self.name,
            evaluator_version=self.version,
            config_hash=self.config_hash(),
            metrics=metrics,
            n_samples=len(records),
            axis="general",
            primary_metric=self.kind.primary_metric(metrics),
            higher_is_better=direction,
            metric_specs=specs,
            stderr=stderr,
            breakdowns=breakdowns,
            settings=settings,
            samples=list(records),
        )

    # ------------------------------------------------------------------ paired bootstrap hook
    @classmethod
    def resample_metrics(cls, records: list[SampleRecord], names: list[str], indices) -> dict[str, Any]:
        """Metric values on resamples ``indices`` (B, n) of ``records`` (see :func:`.lmeval.aggregation.resample_metrics`)."""
        return resample_metrics(records, names, indices)
