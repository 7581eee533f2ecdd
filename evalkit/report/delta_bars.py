"""The breakdown charts' horizontal delta bars, written as SVG directly.

A report draws one of these per breakdown and checkpoint: 117 for a 40-checkpoint sweep. Through
matplotlib each cost ~0.2 s (two full draws with ``bbox_inches="tight"``), 20 s a report, paid again at
every save by the training callback. The chart is bars, tick labels and two lines, so it is written here
in ~1 ms with matplotlib's own tick choice (``MaxNLocator``) and its DejaVu Sans metrics for the label
column. The look follows :mod:`evalkit.report.charts`: same colours, fonts, grid and sizes.
"""

from __future__ import annotations

import functools
import math
import threading
from html import escape
from typing import Sequence

__all__ = ["delta_bars_svg", "text_width"]

_WIDTH = 460.8  # points: 6.4 in, as the matplotlib charts
_ROW = 12.24  # points per bar: 0.17 in
_TOP, _BOTTOM, _RIGHT = 24.0, 36.0, 14.0  # title; tick labels and axis label; room for the last tick label
_TICK, _PAD = 3.5, 3.5  # matplotlib's default tick length and label pad
_LABEL_SIZE, _TICK_SIZE, _AXIS_SIZE, _TITLE_SIZE = 7.5, 9.0, 9.0, 10.0
_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_FONT_LOCK = threading.Lock()  # one FT2Font object is shared; load_char mutates it


@functools.lru_cache(maxsize=1)
def _font():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont("DejaVu Sans"))
    font.set_size(100.0, 72)  # advances below are read at 100 pt and scaled
    return font


@functools.lru_cache(maxsize=4096)
def _advance(char: str) -> float:
    """Advance width of ``char`` in DejaVu Sans, in em (unhinted, as a browser scales it)."""
    from matplotlib.ft2font import LoadFlags

    with _FONT_LOCK:
        glyph = _font().load_char(ord(char), flags=LoadFlags.NO_HINTING)
    return glyph.linearHoriAdvance / 65536 / 100.0  # 16.16 fixed point pixels at 100 pt, 72 dpi


def text_width(text: str, size: float) -> float:
    """Width in points of ``text`` set in DejaVu Sans at ``size`` points, without kerning (which narrows).

    DejaVu Sans is the widest of the chart's fonts, so a column sized by it holds the labels in a browser
    that falls back to Helvetica or Arial. Per-character advances are cached: laying out the whole string
    in FreeType costs ~5 ms a label.

    >>> text_width("Billing", 10.0) > text_width("Bill", 10.0) > 0
    True
    >>> round(text_width("mmmm", 10.0) / text_width("mm", 10.0), 6)
    2.0
    """
    return size * sum(_advance(char) for char in text)


def _x_range(deltas: Sequence[float]) -> tuple[float, float]:
    """The data range with zero in it, widened by 5 % each side as matplotlib's default margins."""
    finite = [d for d in deltas if math.isfinite(d)]
    low, high = min([0.0, *finite]), max([0.0, *finite])
    if high - low < 1e-4:  # no visible bar: a scale of millionths would only print the float noise
        low, high = low - 0.05, high + 0.05
    pad = 0.05 * (high - low)
    return low - pad, high + pad


