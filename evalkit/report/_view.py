"""Read a comparison dict into plain rows and tables that the HTML and Markdown renderers share.

Nothing here formats HTML or Markdown: the functions return dictionaries and lists of numbers and
strings, so both renderers show the same numbers and the escaping stays in one place per format.
"""

from __future__ import annotations

import math
from typing import Any

from ..comparison_format import SIGNIFICANCE, check_comparison, decision_p, is_significant, row_significant

__all__ = [
    "SIGNIFICANCE",
    "check_comparison",
    "fmt_value",
    "fmt_delta",
    "fmt_p",
    "is_significant",
    "delta_tone",
    "fmt_bounds",
    "marked",
    "row_tone",
    "tuned_labels",
    "primary_rows",
    "headline",
    "study_table",
    "axis_point",
    "breakdown_groups",
    "pivot_breakdown",
    "notes_by_label",
    "ci_label",
    "summary_counts",
    "decision_p",
    "fmt_row_p",
    "power_lines",
    "checkpoint_verdicts",
    "fmt_relative_change",
    "display_path",
    "setting_items",
    "FREQUENCY_ORDER",
]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt_value(value: Any, digits: int = 3) -> str:
    """``0.4512 -> "0.451"``; missing values show as an en dash."""
    return f"{value:.{digits}f}" if _finite(value) else "–"


def fmt_delta(value: Any, digits: int = 3) -> str:
    """Signed difference, ``-0.15 -> "-0.150"``, ``0.02 -> "+0.020"``."""
    return f"{value:+.{digits}f}" if _finite(value) else "–"


def fmt_p(value: Any) -> str:
    """p-value with three decimals, ``"<0.001"`` below that."""
    if not _finite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def fmt_bounds(check: dict[str, Any]) -> str:
    """The one-sided bounds that decided a gate check, in its threshold's units (– for a point comparison).

    >>> fmt_bounds({"operator": "max_drop", "bound_low": 0.004, "bound_high": 0.031})
    '[+0.004, +0.031]'
    >>> fmt_bounds({"operator": "min_relative_gain", "bound_low": 0.02, "bound_high": 0.2}), fmt_bounds({})
    ('[+2.0%, +20.0%]', '–')
    """
    low, high = check.get("bound_low"), check.get("bound_high")
    if not (_finite(low) and _finite(high)):
        return "–"
    if "relative" in str(check.get("operator")):
        return f"[{low:+.1%}, {high:+.1%}]"
    if check.get("operator") in ("min", "max"):
        return f"[{fmt_value(low)}, {fmt_value(high)}]"
    return f"[{fmt_delta(low)}, {fmt_delta(high)}]"


#: Below this baseline magnitude a relative change is not shown: 0.002 -> 0.33 would read "+16,400%",
#: a ratio of noise around zero that means nothing (the absolute Δ and its interval say what changed).
NEAR_ZERO_BASELINE = 0.01


def fmt_relative_change(relative: Any, baseline: Any = None) -> str:
    """The schema's ``relative`` (value / baseline) as a signed percent change: ``0.8 -> "-20.0%"``.

    A lower-is-better rate going 0.30 -> 0 reads "-100.0%" (its tone, not its sign, says whether that is
    good). With a ``baseline`` nearer zero than :data:`NEAR_ZERO_BASELINE` the ratio is suppressed.

    >>> fmt_relative_change(0.8), fmt_relative_change(1.25), fmt_relative_change(None)
    ('-20.0%', '+25.0%', '–')
    >>> fmt_relative_change(163.4, baseline=0.002)
    '– (baseline ≈ 0)'
    """
    if _finite(baseline) and abs(baseline) < NEAR_ZERO_BASELINE:
        return "– (baseline ≈ 0)"
    return f"{(relative - 1) * 100:+.1f}%" if _finite(relative) else "–"


def display_path(spec: Any, cwd: str | None = None) -> str:
    """A checkpoint spec for people: relative to the working directory when under it, ``~`` for home.

    >>> display_path("/home/u/proj/models/a", cwd="/home/u/proj")
    'models/a'
    >>> display_path("base=/srv/models/a", cwd="/home/u")
    'base=/srv/models/a'
    """
    import os

    text = "" if spec is None else str(spec)
    label, sep, path = (
        text.partition("=") if "=" in text and not text.startswith(("http://", "https://")) else ("", "", text)
    )
    if not os.path.isabs(path):
        return text
    cwd = cwd or os.getcwd()
    home = os.path.expanduser("~")
    if path == cwd or path.startswith(cwd.rstrip(os.sep) + os.sep):
        shown = os.path.relpath(path, cwd)
    elif home not in ("", os.sep) and path.startswith(home.rstrip(os.sep) + os.sep):
        shown = "~" + path[len(home.rstrip(os.sep)) :]
    else:
        shown = path
    return f"{label}{sep}{shown}"


