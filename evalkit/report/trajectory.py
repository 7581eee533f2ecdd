"""Trajectory and sweep views of a comparison: learning and forgetting against training step, per run,
the learning–forgetting frontier across runs, the checkpoint to ship, and which tasks can guide training.

Checkpoints carry ``run`` and ``step`` when they are Trainer save folders (``RUN/checkpoint-STEP``) or
were evaluated by the Trainer callback (``docs/comparison-schema.md``). Learning is the domain axis'
primary metric, forgetting the general axis' (each the mean over the axis' tasks when there are
several, with the mean of their interval bounds, as in the learning-vs-forgetting chart). The baseline
is each run's step 0 when it has no step of its own or step 0 (the model training started from).
Everything here is derived from the comparison; nothing is stored beside it but what
``training`` holds (the Trainer callback's stop and training loss).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from . import _view as view
from . import charts

__all__ = [
    "trajectory",
    "pareto_labels",
    "frontier_labels",
    "recommend",
    "signal_and_noise",
    "trajectory_chart",
    "frontier_chart",
    "report_context",
    "markdown_lines",
    "RECOMMENDATION_RULE",
    "SIGNAL_RATIO",
]

_AXES = (("domain", "Learning"), ("general", "Forgetting"))
#: How the recommended checkpoint is chosen (written beside it in comparison.json and the report).
RECOMMENDATION_RULE = (
    "the earliest save that passes every gate and whose domain score is within noise of the best "
    "such save's (their 95% intervals overlap); ties go to the better general score"
)
#: A task guides a run when its change from the baseline is at least this many times its save-to-save noise.
SIGNAL_RATIO = 2.0


def _direction(comparison: dict[str, Any], axis: str) -> bool:
    """Whether higher is better on ``axis`` (from its primary metric rows; True when unknown)."""
    rows = [r for r in view.primary_rows(comparison) if (r.get("axis") == "domain") == (axis == "domain")]
    return all(r.get("higher_is_better") is not False for r in rows)


def _point(comparison: dict[str, Any], checkpoint: dict[str, Any], statuses: dict[str, str]) -> dict[str, Any]:
    point = {
        "label": checkpoint["label"],
        "run": checkpoint.get("run"),
        "step": checkpoint.get("step"),
        "is_baseline": checkpoint["label"] == comparison.get("baseline"),
        "status": statuses.get(checkpoint["label"]),
    }
    for axis, _ in _AXES:
        point[axis] = view.axis_point(comparison, checkpoint["label"], axis)
    return point


# ------------------------------------------------------------------------------------ dominance


def _interval(point: dict[str, Any], axis: str, higher: bool) -> tuple[float, float]:
    """``(low, high)`` of ``axis`` oriented so that higher is better; the point itself when no interval."""
    value = point[axis]
    low = value["low"] if value.get("low") is not None else value["value"]
    high = value["high"] if value.get("high") is not None else value["value"]
    return (low, high) if higher else (-high, -low)


def _clearly_better(a: dict[str, Any], b: dict[str, Any], axis: str, higher: bool) -> bool:
    """``a`` beats ``b`` on ``axis`` beyond noise: their intervals do not overlap."""
    return _interval(a, axis, higher)[0] > _interval(b, axis, higher)[1]


def _dominates(a: dict[str, Any], b: dict[str, Any], higher: dict[str, bool]) -> bool:
    """Clearly better on one axis and not clearly worse on the other (differences within noise are ties)."""
    axes = [axis for axis, _ in _AXES]
    return any(_clearly_better(a, b, axis, higher[axis]) for axis in axes) and not any(
        _clearly_better(b, a, axis, higher[axis]) for axis in axes
    )


def frontier_labels(
    points: Sequence[dict[str, Any]], *, higher_domain: bool = True, higher_general: bool = True
) -> list[str]:
    """Labels of the points no other point dominates beyond noise.

    A point is dominated only when another is better on one axis with non-overlapping intervals and not
    worse with non-overlapping intervals on the other: points whose differences lie within their
    intervals are ties, and ties stay on the frontier together. Points without intervals compare by
    value.

    Examples
    --------
    >>> pt = lambda label, d, g, w=0.02: {"label": label, "domain": {"value": d, "low": d - w, "high": d + w},
    ...                                   "general": {"value": g, "low": g - w, "high": g + w}}
    >>> frontier_labels([pt("a", 0.90, 0.50), pt("b", 0.89, 0.99), pt("c", 0.60, 0.60)])
    ['b']
    >>> frontier_labels([pt("a", 0.90, 0.97), pt("b", 0.89, 0.99)])  # within noise of each other: a tie
    ['a', 'b']
    """
    higher = {"domain": higher_domain, "general": higher_general}
    usable = [p for p in points if p.get("domain") and p.get("general")]
    return [p["label"] for p in usable if not any(o is not p and _dominates(o, p, higher) for o in usable)]


def pareto_labels(
    points: Sequence[dict[str, Any]], *, higher_domain: bool = True, higher_general: bool = True
) -> list[str]:
    """Labels of the points no other point dominates on point estimates (at least as good on both axes,
    better on one): the strict front, kept for readers who want it; reports use :func:`frontier_labels`.

    Examples
    --------
    >>> pts = [{"label": "a", "domain": {"value": 0.9}, "general": {"value": 0.5}},
    ...        {"label": "b", "domain": {"value": 0.7}, "general": {"value": 0.7}},
    ...        {"label": "c", "domain": {"value": 0.6}, "general": {"value": 0.6}}]
    >>> pareto_labels(pts)
    ['a', 'b']
    """

    def score(point: dict[str, Any]) -> tuple[float, float]:
        domain, general = point["domain"]["value"], point["general"]["value"]
        return (domain if higher_domain else -domain, general if higher_general else -general)

    usable = [p for p in points if p.get("domain") and p.get("general")]
    return [
        p["label"]
        for p in usable
        if not any(
            o is not p and score(o)[0] >= score(p)[0] and score(o)[1] >= score(p)[1] and score(o) != score(p)
            for o in usable
        )
    ]


# ------------------------------------------------------------------------------------ recommendation


def recommend(
    saves: Sequence[dict[str, Any]], *, higher_domain: bool = True, higher_general: bool = True
) -> dict[str, Any]:
    """The checkpoint to ship among training saves, by :data:`RECOMMENDATION_RULE`.

    ``saves`` are trajectory points (``label``, ``run``, ``step``, ``status`` — the checkpoint's gate
    status, None when ungated — and ``domain``/``general`` with intervals). A save passes when its status
    is None, ``pass`` or ``warn``.

    Examples
    --------
    >>> pt = lambda label, step, d, g, status="pass": {"label": label, "run": "r", "step": step, "status": status,
    ...     "domain": {"value": d, "low": d - 0.03, "high": d + 0.03}, "general": {"value": g, "low": g - 0.03,
    ...     "high": g + 0.03}}
    >>> recommend([pt("s10", 10, 0.50, 0.99), pt("s20", 20, 0.88, 0.98), pt("s30", 30, 0.90, 0.90),
    ...            pt("s40", 40, 0.95, 0.60, "fail")])["label"]
    's20'
    >>> recommend([pt("s10", 10, 0.5, 0.5, "fail")])["label"] is None
    True
    """
    higher = {"domain": higher_domain, "general": higher_general}
    usable = [p for p in saves if p.get("domain") and p.get("general")]
    passing = [p for p in usable if p.get("status") in (None, "pass", "warn")]
    if not passing:
        reason = "no save passes every gate" if usable else "no save has both a domain and a general score"
        return {"label": None, "rule": RECOMMENDATION_RULE, "reason": reason}
    sign = {axis: 1.0 if higher[axis] else -1.0 for axis in higher}
    best = max(passing, key=lambda p: sign["domain"] * p["domain"]["value"])
    near = [p for p in passing if not _clearly_better(best, p, "domain", higher["domain"])]
    pick = min(
        near,
        key=lambda p: (
            p["step"] if p.get("step") is not None else math.inf,
            -sign["general"] * p["general"]["value"],
            str(p["label"]),
        ),
    )
    return {
        "label": pick["label"],
        "run": pick.get("run"),
        "step": pick.get("step"),
        "rule": RECOMMENDATION_RULE,
        "best_domain": best["label"],
        "reason": None,
    }


# ------------------------------------------------------------------------------------ signal and noise


def signal_and_noise(values: Sequence[float | None], baseline: float | None) -> dict[str, Any]:
    """How far a task moved from the baseline over a run (signal) against how much it moves between
    neighbouring saves (noise).

    Noise is the root mean square of the differences between successive saves divided by sqrt(2) (the
    standard deviation of one save's value if the saves differed only by noise; a trend inflates it, so
    the ratio errs low). Signal is the last save's distance from the baseline. The task can guide the run
    when the signal is at least :data:`SIGNAL_RATIO` times the noise (after Heineman et al. 2025,
    "Signal and Noise"). Needs three saves or more (two differences).

    Examples
    --------
    >>> signal_and_noise([0.70, 0.60, 0.50, 0.40], 0.80)["guides"]
    True
    >>> signal_and_noise([0.79, 0.81, 0.78, 0.80], 0.80)["guides"]
    False
    """
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    out: dict[str, Any] = {"saves": len(finite), "signal": None, "noise": None, "ratio": None, "guides": None}
    if len(finite) < 3 or baseline is None or not math.isfinite(baseline):
        return out
    steps = [b - a for a, b in zip(finite, finite[1:])]
    noise = math.sqrt(sum(d * d for d in steps) / len(steps) / 2.0)
    signal = abs(finite[-1] - baseline)
    ratio = signal / noise if noise > 0 else (math.inf if signal > 0 else None)
    out.update(
        signal=signal,
        noise=noise,
        ratio=None if ratio is None else (ratio if math.isfinite(ratio) else None),
        guides=None if ratio is None else bool(ratio >= SIGNAL_RATIO),
    )
    return out


def _task_signal_rows(comparison: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    baseline = comparison.get("baseline")
    for task in comparison["tasks"]:
        metric = task.get("primary_metric")
        values = {
            r["checkpoint"]: r.get("value")
            for r in comparison["metrics"]
            if r["task"] == task["name"] and r["metric"] == metric
        }
        for run in runs:
            measured = signal_and_noise([values.get(p["label"]) for p in run["points"]], values.get(baseline))
            if measured["saves"] >= 3:
                rows.append(
                    {"task": task["name"], "metric": metric, "axis": task.get("axis"), "run": run["run"], **measured}
                )
    return rows


# ------------------------------------------------------------------------------------ drill-down

#: At most this many keys (subjects, classes) per drill-down table, the earliest-harmed first.
DRILLDOWN_ROWS = 15


def _drilldowns(comparison: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per tested breakdown (MMLU subjects, VOC classes, IFEval instructions) and run: each key's change
    against the baseline at every save, keys ordered by the first save at which the change is a significant
    harm (family-adjusted p below the comparison's significance level), then by the last save's change — which facts are forgotten first."""
    by_group: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, Any]]] = {}
    for row in comparison.get("breakdowns") or []:
        if row.get("p_value_adjusted") is not None or row.get("checkpoint") == comparison.get("baseline"):
            by_group.setdefault((row["task"], row["kind"], row["metric"]), {})[(str(row["key"]), row["checkpoint"])] = (
                row
            )
    tables = []
    for (task, kind, metric), rows in by_group.items():
        if not any(r.get("p_value_adjusted") is not None for r in rows.values()):
            continue
        keys = sorted({key for key, _ in rows})
        for run in runs:
            labels = [p["label"] for p in run["points"]]
            lines = [_drill_line(key, [rows.get((key, label)) for label in labels]) for key in keys]
            lines = [line for line in lines if any(cell is not None for cell in line["cells"])]
            lines.sort(key=lambda line: (line["first_harm"] is None, line["first_harm"] or 0, line["last_gain"]))
            tables.append(
                {
                    "task": task,
                    "kind": kind,
                    "metric": metric,
                    "run": run["run"],
                    "steps": [p["step"] for p in run["points"]],
                    "rows": lines[:DRILLDOWN_ROWS],
                    "more": max(0, len(lines) - DRILLDOWN_ROWS),
                }
            )
    return tables


