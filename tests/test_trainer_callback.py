"""EvalkitCallback in a real transformers.Trainer run of a tiny chat model: stored results per save, logged
metrics, a trajectory report, and a policy that stops training."""

from __future__ import annotations

import json

import pytest

from tests.helpers.mmlu import write_mmlu

pytestmark = pytest.mark.slow


def _dataset(tokenizer, n=16):
    texts = ["Comment: the parcel came late\nLabel: Delivery > Late delivery > Courier delay",
             "Comment: screen was cracked\nLabel: Product quality > Damaged item > Arrived broken > Screen cracked"]
    rows = []
    for i in range(n):
        ids = tokenizer(texts[i % 2], truncation=True, max_length=32, padding="max_length")["input_ids"]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids})
    return rows


@pytest.fixture(scope="module")
def task_configs(tmp_path_factory):
    from evalkit.api import resolve

    mmlu = write_mmlu(tmp_path_factory.mktemp("cb_mmlu"), {"anatomy": "ABCDA", "astronomy": "DCBAD"})
    return resolve(["voc_sample", "mmlu"], {"voc_sample": {"max_gen_toks": 8, "n_resamples": 50},
                                            "mmlu": {"data": str(mmlu)}})


def _first_voc_ids(n):
    from evalkit.api import resolve
    from evalkit.voc.evaluator import VocEvaluator

    return [ex.sample_id for ex in VocEvaluator(resolve(["voc_sample"])[0]).examples[:n]]


def _train(model_dir, tmp_path, callback, max_steps=4, processing_class=True):
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if callback.tokenizer == "give":  # the test gives the tokenizer to the callback instead of the Trainer
        callback.tokenizer = tokenizer
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = TrainingArguments(output_dir=str(tmp_path / "run-a"), max_steps=max_steps, save_steps=2,
                             per_device_train_batch_size=4, learning_rate=5e-3, logging_steps=1, report_to=[],
                             disable_tqdm=True, use_cpu=True, save_only_model=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(tokenizer),
                      processing_class=tokenizer if processing_class else None, callbacks=[callback])
    trainer.train()
    return trainer


def test_callback_evaluates_each_save_logs_stores_and_reports(tiny_chat_model_dir, tmp_path, task_configs, capfd):
    from evalkit.integrations.transformers import EvalkitCallback
    from evalkit.store import ResultStore

    store = tmp_path / "store.sqlite"
    callback = EvalkitCallback(task_configs, limit=4, out=tmp_path / "report", store=store, batch_size=4)
    trainer = _train(tiny_chat_model_dir, tmp_path, callback)

    assert [r.checkpoint.label for r in callback.results] == ["base", "run-a.step2", "run-a.step4"]
    assert [r.checkpoint.step for r in callback.results] == [0, 2, 4]
    assert all(t.n_samples in (4, 8) for r in callback.results for t in r.tasks.values())  # mmlu: 4 per subject
    # limit=4 is a seeded draw (sample_seed=0), the same samples at every step, not each task's first four
    drawn = [{name: sorted(s.sample_id for s in t.samples) for name, t in r.tasks.items()} for r in callback.results]
    assert drawn[0] == drawn[1] == drawn[2]
    assert len(drawn[0]["voc_sample"]) == 4 and drawn[0]["voc_sample"] != sorted(_first_voc_ids(4))
    assert drawn[0]["mmlu"] == sorted(f"mmlu_{s}/{i}" for s in ("anatomy", "astronomy") for i in (0, 2, 3, 4))
    with ResultStore(store) as opened:
        stored = {(run["checkpoint"]["run"], run["checkpoint"]["step"]) for run in opened.runs()}
    assert {("run-a", 2), ("run-a", 4), ("run-a", 0)} <= stored
    logged = [entry for entry in trainer.state.log_history if "evalkit/mmlu.acc" in entry]
    assert [entry["step"] for entry in logged] == [2, 4]
    assert "evalkit/voc_sample.leaf_macro_f1_delta" in logged[0] and "loss" in trainer.state.log_history[0]
    comparison = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert [(c["label"], c["run"], c["step"]) for c in comparison["checkpoints"]] == [
        ("base", "run-a", 0), ("run-a.step2", "run-a", 2), ("run-a.step4", "run-a", 4)]
    for label in ("run-a.step2", "run-a.step4"):  # every step pairs with the baseline sample by sample
        assert callback.comparison.metric("mmlu", checkpoint=label)["n_paired"] == 8
        assert callback.comparison.metric("voc_sample", checkpoint=label)["n_paired"] == 4
    assert 'id="trajectory"' in (tmp_path / "report" / "report.html").read_text()
    assert [p["step"] for p in callback.comparison.trajectory()["runs"][0]["points"]] == [2, 4]
    assert callback.stop_reason is None and trainer.state.global_step == 4
    # three evaluations, no third-party bars or hints, and the tiny model's prompt fallback said at most once
    err = capfd.readouterr().err
    assert "Running generate_until requests" not in err and "Token indices sequence length" not in err
    assert err.count("falling back to label_options='levels'") <= 1


