"""Rows identical by construction (issue 23, item 5): declared by the voc evaluator, computed and shown once.

In constrained mode over a taxonomy whose labels all have the full depth, hierarchical precision = recall
= F1 (and the LCA scores), leaf micro F1 = path accuracy: the evaluator declares them in
``TaskResult.same_as``, the comparison tests each representative once and keeps the aliases' rows with
``alias_of`` (same numbers, no marker), the reports show them as a note, gates on an alias still decide.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.evaluators.base import get_evaluator
from evalkit.records import CheckpointInfo, EvalResult
from evalkit.taskconfig import TaskConfig

LABELS = ["Delivery > Late > Courier", "Delivery > Late > Backorder", "Delivery > Lost > Parcel",
          "Billing > Charges > Twice", "Billing > Charges > Wrong", "Mortgage > FHA > Escrow"]
N = 12
EXPECTED = {"hier_recall": "hier_precision", "hier_f1": "hier_precision", "lca_recall": "lca_precision",
            "lca_f1": "lca_precision", "leaf_micro_f1": "path_accuracy", "level3_micro_f1": "path_accuracy",
            "level3_macro_f1": "leaf_macro_f1"}


def _task(tmp_path: Path, labels=LABELS, **options) -> TaskConfig:
    lines = ["id,text,label"] + [f"t{i},comment number {i},{labels[i % len(labels)]}" for i in range(N)]
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = {"data": "test.csv", "label_field": "label", "id_field": "id", "n_resamples": 0, "batch_docs": 16,
            "num_fewshot": 0, "min_comment_tokens": 8}
    return TaskConfig(name="voc_t", evaluator="voc", options={**base, **options}, source="voc_t.yaml", base_dir=tmp_path)


def _result(label: str, task_result) -> EvalResult:
    info = CheckpointInfo(label=label, spec=f"models/{label}", kind="hf", fingerprint=f"fp-{label}")
    return EvalResult(checkpoint=info, versions={}, tasks={"voc_t": task_result}, created="2026-12-07T00:00:00+00:00")


def _evaluate(config: TaskConfig, lm):
    evaluator = get_evaluator("voc")(config)
    evaluator.check_ready()
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    return evaluator, records, evaluator.aggregate(records)


class ScriptedLM:
    """Answers generate_until from a dict sample_id -> output."""

    def __init__(self, outputs: dict[str, str]):
        self.outputs = outputs

    def generate_until(self, requests):
        return [self.outputs[r.evalkit_sample_id] for r in requests]


class PathLM:
    """Constrained mode without a model: per sample, prefers the parts of one chosen label at every level."""

    def __init__(self, choose):
        self.choose = choose  # sample index -> label

    def loglikelihood(self, requests):
        liked = [self.choose(int(r.evalkit_sample_id[1:])).split(" > ") for r in requests]
        return [(0.0 if any(part in r.arguments[1] for part in parts) else -5.0, False) for r, parts in zip(requests, liked)]


@pytest.fixture(scope="module")
def constrained_comparison(tmp_path_factory):
    """Two checkpoints in constrained mode on the same full-depth task, right on different samples."""
    tmp_path = tmp_path_factory.mktemp("voc_identities")
    choices = {"base": lambda i: LABELS[i % 6] if i % 4 == 0 else LABELS[(i + 1) % 6],
               "tuned": lambda i: LABELS[i % 6] if i % 2 == 0 else LABELS[(i + 3) % 6]}
    outcomes = {label: _evaluate(_task(tmp_path, mode="constrained"), PathLM(choose)) for label, choose in choices.items()}
    from evalkit import api

    comparison = api.compare(*[_result(label, out[2]) for label, out in outcomes.items()], n_resamples=200)
    return outcomes, comparison


def _assert_identities_hold(evaluator, records, result):
    from evalkit.metrics.hierarchical import (hierarchical_precision_recall_fscore, leaf_f1_score, level_f1_score,
                                              lca_precision_recall_fscore, path_accuracy_score)

    assert result.same_as == EXPECTED
    tax = evaluator.data.taxonomy
    y_true = [r.target for r in records]
    y_pred = [r.prediction for r in records]
    assert all(p is not None and len(tax.parse(p)) == tax.depth for p in y_pred)
    # the representative's value is what each alias's own metric function computes on the same records
    hier, lca = (f(y_true, y_pred, taxonomy=tax) for f in (hierarchical_precision_recall_fscore,
                                                              lca_precision_recall_fscore))
    own = {"hier_recall": hier[1], "hier_f1": hier[2], "lca_recall": lca[1], "lca_f1": lca[2],
           "leaf_micro_f1": leaf_f1_score(y_true, y_pred, average="micro", taxonomy=tax),
           "level3_micro_f1": level_f1_score(y_true, y_pred, level=3, average="micro", taxonomy=tax),
           "level3_macro_f1": level_f1_score(y_true, y_pred, level=3, average="macro", taxonomy=tax)}
    for alias, representative in EXPECTED.items():
        assert result.metrics[representative] == pytest.approx(own[alias], abs=1e-12), alias
    assert result.metrics["path_accuracy"] == pytest.approx(path_accuracy_score(y_true, y_pred, taxonomy=tax))


def test_constrained_mode_declares_the_identities_and_they_hold(constrained_comparison):
    outcomes, _ = constrained_comparison
    for evaluator, records, result in outcomes.values():
        _assert_identities_hold(evaluator, records, result)
    assert outcomes["base"][2].metrics["path_accuracy"] != outcomes["tuned"][2].metrics["path_accuracy"]


@pytest.mark.slow
def test_a_tiny_model_in_constrained_mode_keeps_the_declaration_true(tmp_path, tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=16, max_length=512)
    _assert_identities_hold(*_evaluate(_task(tmp_path, mode="constrained", chat_template=False), lm))


def test_constrained_comparison_tests_and_shows_each_identity_once(constrained_comparison, tmp_path):
    _, comparison = constrained_comparison
    rows = {(r["metric"], r["checkpoint"]): r for r in comparison.data["metrics"]}
    tuned = {m: r for (m, cp), r in rows.items() if cp == "tuned"}
    for alias, representative in EXPECTED.items():
        row, rep = tuned[alias], tuned[representative]
        assert row["alias_of"] == representative and row["family"] == "alias" and row["significant"] is None
        assert alias in rep["aliases"] and not rep.get("alias_of")
        for key in ("value", "baseline_value", "delta", "delta_ci_low", "delta_ci_high", "p_value", "test"):
            assert row[key] == rep[key], (alias, key)
    assert tuned["hier_precision"]["aliases"] == ["hier_f1", "hier_recall"]
    assert tuned["path_accuracy"]["test"].startswith("mcnemar")  # the representative's own test, run once
    written = comparison.write(tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    assert written and "hier\\_precision (= hier\\_f1, hier\\_recall)" in markdown
    assert "| hier\\_f1 |" not in markdown and "| leaf\\_micro\\_f1 |" not in markdown
    assert "= hier_f1, hier_recall" in html and "<td>hier_f1" not in html
    assert {r["metric"] for r in data["metrics"] if r.get("alias_of")} == set(EXPECTED)


def test_a_gate_on_an_alias_decides_on_its_representative(constrained_comparison, tmp_path):
    from evalkit.gate import load_policy

    _, comparison = constrained_comparison
    verdicts = {}
    for metric in ("hier_f1", "hier_precision", "leaf_micro_f1", "path_accuracy"):
        policy = tmp_path / f"{metric}.yaml"
        policy.write_text(f"gates: [{{metric: voc_t.{metric}, max_drop: 0.3, significance: 0.05}}]\n", encoding="utf-8")
        check = comparison.gate(load_policy(policy)).checks[0]
        verdicts[metric] = (check.status, check.bound_low, check.bound_high)
        assert check.status in ("pass", "fail", "inconclusive", "warn")
        assert ("decided on" in check.message) is (metric in ("hier_f1", "leaf_micro_f1"))
    assert verdicts["hier_f1"] == verdicts["hier_precision"]
    assert verdicts["leaf_micro_f1"] == verdicts["path_accuracy"]


def test_generate_mode_keeps_the_separate_rows(tmp_path):
    """Generate mode may answer invalid or partial paths, which break the identities: nothing is declared."""
    outputs = {f"t{i}": (LABELS[i % 6] if i % 3 else "Delivery > Late" if i % 2 else "no idea") for i in range(N)}
    config = _task(tmp_path, mode="generate", score_confidence=False)
    results = [_evaluate(config, ScriptedLM(outputs))[2],
               _evaluate(config, ScriptedLM({k: LABELS[0] for k in outputs}))[2]]
    assert [r.same_as for r in results] == [{}, {}]
    assert results[0].metrics["hier_precision"] != results[0].metrics["hier_recall"]  # the identity does break
    from evalkit import api

    comparison = api.compare(_result("base", results[0]), _result("tuned", results[1]), n_resamples=50)
    tuned = {r["metric"]: r for r in comparison.data["metrics"] if r["checkpoint"] == "tuned"}
    assert not any(r.get("alias_of") or r.get("aliases") for r in tuned.values())
    assert tuned["hier_f1"]["test"] and tuned["hier_recall"]["test"]  # each tested on its own


def test_a_declaration_the_values_contradict_fails_loudly(tmp_path, monkeypatch):
    """If the declaration would lie, aggregate raises (an unexpected exception: exit 3, a bug) rather than hide a row."""
    import evalkit.voc.aggregation as voc

    monkeypatch.setattr(voc, "identical_metrics", lambda depth: {"invalid_rate": "path_accuracy"})
    evaluator = get_evaluator("voc")(_task(tmp_path, mode="constrained"))
    evaluator.check_ready()
    records = evaluator.run(ScriptedLoglikelihood(), done={}, save=lambda batch: None)
    with pytest.raises(AssertionError, match="evalkit bug: voc declared 'invalid_rate' identical to 'path_accuracy'"):
        evaluator.aggregate(records)
    monkeypatch.undo()
    assert evaluator.aggregate(records).same_as == EXPECTED  # the real declaration holds on the same records


class ScriptedLoglikelihood:
    """Prefers the first child at every level (no model needed)."""

    def loglikelihood(self, requests):
        return [(-float(len(r.arguments[1])), False) for r in requests]
