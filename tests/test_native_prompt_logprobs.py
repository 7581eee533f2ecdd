"""Per-option log-likelihoods through vLLM's own ``prompt_logprobs`` field equal those through the echo.

A stub server answers from a real tiny model (tests/helpers/logprob_server.py) in both formats, as vLLM
does: ``echo=true, logprobs=1`` (the OpenAI format) and ``prompt_logprobs=k, return_token_ids`` (vLLM's
own). Where the probe finds the latter, per-option requests use it (``k=1``: the same sums and greedy flags,
half the reply); callers that read no greedy flag (constrained VOC) ask for ``k=0``. Records must not change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.checkpoints import Checkpoint, LoadOptions
from evalkit.checkpoints.answers import MalformedAnswer, prompt_logprob_scores
from evalkit.checkpoints.server_scoring import prompt_logprobs_findings
from tests.helpers.logprob_server import ModelServer

FAST = {"retry_wait": 0.01}
QUESTIONS = ["Question: which colour is the sky?\nAnswer:", "The largest planet is"]
PHRASES = [" alpha", " alpha beta", " gamma delta epsilon", " the largest planet", " north east", "\n"]
VOC_DATA = Path(__file__).resolve().parents[1] / "evalkit" / "tasks" / "data" / "voc_sample"


def _lm(server: ModelServer, batch_size: str | int = "auto", **model_args):
    options = LoadOptions(num_concurrent=2, endpoint="completions", batch_size=batch_size,
                          model_args={**FAST, "loglikelihood_scoring": "per_option", **model_args})
    return Checkpoint.from_string(f"{server.url}#{server.model}", options).lm


def _instances(pairs):
    from lm_eval.api.instance import Instance

    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


def _greedy_phrase(server: ModelServer, question: str, n: int) -> str:
    """The model's greedy continuation of ``question``, ``n`` tokens long (so is_greedy is True for it)."""
    tokenizer = server.echo_tokenizer
    ids = tokenizer(question).input_ids
    for _ in range(n):
        ids.append(int(server._log_softmax(ids)[-1].argmax()))
    return tokenizer.decode(ids[len(tokenizer(question).input_ids):])


def _scores(model_dir, pairs, *, native: bool):
    with ModelServer(model_dir, native=native) as server:
        lm = _lm(server)
        answers = lm.loglikelihood(_instances(pairs))
        return answers, lm, dict(server.kinds), list(server.requests)


@pytest.fixture(scope="module")
def greedy_pairs(tiny_chat_model_dir):
    with ModelServer(tiny_chat_model_dir) as server:
        return [(q, _greedy_phrase(server, q, n)) for q in QUESTIONS for n in (1, 3)]


@given(st.lists(st.tuples(st.sampled_from(QUESTIONS), st.sampled_from(PHRASES)), min_size=1, max_size=6))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_native_prompt_logprobs_give_the_echo_scores_and_greedy_flags(tiny_chat_model_dir, greedy_pairs, pairs):
    pairs = pairs + greedy_pairs
    echo, echo_lm, _, _ = _scores(tiny_chat_model_dir, pairs, native=False)
    native, lm, kinds, bodies = _scores(tiny_chat_model_dir, pairs, native=True)
    assert native == echo  # the same model numbers in another format: equal, not merely close
    assert any(greedy for _, greedy in native) and not all(greedy for _, greedy in native)
    assert lm.native_prompt_logprobs and not echo_lm.native_prompt_logprobs
    assert kinds["prompt_logprobs"] == len(pairs) and kinds["echo"] == 1  # the probe alone echoes
    asked = [body for body in bodies if not body.get("echo")]
    assert asked and all(body["prompt_logprobs"] == 1 and "logprobs" not in body for body in asked)


def test_scores_alone_ask_for_the_prompt_token_only_and_cache_nothing(tiny_chat_model_dir):
    pairs = [(q, p) for q in QUESTIONS for p in PHRASES[:3]]
    with ModelServer(tiny_chat_model_dir, native=True) as server:
        lm = _lm(server)
        full = lm.loglikelihood(_instances(pairs))
        cached = []
        lm.cache_hook.add_partial = lambda *args: cached.append(args)
        before = len(server.requests)
        scores = lm.loglikelihood_scores(_instances(pairs))
        asked = server.requests[before:]
    assert scores == [score for score, _ in full]
    assert asked and {body["prompt_logprobs"] for body in asked} == {0} and not cached
    assert not lm._scores_only  # back to k=1 for callers that read is_greedy


