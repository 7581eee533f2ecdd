"""Server replies are checked, never guessed: a 200 whose body lacks what the request needs is retried like
a transient failure and then stops the run with ServerError (exit 4), on both endpoints, for generation
and log-likelihood; a missing answer never becomes an empty one or a number."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.checkpoints import Checkpoint, LoadOptions
from evalkit.checkpoints.answers import MalformedAnswer, echo_logprobs, generated_texts
from evalkit.errors import ServerError
from tests.helpers.cli import make_voc_task, run_cli
from tests.helpers.flaky_server import FlakyServer, answer_for

FAST = {"retry_wait": 0.01}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))


def _lm(server: FlakyServer, endpoint: str, **model_args):
    options = LoadOptions(endpoint=endpoint, max_retries=2, num_concurrent=2, model_args={**FAST, **model_args})
    return Checkpoint.from_string(f"{server.url}#{server.model}", options).lm


def _generate(lm, n: int = 3):
    from lm_eval.api.instance import Instance

    return lm.generate_until([Instance("generate_until", {}, (f"prompt {i}", {"until": ["\n"], "max_gen_toks": 8}), i)
                              for i in range(n)])


def _first_choice(reply: dict) -> dict:
    return reply["choices"][0]


def _drop(key):
    return lambda reply: {k: v for k, v in reply.items() if k != key}


def _set_in_choice(path: tuple, value):
    def malform(reply):
        target = _first_choice(reply)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return reply
    return malform


GENERATION_SHAPES = {
    "no choices": (_drop("choices"), "`choices` is missing"),
    "empty choices": (lambda r: {**r, "choices": []}, "`choices` is an empty list"),
    "an error object": (lambda r: {"error": {"message": "model overloaded"}}, "it says: .*model overloaded"),
    "not an object": (lambda r: "OK", "the reply is str 'OK'"),
    "a choice that is no object": (lambda r: {**r, "choices": ["x"]}, r"choices\[0\] is str"),
    "a bad index": (_set_in_choice(("index",), 7), r"choices\[0\].index is int 7"),
}
COMPLETION_SHAPES = {
    **GENERATION_SHAPES,
    "null text": (_set_in_choice(("text",), None), r"choices\[0\].text is null, not text"),
    "numeric text": (_set_in_choice(("text",), 3), r"choices\[0\].text is int 3"),
    "no text": (lambda r: {**r, "choices": [{"index": 0}]}, r"choices\[0\].text is missing"),
}
CHAT_SHAPES = {
    **GENERATION_SHAPES,
    "null content": (_set_in_choice(("message", "content"), None),
                     r"choices\[0\].message.content is null, not text \(finish_reason 'stop'\)"),
    "no message": (lambda r: {**r, "choices": [{"index": 0, "finish_reason": "length"}]},
                   r"message.content is missing"),
    "content as parts": (_set_in_choice(("message", "content"), [{"type": "text", "text": "x"}]),
                         r"message.content is list"),
}


@pytest.mark.parametrize("endpoint, shape", [("completions", s) for s in COMPLETION_SHAPES]
                         + [("chat", s) for s in CHAT_SHAPES])
def test_a_malformed_generation_reply_is_retried_then_stops_naming_server_kind_and_field(endpoint, shape):
    malform, what = (COMPLETION_SHAPES if endpoint == "completions" else CHAT_SHAPES)[shape]
    with FlakyServer(malform=malform) as server:
        lm = _lm(server, endpoint)
        with pytest.raises(ServerError, match=rf"server http://127\.0\.0\.1:\d+/v1 failed 3 times in a row on a "
                                              rf"generation request \(malformed answer: .*{what}") as info:
            _generate(lm, n=1)
    assert info.value.exit_code == 4
    assert server.answered == 3 and lm.request_stats.retries == 2  # retried like a 503, then given up


@pytest.mark.parametrize("endpoint, shape", [("completions", "no choices"), ("chat", "null content")])
def test_a_malformed_reply_that_clears_up_gives_the_answers_of_a_clean_server(endpoint, shape):
    malform = (COMPLETION_SHAPES if endpoint == "completions" else CHAT_SHAPES)[shape][0]
    with FlakyServer(malform=malform, malformed_replies=2) as server:
        outputs = _generate(_lm(server, endpoint), n=4)
    assert outputs == [answer_for(f"prompt {i}", server.answers) for i in range(4)]
    assert server.malformed == 2


def test_an_empty_string_is_a_valid_answer_and_stays_one():
    with FlakyServer(answers=[""]) as server:
        assert _generate(_lm(server, "chat"), n=2) == ["", ""]


# ------------------------------------------------------------------ log-likelihood (completions, echo=true)


def _window(reply, value, *, field="token_logprobs"):
    """Put ``value`` into the continuation window (the second to last echoed position)."""
    _first_choice(reply)["logprobs"][field][-2] = value
    return reply


LOGLIKELIHOOD_SHAPES = {
    "no choices": (_drop("choices"), "`choices` is missing"),
    "no logprobs": (_set_in_choice(("logprobs",), None), r"logprobs is null: no prompt log-probs"),
    "short echo": (lambda r: _set_in_choice(("logprobs",), {"token_logprobs": [None, -1.0],
                                                             "top_logprobs": [None, {"a": -1.0}]})(r),
                   r"has 2 token log-probs and 2 top log-probs for a prompt whose continuation has \d+ tokens"),
    "NaN": (lambda r: _window(r, math.nan), r"token_logprobs\[\d+\] is float nan, not a finite log-probability"),
    "-Infinity": (lambda r: _window(r, -math.inf), r"is float -inf, not a finite"),
    "a positive log-prob": (lambda r: _window(r, 2.5), r"is float 2.5, not a finite log-probability <= 0"),
    "a string": (lambda r: _window(r, "-0.5"), r"is str '-0.5'"),
    "null in the window": (lambda r: _window(r, None), r"token_logprobs\[\d+\] is null"),
    "no top log-probs": (lambda r: _set_in_choice(("logprobs", "top_logprobs"), None)(r),
                         r"top_logprobs is null, not a list"),
    "an empty top entry": (lambda r: _window(r, {}, field="top_logprobs"), r"top_logprobs\[\d+\] is an empty dict"),
}


@pytest.fixture(scope="module")
def echo_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _loglikelihood(lm, n: int = 1):
    from lm_eval.api.instance import Instance

    return lm.loglikelihood([Instance("loglikelihood", {}, (f"The quick brown {i}", " fox jumps"), i)
                             for i in range(n)])


@pytest.mark.parametrize("shape", list(LOGLIKELIHOOD_SHAPES))
def test_a_malformed_loglikelihood_reply_is_retried_then_stops(shape, tiny_model_dir, echo_tokenizer):
    malform, what = LOGLIKELIHOOD_SHAPES[shape]
    with FlakyServer(prompt_logprobs=True, echo_tokenizer=echo_tokenizer) as server:
        lm = _lm(server, "completions", tokenizer=str(tiny_model_dir))
        lm.check_prompt_logprobs()  # the probes see a healthy server; the evaluation requests do not
        assert not lm.uses_shared_prefix()  # this stub has no next-token log-probs: echo requests only
        server.malform = malform
        with pytest.raises(ServerError, match=rf"failed 3 times in a row on a log-likelihood request "
                                              rf"\(malformed answer: .*{what}"):
            _loglikelihood(lm)
    assert server.malformed == 3


def test_a_malformed_loglikelihood_reply_that_clears_up_scores_as_a_clean_one(tiny_model_dir, echo_tokenizer):
    scores = []
    for malformed_replies in (0, 2):
        with FlakyServer(prompt_logprobs=True, echo_tokenizer=echo_tokenizer) as server:
            lm = _lm(server, "completions", tokenizer=str(tiny_model_dir))
            lm.check_prompt_logprobs()
            lm.uses_shared_prefix()
            server.malform, server.malformed_replies = LOGLIKELIHOOD_SHAPES["NaN"][0], malformed_replies
            scores.append(_loglikelihood(lm, n=3))
    assert scores[0] == scores[1] and all(math.isfinite(score) and score < 0 for score, _ in scores[0])


# ------------------------------------------------------------------ the command line: exit 4, one line


def test_cli_stops_with_exit_4_on_null_chat_content_and_writes_no_result(tmp_path, store_path):
    """The reported case: `--endpoint auto` picks the chat endpoint, the server answers content null."""
    task = make_voc_task(tmp_path / "task", n=4)
    with FlakyServer(malform=_set_in_choice(("message", "content"), None)) as server:
        code, _, err = run_cli(["eval", f"{server.url}#{server.model}", "--tasks", str(task), "--max-retries", "1",
                                "--model-args", "retry_wait=0.01", "-o", str(tmp_path / "out")])
    lines = err.strip().splitlines()
    assert code == 4, err
    assert lines[-1].startswith(f"evalkit: error: server {server.url} failed 2 times in a row on a generation "
                                f"request (malformed answer: choices[0].message.content is null")
    assert "server is at fault" in lines[-1] and "Traceback" not in err
    assert not (tmp_path / "out" / "results").exists() or not any((tmp_path / "out" / "results").iterdir())


# ------------------------------------------------------------------ fuzz: any JSON reply


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=12)
_choice = st.fixed_dictionaries({}, optional={"index": st.integers(-1, 3) | _json, "text": st.text(max_size=4) | _json,
                                              "message": st.fixed_dictionaries({}, optional={"content": _json}) | _json,
                                              "finish_reason": _json,
                                              "logprobs": st.fixed_dictionaries({}, optional={
                                                  "token_logprobs": st.lists(st.floats() | _json, max_size=8),
                                                  "top_logprobs": st.lists(st.dictionaries(st.text(max_size=2),
                                                                                           st.floats()) | _json,
                                                                           max_size=8)}) | _json})
_reply = st.fixed_dictionaries({}, optional={"choices": st.lists(_choice, max_size=3) | _json, "error": _json}) | _json


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=_reply, n=st.integers(1, 3), chat=st.booleans())
def test_any_generation_reply_gives_n_strings_or_malformed_answer(reply, n, chat):
    try:
        texts = generated_texts(json.loads(json.dumps(reply)), n, chat=chat)
    except MalformedAnswer as exc:
        assert str(exc)
        return
    assert len(texts) == n and all(isinstance(text, str) for text in texts)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=_reply, n=st.integers(1, 3), continuation=st.integers(1, 3))
def test_any_loglikelihood_reply_gives_finite_scores_or_malformed_answer(reply, n, continuation):
    inputs, ctxlens = [[1] * (continuation + 1)] * n, [1] * n
    try:
        scores = echo_logprobs(json.loads(json.dumps(reply)), inputs, ctxlens)
    except MalformedAnswer as exc:
        assert str(exc)
        return
    assert len(scores) == n
    assert all(math.isfinite(score) and score <= n * 1e-3 and isinstance(greedy, bool) for score, greedy in scores)


@pytest.mark.parametrize("server_args, finding", [
    ({"always_status": 500}, r"HTTP 500"),
    ({"malform": lambda reply: ["not", "a", "completion"]}, r"a reply without completion `choices`"),
    ({"malform": lambda reply: {"choices": "nothing"}}, r"a reply without completion `choices`"),
])
def test_a_failing_prompt_logprobs_probe_is_the_servers_fault_not_a_missing_feature(server_args, finding):
    """A probe answered by a 5xx or by something that is not a completion says nothing about the server's
    features: it is retried, then stops as the server's fault (ServerError, exit 4), never "no prompt logprobs"."""
    with FlakyServer(prompt_logprobs=True, **server_args) as server:
        lm = _lm(server, "completions")
        with pytest.raises(ServerError, match=rf"no usable answer to the prompt-logprobs probe, 3 times in a row "
                                              rf"\({finding}\)"):
            lm.check_prompt_logprobs()
    assert server.posts == 3


def test_a_prompt_logprobs_probe_that_fails_once_is_retried(tiny_model_dir, echo_tokenizer):
    with FlakyServer(prompt_logprobs=True, echo_tokenizer=echo_tokenizer, fail_every=1, fail_status=503) as server:
        lm = _lm(server, "completions", tokenizer=str(tiny_model_dir))
        lm.check_prompt_logprobs()  # the first probe fails; the same body is not failed twice in a row
    assert server.statuses[503] == 1 and server.statuses[200] == 1
