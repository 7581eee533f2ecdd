"""A 40-checkpoint sweep report in headless Chromium: the trajectory comes first and is above the fold, and
no two labels of its charts overprint each other."""

from __future__ import annotations

import pytest

import evalkit
from tests.test_report_browser import chromium, open_report  # noqa: F401 - the module's browser fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Every <text> of the trajectory's charts as a box; pairs that intersect by more than a pixel each way.
_OVERPRINT_JS = """(() => {
    const found = [];
    document.querySelectorAll('#trajectory svg.chart').forEach((svg, chart) => {
        const boxes = Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim())
            .map(t => ({text: t.textContent.trim(), box: t.getBoundingClientRect()}))
            .filter(t => t.box.width > 0 && t.box.height > 0);
        for (let i = 0; i < boxes.length; i++) {
            for (let j = i + 1; j < boxes.length; j++) {
                const a = boxes[i].box, b = boxes[j].box;
                const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
                const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
                if (x > 1 && y > 1) { found.push(`chart ${chart}: "${boxes[i].text}" / "${boxes[j].text}"`); }
            }
        }
    });
    const first = document.querySelector('main > section');
    const chart = document.querySelector('#trajectory svg.chart').getBoundingClientRect();
    return {overprinted: found.slice(0, 20), texts: document.querySelectorAll('#trajectory svg.chart text').length,
            first: first && first.id, chartTop: chart.top, viewport: window.innerHeight,
            recommended: document.querySelector('#trajectory .recommendation').textContent};
})()"""


def test_a_forty_checkpoint_sweep_reads_trajectory_first_without_overprinted_labels(chromium, tmp_path):  # noqa: F811
    from synthetic_results import make_sweep

    comparison = evalkit.compare(*make_sweep(), n_resamples=20).to_dict()
    assert len(comparison["checkpoints"]) == 40
    chromium.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    for domain in ("Runtime", "Page"):
        chromium.call(f"{domain}.enable")
    open_report(chromium, comparison, tmp_path)
    layout = chromium.evaluate(_OVERPRINT_JS)
    assert layout["first"] == "trajectory"
    assert layout["chartTop"] < layout["viewport"], "the trajectory chart is below the fold"
    assert layout["texts"] > 20 and layout["overprinted"] == [], layout["overprinted"]
    assert layout["recommended"].startswith("Recommended: ")
