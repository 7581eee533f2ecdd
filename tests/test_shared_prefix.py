"""Shared-prefix scoring of choices on servers equals lm-eval's per-option echo requests.

A stub server answers from a real tiny model (tests/helpers/logprob_server.py): prompt log-probabilities
for ``echo`` requests and top-k next-token log-probabilities for generation-style ones, with a prefix
cache that only the latter use (as vLLM). Both modes must give the same log-likelihoods (1e-4), the same
greedy flags and the same records; choices outside the returned top-k are rescored per option.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.checkpoints import Checkpoint, LoadOptions
from evalkit.checkpoints.answers import MalformedAnswer, next_token_logprobs
from evalkit.checkpoints.resilient_api import returns_next_token_logprobs
from evalkit.checkpoints.shared_prefix import walk_choices
from evalkit.errors import ServerError, UsageError
from tests.helpers.logprob_server import ModelServer

FAST = {"retry_wait": 0.01}
LETTERS = [" A", " B", " C", " D"]
QUESTIONS = [f"Question {i}: which of the four is {word}?\nAnswer:" for i, word in
             enumerate(["red", "the largest planet", "a prime number"])]
PHRASES = [" alpha", " alpha beta", " gamma delta epsilon", " the largest planet", " north east"]


# ------------------------------------------------------------------ the walk alone
@st.composite
def _tries(draw):
    """Sequences over a small vocabulary sharing a context, and a top-k table per prefix."""
    context = draw(st.lists(st.integers(0, 5), min_size=1, max_size=3))
    tails = draw(st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=3), min_size=1, max_size=6))
    sequences = [(context + tail, len(tail)) for tail in tails]
    values = draw(st.lists(st.floats(-8, 0, allow_nan=False), min_size=6, max_size=6))
    k = draw(st.integers(1, 6))
    return sequences, values, k


@given(_tries())
@settings(max_examples=60, deadline=None)
def test_the_walk_sums_what_the_per_option_path_sums_or_hands_the_choice_back(case):
    sequences, values, k = case

    def distribution(prefix):  # a deterministic "model": token t after a prefix scores values[(t + len) % 6]
        return {t: values[(t + len(prefix)) % 6] for t in range(6)}

    def top_k(prefix):
        return dict(sorted(distribution(prefix).items(), key=lambda kv: (-kv[1], kv[0]))[:k])

    asked: list = []
    found = walk_choices(sequences, lambda prefixes: asked.append(prefixes) or [top_k(p) for p in prefixes])
    for (ids, n), result in zip(sequences, found):
        positions = range(len(ids) - n, len(ids))
        inside = all(ids[p] in top_k(tuple(ids[:p])) for p in positions)
        assert (result is None) == (not inside)
        if inside:
            total = sum(distribution(tuple(ids[:p]))[ids[p]] for p in positions)
            greedy = all(distribution(tuple(ids[:p]))[ids[p]] == max(top_k(tuple(ids[:p])).values()) for p in positions)
            assert result == (pytest.approx(total), greedy)
    for level in asked:  # each distinct prefix asked once per level
        assert len(level) == len(set(level))
    assert len(asked[0]) == 1  # one shared context: one request for the first level


def test_malformed_next_token_answers_are_refused():
    good = {"index": 0, "logprobs": {"top_logprobs": [{"token_id:3": -0.5}]}}
    for bad in ({"choices": [{**good, "index": 1}]}, {"choices": [{"index": 0, "logprobs": None}]},
                {"choices": [{"index": 0, "logprobs": {"top_logprobs": [{" A": -0.5}]}}]},
                {"choices": [{"index": 0, "logprobs": {"top_logprobs": [{"token_id:3": float("nan")}]}}]},
                {"choices": [{"index": 0, "logprobs": {"top_logprobs": [{"token_id:3": 2.0}]}}]},
                {"choices": [good, good]}, [], "text"):
        with pytest.raises(MalformedAnswer):
            next_token_logprobs(bad, 1)


# ------------------------------------------------------------------ through a server
def _lm(server: ModelServer, scoring: str, max_retries: int = 5, **model_args):
    options = LoadOptions(num_concurrent=2, endpoint="completions", max_retries=max_retries,
                          model_args={**FAST, "loglikelihood_scoring": scoring, **model_args})
    return Checkpoint.from_string(f"{server.url}#{server.model}", options).lm


def _instances(pairs):
    from lm_eval.api.instance import Instance

    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


def _both_modes(server: ModelServer, pairs, **model_args):
    """Per-option scores, shared-prefix scores, the LM, and the server's (kinds, prefilled) between the two."""
    lm = _lm(server, "per_option", **model_args)
    per_option = lm.loglikelihood(_instances(pairs))
    before = dict(server.kinds), server.prefilled
    lm.loglikelihood_scoring = "auto"
    shared = lm.loglikelihood(_instances(pairs))
    return per_option, shared, lm, before


