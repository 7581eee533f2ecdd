"""Report details a reviewer noticed: tones of zero counts, relative change of lower-is-better metrics,
head / torso / tail order, explained empty predictions, what comparison.json holds, readable metadata."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from evalkit.report import render_html
from evalkit.report import _view as view

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture() -> dict:
    return json.loads((FIXTURES / "report_fixture.json").read_text())


def _section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}"')
    return html[start:html.index("</section>", start)]


def test_zero_counts_are_not_coloured():
    comparison = _fixture()
    comparison["summary"] = [{"checkpoint": "mix_75_25", "significant_regressions": 0, "significant_improvements": 2},
                             {"checkpoint": "domain_only", "significant_regressions": 3, "significant_improvements": 0}]
    summary = _section(render_html(comparison), "summary")
    assert '<span class="tone-none">0 significant regressions</span>' in summary
    assert '<span class="tone-good">2 significant improvements</span>' in summary
    assert '<span class="tone-bad">3 significant regressions</span>' in summary
    assert '<span class="tone-none">0 significant improvements</span>' in summary


def test_relative_change_is_a_percent_and_lower_is_better_falls_are_good_news():
    comparison = _fixture()
    row = next(r for r in comparison["metrics"] if r["metric"] == "parse_failure_rate" and r["checkpoint"] != "base")
    row.update(value=0.0, baseline_value=0.39, delta=-0.39, relative=0.0, p_value=0.0001, higher_is_better=False)
    html = _section(render_html(comparison), "metrics")
    assert "Relative Δ" in html and "relative 0.000" not in html
    assert re.search(r'<td class="num tone-good" data-sort="0\.0">-100\.0%</td>', html)
    assert view.fmt_relative_change(0.75) == "-25.0%" and view.fmt_relative_change(None) == "–"


def test_head_torso_tail_in_that_order():
    comparison = _fixture()
    rows = [b for b in comparison["breakdowns"] if b["kind"] == "frequency"]
    rows.sort(key=lambda b: {"tail": 0, "head": 1, "torso": 2}.get(b["key"], 3))  # first appearance: tail
    comparison["breakdowns"] = [b for b in comparison["breakdowns"] if b["kind"] != "frequency"] + rows
    keys = [r["key"] for r in view.pivot_breakdown(comparison, "voc_sample", "frequency", rows[0]["metric"])]
    assert keys == [k for k in ("head", "torso", "tail") if k in keys] and len(keys) == 3
    block = render_html(comparison)
    block = block[block.index('class="block kind-frequency"'):]
    positions = [block.index(f'<td class="key">{k}</td>') for k in ("head", "torso", "tail")]
    assert positions == sorted(positions)


def test_breakdown_deltas_show_their_paired_interval():
    """A breakdown row with a paired interval (issue 27: bands, levels, classes) shows it beside its delta."""
    comparison = _fixture()
    row = next(b for b in comparison["breakdowns"] if b["kind"] == "frequency" and b["checkpoint"] != comparison["baseline"])
    row.update(delta=-0.2, delta_ci_low=-0.31, delta_ci_high=-0.09)
    block = render_html(comparison)
    block = block[block.index('class="block kind-frequency"'):]
    block = block[:block.index("</table>")]
    assert '-0.200 <span class="ci">[-0.310, -0.090]</span>' in block
    assert block.count('class="ci"') == 1  # rows without an interval show none


def test_empty_predictions_are_explained_and_the_flips_footer_says_what_is_kept():
    comparison = _fixture()
    comparison["settings"] = {"max_flips": 200, "confidence": 0.95}
    flips = _section(render_html(comparison), "flips")
    assert "no valid answer" in flips and "it counts as wrong" in flips
    assert "comparison.json keeps the first 200 flipped samples per task, checkpoint and direction" in flips
    assert "has them all" not in flips
    assert 'cell.textContent = "no valid answer"' in render_html(comparison)


def test_run_metadata_is_for_people(monkeypatch, tmp_path):
    comparison = copy.deepcopy(_fixture())
    monkeypatch.chdir(tmp_path)
    comparison["checkpoints"][0]["spec"] = str(tmp_path / "models" / "base")
    comparison["tasks"][0]["settings"] = {"sep": " > ", "prompt_template": "Comment: {{ text }}\nLabel:",
                                          "parse_rules": {"exact": 290, "invalid": 10}, "limit": None}
    meta = _section(render_html(comparison), "metadata")
    assert "\\u003e" not in meta and "\\u003c" not in meta and '{"limit"' not in meta
    assert '<b>sep</b> &#34; &gt; &#34;' in meta and '<b>limit</b> –' in meta
    assert '<b>parse_rules</b> {&#34;exact&#34;: 290, &#34;invalid&#34;: 10}' in meta
    assert f'title="{tmp_path}/models/base">models/base</td>' in meta
    assert view.display_path("base=/elsewhere/x", cwd=str(tmp_path)) == "base=/elsewhere/x"
