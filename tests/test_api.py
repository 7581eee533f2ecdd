"""The Python API: evaluate / compare / gate, in-memory models, typed results, API-neutral errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evalkit
from evalkit.errors import UsageError
from tests.helpers.mmlu import write_mmlu


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_chat_model_dir):
    root = tmp_path_factory.mktemp("api")
    mmlu = write_mmlu(root / "mmlu", {"anatomy": "ABCDA", "astronomy": "DCBAD"})
    overrides = {"voc_sample": {"limit": 6, "max_gen_toks": 8, "n_resamples": 50}, "mmlu": {"data": str(mmlu)}}
    return {"root": root, "model_dir": tiny_chat_model_dir, "tasks": ["voc_sample", "mmlu"], "overrides": overrides,
            "set": ["--set", "voc_sample.limit=6", "--set", "voc_sample.max_gen_toks=8", "--set", "voc_sample.n_resamples=50", "--set", f"mmlu.data={mmlu}"]}


def _cli(*args) -> int:
    from evalkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


def _records(result) -> dict:
    return {name: [(s.sample_id, s.prediction, s.correct, s.scores) for s in task.samples]
            for name, task in result.tasks.items()}


@pytest.mark.slow
def test_in_memory_model_equals_the_cli_on_the_saved_directory(setup, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(setup["model_dir"])
    tokenizer = AutoTokenizer.from_pretrained(setup["model_dir"])
    assert tokenizer.chat_template  # the generation task must go through the chat template on both paths
    model.train()
    pad_before = tokenizer.pad_token
    in_memory = evalkit.evaluate(model, setup["tasks"], tokenizer=tokenizer, label="tiny", overrides=setup["overrides"],
                                 store=tmp_path / "api.sqlite", batch_size=4)
    assert model.training, "evaluate() must restore the model's training mode"
    assert tokenizer.pad_token == pad_before

    monkeypatch.setenv("EVALKIT_STORE", str(tmp_path / "cli.sqlite"))
    assert _cli("eval", str(setup["model_dir"]), "--tasks", ",".join(setup["tasks"]), *setup["set"],
                "--batch-size", "4", "--out", str(tmp_path / "cli")) == 0
    on_disk = evalkit.EvalResult.load(tmp_path / "cli" / "results.json")

    assert _records(in_memory) == _records(on_disk)
    for name in setup["tasks"]:
        assert in_memory.tasks[name].metrics == on_disk.tasks[name].metrics
        assert in_memory.tasks[name].settings == on_disk.tasks[name].settings
    assert in_memory.tasks["voc_sample"].settings["chat_template"] == [True]
    assert in_memory.checkpoint.kind == "memory" and in_memory.checkpoint.label == "tiny"
    assert in_memory.checkpoint.fingerprint != on_disk.checkpoint.fingerprint  # weights hashed, not files

    again = evalkit.evaluate(model, setup["tasks"], tokenizer=tokenizer, label="tiny", overrides=setup["overrides"],
                             store=tmp_path / "api.sqlite", batch_size=4)
    assert _records(again) == _records(in_memory)  # answered from the store: same fingerprint


_NOISE = ("Token indices sequence length is longer", "Loading weights", "Custom kwargs can be passed")


@pytest.mark.slow
def test_evaluate_is_quiet_unless_verbose(tiny_chat_model_dir, tmp_path, capfd):
    """transformers' and lm-eval's warnings and bars stay out of an API user's output (the docs promise it)."""
    small = {"voc_sample": {"limit": 2, "max_gen_toks": 4, "n_resamples": 50}}
    evalkit.evaluate(str(tiny_chat_model_dir), "voc_sample", overrides=small, store=tmp_path / "s.sqlite", batch_size=2)
    quiet = capfd.readouterr()
    assert not [noise for noise in _NOISE if noise in quiet.err + quiet.out], quiet.err
    evalkit.evaluate(str(tiny_chat_model_dir), "voc_sample", overrides=small, store=tmp_path / "s.sqlite", batch_size=2,
                     rerun=True, verbose=True)
    assert "Loading weights" in capfd.readouterr().err  # the noise is real here


