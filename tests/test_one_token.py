"""One-token continuations read a batch at a time: lm-eval's answers bit for bit, from the same batches."""

from __future__ import annotations

import contextlib

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evalkit.general.lmeval.one_token import loglikelihood_tokens, takes  # noqa: E402
from evalkit.general.lmeval.scored_logits import scored_logits_only  # noqa: E402


@pytest.fixture(scope="module")
def hflm(tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_model_dir), batch_size=3, device="cpu")


@contextlib.contextmanager
def _model_inputs(lm):
    """Every padded input tensor ``lm._model_call`` gets, in order."""
    inputs: list = []
    call = lm._model_call

    def spied(batch, *args, **kwargs):
        inputs.append(batch.clone())
        return call(batch, *args, **kwargs)

    lm._model_call = spied
    try:
        yield inputs
    finally:
        del lm._model_call


def _both(lm, requests, trimmed: bool):
    """(lm-eval's answers, its model inputs), (ours, ours): the same ``scored_logits_only`` state for both."""
    results = []
    for score in (lambda: lm._loglikelihood_tokens(requests, disable_tqdm=True),
                  lambda: loglikelihood_tokens(lm, requests)):
        guard = scored_logits_only(lm, 1) if trimmed else contextlib.nullcontext()
        with _model_inputs(lm) as inputs, guard:
            results.append((score(), inputs))
    return results


contexts = st.lists(st.integers(0, 511), min_size=1, max_size=30)
# a question: one context list shared by its letters (as evalkit's encoder hands them), or copies of it
questions = st.tuples(contexts, st.lists(st.integers(0, 511), min_size=1, max_size=4), st.booleans())


@given(st.lists(questions, min_size=1, max_size=8), st.booleans(), st.sampled_from([None, 12]))
@settings(max_examples=25, deadline=None)
def test_answers_and_batches_equal_lm_evals_loop(hflm, drawn, trimmed, window):
    """Random contexts (token 0 included, equal contexts in separate lists, repeated letters, contexts longer
    than a 12-token window cut from the left): the same floats, greedy flags, order of answers, and the same
    padded tensors sent to the model in the same order."""
    requests = []
    for ctx, letters, shared in drawn:
        for letter in letters:
            requests.append(((f"{ctx}", f"{letter}"), ctx if shared else list(ctx), [letter]))
    assert takes(hflm, requests)
    hflm._max_length = window  # lm-eval's max_length is the model's unless this is set
    try:
        (theirs, their_inputs), (ours, our_inputs) = _both(hflm, requests, trimmed)
    finally:
        hflm._max_length = None
    assert ours == theirs
    assert [type(v) for pair in ours for v in pair] == [type(v) for pair in theirs for v in pair]
    assert len(our_inputs) == len(their_inputs)
    assert all(a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
               for a, b in zip(our_inputs, their_inputs))


def test_mmlu_like_questions_take_one_row_each(hflm):
    """Four letters on one context are one row of one batch; the answers come back in request order."""
    question = list(range(1, 40))
    other = list(range(3, 20))
    requests = [(("q", f" {c}"), question, [c]) for c in (10, 11, 12, 13)] + [(("o", " 5"), other, [5])]
    (theirs, _), (ours, inputs) = _both(hflm, requests, trimmed=True)
    assert ours == theirs
    assert [tuple(t.shape) for t in inputs] == [(2, 39)]


def test_what_it_does_not_take_goes_to_lm_evals_loop(hflm, monkeypatch):
    multi = [(("a", "b"), [1, 2, 3], [4, 5])]
    empty = [(("", "b"), [], [4])]
    for requests in (multi, empty):
        assert not takes(hflm, requests)
    one = [(("a", "b"), [1, 2, 3], [4])]
    assert takes(hflm, one)
    monkeypatch.setattr(hflm, "logits_cache", False)  # lm-eval then scores each request on its own row
    assert not takes(hflm, one)
    monkeypatch.undo()
    monkeypatch.setattr(hflm, "batch_size_per_gpu", "auto")
    assert not takes(hflm, one)
    monkeypatch.undo()

    calls = []

    class OwnLoop(type(hflm)):
        def _loglikelihood_tokens(self, requests, disable_tqdm=False):
            calls.append(requests)
            return [(0.0, True)] * len(requests)

    monkeypatch.setattr(hflm, "__class__", OwnLoop)
    assert not takes(hflm, one)  # a subclass's own loop is never bypassed
    assert loglikelihood_tokens(hflm, one) == [(0.0, True)] and calls == [one]
    monkeypatch.undo()
    assert loglikelihood_tokens(hflm, multi) == hflm._loglikelihood_tokens(multi, disable_tqdm=True)
