"""``report.md``: a short summary that fits a pull-request comment or a CI step summary.

GitHub limits a comment to 65,536 characters; tables are capped at ``max_rows`` and the whole text at
:data:`MAX_CHARS`. Untrusted strings are escaped for table cells: no raw HTML, no links or images,
no pipes that would break the table, no @-mentions.
"""

from __future__ import annotations

from typing import Any

from ..markdown_text import md_escape
from . import _domain as domain
from . import _view as view
from . import trajectory

__all__ = ["render_markdown", "md_escape", "MAX_CHARS"]

#: Hard ceiling for the Markdown text, well under GitHub's 65,536-character comment limit.
MAX_CHARS = 50_000
_STATUS_ICON = {"pass": "✅", "warn": "⚠️", "inconclusive": "❔", "fail": "❌"}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _change(row: dict[str, Any]) -> str:
    """``0.450 (−0.150 ✱)`` — the delta bold when significant."""
    delta = view.fmt_delta(row.get("delta"))
    if view.marked(row):
        delta = f"**{delta}** ✱"
    return f"{view.fmt_value(row.get('value'))} ({delta})"


def _verdict_lines(verdict: dict[str, Any], max_rows: int, checkpoint_verdicts: list[dict[str, Any]]) -> list[str]:
    status = str(verdict.get("status", "unknown"))
    checks = verdict.get("checks") or []
    problems = [c for c in checks if c.get("status") != "pass"]
    lines = [
        f"### {_STATUS_ICON.get(status, '')} Verdict: **{md_escape(status.upper())}**".replace("###  ", "### "),
        "",
        f"{len(problems)} of {len(checks)} checks not passing (policy {md_escape(verdict.get('policy') or '–')}).",
        "",
    ]
    lines += _table(
        ["checkpoint", "verdict", "why"],
        [
            [
                md_escape(v["checkpoint"]),
                f"{_STATUS_ICON.get(v['status'], '')} **{md_escape(v['status'].upper())}**",
                md_escape(v["reason"]) + (f" (and {v['more']} more)" if v["more"] else ""),
            ]
            for v in checkpoint_verdicts
        ],
    ) + [""]
    weak = [c for c in checks if c.get("underpowered")]
    if weak:
        lines += [
            "> ⚠️ No error control and underpowered (a gate without a significance level, its threshold below "
            "the change detected with probability 0.8): "
            + "; ".join(
                f"{md_escape(c.get('gate'))} — {md_escape(c.get('checkpoint'))} (MDE {view.fmt_value(c.get('mde'))})"
                for c in weak[:max_rows]
            ),
            "",
        ]
    if problems:
        rows = [
            [
                md_escape(c.get("status")),
                md_escape(c.get("gate")),
                md_escape(c.get("checkpoint")),
                view.fmt_value(c.get("value")),
                view.fmt_value(c.get("baseline_value")),
                view.fmt_delta(c.get("delta")),
                view.fmt_bounds(c),
                md_escape(c.get("message")),
            ]
            for c in problems[:max_rows]
        ]
        lines += _table(["status", "gate", "checkpoint", "value", "baseline", "Δ", "bounds", "message"], rows)
        if len(problems) > max_rows:
            lines.append(f"\n… and {len(problems) - max_rows} more (see report.html).")
        lines.append("")
    return lines


def _short(row: dict[str, Any]) -> str:
    """``mmlu acc -0.150 ✱`` (significant deltas bold)."""
    delta = view.fmt_delta(row.get("delta"))
    delta = f"**{delta}** ✱" if view.marked(row) else delta
    return f"{md_escape(row['task'])} {md_escape(row['metric'])} {delta}"


def _headline_lines(comparison: dict[str, Any]) -> list[str]:
    """One bullet per tuned checkpoint: domain gain, then general change, primaries only."""
    lines = []
    for item in view.headline(comparison):
        parts = []
        if item["domain"]:
            parts.append("domain " + ", ".join(_short(r) for r in item["domain"]))
        if item["general"]:
            worse = [r for r in item["general"] if view.row_tone(r) == "bad"]
            parts.append(
                "general "
                + ", ".join(_short(r) for r in item["general"])
                + (f" ({len(worse)} significant regression{'s' if len(worse) != 1 else ''})" if worse else "")
            )
        lines.append(f"- **{md_escape(item['checkpoint'])}**: " + "; ".join(parts or ["no primary metrics"]))
    return lines + [""] if lines else []


def _warning_lines(comparison: dict[str, Any], max_rows: int) -> list[str]:
    warnings = [str(w) for w in comparison.get("warnings") or []]
    lines = [f"> ⚠️ {md_escape(w)}" for w in warnings[:max_rows]]
    if len(warnings) > max_rows:
        lines.append(f"> … and {len(warnings) - max_rows} more warnings (see report.html).")
    return lines + [""] if lines else []


def _study_cell(cell: dict[str, Any] | None, is_baseline: bool) -> str:
    if cell is None:
        return "–"
    return view.fmt_value(cell.get("value")) if is_baseline else _change(cell)


def _study_lines(comparison: dict[str, Any]) -> list[str]:
    study = view.study_table(comparison)
    if not study["columns"]:
        return []
    header = ["checkpoint", "note"] + [f"{md_escape(c['task'])} {md_escape(c['metric'])}" for c in study["columns"]]
    rows = []
    for row in study["rows"]:
        cells = [_study_cell(cell, row["is_baseline"]) for cell in row["cells"]]
        name = md_escape(row["checkpoint"]) + (" (baseline)" if row["is_baseline"] else "")
        rows.append([name, md_escape(row["note"])] + cells)
    columns = {(c["task"], c["metric"]) for c in study["columns"]}
    shown = [r for r in comparison["metrics"] if (r["task"], r["metric"]) in columns]
    return (
        [f"### Summary vs {md_escape(comparison.get('baseline'))}", ""]
        + _table(header, rows)
        + _target_note(shown)
        + [""]
    )


