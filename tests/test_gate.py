"""Release gates: policy validation, every operator, significance, direction, outputs, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from evalkit.errors import UsageError
from evalkit.gate import (
    demo_policy_text,
    evaluate_policy,
    gate_files,
    load_policy,
    parse_policy,
    verdict_markdown,
    write_gate_outputs,
    write_junit,
    junit_xml,
    verdict_text,
)


def policy_gates(policy):
    """The gates of a parsed policy back as mappings (to re-parse with other policy-level keys)."""
    return [{"metric": g.metric, g.operator: g.threshold, **({"significance": g.significance} if g.significance else {})}
            for g in policy.gates]

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- fixtures


def metric_row(task, metric, checkpoint, value, baseline_value, p_value=None, higher_is_better=True):
    return {"task": task, "metric": metric, "checkpoint": checkpoint, "higher_is_better": higher_is_better,
            "value": value, "baseline_value": baseline_value, "baseline": "base",
            "delta": None if value is None or baseline_value is None else value - baseline_value,
            "p_value": p_value, "relative": None}


def paired_row(task, metric, checkpoint, n, base_right, lost, gained, p_value=None):
    """A 0/1 metric row with its 2x2 table: ``lost`` questions the baseline got right and the checkpoint
    wrong, ``gained`` the reverse (what the comparison writes for McNemar rows)."""
    value = (base_right - lost + gained) / n
    row = metric_row(task, metric, checkpoint, value, base_right / n, p_value=p_value)
    row["paired_counts"] = [base_right - lost, lost, gained, n - base_right - gained]
    return row


def breakdown_row(task, kind, key, metric, checkpoint, value, baseline_value, p_value=None):
    return {"task": task, "kind": kind, "key": key, "metric": metric, "checkpoint": checkpoint, "value": value,
            "baseline_value": baseline_value, "delta": value - baseline_value, "p_value": p_value, "n": 50}


def make_comparison(metrics, breakdowns=(), labels=("base", "tuned")):
    """A minimal comparison.json dict; base rows are added for every (task, metric) given."""
    rows = list(metrics)
    for row in list(rows):
        if row["checkpoint"] != "base" and not any(r["checkpoint"] == "base" and r["task"] == row["task"]
                                                   and r["metric"] == row["metric"] for r in rows):
            rows.append({**row, "checkpoint": "base", "value": row["baseline_value"], "delta": 0.0, "p_value": None})
    return {"schema_version": 1, "kind": "evalkit.comparison", "baseline": "base",
            "checkpoints": [{"label": label} for label in labels],
            "metrics": rows, "breakdowns": list(breakdowns), "verdict": None}


def one_gate(metric, **gate):
    return parse_policy({"baseline": "base", "gates": [{"metric": metric, **gate}]}, source="policy.yaml")


def single_check(comparison, metric, **gate):
    verdict = evaluate_policy(one_gate(metric, **gate), comparison)
    assert len(verdict.checks) == 1
    return verdict.checks[0]


@pytest.fixture()
def comparison():
    return make_comparison(
        [metric_row("voc", "leaf_macro_f1", "tuned", 0.62, 0.50, p_value=0.001),
         metric_row("voc", "invalid_rate", "tuned", 0.05, 0.02, p_value=0.01, higher_is_better=False),
         paired_row("mmlu", "acc", "tuned", 1000, 600, 200, 50, p_value=0.004),
         paired_row("ifeval", "prompt_level_strict_acc", "tuned", 100, 40, 10, 5, p_value=0.2)],
        [breakdown_row("mmlu", "subject", "anatomy", "acc", "tuned", 0.40, 0.50, p_value=0.03),
         breakdown_row("mmlu", "subject", "anatomy", "acc", "base", 0.50, 0.50),
         breakdown_row("mmlu", "category", "stem", "acc", "tuned", 0.52, 0.50, p_value=0.6),
         breakdown_row("voc", "frequency", "tail", "invalid_rate", "tuned", 0.10, 0.04, p_value=0.02)],
    )


# ---------------------------------------------------------------------------------- operators


@pytest.mark.parametrize("operator, threshold, value, baseline_value, expected", [
    ("min_gain", 0.05, 0.62, 0.50, "pass"),
    ("min_gain", 0.05, 0.53, 0.50, "fail"),
    ("min_gain", 0.05, 0.60, 0.55, "pass"),            # inclusive despite 0.60 - 0.55 = 0.04999...
    ("max_drop", 0.02, 0.59, 0.60, "pass"),
    ("max_drop", 0.02, 0.55, 0.60, "fail"),
    ("max_relative_drop", 0.05, 0.58, 0.60, "pass"),   # lost 3.3 % of the baseline
    ("max_relative_drop", 0.05, 0.54, 0.60, "fail"),   # lost 10 %
    ("min_relative_gain", 0.10, 0.70, 0.60, "pass"),   # +16.7 %
    ("min_relative_gain", 0.10, 0.63, 0.60, "fail"),   # +5 %
    ("min", 0.30, 0.35, 0.60, "pass"),
    ("min", 0.30, 0.25, 0.20, "fail"),
    ("max", 0.10, 0.05, 0.00, "pass"),
    ("max", 0.10, 0.15, 0.00, "fail"),
])
def test_every_operator_passes_and_fails(operator, threshold, value, baseline_value, expected):
    comparison = make_comparison([metric_row("t", "m", "tuned", value, baseline_value, p_value=0.01)])
    check = single_check(comparison, "t.m", **{operator: threshold})
    assert check.status == expected, check.message
    assert check.operator == operator and check.threshold == threshold
    assert check.value == value and check.baseline_value == baseline_value


def test_failure_message_carries_the_numbers(comparison):
    check = single_check(comparison, "mmlu.acc", max_drop=0.02)
    assert check.status == "fail"
    assert check.message.startswith("dropped 0.150 (> 0.020 allowed); point estimate, no error control")
    assert check.bound_low is None and check.alpha is None
    assert check.delta == pytest.approx(-0.15) and check.observed == pytest.approx(0.15)
    assert check.gate == "mmlu.acc max_drop 0.02"


def test_relative_messages_are_percentages():
    comparison = make_comparison([metric_row("t", "m", "tuned", 0.54, 0.60)])
    check = single_check(comparison, "t.m", max_relative_drop=0.05)
    assert check.message.startswith("dropped 10.0% (> 5.0% allowed)")
    assert check.observed == pytest.approx(0.10)


# ------------------------------------------------------------------------------- significance


@pytest.mark.parametrize("n, lost, gained, expected, fragment", [
    (1000, 15, 5, "pass", "drop in [+0.002, +0.018] (one-sided 95% bounds): <= 0.020 allowed"),
    (1000, 150, 50, "fail", "drop in [+0.077, +0.123] (one-sided 95% bounds): > 0.020 allowed"),
    (200, 10, 5, "inconclusive", "straddles the allowed drop 0.020, cannot tell"),
])
def test_drop_is_decided_by_its_one_sided_bounds(n, lost, gained, expected, fragment):
    comparison = make_comparison([paired_row("mmlu", "acc", "tuned", n, n // 2, lost, gained)])
    check = single_check(comparison, "mmlu.acc", max_drop=0.02, significance=0.05)
    assert check.status == expected, check.message
    assert fragment in check.message
    assert check.gate == "mmlu.acc max_drop 0.02 (significance 0.05)" and check.alpha == 0.05
    assert check.bound_low <= check.observed <= check.bound_high


def test_bounds_match_statsmodels_and_scipy_where_they_compute_the_same():
    """t bounds equal statsmodels' one-sided confidence limits; Wilson bounds equal statsmodels' Wilson at 1 - 2 alpha."""
    from statsmodels.stats.proportion import proportion_confint
    from statsmodels.stats.weightstats import DescrStatsW
    import numpy as np

    from evalkit.metrics.stats import one_sided_bounds

    diffs = np.random.default_rng(3).normal(0.01, 0.2, 400)
    stats = DescrStatsW(diffs)
    low, _ = stats.tconfint_mean(alpha=0.1)  # two-sided 90 % = one-sided 95 % ends
    ours = one_sided_bounds(diffs.mean(), stats.std_mean, alpha=0.05, df=399)
    assert ours[0] == pytest.approx(low, rel=1e-9)
    row = metric_row("t", "score", "tuned", float(diffs.mean()) + 0.5, 0.5)
    row.update(delta=float(diffs.mean()), delta_stderr=float(stats.std_mean), delta_df=399)
    check = single_check(make_comparison([row]), "t.score", max_drop=0.05, significance=0.05)
    assert -check.bound_high == pytest.approx(low, rel=1e-9) and check.status == "pass"
    floor = metric_row("t", "acc", "tuned", 0.3, 0.3)
    floor["value_counts"] = [90, 300]
    wilson = proportion_confint(90, 300, alpha=0.1, method="wilson")
    check = single_check(make_comparison([floor]), "t.acc", min=0.25, significance=0.05)
    assert check.bound_low <= wilson[0] and check.bound_low == pytest.approx(wilson[0], abs=2 / 300)  # + continuity
    assert check.status == "pass"


def test_a_gate_without_an_interval_is_inconclusive_not_passed():
    comparison = make_comparison([metric_row("mmlu", "acc", "tuned", 0.59, 0.60, p_value=0.001)])
    check = single_check(comparison, "mmlu.acc", max_drop=0.02, significance=0.05)
    assert check.status == "inconclusive" and "no interval" in check.message


def test_relative_drop_bounds_use_both_standard_errors():
    def row(stderr):
        data = metric_row("mmlu", "acc", "tuned", 0.50, 0.60)
        data.update(value_stderr=stderr, delta_stderr=stderr)
        return data

    def base(stderr):
        return {**metric_row("mmlu", "acc", "base", 0.60, 0.60), "delta": 0.0, "value_stderr": stderr}

    wide = make_comparison([row(0.05), base(0.05)])
    assert single_check(wide, "mmlu.acc", max_relative_drop=0.10, significance=0.05).status == "inconclusive"
    narrow = make_comparison([row(0.002), base(0.002)])
    check = single_check(narrow, "mmlu.acc", max_relative_drop=0.10, significance=0.05)  # lost 16.7 %
    assert check.status == "fail" and check.bound_low > 0.10 and check.bound_low < check.observed < check.bound_high
    assert single_check(narrow, "mmlu.acc", max_relative_drop=0.20, significance=0.05).status == "pass"


def test_policy_level_significance_and_on_inconclusive(comparison):
    policy = parse_policy({"significance": 0.05, "on_inconclusive": "warn",
                           "gates": [{"metric": "ifeval.prompt_level_strict_acc", "max_drop": 0.03}]})
    verdict = evaluate_policy(policy, comparison)
    assert verdict.checks[0].significance == 0.05 and verdict.status == "inconclusive"
    assert verdict.exit_code == 0 and verdict.passed
    strict = parse_policy({"significance": 0.05, "gates": [{"metric": "ifeval.prompt_level_strict_acc",
                                                             "max_drop": 0.03}]})
    verdict = evaluate_policy(strict, comparison)
    assert verdict.on_inconclusive == "fail" and verdict.exit_code == 1 and not verdict.passed
    assert verdict.to_dict()["on_inconclusive"] == "fail"


def test_severity_warn_turns_a_failure_into_a_warning(comparison):
    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_drop": 0.02, "severity": "warn"},
                                     {"metric": "voc.leaf_macro_f1", "min_gain": 0.05}]})
    verdict = evaluate_policy(policy, comparison)
    assert [c.status for c in verdict.checks] == ["warn", "pass"]
    assert verdict.checks[0].severity == "warn" and "[fail; severity: warn]" in verdict.checks[0].message
    assert verdict.status == "warn" and verdict.exit_code == 0


def test_verdict_fails_when_any_check_fails(comparison):
    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_drop": 0.02, "severity": "warn"},
                                     {"metric": "ifeval.prompt_level_strict_acc", "min": 0.5},
                                     {"metric": "voc.leaf_macro_f1", "min_gain": 0.05}]})
    verdict = evaluate_policy(policy, comparison)
    assert verdict.status == "fail" and verdict.exit_code == 1
    assert verdict.counts() == {"pass": 1, "warn": 1, "inconclusive": 0, "fail": 1}


# --------------------------------------------------------------------------------- direction


def test_lower_is_better_metric_uses_the_rows_direction(comparison):
    worse = single_check(comparison, "voc.invalid_rate", max_drop=0.02)   # 0.02 -> 0.05: worse by 0.03
    assert worse.status == "fail" and worse.higher_is_better is False
    assert worse.message.startswith("rose 0.030 (lower is better) (> 0.020 allowed)")
    assert single_check(comparison, "voc.invalid_rate", max_drop=0.05).status == "pass"
    assert single_check(comparison, "voc.invalid_rate", min_gain=0.0).status == "fail"
    assert single_check(comparison, "voc.invalid_rate", max=0.06).status == "pass"   # bounds are plain


def test_lower_is_better_improvement_is_a_gain():
    comparison = make_comparison([metric_row("voc", "invalid_rate", "tuned", 0.01, 0.05, higher_is_better=False)])
    check = single_check(comparison, "voc.invalid_rate", min_gain=0.03)
    assert check.status == "pass" and check.observed == pytest.approx(0.04)
    assert single_check(comparison, "voc.invalid_rate", min_relative_gain=0.5).status == "pass"   # -80 %


def test_relative_change_from_a_zero_baseline_is_infinite():
    comparison = make_comparison([metric_row("voc", "invalid_rate", "tuned", 0.03, 0.0, higher_is_better=False)])
    verdict = evaluate_policy(one_gate("voc.invalid_rate", max_relative_drop=10.0), comparison)
    check = verdict.checks[0]
    assert check.status == "fail" and "infinitely" in check.message
    assert json.loads(json.dumps(verdict.to_dict(), allow_nan=False))["checks"][0]["observed"] is None


def test_gate_can_override_the_direction():
    comparison = make_comparison([metric_row("t", "latency", "tuned", 1.2, 1.0)])
    assert single_check(comparison, "t.latency", max_relative_drop=0.1).status == "pass"
    assert single_check(comparison, "t.latency", max_relative_drop=0.1, higher_is_better=False).status == "fail"


# -------------------------------------------------------------------------------- breakdowns


def test_breakdown_metric_names(comparison):
    anatomy = single_check(comparison, "mmlu.subject/anatomy/acc", max_drop=0.05)
    assert anatomy.status == "fail" and anatomy.p_value == 0.03 and anatomy.value == 0.40
    assert single_check(comparison, "mmlu.category/stem/acc", min_gain=0.0).status == "pass"


def test_breakdown_inherits_direction_from_its_task_metric(comparison):
    tail = single_check(comparison, "voc.frequency/tail/invalid_rate", max_drop=0.05)
    assert tail.higher_is_better is False and tail.status == "fail"


def test_unknown_metric_suggests_close_names(comparison):
    with pytest.raises(UsageError, match=r"policy\.yaml: gate 1: unknown metric 'mmlu\.accc'.*Did you mean 'mmlu\.acc'"):
        evaluate_policy(one_gate("mmlu.accc", min=0.1), comparison)
    with pytest.raises(UsageError, match=r"Did you mean 'mmlu\.subject/anatomy/acc'"):
        evaluate_policy(one_gate("mmlu.subject/anatomyy/acc", min=0.1), comparison)
    with pytest.raises(UsageError, match=r"tasks are: ifeval, mmlu, voc"):
        evaluate_policy(one_gate("hellaswag.acc", min=0.1), comparison)


def test_missing_or_undefined_value_fails():
    comparison = make_comparison([metric_row("t", "m", "tuned", None, 0.5),
                                  metric_row("t", "other", "tuned", 0.5, 0.5)], labels=("base", "tuned", "late"))
    checks = evaluate_policy(one_gate("t.m", max_drop=0.1), comparison).checks
    assert [(c.checkpoint, c.status) for c in checks] == [("tuned", "fail"), ("late", "fail")]
    assert "undefined" in checks[0].message and "no t.m row for checkpoint 'late'" in checks[1].message


# -------------------------------------------------------------------------------- checkpoints


def test_gates_apply_to_every_non_baseline_checkpoint_or_the_listed_ones():
    rows = [metric_row("g", "acc", "domain", 0.30, 0.99, p_value=1e-6),
            metric_row("g", "acc", "mixed", 0.98, 0.99, p_value=0.8)]
    comparison = make_comparison(rows, labels=("base", "domain", "mixed"))
    verdict = evaluate_policy(one_gate("g.acc", max_drop=0.05), comparison)
    assert [(c.checkpoint, c.status) for c in verdict.checks] == [("domain", "fail"), ("mixed", "pass")]
    scoped = evaluate_policy(one_gate("g.acc", max_drop=0.05, checkpoints=["mixed"]), comparison)
    assert [(c.checkpoint, c.status) for c in scoped.checks] == [("mixed", "pass")] and scoped.status == "pass"
    floor = evaluate_policy(one_gate("g.acc", min=0.9, checkpoints=["base"]), comparison)   # bounds may gate the baseline
    assert [(c.checkpoint, c.status) for c in floor.checks] == [("base", "pass")]


def test_checkpoint_label_errors(comparison):
    with pytest.raises(UsageError, match=r"gate 1 \(mmlu\.acc\): unknown checkpoint 'tuend'.*Did you mean 'tuned'"):
        evaluate_policy(one_gate("mmlu.acc", min=0.1, checkpoints=["tuend"]), comparison)
    with pytest.raises(UsageError, match=r"'max_drop' compares with the baseline"):
        evaluate_policy(one_gate("mmlu.acc", max_drop=0.1, checkpoints=["base"]), comparison)
    only_base = {**comparison, "checkpoints": [{"label": "base"}]}
    with pytest.raises(UsageError, match="no checkpoint besides the baseline"):
        evaluate_policy(one_gate("mmlu.acc", min=0.1), only_base)


# ------------------------------------------------------------------------------ policy errors


def write_policy(tmp_path, text, name="policy.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, pattern", [
    ("gates:\n  - metric: mmlu.acc\n    max_dorp: 0.02\n",
     r"policy\.yaml: gate 1: unknown key 'max_dorp'; Did you mean 'max_drop'.*Available: checkpoints"),
    ("basline: base\ngates: [{metric: mmlu.acc, min: 0.1}]\n", r"unknown key 'basline'; allowed keys: baseline, gates, "),
    ("gates:\n  - {metric: mmlu.acc, min: 0.1}\n  - {metric: mmlu.acc}\n",
     r"gate 2 \(mmlu\.acc\): no operator; give exactly one of min_gain, max_drop"),
    ("gates: [{metric: mmlu.acc, min: 0.1, max: 0.9}]\n", r"gate 1 \(mmlu\.acc\): several operators \(min, max\)"),
    ("gates: [{metric: mmlu.acc, max_drop: lots}]\n", r"gate 1: 'max_drop' must be a finite number, got 'lots'"),
    ("gates: [{metric: mmlu.acc, max_relative_drop: 5%}]\n", r"got '5%' \(write fractions, e\.g\. 0\.05 for 5%\)"),
    ("gates: [{metric: mmlu.acc, max_drop: -0.1}]\n", r"'max_drop' must be >= 0"),
    ("gates: [{metric: mmlu.acc, max_drop: .nan}]\n", r"'max_drop' must be a finite number, got nan"),
    ("gates: [{metric: mmlu.acc, min: 0.2, higher_is_better: maybe}]\n", r"'higher_is_better' must be true or false"),
    ("gates: [{metric: mmlu.acc, min: 0.2, name: ''}]\n", r"'name' must be a non-empty string"),
    ("gates: [{metric: mmlu.acc, max_drop: 0.02, significance: 0}]\n", r"'significance' must be between 0 and 0\.5"),
    ("gates: [{metric: mmlu.acc, max_drop: 0.02, significance: 0.5}]\n", r"'significance' must be between 0 and 0\.5"),
    ("gates: [{metric: mmlu.acc, max_drop: 0.02, significance: yes}]\n", r"'significance' must be a finite number"),
    ("significance: 2\ngates: [{metric: mmlu.acc, min: 0.2}]\n", r"policy\.yaml: 'significance' must be between"),
    ("on_inconclusive: pass\ngates: [{metric: mmlu.acc, min: 0.2}]\n", r"'on_inconclusive' must be one of fail, warn"),
    ("gates: [{metric: mmlu.acc, min: 0.2, severity: fatal}]\n", r"'severity' must be one of error, warn"),
    ("gates: [{metric: mmlu.acc, min: 0.2, checkpoints: tuned}]\n", r"'checkpoints' must be a non-empty list"),
    ("gates: [{metric: mmlu, min: 0.2}]\n", r"gate 1: 'metric' must be named TASK\.METRIC"),
    ("gates: []\n", r"'gates' must be a non-empty list"),
    ("- metric: mmlu.acc\n", r"a policy must be a YAML mapping"),
    ("gates:\n  - metric: mmlu.acc\n   min: 0.1\n", r"policy\.yaml: line 3 is not valid YAML \(column \d+: "),
])
def test_policy_errors_name_the_file_gate_and_key(tmp_path, text, pattern):
    path = write_policy(tmp_path, text)
    with pytest.raises(UsageError, match=pattern) as info:
        load_policy(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_exponent_thresholds_yaml_reads_as_strings_are_numbers(tmp_path):
    policy = load_policy(write_policy(tmp_path, "gates: [{metric: mmlu.acc, max_drop: 2e-2, significance: '5E-2'}]\n"))
    assert (policy.gates[0].threshold, policy.gates[0].significance) == (0.02, 0.05)


def test_policy_file_not_found(tmp_path):
    with pytest.raises(UsageError, match=r"nope\.yaml: policy file not found"):
        load_policy(tmp_path / "nope.yaml")


def test_baseline_mismatch(comparison):
    policy = parse_policy({"baseline": "main", "gates": [{"metric": "mmlu.acc", "min": 0.1}]}, source="p.yaml")
    with pytest.raises(UsageError, match=r"p\.yaml: 'baseline' is 'main' but the comparison's baseline is 'base'"):
        evaluate_policy(policy, comparison)


def test_policy_without_baseline_accepts_any(comparison):
    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "min": 0.1}]})
    assert evaluate_policy(policy, comparison).baseline == "base"


# ------------------------------------------------------------------------------------ outputs


def test_verdict_dict_matches_the_schema(comparison):
    verdict = evaluate_policy(one_gate("mmlu.acc", max_drop=0.02, significance=0.05), comparison)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["status"] == "fail" and data["policy"] == "policy.yaml" and data["baseline"] == "base"
    check = data["checks"][0]
    assert {"gate", "metric", "checkpoint", "status", "severity", "value", "baseline_value", "delta",
            "threshold", "p_value", "message"} <= set(check)
    assert check["message"] == ("dropped 0.150; drop in [+0.124, +0.175] (one-sided 95% bounds): > 0.020 allowed")
    assert check["severity"] == "error" and check["p_value"] == 0.004
    assert check["bound_low"] == pytest.approx(0.124, abs=1e-3) and check["alpha"] == 0.05


def test_junit_has_what_ci_systems_read(tmp_path):
    rows = [paired_row("mmlu", "acc", "tuned", 1000, 600, 200, 50, p_value=0.004),
            paired_row("mmlu", "acc", 'we<ird> & "label"\x01', 50, 30, 4, 2, p_value=0.4)]
    comparison = make_comparison(rows, labels=("base", "tuned", 'we<ird> & "label"\x01'))
    policy = parse_policy({"on_inconclusive": "warn",
                           "gates": [{"metric": "mmlu.acc", "max_drop": 0.02, "significance": 0.05},
                                     {"metric": "mmlu.acc", "min": 0.3}]}, source="policy.yaml")
    path = write_junit(evaluate_policy(policy, comparison), tmp_path / "junit.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("4", "1", "0", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["evalkit.gate.tuned", 'evalkit.gate.we<ird> & "label"\ufffd']
    assert [(s.get("tests"), s.get("failures")) for s in suites] == [("2", "1"), ("2", "0")]
    assert all(s.get(attr) is not None for s in suites for attr in ("errors", "skipped", "time"))
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases[:2]] == ["mmlu.acc max_drop 0.02 (significance 0.05)", "mmlu.acc min 0.3"]
    assert cases[0].get("classname") == "evalkit.gate.tuned"
    failure = cases[0].find("failure")
    assert "dropped 0.150" in failure.get("message") and "drop in [+0.124, +0.175]" in failure.get("message")
    for number in ("value=0.45", "baseline=0.6", "delta=-0.15", "threshold=0.02", "p_value=0.004", "bound_low=0.124"):
        assert number in failure.text
    assert cases[1].find("failure") is None
    inconclusive = cases[2]  # on_inconclusive: warn -> a passing case that says so
    assert inconclusive.find("failure") is None
    assert inconclusive.find("system-out").text.startswith("INCONCLUSIVE: ")
    blocking = junit_xml(evaluate_policy(parse_policy({"gates": policy_gates(policy)}), comparison))
    case = ET.fromstring(blocking).findall("testsuite/testcase")[2]
    assert case.find("failure").get("type") == "evalkit.gate.inconclusive"


def test_markdown_verdict_escapes_table_cells(comparison):
    comparison = make_comparison([metric_row("voc", "f1", "tuned", 0.5, 0.4)], labels=("base", "tuned"))
    policy = parse_policy({"gates": [{"metric": "voc.f1", "min_gain": 0.05, "name": "a | b <script>"}]})
    text = verdict_markdown(evaluate_policy(policy, comparison))
    assert text.startswith("### evalkit gate: ✅ PASS")
    row = text.strip().splitlines()[-1]
    # The one Markdown escaper (evalkit.report.markdown.md_escape), as in report.md: HTML as entities.
    assert "a \\| b &lt;script&gt;" in row and "<script>" not in text
    assert len(re.findall(r"(?<!\\)\|", row)) == 9   # 8 columns: the escaped pipe does not add one


def test_outputs_and_step_summary_appended(tmp_path, monkeypatch, comparison):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    verdict = evaluate_policy(one_gate("mmlu.acc", max_drop=0.02), comparison)
    written = write_gate_outputs(verdict, tmp_path / "out")
    assert written == [tmp_path / "out" / "junit.xml", tmp_path / "out" / "verdict.json"]
    assert json.loads(written[1].read_text()) == verdict.to_dict()
    write_gate_outputs(verdict, tmp_path / "out")
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n") and text.count("### evalkit gate: ❌ FAIL") == 2
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_no_step_summary_without_the_variable(tmp_path, monkeypatch, comparison):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_gate_outputs(evaluate_policy(one_gate("mmlu.acc", min=0.1), comparison), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "manifest.json", "verdict.json"]


# ------------------------------------------------------------------------------ the command


def run_gate(comparison_path, policy_path, monkeypatch):
    """``evalkit gate`` in process (test_cli_gate_command runs the real command): (exit code, stdout, stderr)."""
    from tests.helpers.cli import run_cli

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "")
    return run_cli(["gate", str(comparison_path), "--policy", str(policy_path)])


@pytest.fixture()
def comparison_file(tmp_path, comparison):
    path = tmp_path / "report" / "comparison.json"
    path.parent.mkdir()
    path.write_text(json.dumps(comparison), encoding="utf-8")
    return path


@pytest.mark.parametrize("policy_text, code, stdout", [
    ("gates: [{metric: voc.leaf_macro_f1, min_gain: 0.05}]\n", 0, "gate: PASS"),
    ("gates: [{metric: mmlu.acc, max_drop: 0.02, severity: warn}]\n", 0, "gate: WARN"),
    ("gates: [{metric: mmlu.acc, max_drop: 0.02, significance: 0.05}]\n", 1, "gate: FAIL"),
    ("gates: [{metric: ifeval.prompt_level_strict_acc, max_drop: 0.03, significance: 0.05}]\n", 1,
     "gate: INCONCLUSIVE"),
    ("on_inconclusive: warn\ngates: [{metric: ifeval.prompt_level_strict_acc, max_drop: 0.03, significance: 0.05}]\n",
     0, "gate: INCONCLUSIVE"),
    ("gates: [{metric: mmlu.acc}]\n", 2, ""),
    ("gates: [{metric: mmlu.acx, min: 0.1}]\n", 2, ""),
])
def test_gate_command_exit_codes(tmp_path, comparison_file, policy_text, code, stdout, monkeypatch):
    returncode, printed, said = run_gate(comparison_file, write_policy(tmp_path, policy_text), monkeypatch)
    assert returncode == code, said
    assert stdout in printed
    if code == 2:
        assert said.startswith("evalkit: error: ") and "Traceback" not in said
    else:   # outputs go beside the comparison by default
        assert (comparison_file.parent / "junit.xml").is_file()
        status = stdout.split(": ", 1)[1].lower()
        assert json.loads((comparison_file.parent / "verdict.json").read_text())["status"] == status
        if "INCONCLUSIVE" in stdout:
            assert "inconclusive checks" in printed and "on_inconclusive" in printed


@pytest.mark.parametrize("content, pattern", [
    ("{not json", r"not valid JSON \(line 1"),
    (json.dumps({"kind": "evalkit.results", "schema_version": 1}), r"not an evalkit comparison \(kind 'evalkit\.results'"),
    (json.dumps({"kind": "evalkit.comparison", "schema_version": 2}), r"schema_version 2 is newer than this evalkit reads \(1\)"),
])
def test_gate_files_rejects_bad_comparisons(tmp_path, content, pattern):
    path = tmp_path / "comparison.json"
    path.write_text(content, encoding="utf-8")
    policy = write_policy(tmp_path, "gates: [{metric: mmlu.acc, min: 0.1}]\n")
    with pytest.raises(UsageError, match=pattern):
        gate_files(path, policy, None)
    with pytest.raises(UsageError, match="comparison file not found"):
        gate_files(tmp_path / "missing.json", policy, None)


def test_gate_files_writes_to_out_dir_and_prints_nothing(tmp_path, comparison_file, capsys):
    policy = write_policy(tmp_path, "gates: [{metric: mmlu.acc, min: 0.5}]\n")
    verdict, written = gate_files(comparison_file, policy, tmp_path / "ci")
    assert verdict.exit_code == 1 and tmp_path / "ci" / "junit.xml" in written
    assert (tmp_path / "ci" / "junit.xml").is_file() and not (comparison_file.parent / "junit.xml").exists()
    assert "FAIL  tuned  mmlu.acc min 0.5: value 0.450 < min 0.5; point estimate" in verdict_text(verdict)
    assert capsys.readouterr() == ("", ""), "the library returns the verdict; the command line prints it"


def test_cli_gate_command(tmp_path, comparison_file):
    """Through the real CLI (`evalkit gate` runs gate_files and prints the verdict)."""
    policy = write_policy(tmp_path, "gates: [{metric: mmlu.acc, max_drop: 0.02, significance: 0.05}]\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": ""}
    result = subprocess.run([sys.executable, "-m", "evalkit", "gate", str(comparison_file), "--policy", str(policy)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    bad = write_policy(tmp_path, "gates: [{metric: mmlu.acc, max_drop: 0.02, significance: 2}]\n", "bad.yaml")
    result = subprocess.run([sys.executable, "-m", "evalkit", "gate", str(comparison_file), "--policy", str(bad)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "'significance' must be between 0 and 0.5" in result.stderr


# ---------------------------------------------------------------------------- shipped files


def test_demo_policy_fails_domain_only_and_passes_mixed():
    rows = [metric_row("demo_voc", "leaf_macro_f1", "domain_only", 0.95, 0.0, p_value=1e-9),
            metric_row("demo_voc", "leaf_macro_f1", "mixed", 0.99, 0.0, p_value=1e-9),
            paired_row("demo_general", "acc", "domain_only", 320, 317, 230, 2, p_value=1e-12),
            paired_row("demo_general", "acc", "mixed", 320, 317, 5, 2, p_value=1.0)]
    for row in rows[:2]:
        row["delta_stderr"] = 0.02
    comparison = make_comparison(rows, labels=("base", "domain_only", "mixed"))
    policy = parse_policy(yaml.safe_load(demo_policy_text()))
    verdict = evaluate_policy(policy, comparison)
    by_checkpoint = {}
    for check in verdict.checks:
        by_checkpoint.setdefault(check.checkpoint, []).append(check.status)
    assert by_checkpoint == {"domain_only": ["pass", "fail"], "mixed": ["pass", "pass"]}


def test_demo_policy_text_defaults_are_the_shipped_demo_policy():
    shipped = load_policy(REPO / "evalkit" / "tasks" / "policies" / "demo_policy.yaml")
    generated = parse_policy(yaml.safe_load(demo_policy_text()))
    fields = lambda p: [(g.metric, g.operator, g.threshold, g.significance) for g in p.gates]  # noqa: E731
    assert fields(generated) == fields(shipped) and generated.baseline == shipped.baseline


def test_example_policy_is_valid():
    policy = load_policy(REPO / "examples" / "policy.yaml")
    assert policy.baseline == "base"
    assert policy.task_names() == {"voc_sample", "mmlu", "ifeval"}


def test_malformed_comparison_rows_are_input_errors(comparison):
    comparison["metrics"].append({"task": "mmlu", "value": 0.3})
    with pytest.raises(UsageError, match=r"comparison: metrics row \d+ lacks metric, checkpoint"):
        evaluate_policy(one_gate("mmlu.acc", min=0.1), comparison)


@pytest.mark.parametrize("name", ["comparison_example.json"])
def test_example_policy_on_the_shared_comparison_fixtures(name):
    """The shipped policy applies to realistic comparisons written by the other components."""
    path = REPO / "tests" / "fixtures" / name
    if not path.exists():
        pytest.skip(f"{name} not committed yet")
    from evalkit.gate import load_comparison

    comparison = load_comparison(path)
    verdict = evaluate_policy(load_policy(REPO / "examples" / "policy.yaml"), comparison)
    labels = [c["label"] for c in comparison["checkpoints"] if c["label"] != comparison["baseline"]]
    assert len(verdict.checks) == 6 * len(labels)
    assert {c.checkpoint for c in verdict.checks} == set(labels)
    json.dumps(verdict.to_dict(), allow_nan=False)
    ET.fromstring(__import__("evalkit.gate", fromlist=["junit_xml"]).junit_xml(verdict))


# ----------------------------------------------------------------------------------- level and power
def test_each_gate_keeps_its_own_level_per_side():
    """No adjustment across gates: the level is one-sided, per gate and per side (docs/gating.md)."""
    rows = [paired_row("t", f"m{i}", "tuned", 1000, 600, 150, 50) for i in range(3)]
    policy = parse_policy({"baseline": "base", "gates": [{"metric": f"t.m{i}", "max_drop": 0.02, "significance": 0.05}
                                                         for i in range(3)]}, source="policy.yaml")
    checks = evaluate_policy(policy, make_comparison(rows)).checks
    assert [c.alpha for c in checks] == [0.05] * 3 and len({(c.bound_low, c.bound_high) for c in checks}) == 1


def test_point_gate_below_its_minimum_detectable_effect_is_underpowered():
    row = metric_row("mmlu", "acc", "tuned", 0.59, 0.60, p_value=0.5)
    row.update(mde=0.046, n_paired=861)
    check = single_check(make_comparison([row]), "mmlu.acc", max_drop=0.02)
    assert check.underpowered and check.mde == 0.046 and check.status == "pass"
    assert "a change of 0.046 is detected with probability 0.8" in check.message
    powered = single_check(make_comparison([row]), "mmlu.acc", max_drop=0.05)
    assert not powered.underpowered
    relative = single_check(make_comparison([row]), "mmlu.acc", max_relative_drop=0.05)  # 0.046 / 0.60 = 7.7 %
    assert relative.underpowered and relative.mde == pytest.approx(0.046 / 0.6)
    assert not single_check(make_comparison([row]), "mmlu.acc", min=0.5).underpowered  # bounds are not tests
    decisive = metric_row("mmlu", "acc", "tuned", 0.70, 0.60)
    decisive.update(mde=0.046, n_paired=861)  # a gain of 0.10 against 0.02: noise of 0.046 cannot overturn it
    assert not single_check(make_comparison([decisive]), "mmlu.acc", min_gain=0.02).underpowered


def test_a_decided_gate_is_never_called_underpowered():
    """With a level the bounds decide; a decisive pass or fail needs no power argument (issue 23)."""
    row = paired_row("demo_voc", "acc", "tuned", 320, 2, 0, 300)
    row.update(mde=0.116, n_paired=320)
    check = single_check(make_comparison([row]), "demo_voc.acc", min_gain=0.05, significance=0.05)
    assert check.status == "pass" and not check.underpowered and check.mde == 0.116
    assert "underpowered" not in check.message


def test_junit_of_a_decisive_pass_has_no_warning(tmp_path):
    row = paired_row("mmlu", "acc", "tuned", 1000, 600, 15, 5)
    row.update(mde=0.046, n_paired=1000)
    verdict = evaluate_policy(one_gate("mmlu.acc", max_drop=0.02, significance=0.05), make_comparison([row]))
    junit, verdict_path = write_gate_outputs(verdict, tmp_path)
    case = ET.parse(junit).getroot().find(".//testcase")
    assert case.find("failure") is None and not case.find("system-out").text.startswith("WARNING")
    check = json.loads(verdict_path.read_text())["checks"][0]
    assert check["underpowered"] is False and check["status"] == "pass" and check["bound_high"] < 0.02


# ------------------------------------------------------------------ bounds cut to the metric's range (issue 23)
def test_gate_bounds_of_the_demo_gain_stay_within_what_the_baseline_allows():
    """The demo's leaf_macro_f1 gained from 0.008: the gate's upper bound read 1.004, a gain no F1 can make."""
    row = metric_row("demo_voc", "leaf_macro_f1", "tuned", 0.94, 0.008)
    row.update(delta_stderr=0.04, metric_bounds=[0.0, 1.0])
    check = single_check(make_comparison([row]), "demo_voc.leaf_macro_f1", min_gain=0.2, significance=0.05)
    assert check.status == "pass" and check.bound_high == pytest.approx(0.992)
    assert check.bound_low == pytest.approx(0.932 - 1.6449 * 0.04, abs=1e-4)  # the deciding bound is unchanged
    assert "+0.992]" in check.message
    del row["metric_bounds"]  # a row written without the declaration keeps its normal bounds
    uncut = single_check(make_comparison([row]), "demo_voc.leaf_macro_f1", min_gain=0.2, significance=0.05)
    assert uncut.bound_high > 0.99


@pytest.mark.parametrize("operator, higher_is_better, value, base", [
    ("max_drop", True, 0.015, 0.02), ("min_gain", False, 0.01, 0.02), ("max_relative_drop", True, 0.015, 0.02),
    ("min_relative_gain", True, 0.97, 0.9), ("max", True, 0.99, 0.98), ("min", False, 0.01, 0.02)])
def test_every_operator_cuts_its_bounds_to_the_feasible_range(operator, higher_is_better, value, base):
    row = metric_row("t", "m", "tuned", value, base, higher_is_better=higher_is_better)
    row.update(delta_stderr=0.05, value_stderr=0.05, metric_bounds=[0.0, 1.0])
    base_row = {**row, "checkpoint": "base", "value": base, "delta": 0.0}
    comparison = make_comparison([row, base_row])
    check = single_check(comparison, "t.m", **{operator: 0.5}, significance=0.05)
    # the observed quantity of any value in [0, 1] against this baseline
    s = 1.0 if higher_is_better else -1.0
    reachable = {"max_drop": (-s * (1 - base), s * base), "min_gain": (s * (0 - base), s * (1 - base)),
                 "max_relative_drop": ((base - 1) / base, base / base), "min_relative_gain": (-1.0, (1 - base) / base),
                 "max": (0.0, 1.0), "min": (0.0, 1.0)}[operator]
    least, most = sorted(reachable)
    assert least - 1e-12 <= check.bound_low <= check.observed <= check.bound_high <= most + 1e-12, check
    assert check.bound_low == pytest.approx(least) or check.bound_high == pytest.approx(most)  # something was cut


def test_the_gate_command_imports_no_model_library_and_no_comparison_builder(tmp_path, comparison_file):
    """`evalkit gate` is a CI step that reads one JSON file: it needs scipy.special's quantiles, not the
    builder's scipy.stats (~1.8 s of imports), matplotlib, or any model library."""
    policy = write_policy(tmp_path, "gates: [{metric: mmlu.acc, max_drop: 0.02, significance: 0.05}]\n")
    probe = ("import sys\nfrom evalkit.cli import main\ntry:\n    main(['gate', sys.argv[1], '--policy', sys.argv[2]])\n"
             "except SystemExit as exit:\n    heavy = ('torch', 'transformers', 'lm_eval', 'datasets', 'scipy.stats', "
             "'sklearn', 'matplotlib', 'evalkit._compare')\n"
             "    print('HEAVY', [m for m in heavy if m in sys.modules], exit.code)\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": ""}
    result = subprocess.run([sys.executable, "-c", probe, str(comparison_file), str(policy)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.stdout.splitlines()[-1] == "HEAVY [] 1", result.stdout + result.stderr  # a real decision: FAIL
