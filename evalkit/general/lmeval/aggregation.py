"""Corpus metrics from per-sample records: lm-eval's own task and group aggregation over the stored
per-sample values, flat metric names, directions, and the paired-bootstrap resampling hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...records import SampleRecord
from .kinds import mean
from .loading import LoadedTasks

__all__ = ["Aggregator", "micro_means", "resample_metrics"]

_BOOTSTRAP_ITERS = 100000  # lm-eval's default


class Aggregator:
    """lm-eval's aggregation of one task's records; ``load`` returns the evaluator's loaded tasks."""

    def __init__(self, load: Callable[[], LoadedTasks]):
        self._load = load

    def lm_eval_results(self, records: list[SampleRecord]) -> dict[str, dict]:
        """lm-eval's ``_process_results`` on the records' per-sample metric values (docs in lm-eval's order)."""
        from collections import defaultdict

        from lm_eval.evaluator_utils import _process_results

        loaded = self._load()
        order = {name: i for i, name in enumerate(loaded.tasks)}
        ordered = sorted(
            (r for r in records if r.extra.get("subtask") in order),
            key=lambda r: (order[r.extra["subtask"]], r.extra.get("doc_index", 0)),
        )
        acc: dict[str, dict] = {}
        for record in ordered:
            subtask = record.extra["subtask"]
            entry = acc.setdefault(
                subtask, {"task": loaded.tasks[subtask], "raw_metrics": defaultdict(list), "logged_samples": []}
            )
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

    def flat_metrics(self, entry: dict) -> tuple[dict[str, float], dict[str, float]]:
        """An lm-eval result entry (``metric,filter`` keys) as flat metric values and standard errors."""
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

    def higher_is_better(self, metrics: dict[str, float]) -> dict[str, bool]:
        out: dict[str, bool] = {}
        loaded = self._load()
        for subtask, task in loaded.tasks.items():
            for (metric, _), flat in loaded.score_names[subtask].items():
                if flat in metrics:
                    out[flat] = bool(task.higher_is_better().get(metric, True))
        if "parse_failure_rate" in metrics:
            out["parse_failure_rate"] = False
        return out


def micro_means(records: list[SampleRecord]) -> dict[str, float]:
    """Each numeric score's mean over the records that carry it."""
    names = dict.fromkeys(k for r in records for k, v in r.scores.items() if isinstance(v, (bool, int, float)))
    return {name: mean(r.scores[name] for r in records if name in r.scores) for name in names}


def resample_metrics(records: list[SampleRecord], names: list[str], indices) -> dict[str, Any]:
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
        raw = [r.scores[name] for r in records if r.scores.get(name) is not None]
        if len(raw) < len(records):
            continue
        if all(isinstance(v, list) for v in raw):
            sums = np.array([float(sum(bool(x) for x in v)) for v in raw])
            counts = np.array([float(len(v)) for v in raw])
            out[name] = sums[idx].sum(axis=1) / np.maximum(counts[idx].sum(axis=1), 1.0)
        else:
            out[name] = np.array([float(v) for v in raw])[idx].mean(axis=1)
    return out
