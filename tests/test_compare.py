"""build_comparison on synthetic EvalResults (see tests/synthetic_results.py)."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, ttest_rel

from evalkit._compare import build_comparison, comparison_from_results_files, load_comparison, write_comparison
from evalkit._compare._format import diagnose
from evalkit.errors import UsageError
from evalkit.evaluators.base import MetricSpec, register_evaluator
from evalkit.metrics.stats import mcnemar_test, paired_proportion_difference_ci
from evalkit.records import EvalResult
from synthetic_results import FIXTURE, SyntheticVocEvaluator, make_results

B = 200  # resamples: enough for the tests, fast


@pytest.fixture(scope="module")
def results():
    return make_results()


@pytest.fixture(scope="module")
def comparison(results):
    return build_comparison(results, n_resamples=B)


def _row(comparison, task, metric, checkpoint):
    (row,) = [r for r in comparison["metrics"] if (r["task"], r["metric"], r["checkpoint"]) == (task, metric, checkpoint)]
    return row


def _correct(result, task):
    return {r.sample_id: bool(r.correct) for r in result.tasks[task].samples}


# ----------------------------------------------------------------------------------- metrics
def test_top_level_shape(comparison):
    assert comparison["kind"] == "evalkit.comparison" and comparison["schema_version"] == 1
    assert comparison["baseline"] == "base" and comparison["verdict"] is None
    assert [c["label"] for c in comparison["checkpoints"]] == ["base", "tuned", "mix"]
    assert [t["name"] for t in comparison["tasks"]] == ["mmlu", "mmlu_generative", "ifeval", "voc_sample"]
    assert comparison["created"] == "2026-11-24T12:00:00+00:00"  # latest input, not the clock
    assert comparison["warnings"] == []


def test_mcnemar_row_matches_records(results, comparison):
    base, tuned = _correct(results[0], "mmlu"), _correct(results[1], "mmlu")
    ids = sorted(base)
    a, b = [base[i] for i in ids], [tuned[i] for i in ids]
    row = _row(comparison, "mmlu", "acc", "tuned")
    assert row["delta"] == pytest.approx(np.mean(b) - np.mean(a))
    assert row["relative"] == pytest.approx(np.mean(b) / np.mean(a))
    n01 = sum((not x) and y for x, y in zip(a, b))
    n10 = sum(x and not y for x, y in zip(a, b))
    assert row["test"] == "mcnemar_exact" and row["n_paired"] == 120
    assert row["p_value"] == pytest.approx(binomtest(n10, n01 + n10, 0.5).pvalue)
    assert row["delta_ci_low"] < row["delta"] < row["delta_ci_high"]
    assert row["ci_method"] == "wilson" and row["ci_low"] < row["value"] < row["ci_high"]
    assert row["is_primary"] and row["axis"] == "general" and row["higher_is_better"]


def test_baseline_rows_have_zero_delta_and_no_test(comparison):
    row = _row(comparison, "mmlu", "acc", "base")
    assert (row["delta"], row["p_value"], row["test"], row["relative"]) == (0.0, None, None, 1.0)


def test_corpus_metric_uses_evaluator_hook(results, comparison):
    row = _row(comparison, "voc_sample", "leaf_macro_f1", "tuned")
    assert row["test"] == "approximate_randomization" and row["p_value"] < 0.05
    assert row["p_value_is_bound"] is (row["p_value"] == 1 / (row["n_resamples"] + 1))
    assert row["delta_ci_low"] < row["delta"] < row["delta_ci_high"]
    assert _row(comparison, "voc_sample", "leaf_macro_f1", "base")["ci_method"] == "jackknife"
    parse = _row(comparison, "mmlu_generative", "parse_failure_rate", "tuned")  # declared mean of extra.parse_failed
    assert parse["test"].startswith("mcnemar") and parse["p_value"] < 0.05 and parse["delta"] > 0.5


def test_corpus_metric_without_hook_has_no_test(results):
    edited = copy.deepcopy(results[:2])
    for result in edited:
        result.tasks["voc_sample"].evaluator = "not_a_registered_evaluator"
        result.tasks["voc_sample"].metric_specs = {"leaf_macro_f1": MetricSpec(level="corpus")}
    row = _row(build_comparison(edited, n_resamples=B), "voc_sample", "leaf_macro_f1", "tuned")
    assert (row["test"], row["p_value"], row["ci_low"]) == (None, None, None)
    assert row["delta"] == pytest.approx(row["value"] - row["baseline_value"])


def test_hook_rejecting_one_metric_keeps_the_others(results):
    @register_evaluator
    class PickyHook:
        name, version, needs = "picky_hook_test", "1", frozenset()

        @classmethod
        def resample_metrics(cls, records, names, indices):
            if "invalid_rate" in names:
                raise ValueError("unknown metric 'invalid_rate'")
            return SyntheticVocEvaluator.resample_metrics(records, names, indices)

    edited = copy.deepcopy(results[:2])
    for result in edited:
        result.tasks["voc_sample"].evaluator = "picky_hook_test"
        for record in result.tasks["voc_sample"].samples:
            record.scores.pop("invalid_rate")
    comparison = build_comparison(edited, n_resamples=B)
    assert _row(comparison, "voc_sample", "leaf_macro_f1", "tuned")["test"] == "approximate_randomization"
    assert _row(comparison, "voc_sample", "invalid_rate", "tuned")["test"] is None
    assert any("cannot resample invalid_rate" in w for w in comparison["warnings"])


def test_non_binary_per_sample_mean_gets_the_paired_t_test(results):
    edited = copy.deepcopy(results[:2])
    for result in edited:
        task = result.tasks["ifeval"]
        for record in task.samples:
            record.scores["length_ratio"] = len(record.scores["inst_level_strict_acc"]) / 3 + float(record.correct)
        task.metrics["length_ratio"] = float(np.mean([r.scores["length_ratio"] for r in task.samples]))
        task.metric_specs["length_ratio"] = MetricSpec(level="sample")  # declared with the result
    row = _row(build_comparison(edited, n_resamples=B), "ifeval", "length_ratio", "tuned")
    a = [r.scores["length_ratio"] for r in sorted(edited[0].tasks["ifeval"].samples, key=lambda r: r.sample_id)]
    b = [r.scores["length_ratio"] for r in sorted(edited[1].tasks["ifeval"].samples, key=lambda r: r.sample_id)]
    expected = ttest_rel(b, a)
    assert row["test"] == "paired_t" and row["p_value"] == pytest.approx(expected.pvalue)
    ci = expected.confidence_interval(0.95)
    assert (row["delta_ci_low"], row["delta_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert row["ci_method"] == "t"


def test_direction_and_level_come_from_declarations_never_from_names(results, comparison):
    assert _row(comparison, "mmlu_generative", "parse_failure_rate", "tuned")["higher_is_better"] is False  # declared
    assert _row(comparison, "voc_sample", "invalid_rate", "tuned")["higher_is_better"] is False
    assert _row(comparison, "voc_sample", "leaf_macro_f1", "tuned")["level"] == "corpus"
    assert _row(comparison, "mmlu", "acc", "tuned")["level"] == "sample"
    task = next(t for t in comparison["tasks"] if t["name"] == "ifeval")
    assert task["metric_specs"]["inst_level_strict_acc"]["unit"] == "element"
    # A result's own declaration wins over the class's; an undeclared metric is a corpus metric, with a warning,
    # whatever its name says ("error_rate" used to be guessed lower-is-better).
    edited = copy.deepcopy(results[:2])
    for result in edited:
        result.tasks["voc_sample"].metric_specs["invalid_rate"] = MetricSpec(higher_is_better=True, level="sample")
        task = result.tasks["mmlu"]
        task.metrics["error_rate"] = 1 - task.metrics["acc"]
        for record in task.samples:
            record.scores["error_rate"] = 1 - record.scores["acc"]
    out = build_comparison(edited, n_resamples=B)
    assert _row(out, "voc_sample", "invalid_rate", "base")["higher_is_better"] is True
    row = _row(out, "mmlu", "error_rate", "tuned")
    assert row["higher_is_better"] is True and row["level"] == "corpus" and row["test"] is None
    assert any("does not declare metric 'error_rate'" in w for w in out["warnings"])


def test_declared_sample_metric_that_records_do_not_reproduce_is_compared_as_corpus(results):
    # A macro F1 of 0 equals the mean of all-wrong outcomes by coincidence: the old numeric guess
    # would have called it a per-sample mean; declarations decide, and a wrong declaration is caught.
    edited = copy.deepcopy(results[:2])
    for result in edited:
        result.tasks["mmlu"].metrics["acc"] += 0.01
    out = build_comparison(edited, n_resamples=B)
    assert _row(out, "mmlu", "acc", "tuned")["test"] is None  # no resample hook for this metric: no test
    assert any("do not reproduce its value" in w for w in out["warnings"])


def test_reported_ci_and_stderr_only_where_evalkit_cannot_compute_one(results):
    edited = copy.deepcopy(results[:1])
    edited[0].tasks["mmlu"].ci["acc"] = [0.1, 0.2]  # a declared proportion gets its Wilson interval regardless
    voc = edited[0].tasks["voc_sample"]
    voc.evaluator, voc.metric_specs = "not_a_registered_evaluator", {"leaf_macro_f1": MetricSpec(level="corpus")}
    value = voc.metrics["leaf_macro_f1"]
    voc.ci["leaf_macro_f1"] = [value - 0.1, value - 0.01]  # a reported interval that misses its value
    comparison = build_comparison(edited, n_resamples=B)
    assert _row(comparison, "mmlu", "acc", "base")["ci_method"] == "wilson"
    row = _row(comparison, "voc_sample", "leaf_macro_f1", "base")
    assert row["ci_method"] == "reported" and row["ci_extended"] and row["ci_high"] == value
    assert any("widened" in w for w in comparison["warnings"])
    voc.ci.clear()
    voc.stderr["leaf_macro_f1"] = 0.05
    row = _row(build_comparison(edited, n_resamples=B), "voc_sample", "leaf_macro_f1", "base")
    assert row["ci_method"] == "stderr" and row["ci_high"] - row["ci_low"] == pytest.approx(2 * 1.959964 * 0.05)


# ----------------------------------------------------------------------------------- labels, baseline, tasks
def test_duplicate_labels_are_a_usage_error(results):
    twin = copy.deepcopy(results[1])
    twin.checkpoint.label = "base"
    with pytest.raises(UsageError, match=r"'base'.*LABEL=SPEC"):
        build_comparison([results[0], twin])


def test_baseline_selection(results):
    comparison = build_comparison(results, baseline="mix", n_resamples=B)
    assert comparison["baseline"] == "mix"
    assert _row(comparison, "mmlu", "acc", "mix")["delta"] == 0.0
    tuned = _row(comparison, "mmlu", "acc", "tuned")
    assert tuned["baseline"] == "mix" and tuned["baseline_value"] == _row(comparison, "mmlu", "acc", "mix")["value"]
    with pytest.raises(UsageError, match=r"'nope'.*Available: base, mix, tuned"):
        build_comparison(results, baseline="nope")


def test_notes_override_and_unknown_note_label(results):
    comparison = build_comparison(results, notes={"tuned": "lr 2e-3"}, n_resamples=B)
    assert [c["note"] for c in comparison["checkpoints"]] == ["no tuning", "lr 2e-3", None]
    with pytest.raises(UsageError, match="'tunde'.*Did you mean 'tuned'"):
        build_comparison(results, notes={"tunde": "typo"})


def test_task_missing_for_a_checkpoint_is_compared_where_present(results):
    edited = copy.deepcopy(results)
    del edited[2].tasks["ifeval"]
    comparison = build_comparison(edited, n_resamples=B)
    assert any("'ifeval'" in w and "mix" in w for w in comparison["warnings"])
    assert {r["checkpoint"] for r in comparison["metrics"] if r["task"] == "ifeval"} == {"base", "tuned"}
    assert comparison["tasks"][2]["checkpoints"] == ["base", "tuned"]


def test_partial_sample_overlap_pairs_shared_samples_only(results):
    edited = copy.deepcopy(results[:2])
    edited[1].tasks["mmlu"].samples = edited[1].tasks["mmlu"].samples[:100]
    comparison = build_comparison(edited, n_resamples=B)
    assert _row(comparison, "mmlu", "acc", "tuned")["n_paired"] == 100
    assert any("share 100" in w for w in comparison["warnings"])


def test_single_checkpoint(results):
    comparison = build_comparison(results[:1], n_resamples=B)
    assert comparison["flips"] == [] and comparison["summary"] == []
    with pytest.raises(UsageError, match="at least one"):
        build_comparison([])
    with pytest.raises(ValueError, match="'n_resamples'"):
        build_comparison(results, n_resamples=0)


def test_real_voc_hook_and_report(results):
    """The voc evaluator's resample_metrics (hierarchical metrics) drives the corpus-metric tests."""
    leaves = [("Billing", "Fees", "Late"), ("Billing", "Fees", "Overdraft"), ("Card", "Fraud", "Unknown")]
    rng = np.random.default_rng(0)
    true = [leaves[i] for i in rng.integers(0, 3, 120)]

    def checkpoint(label, skill):
        pred = [t if rng.random() < skill else leaves[rng.integers(0, 3)] for t in true]
        return _voc_checkpoint(label, true, pred)

    comparison = build_comparison([checkpoint("base", 0.3), checkpoint("tuned", 0.9)], n_resamples=B)
    assert comparison["warnings"] == []
    row = _row(comparison, "voc", "leaf_macro_f1", "tuned")
    assert row["test"] == "approximate_randomization" and row["p_value"] < 0.05 and row["ci_method"] == "jackknife"
    classes = [r for r in comparison["breakdowns"] if r["kind"] == "class" and r["checkpoint"] == "tuned"]
    # every class row is tested (issue 27): recall by McNemar on the class's samples, precision and F1 by
    # approximate randomization through the evaluator's resample_breakdown hook
    assert {r["test"] for r in classes if r["metric"] == "recall"} <= {"mcnemar_exact", "mcnemar_chi2"}
    assert {r["test"] for r in classes if r["metric"] != "recall"} == {"approximate_randomization"}
    assert all(r["test"] for r in classes) and {r["metric"] for r in classes} == {"recall", "precision", "f1"}
    assert "n_classes" not in {r["metric"] for r in comparison["breakdowns"]}


