"""Checkpoint specs -> fingerprints -> lm-eval LM objects, for every local spec kind and error path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.checkpoints import Checkpoint, LoadOptions, parse_spec
from evalkit.errors import UsageError

OPTS = LoadOptions(batch_size=1, device="cpu")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))


def _ll(lm, context="The quick brown", continuation=" fox"):
    from lm_eval.api.instance import Instance

    return lm.loglikelihood([Instance("loglikelihood", {}, (context, continuation), 0)])[0][0]


def _generate(lm, prompt="The quick"):
    from lm_eval.api.instance import Instance

    request = Instance("generate_until", {}, (prompt, {"until": ["\n"], "max_gen_toks": 4, "do_sample": False}), 0)
    return lm.generate_until([request])[0]


@pytest.fixture(scope="module")
def reference_ll(tiny_model_dir):
    """Log-likelihood of the reference request under the tiny model loaded as an HF directory."""
    return _ll(Checkpoint.from_string(str(tiny_model_dir), OPTS).lm)


def _copy_config_dir(src: Path, dst: Path) -> Path:
    """A folder with src's config and tokenizer files but no weights."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.suffix != ".safetensors":
            shutil.copy(path, dst / path.name)
    return dst


def _tiny_state_dict(tiny_model_dir):
    from safetensors.torch import load_file

    return load_file(str(tiny_model_dir / "model.safetensors"))


# ---------------------------------------------------------------- spec parsing (no models)


def test_parse_spec_kinds_and_labels(tiny_model_dir, tmp_path):
    assert parse_spec(str(tiny_model_dir)).kind == "hf"
    assert parse_spec(str(tiny_model_dir)).label == tiny_model_dir.name
    assert parse_spec(f"base={tiny_model_dir}").label == "base"
    weights = parse_spec(f"w.1={tiny_model_dir / 'model.safetensors'}")
    assert (weights.kind, weights.label) == ("weights", "w.1")
    preds = tmp_path / "run7.jsonl"
    preds.write_text('{"task": "t", "id": 1, "output": "x"}\n')
    assert (parse_spec(str(preds)).kind, parse_spec(str(preds)).label) == ("predictions", "run7")
    hub = parse_spec("org/model-name@v2")
    assert (hub.kind, hub.location, hub.revision, hub.label) == ("hub", "org/model-name", "v2", "model-name")


def test_parse_server_spec_strips_credentials():
    spec = parse_spec("ft=https://user:s3cret@example.com:8443/v1/chat/completions?api_key=s3cret&v=2#my-model")
    assert (spec.kind, spec.label, spec.model) == ("server", "ft", "my-model")
    assert spec.display == "https://example.com:8443/v1?v=2#my-model"
    assert "s3cret" not in spec.display
    assert spec.location == "https://user:s3cret@example.com:8443/v1?api_key=s3cret&v=2"  # used, never shown
    assert parse_spec("http://localhost:8000#m").display == "http://localhost:8000/v1#m"
    assert parse_spec("http://localhost:8000/v1/#m").label == "m"


def test_org_name_under_an_existing_folder_is_a_missing_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(UsageError, match="'models/typo': no such file or directory"):
        parse_spec("models/typo")
    assert parse_spec("someorg/typo").kind == "hub"


def test_existing_path_with_equals_sign_is_not_split(tmp_path):
    model = tmp_path / "a=b.jsonl"
    model.write_text('{"task": "t", "id": 1, "output": "x"}\n')
    spec = parse_spec(str(model))
    assert (spec.kind, spec.label) == ("predictions", "a=b")


@pytest.mark.parametrize("text, message", [
    ("does/not/exist/here", "no such file or directory; expected a model dir, adapter dir, weights file, "
                            "predictions .jsonl or http(s)://HOST/v1#MODEL"),
    ("./missing_model", "'./missing_model': no such file or directory"),
    ("http://localhost:8000/v1", "needs the model name after '#', as in http://HOST:PORT/v1#MODEL"),
    ("x=", "nothing after 'x='"),
    ("", "empty spec"),
])
def test_bad_specs(text, message):
    with pytest.raises(UsageError, match=_escape(message)):
        parse_spec(text)


def _escape(text):
    import re

    return re.escape(text)


