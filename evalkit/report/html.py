"""``report.html``: one self-contained page (inline CSS, JS and SVG; no network) from a comparison dict.

Everything from the comparison is untrusted (sample inputs, model outputs, notes, labels): the jinja2
environment autoescapes every expression, the flip explorer's data travels as JSON inside a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped as ``\\u003c`` etc., and
the page's script writes it with ``textContent`` only. Only the chart SVG (made by matplotlib, which
escapes text) is inserted as markup.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import _domain as domain
from . import _view as view
from . import charts
from . import trajectory

__all__ = ["render_html", "render_fragment", "scope_css", "flips_payload", "json_for_script"]

#: Characters kept per flip field in the explorer: enough to read, small enough for a compact page.
FLIP_TEXT_LIMIT = {"input": 500, "target": 200, "baseline_prediction": 200, "prediction": 200}
#: Flips embedded per (task, checkpoint, direction); comparison.json keeps them all. Keeps the page
#: well under 2 MB even with long MMLU questions.
FLIPS_PER_GROUP = 60
#: Breakdown kinds drawn as sorted delta bars (one chart per tuned checkpoint).
DELTA_BAR_KINDS = ("subject", "instruction")
_KIND_TITLES = {
    "subject": "Per-subject",
    "category": "Per-category",
    "instruction": "Per-instruction",
    "level": "Per-level",
    "class": "Per-class",
    "frequency": "Head / torso / tail",
}


def _environment():
    import jinja2

    # Lenient Undefined: optional schema fields may be absent; filters render those as "–".
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        value=view.fmt_value,
        delta=view.fmt_delta,
        pvalue=view.fmt_p,
        row_p=view.fmt_row_p,
        relchange=view.fmt_relative_change,
        display_path=view.display_path,
        setting_items=view.setting_items,
    )
    env.globals.update(
        tone=view.delta_tone,
        significant=view.is_significant,
        bounds=view.fmt_bounds,
        marked=view.marked,
        row_tone=view.row_tone,
        kind_title=_KIND_TITLES.get,
        alpha=view.SIGNIFICANCE,
        decision_p=view.decision_p,
    )
    return env


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>`` or ``<!--`` can form.

    >>> json_for_script({"a": "</script>"})
    '{"a": "\\\\u003c/script\\\\u003e"}'
    """
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _clip(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flips_payload(comparison: dict[str, Any]) -> list[dict[str, str]]:
    """Flip rows for the explorer: the first :data:`FLIPS_PER_GROUP` per task, checkpoint and direction,
    long texts clipped (all of them, in full, stay in comparison.json)."""
    rows, seen = [], {}
    for flip in comparison.get("flips") or []:
        group = (flip.get("task"), flip.get("checkpoint"), flip.get("direction"))
        seen[group] = seen.get(group, 0) + 1
        if seen[group] > FLIPS_PER_GROUP:
            continue
        row = {key: _clip(flip.get(key), limit) for key, limit in FLIP_TEXT_LIMIT.items()}
        row.update({key: str(flip.get(key) or "") for key in ("task", "checkpoint", "direction", "sample_id", "group")})
        rows.append(row)
    return rows


def _learning_forgetting(comparison: dict[str, Any]) -> dict[str, Any] | None:
    points, x_tasks, y_tasks = [], set(), set()
    for checkpoint in comparison["checkpoints"]:
        label = checkpoint["label"]
        x = view.axis_point(comparison, label, "domain")
        y = view.axis_point(comparison, label, "general")
        if x is None or y is None:
            continue
        x_tasks.update(x["tasks"]), y_tasks.update(y["tasks"])
        points.append(
            {
                "label": label,
                "x": x["value"],
                "x_low": x["low"],
                "x_high": x["high"],
                "y": y["value"],
                "y_low": y["low"],
                "y_high": y["high"],
                "is_baseline": label == comparison.get("baseline"),
            }
        )
    if not points:
        return None
    svg = charts.learning_forgetting_chart(
        points, x_label=_axis_label("Domain", x_tasks), y_label=_axis_label("General", y_tasks), chart_id="lf"
    )
    return {"svg": _markup(svg), "points": points, "x_tasks": sorted(x_tasks), "y_tasks": sorted(y_tasks)}


def _axis_label(axis: str, tasks: set[str]) -> str:
    """``"Domain: voc.leaf_macro_f1"`` for one task, ``"General: mean of 3 tasks"`` for several."""
    return f"{axis}: {next(iter(tasks))}" if len(tasks) == 1 else f"{axis}: mean of {len(tasks)} tasks' primary metrics"


def _markup(svg: str):
    from markupsafe import Markup

    return Markup(svg)  # matplotlib output: labels inside are already XML-escaped


def _breakdown_block(comparison: dict[str, Any], task: str, kind: str, metric: str, index: int) -> dict[str, Any]:
    rows = view.pivot_breakdown(comparison, task, kind, metric)
    tuned = [label for label in view.tuned_labels(comparison) if any(label in r["by_checkpoint"] for r in rows)]
    block = {"task": task, "kind": kind, "metric": metric, "rows": rows, "tuned": tuned, "charts": []}
    if kind in DELTA_BAR_KINDS:
        for number, label in enumerate(tuned):
            have = [r for r in rows if r["by_checkpoint"].get(label, {}).get("delta") is not None]
            svg = charts.delta_bars_chart(
                [r["key"] for r in have],
                [r["by_checkpoint"][label]["delta"] for r in have],
                [view.marked(r["by_checkpoint"][label]) for r in have],
                title=f"{label}: {metric} Δ vs {comparison.get('baseline')}",
                chart_id=f"b{index}-{number}",
            )
            block["charts"].append(_markup(svg))
    elif kind == "level":
        series = {comparison.get("baseline"): [r["baseline_value"] for r in rows]}
        series.update({label: [r["by_checkpoint"].get(label, {}).get("value") for r in rows] for label in tuned})
        block["charts"].append(
            _markup(
                charts.grouped_bars_chart(
                    [r["key"] for r in rows],
                    series,
                    title=f"{task}: {metric} per level",
                    y_label=metric,
                    chart_id=f"b{index}",
                )
            )
        )
    return block


def _breakdown_sections(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    sections: dict[str, list[dict[str, Any]]] = {}
    for index, (task, kind, metric) in enumerate(_chosen_groups(comparison)):
        sections.setdefault(task, []).append(_breakdown_block(comparison, task, kind, metric, index))
    return [{"task": task, "blocks": blocks} for task, blocks in sections.items()]


def _chosen_groups(comparison: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Per-class breakdowns carry several metrics; the report shows F1 (or the first) to stay compact."""
    groups = view.breakdown_groups(comparison)
    chosen = []
    for task, kind, metric in groups:
        siblings = [m for t, k, m in groups if (t, k) == (task, kind)]
        preferred = "f1" if "f1" in siblings else siblings[0]
        if metric == preferred or kind != "class":
            chosen.append((task, kind, metric))
    return chosen


def _metric_rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    task_order = {t["name"]: i for i, t in enumerate(comparison["tasks"])}
    checkpoint_order = {c["label"]: i for i, c in enumerate(comparison["checkpoints"])}
    rows = [r for r in comparison["metrics"] if r["checkpoint"] != comparison.get("baseline") and not r.get("alias_of")]
    return sorted(
        rows,
        key=lambda r: (
            task_order.get(r["task"], 99),
            not r.get("is_primary"),
            r["metric"],
            checkpoint_order.get(r["checkpoint"], 99),
        ),
    )


def _verdict(comparison: dict[str, Any]) -> dict[str, Any] | None:
    verdict = comparison.get("verdict")
    if not verdict:
        return None
    checks = verdict.get("checks") or []
    return {
        "status": str(verdict.get("status", "unknown")),
        "policy": verdict.get("policy"),
        "problems": [c for c in checks if c.get("status") != "pass"],
        "passed": [c for c in checks if c.get("status") == "pass"],
        "underpowered": [c for c in checks if c.get("underpowered")],
    }


def summary_context(comparison: dict[str, Any]) -> dict[str, Any]:
    """What the verdict, summary and study-table sections show (the report and the notebook view)."""
    return {
        "c": comparison,
        "baseline": comparison.get("baseline"),
        "tuned": view.tuned_labels(comparison),
        "notes": view.notes_by_label(comparison),
        "verdict": _verdict(comparison),
        "headline": view.headline(comparison),
        "study": view.study_table(comparison),
        "ci": view.ci_label(comparison),
        "counts": view.summary_counts(comparison),
        "checkpoint_verdicts": view.checkpoint_verdicts(comparison),
        "verdict_by_checkpoint": {v["checkpoint"]: v["status"] for v in view.checkpoint_verdicts(comparison)},
        "verdict_runs": view.verdict_runs(comparison),
        "routing_cards": domain.card_lines(comparison),
    }


def build_context(comparison: dict[str, Any]) -> dict[str, Any]:
    """Everything the template shows, computed once (also handy for tests)."""
    flips = flips_payload(comparison)
    return {
        **summary_context(comparison),
        "learning_forgetting": _learning_forgetting(comparison),
        "metric_rows": _metric_rows(comparison),
        "trajectory": trajectory.report_context(comparison),
        "breakdown_sections": _breakdown_sections(comparison),
        "format_vs_knowledge": comparison.get("format_vs_knowledge") or [],
        "flip_counts": comparison.get("flip_counts") or [],
        "flips_json": _script_json(flips),
        "flip_tasks": sorted({f["task"] for f in flips}),
        "flip_checkpoints": sorted({f["checkpoint"] for f in flips}),
        "n_flips": len(flips),
        "n_flips_total": len(comparison.get("flips") or []),
        "flips_per_group": FLIPS_PER_GROUP,
        "max_flips": (comparison.get("settings") or {}).get("max_flips"),
        "warnings": [str(w) for w in comparison.get("warnings") or []],
        "power_lines": view.power_lines(comparison),
        "settings": comparison.get("settings") or {},
        "sequential_rows": view.sequential_rows(comparison),
        **_domain_context(comparison),
    }


def _domain_context(comparison: dict[str, Any]) -> dict[str, Any]:
    """The routing and hierarchy sections (templates/domain.html.jinja)."""
    routing = domain.routing_sections(comparison)
    for section in routing:
        section["reliability_svg"], section["risk_svg"] = (
            _markup(section["reliability_svg"]),
            _markup(section["risk_svg"]),
        )
    return {"routing_sections": routing, "hierarchy_sections": domain.hierarchy_sections(comparison)}


def _script_json(data: Any):
    from markupsafe import Markup

    return Markup(json_for_script(data))  # safe: no '<' can survive json_for_script


def render_html(comparison: dict[str, Any]) -> str:
    """Render ``report.html`` for a comparison dict (see ``docs/comparison-schema.md``).

    Deterministic: the same comparison gives the same bytes.
    """
    view.check_comparison(comparison)
    return _environment().get_template("report.html.jinja").render(**build_context(comparison))


#: The report's sections a fragment can show, in display order.
FRAGMENT_PARTS = ("verdict", "summary", "study")
_SCOPE = ".evalkit-nb"
_PAGE_SELECTORS = (":root", "html", "body")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_RULE_HEAD = re.compile(r"\s*([^{}]+?)\s*\{")


def render_fragment(comparison: dict[str, Any], parts: tuple[str, ...] = FRAGMENT_PARTS, title: str = "") -> str:
    """Some of the report's sections as one ``<div>`` for a page that is not ours (a Jupyter output).

    The report's own templates and style sheet, the style scoped to the ``div`` (:func:`scope_css`),
    so it neither restyles the notebook nor takes the notebook theme's colours: it sets its own text
    and background colours and reads the same in light and dark themes. Deterministic like
    :func:`render_html`.
    """
    view.check_comparison(comparison)
    unknown = [part for part in parts if part not in FRAGMENT_PARTS]
    if unknown:
        raise ValueError(f"parts must be among {', '.join(FRAGMENT_PARTS)}; got {unknown[0]!r}.")
    env = _environment()
    css = scope_css(env.get_template("style.css.jinja").render(), _SCOPE)
    from markupsafe import Markup

    return env.get_template("fragment.html.jinja").render(
        **summary_context(comparison), alpha=view.SIGNIFICANCE, parts=parts, title=title, css=Markup(css)
    )


def scope_css(css: str, scope: str) -> str:
    r"""Every rule of ``css`` limited to elements inside ``scope``; page-wide rules (``:root``, ``body``)
    apply to the ``scope`` element itself.

    >>> scope_css(":root { --a:1; } body, td { color:red; } @media (max-width:9px) { th { x:y; } }", ".s")
    '.s { --a:1; }\n.s, .s td { color:red; }\n@media (max-width:9px) {\n.s th { x:y; }\n}'
    """
    css, rules, position = _COMMENT.sub("", css), [], 0
    while (head := _RULE_HEAD.match(css, position)) is not None:
        end = _block_end(css, head.end())
        body = css[head.end() : end].strip()
        if head.group(1).startswith("@"):
            rules.append(f"{head.group(1)} {{\n{scope_css(body, scope)}\n}}")
        else:
            rules.append(f"{_scope_selectors(head.group(1), scope)} {{ {body} }}")
        position = end + 1
    return "\n".join(rules)


def _block_end(css: str, start: int) -> int:
    """Index of the ``}`` closing the block whose body starts at ``start``."""
    depth = 1
    for index in range(start, len(css)):
        depth += {"{": 1, "}": -1}.get(css[index], 0)
        if depth == 0:
            return index
    raise ValueError("unbalanced braces in the style sheet")


def _scope_selectors(selectors: str, scope: str) -> str:
    scoped = []
    for selector in (part.strip() for part in selectors.split(",")):
        first, _, rest = selector.partition(" ")
        scoped.append(scope + (" " + rest if rest else "") if first in _PAGE_SELECTORS else f"{scope} {selector}")
    return ", ".join(scoped)