def test_a_failing_gate_stops_training_and_says_why(tiny_chat_model_dir, tmp_path, task_configs):
    from evalkit.integrations.transformers import EvalkitCallback

    policy = {"gates": [{"metric": "mmlu.acc", "min": 1.01, "name": "perfect general knowledge"}]}
    callback = EvalkitCallback(task_configs, policy=policy, limit=4, out=tmp_path / "report",
                               store=tmp_path / "store.sqlite", batch_size=4, tokenizer="give")
    trainer = _train(tiny_chat_model_dir, tmp_path, callback, processing_class=False)  # the callback's tokenizer
    assert trainer.state.global_step == 2, "training must stop at the first save whose gate fails"
    assert callback.stop_reason.startswith("evalkit gate failed at step 2: perfect general knowledge")
    assert json.loads((tmp_path / "report" / "verdict.json").read_text())["status"] == "fail"


def test_bad_arguments_fail_before_training():
    from evalkit.api import resolve
    from evalkit.errors import UsageError
    from evalkit.integrations.transformers import EvalkitCallback

    with pytest.raises(UsageError, match="every must be 'save' or a positive number"):
        EvalkitCallback(["voc_sample"], every=0)
    with pytest.raises(TypeError, match="unknown option"):
        EvalkitCallback(["voc_sample"], batchsize=2)
    with pytest.raises(UsageError, match="unknown key 'max_gen_tokz'"):
        EvalkitCallback(resolve(["voc_sample"], {"voc_sample": {"max_gen_tokz": 3}}))
    with pytest.raises(UsageError, match="limit must be a positive integer"):
        EvalkitCallback(["voc_sample"], limit=0)


def test_a_missing_tokenizer_is_refused_when_training_begins(tiny_chat_model_dir, tmp_path, task_configs):
    from evalkit.errors import UsageError
    from evalkit.integrations.transformers import EvalkitCallback

    callback = EvalkitCallback(task_configs, store=tmp_path / "store.sqlite")
    with pytest.raises(UsageError, match=r"needs the tokenizer: pass EvalkitCallback\(\.\.\., tokenizer=tokenizer\)"):
        _train(tiny_chat_model_dir, tmp_path, callback, processing_class=False)
    assert callback.results == []  # nothing evaluated, no step trained


def test_works_with_trl_sft_trainer(tiny_chat_model_dir, tmp_path, task_configs):
    """TRL's SFTTrainer is a Trainer: the callback evaluates its saves and logs through it."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from evalkit.integrations.transformers import EvalkitCallback

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)
    data = Dataset.from_list([{"text": "Comment: the parcel came late\nLabel: Delivery > Late delivery"}] * 8)
    callback = EvalkitCallback(task_configs, limit=2, out=tmp_path / "report", store=tmp_path / "store.sqlite",
                               batch_size=4)
    args = SFTConfig(output_dir=str(tmp_path / "sft-run"), max_steps=2, save_steps=2, per_device_train_batch_size=4,
                     report_to=[], use_cpu=True, disable_tqdm=True, max_length=32, save_only_model=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[callback])
    trainer.train()
    assert [r.checkpoint.label for r in callback.results] == ["base", "sft-run.step2"]
    assert [e["step"] for e in trainer.state.log_history if "evalkit/mmlu.acc" in e] == [2]


def test_a_sharded_model_is_refused_when_training_begins(task_configs):
    """FSDP / ZeRO-3: the main process does not hold the whole model, so evaluating it alone would deadlock."""
    from types import SimpleNamespace

    from evalkit.errors import UsageError
    from evalkit.integrations.transformers import EvalkitCallback

    callback = EvalkitCallback(task_configs)
    with pytest.raises(UsageError, match="with FSDP or DeepSpeed ZeRO-3 the weights are sharded"):
        callback.on_train_begin(SimpleNamespace(fsdp="full_shard"), SimpleNamespace(is_world_process_zero=True), None)