def _drill_line(key: str, rows: list[dict[str, Any] | None]) -> dict[str, Any]:
    """One key's cells along a run: change, tone (significant harm / gain) and the first harmed save's index."""
    cells: list[dict[str, Any] | None] = []
    first_harm, last_gain = None, 0.0
    for index, row in enumerate(rows):
        if row is None or row.get("delta") is None:
            cells.append(None)
            continue
        gain = row["delta"] if row.get("higher_is_better", True) is not False else -row["delta"]
        significant = view.is_significant(row.get("p_value_adjusted"))  # the family-adjusted p: harm, not noise
        tone = ("bad" if gain < 0 else "good") if significant and gain != 0 else "none"
        if tone == "bad" and first_harm is None:
            first_harm = index
        cells.append({"delta": row["delta"], "tone": tone})
        last_gain = gain
    return {"key": key, "cells": cells, "first_harm": first_harm, "last_gain": last_gain}


# ------------------------------------------------------------------------------------ the view


def trajectory(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """Runs (saves ordered by step, the baseline as their step 0), the noise-aware frontier, the recommended
    checkpoint, signal and noise per task, gate thresholds and the training record.

    None when no run has two points (step 0 counted) and there are not several runs: nothing to draw
    against step.
    """
    statuses = {v["checkpoint"]: v["status"] for v in view.checkpoint_verdicts(comparison)}
    points = [_point(comparison, c, statuses) for c in comparison["checkpoints"]]
    baseline = next((p for p in points if p["is_baseline"]), None)
    runs: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        if point["step"] is not None and not point["is_baseline"]:
            runs.setdefault(str(point["run"] or "run"), []).append(point)
    origin = baseline if baseline is not None and baseline["step"] in (None, 0) else None
    if not runs or (len(runs) == 1 and len(next(iter(runs.values()))) + (origin is not None) < 2):
        return None
    for run_points in runs.values():
        run_points.sort(key=lambda p: p["step"])
    higher = {axis: _direction(comparison, axis) for axis, _ in _AXES}
    saves = [p for run_points in runs.values() for p in run_points]
    candidates = saves + ([baseline] if baseline is not None else [])
    run_list = [{"run": run, "points": run_points, "origin": origin} for run, run_points in runs.items()]
    tasks = {axis: sorted({t for p in points if p[axis] for t in p[axis]["tasks"]}) for axis, _ in _AXES}
    training = comparison.get("training") or {}
    return {
        "runs": run_list,
        "baseline": baseline,
        "higher_is_better": higher,
        "tasks": tasks,
        "sweep": len(runs) > 1,
        "pareto": frontier_labels(candidates, higher_domain=higher["domain"], higher_general=higher["general"]),
        "recommended": recommend(saves, higher_domain=higher["domain"], higher_general=higher["general"]),
        "signal_noise": _task_signal_rows(comparison, run_list),
        "gate_lines": _gate_lines(comparison, tasks),
        "stopped": training.get("stopped"),
        "loss": training.get("loss") or [],
        "bounds": _axis_bounds(comparison, tasks),
        "drilldowns": _drilldowns(comparison, run_list),
    }


def _gate_lines(comparison: dict[str, Any], tasks: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Each gate on an axis' only primary metric as a level on that axis' panel (``min``/``max`` at the
    threshold, ``max_drop``/``min_gain`` and their relative forms around the baseline value)."""
    lines: dict[str, list[dict[str, Any]]] = {axis: [] for axis, _ in _AXES}
    seen: set[tuple[str, str]] = set()
    for check in (comparison.get("verdict") or {}).get("checks") or []:
        for axis, _ in _AXES:
            level = _gate_level(check)
            if tasks[axis] == [check.get("metric")] and level is not None and (axis, check["gate"]) not in seen:
                seen.add((axis, check["gate"]))
                lines[axis].append({"gate": check["gate"], "value": level})
    return lines


def _gate_level(check: dict[str, Any]) -> float | None:
    """The metric value at which ``check``'s gate flips, or None when it has no single level."""
    threshold, base = check.get("threshold"), check.get("baseline_value")
    sign = 1.0 if check.get("higher_is_better", True) is not False else -1.0
    operator = check.get("operator")
    if not isinstance(threshold, (int, float)):
        return None
    if operator in ("min", "max"):
        return float(threshold)
    if not isinstance(base, (int, float)):
        return None
    offsets = {
        "max_drop": -threshold,
        "min_gain": threshold,
        "max_relative_drop": -threshold * abs(base),
        "min_relative_gain": threshold * abs(base),
    }
    return base + sign * offsets[operator] if operator in offsets else None


def _axis_bounds(comparison: dict[str, Any], tasks: dict[str, list[str]]) -> dict[str, Any]:
    """Declared bounds of each axis' metric (``MetricSpec.bounds``) when its tasks share them, else None."""
    specs = {f"{t['name']}.{m}": s for t in comparison["tasks"] for m, s in (t.get("metric_specs") or {}).items()}
    out: dict[str, Any] = {}
    for axis, _ in _AXES:
        bounds = {tuple(specs.get(name, {}).get("bounds") or ()) for name in tasks[axis]}
        out[axis] = list(next(iter(bounds))) if len(bounds) == 1 and len(next(iter(bounds))) == 2 else None
    return out


# ------------------------------------------------------------------------------------ charts


def trajectory_chart(context: dict[str, Any], chart_id: str = "traj") -> str:
    """Panels against step: learning (domain primary), forgetting (general primary) and, when the Trainer
    logged it, training loss; one line per run from its step 0 with its interval as a band, gate levels as
    dotted lines, a training stop as a vertical line."""
    import matplotlib

    panels_wanted = list(_AXES) + ([("loss", "Training loss")] if context.get("loss") else [])
    with matplotlib.rc_context(charts._RC):
        from matplotlib.figure import Figure

        figure = Figure(figsize=(4.8 * len(panels_wanted), 3.6), dpi=72)
        panels = figure.subplots(1, len(panels_wanted), squeeze=False)[0]
        for axes, (axis, title) in zip(panels, panels_wanted):
            if axis == "loss":
                steps, losses = zip(*context["loss"])
                axes.plot(steps, losses, color=charts.NEUTRAL, linewidth=1)
                axes.set_title("Training loss", loc="left")
            else:
                _draw_axis(axes, context, axis)
                tasks = context["tasks"][axis]
                name = tasks[0] if len(tasks) == 1 else f"mean of {len(tasks)} primary metrics"
                axes.set_title(charts.plain(f"{title}: {name}"), loc="left")
            _mark_stop(axes, context.get("stopped"))
            axes.set_xlabel("step")
        panels[0].legend(frameon=False, fontsize=8, loc="best")
        return charts.figure_to_svg(figure, chart_id)


def _run_colour(index: int) -> str:
    return charts.SERIES[1 + index % (len(charts.SERIES) - 1)]


def _with_origin(run: dict[str, Any], axis: str) -> list[dict[str, Any]]:
    """The run's points that have ``axis``, led by the baseline as step 0 when it is the run's start."""
    origin = run.get("origin")
    lead = [{**origin, "step": 0}] if origin and origin.get(axis) else []
    return lead + [p for p in run["points"] if p.get(axis)]


def _draw_axis(axes, context: dict[str, Any], axis: str) -> None:
    baseline = context.get("baseline")
    if baseline and baseline.get(axis):
        axes.axhline(
            baseline[axis]["value"],
            color=charts.NEUTRAL,
            linestyle="--",
            linewidth=0.9,
            label=charts.plain(f"{baseline['label']} (baseline)", 30),
        )
    for index, run in enumerate(context["runs"]):
        colour = _run_colour(index)
        have = _with_origin(run, axis)
        axes.plot(
            [p["step"] for p in have],
            [p[axis]["value"] for p in have],
            marker="o",
            markersize=3.5,
            color=colour,
            label=charts.plain(run["run"], 30),
            zorder=3,
        )
        bounded = [p for p in have if p[axis]["low"] is not None and p[axis]["high"] is not None]
        if bounded:
            axes.fill_between(
                [p["step"] for p in bounded],
                [p[axis]["low"] for p in bounded],
                [p[axis]["high"] for p in bounded],
                color=colour,
                alpha=0.15,
                linewidth=0,
                zorder=2,
            )
    for line in context["gate_lines"].get(axis, []):
        axes.axhline(
            line["value"],
            color=charts.BAD,
            linestyle=":",
            linewidth=1.1,
            label=charts.plain(f"gate: {line['gate']}", 30),
        )
    axes.set_ylim(*_y_limits(context, axis))


def _y_limits(context: dict[str, Any], axis: str) -> tuple[float, float]:
    """The data's range with its intervals and gate levels, padded by the widest interval (so a dip within
    the band looks like noise, not like a cliff), inside the metric's declared bounds."""
    points = [p for run in context["runs"] for p in _with_origin(run, axis)]
    values = [v for p in points for v in (p[axis]["value"], p[axis]["low"], p[axis]["high"]) if v is not None]
    values += [line["value"] for line in context["gate_lines"].get(axis, [])]
    widths = [
        p[axis]["high"] - p[axis]["low"] for p in points if p[axis]["low"] is not None and p[axis]["high"] is not None
    ]
    if not values:
        return (0.0, 1.0)
    low, high = min(values), max(values)
    pad = max(max(widths, default=0.0), 0.05 * (high - low), 1e-3)
    low, high = low - pad, high + pad
    bounds = context["bounds"].get(axis)
    if bounds:
        low, high = (
            max(low, bounds[0]) if bounds[0] is not None else low,
            min(high, bounds[1]) if bounds[1] is not None else high,
        )
    return (low, high)


def _mark_stop(axes, stopped: dict[str, Any] | None) -> None:
    if stopped and stopped.get("step") is not None:
        axes.axvline(stopped["step"], color=charts.BAD, linewidth=1, linestyle="-", alpha=0.7)


def frontier_chart(context: dict[str, Any], chart_id: str = "front") -> str:
    """Every save as domain (x) against general (y) with its intervals as error bars, each run's saves joined
    by arrows in step order, the noise-aware frontier ringed, and only the baseline and the recommended
    checkpoint named (every point is in the table below the chart)."""
    import matplotlib

    frontier = set(context["pareto"])
    with matplotlib.rc_context(charts._RC):
        figure, axes = charts._new_figure(6.4, 4.4)
        baseline = context.get("baseline")
        if baseline and baseline.get("domain") and baseline.get("general"):
            _error_point(axes, baseline, charts.SERIES[0], marker="D", label=f"{baseline['label']} (baseline)")
        for index, run in enumerate(context["runs"]):
            colour = _run_colour(index)
            have = [p for p in run["points"] if p.get("domain") and p.get("general")]
            for point in have:
                _error_point(axes, point, colour, label=None)
            axes.plot([], [], marker="o", color=colour, linestyle="-", label=charts.plain(run["run"], 30))
            for a, b in zip(have, have[1:]):
                axes.annotate(
                    "",
                    xy=(b["domain"]["value"], b["general"]["value"]),
                    xytext=(a["domain"]["value"], a["general"]["value"]),
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.8, "alpha": 0.7},
                )
        ringed = [p for run in context["runs"] for p in run["points"] if p["label"] in frontier and p.get("domain")]
        if ringed:
            axes.scatter(
                [p["domain"]["value"] for p in ringed],
                [p["general"]["value"] for p in ringed],
                s=150,
                facecolors="none",
                edgecolors="#1f2933",
                linewidths=1,
                label="frontier (beyond noise)",
                zorder=4,
            )
        _name_recommended(axes, context)
        axes.set_xlabel("Domain (learning)")
        axes.set_ylabel("General (forgetting)")
        axes.set_title("Learning–forgetting frontier", loc="left")
        axes.legend(frameon=False, fontsize=8, loc="best")
        axes.margins(0.12)
        return charts.figure_to_svg(figure, chart_id)


def _error_point(axes, point: dict[str, Any], colour: str, *, marker: str = "o", label: str | None) -> None:
    def err(axis: str) -> list[list[float]]:
        value = point[axis]
        if value.get("low") is None or value.get("high") is None:
            return [[0.0], [0.0]]
        return [[max(value["value"] - value["low"], 0.0)], [max(value["high"] - value["value"], 0.0)]]

    axes.errorbar(
        [point["domain"]["value"]],
        [point["general"]["value"]],
        xerr=err("domain"),
        yerr=err("general"),
        fmt=marker,
        color=colour,
        markersize=4.5,
        elinewidth=0.7,
        alpha=0.9,
        zorder=3,
        label=charts.plain(label, 30) if label else None,
    )


def _name_recommended(axes, context: dict[str, Any]) -> None:
    label = (context.get("recommended") or {}).get("label")
    point = next((p for run in context["runs"] for p in run["points"] if p["label"] == label), None)
    if point is None:
        return
    axes.scatter(
        [point["domain"]["value"]],
        [point["general"]["value"]],
        marker="*",
        s=160,
        color="#1f2933",
        zorder=5,
        label="recommended",
    )
    axes.annotate(
        charts.plain(f"ship: {label}", 40),
        (point["domain"]["value"], point["general"]["value"]),
        xytext=(8, -14),
        textcoords="offset points",
        fontsize=8,
        color="#1f2933",
    )


def report_context(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`trajectory` with its charts as SVG markup, for the HTML report (None when there is no trajectory)."""
    from markupsafe import Markup

    context = trajectory(comparison)
    if context is None:
        return None
    context["svg"] = Markup(trajectory_chart(context))  # matplotlib output: text inside is XML-escaped
    context["frontier_svg"] = Markup(frontier_chart(context))
    return context


def markdown_lines(comparison: dict[str, Any], max_rows: int, md_escape) -> list[str]:
    """The trajectory as Markdown: the recommendation, a table (run, step, domain and general with intervals,
    frontier mark) and signal and noise per task.

    ``md_escape`` is the report's Markdown escaper, passed in so this module does not import the renderer
    that imports it.
    """
    context = trajectory(comparison)
    if context is None:
        return []

    def cell(point: dict[str, Any], axis: str) -> str:
        value = point.get(axis)
        if not value:
            return "–"
        return f"{view.fmt_value(value['value'])} [{view.fmt_value(value['low'])}, {view.fmt_value(value['high'])}]"

    rows = [
        [
            md_escape(run["run"]),
            str(point["step"]),
            md_escape(point["label"]),
            cell(point, "domain"),
            cell(point, "general"),
            "★" if point["label"] in context["pareto"] else "",
        ]
        for run in context["runs"]
        for point in run["points"]
    ]
    shown = rows[:max_rows]
    lines = ["### Learning and forgetting against step", ""]
    lines += [_recommendation_text(context, md_escape), ""]
    if context["stopped"]:
        lines += [
            f"Training stopped at step {context['stopped']['step']} by "
            f"{', '.join(md_escape(g) for g in context['stopped']['gates'])}.",
            "",
        ]
    lines += ["| Run | Step | Checkpoint | Domain [CI] | General [CI] | Frontier |", "|---|---:|---|---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in shown]
    if len(rows) > len(shown):
        lines.append(f"| … {len(rows) - len(shown)} more in report.html | | | | | |")
    if context["signal_noise"]:
        lines += ["", "| Task | Run | Saves | Signal | Noise | Reads |", "|---|---|---:|---:|---:|---|"]
        lines += [
            f"| {md_escape(r['task'])} | {md_escape(r['run'])} | {r['saves']} | {view.fmt_value(r['signal'])} | "
            f"{view.fmt_value(r['noise'])} | {_reads(r)} |"
            for r in context["signal_noise"]
        ]
    return lines + [""]


def _recommendation_text(context: dict[str, Any], escape) -> str:
    recommended = context["recommended"]
    if recommended["label"] is None:
        return f"No checkpoint recommended: {recommended['reason']}."
    return f"Recommended: **{escape(recommended['label'])}** — {recommended['rule']}."


def _reads(row: dict[str, Any]) -> str:
    """What the signal-to-noise ratio says about the task for this run."""
    if row["guides"] is None:
        return "flat (no change, no noise)"
    return "guides training" if row["guides"] else "noise at this sample size"