def test_all_invalid_baseline_still_gets_a_paired_test():
    """A macro F1 of 0 equals the mean of all-wrong outcomes: that coincidence must not drop the test."""
    leaves = [("Billing", "Fees", "Late"), ("Card", "Fraud", "Unknown")]
    true = [leaves[i % 2] for i in range(60)]
    base = _voc_checkpoint("base", true, [None] * 60)
    tuned = _voc_checkpoint("tuned", true, [leaves[0] if i % 10 == 1 else t for i, t in enumerate(true)])
    row = _row(build_comparison([base, tuned], n_resamples=B), "voc", "leaf_macro_f1", "tuned")
    assert row["test"] == "approximate_randomization" and row["p_value"] < 0.05


def test_voc_breakdown_rows_all_get_intervals_and_family_adjusted_tests():
    """Per level, per frequency band and per class (issue 27): each tuned row has a jackknife interval, a paired
    test and a Holm / BH adjustment within its family; a band's interval is its jackknife by hand."""
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    from evalkit.metrics.hierarchical import frequency_breakdown
    from evalkit.metrics.stats import jackknife_ci

    leaves = [("Billing", "Fees", "Late"), ("Billing", "Fees", "Overdraft"), ("Card", "Fraud", "Unknown"), ("Card", "Lost", "Stolen")]
    train = {leaves[0]: 300, leaves[1]: 60, leaves[2]: 60, leaves[3]: 5}  # head, torso, torso, tail
    rng = np.random.default_rng(5)
    true = [leaves[i] for i in rng.choice(4, 80, p=[0.4, 0.25, 0.25, 0.1])]
    base_pred = [t if rng.random() < 0.5 else leaves[0] for t in true]
    tuned_pred = [t if rng.random() < 0.9 else leaves[1] for t in true]
    comparison = build_comparison([_voc_checkpoint("base", true, base_pred, train),
                                   _voc_checkpoint("tuned", true, tuned_pred, train)], n_resamples=B)
    assert comparison["warnings"] == []
    tuned = [r for r in comparison["breakdowns"] if r["checkpoint"] == "tuned"]
    assert {r["kind"] for r in tuned} == {"class", "level", "frequency"}
    for row in tuned:
        assert row["p_value"] is not None and row["p_value_adjusted"] >= row["p_value"], row
        assert row["kind"] != "class" or row["metric"] != "recall" or row["ci_method"] == "wilson", row  # also at 0 and 1
        assert row["delta_ci_low"] <= row["delta"] <= row["delta_ci_high"], row
        assert -row["baseline_value"] <= row["delta_ci_low"] and row["delta_ci_high"] <= 1 - row["baseline_value"], row
    bands = {r["key"]: r for r in tuned if r["kind"] == "frequency"}
    assert set(bands) == {"head", "torso", "tail"} and {r["test"] for r in bands.values()} == {"approximate_randomization"}
    raw = [bands[k]["p_value"] for k in ("head", "torso", "tail")]
    assert [bands[k]["p_value_adjusted"] for k in ("head", "torso", "tail")] == pytest.approx(
        list(multitest.multipletests(raw, method="holm")[1]))
    assert [bands[k]["q_value"] for k in ("head", "torso", "tail")] == pytest.approx(
        list(multitest.multipletests(raw, method="fdr_bh")[1]))
    loo = [frequency_breakdown(true[:i] + true[i + 1:], tuned_pred[:i] + tuned_pred[i + 1:], train)["torso"]["macro_f1"]
           for i in range(len(true))]
    low, high, _ = jackknife_ci(bands["torso"]["value"], loo, bounds=(0.0, 1.0))
    assert (bands["torso"]["ci_low"], bands["torso"]["ci_high"]) == pytest.approx((low, high))
    assert bands["head"]["delta"] > 0 and bands["head"]["p_value"] < 0.05  # base predicts the head leaf for everything


