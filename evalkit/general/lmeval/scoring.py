"""Scoring answered docs into per-sample records: lm-eval's filters and ``process_results``, the record's
prediction/target/extra fields, and the replay of the ``random`` states lm-eval scores IFEval docs from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...records import SampleRecord
from .kinds import TaskKind
from .loading import LM_EVAL_SEEDS, LoadedTasks
from .requests import Doc

__all__ = ["RecordScorer", "jsonable", "filter_keys"]

_INPUT_CHARS = 2000


def jsonable(value: Any) -> Any:
    """Per-sample metric values as plain JSON types (numpy scalars, tuples)."""
    if value is None or type(value) in (bool, int, float, str):  # exact types: numpy scalars subclass float
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def filter_keys(task) -> list[str]:
    """The filter names lm-eval scores a doc under (one ``process_results`` call each)."""
    return [ensemble.name for ensemble in getattr(task, "_filters", [])] or ["none"]


class RecordScorer:
    """Turns a chunk of answered docs into records, as lm-eval filters and scores them.

    ``load`` returns the evaluator's loaded tasks (loaded once); ``reload`` loads them afresh, which the
    ``random`` replay needs (lm-eval's loading draws from ``random``).
    """

    def __init__(
        self, load: Callable[[], LoadedTasks], reload: Callable[[], LoadedTasks], kind: TaskKind, task_name: str
    ):
        self._load = load
        self._reload = reload
        self._kind = kind
        self._task_name = task_name

    def apply_filters(self, chunk: list[Doc]) -> None:
        tasks = self._load().tasks
        for subtask in dict.fromkeys(d.subtask for d in chunk):
            members = [inst for d in chunk if d.subtask == subtask for inst in d.instances]
            for ensemble in getattr(tasks[subtask], "_filters", []):
                ensemble.apply(members)

    def scoring_states(self, docs: list[Doc]) -> dict:
        """The global ``random`` state before and after each doc's scoring, as lm-eval scores them.

        ``simple_evaluate`` seeds ``random``, loads the tasks (lm-eval's ``Task.task_name`` draws eight
        random characters on every read, and loading reads it), builds the requests and generates (neither
        draws from ``random``; greedy generation draws nothing), then calls ``process_results`` doc by doc in
        document order. The kinds that set ``replayable_scoring`` draw from ``random`` only as a function of
        the doc (IFEval: ``build_description`` picks random values for instructions without kwargs, never
        looking at the response). So: seed, load the tasks once more as lm-eval does, and score every doc
        with empty responses in document order; the state before each doc is the state lm-eval scores it
        from. ``records`` checks that the real scoring ends in the replayed state. The evaluator keeps the
        result per build: killed, resumed and sequential runs all score from the same states, whatever this
        process loaded or drew before.
        """
        import random

        random.seed(LM_EVAL_SEEDS[0])
        self._reload()  # the draws lm-eval's loading makes (the loaded copy is not kept)
        tasks, states = self._load().tasks, {}
        for d in docs:
            before = random.getstate()
            task = tasks[d.subtask]
            for _ in filter_keys(task):
                task.process_results(d.doc, ["" for _ in d.instances])
            states[d.sample_id] = (before, random.getstate())
        return states

    def records(self, chunk: list[Doc], states: dict | None = None) -> list[SampleRecord]:
        """The chunk's records; with ``states`` each doc is scored from its replayed ``random`` state."""
        import random

        from .loading import cached_templates

        records = []
        with cached_templates(self._load().renders):  # doc_to_text / doc_to_choice render Jinja per doc
            for d in chunk:
                if states is not None:
                    random.setstate(states[d.sample_id][0])
                records.append(self.record(d))
                if states is not None and random.getstate() != states[d.sample_id][1]:
                    raise RuntimeError(
                        f"{self._task_name}: scoring {d.sample_id} drew from `random` differently "
                        "than its replay with an empty response; its score may differ from lm-eval's"
                    )
        return records

    def record(self, d: Doc) -> SampleRecord:
        loaded = self._load()
        task, names = loaded.tasks[d.subtask], loaded.score_names[d.subtask]
        keys = list(d.instances[0].filtered_resps) if d.instances else ["none"]
        scores: dict[str, Any] = {}
        for key in keys:
            metrics = task.process_results(d.doc, [inst.filtered_resps[key] for inst in d.instances])
            for metric, value in metrics.items():
                scores[names.get((metric, key), metric if len(keys) == 1 else f"{metric}_{key}")] = jsonable(value)
        extra: dict[str, Any] = {"subtask": d.subtask, "doc_index": d.doc_id}
        record = SampleRecord(sample_id=d.sample_id, scores=scores, input=_input_text(task, d), extra=extra)
        if task.OUTPUT_TYPE == "multiple_choice":
            _fill_choice(task, d, record)
        elif task.OUTPUT_TYPE == "generate_until":
            self._fill_generation(task, d, record, keys[0])
        record.correct = self._kind.correct(scores)
        self._kind.fill_record(record, d, loaded)
        return record

    def _fill_generation(self, task, d: Doc, record: SampleRecord, key: str) -> None:
        filtered = d.instances[0].filtered_resps.get(key) if d.instances else None
        record.prediction = jsonable(filtered)
        raw = d.instances[0].resps[0] if d.instances and d.instances[0].resps else None
        if raw != filtered:
            record.extra["raw_output"] = jsonable(raw)
        if self._kind.has_target:
            record.target = jsonable(task.doc_to_target(d.doc))


def _input_text(task, d: Doc) -> str | None:
    text = task.doc_to_text(d.doc)
    if not isinstance(text, str):
        text = d.instances[0].args[0] if d.instances and isinstance(d.instances[0].args[0], str) else None
    return None if text is None else text[:_INPUT_CHARS]


def _fill_choice(task, d: Doc, record: SampleRecord) -> None:
    lls = [float(inst.resps[0][0]) for inst in d.instances]
    choices = task.doc_to_choice(d.doc)
    gold = task.doc_to_target(d.doc)
    record.prediction = choices[max(range(len(lls)), key=lls.__getitem__)] if lls else None
    if isinstance(gold, int) and 0 <= gold < len(choices):
        record.target = choices[gold]
    else:
        record.target = jsonable(gold)
    record.extra.update({"choices": jsonable(list(choices)), "loglikelihoods": lls})
