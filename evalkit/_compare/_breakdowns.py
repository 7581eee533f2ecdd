"""Breakdown rows (per subject, category, instruction, class, level, frequency band) with deltas and group tests.

A breakdown metric is declared by its evaluator as ``"KIND/METRIC"`` (:class:`~evalkit.evaluators.MetricSpec`).
When it is a per-sample mean (``level="sample"``) with a ``group_by`` field, its groups are sets of
units (samples, or instruction elements keyed by ``(sample_id, position)``) and a McNemar test on the
group's paired 0/1 outcomes is attached to every row whose value those outcomes reproduce on both
checkpoints (accuracy per subject, recall per class), with the Wilson interval of the row's value and
Newcombe's paired interval of its delta, as on metric rows. Corpus breakdown metrics (per-class F1,
per-level and per-band macro F1) get theirs from the evaluator's ``resample_breakdown`` hook
(_breakdown_resampling.py).

The rows of one task, checkpoint, kind and metric (the 57 MMLU subjects' accuracy) are one family of
tests: besides the raw ``p_value`` each row carries ``p_value_adjusted`` (Holm 1979: family-wise error
control; what "significant" markers and breakdown gates use) and ``q_value`` (Benjamini–Hochberg 1995:
false discovery rate), and ``family_size``, the number of tests in its family.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluators.base import BREAKDOWN_COUNT_FIELDS, MetricSpec, record_value
from ..metrics.stats import (
    bh_adjust,
    cut_to_range,
    holm_adjust,
    mcnemar_test,
    paired_counts,
    paired_mean_test,
    paired_proportion_difference_ci,
    proportion_ci,
)
from ..records import SampleRecord
from ._common import Context, aligned, finite, higher_is_better, is_binary, is_number, reproduces, spec_of

#: Counts stored beside breakdown metrics; they are not metrics and get no rows ("n" goes into the row).
COUNT_FIELDS = BREAKDOWN_COUNT_FIELDS

Outcomes = dict[str, dict[Any, float]]  # group key -> {pairing id: outcome}


def group_outcomes(records: list[SampleRecord], spec: MetricSpec, metric: str) -> Outcomes:
    """Per-unit values of ``spec``'s score grouped by its ``group_by`` field."""
    groups: Outcomes = {}
    for record in records:
        for key, pair_id, outcome in _record_outcomes(record, spec, metric):
            if key is not None and is_number(outcome):
                groups.setdefault(str(key), {})[pair_id] = float(outcome)
    return groups


def _record_outcomes(record: SampleRecord, spec: MetricSpec, metric: str):
    sid = str(record.sample_id)
    keys, values = record_value(record, spec.group_by), record_value(record, spec.score_field(metric))
    if spec.unit == "sample":
        return [(keys, sid, values)]
    if not isinstance(keys, (list, tuple)) or not isinstance(values, (list, tuple)) or len(keys) != len(values):
        return []
    return [(key, (sid, i), ok) for i, (key, ok) in enumerate(zip(keys, values))]


def breakdown_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    for task in ctx.tasks:
        for label in ctx.labels:
            if ctx.task(label, task) is not None:
                rows.extend(_task_rows(ctx, task, label))
    task_pos = {t: i for i, t in enumerate(ctx.tasks)}
    label_pos = {c: i for i, c in enumerate(ctx.labels)}
    rows.sort(
        key=lambda r: (
            task_pos[r["task"]],
            r["kind"],
            r["metric"],
            label_pos[r["checkpoint"]],
            r["delta"] is None,
            r["delta"] if r["delta"] is not None else 0.0,
            r["key"],
        )
    )
    adjust_families(rows)
    return rows


def adjust_families(rows: list[dict[str, Any]]) -> None:
    """Add Holm-adjusted p-values, BH q-values and the family size to each row (families: task, checkpoint,
    kind, metric; only rows with a p-value are members)."""
    families: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        row.update(p_value_adjusted=None, q_value=None, family_size=None)
        if row["p_value"] is not None:
            families.setdefault((row["task"], row["checkpoint"], row["kind"], row["metric"]), []).append(row)
    for members in families.values():
        p_values = [r["p_value"] for r in members]
        for row, holm, bh in zip(members, holm_adjust(p_values), bh_adjust(p_values)):
            row.update(p_value_adjusted=float(holm), q_value=float(bh), family_size=len(members))