def _voc_checkpoint(label, true, pred, train_counts=None):
    from evalkit.metrics.hierarchical import frequency_bands, hierarchical_report
    from evalkit.records import CheckpointInfo, SampleRecord, TaskResult

    def text(path):
        return None if path is None else " > ".join(path)

    records = [SampleRecord(sample_id=str(i), target=text(t), prediction=text(p), correct=p == t,
                            scores={"path_correct": float(p == t)}, group=text(t),
                            extra={"target_path": list(t), "pred_path": list(p) if p else None, "invalid": p is None})
               for i, (t, p) in enumerate(zip(true, pred))]
    report = hierarchical_report(true, pred, n_resamples=0, train_counts=train_counts)
    settings = {"frequency_bands": frequency_bands(true, train_counts)} if train_counts else {}
    task = TaskResult(task="voc", evaluator="voc", evaluator_version="1", config_hash="h", metrics=report["metrics"],
                      n_samples=len(records), axis="domain", primary_metric="leaf_macro_f1",
                      breakdowns=report["breakdowns"], samples=records, settings=settings)
    return EvalResult(CheckpointInfo(label, label, "hf", label), {}, {"voc": task})


# ----------------------------------------------------------------------------------- breakdowns
def test_breakdown_group_mcnemar(results, comparison):
    rows = [r for r in comparison["breakdowns"] if r["task"] == "mmlu" and r["kind"] == "subject"
            and r["key"] == "anatomy" and r["checkpoint"] == "tuned"]
    (row,) = rows
    members = sorted(r.sample_id for r in results[0].tasks["mmlu"].samples if r.group == "anatomy")
    base, tuned = _correct(results[0], "mmlu"), _correct(results[1], "mmlu")
    expected = mcnemar_test([base[i] for i in members], [tuned[i] for i in members])
    assert row["p_value"] == pytest.approx(expected.p_value) and row["n_paired"] == len(members)
    assert row["delta"] == pytest.approx(np.mean([tuned[i] for i in members]) - np.mean([base[i] for i in members]))
    # a subject's accuracy is a proportion: Wilson interval of its value, Newcombe's paired one of its delta (issue 27)
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    wilson = proportion.proportion_confint(sum(tuned[i] for i in members), len(members), method="wilson")
    assert (row["ci_low"], row["ci_high"], row["ci_method"]) == (pytest.approx(wilson[0]), pytest.approx(wilson[1]), "wilson")
    _, low, high = paired_proportion_difference_ci([base[i] for i in members], [tuned[i] for i in members])
    assert (row["delta_ci_low"], row["delta_ci_high"]) == pytest.approx((low, high))