def setting_items(settings: Any) -> list[tuple[str, str]]:
    """``(key, text)`` pairs of a settings dict for a table: strings as they are, containers as compact JSON.

    >>> setting_items({"sep": " > ", "rules": {"exact": 3}, "limit": None})
    [('limit', '–'), ('rules', '{"exact": 3}'), ('sep', '" > "')]
    """
    import json

    if not isinstance(settings, dict):
        return []
    items = []
    for key in sorted(settings, key=str):
        value = settings[key]
        if value is None:
            text = "–"
        elif isinstance(value, str):
            text = json.dumps(value, ensure_ascii=False) if value != value.strip() or not value else value
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            text = str(value)
        items.append((str(key), text))
    return items


def fmt_row_p(row: dict[str, Any]) -> str:
    """A row's p-value; a randomization test with no resample as extreme shows its resolution, ``<0.005``."""
    value = row.get("p_value")
    if row.get("p_value_is_bound") and _finite(value):
        return f"<{value:.3f}" if value >= 0.001 else "<0.001"
    return fmt_p(value)


def power_lines(comparison: dict[str, Any]) -> list[str]:
    """Per non-baseline primary metric: "with N paired samples a change of MDE is detected with probability 0.8"."""
    alpha = 1 - (comparison.get("settings") or {}).get("confidence", 0.95)
    lines = []
    for row in comparison.get("metrics") or []:
        if row.get("is_primary") and row["checkpoint"] != comparison.get("baseline") and _finite(row.get("mde")):
            lines.append(
                f"{row['task']} {row['metric']} ({row['checkpoint']}): with {row.get('n_paired')} paired "
                f"samples a change of {row['mde']:.3f} is detected with probability 0.8 (two-sided test at "
                f"α = {alpha:g}; smaller changes less often)"
            )
    return lines


def marked(row: dict[str, Any]) -> bool:
    """Whether a row's change is marked significant: its delta interval excludes 0 (the comparison's
    ``significant``, derived from the interval shown beside it); rows without one use their p-value.

    Exploratory rows (``family: "exploratory"``, outside the primary family of ``evalkit._compare._family``)
    are never marked.

    >>> marked({"significant": False, "p_value": 0.0001}), marked({"p_value": 0.01})
    (False, True)
    >>> marked({"family": "exploratory", "p_value": 0.0001})
    False
    """
    return row_significant(row)


def row_tone(row: dict[str, Any]) -> str:
    """:func:`delta_tone` of a row, by its :func:`marked` marker."""
    hib = row.get("higher_is_better")
    return delta_tone(row.get("delta"), 0.0 if marked(row) else None, True if hib is None else bool(hib))


def delta_tone(delta: Any, p_value: Any, higher_is_better: bool = True) -> str:
    """``"good"`` / ``"bad"`` for a significant improvement / regression, else ``"neutral"``."""
    if not _finite(delta) or delta == 0 or not is_significant(p_value):
        return "neutral"
    improved = delta > 0 if higher_is_better else delta < 0
    return "good" if improved else "bad"


def ci_label(comparison: dict[str, Any]) -> str:
    """``"95%"`` from ``settings.confidence`` (the default when absent)."""
    confidence = (comparison.get("settings") or {}).get("confidence", 0.95)
    return f"{confidence * 100:g}%" if _finite(confidence) else "95%"


