"""The ``lm_eval`` evaluator: any lm-eval task or group (MMLU, IFEval, hellaswag, ...), per sample.

Requests are built, filtered, scored and aggregated by lm-eval's own machinery (``TaskManager``,
``Task.build_all_requests``, the task's filter ensembles, ``Task.process_results``, lm-eval's task and
group aggregation), so the numbers equal ``lm_eval.simple_evaluate``'s on the same model and data.
What evalkit adds: documents are sent to the model in chunks of ``batch_docs`` and each chunk's
per-sample records are saved before the next starts (a killed run resumes where it stopped); local
data folders for MMLU and IFEval; a letter-answer MMLU variant; breakdowns per subject, category and
instruction type.

Task file keys (see ``tasks/mmlu.yaml``)::

    lm_eval_task: mmlu        # lm-eval task or group name (required)
    lm_eval_config: null      # a custom lm-eval task YAML or folder (relative to the task file)
    num_fewshot: 0            # null: the task's own default
    data: null                # local data: MMLU folder, IFEval JSONL (null: the hub)
    limit: null               # docs per subtask (int) or fraction (< 1), as lm-eval's --limit
    batch_docs: 64            # docs per saved batch
    generation: {}            # generation kwargs overrides (generate_until tasks)
    chat_template: null       # true/false; null: applied to generation tasks when the model has one
    system_instruction: null
    seed: 1234                # lm-eval's few-shot sampler seed
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import hash_tree
from ..errors import UsageError, did_you_mean
from ..records import SampleRecord, TaskResult
from ..taskconfig import TaskConfig, validate_options
from ._lm_eval_specs import LM_EVAL_STATIC_SPECS, lm_eval_metric_specs
from .base import SaveBatch, register_evaluator

__all__ = ["LmEvalEvaluator", "LmEvalOptions"]

#: lm-eval's default seeds in ``simple_evaluate`` (random, numpy, torch, few-shot sampler).
_LM_EVAL_SEEDS = (0, 1234, 1234, 1234)
_NEEDS = {"multiple_choice": "loglikelihood", "loglikelihood": "loglikelihood",
          "loglikelihood_rolling": "loglikelihood", "generate_until": "generate_until"}
#: Known tasks: kind -> (lm-eval name, primary metric, needs)
_KNOWN = {"mmlu": ("mmlu", "acc", "loglikelihood"),
          "mmlu_letter": ("mmlu_letter", "exact_match", "generate_until"),
          "ifeval": ("ifeval", "prompt_level_strict_acc", "generate_until")}
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
    batch_docs: int = 64
    generation: dict | None = None
    chat_template: bool | None = None
    system_instruction: str | None = None
    seed: int | None = None


@dataclass
class _Loaded:
    """lm-eval objects of one task: leaf tasks in lm-eval's order, groups, flat score names."""

    name: str
    tasks: dict[str, Any]
    groups: dict[str, Any]
    score_names: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)


@dataclass
class _Doc:
    subtask: str
    doc_id: int
    doc: dict
    sample_id: str
    instances: list


def _check_options(options: LmEvalOptions, config: TaskConfig) -> None:
    src = config.source
    if not options.lm_eval_task.strip():
        raise UsageError(f"{src}: key 'lm_eval_task' must name an lm-eval task or group, e.g. mmlu, ifeval, hellaswag.")
    if options.num_fewshot is not None and options.num_fewshot < 0:
        raise UsageError(f"{src}: key 'num_fewshot' must be an integer >= 0 or null; got {options.num_fewshot!r}.")
    if options.batch_docs < 1:
        raise UsageError(f"{src}: key 'batch_docs' must be an integer >= 1; got {options.batch_docs!r}.")
    if options.limit is not None and (options.limit <= 0 or (isinstance(options.limit, float) and options.limit >= 1
                                                             and not options.limit.is_integer())):
        raise UsageError(f"{src}: key 'limit' must be a positive integer (docs per subtask) or a fraction "
                         f"0 < limit < 1; got {options.limit!r}.")