def test_model_fingerprint_follows_the_weights_and_is_stable(tiny_chat_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalkit.checkpoints.memory import model_fingerprint

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model_dir)
    first = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)
    second = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)
    assert model_fingerprint(first, tokenizer) == model_fingerprint(second, tokenizer)
    with torch.no_grad():
        second.model.norm.weight[0] += 1e-3
    assert model_fingerprint(first, tokenizer) != model_fingerprint(second, tokenizer)
    tokenizer.chat_template = "{{ messages }}"
    assert model_fingerprint(first, tokenizer) != model_fingerprint(first, AutoTokenizer.from_pretrained(tiny_chat_model_dir))


def test_in_memory_model_needs_its_tokenizer(tiny_chat_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)
    with pytest.raises(UsageError, match="needs its tokenizer"):
        evalkit.evaluate(model, ["voc_sample"])
    with pytest.raises(UsageError, match="cannot evaluate a int"):
        evalkit.evaluate(3, ["voc_sample"])


def test_unknown_option_is_a_type_error_with_a_suggestion(tiny_chat_model_dir):
    with pytest.raises(TypeError, match="unknown option 'batchsize'. Did you mean 'batch_size'"):
        evalkit.evaluate(str(tiny_chat_model_dir), ["voc_sample"], batchsize=4)


def test_lm_without_weights_needs_a_fingerprint():
    from lm_eval.api.model import LM

    from evalkit.checkpoints.memory import InMemoryCheckpoint

    class Echo(LM):
        def loglikelihood(self, requests, disable_tqdm=False):
            return [(0.0, True) for _ in requests]

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            return [0.0 for _ in requests]

        def generate_until(self, requests, disable_tqdm=False):
            return ["" for _ in requests]

    with pytest.raises(UsageError, match="pass fingerprint="):
        _ = InMemoryCheckpoint(Echo()).fingerprint
    checkpoint = InMemoryCheckpoint(Echo(), fingerprint="echo-v1", label="echo")
    assert checkpoint.info.fingerprint == "echo-v1" and checkpoint.info.kind == "lm"


def test_trainer_save_folders_are_labelled_by_run_and_step(tiny_chat_model_dir, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_chat_model_dir, tmp_path / "mix25" / "checkpoint-40")
    from evalkit.api import as_checkpoint

    checkpoint = as_checkpoint(str(folder))
    assert checkpoint.label == "mix25.step40"
    assert (checkpoint.info.run, checkpoint.info.step) == ("mix25", 40)
    assert as_checkpoint(f"mine={folder}").label == "mine"
    assert as_checkpoint(str(folder), label="given").label == "given"


# ---------------------------------------------------------------------------------- compare and gate

@pytest.fixture(scope="module")
def two_results():
    from synthetic_results import make_results  # as test_compare imports it (registered once)

    return make_results()


def test_compare_returns_a_comparison_that_explains_itself(two_results, tmp_path):
    comparison = evalkit.compare(*two_results)
    assert isinstance(comparison, evalkit.Comparison)
    assert comparison.baseline == two_results[0].checkpoint.label
    assert comparison.labels == [r.checkpoint.label for r in two_results]
    row = comparison.metric(comparison.tasks[0])
    assert {"value", "delta", "ci_low", "ci_high"} <= set(row)
    assert comparison.baseline in repr(comparison) and comparison.tasks[0] in comparison.summary()
    again = evalkit.Comparison.from_dict(json.loads(json.dumps(comparison.to_dict())))
    assert again.to_dict() == comparison.to_dict()
    assert evalkit.compare([*two_results]).to_dict() == comparison.to_dict()  # a list works too


