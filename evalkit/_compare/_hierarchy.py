"""Where the hierarchy breaks (``comparison["hierarchy_errors"]``): per task, checkpoint and level.

For records with true and predicted label paths (``extra.target_path`` / ``extra.pred_path``, the
``voc`` evaluator's records), a sample is *wrong at level k* when its true path reaches level ``k`` and
the predicted path's first ``k`` names differ from it (an invalid prediction is wrong at every level).
Each such error is one of:

- ``sibling``: the parent (first ``k - 1`` names) was right and another child of it was chosen;
- ``stopped_above``: the parent was right but the prediction ended there;
- ``cross_branch``: the parent was already wrong (the mistake began higher up);
- ``invalid``: no label path at all.

Each row carries the level's error rate with a Wilson interval, the baseline's rate, the paired delta
with McNemar's test on the per-sample level outcomes (Holm-adjusted across the levels of one task and
checkpoint, as breakdown families are), the share of errors whose parent was right, and the most frequent
sibling and cross-branch pairs (true node, predicted node) with their counts on both checkpoints and up
to :data:`MAX_EXAMPLES` example sample ids each. Pair counts are descriptive (no test: a pair is too
rare to test one by one). Label texts are data: the report escapes them like every other text.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..metrics.stats import holm_adjust, mcnemar_test, proportion_ci
from ..records import SampleRecord
from ._common import Context, aligned, finite, natural_key

MAX_PAIRS = 10
MAX_EXAMPLES = 5
KINDS = ("sibling", "stopped_above", "cross_branch", "invalid")


def _paths(record: SampleRecord) -> tuple[tuple[str, ...], tuple[str, ...] | None] | None:
    extra = record.extra if isinstance(record.extra, dict) else {}
    truth, pred = extra.get("target_path"), extra.get("pred_path")
    if not isinstance(truth, list) or not truth or not all(isinstance(x, str) for x in truth):
        return None
    if pred is not None and not (isinstance(pred, list) and all(isinstance(x, str) for x in pred)):
        return None
    return tuple(truth), (tuple(pred) if pred else None)


def classify(truth: tuple[str, ...], pred: tuple[str, ...] | None, level: int) -> str | None:
    """The kind of error at ``level`` (None: right there, or the true path does not reach it).

    Examples
    --------
    >>> classify(("A", "x"), ("A", "y"), 2), classify(("A", "x"), ("B", "y"), 2), classify(("A", "x"), ("A",), 2)
    ('sibling', 'cross_branch', 'stopped_above')
    >>> classify(("A", "x"), ("A", "x"), 2) is None, classify(("A",), ("B",), 2) is None
    (True, True)
    """
    if len(truth) < level:
        return None
    if pred is None:
        return "invalid"
    if pred[:level] == truth[:level]:
        return None
    if pred[: level - 1] != truth[: level - 1]:
        return "cross_branch"
    return "sibling" if len(pred) >= level else "stopped_above"


def _level_errors(records: list[SampleRecord], level: int) -> dict[str, Any] | None:
    """Counts, outcomes and pair tallies of ``level`` over ``records`` (None if a record has no paths)."""
    found = [_paths(r) for r in records]
    paths = [p for p in found if p is not None]
    if not records or len(paths) < len(found):
        return None
    kinds = [classify(truth, pred, level) for truth, pred in paths]
    reached = [len(truth) >= level for truth, _ in paths]
    pairs: dict[str, dict[tuple, list[str]]] = {"sibling": {}, "cross_branch": {}}
    for record, (truth, pred), kind in zip(records, paths, kinds):
        if kind in pairs and pred is not None:  # sibling and cross-branch errors have a predicted path
            pairs[kind].setdefault((truth[:level], pred[:level]), []).append(str(record.sample_id))
    return {
        "n": sum(reached),
        "kinds": Counter(k for k in kinds if k),
        "pairs": pairs,
        "wrong": {str(r.sample_id): k is not None for r, k, reach in zip(records, kinds, reached) if reach},
    }


def hierarchy_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    for task in ctx.tasks:
        depth = _depth(ctx, task)
        for label in ctx.labels:
            if ctx.task(label, task) is None or not depth:
                continue
            family = [row for row in (_row(ctx, task, label, k) for k in range(1, depth + 1)) if row is not None]
            for row, adjusted in zip(family, holm_adjust([r["p_value"] for r in family])):
                row["p_value_adjusted"] = finite(adjusted)
                row["family_size"] = sum(r["p_value"] is not None for r in family) or None
            rows.extend(family)
    return rows


def _depth(ctx: Context, task: str) -> int:
    depths = [
        len(p[0])
        for label in ctx.labels
        if ctx.task(label, task) is not None
        for p in map(_paths, ctx.records(label, task).values())
        if p is not None
    ]
    return max(depths, default=0)


def _row(ctx: Context, task: str, label: str, level: int) -> dict[str, Any] | None:
    mine = _level_errors(list(ctx.records(label, task).values()), level)
    if mine is None or mine["n"] == 0:
        return None
    has_base = label != ctx.baseline and ctx.task(ctx.baseline, task) is not None
    base = _level_errors(list(ctx.records(ctx.baseline, task).values()), level) if has_base else None
    errors = sum(mine["kinds"].values())
    low, high = (finite(x) for x in proportion_ci(errors, mine["n"], confidence=ctx.confidence))
    row = {
        "task": task,
        "checkpoint": label,
        "level": level,
        "n": mine["n"],
        "errors": errors,
        "error_rate": errors / mine["n"],
        "ci_low": low,
        "ci_high": high,
        **{kind: mine["kinds"].get(kind, 0) for kind in KINDS},
        "parent_right_share": _share(mine),
        "baseline": ctx.baseline,
        "baseline_error_rate": None,
        "baseline_parent_right_share": None,
        "delta": None,
        "p_value": None,
        "test": None,
        "n_paired": None,
        "p_value_adjusted": None,
        "family_size": None,
    }
    if base is not None and base["n"]:
        base_errors = sum(base["kinds"].values())
        row.update(
            baseline_error_rate=base_errors / base["n"],
            baseline_parent_right_share=_share(base),
            delta=errors / mine["n"] - base_errors / base["n"],
            **_test(ctx, task, label, mine, base),
        )
    row["sibling_pairs"] = _pairs(mine["pairs"]["sibling"], base["pairs"]["sibling"] if base else None)
    row["cross_branch_pairs"] = _pairs(mine["pairs"]["cross_branch"], base["pairs"]["cross_branch"] if base else None)
    return row


def _share(counts: dict[str, Any]) -> float | None:
    errors = sum(counts["kinds"].values())
    right = counts["kinds"].get("sibling", 0) + counts["kinds"].get("stopped_above", 0)
    return right / errors if errors else None


def _test(ctx: Context, task: str, label: str, mine: dict, base: dict) -> dict[str, Any]:
    """McNemar on the level's right/wrong outcomes of the samples both checkpoints have."""
    recs_a, _ = aligned(ctx, task, label)
    ids = [str(r.sample_id) for r in recs_a if str(r.sample_id) in mine["wrong"] and str(r.sample_id) in base["wrong"]]
    if not ids:
        return {}
    right_a = np.asarray([not base["wrong"][i] for i in ids], dtype=float)
    right_b = np.asarray([not mine["wrong"][i] for i in ids], dtype=float)
    result = mcnemar_test(right_a, right_b)
    return {"p_value": finite(result.p_value), "test": f"mcnemar_{result.method}", "n_paired": len(ids)}


def _pairs(mine: dict[tuple, list[str]], base: dict[tuple, list[str]] | None) -> list[dict[str, Any]]:
    """The most frequent pairs (ties: by the true node, then the predicted one), with baseline counts."""
    ranked = sorted(mine.items(), key=lambda item: (-len(item[1]), item[0]))[:MAX_PAIRS]
    return [
        {
            "true": " > ".join(truth),
            "predicted": " > ".join(pred),
            "count": len(ids),
            "baseline_count": len(base.get((truth, pred), [])) if base is not None else None,
            "examples": sorted(ids, key=natural_key)[:MAX_EXAMPLES],
        }
        for (truth, pred), ids in ranked
    ]