def test_incomplete_model_dirs(tmp_path, tiny_model_dir):
    no_weights = _copy_config_dir(tiny_model_dir, tmp_path / "no_weights")
    with pytest.raises(UsageError, match=r"config.json but no weights \(\*\.safetensors"):
        parse_spec(str(no_weights))
    no_tokenizer = tmp_path / "no_tok"
    no_tokenizer.mkdir()
    shutil.copy(tiny_model_dir / "config.json", no_tokenizer)
    shutil.copy(tiny_model_dir / "model.safetensors", no_tokenizer)
    with pytest.raises(UsageError, match="no tokenizer"):
        parse_spec(str(no_tokenizer))
    with pytest.raises(UsageError, match="neither config.json"):
        parse_spec(str(tmp_path / "no_tok" / ".."))  # tmp_path itself: no config
    odd = tmp_path / "model.txt"
    odd.write_text("x")
    with pytest.raises(UsageError, match="unsupported file type '.txt'"):
        parse_spec(str(odd))


def test_supports_by_kind(tmp_path, tiny_model_dir):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"task": "t", "id": 1, "output": "x"}\n')
    assert Checkpoint.from_string(str(preds)).supports("generate_until")
    assert not Checkpoint.from_string(str(preds)).supports("loglikelihood")
    assert Checkpoint.from_string(str(tiny_model_dir)).supports("loglikelihood_rolling")
    with pytest.raises(ValueError, match="need must be one of"):
        Checkpoint.from_string(str(tiny_model_dir)).supports("logprobs")


# ---------------------------------------------------------------- loading each kind


def test_hf_dir_answers_loglikelihood_and_generation(tiny_model_dir, reference_ll):
    checkpoint = Checkpoint.from_string(f"tiny={tiny_model_dir}", OPTS)
    assert reference_ll < 0
    assert isinstance(_generate(checkpoint.lm), str)
    assert checkpoint.lm is checkpoint.lm  # loaded once
    assert checkpoint.info.kind == "hf" and len(checkpoint.info.fingerprint) == 64


def test_safetensors_file_with_sibling_config(tiny_model_dir, reference_ll):
    checkpoint = Checkpoint.from_string(str(tiny_model_dir / "model.safetensors"), OPTS)
    assert checkpoint.spec.kind == "weights"
    assert _ll(checkpoint.lm) == pytest.approx(reference_ll, abs=1e-5)


def test_weights_file_keeps_its_dtype_unless_dtype_given(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = _copy_config_dir(tiny_model_dir, tmp_path / "half")
    save_file({k: v.to(torch.bfloat16) for k, v in _tiny_state_dict(tiny_model_dir).items()},
              str(folder / "model.safetensors"))
    assert Checkpoint.from_string(str(folder / "model.safetensors"), OPTS).lm.model.dtype == torch.bfloat16
    options = LoadOptions(batch_size=1, device="cpu", dtype="float32")
    assert Checkpoint.from_string(str(folder / "model.safetensors"), options).lm.model.dtype == torch.float32
    with pytest.raises(UsageError, match="dtype must be one of auto, float32, bfloat16, float16, got 'fp8'"):
        Checkpoint.from_string(str(folder / "model.safetensors"), LoadOptions(dtype="fp8")).lm


def test_lightning_ckpt_loads_with_weights_only(tiny_model_dir, tmp_path, reference_ll):
    import torch

    state = {"model." + key: value for key, value in _tiny_state_dict(tiny_model_dir).items()}
    path = tmp_path / "epoch=1.ckpt"
    torch.save({"state_dict": state, "epoch": 1, "global_step": 10}, path)
    options = LoadOptions(batch_size=1, device="cpu", config=str(tiny_model_dir))
    assert _ll(Checkpoint.from_string(f"ckpt={path}", options).lm) == pytest.approx(reference_ll, abs=1e-5)


class CustomHyperparameters:
    """Stands for the arbitrary objects some trainers pickle into checkpoints."""

    def __init__(self, lr):
        self.lr = lr


def test_pickled_objects_need_allow_pickle(tiny_model_dir, tmp_path, reference_ll):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"state_dict": _tiny_state_dict(tiny_model_dir), "hparams": CustomHyperparameters(0.1)}, path)
    options = LoadOptions(batch_size=1, device="cpu", config=str(tiny_model_dir))
    with pytest.raises(UsageError, match="needs full unpickling.*pass allow_pickle=True"):
        Checkpoint.from_string(str(path), options).lm
    options.allow_pickle = True
    assert _ll(Checkpoint.from_string(str(path), options).lm) == pytest.approx(reference_ll, abs=1e-5)


def test_weights_without_config_or_tokenizer(tiny_model_dir, tmp_path):
    shutil.copy(tiny_model_dir / "model.safetensors", tmp_path / "lonely.safetensors")
    with pytest.raises(UsageError, match="no config.json beside it; pass config=DIR"):
        Checkpoint.from_string(str(tmp_path / "lonely.safetensors"), OPTS).lm
    options = LoadOptions(config=str(tmp_path))
    with pytest.raises(UsageError, match=r"^config='.*': no config.json there"):
        Checkpoint.from_string(str(tmp_path / "lonely.safetensors"), options).fingerprint


