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


def _pt(label, domain, general, *, step=None, status=None, width=0.02):
    return {"label": label, "run": "r" if step is not None else None, "step": step, "status": status,
            "domain": {"value": domain, "low": domain - width, "high": domain + width},
            "general": {"value": general, "low": general - width, "high": general + width}}


def test_frontier_counts_the_baseline_ties_within_noise_and_a_big_loss_is_not_optimal():
    from evalkit.report.trajectory import frontier_labels

    base = _pt("base", 0.30, 0.95)
    forgetful = _pt("forgetful", 0.913, 0.45, step=100)   # a 0.013 domain lead bought with 0.50 of general
    keeper = _pt("keeper", 0.900, 0.94, step=200)
    worse_than_base = _pt("worse", 0.29, 0.80, step=50)   # the base dominates it: no star for it
    assert frontier_labels([base, forgetful, keeper, worse_than_base]) == ["keeper"]
    # six identical saves tie with each other; the base is dominated by all of them
    twins = [_pt(f"twin{i}", 0.9, 0.9, step=10 * i) for i in range(6)]
    assert frontier_labels([_pt("base", 0.30, 0.90)] + twins) == [t["label"] for t in twins]
    assert frontier_labels([base] + twins) == ["base"] + [t["label"] for t in twins]  # base keeps more general
    # a base no save beats beyond noise stays on the frontier
    assert "base" in frontier_labels([_pt("base", 0.88, 0.95), keeper])


def test_recommendation_rule_on_hand_made_numbers():
    from evalkit.report.trajectory import recommend

    saves = [_pt("s100", 0.80, 0.95, step=100, status="pass"), _pt("s200", 0.89, 0.94, step=200, status="pass"),
             _pt("s300", 0.91, 0.93, step=300, status="pass"), _pt("s400", 0.97, 0.50, step=400, status="fail")]
    picked = recommend(saves)
    # the best passing domain score is s300's 0.91; s200 (0.89) is within noise of it and earlier; s100 is not
    assert picked["label"] == "s200" and picked["best_domain"] == "s300" and picked["step"] == 200
    assert recommend([dict(s, status="fail") for s in saves]) == {
        "label": None, "rule": picked["rule"], "reason": "no save passes every gate"}
    # equal steps in two runs: the better general score wins
    a, b = _pt("a", 0.9, 0.80, step=100, status="pass"), _pt("b", 0.9, 0.85, step=100, status="pass")
    assert recommend([a, b])["label"] == "b"
    # lower-is-better domain metric
    assert recommend([_pt("x", 0.2, 0.9, step=1), _pt("y", 0.8, 0.9, step=2)], higher_domain=False)["label"] == "x"


def test_signal_and_noise_reads_a_trend_as_signal_and_wobble_as_noise():
    import math

    from evalkit.report.trajectory import signal_and_noise

    trend = signal_and_noise([0.70, 0.60, 0.50, 0.40], 0.80)
    assert trend["guides"] and trend["signal"] == 0.4 and math.isclose(trend["noise"], math.sqrt(0.01 / 2))
    wobble = signal_and_noise([0.79, 0.81, 0.78, 0.80], 0.80)
    assert wobble["guides"] is False and wobble["ratio"] < 1
    assert signal_and_noise([0.5, 0.5, 0.5], 0.5)["guides"] is None  # flat: neither
    assert signal_and_noise([0.5, 0.6], 0.5)["noise"] is None  # two saves: one difference is not a spread
