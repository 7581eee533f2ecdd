"""Trajectory and sweep reports: checkpoints ordered by step per run, learning/forgetting charts with
intervals, the noise-aware frontier across runs, the recommended checkpoint, signal and noise per task."""

from __future__ import annotations

import pytest

import evalkit
from evalkit.report.trajectory import pareto_labels, trajectory


@pytest.fixture(scope="module")
def results():
    from synthetic_results import make_results

    return make_results()


def _placed(results, places):
    for result in results:
        run, step = places.get(result.checkpoint.label, (None, None))
        result.checkpoint.run, result.checkpoint.step = run, step
    return results


def _axis_means(comparison, label):
    rows = [r for r in comparison["metrics"] if r["checkpoint"] == label and r.get("is_primary")]
    domain = [r["value"] for r in rows if r["axis"] == "domain"]
    general = [r["value"] for r in rows if r["axis"] != "domain"]
    return sum(domain) / len(domain), sum(general) / len(general)


def test_one_run_is_ordered_by_step_with_intervals(results, tmp_path):
    comparison = evalkit.compare(*_placed(results, {"tuned": ("r", 200), "mix": ("r", 100)})).to_dict()
    context = trajectory(comparison)
    assert context == evalkit.Comparison(comparison).trajectory()
    assert not context["sweep"] and [p["step"] for p in context["runs"][0]["points"]] == [100, 200]
    first = context["runs"][0]["points"][0]
    assert first["label"] == "mix"
    assert first["domain"]["low"] <= first["domain"]["value"] <= first["domain"]["high"]
    assert first["general"]["low"] <= first["general"]["value"] <= first["general"]["high"]
    assert (first["domain"]["value"], first["general"]["value"]) == pytest.approx(_axis_means(comparison, "mix"))
    assert context["baseline"]["label"] == "base"


def test_sweep_names_the_frontier_beyond_noise_and_a_recommendation_in_both_reports(results, tmp_path):
    """The frontier counts a checkpoint dominated only when another beats it with non-overlapping intervals
    on one axis and is not beaten so on the other; the baseline is a candidate."""
    comparison = evalkit.compare(*_placed(results, {"tuned": ("domain_only", 100), "mix": ("mix75", 100)}))
    data = comparison.to_dict()
    context = trajectory(data)
    points = {p["label"]: p for run in context["runs"] for p in run["points"]} | {"base": context["baseline"]}

    def beats(a, b, axis):
        return a[axis]["low"] > b[axis]["high"]

    expected = [label for label, p in points.items()
                if not any(other is not p and any(beats(other, p, ax) for ax in ("domain", "general"))
                           and not any(beats(p, other, ax) for ax in ("domain", "general"))
                           for other in points.values())]
    assert context["sweep"] and sorted(context["pareto"]) == sorted(expected)
    assert context["recommended"]["label"] in ("tuned", "mix") and context["recommended"]["rule"]
    comparison.write(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert 'id="trajectory"' in html and "Learning–forgetting frontier" in html and html.count("<svg") >= 3
    assert "Recommended" in html
    md = (tmp_path / "report.md").read_text()
    assert "Learning and forgetting against step" in md and f"Recommended: **{context['recommended']['label']}**" in md
    for label in ("tuned", "mix"):
        assert f"| {label} |" in md


def test_no_trajectory_without_steps(results):
    comparison = evalkit.compare(*_placed(results, {})).to_dict()
    assert trajectory(comparison) is None
    from evalkit.report import render_html, render_markdown

    assert "Learning and forgetting against step" not in render_markdown(comparison)
    assert 'id="trajectory"' not in render_html(comparison)


def test_pareto_respects_direction():
    pts = [{"label": "a", "domain": {"value": 0.1}, "general": {"value": 0.5}},
           {"label": "b", "domain": {"value": 0.3}, "general": {"value": 0.5}}]
    assert pareto_labels(pts) == ["b"]
    assert pareto_labels(pts, higher_domain=False) == ["a"]
    assert pareto_labels(pts[:1] + [{"label": "c", "domain": None, "general": None}]) == ["a"]
