"""The report's routing and hierarchy sections, read from a comparison dict (no HTML or Markdown here).

- routing: per task and checkpoint, "can route X% automatically at P precision" for each
  ``coverage_at_precision/P`` metric row (with its interval, the realised precision, the delta against
  the baseline and its p-value), the calibration rows (ECE, Brier), and the curves behind them
  (``comparison["routing"]``);
- hierarchy: ``comparison["hierarchy_errors"]`` rows per task and level, with the top pairs.
"""

from __future__ import annotations

from typing import Any

from ._view import fmt_p, fmt_value

COVERAGE = "coverage_at_precision/"
ROUTED = "routed_precision/"
CALIBRATION = ("leaf_ece", "leaf_brier")
PAIRS_SHOWN = 3


def percent(value: Any) -> str:
    """``0.8416 -> "84%"``; missing -> "–"."""
    return f"{100 * value:.0f}%" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _precision_label(metric: str) -> str:
    return percent(float(metric[len(COVERAGE) :]))


def routing_statements(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per coverage row: task, checkpoint, precision, value, interval, delta, p, and the sentence."""
    index = {(r["task"], r["metric"], r["checkpoint"]): r for r in comparison["metrics"]}
    out = []
    for row in comparison["metrics"]:
        if not row["metric"].startswith(COVERAGE):
            continue
        target = _precision_label(row["metric"])
        routed = index.get((row["task"], ROUTED + row["metric"][len(COVERAGE) :], row["checkpoint"]), {})
        is_baseline = row["checkpoint"] == comparison.get("baseline")
        sentence = (
            f"can route {percent(row['value'])} [{percent(row.get('ci_low'))}, {percent(row.get('ci_high'))}] "
            f"automatically at {target} precision"
        )
        if not is_baseline and row.get("delta") is not None:
            sentence += (
                f" ({'+' if row['delta'] >= 0 else '−'}{percent(abs(row['delta']))} vs "
                f"{comparison.get('baseline')}, p {fmt_p(row.get('p_value'))})"
            )
        out.append(
            {
                "task": row["task"],
                "checkpoint": row["checkpoint"],
                "target": target,
                "row": row,
                "routed_precision": routed.get("value"),
                "is_baseline": is_baseline,
                "sentence": sentence,
            }
        )
    return out


def card_lines(comparison: dict[str, Any]) -> dict[str, list[str]]:
    """Summary-card lines per checkpoint: ``"voc_cfpb: can route 62% [55%, 69%] automatically at 95% precision"``."""
    lines: dict[str, list[str]] = {}
    for item in routing_statements(comparison):
        lines.setdefault(item["checkpoint"], []).append(f"{item['task']}: {item['sentence']}")
    return lines


def routing_sections(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """Per task with routing data: statements, calibration rows and the curves per checkpoint."""
    from . import charts

    curves: dict[str, list[dict[str, Any]]] = {}
    for entry in comparison.get("routing") or []:
        curves.setdefault(entry["task"], []).append(entry)
    statements = routing_statements(comparison)
    sections = []
    for number, (task, entries) in enumerate(curves.items()):
        targets = sorted({float(s["row"]["metric"][len(COVERAGE) :]) for s in statements if s["task"] == task})
        reliability = {e["checkpoint"]: (e["reliability"]["confidence"], e["reliability"]["accuracy"]) for e in entries}
        risk = {e["checkpoint"]: (e["risk_coverage"]["coverage"], e["risk_coverage"]["precision"]) for e in entries}
        sections.append(
            {
                "task": task,
                "statements": [s for s in statements if s["task"] == task],
                "calibration": [r for r in comparison["metrics"] if r["task"] == task and r["metric"] in CALIBRATION],
                "methods": sorted({m for e in entries for m in e.get("confidence_method") or []}),
                "reliability_svg": charts.reliability_chart(
                    reliability, title=f"{task}: reliability", chart_id=f"rel{number}"
                ),
                "risk_svg": charts.risk_coverage_chart(
                    risk, targets, title=f"{task}: risk–coverage", chart_id=f"rc{number}"
                ),
            }
        )
    return sections


def hierarchy_sections(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """Per task: the level rows of each checkpoint, top pairs cut to :data:`PAIRS_SHOWN`."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for row in comparison.get("hierarchy_errors") or []:
        shown = dict(row)
        shown["sibling_pairs"] = (row.get("sibling_pairs") or [])[:PAIRS_SHOWN]
        shown["cross_branch_pairs"] = (row.get("cross_branch_pairs") or [])[:PAIRS_SHOWN]
        sections.setdefault(row["task"], []).append(shown)
    return [{"task": task, "rows": rows} for task, rows in sections.items()]


def markdown_lines(comparison: dict[str, Any], max_rows: int, escape) -> list[str]:
    """The routing statements and the per-level error table for report.md."""
    lines = []
    statements = routing_statements(comparison)
    if statements:
        lines += ["### Auto-routing", ""]
        lines += [
            f"- **{escape(s['checkpoint'])}** ({escape(s['task'])}): {escape(s['sentence'])}; realised precision "
            f"{fmt_value(s['routed_precision'])}"
            for s in statements[:max_rows]
        ]
        lines.append("")
    rows = [r for r in comparison.get("hierarchy_errors") or [] if r["checkpoint"] != comparison.get("baseline")]
    if rows:
        lines += [
            "<details><summary>Where the hierarchy breaks</summary>",
            "",
            "| task | checkpoint | level | error rate [CI] | baseline | p (Holm) | parent right | top sibling confusion |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows[:max_rows]:
            pair = (r.get("sibling_pairs") or [None])[0]
            confusion = (
                (
                    f"{escape(pair['true'])} → {escape(pair['predicted'])} ({pair['count']}, was "
                    f"{pair['baseline_count'] if pair['baseline_count'] is not None else '–'})"
                )
                if pair
                else "–"
            )
            lines.append(
                f"| {escape(r['task'])} | {escape(r['checkpoint'])} | {r['level']} | {fmt_value(r['error_rate'])} "
                f"[{fmt_value(r['ci_low'])}, {fmt_value(r['ci_high'])}] | {fmt_value(r['baseline_error_rate'])} | "
                f"{fmt_p(r.get('p_value_adjusted'))} | {percent(r.get('parent_right_share'))} | {confusion} |"
            )
        lines += ["", "</details>", ""]
    return lines