def _assert_equal(per_option, shared):
    assert [greedy for _, greedy in shared] == [greedy for _, greedy in per_option]
    assert [ll for ll, _ in shared] == pytest.approx([ll for ll, _ in per_option], abs=1e-4)


@pytest.mark.parametrize("model_args", [{}, {"tokenized_requests": "true"}])
def test_single_token_choices_cost_one_request_per_question(tiny_chat_model_dir, model_args):
    pairs = [(q, letter) for q in QUESTIONS for letter in LETTERS]
    with ModelServer(tiny_chat_model_dir, whole_vocabulary=True) as server:
        per_option, shared, lm, (before, prefilled_before) = _both_modes(server, pairs, **model_args)
        echo_prefill = prefilled_before
        shared_prefill = server.prefilled - prefilled_before
    _assert_equal(per_option, shared)
    assert lm.uses_shared_prefix()
    stats = lm.request_stats
    assert stats.next_token_requests == len(QUESTIONS) and stats.rescored_per_option == stats.exact_token_requests == 0
    assert server.kinds["echo"] == before["echo"]  # no per-option request in the shared mode
    assert shared_prefill <= 0.35 * echo_prefill  # one prefill of each question instead of four


def _likely_choices(server: ModelServer, question: str, n: int) -> list[str]:
    """Single-token continuations among the model's ``n`` likeliest after ``question`` (inside its top-n)."""
    tokenizer = server.echo_tokenizer
    ids = tokenizer(question).input_ids
    top = server._log_softmax(ids)[-1].topk(n).indices.tolist()
    texts = [tokenizer.decode([t]) for t in top]
    return [text for t, text in zip(top, texts) if tokenizer(question + text).input_ids == ids + [t]]


@pytest.mark.parametrize("server_options, exact", [({}, True), ({"renormalized": True}, False), ({"allowed": False}, False)])
def test_choices_outside_the_top_k_are_asked_for_alone_or_rescored_per_option_and_equal(tiny_chat_model_dir,
                                                                                        server_options, exact,
                                                                                        monkeypatch):
    """Outside the top 3: one request allowing only that token where the server returns its raw log-prob
    (vLLM); where it renormalises over the allowed token or ignores the whitelist, the token's echo request."""
    from evalkit.checkpoints import shared_prefix

    monkeypatch.setattr(shared_prefix, "WALK_MAX_TOKENS", 64)
    with ModelServer(tiny_chat_model_dir, max_top=3, **server_options) as server:
        pairs = [(q, c) for q in QUESTIONS for c in _likely_choices(server, q, 3) + PHRASES[:2] + LETTERS[:2]]
        per_option, shared, lm, _ = _both_modes(server, pairs)
    _assert_equal(per_option, shared)
    outside = 4 * len(QUESTIONS)
    assert len(pairs) > outside and lm._exact_tokens_checked == exact
    stats = lm.request_stats
    assert (stats.rescored_per_option, stats.exact_token_requests > 0) == ((0, True) if exact else (outside, False))


def test_multi_token_choices_walk_the_trie_and_equal_the_per_option_path(tiny_chat_model_dir, monkeypatch):
    from evalkit.checkpoints import shared_prefix

    monkeypatch.setattr(shared_prefix, "WALK_MAX_TOKENS", 64)  # walked here; by default they go per option
    pairs = [(q, phrase) for q in QUESTIONS for phrase in PHRASES]
    with ModelServer(tiny_chat_model_dir, whole_vocabulary=True) as server:
        per_option, shared, lm, (before, prefilled_before) = _both_modes(server, pairs)
        shared_prefill = server.prefilled - prefilled_before
    _assert_equal(per_option, shared)
    assert lm.request_stats.rescored_per_option == 0
    # one request per distinct prefix of the trie: fewer than one per continuation token
    tokens = sum(len(lm.tok_encode(q + p)) - len(lm.tok_encode(q)) for q, p in pairs)
    assert len(QUESTIONS) < lm.request_stats.next_token_requests < tokens
    assert shared_prefill < prefilled_before


def test_servers_without_next_token_logprobs_keep_the_per_option_path(tiny_chat_model_dir):
    pairs = [(QUESTIONS[0], letter) for letter in LETTERS]
    with ModelServer(tiny_chat_model_dir, token_ids=False) as server:  # keys by text: ambiguous, not used
        per_option, shared, lm, _ = _both_modes(server, pairs)
        assert not returns_next_token_logprobs(f"{server.url}/completions", server.model, {}, [1, 2], 20)
        with pytest.raises(UsageError, match="loglikelihood_scoring=shared_prefix needs"):
            _lm(server, "shared_prefix").loglikelihood(_instances(pairs))
    assert shared == per_option and not lm.uses_shared_prefix() and lm.request_stats.next_token_requests == 0