def test_gate_accepts_a_dict_a_path_or_a_policy_and_write_includes_its_outputs(two_results, tmp_path):
    comparison = evalkit.compare(*two_results)
    task = comparison.tasks[0]
    policy = {"gates": [{"metric": f"{task}.{comparison.metric(task)['metric']}", "min": 2.0}]}
    verdict = comparison.gate(policy)
    assert isinstance(verdict, evalkit.Verdict) and not verdict.passed and verdict.failures
    assert "FAIL" in str(verdict)
    assert evalkit.Verdict.from_dict(verdict.to_dict()).to_dict() == verdict.to_dict()
    path = tmp_path / "policy.yaml"
    path.write_text(f"gates:\n  - metric: {policy['gates'][0]['metric']}\n    min: 2.0\n")
    assert comparison.gate(path).to_dict()["checks"] == verdict.to_dict()["checks"]
    written = {p.relative_to(tmp_path / "out").as_posix() for p in comparison.write(tmp_path / "out")}
    labels = comparison.labels
    assert written == {"report.html", "report.md", "comparison.json", "metrics.csv", "junit.xml", "verdict.json",
                       *(f"results/{label}.json" for label in labels)}
    loaded = evalkit.Comparison.load(tmp_path / "out" / "comparison.json")
    assert loaded.verdict.status == "fail"


def test_library_errors_name_the_parameter_not_a_flag(two_results, tmp_path):
    with pytest.raises(UsageError) as info:
        evalkit.compare(*two_results, notes={"nobody": "x"})
    assert info.value.param == "notes" and "--" not in str(info.value)
    with pytest.raises(UsageError) as info:
        evalkit.compare(*two_results, baseline="nobody")
    assert info.value.param == "baseline" and "--" not in str(info.value)
    with pytest.raises(UsageError, match="at least two") as info:
        evalkit.compare(two_results[0])
    assert info.value.param == "results"


def test_evalkit_compare_checks_the_same_two_checkpoint_rule_naming_its_inputs():
    from evalkit import compare_run

    with pytest.raises(UsageError, match=r"at least two checkpoints \(models and/or baseline_results") as info:
        compare_run.prepare(["models/a"], compare_run.TaskPlan([], [], None))  # refused before any model loads
    assert info.value.param == "models"


def test_the_cli_maps_the_parameter_back_to_its_flag(two_results, capsys):
    from evalkit.cli import _report

    with pytest.raises(UsageError) as info:
        evalkit.compare(*two_results, notes={"nobody": "x"})
    with pytest.raises(SystemExit) as exit_info:
        _report(info.value, info.value.exit_code)
    assert exit_info.value.code == 2
    assert "evalkit: error: --note: a note is given for 'nobody'" in capsys.readouterr().err


