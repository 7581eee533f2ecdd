"""VOC confidence, calibration and auto-routing, end to end: records -> metrics -> comparison -> gate -> report.

Confidence paths: constrained (normalised path probability), generate (the parsed path scored as a
continuation), predictions files (their own ``confidence``), tiny models with a chat template in-process;
``transformers serve`` (no prompt log-probabilities) is covered in test_serve_matrix.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from evalkit.errors import UsageError
from evalkit.evaluators.base import get_evaluator
from evalkit.records import CheckpointInfo, EvalResult, MetricSpec, SampleRecord, TaskResult
from evalkit.taskconfig import TaskConfig

LABELS = ["Delivery > Late > Courier", "Delivery > Late > Backorder", "Delivery > Lost", "Billing > Other",
          "Billing > Charges > Twice", "Mortgage > FHA", "Mortgage > FHA > Escrow"]
HOSTILE = 'Fees <img src=x onerror=alert(1) "q" & co > Late'


def _task(tmp_path: Path, n: int = 14, labels=LABELS, **options) -> TaskConfig:
    lines = ["id,text,label"] + [f"t{i},comment number {i},{labels[i % len(labels)]}" for i in range(n)]
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = {"data": "test.csv", "label_field": "label", "id_field": "id", "n_resamples": 0, "batch_docs": 4}
    return TaskConfig(name="voc_t", evaluator="voc", options={**base, **options}, source="voc_t.yaml", base_dir=tmp_path)


def _evaluator(config: TaskConfig):
    evaluator = get_evaluator("voc")(config)
    evaluator.check_ready()
    return evaluator


# ----------------------------------------------------------------------------- constrained probabilities
def test_constrained_level_probabilities_are_normalised_over_the_options():
    from evalkit.taxonomy import Taxonomy
    from evalkit.voc.confidence import constrained_confidence
    from evalkit.voc.constrained import ConstrainedResult, _choose

    tax = Taxonomy([("A", "x"), ("A", "y"), ("B",)])
    results = [ConstrainedResult(path=())]
    # level 1: A (log 0.6), B (log 0.2) -> normalised 0.75 / 0.25
    deeper = _choose(results, [(0, ("A",)), (0, ("B",))], [math.log(0.6), math.log(0.2)], tax)
    assert deeper == [0] and results[0].probabilities == pytest.approx([0.75])
    # level 2: x (log 0.1), y (log 0.3) -> y with 0.75, lead 0.5
    _choose(results, [(0, ("A", "x")), (0, ("A", "y"))], [math.log(0.1), math.log(0.3)], tax)
    confidence = constrained_confidence(results[0])
    assert results[0].path == ("A", "y")
    assert confidence["path"] == pytest.approx(0.5625) and confidence["levels"] == pytest.approx([0.75, 0.5625])
    assert confidence["margin"] == pytest.approx(0.5) and confidence["version"] == 1
    assert results[0].logprobs == pytest.approx([math.log(0.6), math.log(0.3)])  # unchanged raw scores


@pytest.mark.slow
def test_constrained_records_carry_a_path_probability_on_a_chat_model(tmp_path, tiny_chat_model_dir):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(tiny_chat_model_dir), device="cpu", batch_size=16, max_length=512)
    evaluator = _evaluator(_task(tmp_path, n=4, mode="constrained"))
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    assert {r.extra["chat_template"] for r in records} == {True}
    for record in records:
        confidence = record.extra["confidence"]
        levels = confidence["levels"]
        assert confidence["method"] == "path_probability" and 0 < confidence["path"] <= levels[-1] + 1e-12
        assert len(levels) == len(record.extra["pred_path"]) and levels == sorted(levels, reverse=True)
        assert 0 <= confidence["margin"] <= 1
    result = evaluator.aggregate(records)
    for name in ("leaf_ece", "leaf_brier", "level1_ece", "level2_brier", "coverage_at_precision/0.95",
                 "coverage_at_precision/0.9"):
        assert name in result.metrics and result.metric_specs[name].level == "corpus"
    assert result.metric_specs["coverage_at_precision/0.95"].interval == "bootstrap"
    assert result.settings["confidence"] == ["path_probability"]
    _assert_hook_reproduces(evaluator, records, result)


def _assert_hook_reproduces(evaluator, records, result):
    names = [n for n in result.metrics if n.endswith(("_ece", "_brier")) or "/" in n]
    values = type(evaluator).resample_metrics(records, names, np.arange(len(records))[None, :])
    for name in names:
        want = result.metrics[name]
        got = float(values[name][0])
        assert (want is None and math.isnan(got)) or got == pytest.approx(want, abs=1e-12), name


# ----------------------------------------------------------------------------- generate: one scoring pass
class LabelsThenScore:
    """Generates fixed label lines (so every output parses) and scores with a real tiny chat model."""

    def __init__(self, hflm, outputs):
        self.hflm, self.outputs, self.scored = hflm, outputs, []

    def generate_until(self, requests):
        return [self.outputs[r.evalkit_sample_id] for r in requests]

    def loglikelihood(self, requests):
        self.scored.extend(requests)
        return self.hflm.loglikelihood(requests)

    def __getattr__(self, name):  # tokenizer, chat template and friends from the real model
        return getattr(self.hflm, name)


def test_generate_scores_the_parsed_path_as_a_continuation(tmp_path, tiny_chat_model_dir):
    from lm_eval.models.huggingface import HFLM

    hflm = HFLM(pretrained=str(tiny_chat_model_dir), device="cpu", batch_size=16, max_length=512)
    outputs = {"t0": LABELS[1], "t1": LABELS[0], "t2": LABELS[2], "t3": "no idea"}
    lm = LabelsThenScore(hflm, outputs)
    evaluator = _evaluator(_task(tmp_path, n=4))
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    assert len(lm.scored) == 3  # one continuation per parsed output; the unparsed one is not scored
    assert {r.arguments[1].strip() for r in lm.scored} == {outputs[f"t{i}"] for i in range(3)}
    assert all(r.task_name == "voc_t" for r in lm.scored)
    for record in records[:3]:
        confidence = record.extra["confidence"]
        assert confidence["method"] == "continuation_logprob" and confidence["per"] == "token"
        assert confidence["length"] >= 3 and 0 < confidence["path"] < 1
        assert confidence["path"] == pytest.approx(math.exp(confidence["logprob"] / confidence["length"]))
    assert records[3].prediction is None and records[3].extra["confidence"]["path"] == 0.0
    result = evaluator.aggregate(records)
    assert "level1_ece" not in result.metrics and "leaf_ece" in result.metrics  # one probability per path
    _assert_hook_reproduces(evaluator, records, result)

    off = _evaluator(_task(tmp_path, n=4, score_confidence=False))
    plain = off.run(LabelsThenScore(hflm, outputs), done={}, save=lambda batch: None)
    assert not any("confidence" in r.extra for r in plain)
    assert not any(n.endswith("_ece") or "/" in n for n in off.aggregate(plain).metrics)


def test_a_model_that_cannot_score_leaves_no_confidence_and_says_why(tmp_path):
    class NoScores:
        def generate_until(self, requests):
            return [LABELS[0] for _ in requests]

        def loglikelihood(self, requests):
            raise NotImplementedError("chat endpoints return no prompt log-probabilities")

    evaluator = _evaluator(_task(tmp_path, n=4))
    records = evaluator.run(NoScores(), done={}, save=lambda batch: None)
    assert not any("confidence" in r.extra for r in records)
    result = evaluator.aggregate(records)
    assert result.settings["confidence"] == ["none"] and "NotImplementedError" in result.settings["confidence_unavailable"]
    assert "leaf_ece" not in result.metrics


def test_predictions_file_confidence(tmp_path):
    from evalkit.checkpoints.replay import ReplayLM

    rows = [{"task": "voc_t", "id": f"t{i}", "output": LABELS[i % len(LABELS)], "confidence": 0.5 + i / 10}
            for i in range(4)]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    evaluator = _evaluator(_task(tmp_path, n=4))
    records = evaluator.run(ReplayLM(path), done={}, save=lambda batch: None)
    assert [r.extra["confidence"] for r in records] == [
        {"version": 1, "method": "predictions", "path": 0.5 + i / 10} for i in range(4)]
    assert evaluator.aggregate(records).metrics["leaf_brier"] == pytest.approx(np.mean([(0.5 + i / 10 - 1) ** 2 for i in range(4)]))
    rows[2]["confidence"] = "high"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(UsageError, match=r"preds.jsonl:3: 'confidence' must be a number in \[0, 1\]"):
        ReplayLM(path)


def test_bad_routing_options(tmp_path):
    with pytest.raises(UsageError, match=r"key 'coverage_precisions' must be a non-empty list of precisions in \(0, 1\]"):
        get_evaluator("voc")(_task(tmp_path, coverage_precisions=[0.9, 1.5]))
    with pytest.raises(UsageError, match="key 'score_confidence' must be true/false"):
        get_evaluator("voc")(_task(tmp_path, score_confidence="yes"))


def test_records_and_specs_written_before_confidence_stay_byte_identical():
    old = {"sample_id": "t1", "target": "A > x", "prediction": "A > y", "correct": False,
           "scores": {"path_correct": 0.0}, "group": "A > x", "input": "text",
           "extra": {"raw_output": "A > y", "parse_rule": "exact", "invalid": False, "target_path": ["A", "x"],
                     "pred_path": ["A", "y"]}}
    assert json.dumps(SampleRecord.from_dict(old).to_dict()) == json.dumps(old)
    spec = {"higher_is_better": True, "level": "corpus", "score": None, "unit": "sample", "cluster": None,
            "group_by": None, "bounds": [0.0, 1.0]}
    task = TaskResult(task="t", evaluator="voc", evaluator_version="1", config_hash="h", metrics={"leaf_macro_f1": 0.5},
                      n_samples=1, metric_specs={"leaf_macro_f1": MetricSpec.from_dict(spec)})
    assert task.to_dict()["metric_specs"]["leaf_macro_f1"] == {**spec, "bounds": (0.0, 1.0)}
    with pytest.raises(ValueError, match="interval must be one of"):
        MetricSpec(level="corpus", interval="bca")


# ----------------------------------------------------------------------------- comparison, gate, report
def _checkpoint(evaluator, label: str, predict, confidence) -> EvalResult:
    records = []
    tax = evaluator.data.taxonomy
    for i, example in enumerate(evaluator.examples):
        path = predict(i, example.path)
        conf = {"version": 1, "method": "predictions", "path": confidence(i, path == example.path)}
        records.append(evaluator._record(example, path, {"raw_output": tax.format(path) if path else "",
                                                          "parse_rule": "exact", "invalid": path is None,
                                                          "confidence": conf}))
    result = evaluator.aggregate(records)
    info = CheckpointInfo(label=label, spec=label, kind="predictions", fingerprint=label * 8)
    return EvalResult(checkpoint=info, versions={}, tasks={"voc_t": result}, created="2026-01-01")


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """base: right on 60 % with uninformative confidence; tuned: right on 80 %, confident where right."""
    tmp_path = tmp_path_factory.mktemp("routing")
    labels = [*LABELS, HOSTILE]
    evaluator = _evaluator(_task(tmp_path, n=240, labels=labels, n_resamples=50))
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 1, 240)

    def wrong(i, truth):  # a sibling where there is one, else another branch
        siblings = [tuple(p.split(" > ")) for p in labels if p.split(" > ")[:-1] == list(truth[:-1]) and tuple(p.split(" > ")) != truth]
        return siblings[0] if siblings else ("Billing", "Other") if truth[0] != "Billing" else ("Delivery", "Lost")

    base = _checkpoint(evaluator, "base", lambda i, t: t if i % 5 < 3 else wrong(i, t), lambda i, ok: 0.3 + 0.4 * noise[i])
    tuned = _checkpoint(evaluator, "tuned", lambda i, t: t if i % 5 < 4 else wrong(i, t),
                        lambda i, ok: 0.9 + 0.1 * noise[i] if ok else 0.2 + 0.6 * noise[i])
    from evalkit.api import compare

    return compare(base, tuned, n_resamples=200)


def _row(comparison, metric, label="tuned"):
    return next(r for r in comparison.data["metrics"] if r["metric"] == metric and r["checkpoint"] == label)


def test_comparison_gives_routing_metrics_bootstrap_intervals_and_paired_tests(two_checkpoints):
    row = _row(two_checkpoints, "coverage_at_precision/0.95")
    assert row["ci_method"] == "bootstrap_percentile" and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert row["value"] > 0.6 and _row(two_checkpoints, "coverage_at_precision/0.95", "base")["value"] < 0.1
    assert row["delta"] == pytest.approx(row["value"] - row["baseline_value"]) and row["delta_ci_low"] <= row["delta"] <= row["delta_ci_high"]
    assert row["delta_ci_low"] > 0 and row["p_value"] < 0.01 and row["test"] == "approximate_randomization"
    assert _row(two_checkpoints, "routed_precision/0.95")["value"] >= 0.9
    ece = _row(two_checkpoints, "leaf_ece")
    assert ece["higher_is_better"] is False and ece["ci_method"] == "bootstrap_percentile"
    brier = _row(two_checkpoints, "leaf_brier")
    assert brier["ci_method"] == "jackknife" and brier["delta"] < 0 and brier["p_value"] < 0.01


def test_every_domain_breakdown_row_gets_an_interval_and_a_family_adjusted_test(two_checkpoints):
    rows = [r for r in two_checkpoints.data["breakdowns"] if r["checkpoint"] == "tuned"]
    assert {(r["kind"], r["metric"]) for r in rows} == {("class", m) for m in ("precision", "recall", "f1")} | {
        ("level", m) for m in ("macro_f1", "micro_f1")}
    for row in rows:
        assert row["p_value"] is not None and row["p_value_adjusted"] >= row["p_value"], row
        assert row["family_size"] == sum(r["kind"] == row["kind"] and r["metric"] == row["metric"] for r in rows)
        if row["value"] < 1.0:  # a precision of exactly 1 has no leave-one-out spread: no interval, not [1, 1]
            assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["ci_low"] < row["ci_high"], row
            assert row["delta_ci_low"] <= row["delta"] <= row["delta_ci_high"], row
    recall = [r for r in rows if r["metric"] == "recall"]
    assert {r["test"] for r in recall} == {"mcnemar_exact"}  # per-sample recall keeps its McNemar test
    level = {r["key"]: r for r in rows if r["kind"] == "level" and r["metric"] == "macro_f1"}
    metric = _row(two_checkpoints, "level2_macro_f1")
    assert (level["2"]["ci_low"], level["2"]["ci_high"]) == pytest.approx((metric["ci_low"], metric["ci_high"]))


def test_routing_curves_and_hierarchy_errors_in_the_comparison(two_checkpoints):
    routing = {r["checkpoint"]: r for r in two_checkpoints.data["routing"]}
    assert set(routing) == {"base", "tuned"}
    curve = routing["tuned"]["risk_coverage"]
    assert curve["coverage"][-1] == 1.0 and curve["precision"][-1] == pytest.approx(0.8)
    assert sum(routing["tuned"]["reliability"]["count"]) == 240
    errors = {(r["checkpoint"], r["level"]): r for r in two_checkpoints.data["hierarchy_errors"]}
    leaf = errors[("tuned", 3)]
    assert leaf["n"] == 240 * 4 / 8  # four of the eight labels reach level 3
    level2 = errors[("tuned", 2)]
    assert level2["errors"] == level2["sibling"] + level2["stopped_above"] + level2["cross_branch"] + level2["invalid"]
    assert level2["ci_low"] <= level2["error_rate"] <= level2["ci_high"]
    assert level2["delta"] < 0 and level2["p_value"] is not None and level2["p_value_adjusted"] >= level2["p_value"]
    assert level2["cross_branch_pairs"] and level2["cross_branch"] > 0
    pair = leaf["sibling_pairs"][0]  # Courier <-> Backorder under Delivery > Late
    assert leaf["sibling"] > 0 and leaf["parent_right_share"] > 0
    assert pair["true"].rsplit(" > ", 1)[0] == pair["predicted"].rsplit(" > ", 1)[0]
    assert pair["count"] > 0 and pair["baseline_count"] >= pair["count"] and 1 <= len(pair["examples"]) <= 5
    hostile = [p for r in two_checkpoints.data["hierarchy_errors"] for p in r["sibling_pairs"] + r["cross_branch_pairs"]
               if "<img src=x" in p["true"] + p["predicted"]]
    assert hostile  # the hostile label reaches the comparison as data ...


def test_gate_and_report_read_coverage_at_precision(two_checkpoints, tmp_path):
    from evalkit.gate import evaluate_policy, load_policy
    from evalkit.report.html import render_html
    from evalkit.report.markdown import render_markdown

    policy = tmp_path / "policy.yaml"
    policy.write_text("gates:\n  - metric: voc_t.coverage_at_precision/0.95\n    min: 0.5\n"
                      "  - metric: voc_t.leaf_ece\n    max: 0.5\n", encoding="utf-8")
    verdict = evaluate_policy(load_policy(policy), two_checkpoints.data)
    assert verdict.status == "pass", verdict
    html = render_html(two_checkpoints.data)
    assert "can route" in html and "at 95% precision" in html and 'id="routing"' in html and 'id="hierarchy"' in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)" in html  # ... and stays inert
    markdown = render_markdown(two_checkpoints.data)
    assert "can route" in markdown and "<img src=x" not in markdown


# ----------------------------------------------------------------------------- the CFPB complaints
@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["constrained", "generate"])
def test_cfpb_confidence_and_routing_on_a_chat_model(mode, shared_data, tiny_chat_model_dir):
    """The real 441-path, 4-level CFPB taxonomy: confidences, routing metrics and the hierarchy rows."""
    from lm_eval.models.huggingface import HFLM

    from evalkit.taskconfig import load_task_file, shipped_tasks_dir

    config = load_task_file(shipped_tasks_dir() / "voc_cfpb.yaml")
    config.options.update(data=str(shared_data / "voc" / "cfpb" / "cfpb_narratives_4level.csv"), mode=mode,
                          limit=3, sample_seed=0, label_options="none", min_comment_tokens=32, max_gen_toks=8,
                          n_resamples=0)
    evaluator = _evaluator(config)
    hflm = HFLM(pretrained=str(tiny_chat_model_dir), device="cpu", batch_size=8, max_length=1024)
    tax = evaluator.data.taxonomy
    # generate: make the tiny model's outputs parse (a label per comment), scored by the model itself
    outputs = {sid: tax.format(tax.labels[i * 37 % len(tax.labels)]) for i, sid in enumerate(evaluator.sample_ids())}
    lm = hflm if mode == "constrained" else LabelsThenScore(hflm, outputs)
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    methods = {r.extra["confidence"]["method"] for r in records}
    assert methods == {"path_probability" if mode == "constrained" else "continuation_logprob"}
    assert all(0 < r.extra["confidence"]["path"] <= 1 for r in records)
    result = evaluator.aggregate(records)
    assert {"leaf_ece", "leaf_brier", "coverage_at_precision/0.95"} <= set(result.metrics)
    assert ("level4_ece" in result.metrics) is (mode == "constrained")
    _assert_hook_reproduces(evaluator, records, result)