def test_an_unknown_scoring_mode_names_the_model_argument(tiny_chat_model_dir):
    with ModelServer(tiny_chat_model_dir) as server, pytest.raises(UsageError, match="loglikelihood_scoring must be"):
        _lm(server, "fastest")


def test_malformed_next_token_answers_are_retried_then_a_clear_error(tiny_chat_model_dir, monkeypatch):
    pairs = [(QUESTIONS[0], letter) for letter in LETTERS]
    with ModelServer(tiny_chat_model_dir, whole_vocabulary=True) as server:
        lm = _lm(server, "auto", max_retries=1)
        assert lm.uses_shared_prefix()
        monkeypatch.setattr(server, "_top", lambda row, k, as_ids: {"token_id:1": float("nan")})
        with pytest.raises(ServerError, match="malformed answer: choices.0..logprobs.top_logprobs.0..'token_id:1'. is "
                                              "float nan"):
            lm.loglikelihood(_instances(pairs))
    assert lm.request_stats.retries == 1


# ------------------------------------------------------------------ records through evalkit eval
@pytest.mark.slow
def test_records_are_the_same_in_both_modes(tiny_chat_model_dir, tmp_path):
    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore
    from evalkit.taskconfig import load_task_file
    from tests.helpers.mmlu import write_mmlu

    data = write_mmlu(tmp_path / "mmlu", {"anatomy": "ABCDA", "astronomy": "CDCB"})
    task = tmp_path / "mmlu_small.yaml"
    task.write_text(json.dumps({"name": "mmlu_small", "evaluator": "lm_eval", "lm_eval_task": "mmlu",
                                "data": str(data), "batch_docs": 4}), encoding="utf-8")
    results = {}
    with ModelServer(tiny_chat_model_dir, max_top=5) as server:
        for scoring in ("per_option", "auto"):
            options = LoadOptions(num_concurrent=2, model_args={**FAST, "loglikelihood_scoring": scoring})
            checkpoint = Checkpoint.from_string(f"{server.url}#{server.model}", options)
            result = evaluate_checkpoint(checkpoint, [load_task_file(task)], ResultStore(tmp_path / f"{scoring}.sqlite"))
            results[scoring] = result.tasks["mmlu_small"]
    per_option, shared = results["per_option"], results["auto"]
    assert shared.metrics == per_option.metrics
    assert shared.settings.pop("loglikelihood_scoring") == "shared_prefix"
    assert per_option.settings.pop("loglikelihood_scoring") == "per_option"
    assert shared.settings == per_option.settings
    for a, b in zip(per_option.samples, shared.samples, strict=True):
        assert (a.sample_id, a.prediction, a.target, a.correct, a.scores) == (b.sample_id, b.prediction, b.target,
                                                                              b.correct, b.scores)
        assert b.extra["loglikelihoods"] == pytest.approx(a.extra["loglikelihoods"], abs=1e-4)
        # acc_norm's decision (log-likelihood per byte of the choice) is the same too
        norm = [max(range(4), key=lambda i, r=r: r.extra["loglikelihoods"][i] / len(r.extra["choices"][i]))
                for r in (a, b)]
        assert norm[0] == norm[1]
    assert shared.timing["next_token_requests"] > 0 and per_option.timing["next_token_requests"] == 0


@pytest.mark.slow
def test_transformers_serve_is_probed_and_scored_per_option_when_it_cannot(served_model_dirs, transformers_server):
    """End to end through `transformers serve` with a chat-template model: evalkit probes for next-token
    log-probabilities; where the server returns them both modes must agree, where not (transformers 5.x
    lists `logprobs` among its unused completion fields and takes text prompts only) the LM stays per option."""
    from tests.helpers.transformers_serve import served_models

    pairs = [(QUESTIONS[0], letter) for letter in LETTERS]
    model_dir = served_model_dirs["plain"]  # the one other served tests load: one model process fewer
    url = served_models(transformers_server, model_dir)
    options = LoadOptions(num_concurrent=2, model_args=dict(FAST))
    lm = Checkpoint.from_string(f"{url}#{model_dir}", options).lm
    supported = returns_next_token_logprobs(f"{url}/completions", str(model_dir), {},
                                            lm.tokenizer("Hello").input_ids, 20)
    assert lm.uses_shared_prefix() == supported
    if not supported:
        with pytest.raises(UsageError, match="returned no prompt logprobs"):  # neither mode can score here
            lm.loglikelihood(_instances(pairs))
        pytest.skip("transformers serve returns no log-probabilities (neither next-token nor echo): "
                    "shared-prefix scoring cannot be compared with the per-option path on it")
    shared = lm.loglikelihood(_instances(pairs))
    lm.loglikelihood_scoring = "per_option"
    _assert_equal(lm.loglikelihood(_instances(pairs)), shared)