@pytest.mark.slow
def test_in_memory_peft_model_equals_the_cli_on_the_saved_adapter(setup, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(setup["model_dir"])
    torch.manual_seed(0)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(setup["model_dir"]),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")
    overrides = {"mmlu": setup["overrides"]["mmlu"]}  # log-likelihoods: cheap; generation is covered above
    in_memory = evalkit.evaluate(lora, ["mmlu"], tokenizer=tokenizer, overrides=overrides,
                                 store=tmp_path / "a.sqlite", batch_size=4)
    on_disk = evalkit.evaluate(str(tmp_path / "adapter"), ["mmlu"], overrides=overrides,
                               store=tmp_path / "b.sqlite", batch_size=4, base=str(setup["model_dir"]))
    assert (in_memory.checkpoint.kind, on_disk.checkpoint.kind) == ("memory", "peft")
    assert _records(in_memory) == _records(on_disk)
    plain = evalkit.evaluate(str(setup["model_dir"]), ["mmlu"], overrides=overrides,
                             store=tmp_path / "b.sqlite", batch_size=4)
    # the adapter is applied: its log-likelihoods differ from the base model's
    assert [s.extra for s in plain.tasks["mmlu"].samples] != [s.extra for s in on_disk.tasks["mmlu"].samples]


def test_option_errors_name_the_argument_and_the_cli_the_flag(tiny_chat_model_dir, tmp_path, capsys):
    from evalkit.cli import _report

    with pytest.raises(UsageError) as info:
        evalkit.evaluate(str(tiny_chat_model_dir), ["voc_sample"], dtype="fp8", store=tmp_path / "s.sqlite",
                         overrides={"voc_sample": {"limit": 1}})
    assert str(info.value).startswith("dtype must be one of") and info.value.param == "dtype"
    with pytest.raises(SystemExit):
        _report(info.value, info.value.exit_code)
    assert "evalkit: error: --dtype must be one of auto, float32" in capsys.readouterr().err


@pytest.mark.parametrize("make_error, api_words, cli_words", [
    # a weights file with no config.json beside it (found before any model loads)
    (lambda d, tmp: evalkit.evaluate(str(_lonely_weights(d, tmp)), ["voc_sample"], store=tmp / "s.sqlite"),
     "pass config=DIR (a model dir", "evalkit: error: weights file"),
    (lambda d, tmp: evalkit.evaluate(str(_lonely_weights(d, tmp)), ["voc_sample"], store=tmp / "s.sqlite",
                                     config=str(tmp)),
     "config='", "evalkit: error: --config /"),
    # contradicting server options (refused before the server is asked)
    (lambda d, tmp: _server_settings(endpoint="chat", model_args="api=completions"),
     "endpoint='chat' and model_args='api=completions' disagree",
     "evalkit: error: --endpoint chat and --model-args api=completions disagree"),
    (lambda d, tmp: _server_settings(endpoint="chat", chat_template=False),
     "drop chat_template=False, or use endpoint='completions'",
     "drop --no-chat-template, or use --endpoint completions"),
    # a result store that cannot be created
    (lambda d, tmp: evalkit.evaluate(str(d), ["voc_sample"], store=_a_file(tmp) / "s.sqlite"),
     "pass another store=PATH", "pass another --store PATH"),
])
def test_library_errors_speak_the_api_and_the_cli_speaks_flags(tiny_chat_model_dir, tmp_path, capsys,
                                                              make_error, api_words, cli_words):
    from evalkit.cli import _report

    with pytest.raises(UsageError) as info:
        make_error(tiny_chat_model_dir, tmp_path)
    assert api_words in str(info.value) and " --" not in str(info.value)
    with pytest.raises(SystemExit) as exit_info:
        _report(info.value, info.value.exit_code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert cli_words in err and "=DIR" not in err and "='" not in err


def test_weights_file_hint_reaches_the_terminal_as_a_flag(tiny_chat_model_dir, tmp_path, capsys):
    from evalkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(_lonely_weights(tiny_chat_model_dir, tmp_path)), "--tasks", "voc_sample",
              "--store", str(tmp_path / "s.sqlite")])
    assert exit_info.value.code == 2
    assert "no config.json beside it; pass --config DIR (a model dir" in capsys.readouterr().err


def _lonely_weights(model_dir, tmp_path):
    import shutil

    (tmp_path / "w").mkdir(exist_ok=True)
    return Path(shutil.copy(model_dir / "model.safetensors", tmp_path / "w" / "lonely.safetensors"))


def _a_file(tmp_path):
    (tmp_path / "plain").write_text("x")
    return tmp_path / "plain"


def _server_settings(**options):
    from evalkit.api import as_checkpoint, load_options

    return as_checkpoint("http://127.0.0.1:9/v1#org/m", options=load_options(**options)).settings


def test_an_unwritable_output_folder_is_named_in_api_words(two_results, tmp_path, capsys):
    from evalkit.cli import main

    (tmp_path / "taken").write_text("a file where the report folder should go")
    with pytest.raises(UsageError, match=r"^output folder .*taken: exists and is not a folder"):
        evalkit.compare(*two_results).write(tmp_path / "taken")
    for i, result in enumerate(two_results[:2]):
        (tmp_path / f"r{i}.json").write_text(json.dumps(result.to_dict()))
    (tmp_path / "out" / "report.html").mkdir(parents=True)  # a folder where a report file goes
    with pytest.raises(UsageError, match=r"report.html: cannot write this output .*; check output folder "):
        evalkit.compare(*two_results).write(tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "r0.json"), str(tmp_path / "r1.json"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "evalkit: error: --out " in capsys.readouterr().err
