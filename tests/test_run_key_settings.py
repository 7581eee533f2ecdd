"""Load options that change outputs (dtype, max length, chat template, model args) are part of the run key."""

from __future__ import annotations

import json

import pytest

from evalkit._io import stable_hash
from evalkit.checkpoints import NON_OUTPUT_MODEL_ARGS, LoadOptions
from evalkit.records import CheckpointInfo, EvalResult
from evalkit.run import evaluate_checkpoint
from evalkit.store import ResultStore, RunKey, settings_hash
from tests.helpers.fake import FakeCheckpoint, counting_task
from tests.helpers.mmlu import write_mmlu

OLD_FIELDS = dict(fingerprint="fp", task="t", config_hash="cfg", evaluator="counting", evaluator_version="1",
                  lm_eval_version="0.4.13")
#: RunKey("fp", "t", "cfg", "counting", "1", "0.4.13").id as computed before model_settings existed.
OLD_ID = "cd8325a7603ef3bb526a0c2bef8c9e57"


# ----------------------------------------------------------------------------- LoadOptions.output_settings

def test_defaults_have_no_settings():
    assert LoadOptions().output_settings() == {}
    assert LoadOptions(dtype="auto").output_settings() == {}, "--dtype auto is the default"


def test_transport_batch_and_device_options_are_not_settings():
    transport = {key: "3" for key in NON_OUTPUT_MODEL_ARGS}
    options = LoadOptions(batch_size=32, device="cpu", num_concurrent=64, max_retries=0, timeout=5.0,
                          api_key_env="OTHER_KEY", trust_remote_code=True, model_args=transport)
    assert options.output_settings() == {}
    for key in ("num_concurrent", "max_retries", "timeout", "retry_wait", "retry_max_wait", "batch_size",
                "max_batch_size", "verify_certificate", "device"):
        assert key in NON_OUTPUT_MODEL_ARGS


def test_output_changing_options_are_settings():
    options = LoadOptions(dtype="bfloat16", max_length=512, chat_template=False,
                          model_args={"add_bos_token": "true", "tokenizer": "/tok", "api": "chat", "num_concurrent": "4"})
    assert options.output_settings() == {
        "dtype": "bfloat16", "max_length": 512, "chat_template": False,
        "model_args": {"add_bos_token": "true", "api": "chat", "tokenizer": "/tok"}}
    assert LoadOptions(chat_template=True).output_settings() == {"chat_template": True}


@pytest.mark.parametrize("value", ["true", "True", "TRUE", " true", True])
def test_model_arg_values_are_normalised_as_lm_eval_reads_them(value):
    assert LoadOptions(model_args={"add_bos_token": value}).output_settings() == {"model_args": {"add_bos_token": "true"}}


def test_different_values_are_different_settings():
    on = LoadOptions(model_args={"add_bos_token": "true"}).output_settings()
    off = LoadOptions(model_args={"add_bos_token": "false"}).output_settings()
    assert settings_hash(on) != settings_hash(off) != settings_hash({})
    assert LoadOptions(model_args={"max_gen_toks": 8}).output_settings() == \
        LoadOptions(model_args={"max_gen_toks": "8"}).output_settings()


# ----------------------------------------------------------------------------- RunKey

def test_run_key_id_unchanged_for_default_settings():
    assert RunKey(**OLD_FIELDS).id == stable_hash(OLD_FIELDS, length=32) == OLD_ID
    assert RunKey(**OLD_FIELDS, model_settings=settings_hash({})).id == OLD_ID


def test_run_key_id_depends_on_settings():
    bf16 = RunKey(**OLD_FIELDS, model_settings=settings_hash({"dtype": "bfloat16"}))
    fp16 = RunKey(**OLD_FIELDS, model_settings=settings_hash({"dtype": "float16"}))
    assert len({OLD_ID, bf16.id, fp16.id}) == 3


def test_run_loop_keys_runs_by_checkpoint_settings(tmp_path):
    class SetCheckpoint(FakeCheckpoint):
        def __init__(self, settings):
            super().__init__()
            self.settings = settings

        @property
        def info(self):
            info = super().info
            info.settings = self.settings
            return info

    with ResultStore(tmp_path / "s.sqlite") as store:
        for settings, loads in (({}, 1), ({"dtype": "bfloat16"}, 1), ({"dtype": "bfloat16"}, 0), ({}, 0)):
            checkpoint = SetCheckpoint(settings)
            evaluate_checkpoint(checkpoint, [counting_task()], store)
            assert checkpoint.loads == loads, settings
        stored = sorted(json.dumps(run["checkpoint"]["settings"]) for run in store.runs())
    assert stored == ['{"dtype": "bfloat16"}', "{}"]