def test_corrupt_safetensors_is_named(tiny_model_dir, tmp_path):
    folder = _copy_config_dir(tiny_model_dir, tmp_path / "corrupt")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json" + b"\0" * 64)
    with pytest.raises(UsageError, match=r"weights file .*model\.safetensors is not a readable safetensors file"):
        Checkpoint.from_string(str(folder / "model.safetensors"), OPTS).lm


def test_corrupt_weights_in_model_dir(tiny_model_dir, tmp_path):
    folder = _copy_config_dir(tiny_model_dir, tmp_path / "corrupt_dir")
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UsageError, match=r"could not be loaded: SafetensorError"):
        Checkpoint.from_string(str(folder), OPTS).lm


def test_weights_that_do_not_fit_the_config(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import save_file

    state = _tiny_state_dict(tiny_model_dir)
    state.pop("model.norm.weight")
    state["model.extra_head.weight"] = torch.zeros(2)
    state["model.embed_tokens.weight"] = torch.zeros(3, 5)
    folder = _copy_config_dir(tiny_model_dir, tmp_path / "misfit")
    save_file(state, str(folder / "bad.safetensors"))
    with pytest.raises(UsageError) as info:
        Checkpoint.from_string(str(folder / "bad.safetensors"), OPTS).lm
    message = str(info.value)
    assert "does not fit config" in message and "bad.safetensors" in message
    assert "1 missing keys (e.g. model.norm.weight)" in message
    assert "1 unexpected (e.g. model.extra_head.weight)" in message
    assert "model.embed_tokens.weight (3, 5)" in message


@pytest.fixture(scope="module")
def lora_adapter(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter with non-zero weights (so it changes outputs), saved with its base path."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(folder)
    return folder


def test_peft_adapter_base_from_adapter_config(lora_adapter, tiny_model_dir, reference_ll):
    assert json.loads((lora_adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    checkpoint = Checkpoint.from_string(str(lora_adapter), OPTS)
    assert checkpoint.spec.kind == "peft"
    value = _ll(checkpoint.lm)
    assert value < 0 and value != pytest.approx(reference_ll, abs=1e-4)  # the adapter is applied


def test_peft_base_override(lora_adapter, tiny_model_dir, tmp_path, reference_ll):
    moved = tmp_path / "adapter"
    shutil.copytree(lora_adapter, moved)
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="is neither a model directory nor a hub id; pass base=DIR"):
        Checkpoint.from_string(str(moved), OPTS).lm
    options = LoadOptions(batch_size=1, device="cpu", base=str(tiny_model_dir))
    expected = _ll(Checkpoint.from_string(str(lora_adapter), OPTS).lm)
    assert _ll(Checkpoint.from_string(str(moved), options).lm) == pytest.approx(expected, abs=1e-5)


def test_hub_id_offline_fails_with_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = Checkpoint.from_string("evalkit-test-org/no-such-model", OPTS)
    assert checkpoint.spec.kind == "hub" and len(checkpoint.fingerprint) == 64  # no download needed
    with pytest.raises(UsageError, match="offline: HF_HUB_OFFLINE is set"):
        checkpoint.lm


# ---------------------------------------------------------------- predictions files


def _write_predictions(path: Path, rows) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def _gen_request(task, sample_id, prompt="p"):
    from lm_eval.api.instance import Instance

    request = Instance("generate_until", {}, (prompt, {"until": ["\n"]}), 0)
    request.task_name = task
    request.evalkit_sample_id = sample_id
    return request


def test_predictions_replay(tmp_path):
    path = _write_predictions(tmp_path / "preds.jsonl", [
        {"task": "ifeval", "id": 1000, "output": "first"}, {"task": "ifeval", "id": "1001", "output": "second"},
        {"task": "voc", "id": "1000", "output": "Delivery > Late"}])
    lm = Checkpoint.from_string(str(path)).lm
    requests = [_gen_request("ifeval", "1001"), _gen_request("voc", "1000"), _gen_request("ifeval", "1000")]
    assert lm.generate_until(requests) == ["second", "Delivery > Late", "first"]
    with pytest.raises(UsageError, match="needs log-likelihoods, which predictions file"):
        lm.loglikelihood([_gen_request("mmlu", "1")])
    with pytest.raises(UsageError, match="needs log-likelihoods"):
        lm.loglikelihood_rolling([_gen_request("wikitext", "1")])


def test_predictions_missing_ids_are_all_counted(tmp_path):
    path = _write_predictions(tmp_path / "preds.jsonl", [{"task": "ifeval", "id": "1", "output": "a"}])
    lm = Checkpoint.from_string(str(path)).lm
    requests = [_gen_request("ifeval", "1"), _gen_request("ifeval", "2"), _gen_request("ifeval", "3")]
    with pytest.raises(UsageError, match=r"has no output for task 'ifeval' sample id '2' \(2 of 3 missing, e.g. '2', '3'\)"):
        lm.generate_until(requests)
    with pytest.raises(UsageError, match=r"sample id '2' \(2 of 4 missing, e.g. '2', '4'\)"):
        lm.check_coverage("ifeval", ["1", "2", 4, "1"])  # the whole task, checked before any work
    lm.check_coverage("ifeval", ["1"])


@pytest.mark.parametrize("rows, message", [
    (['{"task": "t", "id": 1, "output": "a"}', "{oops"], r"preds.jsonl:2: not valid JSON"),
    ([{"task": "t", "output": "a"}], r"preds.jsonl:1: missing key\(s\) id"),
    ([{"task": "t", "id": 1, "output": "a"}, {"task": "t", "id": "1", "output": "b"}],
     r"preds.jsonl:2: duplicate output for task 't' sample id '1'"),
    ([{"task": "t", "id": 1, "output": 3}], r"preds.jsonl:1: 'output' must be a string"),
])
def test_bad_predictions_files(tmp_path, rows, message):
    path = _write_predictions(tmp_path / "preds.jsonl", rows)
    with pytest.raises(UsageError, match=message):
        Checkpoint.from_string(str(path)).lm


# ---------------------------------------------------------------- fingerprints


def test_fingerprint_stable_and_content_sensitive(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    first = Checkpoint.from_string(str(folder)).fingerprint
    assert Checkpoint.from_string(f"other-label={folder}").fingerprint == first
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert Checkpoint.from_string(str(folder)).fingerprint != first
    tokenizer_config = folder / "tokenizer_config.json"
    tokenizer_config.write_text(tokenizer_config.read_text().replace("}", ', "extra": 1}', 1))
    assert len({first, Checkpoint.from_string(str(folder)).fingerprint}) == 2


def test_fingerprint_memo_avoids_rehashing(tiny_model_dir, tmp_path, monkeypatch):
    from evalkit.checkpoints import fingerprint as fp

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    hashed = []
    real = fp.hash_file
    monkeypatch.setattr(fp, "hash_file", lambda path: hashed.append(Path(path).name) or real(path))
    first = Checkpoint.from_string(str(folder)).fingerprint
    assert "model.safetensors" in hashed and "config.json" in hashed
    hashed.clear()
    assert Checkpoint.from_string(str(folder)).fingerprint == first
    assert hashed == []
    (folder / "config.json").write_text((folder / "config.json").read_text() + "\n")
    assert Checkpoint.from_string(str(folder)).fingerprint != first
    assert hashed == ["config.json"]


def test_fingerprints_of_other_kinds(tiny_model_dir, lora_adapter, tmp_path):
    weights_fp = Checkpoint.from_string(str(tiny_model_dir / "model.safetensors")).fingerprint
    assert weights_fp != Checkpoint.from_string(str(tiny_model_dir)).fingerprint
    peft_fp = Checkpoint.from_string(str(lora_adapter)).fingerprint
    other_base = Checkpoint.from_string(str(lora_adapter), LoadOptions(base="org/another-base")).fingerprint
    assert peft_fp != other_base
    path = _write_predictions(tmp_path / "p.jsonl", [{"task": "t", "id": 1, "output": "a"}])
    before = Checkpoint.from_string(str(path)).fingerprint
    _write_predictions(path, [{"task": "t", "id": 1, "output": "b"}])
    assert Checkpoint.from_string(str(path)).fingerprint != before
    assert Checkpoint.from_string("org/m@v1").fingerprint != Checkpoint.from_string("org/m@v2").fingerprint


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("spec, expected", [
    ("no/such/dir/anywhere", "no such file or directory"),
    ("http://127.0.0.1:9/v1", "needs the model name after '#'"),
])
def test_cli_bad_spec_exits_2_with_one_line(spec, expected, store_path, tmp_path):
    result = subprocess.run([sys.executable, "-m", "evalkit", "eval", spec, "--tasks", "ifeval"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("evalkit: error:")
    assert "Traceback" not in result.stderr + result.stdout
