"""What differs between the task kinds the ``lm_eval`` evaluator knows: one small strategy per kind.

- :class:`GenericKind`: any lm-eval task or group (lm-eval's own YAMLs or a custom one);
- :class:`MmluKind`: MMLU from a local folder or the hub, breakdowns per subject and category;
- :class:`MmluLetterKind`: MMLU answered by generating a letter, with parse failures counted;
- :class:`IfevalKind`: IFEval, sample ids from the prompt keys, a breakdown per instruction.

The evaluator asks its kind for the TaskManager, sample ids, record fields, extra metrics, breakdowns and
settings; everything lm-eval does (prompts, scoring, aggregation) stays in lm-eval.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import UsageError
from ...registry import Registry

if TYPE_CHECKING:
    from ...records import SampleRecord
    from .loading import LoadedTasks
    from .requests import Doc

__all__ = ["TaskKind", "GenericKind", "MmluKind", "MmluLetterKind", "IfevalKind", "TASK_KINDS", "kind_for"]

#: flat metrics of one lm-eval results entry: (metrics, stderr)
FlatMetrics = Callable[[dict], "tuple[dict[str, float], dict[str, float]]"]


class TaskKind:
    """The base strategy: an lm-eval task or group with nothing evalkit-specific."""

    name = "generic"
    primary: str | None = None  # None: the first metric
    request_type: str | None = None  # None: from the loaded tasks' output types
    accepts_data = False  # key 'data' (a local copy) is understood
    has_target = True  # lm-eval's doc_to_target is a meaningful target for records
    # Generation kinds whose scoring draws from ``random`` only as a function of the doc (never of the
    # response): they are generated in lm-eval's length order and scored from replayed random states.
    replayable_scoring = False
    ids_read_docs = False  # sample_id needs the doc itself, not only its position

    def __init__(self, task_name: str, data: Path | None, source: str):
        self.task_name, self.data, self.source = task_name, data, source

    # ------------------------------------------------------------------ loading
    @property
    def uses_ifeval(self) -> bool:
        return "ifeval" in self.task_name

    def check_data(self, num_fewshot: int | None) -> None:
        """Raise UsageError for a missing or incomplete local data copy (before any model loads)."""

    def task_manager(self, custom: Path | None):
        from .loading import index_tasks

        return index_tasks(self.task_name, custom, self.source)

    @property
    def offline_hint(self) -> str:
        return "point lm_eval_config at an lm-eval YAML with a local dataset_path/data_files when offline"

    # ------------------------------------------------------------------ records
    def sample_id(self, subtask: str, doc_id: int, doc: dict | None) -> str:
        """The record id of a doc (``doc`` may be None: only kinds with ``ids_read_docs`` read it)."""
        return f"{subtask}/{doc_id}"

    def fill_record(self, record: "SampleRecord", d: "Doc", loaded: "LoadedTasks") -> None:
        if len(loaded.tasks) > 1:
            record.group = d.subtask

    def correct(self, scores: dict[str, Any]) -> bool | None:
        value = scores.get(self.primary if self.primary is not None else next(iter(scores), None))
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        return None

    # ------------------------------------------------------------------ corpus results
    def primary_metric(self, metrics: dict[str, float]) -> str | None:
        return self.primary if self.primary is not None else next(iter(metrics), None)

    def extra_metrics(self, records: list["SampleRecord"]) -> dict[str, float]:
        return {}

    def breakdowns(
        self, records: list["SampleRecord"], results: dict[str, dict], loaded: "LoadedTasks", flat: FlatMetrics
    ) -> dict[str, dict]:
        if len(loaded.tasks) <= 1:
            return {}
        subtasks = {}
        for subtask in loaded.tasks:
            metrics, _ = flat(results.get(subtask, {}))
            if metrics:
                subtasks[subtask] = {**metrics, "n": results[subtask].get("sample_len", 0)}
        return {"subtask": subtasks}

    def settings(self, records: list["SampleRecord"], loaded: "LoadedTasks") -> dict[str, Any]:
        return {"subtasks": list(loaded.tasks)} if len(loaded.tasks) > 1 else {}


GenericKind = TaskKind


class MmluKind(TaskKind):
    """MMLU (log-likelihood of the answer letters), from a local folder (key 'data') or the hub."""

    name = "mmlu"
    primary = "acc"
    request_type = "loglikelihood"
    accepts_data = True
    variant = "loglikelihood"

    @property
    def uses_ifeval(self) -> bool:
        return False

    def check_data(self, num_fewshot: int | None) -> None:
        if self.data is None:
            return
        from ..mmlu_data import scan_mmlu_folder

        folder = scan_mmlu_folder(self.data, source=f"{self.source}: key 'data'")
        if (num_fewshot or 0) > 0:
            missing = [s for s in folder.subjects if not folder.has_dev(s)]
            if missing:
                raise UsageError(
                    f"{self.source}: num_fewshot {num_fewshot} needs dev/<subject>_dev.csv "
                    f"in {self.data}; missing for {', '.join(missing[:5])}."
                )

    def task_manager(self, custom: Path | None):
        from .. import overrides
        from .loading import task_manager

        folder, _ = overrides.mmlu_override_dir(self.data, self.variant, source=f"{self.source}: key 'data'")
        return task_manager(folder)

    @property
    def offline_hint(self) -> str:
        return "set key 'data' to a local copy (offline machines cannot reach the hub)"

    @property
    def _prefix(self) -> str:
        from ..overrides import MMLU_VARIANTS

        return MMLU_VARIANTS[self.variant][1]

    def fill_record(self, record: "SampleRecord", d: "Doc", loaded: "LoadedTasks") -> None:
        from ..overrides import mmlu_subjects

        subject = d.subtask[len(self._prefix) :]
        record.group = subject
        record.extra["category"] = mmlu_subjects().get(subject, {}).get("category", "other")

    def breakdowns(
        self, records: list["SampleRecord"], results: dict[str, dict], loaded: "LoadedTasks", flat: FlatMetrics
    ) -> dict[str, dict]:
        from ..overrides import MMLU_CATEGORIES, MMLU_VARIANTS

        top, prefix, metric, _ = MMLU_VARIANTS[self.variant]
        subject, category = {}, {}
        for subtask in loaded.tasks:
            metrics, _ = flat(results.get(subtask, {}))
            if metric in metrics:
                subject[subtask[len(prefix) :]] = {metric: metrics[metric], "n": results[subtask].get("sample_len", 0)}
        for cat in MMLU_CATEGORIES:
            metrics, _ = flat(results.get(f"{top}_{cat}", {}))
            if metric in metrics:
                category[cat] = {metric: metrics[metric], "n": results[f"{top}_{cat}"].get("sample_len", 0)}
        return {"subject": subject, "category": category}

    def settings(self, records: list["SampleRecord"], loaded: "LoadedTasks") -> dict[str, Any]:
        return {"subjects": sorted({r.group for r in records if r.group})}


class MmluLetterKind(MmluKind):
    """MMLU answered by generating the letter; unparseable answers count as wrong and are reported."""

    name = "mmlu_letter"
    primary = "exact_match"
    request_type = "generate_until"
    variant = "letter"
    replayable_scoring = True  # regex filters and exact_match draw nothing from ``random``

    def sample_id(self, subtask: str, doc_id: int, doc: dict | None) -> str:
        # the same ids as mmlu, so the letter and log-likelihood formats pair sample by sample
        return f"mmlu_{subtask[len('mmlu_letter_') :]}/{doc_id}"

    def fill_record(self, record: "SampleRecord", d: "Doc", loaded: "LoadedTasks") -> None:
        super().fill_record(record, d, loaded)
        record.extra["parse_failed"] = record.prediction == "[invalid]"

    def extra_metrics(self, records: list["SampleRecord"]) -> dict[str, float]:
        return {"parse_failure_rate": mean(bool(r.extra.get("parse_failed")) for r in records)}

    def breakdowns(
        self, records: list["SampleRecord"], results: dict[str, dict], loaded: "LoadedTasks", flat: FlatMetrics
    ) -> dict[str, dict]:
        out = super().breakdowns(records, results, loaded, flat)
        failures: dict[str | None, list[bool]] = {}
        for record in records:
            failures.setdefault(record.group, []).append(bool(record.extra.get("parse_failed")))
        for name, entry in out["subject"].items():
            entry["parse_failure_rate"] = mean(failures.get(name, []))
        return out

    def settings(self, records: list["SampleRecord"], loaded: "LoadedTasks") -> dict[str, Any]:
        return {**super().settings(records, loaded), "variant_of": "mmlu"}


class IfevalKind(TaskKind):
    """IFEval from Google's input_data.jsonl (key 'data') or the hub; accuracy per instruction type."""

    name = "ifeval"
    primary = "prompt_level_strict_acc"
    request_type = "generate_until"
    accepts_data = True
    has_target = False
    # lm-eval's ifeval/utils.py draws from ``random`` only in ``build_description`` (instructions without
    # kwargs pick random values from the instruction id, kwargs and prompt); ``check_following`` reads the
    # response without it (langdetect keeps its own ``random.Random``). Checked per doc while scoring.
    replayable_scoring = True
    ids_read_docs = True  # the prompt's key

    @property
    def uses_ifeval(self) -> bool:
        return True

    def check_data(self, num_fewshot: int | None) -> None:
        if self.data is not None and not self.data.is_file():
            raise UsageError(
                f"{self.source}: key 'data': IFEval file {self.data} does not exist (Google's input_data.jsonl format)."
            )

    def task_manager(self, custom: Path | None):
        from ...lm_eval_tasks import lm_eval_tasks_dir
        from .. import overrides
        from .loading import task_manager

        folder = overrides.ifeval_override_dir(self.data) if self.data is not None else lm_eval_tasks_dir() / "ifeval"
        return task_manager(folder)

    @property
    def offline_hint(self) -> str:
        return "set key 'data' to a local copy (offline machines cannot reach the hub)"

    def sample_id(self, subtask: str, doc_id: int, doc: dict | None) -> str:
        if isinstance(doc, dict) and "key" in doc:
            return str(doc["key"])
        return super().sample_id(subtask, doc_id, doc)

    def fill_record(self, record: "SampleRecord", d: "Doc", loaded: "LoadedTasks") -> None:
        record.extra["instruction_ids"] = list(d.doc.get("instruction_id_list", []))
        record.target = None

    def breakdowns(
        self, records: list["SampleRecord"], results: dict[str, dict], loaded: "LoadedTasks", flat: FlatMetrics
    ) -> dict[str, dict]:
        return {"instruction": instruction_breakdown(records)}


#: The lm-eval tasks evalkit knows more about than lm-eval says (data folders, ids, breakdowns); any
#: other task is a GenericKind.
TASK_KINDS: Registry[type[TaskKind]] = Registry("lm-eval task kind")
for _kind in (MmluKind, MmluLetterKind, IfevalKind):
    TASK_KINDS.register(_kind)


def kind_for(task_name: str, custom_config: bool, data: Path | None, source: str) -> TaskKind:
    """The strategy for ``lm_eval_task`` (a custom ``lm_eval_config`` is always a generic task)."""
    cls = GenericKind if custom_config else (TASK_KINDS.find(task_name) or GenericKind)
    return cls(task_name, data, source)


def mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


def instruction_breakdown(records: list["SampleRecord"]) -> dict[str, dict[str, float]]:
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
