"""Format vs knowledge forgetting: a log-likelihood task beside its generative variant.

A task whose ``settings["variant_of"]`` names another task of the comparison (``mmlu_generative`` ->
``mmlu``) is its generative variant. Per non-baseline checkpoint the diagnosis is:

* ``knowledge`` — the log-likelihood accuracy dropped significantly (paired p < 0.05; without a
  p-value, by at least 0.05): the model no longer knows the answers;
* ``format`` — the generative accuracy dropped at least 0.10 more than the log-likelihood accuracy
  and the parse failure rate rose by at least 0.05 (or is not reported): the model still ranks the
  right answer but no longer answers in the expected form;
* ``both`` when both hold, ``none`` otherwise (also when a value is missing).
"""

from __future__ import annotations

from typing import Any

from ..comparison_format import is_significant
from ._common import Context

KNOWLEDGE_MIN_DROP = 0.05
FORMAT_EXCESS_DROP = 0.10
PARSE_FAILURE_RISE = 0.05


def format_rows(ctx: Context, metric_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lookup = {(r["task"], r["metric"], r["checkpoint"]): r for r in metric_rows}
    rows = []
    for gen_task in ctx.tasks:
        loglik_task = _variant_of(ctx, gen_task)
        if loglik_task is None:
            continue
        for label in ctx.labels:
            loglik_tr, gen_tr = ctx.task(label, loglik_task), ctx.task(label, gen_task)
            if label == ctx.baseline or loglik_tr is None or gen_tr is None:
                continue
            ll = lookup.get((loglik_task, loglik_tr.primary_metric or "acc", label), {})
            gen = lookup.get((gen_task, gen_tr.primary_metric or "acc", label), {})
            parse = lookup.get((gen_task, "parse_failure_rate", label), {})
            row = {
                "checkpoint": label,
                "loglik_task": loglik_task,
                "generative_task": gen_task,
                "loglik_acc": ll.get("value"),
                "generative_acc": gen.get("value"),
                "parse_failure_rate": parse.get("value"),
                "baseline_loglik_acc": ll.get("baseline_value"),
                "baseline_generative_acc": gen.get("baseline_value"),
                "baseline_parse_failure_rate": parse.get("baseline_value"),
                "loglik_delta": ll.get("delta"),
                "generative_delta": gen.get("delta"),
                "parse_failure_delta": parse.get("delta"),
                "loglik_p_value": ll.get("p_value"),
                "generative_p_value": gen.get("p_value"),
            }
            row["diagnosis"] = diagnose(row)
            rows.append(row)
    return rows


def _variant_of(ctx: Context, task: str) -> str | None:
    for label in [ctx.baseline, *ctx.labels]:
        tr = ctx.task(label, task)
        if tr is not None:
            target = tr.settings.get("variant_of")
            return target if isinstance(target, str) and target in ctx.tasks and target != task else None
    return None


def diagnose(row: dict[str, Any]) -> str:
    """``format`` | ``knowledge`` | ``both`` | ``none`` from deltas and the log-likelihood p-value (rules above)."""
    ll_delta, gen_delta = row.get("loglik_delta"), row.get("generative_delta")
    if ll_delta is None or gen_delta is None:
        return "none"
    p_value, parse_delta = row.get("loglik_p_value"), row.get("parse_failure_delta")
    knowledge = ll_delta < 0 and (is_significant(p_value) if p_value is not None else -ll_delta >= KNOWLEDGE_MIN_DROP)
    form = (ll_delta - gen_delta) >= FORMAT_EXCESS_DROP and (parse_delta is None or parse_delta >= PARSE_FAILURE_RISE)
    return {(True, True): "both", (True, False): "knowledge", (False, True): "format"}.get((knowledge, form), "none")
