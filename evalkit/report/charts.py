"""Charts as inline SVG strings, deterministic for the same input: matplotlib, except the delta bars.

Each function returns the text of one ``<svg>`` element (no XML prolog) ready to paste into HTML.
matplotlib escapes text in SVG (``<`` becomes ``&lt;``), and ``svg.fonttype = "none"`` keeps labels as
``<text>`` rather than glyph paths, which keeps the file small. Figures are built with
``matplotlib.figure.Figure`` directly, so no pyplot state or GUI backend is involved. Element ids are
prefixed per chart so several charts can live in one HTML page.
"""

from __future__ import annotations

import io
import re
from typing import Any, Sequence

__all__ = [
    "figure_to_svg",
    "learning_forgetting_chart",
    "delta_bars_chart",
    "grouped_bars_chart",
    "reliability_chart",
    "risk_coverage_chart",
]

#: Colours (colour-blind friendly, Okabe-Ito based).
GOOD, BAD, NEUTRAL = "#009E73", "#D55E00", "#9AA4AE"
AXIS, GRID, ZERO = "#8a949e", "#e3e7eb", "#52606d"  # spines and ticks; grid lines; the zero line
SERIES = ["#4C5B6B", "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]

_RC = {
    "svg.hashsalt": "evalkit",  # stable ids for clip paths and markers
    "svg.fonttype": "none",  # text stays text: small, selectable, escaped by matplotlib
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": AXIS,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "path.simplify": True,
}
_TAG = re.compile(r"<[^<>]+>")


def _clipped(text: Any, limit: int = 60) -> str:
    """``text`` with lone surrogates escaped as in the files, clipped to ``limit`` characters."""
    from .._io import escape_surrogates

    text = escape_surrogates(str(text))
    return text[: limit - 1] + "…" if len(text) > limit else text


def plain(text: Any, limit: int = 60) -> str:
    """Label text safe from matplotlib's mathtext (a ``$`` would start a formula) and its font encoder
    (lone surrogates are escaped as in the files), clipped to ``limit``."""
    return _clipped(text, limit).replace("$", r"\$")


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=72)
    return figure, figure.add_subplot()