def test_instruction_breakdown_pairs_instruction_outcomes(results, comparison):
    key = "punctuation:no_comma"
    (row,) = [r for r in comparison["breakdowns"] if r["kind"] == "instruction" and r["key"] == key and r["checkpoint"] == "tuned"]

    def outcomes(result):
        return {(r.sample_id, i): ok for r in result.tasks["ifeval"].samples
                for i, (inst, ok) in enumerate(zip(r.extra["instruction_ids"], r.scores["inst_level_strict_acc"])) if inst == key}

    a, b = outcomes(results[0]), outcomes(results[1])
    expected = mcnemar_test([a[k] for k in sorted(a)], [b[k] for k in sorted(a)])
    assert row["test"].startswith("mcnemar") and row["p_value"] == pytest.approx(expected.p_value)


def test_breakdown_tests_only_where_metric_is_group_accuracy(comparison):
    voc = [r for r in comparison["breakdowns"] if r["task"] == "voc_sample" and r["checkpoint"] == "tuned"]
    assert all(r["test"] is not None for r in voc if r["kind"] == "class")  # recall = mean of correct
    assert all(r["test"] is None for r in voc if r["kind"] == "frequency")


def test_breakdowns_sorted_biggest_loss_first(comparison):
    rows = [r for r in comparison["breakdowns"] if (r["task"], r["kind"], r["checkpoint"]) == ("mmlu", "subject", "tuned")]
    deltas = [r["delta"] for r in rows]
    assert len(rows) == 4 and deltas == sorted(deltas)


# ----------------------------------------------------------------------------------- flips, format, summary
def test_flips_are_capped_ordered_and_counted(results):
    comparison = build_comparison(results, n_resamples=B, max_flips=3)
    base, tuned = _correct(results[0], "voc_sample"), _correct(results[1], "voc_sample")
    gained = [i for i in base if not base[i] and tuned[i]]
    flips = [f for f in comparison["flips"] if (f["task"], f["checkpoint"], f["direction"]) == ("voc_sample", "tuned", "wrong_to_right")]
    assert [f["sample_id"] for f in flips] == sorted(gained, key=lambda s: int(s.split("-")[1]))[:3]
    (counts,) = [c for c in comparison["flip_counts"] if (c["task"], c["checkpoint"]) == ("voc_sample", "tuned")]
    assert counts["wrong_to_right"] == len(gained) > 3
    assert counts["right_to_wrong"] == sum(base[i] and not tuned[i] for i in base)


def test_flip_texts_are_kept_but_truncated(comparison):
    by_id = {(f["task"], f["checkpoint"], f["sample_id"]): f for f in comparison["flips"]}
    long_one = by_id[("voc_sample", "tuned", "cfpb-5")]
    assert len(long_one["input"]) == 1001 and long_one["input"].endswith("…")
    untrusted = [f for f in comparison["flips"] if f["sample_id"] == "q3"]
    assert untrusted and "<script>alert('untrusted')</script>" in untrusted[0]["input"]


def test_format_vs_knowledge(comparison):
    rows = {r["checkpoint"]: r for r in comparison["format_vs_knowledge"]}
    assert rows["tuned"]["diagnosis"] == "format" and rows["mix"]["diagnosis"] == "none"
    assert rows["tuned"]["parse_failure_rate"] > rows["tuned"]["baseline_parse_failure_rate"]
    assert rows["tuned"]["loglik_task"] == "mmlu" and rows["tuned"]["generative_task"] == "mmlu_generative"


def test_format_vs_knowledge_on_the_bench_records():
    """Real training (bench/format_vs_knowledge, records saved by its --fixture): a VOC fine-tune that rehearses
    the facts as plain text keeps them but loses the answer format; the demo's domain_only loses the facts and,
    writing label paths, the format too; a fine-tune on the general questions answered with wrong options
    keeps the format (its replies still name an option) but loses the facts."""
    from evalkit.records import EvalResult

    folder = Path(__file__).parent / "fixtures" / "format_vs_knowledge"
    results = [EvalResult.from_dict(json.loads((folder / f"{name}.json").read_text()))
               for name in ("base", "domain_only", "voc_fact_text", "wrong_answers")]
    rows = {r["checkpoint"]: r for r in build_comparison(results, baseline="base", n_resamples=B)["format_vs_knowledge"]}
    assert rows["voc_fact_text"]["diagnosis"] == "format" and rows["domain_only"]["diagnosis"] == "both"
    kept = rows["voc_fact_text"]
    assert kept["loglik_p_value"] >= 0.05 and kept["parse_failure_delta"] >= 0.05
    assert kept["loglik_delta"] - kept["generative_delta"] >= 0.10
    assert rows["domain_only"]["loglik_p_value"] < 0.05 and rows["domain_only"]["loglik_task"] == "demo_general"
    wrong = rows["wrong_answers"]
    assert wrong["diagnosis"] == "knowledge"
    assert wrong["loglik_delta"] < 0 and wrong["loglik_p_value"] < 0.05 and wrong["generative_delta"] < 0
    assert wrong["loglik_delta"] - wrong["generative_delta"] < 0.10 or wrong["parse_failure_delta"] < 0.05


@pytest.mark.parametrize("ll_delta,ll_p,gen_delta,parse_delta,expected", [
    (-0.02, 0.5, -0.40, 0.60, "format"),
    (-0.20, 0.001, -0.22, 0.00, "knowledge"),
    (-0.20, 0.001, -0.50, 0.40, "both"),
    (-0.02, 0.5, -0.40, 0.00, "none"),   # generative drop without parse failures: not format
    (-0.08, None, -0.10, None, "knowledge"),  # no p-value: a drop of >= 0.05 counts
    (None, None, -0.5, 0.5, "none"),
])
def test_diagnosis_rule(ll_delta, ll_p, gen_delta, parse_delta, expected):
    row = {"loglik_delta": ll_delta, "loglik_p_value": ll_p, "generative_delta": gen_delta, "parse_failure_delta": parse_delta}
    assert diagnose(row) == expected


def test_summary(comparison):
    (tuned,) = [s for s in comparison["summary"] if s["checkpoint"] == "tuned"]
    assert [e["task"] for e in tuned["domain"]] == ["voc_sample"]
    assert [e["task"] for e in tuned["general"]] == ["mmlu", "mmlu_generative", "ifeval"]
    assert tuned["mean_general_retention"] == pytest.approx(np.mean([e["relative"] for e in tuned["general"]]))
    assert tuned["significant_improvements"] >= 1 and tuned["significant_regressions"] >= 1


# ----------------------------------------------------------------------------------- JSON, determinism, files
def test_json_safe_and_nan_becomes_null(results):
    edited = copy.deepcopy(results[:2])
    edited[1].tasks["mmlu"].metrics["acc_norm"] = math.nan
    edited[0].tasks["mmlu"].metrics["acc_norm"] = 0.5
    comparison = build_comparison(edited, n_resamples=B)
    json.dumps(comparison, allow_nan=False)
    row = _row(comparison, "mmlu", "acc_norm", "tuned")
    assert row["value"] is None and row["delta"] is None


def test_deterministic_and_independent_of_record_order(results, comparison):
    shuffled = copy.deepcopy(results)
    for result in shuffled:
        for task in result.tasks.values():
            random.Random(0).shuffle(task.samples)
    assert build_comparison(results, n_resamples=B) == comparison
    assert build_comparison(shuffled, n_resamples=B) == comparison


