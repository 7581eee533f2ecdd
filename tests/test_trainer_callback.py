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
    logged = [entry for entry in trainer.state.log_history if "eval_evalkit/mmlu.acc" in entry]
    assert [entry["step"] for entry in logged] == [0, 2, 4]  # the baseline is the step-0 point
    assert "eval_evalkit/voc_sample.leaf_macro_f1_delta" in logged[1] and "loss" in trainer.state.log_history[1]
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
    assert [e["step"] for e in trainer.state.log_history if "eval_evalkit/mmlu.acc" in e] == [0, 2]


def test_a_sharded_model_is_refused_when_training_begins(task_configs):
    """FSDP / ZeRO-3: the main process does not hold the whole model, so evaluating it alone would deadlock."""
    from types import SimpleNamespace

    from evalkit.errors import UsageError
    from evalkit.integrations.transformers import EvalkitCallback

    callback = EvalkitCallback(task_configs)
    with pytest.raises(UsageError, match="with FSDP or DeepSpeed ZeRO-3 the weights are sharded"):
        callback.on_train_begin(SimpleNamespace(fsdp="full_shard"), SimpleNamespace(is_world_process_zero=True), None)


# ------------------------------------------------------------------------------ a long run (issue 30)

def _train_long(model_dir, tmp_path, callback, *, max_steps, run="run-long"):
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = TrainingArguments(output_dir=str(tmp_path / run), max_steps=max_steps, save_steps=1,
                             per_device_train_batch_size=4, learning_rate=5e-3, logging_steps=1, report_to=[],
                             disable_tqdm=True, use_cpu=True, save_only_model=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(tokenizer), processing_class=tokenizer,
                      callbacks=[callback])
    trainer.train()
    return trainer


