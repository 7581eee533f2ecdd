"""Jupyter views: _repr_html_ of Comparison, Verdict and EvalResult are the report's own sections, scoped to
their output and legible in light and dark notebook themes; a real notebook executed by nbclient shows them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import evalkit
from evalkit.report.html import render_fragment, scope_css

SCOPE = ".evalkit-nb"


@pytest.fixture(scope="module")
def comparison(gated_comparison_dir):
    return evalkit.read_comparison(gated_comparison_dir)


def _style(html: str) -> str:
    return re.search(r"<style>(.*?)</style>", html, re.S).group(1)


def _rules(css: str) -> list[tuple[str, str]]:
    """(selector list, body) of every rule, @media blocks opened."""
    css = re.sub(r"@media[^{]*\{", "", css)
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"([^{}]+)\{([^{}]*)\}", css)]


def test_the_views_are_the_reports_sections(comparison):
    html = comparison._repr_html_()
    assert html.startswith('<div class="evalkit-nb">') and html.rstrip().endswith("</div>")
    for section in ('id="verdict"', 'id="summary"', 'id="study"', 'Verdict: <span class="badge status-fail">FAIL'):
        assert section in html
    assert "<script" not in html  # untrusted text (sample inputs carry a <script>) is not even in the view
    verdict = comparison.verdict._repr_html_()
    assert 'id="verdict"' in verdict and 'id="study"' not in verdict and "tuned" in verdict
    result = comparison.results[1]._repr_html_()
    assert 'id="study"' in result and "evalkit result · tuned (hf)" in result
    assert f"{comparison.results[1].tasks['mmlu'].metrics['acc']:.3f}" in result
    assert comparison._repr_html_() == html  # deterministic


def test_the_style_never_reaches_outside_its_output(comparison):
    for selectors, _ in _rules(_style(comparison._repr_html_())):
        for selector in selectors.split(","):
            assert selector.strip().startswith(SCOPE), selector  # no body/:root/table rule restyles the notebook


def _luminance(hex_color: str) -> float:
    if len(hex_color) == 4:  # #rgb
        hex_color = "#" + "".join(c * 2 for c in hex_color[1:])
    channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_legible_in_light_and_dark_themes(comparison):
    """The output sets its own text and background colours on its root, so a dark theme's light text never
    lands on the report's light surfaces (nor the light theme's on dark ones); its text colours meet WCAG AA
    (4.5:1) on the surfaces they are used on."""
    rules = _rules(_style(comparison._repr_html_()))
    root = " ".join(body for selectors, body in rules if selectors == SCOPE)
    assert re.search(r"(?<![-\w])color:var\(--ink\)", root) and re.search(r"background:var\(--bg\)", root)
    palette = dict(re.findall(r"--([\w-]+):(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3})\b", root))
    pairs = [("ink", "card"), ("ink", "bg"), ("muted", "card"), ("muted", "bg"), ("accent", "card"),
             ("good", "good-bg"), ("bad", "bad-bg"), ("warn", "warn-bg")]
    for text, surface in pairs:
        assert _contrast(palette[text], palette[surface]) >= 4.5, (text, surface)
    # A notebook's own table rules (JupyterLab stripes rows with theme colours) are overridden inside.
    assert any(selectors == f"{SCOPE} tbody tr:nth-child(n)" and "background:transparent" in body
               for selectors, body in rules)


def test_scope_css_keeps_media_queries_and_refuses_unknown_parts(comparison):
    scoped = scope_css("@media (max-width:9px) { body { a:b; } td, th { c:d; } }", ".x")
    assert scoped == "@media (max-width:9px) {\n.x { a:b; }\n.x td, .x th { c:d; }\n}"
    with pytest.raises(ValueError, match="parts must be among verdict, summary, study; got 'flips'"):
        render_fragment(comparison.data, parts=("flips",))


@pytest.mark.slow
def test_a_notebook_executed_by_nbclient_shows_them(comparison, gated_comparison_dir, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = str(Path(evalkit.__file__).resolve().parents[1])  # this checkout, in the kernel too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    cells = [f"import evalkit\ncomparison = evalkit.read_comparison({str(gated_comparison_dir)!r})",
             "comparison", "comparison.verdict", "comparison.results[1]",
             "comparison.to_pandas()[['task', 'metric', 'checkpoint', 'value', 'p_value']].head(3)"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    html = [next(o["data"]["text/html"] for o in cell.outputs if o.get("output_type") == "execute_result")
            for cell in notebook.cells[1:]]
    assert html[0] == comparison._repr_html_()
    assert html[1] == comparison.verdict._repr_html_()
    assert html[2] == comparison.results[1]._repr_html_()
    assert "mmlu" in html[3] and f"{comparison.data['metrics'][0]['value']:.6f}" in html[3]
