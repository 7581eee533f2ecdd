"""The ``lm_eval`` evaluator: any lm-eval task or group (MMLU, IFEval, hellaswag, ...), per sample.

Requests are built, filtered, scored and aggregated by lm-eval's own machinery (``TaskManager``,
``Task.build_all_requests``, the task's filter ensembles, ``Task.process_results``, lm-eval's task and
group aggregation), so the numbers equal ``lm_eval.simple_evaluate``'s on the same model and data.
What evalkit adds: documents are sent to the model in chunks of ``batch_docs`` and each chunk's
per-sample records are saved before the next starts (a killed run resumes where it stopped); local
data folders for MMLU and IFEval; a letter-answer MMLU variant; breakdowns per subject, category and
instruction type. Loading, the per-kind differences and request scheduling live in
:mod:`evalkit.general.lmeval`; this class ties them to the evaluator protocol.

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

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import hash_tree
from .._validate import task_seeds
from ..errors import UsageError
from ..evaluators.base import SaveBatch, register_evaluator
from ..records import SampleRecord, TaskResult
from ..taskconfig import TaskConfig, validate_options
from .lmeval.kinds import TaskKind, instruction_breakdown, kind_for, mean
from .lmeval.loading import LM_EVAL_SEEDS, LoadedTasks, load_tasks
from .lmeval.generation import GenerationFit, fit_generation_lengths
from .lmeval.requests import Doc, PairEncoder, answer, build_docs, chunks, order_for_generation, order_for_model
from .lmeval.specs import LM_EVAL_STATIC_SPECS, lm_eval_metric_specs

__all__ = ["LmEvalEvaluator", "LmEvalOptions", "instruction_breakdown"]

_NEEDS = {"multiple_choice": "loglikelihood", "loglikelihood": "loglikelihood",
          "loglikelihood_rolling": "loglikelihood", "generate_until": "generate_until"}
_INPUT_CHARS = 2000
_BOOTSTRAP_ITERS = 100000  # lm-eval's default


@dataclass
class LmEvalOptions:
    """Options of the ``lm_eval`` evaluator (keys of a task file)."""

    lm_eval_task: str
    lm_eval_config: str | None = None
    num_fewshot: int | None = None
    data: str | None = None
    limit: int | float | None = None
    sample_seed: int | None = None  # with limit: that many docs per subtask drawn with this seed, not the first ones
    batch_docs: int = 64
    generation: dict | None = None
    chat_template: bool | None = None
    system_instruction: str | None = None
    seed: int | None = None
    # This task asks the same questions as another task of the run, answered by writing (generate_until):
    # the comparison then tells format forgetting from knowledge forgetting (_compare/_format.py).
    variant_of: str | None = None


def _check_options(options: LmEvalOptions, config: TaskConfig) -> None:
    src = config.source
    if not options.lm_eval_task.strip():
        raise UsageError(f"{src}: key 'lm_eval_task' must name an lm-eval task or group, e.g. mmlu, ifeval, hellaswag.")
    if options.num_fewshot is not None and options.num_fewshot < 0:
        raise UsageError(f"{src}: key 'num_fewshot' must be an integer >= 0 or null; got {options.num_fewshot!r}.")
    if options.batch_docs < 1:
        raise UsageError(f"{src}: key 'batch_docs' must be an integer >= 1; got {options.batch_docs!r}.")
    task_seeds(options, ("seed", "sample_seed"), source=src)
    if options.variant_of is not None and not options.variant_of.strip():  # the type is checked already
        raise UsageError(f"{src}: key 'variant_of' must name the log-likelihood task this task restates "
                         f"(e.g. mmlu); got {options.variant_of!r}.")
    if options.limit is not None and (options.limit <= 0 or (isinstance(options.limit, float) and options.limit >= 1
                                                             and not options.limit.is_integer())):
        raise UsageError(f"{src}: key 'limit' must be a positive integer (docs per subtask) or a fraction "
                         f"0 < limit < 1; got {options.limit!r}.")


def _jsonable(value: Any) -> Any:
    """Per-sample metric values as plain JSON types (numpy scalars, tuples)."""
    if value is None or type(value) in (bool, int, float, str):  # exact types: numpy scalars subclass float
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass
class _Built:
    """Docs built for one LM and chat setting, kept so repeated ``run`` calls (resume, sequential chunks)
    neither rebuild prompts nor redraw few-shot examples."""

    lm: Any
    apply_chat: bool
    docs: list[Doc]
    encoder: PairEncoder | None
    scoring_states: dict | None = None  # sample id -> (random state before, after) its scoring (see _scoring_states)


@register_evaluator
class LmEvalEvaluator:
    """Runs one lm-eval task or group through an lm-eval ``LM`` with per-sample, resumable records."""

    name = "lm_eval"
    metric_specs = LM_EVAL_STATIC_SPECS  # fallback for stored results; aggregate() declares from lm-eval's configs
    version = "1"

    def __init__(self, config: TaskConfig):
        self.config = config
        self.options: LmEvalOptions = validate_options(config.options, LmEvalOptions, config)
        _check_options(self.options, config)
        self.kind: TaskKind = kind_for(self.options.lm_eval_task, self.options.lm_eval_config is not None,
                                       self._data_path(), config.source)
        if self.options.data is not None and not self.kind.accepts_data:
            raise UsageError(
                f"{config.source}: key 'data' is supported for lm_eval_task mmlu, mmlu_letter and ifeval; for "
                f"{self.options.lm_eval_task!r} write an lm-eval YAML with dataset_path/dataset_kwargs.data_files "
                "and set lm_eval_config to it."
            )
        self._loaded: LoadedTasks | None = None
        self._hash: str | None = None
        self._tm = None
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

    def _data_path(self) -> Path | None:
        return None if self.options.data is None else self.config.resolve_path(self.options.data)

    def _config_path(self) -> Path | None:
        return None if self.options.lm_eval_config is None else self.config.resolve_path(self.options.lm_eval_config)

    def config_hash(self) -> str:
        """Hash of options, data content, custom YAML content and the generated-template version."""
        if self._hash is None:
            from .._io import stable_hash
            from .overrides import GENERATOR_VERSION

            options = dataclasses.asdict(self.options)
            for name in ("sample_seed", "variant_of"):  # unset: the key results stored before the option existed were under
                if options[name] is None:
                    del options[name]
            self._hash = stable_hash({"options": options, "kind": self.kind.name,
                                      "data": self._content_digest(self._data_path()),
                                      "lm_eval_config": self._content_digest(self._config_path()),
                                      "generator": GENERATOR_VERSION, "evaluator": self.version})
        return self._hash

    @staticmethod
    def _content_digest(path: Path | None) -> str | None:
        return hash_tree(path) if path is not None and path.exists() else None

    def check_ready(self) -> None:
        """Data paths exist, the task name is known, NLTK punkt_tab is there for IFEval (before any model loads)."""
        custom = self._config_path()
        if custom is not None and not custom.exists():
            raise UsageError(f"{self.config.source}: key 'lm_eval_config': {custom} does not exist "
                             "(an lm-eval task YAML or folder).")
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
        if self._tm is None:
            self._tm = self.kind.task_manager(self._config_path()), self.options.lm_eval_task
        return self._tm

    def _load(self) -> LoadedTasks:
        if self._loaded is None:
            if self.kind.uses_ifeval:
                from .punkt import ensure_punkt_tab

                ensure_punkt_tab()  # lm-eval's IFEval module would try a download at import otherwise
            self._loaded = self._load_tasks()
        return self._loaded

    def _load_tasks(self) -> LoadedTasks:
        manager, name = self._task_manager()
        o = self.options
        return load_tasks(manager, name, num_fewshot=o.num_fewshot, generation=o.generation, seed=o.seed,
                          error_hint=self.kind.offline_hint, source=self.config.source)

    # ------------------------------------------------------------------ samples
    def sample_ids(self) -> list[str]:
        """Ids of the docs this task evaluates, in lm-eval's order (subtasks, then doc index)."""
        from .lmeval.requests import doc_positions, iter_docs

        ids = []
        limit, seed = self.options.limit, self.options.sample_seed
        for subtask, task in self._load().tasks.items():
            for _, index, doc in iter_docs(task, limit, doc_positions(task, limit, seed)):
                ids.append(self.kind.sample_id(subtask, index, doc))
        return ids

    def _use_chat_template(self, lm: Any) -> bool:
        flag = getattr(lm, "evalkit_chat_template", None)  # set by the loader from --chat-template/--no-chat-template
        if flag is not None:  # the command line wins over the task file
            return bool(flag)
        if self.options.chat_template is not None:
            return self.options.chat_template
        tokenizer = getattr(lm, "tokenizer", None)
        return (self._load().generative and bool(getattr(tokenizer, "chat_template", None))
                and hasattr(lm, "apply_chat_template"))

    def _docs(self, lm: Any, apply_chat: bool) -> _Built:
        """The built docs for ``lm`` (built once per LM and chat setting).

        Every LM's build is kept: ``compare --sequential`` alternates between checkpoints chunk by chunk,
        and rebuilding full MMLU's requests at each switch would cost about as much as evaluating a chunk.
        """
        for built in self._builds:
            if built.lm is lm and built.apply_chat == apply_chat:
                self._built = built
                return built
        docs = build_docs(self._load(), self.kind, limit=self.options.limit, sample_seed=self.options.sample_seed,
                          lm=lm, apply_chat=apply_chat,
                          system_instruction=self.options.system_instruction)
        encoder = PairEncoder(lm) if PairEncoder.supports(lm) else None
        self._built = _Built(lm, apply_chat, docs, encoder)
        self._builds.append(self._built)
        return self._built

    def run(self, lm: Any, *, done: Mapping[str, SampleRecord], save: SaveBatch) -> list[SampleRecord]:
        """Evaluate the docs not in ``done``, ``batch_docs`` at a time, saving each batch's records."""
        from ..progress import bar

        self._seed_everything()
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
            # (replayed once in document order), so the length order changes no score.
            states = self._scoring_states(built)
            pending = order_for_generation(pending, built.encoder)
        # else: other generation tasks keep document order (their scoring might draw from ``random``).
        new: dict[str, SampleRecord] = {}
        with bar(len(docs), f"{self.config.name}", unit="doc", initial=len(docs) - len(pending)) as progress:
            for chunk in chunks(pending, self.options.batch_docs, built.encoder):
                answer(lm, chunk, self.config.name, built.encoder)
                self._apply_filters(chunk)
                records = self._records(chunk, states)
                save(records)
                new.update((r.sample_id, r) for r in records)
                progress.update(len(chunk))
        return [new[d.sample_id] if d.sample_id in new else done[d.sample_id] for d in docs]

    def _seed_everything(self) -> None:
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

    def _scoring_states(self, built: _Built) -> dict:
        """The global ``random`` state before and after each doc's scoring, as lm-eval scores them.

        ``simple_evaluate`` seeds ``random``, loads the tasks (lm-eval's ``Task.task_name`` draws eight
        random characters on every read, and loading reads it), builds the requests and generates (neither
        draws from ``random``; greedy generation draws nothing), then calls ``process_results`` doc by doc in
        document order. The kinds that set ``replayable_scoring`` draw from ``random`` only as a function of
        the doc (IFEval: ``build_description`` picks random values for instructions without kwargs, never
        looking at the response). So: seed, load the tasks once more as lm-eval does, and score every doc
        with empty responses in document order; the state before each doc is the state lm-eval scores it
        from. ``_records`` checks that the real scoring ends in the replayed state. Computed once per
        build: killed, resumed and sequential runs all score from the same states, whatever this process
        loaded or drew before.
        """
        import random

        if built.scoring_states is None:
            random.seed(LM_EVAL_SEEDS[0])
            self._load_tasks()  # the draws lm-eval's loading makes (the loaded copy is not kept)
            tasks, states = self._load().tasks, {}
            for d in built.docs:
                before = random.getstate()
                task = tasks[d.subtask]
                for _ in _filter_keys(task):
                    task.process_results(d.doc, ["" for _ in d.instances])
                states[d.sample_id] = (before, random.getstate())
            built.scoring_states = states
        return built.scoring_states

    def _apply_filters(self, chunk: list[Doc]) -> None:
        tasks = self._load().tasks
        for subtask in dict.fromkeys(d.subtask for d in chunk):
            members = [inst for d in chunk if d.subtask == subtask for inst in d.instances]
            for ensemble in getattr(tasks[subtask], "_filters", []):
                ensemble.apply(members)

    # ------------------------------------------------------------------ per-sample records
    def _records(self, chunk: list[Doc], states: dict | None = None) -> list[SampleRecord]:
        """The chunk's records; with ``states`` each doc is scored from its replayed ``random`` state."""
        import random

        from .lmeval.loading import cached_templates

        records = []
        with cached_templates():  # doc_to_text / doc_to_choice render Jinja templates per doc
            for d in chunk:
                if states is not None:
                    random.setstate(states[d.sample_id][0])
                records.append(self._record(d))
                if states is not None and random.getstate() != states[d.sample_id][1]:
                    raise RuntimeError(f"{self.config.name}: scoring {d.sample_id} drew from `random` differently "
                                       "than its replay with an empty response; its score may differ from lm-eval's")
        return records

    def _record(self, d: Doc) -> SampleRecord:
        loaded = self._load()
        task, names = loaded.tasks[d.subtask], loaded.score_names[d.subtask]
        filter_keys = list(d.instances[0].filtered_resps) if d.instances else ["none"]
        scores: dict[str, Any] = {}
        for key in filter_keys:
            metrics = task.process_results(d.doc, [inst.filtered_resps[key] for inst in d.instances])
            for metric, value in metrics.items():
                scores[names.get((metric, key), metric if len(filter_keys) == 1 else f"{metric}_{key}")] = _jsonable(value)
        extra: dict[str, Any] = {"subtask": d.subtask, "doc_index": d.doc_id}
        record = SampleRecord(sample_id=d.sample_id, scores=scores, input=self._input_text(task, d), extra=extra)
        if task.OUTPUT_TYPE == "multiple_choice":
            self._fill_choice(task, d, record)
        elif task.OUTPUT_TYPE == "generate_until":
            self._fill_generation(task, d, record, filter_keys[0])
        record.correct = self.kind.correct(scores)
        self.kind.fill_record(record, d, loaded)
        return record

    @staticmethod
    def _input_text(task, d: Doc) -> str | None:
        text = task.doc_to_text(d.doc)
        if not isinstance(text, str):
            text = d.instances[0].args[0] if d.instances and isinstance(d.instances[0].args[0], str) else None
        return None if text is None else text[:_INPUT_CHARS]

    @staticmethod
    def _fill_choice(task, d: Doc, record: SampleRecord) -> None:
        lls = [float(inst.resps[0][0]) for inst in d.instances]
        choices = task.doc_to_choice(d.doc)
        gold = task.doc_to_target(d.doc)
        record.prediction = choices[max(range(len(lls)), key=lls.__getitem__)] if lls else None
        if isinstance(gold, int) and 0 <= gold < len(choices):
            record.target = choices[gold]
        else:
            record.target = _jsonable(gold)
        record.extra.update({"choices": _jsonable(list(choices)), "loglikelihoods": lls})

    def _fill_generation(self, task, d: Doc, record: SampleRecord, key: str) -> None:
        filtered = d.instances[0].filtered_resps.get(key) if d.instances else None
        record.prediction = _jsonable(filtered)
        raw = d.instances[0].resps[0] if d.instances and d.instances[0].resps else None
        if raw != filtered:
            record.extra["raw_output"] = _jsonable(raw)
        if self.kind.has_target:
            record.target = _jsonable(task.doc_to_target(d.doc))

    # ------------------------------------------------------------------ corpus metrics
    def aggregate(self, records: list[SampleRecord]) -> TaskResult:
        """Corpus metrics with lm-eval's own task and group aggregation, plus breakdowns."""
        loaded = self._load()
        results = self._lm_eval_results(records)
        metrics, stderr = self._flat_metrics(results.get(loaded.name, {}))
        settings = self._settings(records)
        if not metrics and records:  # a group without aggregate_metric_list: lm-eval reports none
            metrics = _micro_means(records)
            settings["aggregation"] = "micro mean over samples (the lm-eval group defines no aggregation)"
        metrics.update(self.kind.extra_metrics(records))
        direction = self._higher_is_better(metrics)
        breakdowns = self.kind.breakdowns(records, results, loaded, self._flat_metrics)
        specs = lm_eval_metric_specs(loaded.tasks, loaded.groups, loaded.score_names, metrics, direction, breakdowns,
                                     micro_means="aggregation" in settings)
        return TaskResult(
            task=self.config.name, evaluator=self.name, evaluator_version=self.version,
            config_hash=self.config_hash(), metrics=metrics, n_samples=len(records), axis="general",
            primary_metric=self.kind.primary_metric(metrics), higher_is_better=direction, metric_specs=specs,
            stderr=stderr, breakdowns=breakdowns, settings=settings, samples=list(records),
        )

    def _lm_eval_results(self, records: list[SampleRecord]) -> dict[str, dict]:
        """lm-eval's ``_process_results`` on the records' per-sample metric values (docs in lm-eval's order)."""
        from collections import defaultdict

        from lm_eval.evaluator_utils import _process_results

        loaded = self._load()
        order = {name: i for i, name in enumerate(loaded.tasks)}
        ordered = sorted((r for r in records if r.extra.get("subtask") in order),
                         key=lambda r: (order[r.extra["subtask"]], r.extra.get("doc_index", 0)))
        acc: dict[str, dict] = {}
        for record in ordered:
            subtask = record.extra["subtask"]
            entry = acc.setdefault(subtask, {"task": loaded.tasks[subtask], "raw_metrics": defaultdict(list),
                                             "logged_samples": []})
            for (metric, filter_key), flat in loaded.score_names[subtask].items():
                if flat in record.scores:
                    entry["raw_metrics"][(metric, filter_key)].append(record.scores[flat])
        if not acc:
            return {}
        import logging

        logging.getLogger("lm_eval").setLevel(logging.ERROR)  # missing subjects warn per group
        # Subtasks without records are skipped by lm-eval's group aggregation (weights of the present ones).
        processed = _process_results(acc, loaded.groups, _BOOTSTRAP_ITERS)
        return processed.metrics

    def _flat_metrics(self, entry: dict) -> tuple[dict[str, float], dict[str, float]]:
        names = self._load().all_score_names()
        metrics, stderr = {}, {}
        for key, value in entry.items():
            if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            metric, filter_key = key.split(",", 1)
            if metric.endswith("_stderr"):
                base = metric[: -len("_stderr")]
                stderr[names.get((base, filter_key), base)] = float(value)
            else:
                metrics[names.get((metric, filter_key), metric)] = float(value)
        return metrics, stderr

    def _higher_is_better(self, metrics: dict[str, float]) -> dict[str, bool]:
        out: dict[str, bool] = {}
        loaded = self._load()
        for subtask, task in loaded.tasks.items():
            for (metric, _), flat in loaded.score_names[subtask].items():
                if flat in metrics:
                    out[flat] = bool(task.higher_is_better().get(metric, True))
        if "parse_failure_rate" in metrics:
            out["parse_failure_rate"] = False
        return out

    def _settings(self, records: list[SampleRecord]) -> dict[str, Any]:
        tasks = self._load().tasks
        first = next(iter(tasks.values()), None)
        data = self._data_path()
        settings: dict[str, Any] = {
            "lm_eval_task": self.options.lm_eval_task,
            "num_fewshot": None if first is None else first.get_config("num_fewshot"),
            "data": str(data) if data is not None else ("hub" if self.options.lm_eval_config is None else None),
            "limit": self.options.limit,
            "sample_seed": self.options.sample_seed,
            "chat_template": self._chat_applied,
            "system_instruction": self.options.system_instruction,
        }
        if self.options.lm_eval_config is not None:
            settings["lm_eval_config"] = str(self._config_path())
        if first is not None and first.OUTPUT_TYPE == "generate_until":
            settings["generation_kwargs"] = _jsonable(first.get_config("generation_kwargs"))
        fit = self._generation_fit
        if fit is not None and fit.capped:  # the model's context, not the task, set the answers' length
            settings["max_gen_toks_capped"] = {"requested": fit.requested, "used": fit.max_gen_toks,
                                               "context": fit.context, "longest_prompt": fit.longest_prompt}
        settings.update(self.kind.settings(records, self._load()))
        if self.options.variant_of is not None:
            settings["variant_of"] = self.options.variant_of
        return settings

    # ------------------------------------------------------------------ paired bootstrap hook
    @classmethod
    def resample_metrics(cls, records: list[SampleRecord], names: list[str], indices) -> dict[str, Any]:
        """Metric values on resamples ``indices`` (B, n) of ``records``.

        List-valued scores (IFEval ``inst_level_*``) are pooled over the resampled docs' instructions, as
        lm-eval's ``agg_inst_level_acc`` does; scalar scores are averaged (for MMLU's size-weighted ``acc``
        this equals the weighted mean of subjects); ``parse_failure_rate`` comes from ``extra``. Names no
        record carries are left out of the result.
        """
        import numpy as np

        idx = np.asarray(indices)
        out: dict[str, Any] = {}
        for name in names:
            if name == "parse_failure_rate":
                values = np.array([float(bool(r.extra.get("parse_failed"))) for r in records])
                out[name] = values[idx].mean(axis=1)
                continue
            raw = [r.scores.get(name) for r in records]
            if any(v is None for v in raw):
                continue
            if all(isinstance(v, list) for v in raw):
                sums = np.array([float(sum(bool(x) for x in v)) for v in raw])
                counts = np.array([float(len(v)) for v in raw])
                out[name] = sums[idx].sum(axis=1) / np.maximum(counts[idx].sum(axis=1), 1.0)
            else:
                out[name] = np.array([float(v) for v in raw])[idx].mean(axis=1)
        return out


def _filter_keys(task) -> list[str]:
    """The filter names lm-eval scores a doc under (one ``process_results`` call each)."""
    return [ensemble.name for ensemble in getattr(task, "_filters", [])] or ["none"]


def _micro_means(records: list[SampleRecord]) -> dict[str, float]:
    names = dict.fromkeys(k for r in records for k, v in r.scores.items() if isinstance(v, (bool, int, float)))
    return {name: mean(r.scores[name] for r in records if name in r.scores) for name in names}