def _task_rows(ctx: Context, task: str, label: str) -> list[dict[str, Any]]:
    tr, base_tr = ctx.task(label, task), ctx.task(ctx.baseline, task)
    rows = []
    for kind in sorted(tr.breakdowns):
        tests: dict[str, dict] = {}
        resampled: dict[str, dict] = {}
        intervals: dict[str, dict] = {}
        for key in sorted(tr.breakdowns[kind]):
            stats = tr.breakdowns[kind][key]
            base_stats = (base_tr.breakdowns.get(kind, {}).get(key) if base_tr is not None else None) or {}
            for metric in sorted(m for m in stats if m not in COUNT_FIELDS):
                if metric not in tests:
                    tests[metric] = _group_tests(ctx, task, label, kind, metric)
                    resampled[metric] = _resampled(ctx, task, label, kind, metric)
                    intervals[metric] = _group_intervals(ctx, task, label, kind, metric)
                row = _row(ctx, task, label, kind, key, metric, stats, base_stats, tests[metric].get(str(key)))
                _add_wilson(row, intervals[metric].get(str(key)))
                _add_resampled(row, resampled[metric].get(str(key)))
                rows.append(row)
    return rows


def _resampled(ctx: Context, task: str, label: str, kind: str, metric: str) -> dict[str, dict]:
    """Jackknife intervals and randomization tests of a corpus breakdown (_breakdown_resampling.py)."""
    from ._breakdown_resampling import corpus_breakdown_stats

    def values_of(who: str) -> dict[str, float | None]:
        result = ctx.task(who, task)
        rows = result.breakdowns.get(kind, {}) if result is not None else {}
        return {str(key): finite(stats.get(metric)) for key, stats in rows.items()}

    return corpus_breakdown_stats(ctx, task, label, kind, metric, values_of(label), values_of(ctx.baseline))


def _group_intervals(ctx: Context, task: str, label: str, kind: str, metric: str) -> dict[str, dict[str, Any]]:
    """Wilson intervals of ``label``'s groups whose outcomes are independent 0/1 (subject accuracy, class recall)."""
    name = f"{kind}/{metric}"
    spec = spec_of(ctx, task, label, name)
    result = ctx.task(label, task)
    if (
        not spec.binary
        or spec.level != "sample"
        or spec.group_by is None
        or (result.settings.get("cluster_field") or spec.cluster)
    ):
        return {}
    out = {}
    for key, outcomes in group_outcomes(list(ctx.records(label, task).values()), spec, metric).items():
        values = np.asarray(list(outcomes.values()), dtype=float)
        if values.size and is_binary(values):
            low, high = proportion_ci(int(values.sum()), values.size, confidence=ctx.confidence)
            out[key] = {"values": values, "ci_low": finite(low), "ci_high": finite(high), "ci_method": "wilson"}
    return out


def _add_wilson(row: dict[str, Any], interval: dict | None) -> None:
    """The group's Wilson interval, where its outcomes reproduce the row's value (per-class recall at 0 or 1 too)."""
    if interval is not None and reproduces(interval["values"], row["value"]):
        row.update({k: interval[k] for k in ("ci_low", "ci_high", "ci_method")})


def _add_resampled(row: dict[str, Any], stats: dict | None) -> None:
    """Interval fields on rows that have none yet; a McNemar p-value and the Wilson / Newcombe intervals of a
    group proportion (per-class recall) stay."""
    if not stats:
        return
    for keys in (("ci_low", "ci_high", "ci_method"), ("delta_ci_low", "delta_ci_high")):
        if row.get(keys[0]) is None:
            row.update({k: stats.get(k) for k in keys})
    if row["p_value"] is None and stats.get("p_value") is not None and row["delta"] is not None:
        row.update({k: stats[k] for k in ("p_value", "p_value_is_bound", "test", "n_paired", "delta_stderr")})


def _row(ctx, task, label, kind, key, metric, stats, base_stats, test) -> dict[str, Any]:
    value, base_value = finite(stats.get(metric)), finite(base_stats.get(metric))
    has_delta = value is not None and base_value is not None
    row = {
        "task": task,
        "kind": kind,
        "key": str(key),
        "metric": metric,
        "checkpoint": label,
        "higher_is_better": higher_is_better(ctx, task, label, f"{kind}/{metric}"),
        "value": value,
        "n": int(stats["n"]) if is_number(stats.get("n")) else None,
        "baseline": ctx.baseline,
        "baseline_value": base_value,
        "delta": (value - base_value) if has_delta else None,
        "p_value": None,
        "test": None,
        "n_paired": None,
    }
    if test is not None and label != ctx.baseline and test["matches"](value, base_value):
        row.update(
            p_value=test["p_value"],
            test=test["test"],
            n_paired=test["n_paired"],
            p_value_is_bound=test.get("p_value_is_bound", False),
        )
        # what a gate's one-sided bounds on this row need (docs/gating.md), as on metric rows
        row.update({k: test[k] for k in ("paired_counts", "delta_stderr", "delta_df") if k in test})
        if "delta_ci_low" in test:  # a proportion's change stays within what the baseline's value allows
            row["delta_ci_low"], row["delta_ci_high"] = cut_to_range(
                test["delta_ci_low"], test["delta_ci_high"], (0.0, 1.0), baseline=base_value
            )
    return row