def summary_counts(comparison: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``comparison["summary"]`` entries by checkpoint (counts of significant changes and flips)."""
    return {entry["checkpoint"]: entry for entry in comparison.get("summary") or [] if isinstance(entry, dict)}


def tuned_labels(comparison: dict[str, Any]) -> list[str]:
    """Checkpoint labels other than the baseline, in command-line order."""
    return [c["label"] for c in comparison["checkpoints"] if c["label"] != comparison.get("baseline")]


def notes_by_label(comparison: dict[str, Any]) -> dict[str, str]:
    return {c["label"]: c.get("note") or "" for c in comparison["checkpoints"]}


def primary_rows(comparison: dict[str, Any], axis: str | None = None) -> list[dict[str, Any]]:
    """Metric rows of each task's primary metric (optionally of one axis), in task order."""
    order = {t["name"]: i for i, t in enumerate(comparison["tasks"])}
    rows = [r for r in comparison["metrics"] if r.get("is_primary") and (axis is None or r.get("axis") == axis)]
    return sorted(rows, key=lambda r: order.get(r["task"], len(order)))


def headline(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """Per tuned checkpoint: its domain-gain rows and general-loss rows (primary metrics)."""
    result = []
    for label in tuned_labels(comparison):
        mine = [r for r in primary_rows(comparison) if r["checkpoint"] == label]
        result.append(
            {
                "checkpoint": label,
                "domain": [r for r in mine if r.get("axis") == "domain"],
                "general": [r for r in mine if r.get("axis") != "domain"],
            }
        )
    return result


#: Shown beside a domain task's primary metric in the study table, when the task reports them.
DOMAIN_STUDY_METRICS = ("leaf_macro_precision", "leaf_macro_recall", "leaf_macro_f1", "coverage_at_precision/0.95")


def _study_columns(comparison: dict[str, Any]) -> list[tuple[str, str]]:
    """(task, metric) columns, domain tasks first: each task's primary metric; for a domain task also
    leaf-macro precision / recall / F1, and for an F1 primary its precision / recall siblings."""
    available = {(r["task"], r["metric"]) for r in comparison["metrics"]}
    columns: list[tuple[str, str]] = []
    for task in sorted(comparison["tasks"], key=lambda t: t.get("axis") != "domain"):
        primary = task.get("primary_metric")
        if not primary:
            continue
        wanted = [primary]
        if "f1" in primary:
            wanted = [primary.replace("f1", "precision"), primary.replace("f1", "recall"), primary]
        if task.get("axis") == "domain":
            wanted += [m for m in DOMAIN_STUDY_METRICS if m not in wanted]
        columns += [
            (task["name"], m) for m in wanted if (task["name"], m) in available and (task["name"], m) not in columns
        ]
    return columns


def study_table(comparison: dict[str, Any]) -> dict[str, Any]:
    """The study-style table: one row per checkpoint, one column per headline (task, metric)."""
    columns = _study_columns(comparison)
    index = {(r["task"], r["metric"], r["checkpoint"]): r for r in comparison["metrics"]}
    notes = notes_by_label(comparison)
    rows = []
    for checkpoint in comparison["checkpoints"]:
        label = checkpoint["label"]
        rows.append(
            {
                "checkpoint": label,
                "note": notes.get(label, ""),
                "is_baseline": label == comparison.get("baseline"),
                "cells": [index.get((task, metric, label)) for task, metric in columns],
            }
        )
    return {"columns": [{"task": t, "metric": m} for t, m in columns], "rows": rows}


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if _finite(v)]
    return sum(values) / len(values) if values else None


def axis_point(comparison: dict[str, Any], label: str, axis: str) -> dict[str, Any] | None:
    """Mean of the primary metrics of one axis for one checkpoint, with the mean CI bounds.

    With one task on the axis this is that task's value and CI. With several, the error bar is the
    mean of the tasks' CI bounds: wider than the CI of the mean when the tasks' errors are independent,
    so it errs on the side of looking uncertain.
    """
    wants_domain = axis == "domain"
    rows = [
        r for r in primary_rows(comparison) if r["checkpoint"] == label and (r.get("axis") == "domain") == wants_domain
    ]
    value = _mean([r.get("value") for r in rows])
    if value is None:
        return None
    low, high = _mean([r.get("ci_low") for r in rows]), _mean([r.get("ci_high") for r in rows])
    return {"value": value, "low": low, "high": high, "tasks": [f"{r['task']}.{r['metric']}" for r in rows]}


def breakdown_groups(comparison: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Distinct (task, kind, metric) of the breakdown rows, in task order then first appearance."""
    order = {t["name"]: i for i, t in enumerate(comparison["tasks"])}
    seen: dict[tuple[str, str, str], int] = {}
    for row in comparison.get("breakdowns") or []:
        seen.setdefault((row["task"], row["kind"], row["metric"]), len(seen))
    return sorted(seen, key=lambda g: (order.get(g[0], len(order)), seen[g]))


def pivot_breakdown(comparison: dict[str, Any], task: str, kind: str, metric: str) -> list[dict[str, Any]]:
    """One row per breakdown key: ``n``, the baseline value and ``{checkpoint: row}`` for tuned ones.

    The baseline value comes from the baseline's own row when present, else from ``baseline_value``.
    """
    keyed: dict[str, dict[str, Any]] = {}
    baseline = comparison.get("baseline")
    for row in comparison.get("breakdowns") or []:
        if (row["task"], row["kind"], row["metric"]) != (task, kind, metric):
            continue
        entry = keyed.setdefault(
            row["key"], {"key": row["key"], "n": row.get("n"), "baseline_value": None, "by_checkpoint": {}}
        )
        if row["checkpoint"] == baseline:
            entry["baseline_value"] = row.get("value")
        else:
            entry["by_checkpoint"][row["checkpoint"]] = row
            if entry["baseline_value"] is None:
                entry["baseline_value"] = row.get("baseline_value")
    rows = list(keyed.values())
    if kind == "frequency":  # head, torso, tail: the frequency order, not first appearance
        rows.sort(
            key=lambda r: FREQUENCY_ORDER.index(r["key"]) if r["key"] in FREQUENCY_ORDER else len(FREQUENCY_ORDER)
        )
    return rows


#: Head / torso / tail breakdown keys in reading order.
FREQUENCY_ORDER = ("head", "torso", "tail")


def checkpoint_verdicts(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per gated checkpoint, in checkpoint order: its own status and its checks.

    ``reason`` is the first failing (else warning) check's gate and message, or a count of passes.
    """
    from ..comparison_format import checkpoint_statuses

    checks = [c for c in ((comparison.get("verdict") or {}).get("checks") or []) if isinstance(c, dict)]
    statuses = checkpoint_statuses(checks)
    order = [c["label"] for c in comparison["checkpoints"] if c["label"] in statuses]
    result = []
    for label in order + [label for label in statuses if label not in order]:
        mine = [c for c in checks if str(c.get("checkpoint")) == label]
        worst = [c for c in mine if c.get("status") == statuses[label]]
        reason = (
            f"{worst[0].get('gate')}: {worst[0].get('message')}"
            if statuses[label] != "pass"
            else f"{len(mine)} of {len(mine)} check{'s' if len(mine) != 1 else ''} passed"
        )
        result.append(
            {
                "checkpoint": label,
                "status": statuses[label],
                "checks": mine,
                "reason": reason,
                "more": max(0, len(worst) - 1) if statuses[label] != "pass" else 0,
            }
        )
    return result


def verdict_runs(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`checkpoint_verdicts` of training saves grouped per run in step order (others as one group
    with run None, first): with dozens of saves the verdict reads per run, not per save in text order.

    Each group: ``run``, ``verdicts`` (the checkpoint verdicts, each with its ``step``), ``status`` (the worst) and
    ``first_failing_step`` (None when no save fails).
    """
    place = {c["label"]: (c.get("run"), c.get("step")) for c in comparison["checkpoints"]}
    groups: dict[Any, list[dict[str, Any]]] = {}
    for item in checkpoint_verdicts(comparison):
        run, step = place.get(item["checkpoint"], (None, None))
        groups.setdefault(run if step is not None else None, []).append({**item, "step": step})
    ordered = sorted(groups.items(), key=lambda kv: kv[0] is not None)  # stable: runs in first-seen order
    result = []
    for run, items in ordered:
        items.sort(key=lambda i: (i["step"] is None, i["step"] or 0))
        failing = [i["step"] for i in items if i["status"] == "fail" and i["step"] is not None]
        statuses = {i["status"] for i in items}
        worst = next((s for s in ("fail", "warn", "inconclusive", "pass") if s in statuses), items[0]["status"])
        result.append(
            {"run": run, "verdicts": items, "status": worst, "first_failing_step": min(failing) if failing else None}
        )
    return result


def sequential_rows(comparison: dict[str, Any]) -> list[dict[str, str]]:
    """``compare --sequential``: per task (and gate) the samples used, why it stopped, the bounds at the stop, alpha.

    Empty for a comparison evaluated in full. Text only (the renderers escape it).
    """
    tasks = (comparison.get("sequential") or {}).get("tasks") or {}
    rows = []
    for task, outcome in tasks.items():
        total = outcome.get("samples_total") or 0
        used = f"{outcome.get('samples_used', 0):,} of {total:,}" if outcome.get("sequential") else "all (in full)"
        base = {"task": str(task), "samples": used, "reason": str(outcome.get("reason", ""))}
        gates = outcome.get("gates") or []
        if not gates:
            rows.append({**base, "gate": "–", "checkpoint": "–", "bounds": "–", "alpha": "–", "decision": "–"})
        for gate in gates:
            bounds = (
                f"{gate.get('quantity')} in [{fmt_value(gate.get('cs_low'))}, {fmt_value(gate.get('cs_high'))}]"
                if _finite(gate.get("cs_low")) and _finite(gate.get("cs_high"))
                else "–"
            )
            decision = str(gate.get("status")) if outcome.get("stopped_early") else "fixed-sample rule"
            rows.append(
                {
                    **base,
                    "gate": str(gate.get("gate")),
                    "checkpoint": str(gate.get("checkpoint")),
                    "bounds": bounds,
                    "alpha": f"{gate.get('alpha'):g}" if _finite(gate.get("alpha")) else "–",
                    "decision": decision,
                }
            )
    return rows
