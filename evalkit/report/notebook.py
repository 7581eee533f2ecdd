"""Jupyter views (``_repr_html_``) of :class:`~evalkit.EvalResult`, :class:`~evalkit.Comparison` and
:class:`~evalkit.Verdict`: the report's own verdict, summary-card and study-table sections
(:func:`evalkit.report.html.render_fragment`), so a notebook shows what ``report.html`` shows.
"""

from __future__ import annotations

from typing import Any

__all__ = ["comparison_html", "verdict_html", "result_html"]


def comparison_html(comparison: dict[str, Any]) -> str:
    """The verdict (once gated), one summary card per checkpoint, and the study table."""
    from .html import render_fragment

    title = f"evalkit comparison · baseline {comparison.get('baseline')}"
    return render_fragment(comparison, title=title)


def verdict_html(verdict) -> str:
    """The report's verdict section for a verdict alone (checkpoints in the order the checks name them)."""
    from .html import render_fragment

    shell = {
        "schema_version": 1,
        "checkpoints": [],
        "tasks": [],
        "metrics": [],
        "baseline": verdict.baseline,
        "verdict": verdict.to_dict(),
    }
    return render_fragment(shell, parts=("verdict",))


def result_html(result) -> str:
    """One checkpoint's row of the study table: each task's headline metrics as evaluated.

    Built from the result's own numbers (no statistics: those come with :func:`evalkit.compare`), and
    without importing the comparison code, which itself reads results.
    """
    from .html import render_fragment

    tasks = ", ".join(f"{name} (n={task.n_samples})" for name, task in result.tasks.items()) or "no tasks"
    title = f"evalkit result · {result.checkpoint.label} ({result.checkpoint.kind}) · {tasks}"
    return render_fragment(_comparison_of_one(result), parts=("study",), title=title)


def _comparison_of_one(result) -> dict[str, Any]:
    """The shape of ``comparison.json`` the study table reads, for one result and no baseline to compare with."""
    label = result.checkpoint.label
    tasks = [
        {"name": name, "axis": task.axis, "primary_metric": task.primary_metric} for name, task in result.tasks.items()
    ]
    metrics = [
        {
            "task": name,
            "metric": metric,
            "checkpoint": label,
            "value": value,
            "higher_is_better": task.higher_is_better.get(metric, True),
            "is_primary": metric == task.primary_metric,
        }
        for name, task in result.tasks.items()
        for metric, value in task.metrics.items()
    ]
    return {
        "schema_version": 1,
        "baseline": label,
        "tasks": tasks,
        "metrics": metrics,
        "checkpoints": [{"label": label, "note": result.checkpoint.note}],
    }