def test_broken_hook_is_a_warning(results):
    @register_evaluator
    class BrokenHook:
        name, version, needs = "broken_hook_test", "1", frozenset()

        @classmethod
        def resample_metrics(cls, records, names, indices):
            raise RuntimeError("boom")

    edited = copy.deepcopy(results[:2])
    for result in edited:
        result.tasks["voc_sample"].evaluator = "broken_hook_test"
    comparison = build_comparison(edited, n_resamples=B)
    assert _row(comparison, "voc_sample", "leaf_macro_f1", "tuned")["p_value"] is None
    assert any("boom" in w for w in comparison["warnings"])


def test_fixture_is_up_to_date():
    """tests/fixtures/comparison_example.json is what the code makes now; regenerate with
    ``python tests/synthetic_results.py`` after changing the comparison."""
    comparison = build_comparison(make_results(), notes={"tuned": "domain-only fine-tune"}, n_resamples=200)
    assert json.loads(json.dumps(comparison)) == load_comparison(FIXTURE)


def test_write_and_load_round_trip(tmp_path, comparison):
    path = write_comparison(comparison, tmp_path / "comparison.json")
    assert load_comparison(path) == comparison


@pytest.mark.parametrize("content,match", [
    ('{"kind": "other", "schema_version": 1}', "not an evalkit comparison"),
    ('{"kind": "evalkit.comparison", "schema_version": 99}', "schema_version 99"),
    ("{nope", "not valid JSON"),
])
def test_load_comparison_errors(tmp_path, content, match):
    path = tmp_path / "comparison.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=match):
        load_comparison(path)
    with pytest.raises(UsageError, match="not found"):
        load_comparison(tmp_path / "missing.json")


def test_comparison_from_results_files(tmp_path, results):
    paths = []
    for result in results[:2]:
        path = tmp_path / result.checkpoint.label / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(result.to_dict()))
        paths.append(path)
    comparison = comparison_from_results_files([f"old={paths[0]}", paths[1]], baseline="old", n_resamples=B)
    assert [c["label"] for c in comparison["checkpoints"]] == ["old", "tuned"]
    assert _row(comparison, "mmlu", "acc", "tuned")["baseline"] == "old"
    with pytest.raises(UsageError, match="LABEL=SPEC"):
        comparison_from_results_files([paths[0], paths[0]])
    assert EvalResult.load(paths[0]).checkpoint.label == "base"


def test_a_comparison_json_serves_as_earlier_results(tmp_path, comparison):
    """--baseline-results accepts a comparison.json: its checkpoints come back with their metrics."""
    from evalkit._compare import load_results_files

    path = write_comparison(comparison, tmp_path / "comparison.json")
    results = load_results_files([path])
    assert [r.checkpoint.label for r in results] == [c["label"] for c in comparison["checkpoints"]]
    base_acc = _row(comparison, "mmlu", "acc", "tuned")["baseline_value"]
    assert results[0].tasks["mmlu"].metrics["acc"] == pytest.approx(base_acc)
    assert results[0].tasks["mmlu"].samples == []  # metrics only: no paired tests against it
    with pytest.raises(UsageError, match="LABEL= only applies to a single results.json"):
        load_results_files([f"old={path}"])


def test_proportion_ci_stays_inside_0_1_even_with_an_lm_eval_stderr():
    """99/100 correct with lm-eval's stderr gives value ± 1.96·se > 1; the Wilson interval does not."""
    from evalkit.records import CheckpointInfo, SampleRecord, TaskResult

    def checkpoint(label, n_right):
        records = [SampleRecord(sample_id=str(i), correct=i < n_right, scores={"acc": float(i < n_right)})
                   for i in range(100)]
        acc = n_right / 100
        task = TaskResult(task="mc", evaluator="lm_eval", evaluator_version="1", config_hash="h", metrics={"acc": acc},
                          stderr={"acc": (acc * (1 - acc) / 99) ** 0.5}, n_samples=100, primary_metric="acc",
                          samples=records)
        return EvalResult(CheckpointInfo(label, label, "hf", label), {}, {"mc": task})

    row = _row(build_comparison([checkpoint("base", 60), checkpoint("tuned", 99)], n_resamples=B), "mc", "acc", "tuned")
    assert row["ci_method"] == "wilson" and 0.9 < row["ci_low"] < 0.99 < row["ci_high"] <= 1.0
    assert row["stderr"] is not None  # lm-eval's stderr is still reported beside the interval


def test_metric_specs_survive_results_json_and_the_registry_answers(results):
    from evalkit.evaluators import metric_spec
    from evalkit.records import EvalResult

    result = copy.deepcopy(results[0])
    result.tasks["mmlu"].metric_specs["acc"] = MetricSpec(level="sample", cluster="extra.category")
    back = EvalResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert metric_spec(back.tasks["mmlu"], "acc") == MetricSpec(level="sample", cluster="extra.category")
    # nothing stored: the registered class's declaration (exact name, then pattern) answers
    assert metric_spec(back.tasks["ifeval"], "inst_level_strict_acc").unit == "element"
    assert metric_spec(back.tasks["voc_sample"], "frequency/macro_f1").level == "corpus"
    assert metric_spec(back.tasks["voc_sample"], "no_such_metric") is None
    with pytest.raises(ValueError, match="level"):
        MetricSpec(level="corpus-ish")
    with pytest.raises(ValueError, match="score"):
        MetricSpec(level="sample", score="acc")  # must say where: scores.acc, extra.acc or correct


# ----------------------------------------------------------------------------------- intervals contain their estimates
def _assert_every_number_inside_its_interval(comparison):
    for row in comparison["metrics"]:
        where = (row["task"], row["metric"], row["checkpoint"])
        if row["value"] is not None and row["ci_low"] is not None:
            assert row["ci_low"] <= row["value"] <= row["ci_high"], where
        if row["checkpoint"] != comparison["baseline"] and row["delta_ci_low"] is not None:
            assert row["delta_ci_low"] <= row["delta"] <= row["delta_ci_high"], where


def test_every_value_and_delta_lies_inside_its_interval(comparison):
    _assert_every_number_inside_its_interval(comparison)
    with_ci = [r for r in comparison["metrics"] if r["ci_low"] is not None]
    assert len(with_ci) == len(comparison["metrics"])  # every metric of the fixture has an interval
    assert {r["ci_method"] for r in with_ci} == {"wilson", "cluster_t", "jackknife"}


