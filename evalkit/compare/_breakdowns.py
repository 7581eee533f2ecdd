"""Breakdown rows (per subject, category, instruction, class, level, frequency band) with deltas and group tests.

For the kinds whose groups are sets of samples (subject, category, class: records' ``group`` or
``extra["category"]``; instruction: the positions of ``extra["instruction_ids"]`` with their
``scores["inst_level_strict_acc"]`` outcomes) a McNemar test on the group's paired outcomes is
attached to every breakdown metric whose value is the mean of those outcomes on both checkpoints
(accuracy, per-class recall). Other metrics (per-class F1) and kinds (level, frequency) get null.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics.stats import mcnemar_test
from ..records import SampleRecord, TaskResult
from ._common import Context, aligned, finite, higher_is_better, is_number, mean_matches

GROUPED_KINDS = ("subject", "category", "class", "instruction")

#: Counts stored beside breakdown metrics; they are not metrics and get no rows ("n" goes into the row).
COUNT_FIELDS = frozenset({"n", "n_classes", "support"})

Outcomes = dict[str, dict[Any, bool]]  # group key -> {pairing id: outcome}


def group_outcomes(records: list[SampleRecord], kind: str) -> Outcomes:
    """Per-sample (or per-instruction) right/wrong outcomes of ``records`` grouped as ``kind`` groups them."""
    groups: Outcomes = {}
    for record in records:
        for key, pair_id, outcome in _record_outcomes(record, kind):
            if key is not None and outcome is not None:
                groups.setdefault(str(key), {})[pair_id] = bool(outcome)
    return groups


def _record_outcomes(record: SampleRecord, kind: str):
    sid = str(record.sample_id)
    if kind in ("subject", "class"):
        return [(record.group, sid, record.correct)]
    if kind == "category":
        return [(record.extra.get("category"), sid, record.correct)]
    if kind == "instruction":
        ids = record.extra.get("instruction_ids") or []
        passed = record.scores.get("inst_level_strict_acc")
        if not isinstance(passed, (list, tuple)) or len(passed) != len(ids):
            return []
        return [(inst, (sid, i), ok) for i, (inst, ok) in enumerate(zip(ids, passed))]
    return []


def breakdown_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    for task in ctx.tasks:
        for label in ctx.labels:
            if ctx.task(label, task) is not None:
                rows.extend(_task_rows(ctx, task, label))
    task_pos = {t: i for i, t in enumerate(ctx.tasks)}
    label_pos = {c: i for i, c in enumerate(ctx.labels)}
    rows.sort(key=lambda r: (task_pos[r["task"]], r["kind"], r["metric"], label_pos[r["checkpoint"]],
                             r["delta"] is None, r["delta"] if r["delta"] is not None else 0.0, r["key"]))
    return rows


def _task_rows(ctx: Context, task: str, label: str) -> list[dict[str, Any]]:
    tr, base_tr = ctx.task(label, task), ctx.task(ctx.baseline, task)
    rows = []
    for kind in sorted(tr.breakdowns):
        tests = _group_tests(ctx, task, label, kind)
        for key in sorted(tr.breakdowns[kind]):
            stats = tr.breakdowns[kind][key]
            base_stats = (base_tr.breakdowns.get(kind, {}).get(key) if base_tr is not None else None) or {}
            for metric in sorted(m for m in stats if m not in COUNT_FIELDS):
                rows.append(_row(ctx, task, label, tr, kind, key, metric, stats, base_stats, tests.get(str(key))))
    return rows


def _row(ctx, task, label, tr: TaskResult, kind, key, metric, stats, base_stats, test) -> dict[str, Any]:
    value, base_value = finite(stats.get(metric)), finite(base_stats.get(metric))
    has_delta = value is not None and base_value is not None
    row = {"task": task, "kind": kind, "key": str(key), "metric": metric, "checkpoint": label,
           "higher_is_better": higher_is_better(tr, metric), "value": value,
           "n": int(stats["n"]) if is_number(stats.get("n")) else None,
           "baseline": ctx.baseline, "baseline_value": base_value,
           "delta": (value - base_value) if has_delta else None, "p_value": None, "test": None, "n_paired": None}
    if test is not None and label != ctx.baseline and test["matches"](metric, value, base_value):
        row.update(p_value=test["p_value"], test=test["test"], n_paired=test["n_paired"])
    return row


def _group_tests(ctx: Context, task: str, label: str, kind: str) -> dict[str, dict[str, Any]]:
    """McNemar per group key of ``kind`` between the baseline and ``label`` (paired members only)."""
    if label == ctx.baseline or kind not in GROUPED_KINDS or ctx.task(ctx.baseline, task) is None:
        return {}
    recs_a, recs_b = aligned(ctx, task, label)
    full_a = group_outcomes(list(ctx.records(ctx.baseline, task).values()), kind)
    full_b = group_outcomes(list(ctx.records(label, task).values()), kind)
    paired_a, paired_b = group_outcomes(recs_a, kind), group_outcomes(recs_b, kind)
    tests = {}
    for key in sorted(set(paired_a) & set(paired_b)):
        common = sorted((pid for pid in paired_a[key] if pid in paired_b[key]), key=str)
        if not common:
            continue
        result = mcnemar_test([paired_a[key][p] for p in common], [paired_b[key][p] for p in common])
        mean_a = np.asarray(list(full_a.get(key, {}).values()), dtype=float)
        mean_b = np.asarray(list(full_b.get(key, {}).values()), dtype=float)
        tests[key] = {"p_value": result.p_value, "test": f"mcnemar_{result.method}", "n_paired": len(common),
                      "matches": _matcher(mean_a, mean_b)}
    return tests


def _matcher(outcomes_a: np.ndarray, outcomes_b: np.ndarray):
    """A check that a breakdown metric is the mean of the group's outcomes on both checkpoints."""

    def matches(metric: str, value: float | None, base_value: float | None) -> bool:
        return mean_matches(outcomes_b, value) and mean_matches(outcomes_a, base_value)

    return matches
