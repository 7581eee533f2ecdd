"""Trajectory and sweep views of a comparison: learning and forgetting against training step, per run,
and the learning–forgetting frontier across runs with its Pareto-optimal checkpoints.

Checkpoints carry ``run`` and ``step`` when they are Trainer save folders (``RUN/checkpoint-STEP``) or
were evaluated by the Trainer callback (``docs/comparison-schema.md``). Learning is the domain axis'
primary metric, forgetting the general axis' (each the mean over the axis' tasks when there are
several, with the mean of their interval bounds, as in the learning-vs-forgetting chart). Everything
here is derived from the comparison; nothing is stored beside it.
"""

from __future__ import annotations

from typing import Any, Sequence

from . import _view as view
from . import charts

__all__ = ["trajectory", "pareto_labels", "trajectory_chart", "frontier_chart", "report_context", "markdown_lines"]

_AXES = (("domain", "Learning"), ("general", "Forgetting"))


def _direction(comparison: dict[str, Any], axis: str) -> bool:
    """Whether higher is better on ``axis`` (from its primary metric rows; True when unknown)."""
    rows = [r for r in view.primary_rows(comparison) if (r.get("axis") == "domain") == (axis == "domain")]
    return all(r.get("higher_is_better") is not False for r in rows)


def _point(comparison: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any]:
    point = {"label": checkpoint["label"], "run": checkpoint.get("run"), "step": checkpoint.get("step"),
             "is_baseline": checkpoint["label"] == comparison.get("baseline")}
    for axis, _ in _AXES:
        point[axis] = view.axis_point(comparison, checkpoint["label"], axis)
    return point


