"""Jupyter views (``_repr_html_``) of :class:`~evalkit.EvalResult`, :class:`~evalkit.Comparison` and
:class:`~evalkit.Verdict`: the report's own verdict, summary-card and study-table sections
(:func:`evalkit.report.html.render_fragment`), so a notebook shows what ``report.html`` shows.
"""

from __future__ import annotations

from typing import Any

__all__ = ["comparison_html", "verdict_html", "result_html"]


def comparison_html(comparison: dict[str, Any]) -> str:
    """The verdict (once gated), one summary card per checkpoint, and the study table."""
    from ..report.html import render_fragment

    title = f"evalkit comparison · baseline {comparison.get('baseline')}"
    return render_fragment(comparison, title=title)


def verdict_html(verdict) -> str:
    """The report's verdict section for a verdict alone (checkpoints in the order the checks name them)."""
    from ..report.html import render_fragment

    shell = {"schema_version": 1, "checkpoints": [], "tasks": [], "metrics": [], "baseline": verdict.baseline,
             "verdict": verdict.to_dict()}
    return render_fragment(shell, parts=("verdict",))


def result_html(result) -> str:
    """One checkpoint's study-table row: each task's primary and other metrics (a comparison of one)."""
    from .._compare import build_comparison
    from ..report.html import render_fragment

    tasks = ", ".join(f"{name} (n={task.n_samples})" for name, task in result.tasks.items()) or "no tasks"
    title = f"evalkit result · {result.checkpoint.label} ({result.checkpoint.kind}) · {tasks}"
    return render_fragment(build_comparison([result]), parts=("study",), title=title)