def _ticks(low: float, high: float, plot_width: float) -> list[float]:
    """matplotlib's choice of round ticks, at most one per 45 points so that labels like ``−0.25`` never touch."""
    from matplotlib.ticker import MaxNLocator

    bins = max(2, min(9, int(plot_width // 45)))
    values = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    return [float(v) for v in values if low - 1e-12 <= v <= high + 1e-12]


def _tick_texts(ticks: Sequence[float]) -> list[str]:
    """``0.05``, ``−0.10``: the fewest decimals that write every tick exactly, a true minus, never ``−0``."""
    decimals = next((d for d in range(7) if all(abs(round(t, d) - t) < 1e-9 for t in ticks)), 6)
    texts = []
    for tick in ticks:
        text = f"{tick:.{decimals}f}"
        if float(text) == 0:
            text = f"{0.0:.{decimals}f}"
        texts.append(text.replace("-", "\u2212"))
    return texts


def _text(x: float, y: float, body: str, size: float, *, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" text-anchor="{anchor}"{extra}>{escape(body, quote=False)}</text>'


def delta_bars_svg(
    labels: Sequence[str],
    deltas: Sequence[float],
    colours: Sequence[str],
    *,
    title: str,
    x_label: str,
    chart_id: str,
    zero_colour: str,
    axis_colour: str,
    grid_colour: str,
) -> str:
    """One ``<svg class="chart">`` of horizontal bars, the first at the bottom (as matplotlib's ``barh``).

    ``labels`` are plain text (escaped here); ``deltas`` and ``colours`` are in the same order.
    """
    label_column = max((text_width(label, _LABEL_SIZE) for label in labels), default=0.0)
    left = 4.0 + label_column + _TICK + _PAD
    plot_width = max(_WIDTH - left - _RIGHT, 60.0)
    rows = len(labels) + 0.4  # matplotlib's ylim(-0.7, n - 0.3)
    plot_height = rows * _ROW
    height = _TOP + plot_height + _BOTTOM
    low, high = _x_range(deltas)
    ticks = _ticks(low, high, plot_width)

    def x_at(value: float) -> float:
        return left + (value - low) / (high - low) * plot_width

    def y_at(position: float) -> float:  # bar positions count up from the bottom
        return _TOP + (len(labels) - 0.3 - position) / rows * plot_height

    bottom = _TOP + plot_height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH:.2f} {height:.2f}" class="chart" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title" style="max-width:{_WIDTH:.2f}pt" '
        f'font-family="{_FONT}" fill="#1f2933">',
        f'<title id="{escape(chart_id)}-title">{escape(title, quote=False)}</title>',
    ]
    for tick in ticks:  # grid first, behind the bars
        x = x_at(tick)
        parts.append(
            f'<line x1="{x:.2f}" y1="{_TOP:.2f}" x2="{x:.2f}" y2="{bottom:.2f}" stroke="{grid_colour}" stroke-width="0.6"/>'
        )
    for position, (delta, colour) in enumerate(zip(deltas, colours)):
        if not math.isfinite(delta):
            continue
        x0, x1 = sorted((x_at(0.0), x_at(delta)))
        top = y_at(position + 0.36)
        parts.append(
            f'<rect x="{x0:.2f}" y="{top:.2f}" width="{x1 - x0:.2f}" height="{0.72 / rows * plot_height:.2f}" fill="{colour}"/>'
        )
    zero = x_at(0.0)
    parts.append(
        f'<line x1="{zero:.2f}" y1="{_TOP:.2f}" x2="{zero:.2f}" y2="{bottom:.2f}" stroke="{zero_colour}" stroke-width="0.8"/>'
    )
    parts.append(  # the left and bottom spines
        f'<path d="M{left:.2f} {_TOP:.2f}V{bottom:.2f}H{left + plot_width:.2f}" fill="none" stroke="{axis_colour}" stroke-width="0.8"/>'
    )
    for position, label in enumerate(labels):
        y = y_at(position)
        parts.append(
            f'<line x1="{left - _TICK:.2f}" y1="{y:.2f}" x2="{left:.2f}" y2="{y:.2f}" stroke="{axis_colour}" stroke-width="0.8"/>'
        )
        parts.append(_text(left - _TICK - _PAD, y + _LABEL_SIZE * 0.35, label, _LABEL_SIZE, anchor="end"))
    for tick, text in zip(ticks, _tick_texts(ticks)):
        x = x_at(tick)
        parts.append(
            f'<line x1="{x:.2f}" y1="{bottom:.2f}" x2="{x:.2f}" y2="{bottom + _TICK:.2f}" stroke="{axis_colour}" stroke-width="0.8"/>'
        )
        parts.append(_text(x, bottom + _TICK + _PAD + _TICK_SIZE * 0.8, text, _TICK_SIZE, anchor="middle"))
    parts.append(_text(left + plot_width / 2, height - 4.0, x_label, _AXIS_SIZE, anchor="middle"))
    parts.append(_text(4.0, _TOP - 7.0, title, _TITLE_SIZE, extra=' font-weight="bold"'))
    parts.append("</svg>")
    return "".join(parts)