def _group_tests(ctx: Context, task: str, label: str, kind: str, metric: str) -> dict[str, dict[str, Any]]:
    """McNemar per group key of ``kind`` between the baseline and ``label`` (paired units only)."""
    if label == ctx.baseline or ctx.task(ctx.baseline, task) is None:
        return {}
    name = f"{kind}/{metric}"
    spec, base_spec = spec_of(ctx, task, label, name), spec_of(ctx, task, ctx.baseline, name)
    if spec != base_spec or spec.level != "sample" or spec.group_by is None:
        return {}
    recs_a, recs_b = aligned(ctx, task, label)
    cluster = ctx.task(label, task).settings.get("cluster_field") or spec.cluster
    cluster_of = {str(r.sample_id): record_value(r, cluster) for r in recs_a} if cluster else None
    full_a = group_outcomes(list(ctx.records(ctx.baseline, task).values()), spec, metric)
    full_b = group_outcomes(list(ctx.records(label, task).values()), spec, metric)
    paired_a, paired_b = group_outcomes(recs_a, spec, metric), group_outcomes(recs_b, spec, metric)
    binary = spec.binary and _all_zero_one(ctx, task, name, (full_a, full_b))
    tests = {}
    for key in sorted(set(paired_a) & set(paired_b)):
        common = sorted((pid for pid in paired_a[key] if pid in paired_b[key]), key=str)
        va = np.asarray([paired_a[key][p] for p in common])
        vb = np.asarray([paired_b[key][p] for p in common])
        if not common:
            continue
        mean_a = np.asarray(list(full_a.get(key, {}).values()), dtype=float)
        mean_b = np.asarray(list(full_b.get(key, {}).values()), dtype=float)
        tests[key] = {
            **_group_test(va, vb, common, cluster_of, binary, ctx.confidence),
            "n_paired": len(common),
            "matches": _matcher(mean_a, mean_b),
        }
    return tests


def _all_zero_one(ctx: Context, task: str, name: str, outcomes: tuple[Outcomes, ...]) -> bool:
    """Whether a metric declared binary has 0/1 outcomes (else it is tested as a mean, with a warning)."""
    values = np.asarray([v for groups in outcomes for group in groups.values() for v in group.values()], dtype=float)
    if is_binary(values):
        return True
    ctx.warn(
        f"{task}: breakdown metric {name!r} is declared binary (0/1 per unit) but its values are not all 0 or "
        "1; its groups are tested as means (paired t test)."
    )
    return False


def _group_test(
    va: np.ndarray, vb: np.ndarray, ids: list, cluster_of: dict | None, binary: bool, confidence: float
) -> dict[str, Any]:
    """McNemar for independent outcomes declared 0/1 (MetricSpec.binary); else the (cluster-robust) paired t test."""
    if cluster_of is None and binary:
        result = mcnemar_test(va, vb)
        _, low, high = paired_proportion_difference_ci(
            va, vb, confidence=confidence, method="newcombe"
        )  # as metric rows
        return {
            "p_value": result.p_value,
            "test": f"mcnemar_{result.method}",
            "p_value_is_bound": result.is_bound,
            "paired_counts": list(paired_counts(va, vb)),
            "delta_ci_low": finite(low),
            "delta_ci_high": finite(high),
        }
    clusters = None
    if cluster_of is not None:  # element ids are (sample_id, position): the sample's cluster
        clusters = [str(cluster_of.get(i[0] if isinstance(i, tuple) else i)) for i in ids]
    result = paired_mean_test(va, vb, clusters=clusters)
    p_value = finite(result.p_value)  # None with a single cluster
    name = "cluster_paired_t" if clusters is not None else "paired_t"
    return {
        "p_value": p_value,
        "test": name if p_value is not None else None,
        "delta_stderr": finite(result.stderr),
        "delta_df": int(result.df) if result.df >= 1 else None,
    }


def _matcher(outcomes_a: np.ndarray, outcomes_b: np.ndarray):
    """A check that the breakdown row's values are the means of the group's outcomes on both checkpoints."""

    def matches(value: float | None, base_value: float | None) -> bool:
        return reproduces(outcomes_b, value) and reproduces(outcomes_a, base_value)

    return matches