def pareto_labels(points: Sequence[dict[str, Any]], *, higher_domain: bool = True,
                  higher_general: bool = True) -> list[str]:
    """Labels of the points no other point dominates (at least as good on both axes, better on one).

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
    front = []
    for point in usable:
        mine = score(point)
        dominated = any(other is not point and score(other)[0] >= mine[0] and score(other)[1] >= mine[1]
                        and score(other) != mine for other in usable)
        if not dominated:
            front.append(point["label"])
    return front


def trajectory(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """Runs (checkpoints with a step, ordered by step), the baseline and the Pareto-optimal checkpoints.

    None when no run has two steps and there are not several runs: nothing to draw against step.
    """
    points = [_point(comparison, c) for c in comparison["checkpoints"]]
    runs: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        if point["step"] is not None and not point["is_baseline"]:
            runs.setdefault(str(point["run"] or "run"), []).append(point)
    if not runs or (len(runs) == 1 and len(next(iter(runs.values()))) < 2):
        return None
    for run_points in runs.values():
        run_points.sort(key=lambda p: p["step"])
    baseline = next((p for p in points if p["is_baseline"]), None)
    candidates = [p for run_points in runs.values() for p in run_points]
    higher = {axis: _direction(comparison, axis) for axis, _ in _AXES}
    pareto = pareto_labels(candidates, higher_domain=higher["domain"], higher_general=higher["general"])
    tasks = {axis: sorted({t for p in points if p[axis] for t in p[axis]["tasks"]}) for axis, _ in _AXES}
    return {"runs": [{"run": run, "points": run_points} for run, run_points in runs.items()],
            "baseline": baseline, "pareto": pareto, "tasks": tasks, "sweep": len(runs) > 1,
            "higher_is_better": higher}


# ------------------------------------------------------------------------------------ charts

def trajectory_chart(context: dict[str, Any], chart_id: str = "traj") -> str:
    """Two panels against step: learning (domain primary) and forgetting (general primary), one line per
    run with its interval as a band, the baseline as a dashed line."""
    import matplotlib

    with matplotlib.rc_context(charts._RC):
        from matplotlib.figure import Figure

        figure = Figure(figsize=(9.6, 3.6), dpi=72)
        panels = figure.subplots(1, 2)
        for axes, (axis, title) in zip(panels, _AXES):
            _draw_axis(axes, context, axis)
            tasks = context["tasks"][axis]
            name = tasks[0] if len(tasks) == 1 else f"mean of {len(tasks)} primary metrics"
            axes.set_title(charts.plain(f"{title}: {name}"), loc="left")
            axes.set_xlabel("step")
        panels[0].legend(frameon=False, fontsize=8, loc="best")
        return charts.figure_to_svg(figure, chart_id)


def _draw_axis(axes, context: dict[str, Any], axis: str) -> None:
    baseline = context.get("baseline")
    if baseline and baseline.get(axis):
        axes.axhline(baseline[axis]["value"], color=charts.NEUTRAL, linestyle="--", linewidth=0.9,
                     label=charts.plain(f"{baseline['label']} (baseline)", 30))
    for index, run in enumerate(context["runs"]):
        colour = charts.SERIES[1 + index % (len(charts.SERIES) - 1)]
        have = [p for p in run["points"] if p.get(axis)]
        steps = [p["step"] for p in have]
        values = [p[axis]["value"] for p in have]
        axes.plot(steps, values, marker="o", markersize=4, color=colour, label=charts.plain(run["run"], 30), zorder=3)
        bounded = [p for p in have if p[axis]["low"] is not None and p[axis]["high"] is not None]
        if bounded:
            axes.fill_between([p["step"] for p in bounded], [p[axis]["low"] for p in bounded],
                              [p[axis]["high"] for p in bounded], color=colour, alpha=0.15, linewidth=0, zorder=2)


def frontier_chart(context: dict[str, Any], chart_id: str = "front") -> str:
    """Every run's checkpoints as domain (x) against general (y), the Pareto front drawn through the
    non-dominated ones, which are named."""
    import matplotlib

    pareto = set(context["pareto"])
    with matplotlib.rc_context(charts._RC):
        figure, axes = charts._new_figure(6.4, 4.4)
        baseline = context.get("baseline")
        if baseline and baseline.get("domain") and baseline.get("general"):
            axes.scatter([baseline["domain"]["value"]], [baseline["general"]["value"]], marker="D",
                         color=charts.SERIES[0], label=charts.plain(f"{baseline['label']} (baseline)", 30), zorder=3)
        for index, run in enumerate(context["runs"]):
            colour = charts.SERIES[1 + index % (len(charts.SERIES) - 1)]
            have = [p for p in run["points"] if p.get("domain") and p.get("general")]
            axes.scatter([p["domain"]["value"] for p in have], [p["general"]["value"] for p in have], color=colour,
                         s=[46 if p["label"] in pareto else 18 for p in have], label=charts.plain(run["run"], 30),
                         zorder=3)
        front = sorted((p for run in context["runs"] for p in run["points"] if p["label"] in pareto),
                       key=lambda p: p["domain"]["value"])
        if front:
            axes.plot([p["domain"]["value"] for p in front], [p["general"]["value"] for p in front],
                      color="#1f2933", linewidth=1, linestyle=":", zorder=2, label="Pareto front")
            for p in front:
                axes.annotate(charts.plain(p["label"], 30), (p["domain"]["value"], p["general"]["value"]),
                              xytext=(6, 5), textcoords="offset points", fontsize=8, color="#1f2933")
        axes.set_xlabel("Domain (learning)")
        axes.set_ylabel("General (forgetting)")
        axes.set_title("Learning–forgetting frontier", loc="left")
        axes.legend(frameon=False, fontsize=8, loc="best")
        axes.margins(0.12)
        return charts.figure_to_svg(figure, chart_id)


def report_context(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`trajectory` with its charts as SVG markup, for the HTML report (None when there is no trajectory)."""
    from markupsafe import Markup

    context = trajectory(comparison)
    if context is None:
        return None
    context["svg"] = Markup(trajectory_chart(context))  # matplotlib output: text inside is XML-escaped
    context["frontier_svg"] = Markup(frontier_chart(context)) if context["sweep"] else None
    return context


def markdown_lines(comparison: dict[str, Any], max_rows: int, md_escape) -> list[str]:
    """The trajectory as a Markdown table (run, step, domain and general with intervals, Pareto mark).

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

    rows = [[md_escape(run["run"]), str(point["step"]), md_escape(point["label"]), cell(point, "domain"),
             cell(point, "general"), "★" if point["label"] in context["pareto"] else ""]
            for run in context["runs"] for point in run["points"]]
    shown = rows[:max_rows]
    lines = ["### Learning and forgetting against step", "",
             "| Run | Step | Checkpoint | Domain [CI] | General [CI] | Pareto |", "|---|---:|---|---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in shown]
    if len(rows) > len(shown):
        lines.append(f"| … {len(rows) - len(shown)} more in report.html | | | | | |")
    if context["sweep"]:
        lines += ["", "Pareto-optimal (learning–forgetting frontier): "
                  + (", ".join(md_escape(label) for label in context["pareto"]) or "–") + "."]
    return lines + [""]
