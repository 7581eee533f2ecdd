"""The breakdown charts' delta bars, written as SVG without matplotlib: well-formed, ordered, readable."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from evalkit.report.charts import BAD, GOOD, NEUTRAL, delta_bars_chart
from evalkit.report.delta_bars import text_width

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything that is not well-formed XML


def _bars(root: ET.Element) -> list[dict[str, float | str]]:
    return [{"x": float(r.get("x")), "y": float(r.get("y")), "width": float(r.get("width")), "fill": r.get("fill")}
            for r in root.iter(f"{SVG}rect")]


def _labels(root: ET.Element, size: str = "7.5") -> list[ET.Element]:
    return [t for t in root.iter(f"{SVG}text") if t.get("font-size") == size]


def test_bars_are_sorted_up_the_chart_and_coloured_by_significance_and_sign():
    root = _parse(delta_bars_chart(["b", "a", "c"], [0.2, -0.1, 0.05], [True, True, False], title="t", chart_id="x"))
    bars = _bars(root)
    assert [bar["fill"] for bar in sorted(bars, key=lambda b: -b["y"])] == [BAD, NEUTRAL, GOOD]  # bottom to top
    labels = sorted(_labels(root), key=lambda t: -float(t.get("y")))
    assert [t.text for t in labels] == ["a", "c", "b"]
    widths = {bar["fill"]: bar["width"] for bar in bars}
    assert widths[GOOD] == pytest.approx(4 * widths[NEUTRAL], rel=1e-2)  # 0.2 against 0.05: one scale
    negative = next(bar for bar in bars if bar["fill"] == BAD)
    zero = next(line for line in root.iter(f"{SVG}line") if line.get("stroke-width") == "0.8"
                and line.get("x1") == line.get("x2") and float(line.get("y2")) - float(line.get("y1")) > 20)
    assert negative["x"] + negative["width"] == pytest.approx(float(zero.get("x1")), abs=0.02)  # bars start at 0


def test_labels_fit_inside_the_chart_and_the_title_is_escaped_once():
    long = "high_school_european_history & <b>" * 3
    svg = delta_bars_chart([long, "x"], [0.1, -0.1], [False, False], title="t & <b>", chart_id="c1")
    root = _parse(svg)
    width = float(root.get("viewBox").split()[2])
    for label in _labels(root):
        assert float(label.get("x")) - text_width(label.text, 7.5) >= 0, label.text  # anchored at its end
        assert len(label.text) <= 42
    assert "t &amp; &lt;b&gt;" in svg and "&amp;amp;" not in svg
    assert root.get("class") == "chart" and root.get("role") == "img" and width == pytest.approx(460.8)
    assert root.find(f"{SVG}title").text == "t & <b>"


@pytest.mark.parametrize("deltas", [[0.0, 0.0], [1e-9], [-0.5, 0.5], [3.0, 7.0], [float("nan"), 0.2]])
def test_degenerate_ranges_give_round_distinct_ticks_around_zero(deltas):
    root = _parse(delta_bars_chart([str(i) for i in range(len(deltas))], deltas, [True] * len(deltas), title="t",
                                   chart_id="d"))
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("font-size") == "9.0" and t.get("text-anchor") == "middle"][:-1]
    assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks
    values = [float(text.replace("\u2212", "-")) for text in ticks]
    assert values == sorted(values) and values[0] <= 0 <= values[-1]
    assert all(not text.startswith("\u2212") for text, value in zip(ticks, values) if value == 0), ticks  # no -0
    assert len(_bars(root)) == sum(math.isfinite(d) for d in deltas)


def test_same_input_same_bytes_and_no_keys_still_draws():
    args = (["a", "b"], [0.1, -0.3], [True, False])
    assert delta_bars_chart(*args, title="t", chart_id="s") == delta_bars_chart(*args, title="t", chart_id="s")
    empty = _parse(delta_bars_chart([], [], [], title="nothing", chart_id="e"))
    assert _bars(empty) == [] and empty.find(f"{SVG}title").text == "nothing"


def test_lone_surrogates_in_labels_are_escaped_as_in_the_files():
    svg = delta_bars_chart(["b\udce9"], [0.1], [True], title="t", chart_id="u")
    assert "b\\udce9" in svg
    svg.encode("utf-8")
