"""The voc evaluator end to end: options, generate + parse, constrained decoding, resume, CLI, CFPB data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.evaluators.base import get_evaluator
from evalkit.records import SampleRecord
from evalkit.taskconfig import TaskConfig, load_task_file, shipped_tasks_dir

LABELS = ["Delivery > Late > Courier", "Delivery > Late > Backorder", "Delivery > Lost", "Billing > Other",
          "Billing > Charges > Twice", "Mortgage > FHA", "Mortgage > FHA > Escrow"]


def _task(tmp_path: Path, n: int = 10, **options) -> TaskConfig:
    """A small VOC task in tmp_path: n test rows cycling through LABELS, 14 train rows."""
    lines = ["id,text,label"] + [f"t{i},comment number {i},{LABELS[i % len(LABELS)]}" for i in range(n)]
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    train = ["id,text,label"] + [f"r{i},train comment {i},{LABELS[i % len(LABELS)]}" for i in range(14)]
    (tmp_path / "train.csv").write_text("\n".join(train) + "\n", encoding="utf-8")
    base = {"data": "test.csv", "train_data": "train.csv", "label_field": "label", "id_field": "id",
            "n_resamples": 20, "batch_docs": 4}
    return TaskConfig(name="voc_t", evaluator="voc", options={**base, **options}, source="voc_t.yaml", base_dir=tmp_path)


def _evaluator(config: TaskConfig):
    evaluator = get_evaluator("voc")(config)
    evaluator.check_ready()
    return evaluator


class ScriptedLM:
    """Answers generate_until from a dict sample_id -> output and records what it was asked."""

    def __init__(self, outputs: dict[str, str]):
        self.outputs, self.requests = outputs, []

    def generate_until(self, requests):
        self.requests.extend(requests)
        return [self.outputs[r.evalkit_sample_id] for r in requests]


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=16, max_length=512)


# ----------------------------------------------------------------------------- options

@pytest.mark.parametrize("change, pattern", [
    ({"mode": "beam"}, r"key 'mode' must be one of 'generate', 'constrained'; got 'beam'"),
    ({"label_options": "all"}, r"key 'label_options' must be one of"),
    ({"label_fields": ["a", "b"]}, r"exactly one of 'label_field'"),
    ({"batch_docs": 0}, r"key 'batch_docs' must be an integer >= 1"),
    ({"parse_cutoff": 1.5}, r"key 'parse_cutoff' must be in \(0, 1\]"),
    ({"colour": 1}, r"unknown key 'colour'"),
])
def test_bad_options(tmp_path, change, pattern):
    with pytest.raises(UsageError, match=pattern):
        get_evaluator("voc")(_task(tmp_path, **change))


def test_needs_follow_the_mode_and_fewshot_needs_train(tmp_path):
    assert get_evaluator("voc")(_task(tmp_path)).needs == {"generate_until"}
    assert get_evaluator("voc")(_task(tmp_path, mode="constrained")).needs == {"loglikelihood"}
    config = _task(tmp_path, num_fewshot=2)
    del config.options["train_data"]
    with pytest.raises(UsageError, match="num_fewshot=2 needs train rows"):
        _evaluator(config)


def test_config_hash_tracks_data_and_template_not_batching(tmp_path):
    base = _evaluator(_task(tmp_path)).config_hash()
    assert _evaluator(_task(tmp_path, batch_docs=1)).config_hash() == base
    assert _evaluator(_task(tmp_path, prompt_template="{{ text }} =>")).config_hash() != base
    assert _evaluator(_task(tmp_path, limit=3)).config_hash() != base
    config = _task(tmp_path)
    (tmp_path / "test.csv").write_text((tmp_path / "test.csv").read_text() + "t99,x,Delivery > Lost\n")
    assert _evaluator(config).config_hash() != base


def test_missing_data_file_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match=r"data file .*nope.csv does not exist.*overrides='voc_t.data=PATH'"):
        _evaluator(_task(tmp_path, data="nope.csv"))


# ----------------------------------------------------------------------------- generate

def test_generate_parses_counts_invalid_and_tags_requests(tmp_path):
    evaluator = _evaluator(_task(tmp_path, n=7))
    outputs = {f"t{i}": " " + label.lower().replace(" > ", "/") + "\nmore" for i, label in enumerate(LABELS)}
    outputs["t1"] = " no idea"                       # invalid
    outputs["t2"] = " Billing > Other"               # valid but wrong
    lm = ScriptedLM(outputs)
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    assert [r.sample_id for r in records] == [f"t{i}" for i in range(7)]
    assert {r.task_name for r in lm.requests} == {"voc_t"}
    assert all(r.arguments[1]["until"] == ["\n"] and r.arguments[0].endswith("Label:") for r in lm.requests)
    invalid = records[1]
    assert invalid.prediction is None and invalid.correct is False and invalid.extra["invalid"] is True
    assert invalid.extra["raw_output"] == " no idea" and invalid.extra["parse_rule"] == "invalid"
    assert records[0].correct and records[0].extra["parse_rule"] == "normalized"
    assert records[2].prediction == "Billing > Other" and not records[2].correct
    assert records[0].group == records[0].target == LABELS[0] and records[0].input == "comment number 0"
    result = evaluator.aggregate(records)
    assert result.axis == "domain" and result.primary_metric == "leaf_macro_f1"
    assert result.metrics["path_accuracy"] == pytest.approx(5 / 7)
    assert result.metrics["invalid_rate"] == pytest.approx(1 / 7)
    assert result.settings["n_invalid"] == 1 and result.settings["mode"] == "generate"
    assert result.higher_is_better["invalid_rate"] is False and result.higher_is_better["leaf_macro_f1"] is True
    assert {"level", "class", "frequency"} <= set(result.breakdowns)
    bands = result.settings["frequency_bands"]  # what the comparison's resamples of a band average over
    assert sorted(c for band in bands.values() for c in band) == sorted(set(LABELS[:7]))
    assert {k: len(v) for k, v in bands.items()} == {k: v["n_classes"] for k, v in result.breakdowns["frequency"].items()}
    json.dumps(result.to_dict())  # records and result stay JSON-serialisable


def test_resume_after_a_failed_save(tmp_path):
    evaluator = _evaluator(_task(tmp_path, n=10, batch_docs=4))
    outputs = {f"t{i}": LABELS[i % len(LABELS)] for i in range(10)}
    saved: list[SampleRecord] = []

    def failing_save(batch):
        if saved:
            raise RuntimeError("disk full")
        saved.extend(batch)

    with pytest.raises(RuntimeError, match="disk full"):
        evaluator.run(ScriptedLM(outputs), done={}, save=failing_save)
    assert len(saved) == 4
    lm = ScriptedLM(outputs)
    more: list[SampleRecord] = []
    records = evaluator.run(lm, done={r.sample_id: r for r in saved}, save=more.extend)
    assert sorted(r.evalkit_sample_id for r in lm.requests) == sorted(f"t{i}" for i in range(4, 10))
    assert [r.sample_id for r in records] == [f"t{i}" for i in range(10)] and len(more) == 6
    assert all(r.correct for r in records)


def test_generate_end_to_end_on_tiny_model(tmp_path, tiny_lm):
    evaluator = _evaluator(_task(tmp_path, n=6, max_gen_toks=8, label_options="paths", num_fewshot=1))
    records = evaluator.run(tiny_lm, done={}, save=lambda batch: None)
    assert len(records) == 6
    result = evaluator.aggregate(records)
    n_invalid = sum(r.prediction is None for r in records)
    assert result.settings["n_invalid"] == n_invalid
    assert result.metrics["invalid_rate"] == pytest.approx(n_invalid / 6)
    assert all(isinstance(r.extra["raw_output"], str) for r in records)
    assert result.settings["tokens_counted_by"] == ["tokenizer"]


# ----------------------------------------------------------------------------- constrained

def test_constrained_always_yields_a_valid_label_path(tmp_path, tiny_lm):
    evaluator = _evaluator(_task(tmp_path, n=14, mode="constrained", label_options="levels"))
    records = evaluator.run(tiny_lm, done={}, save=lambda batch: None)
    tax = evaluator.data.taxonomy
    assert len(records) == 14
    for record in records:
        assert tax.is_label(tuple(record.extra["pred_path"])), record.prediction
        assert record.prediction == tax.format(record.extra["pred_path"]) and not record.extra["invalid"]
        assert len(record.extra["level_logprobs"]) == len(record.extra["pred_path"]) + (
            1 if record.extra["pred_path"] == ["Mortgage", "FHA"] else 0)
    result = evaluator.aggregate(records)
    assert result.metrics["invalid_rate"] == 0.0 and result.settings["parse_rules"] == {"constrained": 14}


class RiggedLoglikelihoodLM:
    """Prefers continuations containing any of ``liked``; counts loglikelihood calls."""

    def __init__(self, liked: tuple[str, ...]):
        self.liked, self.calls = liked, []

    def loglikelihood(self, requests):
        self.calls.append(len(requests))
        return [(0.0 if any(w in r.arguments[1] for w in self.liked) else -5.0, False) for r in requests]


def test_constrained_walks_down_and_stops_at_labelled_inner_nodes(tmp_path):
    evaluator = _evaluator(_task(tmp_path, n=4, mode="constrained", batch_docs=10))
    lm = RiggedLoglikelihoodLM(("Mortgage", "FHA", "\n"))
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    assert {r.prediction for r in records} == {"Mortgage > FHA"}  # stop beats the child "Escrow"
    assert lm.calls == [4 * 3, 4 * 1, 4 * 2]  # one call per level for the whole batch: 3 roots, 1 kid, child+stop
    assert records[0].extra["level_margins"][1] is None and records[0].extra["level_margins"][2] == 5.0
    lm = RiggedLoglikelihoodLM(("Delivery", "Late", "Courier"))
    assert {r.prediction for r in _evaluator(_task(tmp_path, n=2, mode="constrained")).run(
        lm, done={}, save=lambda b: None)} == {"Delivery > Late > Courier"}


# ----------------------------------------------------------------------------- chat template

def test_chat_template_is_used_when_the_model_has_one(tmp_path, tiny_chat_model_dir):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(tiny_chat_model_dir), device="cpu", batch_size=8, max_length=512)
    evaluator = _evaluator(_task(tmp_path, n=2, max_gen_toks=4))
    plan = evaluator._plan(lm)
    assert plan.chat is True
    prompt, _, _ = plan.build("hello", [])
    assert prompt.startswith("<|user|>\n") and prompt.endswith("<|assistant|>\n")
    assert evaluator.__class__(_task(tmp_path, chat_template=False))._plan(lm).chat is False


# ----------------------------------------------------------------------------- shipped tasks

def test_voc_sample_task_loads():
    evaluator = _evaluator(load_task_file(shipped_tasks_dir() / "voc_sample.yaml"))
    assert len(evaluator.sample_ids()) == 300 and len(evaluator.data.train) == 1500
    assert len(evaluator.data.taxonomy.labels) == 60 and evaluator.data.taxonomy.depth == 4


@pytest.mark.shared_data
def test_voc_cfpb_task_loads(shared_data):
    config = load_task_file(shipped_tasks_dir() / "voc_cfpb.yaml")
    config.options["data"] = str(shared_data / "voc" / "cfpb" / "cfpb_narratives_4level.csv")
    evaluator = _evaluator(config)
    tax = evaluator.data.taxonomy
    assert len(tax.labels) == 441 and tax.depth == 4
    assert len(evaluator.sample_ids()) == 1139 and len(evaluator.data.train) == 4786
    assert sum(evaluator.data.train_counts().values()) == 4786
    assert ("Mortgage", "Conventional home mortgage", "Trouble during payment process") in tax.labels


@pytest.mark.slow
def test_cli_eval_voc_sample(tiny_model_dir, store_path, tmp_path):
    """In process (a fresh interpreter costs ~9 CPU s of imports; test_compare_e2e runs `python -m evalkit`)."""
    from tests.helpers.cli import run_cli

    code, stdout, stderr = run_cli(["eval", str(tiny_model_dir), "--tasks", "voc_sample", "--set", "voc_sample.limit=20",
                                    "--set", "voc_sample.max_gen_toks=8", "--set", "voc_sample.n_resamples=50",
                                    "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0, stderr[-2000:]
    assert "voc_sample  n=20" in stdout and "leaf_macro_f1" in stdout
    result = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["voc_sample"]
    assert result["n_samples"] == 20 and len(result["samples"]) == 20 and result["axis"] == "domain"
    assert result["settings"]["n_invalid"] == sum(s["prediction"] is None for s in result["samples"])


def test_resample_metrics_hook_matches_aggregate(tmp_path):
    import numpy as np

    evaluator = _evaluator(_task(tmp_path, n=7))
    outputs = {f"t{i}": LABELS[(i + (i % 3 == 0)) % len(LABELS)] for i in range(7)}
    outputs["t4"] = "???"
    records = evaluator.run(ScriptedLM(outputs), done={}, save=lambda batch: None)
    full = evaluator.aggregate(records).metrics
    indices = np.vstack([np.arange(7), np.zeros(7, dtype=int)])
    out = type(evaluator).resample_metrics(records, ["leaf_macro_f1", "path_accuracy", "invalid_rate"], indices)
    assert out["leaf_macro_f1"][0] == pytest.approx(full["leaf_macro_f1"])
    assert out["path_accuracy"].tolist() == pytest.approx([full["path_accuracy"], 0.0])  # t0 is wrong
    assert out["invalid_rate"][0] == pytest.approx(1 / 7)


class ChatScriptedLM(ScriptedLM):
    def chat_template(self, chat_template=False):
        return "{{ messages }}"

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return f"<u>{chat_history[0]['content']}</u><a>"


def test_chat_mode_stops_at_eos_and_skips_reasoning(tmp_path):
    evaluator = _evaluator(_task(tmp_path, n=2))
    lm = ChatScriptedLM({"t0": "<think>\nIt mentions a courier...\n</think>\n\nDelivery > Late > Courier", "t1": "\n\nno"})
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    assert all(r.arguments[1]["until"] == [] and r.arguments[0].endswith("Label:</u><a>") for r in lm.requests)
    assert records[0].correct and records[0].extra["chat_template"] is True
    assert records[1].prediction is None