def figure_to_svg(figure, chart_id: str) -> str:
    """Serialise ``figure`` to an ``<svg>`` string with ids prefixed by ``chart_id``."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": _RC["svg.hashsalt"], "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: invalid inside HTML
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)  # creator block: bytes only
    svg = _TAG.sub(lambda m: _prefix_ids(m.group(0), chart_id), svg)
    # Responsive: keep the viewBox, let CSS size it, but never wider than drawn.
    return re.sub(
        r'<svg([^>]*?) width="([\d.]+)pt" height="([\d.]+)pt"',
        lambda m: f'<svg{m.group(1)} class="chart" role="img" style="max-width:{m.group(2)}pt"',
        svg,
        count=1,
    )


def _prefix_ids(tag: str, chart_id: str) -> str:
    """Prefix ``id="x"``, ``href="#x"`` and ``url(#x)`` inside one tag (never inside text)."""
    tag = re.sub(r'(\sid=")', rf"\g<1>{chart_id}-", tag)
    tag = re.sub(r'(href="#)', rf"\g<1>{chart_id}-", tag)
    return re.sub(r"url\(#", f"url(#{chart_id}-", tag)


def learning_forgetting_chart(
    points: Sequence[dict[str, Any]], *, x_label: str, y_label: str, chart_id: str = "lf"
) -> str:
    """Domain metric (x) against general metric (y), one point per checkpoint with CI error bars.

    ``points`` items: ``label``, ``x``, ``y``, optional ``x_low``/``x_high``/``y_low``/``y_high`` and
    ``is_baseline``. Up and to the right is better: specialised without forgetting.
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        figure, axes = _new_figure(6.4, 4.4)
        for point in points:  # dashed guides through the baseline: the quadrant to aim for is up-right
            if point.get("is_baseline"):
                axes.axvline(point["x"], color=NEUTRAL, linestyle="--", linewidth=0.8, zorder=1)
                axes.axhline(point["y"], color=NEUTRAL, linestyle="--", linewidth=0.8, zorder=1)
        for index, point in enumerate(points):
            colour = SERIES[0] if point.get("is_baseline") else SERIES[1 + index % (len(SERIES) - 1)]
            xerr = _error(point["x"], point.get("x_low"), point.get("x_high"))
            yerr = _error(point["y"], point.get("y_low"), point.get("y_high"))
            axes.errorbar(
                [point["x"]],
                [point["y"]],
                xerr=xerr,
                yerr=yerr,
                fmt="D" if point.get("is_baseline") else "o",
                color=colour,
                ecolor=colour,
                elinewidth=1.2,
                capsize=3,
                markersize=7,
                zorder=3,
            )
            axes.annotate(
                plain(point["label"], 30),
                (point["x"], point["y"]),
                xytext=(7, 6),
                textcoords="offset points",
                fontsize=9,
                color="#1f2933",
            )
        axes.set_xlabel(plain(x_label))
        axes.set_ylabel(plain(y_label))
        axes.set_title("Learning vs forgetting (up and right is better)")
        axes.margins(0.15)
        return figure_to_svg(figure, chart_id)


def _error(centre: float, low: float | None, high: float | None):
    if low is None or high is None:
        return None
    return [[max(centre - low, 0.0)], [max(high - centre, 0.0)]]


def delta_bars_chart(
    keys: Sequence[str],
    deltas: Sequence[float],
    significant: Sequence[bool],
    *,
    title: str,
    x_label: str = "Δ vs baseline",
    chart_id: str = "db",
) -> str:
    """Horizontal bars of per-key deltas, sorted ascending; significant bars coloured, others grey.

    Written as SVG directly (:mod:`evalkit.report.delta_bars`): a report draws one per breakdown and
    checkpoint, too many to pay matplotlib's two draws each.
    """
    from .delta_bars import delta_bars_svg

    order = sorted(range(len(keys)), key=lambda i: (deltas[i], str(keys[i])))
    return delta_bars_svg(
        [_clipped(keys[i], 42) for i in order],
        [deltas[i] for i in order],
        [(GOOD if deltas[i] > 0 else BAD) if significant[i] else NEUTRAL for i in order],
        title=_clipped(title),
        x_label=_clipped(x_label),
        chart_id=chart_id,
        zero_colour=ZERO,
        axis_colour=AXIS,
        grid_colour=GRID,
    )


def grouped_bars_chart(
    categories: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    y_label: str,
    chart_id: str = "gb",
) -> str:
    """Vertical grouped bars: one group per category, one bar per series (checkpoint)."""
    import matplotlib

    count = max(len(series), 1)
    width = 0.8 / count
    with matplotlib.rc_context(_RC):
        figure, axes = _new_figure(max(4.0, 1.1 + 0.55 * len(categories) * count), 3.2)
        for index, (name, values) in enumerate(series.items()):
            offsets = [c - 0.4 + width * (index + 0.5) for c in range(len(categories))]
            heights = [v if v is not None else 0.0 for v in values]
            axes.bar(
                offsets, heights, width=width * 0.92, label=plain(name), color=SERIES[index % len(SERIES)], zorder=2
            )
        axes.set_xticks(list(range(len(categories))), [plain(c, 24) for c in categories])
        axes.grid(axis="x", visible=False)
        axes.set_ylabel(plain(y_label))
        axes.set_title(plain(title), loc="left")
        axes.legend(frameon=False, fontsize=8, ncols=min(count, 4), loc="upper center", bbox_to_anchor=(0.5, -0.12))
        return figure_to_svg(figure, chart_id)


def reliability_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]], *, title: str, chart_id: str = "rel"
) -> str:
    """Reliability diagram: accuracy against mean confidence per equal-mass bin, one line per checkpoint.

    Points on the diagonal are calibrated; below it the model is overconfident.
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        figure, axes = _new_figure(4.6, 4.0)
        axes.plot([0, 1], [0, 1], color=NEUTRAL, linestyle="--", linewidth=0.9, zorder=1)
        for index, (name, (confidence, accuracy)) in enumerate(series.items()):
            axes.plot(
                confidence,
                accuracy,
                marker="o",
                markersize=4,
                linewidth=1.4,
                label=plain(name, 30),
                color=SERIES[index % len(SERIES)],
                zorder=2,
            )
        return _unit_square_svg(
            figure, axes, "mean confidence (equal-mass bins)", "leaf accuracy", title, "upper left", chart_id
        )


def risk_coverage_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    targets: Sequence[float],
    *,
    title: str,
    chart_id: str = "rc",
) -> str:
    """Leaf precision of the comments accepted above each confidence cut against their share (coverage)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        figure, axes = _new_figure(4.6, 4.0)
        for target in targets:
            axes.axhline(target, color=NEUTRAL, linestyle=":", linewidth=0.9, zorder=1)
        for index, (name, (coverage, precision)) in enumerate(series.items()):
            axes.step(
                coverage,
                precision,
                where="post",
                linewidth=1.4,
                label=plain(name, 30),
                color=SERIES[index % len(SERIES)],
                zorder=2,
            )
        return _unit_square_svg(
            figure,
            axes,
            "coverage (share routed automatically)",
            "leaf precision of the routed comments",
            title,
            "lower left",
            chart_id,
        )


def _unit_square_svg(figure, axes, x_label: str, y_label: str, title: str, legend: str, chart_id: str) -> str:
    """Axes over [0, 1] x [0, 1] (a little headroom for a precision of 1), labelled, with a legend."""
    axes.set_xlim(0, 1), axes.set_ylim(0, 1.02)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(plain(title), loc="left")
    axes.legend(frameon=False, fontsize=8, loc=legend)
    return figure_to_svg(figure, chart_id)