# ----------------------------------------------------------------------------- records

def test_checkpoint_info_settings_round_trip_and_old_files_load():
    info = CheckpointInfo("a", "models/a", "hf", "fp", settings={"dtype": "bfloat16"})
    assert CheckpointInfo.from_dict(info.to_dict()) == info
    old = {"label": "a", "spec": "models/a", "kind": "hf", "fingerprint": "fp", "note": None}
    assert CheckpointInfo.from_dict(old).settings == {}
    assert CheckpointInfo.from_dict({**old, "from_the_future": 1}).label == "a"
    result = EvalResult.from_dict({"schema_version": 1, "checkpoint": old, "tasks": {}})
    assert result.checkpoint.settings == {}


def test_comparison_carries_settings_and_old_comparisons_load(tmp_path):
    from evalkit._compare import build_comparison, load_results_files, write_comparison

    results = [EvalResult(CheckpointInfo(label, label, "hf", label, settings=settings), {}, {})
               for label, settings in (("a", {}), ("b", {"max_length": 64}))]
    comparison = build_comparison(results)
    assert [c["settings"] for c in comparison["checkpoints"]] == [{}, {"max_length": 64}]
    path = write_comparison(comparison, tmp_path / "comparison.json")
    assert [r.checkpoint.settings for r in load_results_files([path])] == [{}, {"max_length": 64}]
    for checkpoint in comparison["checkpoints"]:
        del checkpoint["settings"]  # as written before settings existed
    path = write_comparison(comparison, tmp_path / "old.json")
    assert [r.checkpoint.settings for r in load_results_files([path])] == [{}, {}]


def test_results_file_with_bad_settings_is_a_usage_error():
    from evalkit.errors import UsageError

    checkpoint = {"label": "a", "spec": "models/a", "kind": "hf", "fingerprint": "fp", "settings": "bf16"}
    with pytest.raises(UsageError, match=r"checkpoint\.settings: expected an object"):
        EvalResult.from_dict({"schema_version": 1, "checkpoint": checkpoint, "tasks": {}})


# ----------------------------------------------------------------------------- end to end with a real model

@pytest.mark.slow
def test_eval_reruns_for_other_dtype_but_not_for_other_batch_size(tiny_model_dir, store_path, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from evalkit.checkpoints import kinds as loaders  # load_lm: the one entry that loads any kind
    from evalkit.cli import cli

    loads = []
    real_load_lm = loaders.load_lm
    monkeypatch.setattr(loaders, "load_lm", lambda spec, options: loads.append(options) or real_load_lm(spec, options))
    mmlu = write_mmlu(tmp_path / "mmlu", {"anatomy": "ABCDA"})
    base = [str(tiny_model_dir), "--tasks", "mmlu", "--set", f"mmlu.data={mmlu}", "--device", "cpu"]

    def run(*extra):
        out = tmp_path / f"out{len(loads)}-{'_'.join(extra)}"
        result = CliRunner().invoke(cli, ["eval", *base, *extra, "--out", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads((out / "results.json").read_text())

    first = run("--batch-size", "1")
    assert len(loads) == 1 and first["checkpoint"]["settings"] == {}
    again = run("--batch-size", "2", "--dtype", "auto")
    assert len(loads) == 1, "batch size and --dtype auto do not change outputs: the stored run answers"
    assert again["tasks"]["mmlu"]["metrics"] == first["tasks"]["mmlu"]["metrics"]
    bf16 = run("--batch-size", "1", "--dtype", "bfloat16")
    assert len(loads) == 2 and loads[-1].dtype == "bfloat16", "another dtype must not reuse the float32 run"
    assert bf16["checkpoint"]["settings"] == {"dtype": "bfloat16"}
    assert bf16["checkpoint"]["fingerprint"] == first["checkpoint"]["fingerprint"]
    run("--batch-size", "4", "--dtype", "bfloat16")
    assert len(loads) == 2, "same dtype, another batch size: the stored bfloat16 run answers"
    with ResultStore(store_path) as store:
        assert sorted(json.dumps(r["checkpoint"]["settings"]) for r in store.runs()) == ['{"dtype": "bfloat16"}', "{}"]

