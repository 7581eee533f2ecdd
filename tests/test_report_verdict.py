"""A verdict per checkpoint: at the top of report.html / report.md, in junit.xml and on the console."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from evalkit.gate import checkpoint_statuses, evaluate_policy, junit_xml, parse_policy, verdict_markdown, verdict_text
from evalkit.report import render_html, render_markdown

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture() -> dict:
    return json.loads((FIXTURES / "report_fixture.json").read_text())


def _two_candidates():
    """domain_only drops significantly (fail), mix_75_25 holds (pass): the demo's shape."""
    rows = []
    # 320 questions, 304 right for the base; (lost, gained) questions against it, as the 2x2 table the gate bounds
    for label, (lost, gained), p in (("base", (0, 0), None), ("domain_only", (130, 2), 1e-9),
                                     ("mix_75_25", (6, 3), 0.7)):
        value = (304 - lost + gained) / 320
        rows.append({"task": "gen", "metric": "acc", "checkpoint": label, "higher_is_better": True, "value": value,
                     "baseline_value": 0.95, "baseline": "base", "delta": value - 0.95, "p_value": p, "relative": None,
                     "is_primary": True, "axis": "general",
                     "paired_counts": [304 - lost, lost, gained, 16 - gained] if label != "base" else None})
    comparison = {"schema_version": 1, "kind": "evalkit.comparison", "baseline": "base",
                  "checkpoints": [{"label": label} for label in ("base", "domain_only", "mix_75_25")],
                  "tasks": [{"name": "gen", "axis": "general", "primary_metric": "acc"}],
                  "metrics": rows, "breakdowns": [], "verdict": None}
    policy = parse_policy({"gates": [{"metric": "gen.acc", "max_drop": 0.05, "significance": 0.05}]}, source="p.yaml")
    return comparison, evaluate_policy(policy, comparison)


def test_checkpoint_statuses_take_each_checkpoints_worst_check():
    checks = _fixture()["verdict"]["checks"]
    assert checkpoint_statuses(checks) == {"domain_only": "fail", "mix_75_25": "pass"}
    assert checkpoint_statuses([{"checkpoint": "a", "status": "warn"}, {"checkpoint": "a", "status": "pass"}]) == {"a": "warn"}
    assert checkpoint_statuses([]) == {}


def test_html_names_a_verdict_for_each_checkpoint_above_everything_else():
    html = render_html(_fixture())
    verdict = html[html.index('<section id="verdict"'):html.index('<section id="summary"')]
    items = re.findall(r'<li><span class="badge status-(\w+)">(\w+)</span> <b>([^<]+)</b>', verdict)
    assert items == [("fail", "FAIL", "domain_only"), ("pass", "PASS", "mix_75_25")]
    assert "dropped 0.150" in verdict and "2 of 2 checks passed" in verdict and "(and 1 more)" not in verdict
    # the summary cards carry the same badge
    assert re.search(r'<h3>mix_75_25 <span class="badge status-pass">PASS</span></h3>', html)


def test_markdown_starts_with_a_verdict_row_per_checkpoint():
    text = render_markdown(_fixture())
    head = text[:text.index("### Summary")]
    assert "| domain\\_only | ❌ **FAIL** | mmlu.acc max\\_drop 0.02 (significance 0.05): dropped 0.150" in head
    assert "| mix\\_75\\_25 | ✅ **PASS** | 2 of 2 checks passed |" in head


def test_junit_suite_status_is_the_checkpoints_own_result():
    _, verdict = _two_candidates()
    assert verdict.exit_code == 1  # the process still fails when any checkpoint fails
    root = ET.fromstring(junit_xml(verdict))
    suites = {s.get("name"): {p.get("name"): p.get("value") for p in s.iter("property")} for s in root.iter("testsuite")}
    assert suites["evalkit.gate.domain_only"]["status"] == "fail"
    assert suites["evalkit.gate.mix_75_25"]["status"] == "pass"
    assert {s["verdict_status"] for s in suites.values()} == {"fail"}
    assert [s.get("failures") for s in root.iter("testsuite")] == ["1", "0"]


def test_console_and_step_summary_list_each_checkpoint():
    _, verdict = _two_candidates()
    assert verdict_text(verdict).splitlines()[-1].endswith("per checkpoint: domain_only FAIL, mix_75_25 PASS")
    # labels go through the one Markdown escaper (evalkit.report.markdown.md_escape): "_" is escaped
    assert "Per checkpoint: domain\\_only ❌ FAIL · mix\\_75\\_25 ✅ PASS" in verdict_markdown(verdict)


def test_console_and_junit_warn_about_the_same_checks():
    import dataclasses

    _, verdict = _two_candidates()
    weak = dataclasses.replace(verdict.checks[-1], underpowered=True)  # mix_75_25's pass, decided by little
    verdict = dataclasses.replace(verdict, checks=[*verdict.checks[:-1], weak])
    junit_warned = {case.get("classname").rsplit(".", 1)[-1] for case in ET.fromstring(junit_xml(verdict)).iter("testcase")
                    if case.find("system-out").text.startswith("WARNING:")}
    console = verdict_text(verdict)
    console_warned = {line.split()[1] for line in console.splitlines() if line.endswith("[warning]")
                      or line.startswith("WARN")}
    assert junit_warned == console_warned == {"mix_75_25"}
    assert "1 passed (1 underpowered, each a warning)" in console
    warned = int(re.search(r"(\d+) warnings?\b", console).group(1))  # the summary's count, as JUnit's
    assert warned == len(junit_warned) == 1
    plain = verdict_text(_two_candidates()[1])  # no underpowered pass, no warning anywhere
    assert re.search(r"\b0 warnings\b", plain) and b"WARNING" not in junit_xml(_two_candidates()[1])


def test_console_verdict_is_plain_text_and_names_unknown_statuses():
    import dataclasses

    _, verdict = _two_candidates()
    odd = dataclasses.replace(verdict.checks[0], checkpoint="a_b\x1b[2J", message="dropped 0.4 (> 0.05 allowed) & p < 0.05",
                              status="inconclusive")
    verdict = dataclasses.replace(verdict, checks=[odd, *verdict.checks[1:]])
    console = verdict_text(verdict)
    assert "a_b\\x1b[2J" in console and "(> 0.05 allowed) & p < 0.05" in console and "1 inconclusive" in console
    assert "INCONCLUSIVE" in verdict_markdown(verdict)  # a status added later renders, not a KeyError