def _changes_lines(comparison: dict[str, Any], max_rows: int) -> list[str]:
    """Non-primary metric rows, significant and largest changes first, capped at ``max_rows``."""
    shown = {(c["task"], c["metric"]) for c in view.study_table(comparison)["columns"]}
    rows = [
        r
        for r in comparison["metrics"]
        if r["checkpoint"] != comparison.get("baseline")
        and (r["task"], r["metric"]) not in shown
        and not r.get("alias_of")
    ]  # shown as a note on its representative's row
    if not rows:
        return []
    rows.sort(key=lambda r: (not view.marked(r), -abs(r.get("delta") or 0.0), r["task"], r["metric"], r["checkpoint"]))
    table = [
        [
            md_escape(r["task"]),
            _metric_name(r),
            md_escape(r["checkpoint"]),
            view.fmt_value(r.get("baseline_value")),
            _change(r),
            view.fmt_row_p(r),
        ]
        for r in rows[:max_rows]
    ]
    lines = ["<details><summary>Other metrics (exploratory: outside the primary family, never marked ✱)</summary>", ""]
    lines += _table(["task", "metric", "checkpoint", "baseline", "value (Δ)", "p"], table)
    lines += _target_note(rows[:max_rows])
    if len(rows) > max_rows:
        lines.append(f"\n… {len(rows) - max_rows} more rows in report.html.")
    return lines + ["", "</details>", ""]


def _metric_name(row: dict[str, Any]) -> str:
    """The metric's name, with the metrics identical to it by construction (``aliases``) as a note."""
    aliases = row.get("aliases")
    return md_escape(row["metric"]) + (f" (= {md_escape(', '.join(aliases))})" if aliases else "")


def _target_note(rows: list[dict[str, Any]]) -> list[str]:
    """Say what the intervals behind these rows cover when some are corpus metrics' (ci_target in comparison.json)."""
    names = sorted({md_escape(r["metric"]) for r in rows if r.get("ci_target") == "finite_sample_expectation"})
    if not names:
        return []
    return [
        "",
        f"Intervals and tests of {', '.join(names)} (corpus metrics, jackknife) cover the expected score on a "
        "test set of this size, not the population value (`ci_target` in comparison.json).",
    ]


def _power_lines(comparison: dict[str, Any], max_rows: int) -> list[str]:
    lines = [f"- {md_escape(line)}" for line in view.power_lines(comparison)[:max_rows]]
    return (
        ["<details><summary>Power (minimum detectable effects)</summary>", ""] + lines + ["", "</details>", ""]
        if lines
        else []
    )


def _flip_lines(comparison: dict[str, Any], max_rows: int) -> list[str]:
    counts = comparison.get("flip_counts") or []
    if not counts:
        return []
    rows = [
        [
            md_escape(c["task"]),
            md_escape(c["checkpoint"]),
            str(c.get("right_to_wrong", 0)),
            str(c.get("wrong_to_right", 0)),
        ]
        for c in counts[:max_rows]
    ]
    return (
        ["<details><summary>Flipped samples</summary>", ""]
        + _table(["task", "checkpoint", "right → wrong", "wrong → right"], rows)
        + ["", "</details>", ""]
    )


def _sequential_lines(comparison: dict[str, Any]) -> list[str]:
    rows = view.sequential_rows(comparison)
    if not rows:
        return []
    cells = [
        [md_escape(r[k]) for k in ("task", "samples", "gate", "checkpoint", "bounds", "alpha", "decision", "reason")]
        for r in rows
    ]
    return (
        [
            "### Sequential evaluation",
            "",
            "Gated tasks were evaluated in a seeded random order and stopped once every gate's anytime-valid "
            "confidence sequence was decided; the error level alpha holds at any stopping time.",
            "",
        ]
        + _table(
            [
                "task",
                "samples used",
                "gate",
                "checkpoint",
                "bounds at the stop",
                "alpha",
                "decision",
                "stopping reason",
            ],
            cells,
        )
        + [""]
    )


def render_markdown(comparison: dict[str, Any], *, max_rows: int = 25) -> str:
    """Short Markdown summary: verdict (if any), the study table, capped detail tables.

    Parameters
    ----------
    comparison : dict
        A comparison dict (``docs/comparison-schema.md``).
    max_rows : int, default=25
        Most rows shown in each detail table (failed checks, other metrics, flip counts).
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"The 'max_rows' parameter of render_markdown must be an int >= 1. Got {max_rows!r} instead.")
    view.check_comparison(comparison)
    lines = ["## evalkit comparison", ""]
    if comparison.get("verdict"):
        lines += _verdict_lines(comparison["verdict"], max_rows, view.checkpoint_verdicts(comparison))
    lines += _sequential_lines(comparison)
    lines += _headline_lines(comparison) + _warning_lines(comparison, max_rows)
    lines += _study_lines(comparison) + domain.markdown_lines(comparison, max_rows, md_escape)
    lines += trajectory.markdown_lines(comparison, max_rows, md_escape)
    lines += _changes_lines(comparison, max_rows) + _power_lines(comparison, max_rows)
    lines += _flip_lines(comparison, max_rows)
    lines.append(
        f"<sub>✱ significant: the delta's {view.ci_label(comparison)} interval excludes 0; "
        "values are primary metrics with Δ against the baseline. Full report: report.html.</sub>"
    )
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_CHARS:  # a pathological comparison (huge labels): cut at a line, say so
        text = text[: text.rfind("\n", 0, MAX_CHARS - 200)] + "\n\n… (truncated; see report.html)\n"
    return text
