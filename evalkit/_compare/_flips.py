"""Samples whose correctness changed against the baseline (texts kept as stored, only truncated)."""

from __future__ import annotations

from typing import Any

from ._common import Context, aligned, truncate

DIRECTIONS = ("right_to_wrong", "wrong_to_right")


def flip_rows(ctx: Context, max_flips: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(flips, flip_counts)``: at most ``max_flips`` flips per task, checkpoint and direction, by sample_id."""
    flips: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    for task in ctx.tasks:
        if ctx.task(ctx.baseline, task) is None:
            continue
        for label in ctx.labels:
            if label == ctx.baseline or ctx.task(label, task) is None:
                continue
            by_direction = _flips_of(*aligned(ctx, task, label))
            counts.append(
                {
                    "task": task,
                    "checkpoint": label,
                    "n_paired": len(aligned(ctx, task, label)[0]),
                    **{d: len(by_direction[d]) for d in DIRECTIONS},
                }
            )
            for direction in DIRECTIONS:
                flips.extend(_flip(task, label, direction, a, b) for a, b in by_direction[direction][:max_flips])
    return flips, counts


def _flips_of(recs_a, recs_b) -> dict[str, list]:
    found: dict[str, list] = {d: [] for d in DIRECTIONS}
    for a, b in zip(recs_a, recs_b):  # already in sample_id order
        if a.correct is None or b.correct is None or bool(a.correct) == bool(b.correct):
            continue
        found["right_to_wrong" if a.correct else "wrong_to_right"].append((a, b))
    return found


def _flip(task: str, label: str, direction: str, a, b) -> dict[str, Any]:
    return {
        "task": task,
        "checkpoint": label,
        "direction": direction,
        "sample_id": str(a.sample_id),
        "group": b.group if b.group is not None else a.group,
        "input": truncate(b.input if b.input is not None else a.input),
        "target": truncate(a.target),
        "baseline_prediction": truncate(a.prediction),
        "prediction": truncate(b.prediction),
    }
