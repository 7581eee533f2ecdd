"""`evalkit card DIR --from comparison.json`: the model card's model-index parses back to evalkit's results."""

from __future__ import annotations

import pytest

import evalkit
from evalkit.exports.hub import card_results
from tests.helpers.cli import run_cli

hub = pytest.importorskip("huggingface_hub")


def _comparison_json(folder) -> str:
    return str(folder / "comparison.json")


def test_card_round_trip_and_update_keeps_other_results(gated_comparison_dir, tmp_path):
    comparison = evalkit.read_comparison(gated_comparison_dir)
    checkpoint = tmp_path / "tuned"
    checkpoint.mkdir()
    other = hub.EvalResult(task_type="text-generation", dataset_type="gsm8k", dataset_name="GSM8K", metric_type="acc",
                           metric_value=0.41)
    card = hub.ModelCard.from_template(hub.ModelCardData(model_name="tuned-7b", license="apache-2.0",
                                                         eval_results=[other]), model_summary="Our tuned model.")
    (checkpoint / "README.md").write_text(str(card))
    code, out, err = run_cli(["card", str(checkpoint), "--from", _comparison_json(gated_comparison_dir),
                              "--label", "tuned"])
    assert code == 0, err
    assert out.strip() == f"wrote {checkpoint / 'README.md'}"
    loaded = hub.ModelCard.load(checkpoint / "README.md")
    expected = card_results(comparison.data, "tuned")
    assert loaded.data.eval_results == [other] + expected  # parses back to the same results, the other one kept
    rows = [r for r in comparison.data["metrics"] if r["checkpoint"] == "tuned"]
    assert [(r.task_name, r.metric_type, r.metric_value) for r in expected] == [
        (row["task"], row["metric"], row["value"]) for row in rows]  # exactly evalkit's numbers
    assert loaded.data.license == "apache-2.0" and "Our tuned model." in loaded.text
    entry = loaded.data.evalkit
    assert entry["verdict"] == "fail" and entry["baseline"] == "base"
    tuned_acc = comparison.metric("mmlu", checkpoint="tuned")
    assert entry["metrics"]["mmlu.acc"]["p_value"] == tuned_acc["p_value"]
    assert entry["metrics"]["mmlu.acc"]["ci_low"] == tuned_acc["ci_low"]
    # Again (e.g. after a new comparison): evalkit's results are replaced, not repeated.
    assert comparison.to_model_card(checkpoint, label="tuned") == checkpoint / "README.md"
    assert hub.ModelCard.load(checkpoint / "README.md").data.eval_results == [other] + expected


def test_card_finds_the_checkpoint_by_its_spec_and_refuses_an_unknown_label(gated_comparison_dir, tmp_path):
    comparison = evalkit.read_comparison(gated_comparison_dir).to_dict()
    folder = tmp_path / "models" / "mix"
    folder.mkdir(parents=True)
    for checkpoint in comparison["checkpoints"]:
        checkpoint["spec"] = str(tmp_path / "models" / checkpoint["label"])
    evalkit.Comparison(comparison).write_report(tmp_path / "c")
    assert run_cli(["card", str(folder), "--from", str(tmp_path / "c" / "comparison.json")])[0] == 0
    assert hub.ModelCard.load(folder / "README.md").data.evalkit["checkpoint"] == "mix"
    code, _, err = run_cli(["card", str(folder), "--from", str(tmp_path / "c" / "comparison.json"), "--label", "nope"])
    assert code == 2 and "--label" in err and "nope" in err and "base, tuned, mix" in err
    code, _, err = run_cli(["card", str(tmp_path / "elsewhere"), "--from", str(tmp_path / "c" / "comparison.json")])
    assert code == 2 and "is not a folder" in err