def test_instruction_level_metric_is_clustered_by_prompt_like_statsmodels(results, comparison):
    sm = pytest.importorskip("statsmodels.api")
    row = _row(comparison, "ifeval", "inst_level_strict_acc", "tuned")
    assert row["test"] == "cluster_paired_t" and row["ci_method"] == "cluster_t"
    a, b, prompts = [], [], []
    by_id = {r.sample_id: r for r in results[1].tasks["ifeval"].samples}
    for record in results[0].tasks["ifeval"].samples:
        for x, y in zip(record.scores["inst_level_strict_acc"], by_id[record.sample_id].scores["inst_level_strict_acc"]):
            a.append(float(x)), b.append(float(y)), prompts.append(record.sample_id)
    diff = np.asarray(b) - np.asarray(a)
    fit = sm.OLS(diff, np.ones(diff.size)).fit(cov_type="cluster", cov_kwds={"groups": np.asarray(prompts)}, use_t=True)
    assert row["delta"] == pytest.approx(fit.params[0])
    assert row["p_value"] == pytest.approx(fit.pvalues[0], rel=1e-8)
    assert (row["delta_ci_low"], row["delta_ci_high"]) == pytest.approx(tuple(fit.conf_int(0.05)[0]))
    own = sm.OLS(np.asarray(b), np.ones(diff.size)).fit(cov_type="cluster", cov_kwds={"groups": np.asarray(prompts)},
                                                      use_t=True)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(own.conf_int(0.05)[0]))


def _cfpb_test_paths(shared_data):
    import csv

    path = shared_data / "voc" / "cfpb" / "cfpb_narratives_4level.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    levels = ("product", "sub_product", "issue", "sub_issue")
    to_path = lambda row: tuple(row[k] for k in levels if row[k])  # noqa: E731
    return [to_path(r) for r in rows if r["split"] == "test"], [to_path(r) for r in rows if r["split"] != "test"]


@pytest.mark.shared_data
def test_cfpb_macro_f1_estimates_lie_inside_their_intervals(shared_data):
    """The issue's regression case: two prediction sets on CFPB's 1,139 test complaints (441-leaf long tail).
    A percentile bootstrap put leaf macro F1 outside its own interval; BCa with the same resamples does not."""
    from collections import Counter

    test, train = _cfpb_test_paths(shared_data)
    counts = Counter(train)
    by_product = {}
    for path, _ in counts.most_common():
        by_product.setdefault(path[0], path)
    rng = np.random.default_rng(11)

    def predict(skill):  # right more often on frequent leaves; else the product's most common leaf
        return [t if rng.random() < skill * min(1.0, 0.3 + counts.get(t, 0) / 50) else by_product.get(t[0], t)
                for t in test]

    comparison = build_comparison([_voc_checkpoint("base", test, predict(0.6)),
                                   _voc_checkpoint("tuned", test, predict(0.8))], n_resamples=300)
    assert len(test) == 1139
    _assert_every_number_inside_its_interval(comparison)
    row = _row(comparison, "voc", "leaf_macro_f1", "tuned")
    assert row["ci_method"] == "jackknife" and row["test"] == "approximate_randomization"
    assert not row["ci_extended"] and not row["delta_ci_extended"]


# ----------------------------------------------------------------------------------- multiplicity
def test_breakdown_families_carry_holm_and_bh_adjusted_p_values(comparison):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    family = [r for r in comparison["breakdowns"] if r["task"] == "mmlu" and r["kind"] == "subject"
              and r["metric"] == "acc" and r["checkpoint"] == "tuned"]
    raw = [r["p_value"] for r in family]
    assert None not in raw and all(r["family_size"] == len(family) for r in family)
    assert [r["p_value_adjusted"] for r in family] == pytest.approx(list(multitest.multipletests(raw, method="holm")[1]))
    assert [r["q_value"] for r in family] == pytest.approx(list(multitest.multipletests(raw, method="fdr_bh")[1]))
    untested = [r for r in comparison["breakdowns"] if r["p_value"] is None]
    assert untested and all(r["p_value_adjusted"] is None and r["family_size"] is None for r in untested)


def test_report_shows_adjusted_p_values_power_and_underpowered_gates(results, tmp_path):
    from evalkit.gate import evaluate_policy, parse_policy
    from evalkit.report import render_html, render_markdown

    comparison = build_comparison(results, n_resamples=B)
    policy = parse_policy({"baseline": "base", "gates": [{"metric": "mmlu.acc", "max_drop": 0.01}]},
                          source="policy.yaml")  # no level: a point comparison, which power can qualify
    comparison["verdict"] = evaluate_policy(policy, comparison).to_dict()
    mmlu = _row(comparison, "mmlu", "acc", "tuned")
    assert mmlu["mde"] > 0.01  # 120 questions cannot resolve a 0.01 drop
    assert all(c["underpowered"] or c["status"] == "fail" for c in comparison["verdict"]["checks"])
    markdown = render_markdown(comparison)
    assert f"with 120 paired samples a change of {mmlu['mde']:.3f} is detected with probability 0.8" in markdown
    html = render_html(comparison)
    assert "p (Holm)" in html and ">MDE<" in html
    leveled = parse_policy({"baseline": "base", "gates": [{"metric": "mmlu.acc", "max_drop": 0.01, "significance": 0.05}]})
    checks = evaluate_policy(leveled, comparison).checks  # the bounds decide: never "underpowered"
    assert not any(c.underpowered for c in checks) and all(c.bound_low is not None for c in checks)
    from evalkit.report import _view as view

    assert view.fmt_row_p({"p_value": 1 / 201, "p_value_is_bound": True}) == "<0.005"  # honest resolution
    assert view.fmt_row_p({"p_value": 1 / 1001, "p_value_is_bound": True}) == "<0.001"
    assert view.fmt_row_p({"p_value": 0.0123, "p_value_is_bound": False}) == "0.012"