@pytest.mark.parametrize("batch_size, sizes", [("auto", [8, 8, 4]), (1, [1] * 20), (3, [3] * 6 + [2])])
def test_native_requests_carry_eight_prompts_unless_a_batch_size_is_given(tiny_chat_model_dir, batch_size, sizes):
    pairs = [(q, p) for q in QUESTIONS for p in PHRASES] + [(QUESTIONS[0], p) for p in PHRASES + [" x", " y"]]
    echo, _, _, _ = _scores(tiny_chat_model_dir, pairs, native=False)
    with ModelServer(tiny_chat_model_dir, native=True) as server:
        assert _lm(server, batch_size).loglikelihood(_instances(pairs)) == echo
        asked = [body["prompt"] for body in server.requests if not body.get("echo")]
    assert sorted(len(p) if isinstance(p, list) else 1 for p in asked) == sorted(sizes)


def test_a_server_refusing_vllm_fields_is_probed_again_and_scored_through_the_echo(tiny_chat_model_dir):
    pairs = [(QUESTIONS[0], p) for p in PHRASES[:3]]
    echo, _, _, _ = _scores(tiny_chat_model_dir, pairs, native=False)
    with ModelServer(tiny_chat_model_dir, native=True, refuse_fields=("prompt_logprobs",)) as server:
        lm = _lm(server)
        assert lm.loglikelihood(_instances(pairs)) == echo
        assert not lm.native_prompt_logprobs and server.statuses[400] == 1  # the first probe only
        assert server.kinds["prompt_logprobs"] == 0


def test_a_server_without_them_keeps_the_echo(tiny_chat_model_dir):
    with ModelServer(tiny_chat_model_dir) as server:
        found, native = prompt_logprobs_findings(f"{server.url}/completions", server.model, {})
    assert found is True and native is False


@pytest.mark.parametrize("choice, what", [
    ({"prompt_token_ids": [1, 5, 6]}, r"prompt_logprobs is missing"),
    ({"prompt_token_ids": [1, 5, 6], "prompt_logprobs": [None, {"5": {"logprob": -1.0}}]}, r"2 prompt log-probs for 3"),
    ({"prompt_token_ids": [1, 5, 6], "prompt_logprobs": [None, {}, {"7": {"logprob": -1.0}}]},
     r"no log-prob for the prompt token 6"),
    ({"prompt_token_ids": [1, 5, 6], "prompt_logprobs": [None, {}, {"6": {"logprob": float("nan")}}]},
     r"\['6'\]\.logprob is float nan"),
    ({"prompt_token_ids": [1, 5, 6], "prompt_logprobs": [None, {}, {"6": -1.0}]}, r"\['6'\]\.logprob is missing"),
])
def test_malformed_prompt_logprobs_are_refused(choice, what):
    with pytest.raises(MalformedAnswer, match=what):
        prompt_logprob_scores({"choices": [{"index": 0, **choice}]}, [[5, 6]], [1])


# ------------------------------------------------------------------ records through evalkit eval
@pytest.mark.slow
def test_constrained_voc_records_are_the_same_through_either_format(tiny_chat_model_dir, tmp_path):
    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore
    from evalkit.taskconfig import load_task_file

    task = tmp_path / "voc_served.yaml"
    task.write_text(json.dumps({
        "name": "voc_served", "evaluator": "voc", "data": str(VOC_DATA / "test.csv"),
        "train_data": str(VOC_DATA / "train.csv"), "taxonomy": str(VOC_DATA / "taxonomy.txt"), "id_field": "id",
        "text_field": "text", "label_field": "label", "label_options": "none", "n_resamples": 0, "limit": 6,
        "mode": "constrained"}), encoding="utf-8")
    results, kinds, asked = {}, {}, []
    for native in (False, True):
        with ModelServer(tiny_chat_model_dir, native=native) as server:
            options = LoadOptions(num_concurrent=2, model_args={**FAST, "loglikelihood_scoring": "per_option"})
            checkpoint = Checkpoint.from_string(f"{server.url}#{server.model}", options)
            store = ResultStore(tmp_path / f"{native}.sqlite")
            results[native] = evaluate_checkpoint(checkpoint, [load_task_file(task)], store).tasks["voc_served"]
            kinds[native] = dict(server.kinds)
            asked += [body["prompt_logprobs"] for body in server.requests if native and not body.get("echo")]
    echo, native = results[False], results[True]
    assert native.metrics == echo.metrics and native.settings == echo.settings
    for a, b in zip(echo.samples, native.samples, strict=True):
        assert (a.sample_id, a.prediction, a.target, a.scores, a.extra) == (b.sample_id, b.prediction, b.target,
                                                                            b.scores, b.extra)
    assert kinds[True]["prompt_logprobs"] == kinds[False]["echo"] - 1 > 0  # every request but the probe
    assert set(asked) == {0}  # constrained VOC reads scores alone: the prompt token's log-prob only
