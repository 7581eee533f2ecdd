"""Verdict outputs (Markdown, text, JUnit, step summary) and the ``evalkit gate`` command."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any


from ..comparison_format import checkpoint_statuses, load_comparison
from ._evaluate import Check, Verdict, evaluate_policy
from ._verdict import is_warning, summary_line
from .policy import load_policy
# --------------------------------------------------------------------------------------- outputs

_STATUS_MARK = {"pass": "✅", "warn": "⚠️", "inconclusive": "❔", "fail": "❌"}


def _mark(status: str) -> str:
    """The status's emoji; a status this module does not know yet (a newer verdict) gets a neutral one."""
    return _STATUS_MARK.get(status, "❔")


def _blocks(verdict: Verdict, check: Check) -> bool:
    """Whether a check turns the build red: a failure, or an inconclusive check under ``on_inconclusive: fail``."""
    return check.status == "fail" or (check.status == "inconclusive" and verdict.on_inconclusive == "fail")


def _md_number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def verdict_markdown(verdict: Verdict) -> str:
    """The verdict as a Markdown section (GitHub step summary, report.md, console).

    Every untrusted string goes through :func:`evalkit.markdown_text.md_escape`, the one escaper.
    """
    from ..markdown_text import md_escape

    lines = [
        f"### evalkit gate: {_mark(verdict.status)} {verdict.status.upper()}",
        "",
        f"Policy {md_escape(verdict.policy)}, baseline {md_escape(verdict.baseline)}: {summary_line(verdict)}.",
        "",
        "Per checkpoint: "
        + " · ".join(
            f"{md_escape(label)} {_mark(status)} {status.upper()}"
            for label, status in checkpoint_statuses([c.to_dict() for c in verdict.checks]).items()
        ),
        "",
        "| | Checkpoint | Gate | Value | Baseline | Delta | Bounds | Result |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for c in verdict.checks:
        lines.append(
            f"| {_mark(c.status)} | {md_escape(c.checkpoint)} | {md_escape(c.gate)} | "
            f"{_md_number(c.value)} | {_md_number(c.baseline_value)} | {_md_number(c.delta, True)} | "
            f"{_bounds_cell(c)} | {md_escape(c.message)} |"
        )
    return "\n".join(lines) + "\n"


def _bounds_cell(check: Check) -> str:
    """The bounds that decided the check, in the units of its threshold (– for a point comparison)."""
    if check.bound_low is None or check.bound_high is None:
        return "–"
    if "relative" in check.operator:
        return f"[{check.bound_low:+.1%}, {check.bound_high:+.1%}]"
    signed = check.operator not in ("min", "max")
    return f"[{_md_number(check.bound_low, signed)}, {_md_number(check.bound_high, signed)}]"


# XML 1.0 forbids most control characters, and ElementTree does not escape them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: Any) -> str:
    return _XML_INVALID.sub("\N{REPLACEMENT CHARACTER}", str(value))


def _check_details(check: Check) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.6g}"

    return (
        f"{check.checkpoint}: {check.gate}: {check.status.upper()}: {check.message}\n"
        f"value={number(check.value)} baseline={number(check.baseline_value)} delta={number(check.delta)} "
        f"observed={number(check.observed)} threshold={number(check.threshold)} p_value={number(check.p_value)} "
        f"bound_low={number(check.bound_low)} bound_high={number(check.bound_high)} alpha={number(check.alpha)} "
        f"mde={number(check.mde)} underpowered={check.underpowered}"
    )


def junit_xml(verdict: Verdict) -> bytes:
    """The verdict as JUnit XML: one ``<testsuite>`` per checkpoint, one ``<testcase>`` per gate.

    Failed checks carry ``<failure message=... type="evalkit.gate">``; warnings are passing test
    cases whose ``<system-out>`` starts with ``WARNING:`` (they do not fail the build, and
    "skipped" would claim the check did not run). Every case has its numbers in ``<system-out>``.
    """
    import xml.etree.ElementTree as ET

    own = checkpoint_statuses([c.to_dict() for c in verdict.checks])
    root = ET.Element(
        "testsuites",
        name="evalkit gate",
        tests=str(len(verdict.checks)),
        failures=str(sum(_blocks(verdict, c) for c in verdict.checks)),
        errors="0",
        skipped="0",
        time="0",
    )
    for label in dict.fromkeys(c.checkpoint for c in verdict.checks):
        checks = [c for c in verdict.checks if c.checkpoint == label]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_text(f"evalkit.gate.{label}"),
            tests=str(len(checks)),
            failures=str(sum(_blocks(verdict, c) for c in checks)),
            errors="0",
            skipped="0",
            time="0",
        )
        properties = ET.SubElement(suite, "properties")
        # "status" is this checkpoint's own result; the run's overall one is "verdict_status".
        for name, value in (
            ("policy", verdict.policy),
            ("baseline", verdict.baseline),
            ("status", own[label]),
            ("verdict_status", verdict.status),
        ):
            ET.SubElement(properties, "property", name=name, value=_xml_text(value))
        for check in checks:
            _junit_case(suite, check, _blocks(verdict, check))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _junit_case(suite, check: Check, blocks: bool) -> None:
    import xml.etree.ElementTree as ET

    case = ET.SubElement(
        suite, "testcase", classname=_xml_text(f"evalkit.gate.{check.checkpoint}"), name=_xml_text(check.gate), time="0"
    )
    details = _xml_text(_check_details(check))
    if blocks:  # an inconclusive check that blocks is a failure CI must show, with its own type
        kind = "evalkit.gate" if check.status == "fail" else "evalkit.gate.inconclusive"
        failure = ET.SubElement(case, "failure", message=_xml_text(f"{check.message}"), type=kind)
        failure.text = details
    if blocks:
        prefix = ""
    elif check.status == "inconclusive":  # under on_inconclusive: warn, it passes the build and says so
        prefix = "INCONCLUSIVE: "
    else:
        prefix = "WARNING: " if is_warning(check) else ""  # an underpowered pass (no level) decides little
    ET.SubElement(case, "system-out").text = prefix + details


