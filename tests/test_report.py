"""Report rendering from fixture comparisons: sections, numbers, escaping, sizes, determinism, files."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.report import comparison_json, metrics_csv, render_html, render_markdown, write_reports
from evalkit.report.charts import delta_bars_chart
from evalkit.report.html import json_for_script
from evalkit.report.markdown import md_escape
from tests.helpers.untrusted import PAYLOADS, poison

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str = "report_fixture") -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def poison_labels(comparison: dict) -> dict:
    """Checkpoint labels and task names are user input too: rename them consistently everywhere."""
    text = json.dumps(comparison)
    for old in ["domain_only", "voc_sample", "mmlu_generative"]:
        text = text.replace(f'"{old}"', json.dumps(old + PAYLOADS[0]))
    return json.loads(text)


@pytest.fixture(scope="module")
def fixture_html() -> str:
    return render_html(load())


def test_html_has_every_section(fixture_html):
    ids = re.findall(r'<section id="([^"]+)"', fixture_html)
    assert ids == ["verdict", "summary", "study", "learning-forgetting", "metrics", "breakdowns",
                   "format-knowledge", "flips", "metadata"]
    charts = re.findall(r'<svg[^>]* class="chart"', fixture_html)
    assert len(charts) == 6  # lf + 2 subject + 2 instruction + 1 level charts
    assert 'class="breakdown sortable"' in fixture_html and 'id="flip-search"' in fixture_html


def test_html_shows_formatted_numbers_and_significance(fixture_html):
    for text in ["0.710", "+0.590", "[+0.540, +0.640]", "&lt;0.001", "-0.150", "0.210", "mcnemar_exact"]:
        assert text in fixture_html, text
    # the significant mmlu drop is bold red, the non-significant one plain
    assert re.search(r'class="num tone-bad sig"[^>]*>-0\.150', fixture_html)
    assert re.search(r'class="num tone-neutral"[^>]*>-0\.015', fixture_html)
    # parse_failure_rate is lower-is-better: its significant fall is good news
    assert re.search(r'class="num tone-good sig"[^>]*>-0\.390', fixture_html)
    assert "Verdict: <span class=\"badge status-fail\">FAIL</span>" in fixture_html


def test_every_untrusted_field_is_escaped():
    comparison = poison_labels(poison(load()))
    html = render_html(comparison)
    markdown = render_markdown(comparison)
    for payload in PAYLOADS:
        assert payload not in html
        assert payload not in markdown
    assert "<img" not in html and "<img" not in markdown
    assert html.count("<script") == 2  # only ours: the JSON block and the page script
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # shown as text
    data = re.search(r'<script type="application/json" id="flip-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in data and json.loads(data)[0]["input"].endswith(PAYLOADS[1])


def test_chart_text_is_escaped():
    svg = delta_bars_chart(["<script>alert(1)</script>", "ok"], [0.1, -0.2], [True, False], title="t & <b>")
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "t &amp; &lt;b&gt;" in svg and not svg.startswith("<?xml")


def test_json_for_script_cannot_close_the_script_block():
    text = json_for_script({"x": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"x": "</script><!-- & \u2028"}


def test_markdown_is_short_and_has_verdict_and_summary():
    markdown = render_markdown(load())
    assert "### ❌ Verdict: **FAIL**" in markdown
    assert "| fail | mmlu.acc max\\_drop 0.02" in markdown  # failed check listed
    assert "| domain\\_only | LoRA on VOC only &lt;b&gt;r=8&lt;/b&gt; | 0.740 (**+0.590** ✱)" in markdown
    assert "- **mix\\_75\\_25**: domain voc\\_sample leaf\\_macro\\_f1 **+0.540** ✱" in markdown
    assert len(markdown) < 6000


def test_markdown_caps_tables_and_validates_max_rows():
    big = large_comparison()
    markdown = render_markdown(big, max_rows=5)
    assert len(markdown) < 20_000 and "more rows in report.html" in markdown
    assert len(render_markdown(big)) < 50_000
    with pytest.raises(ValueError, match="'max_rows' parameter of render_markdown must be an int >= 1. Got 0"):
        render_markdown(big, max_rows=0)


def test_md_escape_neutralises_markup():
    assert md_escape("a|b\n<x> [l](u) @team") == "a\\|b &lt;x&gt; \\[l\\](u) @\u200bteam"


def test_write_reports_writes_four_files(tmp_path):
    comparison = load()
    out = tmp_path / "nested" / "report"
    paths = write_reports(comparison, out)
    assert [p.name for p in paths] == ["report.html", "report.md", "comparison.json", "metrics.csv"]
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "manifest.json", "metrics.csv", "report.html",
                                                     "report.md"]
    text = (out / "comparison.json").read_text()
    assert json.loads(text) == comparison
    assert text == json.dumps(comparison, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_metrics_csv_is_tidy(tmp_path):
    comparison = load()
    comparison["metrics"][0]["ci_method"] = "wilson"  # an extra key becomes an extra column
    rows = list(csv.DictReader(io.StringIO(metrics_csv(comparison))))
    assert len(rows) == len(comparison["metrics"]) == 27
    assert list(rows[0])[:4] == ["task", "metric", "checkpoint", "axis"] and list(rows[0])[-1] == "ci_method"
    first = comparison["metrics"][0]
    assert float(rows[0]["value"]) == first["value"] and rows[0]["p_value"] == ""  # null -> empty cell


def test_nan_is_refused_and_nothing_is_written(tmp_path):
    comparison = load()
    comparison["metrics"][0]["value"] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        write_reports(comparison, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError):
        comparison_json(comparison)


def test_newer_schema_is_refused():
    comparison = load()
    comparison["schema_version"] = 2
    with pytest.raises(UsageError, match=r"schema_version 2 is newer than this evalkit reads \(1\)"):
        render_html(comparison)


def test_output_is_deterministic(tmp_path):
    first = write_reports(load(), tmp_path / "a")
    second = write_reports(load(), tmp_path / "b")
    for one, two in zip(first, second):
        assert one.read_bytes() == two.read_bytes(), one.name


def _only_axis(comparison: dict, axis: str) -> dict:
    keep = {t["name"] for t in comparison["tasks"] if t["axis"] == axis}
    result = copy.deepcopy(comparison)
    result["tasks"] = [t for t in result["tasks"] if t["name"] in keep]
    for key in ("metrics", "breakdowns", "flips", "flip_counts"):
        result[key] = [r for r in result[key] if r["task"] in keep]
    result["format_vs_knowledge"], result["verdict"] = [], None
    return result


@pytest.mark.parametrize("axis", ["general", "domain"])
def test_single_axis_comparison_renders(axis):
    comparison = _only_axis(load(), axis)
    html = render_html(comparison)
    ids = re.findall(r'<section id="([^"]+)"', html)
    assert "learning-forgetting" not in ids and "verdict" not in ids and "summary" in ids
    heading = "Domain gain" if axis == "domain" else "General retention"
    other = "General retention" if axis == "domain" else "Domain gain"
    assert heading in html and other not in html
    assert "Summary vs base" in render_markdown(comparison)


def test_baseline_only_and_minimal_comparisons_render():
    minimal = {"schema_version": 1, "baseline": "base", "checkpoints": [{"label": "base"}],
               "tasks": [{"name": "mmlu", "axis": "general", "primary_metric": "acc"}],
               "metrics": [{"task": "mmlu", "metric": "acc", "checkpoint": "base", "axis": "general",
                            "is_primary": True, "value": 0.5}]}
    html = render_html(minimal)
    assert "Only the baseline was evaluated" in html and "0.500" in html
    assert "base (baseline)" in render_markdown(minimal)


def test_example_from_build_comparison_renders():
    """The fixture committed with build_comparison (schema additions: summary, warnings, settings)."""
    path = FIXTURES / "comparison_example.json"
    if not path.exists():
        pytest.skip("comparison_example.json not committed yet")
    comparison = json.loads(path.read_text())
    html = render_html(comparison)
    assert "\\u003cscript\\u003ealert" in html and "<script>alert" not in html  # its flips carry a payload
    assert "significant regression" in html and "n_resamples = " in html
    assert "Summary vs base" in render_markdown(comparison)


def large_comparison() -> dict:
    """57 MMLU subjects, 441 VOC classes, 2 tuned checkpoints, 200 long flips per task and direction."""
    base = load()
    labels = ["base", "domain_only", "mix_75_25"]
    breakdowns = [b for b in base["breakdowns"] if b["kind"] not in ("subject", "class")]
    for kind, task, metric, count in [("subject", "mmlu", "acc", 57), ("class", "voc_sample", "f1", 441)]:
        for index in range(count):
            key = f"{kind} {index} " + ("high_school_government_and_politics" if kind == "subject" else "Credit card > Billing dispute > Other")
            for label in labels:
                value = (index * 37 % 100) / 100
                delta = 0.0 if label == "base" else ((index * 13 % 40) - 20) / 100
                breakdowns.append({"task": task, "kind": kind, "key": key, "metric": metric, "checkpoint": label,
                                   "value": value + delta, "n": 20, "baseline_value": value, "delta": delta,
                                   "p_value": None if label == "base" else (index % 7) / 10, "test": "mcnemar_exact"})
    flips = []
    for task in ["mmlu", "voc_sample", "ifeval"]:
        for label in labels[1:]:
            for direction in ["right_to_wrong", "wrong_to_right"]:
                flips += [{"task": task, "checkpoint": label, "direction": direction, "sample_id": str(i),
                           "input": "A long complaint about fees and interest rates. " * 25, "target": "B",
                           "baseline_prediction": "Credit card > Billing dispute > Other", "prediction": "x" * 1000}
                          for i in range(200)]
    return {**base, "breakdowns": breakdowns, "flips": flips,
            "metrics": base["metrics"] * 3}  # more metric rows for the capped Markdown table


@pytest.mark.slow
def test_large_comparison_html_stays_compact():
    html = render_html(large_comparison())
    assert len(html.encode()) < 2_000_000
    assert html.count("<tr><td class=\"key\">class ") == 441
    assert "and this explorer the first 60 of those (720 of 2400)" in html


def test_a_relative_change_from_a_near_zero_baseline_is_not_shown_as_a_percentage():
    comparison = load()
    row = next(r for r in comparison["metrics"] if r["checkpoint"] != comparison["baseline"] and r.get("relative"))
    row.update(baseline_value=0.002, value=0.327, delta=0.325, relative=163.5)
    html = render_html(comparison)
    assert "+16,250.0%" not in html and "+16250.0%" not in html
    assert "– (baseline ≈ 0)" in html