def test_each_save_costs_the_same_and_compare_reuses_the_callbacks_results(tiny_chat_model_dir, tmp_path,
                                                                           task_configs, monkeypatch):
    """Five saves: each compares only its own step with the baseline (one pair, whatever came before); the
    report is rewritten at the 1st, 3rd and 5th save and not again at the end; the logged scalars follow the
    Trainer's eval prefix with the baseline at step 0; every save's trainer_state.json holds its own
    evaluation; and a later compare of the base folder (the model training started from, unchanged) and the
    saved folders evaluates nothing."""
    from evalkit import api
    from evalkit.comparison import Comparison
    from evalkit.integrations.transformers import EvalkitCallback

    compared, written = [], []
    real_compare, real_write = api.compare, Comparison.write
    monkeypatch.setattr(api, "compare", lambda *r, **k: compared.append(len(r)) or real_compare(*r, **k))
    monkeypatch.setattr(Comparison, "write", lambda self, out: written.append(len(self.labels)) or real_write(self, out))
    policy = {"gates": [{"metric": "mmlu.acc", "max_drop": 1.0}]}  # never fails: logged, never stops
    store = tmp_path / "store.sqlite"
    # five saves show what eleven did (bench/callback/ has the cost over 30): a pair per save, the report every 2nd
    callback = EvalkitCallback(task_configs, limit=4, policy=policy, report_every=2, out=tmp_path / "report",
                               store=store, batch_size=4)
    trainer = _train_long(tiny_chat_model_dir, tmp_path, callback, max_steps=5)

    # one pairwise comparison per save; every step so far only for the report, after the 1st, 3rd and 5th
    assert compared == [2, 2] + [2] + [2, 4] + [2] + [2, 6], compared
    assert written == [2, 4, 6], written  # nothing left to write when training ends
    assert callback.comparison.labels[-1] == "run-long.step5"

    logged = [e for e in trainer.state.log_history if "eval_evalkit/mmlu.acc" in e]
    assert [e["step"] for e in logged] == list(range(6))
    for name in ("eval_evalkit/mmlu.acc_ci_low", "eval_evalkit/mmlu.acc_ci_high", "eval_evalkit/voc_sample.leaf_macro_f1"):
        assert all(name in e for e in logged), name
    assert all(e["eval_evalkit/mmlu.acc_ci_low"] <= e["eval_evalkit/mmlu.acc"] <= e["eval_evalkit/mmlu.acc_ci_high"]
               for e in logged)
    steps = logged[1:]
    assert all(e["eval_evalkit/gate_passed"] == 1.0 and e["eval_evalkit/gate_failures"] == 0.0 for e in steps)
    assert all("eval_evalkit/mmlu.acc_delta" in e and "eval_evalkit/mmlu.acc_delta_ci_low" in e for e in steps)
    for step in (1, 5):  # each saved trainer_state.json holds the evaluation of its own step
        state = json.loads((tmp_path / "run-long" / f"checkpoint-{step}" / "trainer_state.json").read_text())
        assert [e["step"] for e in state["log_history"] if "eval_evalkit/mmlu.acc" in e][-1] == step

    # evalkit compare of the saved folders: answered from the store the callback filled, no model loaded
    from evalkit.checkpoints import kinds as loaders
    from tests.helpers.cli import run_cli

    monkeypatch.setattr(loaders, "load_lm", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")))
    folders = [f"base={tiny_chat_model_dir}"] + [str(tmp_path / "run-long" / f"checkpoint-{step}") for step in (1, 3, 5)]
    overrides = ["--set", "voc_sample.max_gen_toks=8", "--set", "voc_sample.n_resamples=50",
                 "--set", f"mmlu.data={task_configs[1].options['data']}"]
    code, out, err = run_cli(["--store", str(store), "compare", *folders, "--tasks", "voc_sample,mmlu",
                              "--limit", "4", "--batch-size", "4", "--out", str(tmp_path / "again"), *overrides])
    assert code == 0, err
    assert err.count("answered from the store") == 4, err  # the base and three saves; nothing evaluated
    again = json.loads((tmp_path / "again" / "comparison.json").read_text())
    assert [c["label"] for c in again["checkpoints"]] == ["base", "run-long.step1", "run-long.step3", "run-long.step5"]
    assert all(t["answered_from_store"] for c in again["checkpoints"] for t in c["timing"].values())
    for step in (3, 5):
        label = f"run-long.step{step}"
        for task, metric in (("mmlu", "acc"), ("voc_sample", "leaf_macro_f1")):
            mine = callback.comparison.metric(task, metric, checkpoint=label)
            theirs = next(r for r in again["metrics"] if (r["checkpoint"], r["task"], r["metric"]) == (label, task, metric))
            assert theirs["value"] == mine["value"]


def test_a_gate_stop_is_recorded_in_the_report_with_the_real_path(tiny_chat_model_dir, tmp_path, task_configs,
                                                                   caplog):
    from evalkit.integrations.transformers import EvalkitCallback

    policy = {"gates": [{"metric": "mmlu.acc", "min": 1.01, "name": "perfect general knowledge"}]}
    callback = EvalkitCallback(task_configs, policy=policy, limit=4, store=tmp_path / "store.sqlite", batch_size=4)
    trainer = _train_long(tiny_chat_model_dir, tmp_path, callback, max_steps=5, run="stopped")
    report = tmp_path / "stopped" / "evalkit"
    assert trainer.state.global_step == 1 and callback.report_dir == report
    assert str(report) in caplog.text and "OUTPUT_DIR" not in caplog.text
    comparison = json.loads((report / "comparison.json").read_text())
    assert comparison["training"]["stopped"]["step"] == 1
    assert comparison["training"]["stopped"]["gates"] == ["perfect general knowledge"]
    html = (report / "report.html").read_text()
    assert "Training stopped" in html and "perfect general knowledge" in html


def test_report_every_must_be_a_positive_count():
    from evalkit.errors import UsageError
    from evalkit.integrations.transformers import EvalkitCallback

    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(UsageError, match="report_every must be a positive number"):
            EvalkitCallback(["voc_sample"], report_every=bad)


def test_a_base_changed_after_loading_is_not_stored_as_its_folder(tiny_chat_model_dir):
    """Only a model exactly as its folder holds it counts as that folder: a cast or an edited weight does not."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalkit.integrations._model_evaluations import _unchanged_source_folder

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)
    assert _unchanged_source_folder(model, tokenizer) == tiny_chat_model_dir
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert _unchanged_source_folder(model, tokenizer) is None
    assert _unchanged_source_folder(AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir).to(torch.float64),
                                    tokenizer) is None
    tokenizer.add_special_tokens({"additional_special_tokens": ["<new>"]})
    assert _unchanged_source_folder(AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir), tokenizer) is None
