"""Metric declarations of the ``lm_eval`` evaluator, read from lm-eval's own task and group configs.

lm-eval knows how each metric is aggregated: a task's ``aggregation()`` maps a metric to
``lm_eval.api.metrics.mean`` (a per-sample mean), ``agg_inst_level_acc`` (IFEval's pooled
instruction-level accuracy) or a corpus function (F1, BLEU, Matthews correlation, perplexity); a
group's ``aggregate_metric_list`` says whether subtask values are weighted by size (then the group
value is the mean over all samples) or not (a mean of means: a corpus statistic). The declarations
follow that; names stored results carry without declarations fall back to ``LM_EVAL_STATIC_SPECS``.
"""

from __future__ import annotations

from typing import Any

from ...evaluators.base import BREAKDOWN_COUNT_FIELDS, MetricSpec, declared_specs

_UNIT = (0.0, 1.0)  # a proportion: declared, so delta intervals are cut to what the baseline allows

#: Per-sample means with 0/1 (or bounded) values, instruction-level pools, and the breakdowns the
#: evaluator writes. Used for results stored before declarations were recorded.
LM_EVAL_STATIC_SPECS: dict[str, MetricSpec] = {
    "inst_level_*": MetricSpec(level="sample", unit="element", cluster="sample_id", bounds=_UNIT, binary=True),
    "prompt_level_*": MetricSpec(level="sample", bounds=_UNIT, binary=True),
    "acc": MetricSpec(level="sample", bounds=_UNIT, binary=True),
    "acc_norm": MetricSpec(level="sample", bounds=_UNIT, binary=True),
    "exact_match*": MetricSpec(level="sample", bounds=_UNIT, binary=True),
    "parse_failure_rate": MetricSpec(
        higher_is_better=False, level="sample", score="extra.parse_failed", bounds=_UNIT, binary=True
    ),
    "subject/parse_failure_rate": MetricSpec(
        higher_is_better=False, level="sample", score="extra.parse_failed", group_by="group", bounds=_UNIT, binary=True
    ),
    "subject/*": MetricSpec(level="sample", score="correct", group_by="group", binary=True),
    "category/*": MetricSpec(level="sample", score="correct", group_by="extra.category", binary=True),
    "instruction/acc": MetricSpec(
        level="sample",
        score="scores.inst_level_strict_acc",
        unit="element",
        group_by="extra.instruction_ids",
        binary=True,
    ),
    "instruction/loose_acc": MetricSpec(
        level="sample",
        score="scores.inst_level_loose_acc",
        unit="element",
        group_by="extra.instruction_ids",
        binary=True,
    ),
}


def _aggregation_kind(function: Any) -> str:
    """'mean', 'element' (IFEval's instruction pooling) or 'corpus' for a lm-eval aggregation function."""
    from lm_eval.api.metrics import mean

    if function is mean:
        return "mean"
    return "element" if getattr(function, "__name__", "") == "agg_inst_level_acc" else "corpus"


def _weighted_by_size(groups: dict[str, Any], metric: str) -> bool:
    """Whether every group that aggregates ``metric`` weights its children by size (a micro mean)."""
    for group in groups.values():
        configs = getattr(group, "aggregate_metric_list", None) or []
        for config in configs:
            name = config.get("metric") if isinstance(config, dict) else getattr(config, "metric", None)
            weighted = (
                config.get("weight_by_size") if isinstance(config, dict) else getattr(config, "weight_by_size", False)
            )
            if name == metric and not weighted:
                return False
    return True


def lm_eval_metric_specs(
    tasks: dict[str, Any],
    groups: dict[str, Any],
    score_names: dict[str, dict],
    metrics: dict[str, float],
    higher_is_better: dict[str, bool],
    breakdowns: dict[str, dict],
    *,
    micro_means: bool = False,
) -> dict[str, MetricSpec]:
    """Declarations of the reported ``metrics`` (flat names) and of the breakdown metrics.

    ``micro_means``: the values are plain means over samples (a group without aggregation config).
    """
    specs = {
        flat: _top_spec(tasks, groups, score_names, flat, bool(higher_is_better.get(flat, True)), micro_means)
        for flat in metrics
    }
    for kind, rows in breakdowns.items():
        names = {name for stats in rows.values() for name in stats} - BREAKDOWN_COUNT_FIELDS
        for name in sorted(names):
            specs[f"{kind}/{name}"] = _breakdown_spec(tasks, score_names, kind, name, specs.get(name))
    return specs


def _kinds(tasks: dict[str, Any], score_names: dict[str, dict], flat: str) -> set[str]:
    return {
        _aggregation_kind(task.aggregation().get(metric))
        for subtask, task in tasks.items()
        for (metric, _f), name in score_names[subtask].items()
        if name == flat
    }


def _top_spec(tasks, groups, score_names, flat: str, direction: bool, micro_means: bool) -> MetricSpec:
    if flat == "parse_failure_rate":
        return LM_EVAL_STATIC_SPECS[flat]
    kinds = _kinds(tasks, score_names, flat)
    metrics = {metric for names in score_names.values() for (metric, _f), name in names.items() if name == flat}
    pooled = micro_means or len(tasks) == 1 or all(_weighted_by_size(groups, m) for m in metrics)
    static = declared_specs(_Static, [flat]).get(flat)
    bounds = static.bounds if static is not None else None  # a proportion (acc, exact_match, ...) stays in [0, 1]
    binary = static is not None and static.binary  # 0/1 per sample: Wilson / McNemar (declared, not observed)
    if kinds == {"mean"} and pooled:
        return MetricSpec(higher_is_better=direction, level="sample", bounds=bounds, binary=binary)
    if kinds == {"element"} and pooled:
        return MetricSpec(
            higher_is_better=direction,
            level="sample",
            unit="element",
            cluster="sample_id",
            bounds=bounds,
            binary=binary,
        )
    return MetricSpec(higher_is_better=direction, level="corpus", bounds=bounds)


def _breakdown_spec(tasks, score_names, kind: str, name: str, top: MetricSpec | None) -> MetricSpec:
    static = declared_specs(_Static, [f"{kind}/{name}"]).get(f"{kind}/{name}")
    if static is not None:
        return static
    direction = top.higher_is_better if top is not None else True
    if kind == "subtask" and _kinds(tasks, score_names, name) == {"mean"}:  # a subtask's value is its own mean
        return MetricSpec(
            higher_is_better=direction,
            level="sample",
            score=f"scores.{name}",
            group_by="group",
            binary=top is not None and top.binary,
        )
    return MetricSpec(higher_is_better=direction, level="corpus")


class _Static:
    metric_specs = LM_EVAL_STATIC_SPECS