def write_junit(verdict: Verdict, path: str | Path) -> Path:
    """Write :func:`junit_xml` atomically to ``path``; return the path."""
    from .._io import OutputFolder

    folder, name = OutputFolder.of_file(path)
    return folder.write_bytes(name, data=junit_xml(verdict))


#: The files :func:`write_gate_outputs` writes (checked before any work by the pipeline).
GATE_OUTPUTS = ("junit.xml", "verdict.json")


def write_gate_outputs(verdict: Verdict, out_dir) -> list[Path]:
    """Write ``junit.xml`` and ``verdict.json`` into ``out_dir``; append to ``$GITHUB_STEP_SUMMARY``.

    ``out_dir`` is a path (its manifest is rewritten) or an open :class:`~evalkit._io.OutputFolder`
    of a larger batch of outputs. Returns the paths written (the step summary is not included: it
    belongs to the CI runner).
    """
    from .._io import OutputFolder, dump_json

    if not isinstance(out_dir, OutputFolder):
        with OutputFolder(out_dir) as folder:
            return write_gate_outputs(verdict, folder)
    written = [
        out_dir.write_bytes("junit.xml", data=junit_xml(verdict)),
        out_dir.write_text("verdict.json", text=dump_json(verdict.to_dict())),
    ]
    _append_step_summary(verdict)
    return written


def _append_step_summary(verdict: Verdict) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return
    try:
        with open(summary, "a", encoding="utf-8") as handle:  # appended: other steps write there too
            handle.write("\n" + verdict_markdown(verdict))
    except OSError as exc:  # a summary we cannot write must not change the gate's outcome
        from ..errors import warn

        warn(f"cannot append to GITHUB_STEP_SUMMARY ({summary}): {exc}")


# ------------------------------------------------------------------------------------ the command


def gate_files(
    comparison_path: str | Path, policy_path: str | Path, out_dir: str | Path | None = None
) -> tuple[Verdict, list[Path]]:
    """Apply the policy file to the comparison file and write the gate's outputs: the verdict and the files.

    What ``evalkit gate`` runs (the command prints the verdict and the paths and exits with
    ``verdict.exit_code``). Outputs go to ``out_dir`` (default: the comparison's folder). Raises
    :class:`UsageError` on bad input, which the CLI turns into exit code 2.
    """
    from .._io import OutputFolder

    policy = load_policy(policy_path)
    comparison = load_comparison(comparison_path)
    folder = OutputFolder(Path(out_dir) if out_dir is not None else Path(comparison_path).parent)
    folder.check(*GATE_OUTPUTS)
    verdict = evaluate_policy(policy, comparison)
    return verdict, write_gate_outputs(verdict, folder.root)


def demo_policy_text(
    domain_task: str = "demo_voc",
    general_task: str = "demo_general",
    *,
    domain_metric: str = "leaf_macro_f1",
    general_metric: str = "acc",
    baseline: str = "base",
    min_domain_gain: float = 0.2,
    max_general_drop: float = 0.1,
    significance: float = 0.05,
) -> str:
    """Policy YAML of the demo's kind: the tuned checkpoints must learn the domain without forgetting.

    The defaults give the gates of ``evalkit/tasks/policies/demo_policy.yaml``, the policy ``evalkit demo``
    ships (a test keeps them equal); other task names and thresholds give the same policy for your own
    domain and general tasks.

    Examples
    --------
    >>> from evalkit.gate import parse_policy
    >>> gates = parse_policy(__import__("yaml").safe_load(demo_policy_text())).gates
    >>> [(g.metric, g.operator, g.threshold, g.significance) for g in gates]
    [('demo_voc.leaf_macro_f1', 'min_gain', 0.2, 0.05), ('demo_general.acc', 'max_drop', 0.1, 0.05)]
    """
    return (
        f"# Demo release policy: learn the domain, keep general knowledge.\n"
        f"baseline: {baseline}\n"
        f"significance: {significance:g}       # each gate decides on one-sided {1 - significance:.0%} bounds\n"
        f"gates:\n"
        f"  - metric: {domain_task}.{domain_metric}\n"
        f"    min_gain: {min_domain_gain:g}        # the fine-tune must actually teach the domain\n"
        f"  - metric: {general_task}.{general_metric}\n"
        f"    max_drop: {max_general_drop:g}       # and may forget at most this much\n"
    )