def _jsonable(value: Any) -> Any:
    """Per-sample metric values as plain JSON types (numpy scalars, tuples)."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


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
        self.kind = self._kind()
        if self.options.data is not None and self.kind == "generic":
            raise UsageError(
                f"{config.source}: key 'data' is supported for lm_eval_task mmlu, mmlu_letter and ifeval; for "
                f"{self.options.lm_eval_task!r} write an lm-eval YAML with dataset_path/dataset_kwargs.data_files "
                "and set lm_eval_config to it."
            )
        self._loaded: _Loaded | None = None
        self._hash: str | None = None
        self._chat_applied: bool | None = None
        self._subjects: list[str] | None = None

    # ------------------------------------------------------------------ identity and checks
    def _kind(self) -> str:
        if self.options.lm_eval_config is None and self.options.lm_eval_task in _KNOWN:
            return self.options.lm_eval_task
        return "generic"

    @property
    def needs(self) -> frozenset[str]:
        """Request types the model must answer, from the lm-eval tasks' output types."""
        if self.kind in _KNOWN:
            return frozenset({_KNOWN[self.kind][2]})
        return frozenset(_NEEDS[t.OUTPUT_TYPE] for t in self._load().tasks.values() if t.OUTPUT_TYPE in _NEEDS)

    def _data_path(self) -> Path | None:
        return None if self.options.data is None else self.config.resolve_path(self.options.data)

    def _config_path(self) -> Path | None:
        return None if self.options.lm_eval_config is None else self.config.resolve_path(self.options.lm_eval_config)

    def config_hash(self) -> str:
        """Hash of options, data content, custom YAML content and the generated-template version."""
        if self._hash is None:
            from .._io import stable_hash
            from ..general.overrides import GENERATOR_VERSION

            self._hash = stable_hash({"options": dataclasses.asdict(self.options), "kind": self.kind,
                                      "data": self._content_digest(self._data_path()),
                                      "lm_eval_config": self._content_digest(self._config_path()),
                                      "generator": GENERATOR_VERSION, "evaluator": self.version})
        return self._hash

    @staticmethod
    def _content_digest(path: Path | None) -> str | None:
        return hash_tree(path) if path is not None and path.exists() else None

    def check_ready(self) -> None:
        """Data paths exist, the task name is known, NLTK punkt_tab is there for IFEval (before any model loads)."""
        src = self.config.source
        data, custom = self._data_path(), self._config_path()
        if custom is not None and not custom.exists():
            raise UsageError(f"{src}: key 'lm_eval_config': {custom} does not exist (an lm-eval task YAML or folder).")
        if data is not None:
            if self.kind == "ifeval" and not data.is_file():
                raise UsageError(f"{src}: key 'data': IFEval file {data} does not exist (Google's input_data.jsonl format).")
            if self.kind in ("mmlu", "mmlu_letter"):
                from ..general.mmlu_data import scan_mmlu_folder

                folder = scan_mmlu_folder(data, source=f"{src}: key 'data'")
                if (self.options.num_fewshot or 0) > 0:
                    missing = [s for s in folder.subjects if not folder.has_dev(s)]
                    if missing:
                        raise UsageError(f"{src}: num_fewshot {self.options.num_fewshot} needs dev/<subject>_dev.csv "
                                         f"in {data}; missing for {', '.join(missing[:5])}.")
        if self._uses_ifeval():
            from ..general.punkt import ensure_punkt_tab

            ensure_punkt_tab()
        self._task_manager()  # unknown names fail here, with a did-you-mean

    def _uses_ifeval(self) -> bool:
        return self.kind == "ifeval" or "ifeval" in self.options.lm_eval_task

    # ------------------------------------------------------------------ lm-eval task loading
    def _task_manager(self):
        """(TaskManager, lm-eval name) indexing only the YAML folders this task needs."""
        if getattr(self, "_tm", None) is None:
            self._tm = self._build_task_manager()
        return self._tm

    def _build_task_manager(self):
        from lm_eval.tasks import TaskManager

        from ..general import overrides

        name, custom = self.options.lm_eval_task, self._config_path()
        if self.kind in ("mmlu", "mmlu_letter"):
            variant = "loglikelihood" if self.kind == "mmlu" else "letter"
            folder, self._subjects = overrides.mmlu_override_dir(self._data_path(), variant,
                                                                 source=f"{self.config.source}: key 'data'")
            return TaskManager(include_path=str(folder), include_defaults=False), name
        if self.kind == "ifeval":
            folder = (overrides.ifeval_override_dir(self._data_path()) if self._data_path() is not None
                      else overrides.lm_eval_tasks_dir() / "ifeval")
            return TaskManager(include_path=str(folder), include_defaults=False), name
        if custom is not None:
            folder = custom if custom.is_dir() else custom.parent
            manager = TaskManager(include_path=str(folder), include_defaults=False)
            return (manager if name in manager.all_tasks else self._full_index(str(folder))), name
        return self._fast_index(name) or self._full_index(None), name

    def _fast_index(self, name: str):
        """Index only lm-eval's folder(s) whose name starts the task name (hellaswag, arc for arc_easy)."""
        from lm_eval.tasks import TaskManager

        from ..general.overrides import lm_eval_tasks_dir

        root = lm_eval_tasks_dir()
        candidates = sorted((d for d in root.iterdir() if d.is_dir() and (name == d.name or name.startswith(d.name + "_"))),
                            key=lambda d: -len(d.name))
        for folder in candidates:
            manager = TaskManager(include_path=str(folder), include_defaults=False)
            if name in manager.all_tasks:
                return manager
        return None

    def _full_index(self, include_path: str | None):
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=include_path)
        name = self.options.lm_eval_task
        if name not in manager.all_tasks:
            raise UsageError(f"{self.config.source}: key 'lm_eval_task': unknown lm-eval task or group {name!r}."
                             f"{did_you_mean(name, manager.all_tasks)}")
        return manager

    def _load(self) -> _Loaded:
        if self._loaded is None:
            if self._uses_ifeval():
                from ..general.punkt import ensure_punkt_tab

                ensure_punkt_tab()  # lm-eval's IFEval module would try a download at import otherwise
            manager, name = self._task_manager()
            try:
                loaded = manager.load([name])
            except UsageError:
                raise
            except Exception as exc:
                raise UsageError(self._load_error(name, exc)) from exc
            self._loaded = _Loaded(name=name, tasks=dict(loaded["tasks"]), groups=dict(loaded.get("groups", {})))
            for task_name, task in self._loaded.tasks.items():
                self._configure(task)
                self._loaded.score_names[task_name] = self._score_names(task)
        return self._loaded

    def _load_error(self, name: str, exc: Exception) -> str:
        hint = ("set key 'data' to a local copy (offline machines cannot reach the hub)" if self.kind != "generic"
                else "point lm_eval_config at an lm-eval YAML with a local dataset_path/data_files when offline")
        return f"{self.config.source}: lm-eval could not load task {name!r} ({type(exc).__name__}: {exc}); {hint}."

    def _configure(self, task) -> None:
        """Apply generation, few-shot and seed settings exactly as ``lm_eval.simple_evaluate`` does."""
        opts = self.options
        if task.get_config("output_type") == "generate_until" and opts.generation:
            task.set_config(key="generation_kwargs", value=dict(opts.generation), update=True)
        if opts.num_fewshot is not None:
            if task.get_config("num_fewshot") != 0:  # lm-eval never overrides a task that pins 0
                task.set_config(key="num_fewshot", value=opts.num_fewshot)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=_LM_EVAL_SEEDS[3] if opts.seed is None else opts.seed)

    @staticmethod
    def _score_names(task) -> dict[tuple[str, str], str]:
        """(metric, filter) -> flat score name: ``acc`` for one filter, ``exact_match_flexible-extract`` for several."""
        filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
        metrics = list(task.aggregation())
        single = len(filters) == 1
        return {(m, f): (m if single or f == "none" else f"{m}_{f}") for f in filters for m in metrics}

    # ------------------------------------------------------------------ samples
    def _sample_id(self, subtask: str, doc_id: int, doc: dict) -> str:
        if self.kind == "ifeval" and isinstance(doc, dict) and "key" in doc:
            return str(doc["key"])
        if self.kind == "mmlu_letter":
            subtask = "mmlu_" + subtask[len("mmlu_letter_"):]  # same ids as mmlu: pair format and knowledge
        return f"{subtask}/{doc_id}"

    def _limit(self, task) -> int | None:
        from lm_eval.evaluator_utils import get_sample_size

        return get_sample_size(task, self.options.limit)

    def sample_ids(self) -> list[str]:
        """Ids of the docs this task evaluates, in lm-eval's order (subtasks, then doc index)."""
        ids = []
        for subtask, task in self._load().tasks.items():
            for doc_id, doc in task.doc_iterator(rank=0, limit=self._limit(task), world_size=1):
                ids.append(self._sample_id(subtask, doc_id, doc))
        return ids

    def _use_chat_template(self, lm: Any) -> bool:
        flag = getattr(lm, "evalkit_chat_template", None)  # set by the loader from --chat-template/--no-chat-template
        if flag is not None:  # the command line wins over the task file
            return bool(flag)
        if self.options.chat_template is not None:
            return self.options.chat_template
        generative = any(t.OUTPUT_TYPE == "generate_until" for t in self._load().tasks.values())
        tokenizer = getattr(lm, "tokenizer", None)
        return generative and bool(getattr(tokenizer, "chat_template", None)) and hasattr(lm, "apply_chat_template")

    def _build_docs(self, lm: Any, apply_chat: bool) -> list[_Doc]:
        """Every doc with its Instances, built once per prompt format and reused.

        ``compare --sequential`` calls ``run`` once per chunk; rebuilding full MMLU's requests each
        time would cost ~45 s a chunk. Prompts depend on the model only through its chat template.
        """
        chat = getattr(getattr(lm, "tokenizer", None), "chat_template", None) if apply_chat else None
        key = (apply_chat, getattr(lm, "tokenizer_name", "") if apply_chat else "", str(chat))
        cache = self.__dict__.setdefault("_docs_cache", {})
        if key not in cache:
            cache[key] = self._build_all_docs(lm, apply_chat)
        return cache[key]

    def _build_all_docs(self, lm: Any, apply_chat: bool) -> list[_Doc]:
        """Every doc with its Instances, built by lm-eval for all docs (few-shot sampling order kept)."""
        docs: list[_Doc] = []
        for subtask, task in self._load().tasks.items():
            limit = self._limit(task)
            task.build_all_requests(
                limit=limit, rank=0, world_size=1, cache_requests=False,
                system_instruction=self.options.system_instruction, apply_chat_template=apply_chat,
                fewshot_as_multiturn=True,  # simple_evaluate's default
                chat_template=getattr(lm, "apply_chat_template", None) if apply_chat else None,
                tokenizer_name=getattr(lm, "tokenizer_name", "") if apply_chat else "",
            )
            by_doc: dict[int, list] = {}
            for inst in task.instances:
                by_doc.setdefault(inst.doc_id, []).append(inst)
            for doc_id, doc in task.doc_iterator(rank=0, limit=limit, world_size=1):
                instances = sorted(by_doc.get(doc_id, []), key=lambda i: i.idx)
                docs.append(_Doc(subtask, doc_id, doc, self._sample_id(subtask, doc_id, doc), instances))
        return docs

    def run(self, lm: Any, *, done: Mapping[str, SampleRecord], save: SaveBatch) -> list[SampleRecord]:
        """Evaluate the docs not in ``done``, ``batch_docs`` at a time, saving each batch's records."""
        from ..progress import bar

        self._seed_everything()
        apply_chat = self._use_chat_template(lm)
        self._chat_applied = apply_chat
        docs = self._build_docs(lm, apply_chat)
        pending = self._longest_first([d for d in docs if d.sample_id not in done])
        new: dict[str, SampleRecord] = {}
        size = self.options.batch_docs
        with bar(len(docs), f"{self.config.name}", unit="doc", initial=len(docs) - len(pending)) as progress:
            for start in range(0, len(pending), size):
                chunk = pending[start:start + size]
                self._answer(lm, chunk)
                records = [self._record(d) for d in chunk]
                save(records)
                new.update((r.sample_id, r) for r in records)
                progress.update(len(chunk))
        return [new[d.sample_id] if d.sample_id in new else done[d.sample_id] for d in docs]

    def _longest_first(self, pending: list[_Doc]) -> list[_Doc]:
        """Log-likelihood docs longest first, so each chunk's batches pad little (lm-eval sorts all requests).

        Generation docs keep lm-eval's order: IFEval's scoring draws from ``random`` for a few
        instructions, and the same processing order keeps those draws equal to lm-eval's.
        """
        if any(t.OUTPUT_TYPE == "generate_until" for t in self._load().tasks.values()):
            return pending

        def length(d: _Doc) -> int:
            return max((sum(len(a) for a in inst.args if isinstance(a, str)) for inst in d.instances), default=0)

        return sorted(pending, key=length, reverse=True)

    def _seed_everything(self) -> None:
        """The global seeds ``simple_evaluate`` sets (sampling generation depends on them)."""
        import random

        import numpy as np

        random.seed(_LM_EVAL_SEEDS[0])
        np.random.seed(_LM_EVAL_SEEDS[1])
        try:
            import torch

            torch.manual_seed(_LM_EVAL_SEEDS[2])
        except ImportError:  # an API-only LM does not need torch
            pass

    def _answer(self, lm: Any, chunk: list[_Doc]) -> None:
        """Ask ``lm`` for the chunk's requests (by type, as lm-eval does) and apply the tasks' filters."""
        instances = [inst for d in chunk for inst in d.instances]
        for d in chunk:
            for inst in d.instances:
                inst.resps = []
                inst.filtered_resps = {}
                inst.task_name = self.config.name
                inst.evalkit_sample_id = d.sample_id
        for reqtype in dict.fromkeys(inst.request_type for inst in instances):
            cloned = [inst for inst in instances if inst.request_type == reqtype for _ in range(inst.repeats)]
            resps = getattr(lm, reqtype)(cloned)
            if len(resps) != len(cloned):
                raise RuntimeError(f"{type(lm).__name__}.{reqtype} returned {len(resps)} answers for {len(cloned)} requests")
            for resp, inst in zip(resps, cloned):
                inst.resps.append(resp)
        tasks = self._load().tasks
        for subtask in dict.fromkeys(d.subtask for d in chunk):
            members = [inst for d in chunk if d.subtask == subtask for inst in d.instances]
            for ensemble in getattr(tasks[subtask], "_filters", []):
                ensemble.apply(members)

    # ------------------------------------------------------------------ per-sample records
    def _record(self, d: _Doc) -> SampleRecord:
        task = self._load().tasks[d.subtask]
        names = self._load().score_names[d.subtask]
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
        record.correct = self._correct(scores)
        self._fill_kind(d, record)
        return record

    @staticmethod
    def _input_text(task, d: _Doc) -> str | None:
        text = task.doc_to_text(d.doc)
        if not isinstance(text, str):
            text = d.instances[0].args[0] if d.instances and isinstance(d.instances[0].args[0], str) else None
        return None if text is None else text[:_INPUT_CHARS]

    @staticmethod
    def _fill_choice(task, d: _Doc, record: SampleRecord) -> None:
        lls = [float(inst.resps[0][0]) for inst in d.instances]
        choices = task.doc_to_choice(d.doc)
        gold = task.doc_to_target(d.doc)
        record.prediction = choices[max(range(len(lls)), key=lls.__getitem__)] if lls else None
        if isinstance(gold, int) and 0 <= gold < len(choices):
            record.target = choices[gold]
        else:
            record.target = _jsonable(gold)
        record.extra.update({"choices": _jsonable(list(choices)), "loglikelihoods": lls})

    def _fill_generation(self, task, d: _Doc, record: SampleRecord, key: str) -> None:
        filtered = d.instances[0].filtered_resps.get(key) if d.instances else None
        record.prediction = _jsonable(filtered)
        raw = d.instances[0].resps[0] if d.instances and d.instances[0].resps else None
        if raw != filtered:
            record.extra["raw_output"] = _jsonable(raw)
        if self.kind != "ifeval":
            record.target = _jsonable(task.doc_to_target(d.doc))

    def _correct(self, scores: dict[str, Any]) -> bool | None:
        primary = _KNOWN[self.kind][1] if self.kind in _KNOWN else next(iter(scores), None)
        value = scores.get(primary)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        return None

    def _fill_kind(self, d: _Doc, record: SampleRecord) -> None:
        if self.kind in ("mmlu", "mmlu_letter"):
            from ..general.overrides import MMLU_VARIANTS, mmlu_subjects

            subject = d.subtask[len(MMLU_VARIANTS["loglikelihood" if self.kind == "mmlu" else "letter"][1]):]
            record.group = subject
            record.extra["category"] = mmlu_subjects().get(subject, {}).get("category", "other")
            if self.kind == "mmlu_letter":
                record.extra["parse_failed"] = record.prediction == "[invalid]"
        elif self.kind == "ifeval":
            record.extra["instruction_ids"] = list(d.doc.get("instruction_id_list", []))
            record.target = None
        elif len(self._load().tasks) > 1:
            record.group = d.subtask

    # ------------------------------------------------------------------ corpus metrics
    def aggregate(self, records: list[SampleRecord]) -> TaskResult:
        """Corpus metrics with lm-eval's own task and group aggregation, plus breakdowns."""
        loaded = self._load()
        results = self._lm_eval_results(records)
        top = results.get(loaded.name, {})
        metrics, stderr = self._flat_metrics(top)
        settings = self._settings(records)
        if not metrics and records:  # a group without aggregate_metric_list: lm-eval reports none
            metrics = _micro_means(records)
            settings["aggregation"] = "micro mean over samples (the lm-eval group defines no aggregation)"
        if self.kind == "mmlu_letter":
            metrics["parse_failure_rate"] = _mean(bool(r.extra.get("parse_failed")) for r in records)
        direction, breakdowns = self._higher_is_better(metrics), self._breakdowns(records, results)
        specs = lm_eval_metric_specs(loaded.tasks, loaded.groups, loaded.score_names, metrics, direction, breakdowns,
                                     micro_means="aggregation" in settings)
        return TaskResult(
            task=self.config.name, evaluator=self.name, evaluator_version=self.version,
            config_hash=self.config_hash(), metrics=metrics, n_samples=len(records), axis="general",
            primary_metric=self._primary(metrics), higher_is_better=direction, metric_specs=specs,
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
        names = {k: v for per_task in self._load().score_names.values() for k, v in per_task.items()}
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

    def _primary(self, metrics: dict[str, float]) -> str | None:
        if self.kind in _KNOWN:
            return _KNOWN[self.kind][1]
        return next(iter(metrics), None)

    def _higher_is_better(self, metrics: dict[str, float]) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for subtask, task in self._load().tasks.items():
            for (metric, filter_key), flat in self._load().score_names[subtask].items():
                if flat in metrics:
                    out[flat] = bool(task.higher_is_better().get(metric, True))
        if "parse_failure_rate" in metrics:
            out["parse_failure_rate"] = False
        return out

    def _breakdowns(self, records: list[SampleRecord], results: dict[str, dict]) -> dict[str, dict]:
        if self.kind in ("mmlu", "mmlu_letter"):
            return self._mmlu_breakdowns(records, results)
        if self.kind == "ifeval":
            return {"instruction": instruction_breakdown(records)}
        if len(self._load().tasks) > 1:
            subtasks = {}
            for subtask in self._load().tasks:
                flat, _ = self._flat_metrics(results.get(subtask, {}))
                if flat:
                    subtasks[subtask] = {**flat, "n": results[subtask].get("sample_len", 0)}
            return {"subtask": subtasks}
        return {}

    def _mmlu_breakdowns(self, records: list[SampleRecord], results: dict[str, dict]) -> dict[str, dict]:
        from ..general.overrides import MMLU_CATEGORIES, MMLU_VARIANTS

        top, prefix, metric, _ = MMLU_VARIANTS["loglikelihood" if self.kind == "mmlu" else "letter"]
        subject, category = {}, {}
        failures: dict[str, list[bool]] = {}
        for record in records:
            failures.setdefault(record.group, []).append(bool(record.extra.get("parse_failed")))
        for subtask in self._load().tasks:
            flat, _ = self._flat_metrics(results.get(subtask, {}))
            if metric in flat:
                name = subtask[len(prefix):]
                subject[name] = {metric: flat[metric], "n": results[subtask].get("sample_len", 0)}
                if self.kind == "mmlu_letter":
                    subject[name]["parse_failure_rate"] = _mean(failures.get(name, []))
        for cat in MMLU_CATEGORIES:
            flat, _ = self._flat_metrics(results.get(f"{top}_{cat}", {}))
            if metric in flat:
                category[cat] = {metric: flat[metric], "n": results[f"{top}_{cat}"].get("sample_len", 0)}
        return {"subject": subject, "category": category}

    def _settings(self, records: list[SampleRecord]) -> dict[str, Any]:
        tasks = self._load().tasks
        first = next(iter(tasks.values()), None)
        data = self._data_path()
        settings: dict[str, Any] = {
            "lm_eval_task": self.options.lm_eval_task,
            "num_fewshot": None if first is None else first.get_config("num_fewshot"),
            "data": str(data) if data is not None else ("hub" if self.options.lm_eval_config is None else None),
            "limit": self.options.limit,
            "chat_template": self._chat_applied,
            "system_instruction": self.options.system_instruction,
        }
        if self.options.lm_eval_config is not None:
            settings["lm_eval_config"] = str(self._config_path())
        if first is not None and first.OUTPUT_TYPE == "generate_until":
            settings["generation_kwargs"] = _jsonable(first.get_config("generation_kwargs"))
        if self.kind in ("mmlu", "mmlu_letter"):
            settings["subjects"] = sorted({r.group for r in records if r.group})
        if self.kind == "mmlu_letter":
            settings["variant_of"] = "mmlu"
        if len(tasks) > 1 and self.kind == "generic":
            settings["subtasks"] = list(tasks)
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


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


def _micro_means(records: list[SampleRecord]) -> dict[str, float]:
    names = dict.fromkeys(k for r in records for k, v in r.scores.items() if isinstance(v, (bool, int, float)))
    return {name: _mean(r.scores[name] for r in records if name in r.scores) for name in names}


def instruction_breakdown(records: list[SampleRecord]) -> dict[str, dict[str, float]]:
    """IFEval accuracy per instruction id: ``{id: {"acc": strict, "loose_acc": loose, "n": count}}``.

    Examples
    --------
    >>> from evalkit.records import SampleRecord
    >>> r = SampleRecord("1", scores={"inst_level_strict_acc": [True, False],
    ...                               "inst_level_loose_acc": [True, True]},
    ...                  extra={"instruction_ids": ["punctuation:no_comma", "keywords:existence"]})
    >>> instruction_breakdown([r])["keywords:existence"]
    {'acc': 0.0, 'loose_acc': 1.0, 'n': 1}
    """
    tallies: dict[str, list[int]] = {}
    for record in records:
        ids = record.extra.get("instruction_ids", [])
        strict = record.scores.get("inst_level_strict_acc", [])
        loose = record.scores.get("inst_level_loose_acc", [])
        for i, inst_id in enumerate(ids):
            tally = tallies.setdefault(inst_id, [0, 0, 0])
            tally[0] += bool(strict[i]) if i < len(strict) else 0
            tally[1] += bool(loose[i]) if i < len(loose) else 0
            tally[2] += 1
    return {k: {"acc": s / n, "loose_acc": lo / n, "n": n} for k, (s, lo, n) in sorted(tallies.items())}