# ----------------------------------------------------------------------------------- cluster_field
def test_task_cluster_field_makes_intervals_and_tests_cluster_robust(results, tmp_path):
    sm = pytest.importorskip("statsmodels.api")
    from evalkit.taskconfig import load_task_file

    task_file = tmp_path / "reading.yaml"
    task_file.write_text("name: reading\nevaluator: lm_eval\nlm_eval_task: mmlu\ncluster_field: extra.category\n")
    assert load_task_file(task_file).cluster_field == "extra.category"
    task_file.write_text("name: reading\nevaluator: lm_eval\nlm_eval_task: mmlu\ncluster_field: passage\n")
    with pytest.raises(UsageError, match=r"reading.yaml: key 'cluster_field' must be one of .*extra.NAME"):
        load_task_file(task_file)

    edited = copy.deepcopy(results[:2])
    for result in edited:  # questions on one of 12 passages are dependent
        result.tasks["mmlu"].settings["cluster_field"] = "extra.passage"
        for record in result.tasks["mmlu"].samples:
            record.extra["passage"] = f"p{int(record.sample_id[1:]) // 10}"
    comparison = build_comparison(edited, n_resamples=B)
    row = _row(comparison, "mmlu", "acc", "tuned")
    assert row["ci_method"] == "cluster_t" and row["test"] == "cluster_paired_t"
    base = sorted(edited[0].tasks["mmlu"].samples, key=lambda r: int(r.sample_id[1:]))
    tuned = {r.sample_id: r for r in edited[1].tasks["mmlu"].samples}
    diff = np.array([tuned[r.sample_id].scores["acc"] - r.scores["acc"] for r in base])
    groups = np.array([r.extra["passage"] for r in base])
    fit = sm.OLS(diff, np.ones(diff.size)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    assert row["p_value"] == pytest.approx(fit.pvalues[0], rel=1e-8)
    subjects = [r for r in comparison["breakdowns"] if r["task"] == "mmlu" and r["kind"] == "subject"
                and r["checkpoint"] == "tuned"]
    assert {r["test"] for r in subjects} == {"cluster_paired_t"}
    _assert_every_number_inside_its_interval(comparison)


def test_hook_that_does_not_reproduce_a_corpus_metric_gives_it_no_interval_or_test(results):
    edited = copy.deepcopy(results[:2])
    for result in edited:
        result.tasks["voc_sample"].metrics["leaf_macro_f1"] += 0.05  # e.g. a corpus F1 the hook only averages
    comparison = build_comparison(edited, n_resamples=B)
    row = _row(comparison, "voc_sample", "leaf_macro_f1", "tuned")
    assert (row["ci_method"], row["test"], row["p_value"]) == (None, None, None)
    assert any("not the reported" in w for w in comparison["warnings"])


def test_cluster_field_makes_corpus_metrics_use_the_delete_a_cluster_jackknife_and_swap_clusters(results):
    from evalkit.metrics.stats import jackknife_ci

    edited = copy.deepcopy(results[:2])
    for result in edited:
        result.tasks["voc_sample"].settings["cluster_field"] = "extra.thread"
        for record in result.tasks["voc_sample"].samples:
            record.extra["thread"] = f"t{int(record.sample_id.split('-')[1]) % 15}"
    comparison = build_comparison(edited, n_resamples=B)
    base, tuned = _row(comparison, "voc_sample", "leaf_macro_f1", "base"), _row(comparison, "voc_sample", "leaf_macro_f1", "tuned")
    assert base["ci_method"] == "cluster_jackknife" and tuned["test"] == "cluster_approximate_randomization"
    # the base interval by hand: leave each of the 15 threads out in turn
    records = sorted(edited[0].tasks["voc_sample"].samples, key=lambda r: int(r.sample_id.split("-")[1]))
    threads = sorted({r.extra["thread"] for r in records})
    loo = [SyntheticVocEvaluator.resample_metrics([r for r in records if r.extra["thread"] != t], ["leaf_macro_f1"],
                                                  np.arange(len(records) - sum(r.extra["thread"] == t for r in records))[None, :])
           ["leaf_macro_f1"][0] for t in threads]
    low, high, _ = jackknife_ci(base["value"], loo)
    assert (base["ci_low"], base["ci_high"]) == pytest.approx((low, high))
    _assert_every_number_inside_its_interval(comparison)


# ----------------------------------------------------------------------------------- markers follow intervals (issue 23)
def test_every_marker_follows_the_interval_beside_it_and_intervals_stay_feasible(comparison):
    rows = [r for r in comparison["metrics"] if r["checkpoint"] != comparison["baseline"]]
    checked = 0
    for row in rows:
        low, high = row["delta_ci_low"], row["delta_ci_high"]
        if low is None or high is None:
            assert row["significant"] is None
            continue
        checked += 1
        if row["is_primary"]:  # a marker needs the interval to exclude 0 (and Holm across the primary family)
            assert not row["significant"] or (low > 0 or high < 0), row
        else:
            assert row["family"] == "exploratory" and row["significant"] is None, row
        if row["metric"] in ("acc", "leaf_macro_f1"):  # declared in [0, 1]
            assert row["metric_bounds"] == [0.0, 1.0]  # what the gate cuts its bounds to
            assert -row["baseline_value"] - 1e-12 <= low <= high <= 1 - row["baseline_value"] + 1e-12, row
        assert row["ci_target"] in ("population", "finite_sample_expectation", None)
    assert checked >= 3


def test_a_delta_interval_is_cut_to_what_the_baseline_value_allows():
    from evalkit._compare._metrics import _cut_delta_to_range

    row = {"baseline_value": 0.007, "delta_ci_low": 0.870, "delta_ci_high": 1.021}  # the demo's leaf_macro_f1
    _cut_delta_to_range((0.0, 1.0), row)
    assert row["delta_ci_high"] == pytest.approx(0.993) and row["delta_ci_low"] == 0.870


def test_gate_rows_carry_what_their_bounds_need(comparison):
    row = _row(comparison, "mmlu", "acc", "tuned")
    n11, n10, n01, n00 = row["paired_counts"]
    assert n11 + n10 + n01 + n00 == row["n_paired"]
    assert (n01 - n10) / row["n_paired"] == pytest.approx(row["delta"])
    assert row["value_counts"][1] == row["n"] and row["value_stderr"] > 0
    breakdowns = [b for b in comparison["breakdowns"] if b.get("test", "") and b["test"].startswith("mcnemar")]
    assert breakdowns and all(sum(b["paired_counts"]) == b["n_paired"] for b in breakdowns)


# ----------------------------------------------------------------------------------- declarations, not data (issue 23)
def _with_spec(results, task, metric, spec):
    changed = copy.deepcopy(results[:2])
    for result in changed:
        result.tasks[task].metric_specs = {**(result.tasks[task].metric_specs or {}), metric: spec}
    return changed


def test_interval_and_test_follow_the_declaration_not_the_values(results):
    """mmlu's acc values are 0/1 either way: declared binary it is a proportion (Wilson, McNemar); declared a
    plain sample mean it is compared as one (t interval, paired t test), whatever the values happen to be."""
    declared = build_comparison(results[:2], n_resamples=B)
    row = _row(declared, "mmlu", "acc", "tuned")
    assert (row["ci_method"], row["test"][:7], row["paired_counts"] is not None) == ("wilson", "mcnemar", True)
    plain = build_comparison(_with_spec(results, "mmlu", "acc", MetricSpec(level="sample", bounds=(0, 1))),
                             n_resamples=B)
    row = _row(plain, "mmlu", "acc", "tuned")
    assert (row["ci_method"], row["test"], row["paired_counts"], row["value_counts"]) == ("t", "paired_t", None, None)
    base, tuned = _correct(results[0], "mmlu"), _correct(results[1], "mmlu")
    ids = sorted(base)
    expected = ttest_rel([float(tuned[i]) for i in ids], [float(base[i]) for i in ids])
    assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    breakdowns = [r for r in declared["breakdowns"] if r["kind"] == "subject" and r["test"]]
    assert breakdowns and all(r["test"].startswith("mcnemar") for r in breakdowns)


def test_a_binary_declaration_the_values_break_is_reported_and_compared_as_a_mean(results):
    changed = _with_spec(results, "mmlu", "acc", MetricSpec(level="sample", score="extra.confidence", binary=True))
    for result in changed:
        for record in result.tasks["mmlu"].samples:
            record.extra["confidence"] = 0.25 + 0.5 * float(record.correct)
        result.tasks["mmlu"].metrics["acc"] = float(np.mean([r.extra["confidence"] for r in result.tasks["mmlu"].samples]))
    comparison = build_comparison(changed, n_resamples=B)
    row = _row(comparison, "mmlu", "acc", "tuned")
    assert (row["ci_method"], row["test"]) == ("t", "paired_t")
    assert any("declared binary" in w and "'acc'" in w for w in comparison["warnings"])



def _stored_voc_results(results, binary_key):
    """results.json text of base and tuned whose voc_sample specs are stored as the new code writes them, with the
    "binary" key of each sample spec deleted (binary_key="delete", a file written before the field) or set."""
    texts = []
    for result in copy.deepcopy(results[:2]):
        task = result.tasks["voc_sample"]
        task.metric_specs = dict(SyntheticVocEvaluator.metric_specs)
        data = result.to_dict()
        for spec in data["tasks"]["voc_sample"]["metric_specs"].values():
            if binary_key == "delete":
                spec.pop("binary", None)
            elif spec["level"] == "sample":
                spec["binary"] = binary_key
        texts.append(json.dumps(data))
    return texts


def _voc_rows(comparison):
    keys = ("ci_method", "ci_low", "ci_high", "test", "p_value", "delta_ci_low", "delta_ci_high")
    metrics = {r["metric"]: tuple(r.get(k) for k in keys) for r in comparison["metrics"]
               if r["task"] == "voc_sample" and r["checkpoint"] == "tuned"}
    breakdowns = {(r["kind"], r["key"], r["metric"], r["checkpoint"]): tuple(r.get(k) for k in ("test", *keys[:5]))
                  for r in comparison["breakdowns"] if r["task"] == "voc_sample"}
    return metrics, breakdowns


def test_results_stored_before_binary_existed_take_it_from_the_evaluator_declaration(results):
    """A stored spec without "binary" is unknown and the class's declaration fills it (Wilson, McNemar, as for a
    new results.json); a stored "binary": false stays false (t interval, paired t test); new JSON is unchanged."""
    new, old, not_binary = (_stored_voc_results(results, key) for key in (True, "delete", False))
    assert '"binary": true' in new[0] and '"binary"' not in old[0]
    loaded = {name: [EvalResult.from_dict(json.loads(text)) for text in texts]
              for name, texts in (("new", new), ("old", old), ("false", not_binary))}
    assert json.dumps(loaded["new"][0].to_dict()) == new[0]  # byte-identical round trip of what the new code writes
    assert json.dumps(loaded["old"][0].to_dict()) == old[0]  # an old file rewritten stays as it was
    rows = {name: _voc_rows(build_comparison(pair, n_resamples=B)) for name, pair in loaded.items()}
    assert rows["old"] == rows["new"]
    metrics, breakdowns = rows["new"]
    assert metrics["path_acc"][0] == "wilson" and metrics["path_acc"][3].startswith("mcnemar")
    assert any(test and test.startswith("mcnemar") for test, *_ in breakdowns.values())
    class_rows = [row for key, row in breakdowns.items() if key[0] == "class"]
    assert class_rows and all(row[1] == "wilson" for row in class_rows)
    metrics, breakdowns = rows["false"]
    assert (metrics["path_acc"][0], metrics["path_acc"][3]) == ("t", "paired_t")
    assert not any(test and test.startswith("mcnemar") for test, *_ in breakdowns.values())
    assert not any(row[1] == "wilson" for key, row in breakdowns.items() if key[0] == "class")


# ----------------------------------------------------------------------------------- multiplicity (issue 23, item 5)
def test_primary_rows_form_one_holm_family_per_checkpoint_as_statsmodels_computes_it(comparison):
    from statsmodels.stats.multitest import multipletests

    for label in ("tuned", "mix"):
        rows = [r for r in comparison["metrics"] if r["checkpoint"] == label]
        family = [r for r in rows if r["family"] == "primary" and r["p_value"] is not None]
        assert len(family) == 4 and all(r["is_primary"] and r["family_size"] == 4 for r in family)
        reference = multipletests([r["p_value"] for r in family], method="holm")[1]
        assert [r["p_value_adjusted"] for r in family] == pytest.approx(list(reference), rel=1e-12)
        for row in family:
            excludes = row["delta_ci_low"] > 0 or row["delta_ci_high"] < 0
            assert row["significant"] == (excludes and row["p_value_adjusted"] < 0.05)
        assert all(r["family"] == "exploratory" and r["p_value_adjusted"] is None for r in rows if not r["is_primary"])
    summary = {s["checkpoint"]: s for s in comparison["summary"]}
    for label, entry in summary.items():
        marked = [r for r in comparison["metrics"] if r["checkpoint"] == label and r["significant"]]
        assert entry["significant_regressions"] + entry["significant_improvements"] == len(marked)


def _null_results(seed: int, n_voc: int = 150, n_mmlu: int = 120) -> list[EvalResult]:
    """Two equally good checkpoints (same profile, independent noise) on a VOC task and a general task."""
    import synthetic_results as synthetic

    shared = np.random.default_rng(seed)
    difficulty = {"voc": shared.random(n_voc), "mmlu": shared.random(n_mmlu)}
    results = []
    for k, label in enumerate(("base", "twin")):
        rng = np.random.default_rng([seed, k, 1])  # [seed, 0] would repeat default_rng(seed): trailing zeros
        profile = synthetic.PROFILES["base"]
        tasks = {"voc_sample": synthetic._voc(profile, rng, difficulty["voc"]),
                 "mmlu": synthetic._mmlu(profile, rng, difficulty["mmlu"], False)}
        info = synthetic.CheckpointInfo(label=label, spec=f"models/{label}", kind="hf", fingerprint=f"fp-{label}")
        results.append(EvalResult(checkpoint=info, versions={"evalkit": "0.1.0"}, tasks=tasks,
                                  created="2026-11-24T10:00:00+00:00"))
    return results


@pytest.mark.slow
def test_null_comparisons_star_a_top_level_row_in_at_most_five_percent_of_runs():
    """Seeded simulation: without the family, some top-level row's interval excludes 0 far more often."""
    runs, starred, unadjusted = 120, 0, 0
    for seed in range(runs):
        rows = [r for r in build_comparison(_null_results(seed), n_resamples=100)["metrics"] if r["checkpoint"] == "twin"]
        starred += any(r["significant"] for r in rows)
        unadjusted += any(r["delta_ci_low"] is not None and (r["delta_ci_low"] > 0 or r["delta_ci_high"] < 0)
                          for r in rows)
    assert starred / runs <= 0.05 + 2 * (0.05 * 0.95 / runs) ** 0.5  # 5 % plus two Monte Carlo SEs
    assert unadjusted > starred  # the family is what keeps it down


def test_reports_say_what_a_corpus_interval_covers_and_which_rows_are_exploratory(comparison):
    from evalkit.report import render_html, render_markdown

    jackknifed = [r for r in comparison["metrics"] if r["ci_target"] == "finite_sample_expectation"]
    assert {r["metric"] for r in jackknifed} >= {"leaf_macro_f1"}
    html = render_html(comparison)
    assert html.count(">test set</sup>") >= len([r for r in jackknifed if r["ci_low"] is not None])
    assert ">exploratory</span>" in html
    markdown = render_markdown(comparison)
    assert "leaf\\_macro\\_f1 (corpus metrics, jackknife) cover the expected score on a test set of this size, " \
           "not the population value" in markdown
    assert "Other metrics (exploratory" in markdown
