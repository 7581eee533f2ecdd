"""Only the scored logits through the log-softmax: same log-likelihoods bit for bit, fewer positions."""

from __future__ import annotations

import contextlib

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evalkit.general.lmeval.scored_logits import positions_to_keep, scored_logits_only  # noqa: E402


@given(st.lists(st.tuples(st.lists(st.integers(0, 5), min_size=1, max_size=12), st.integers(1, 4)),
                min_size=1, max_size=6))
@settings(max_examples=60, deadline=None)
def test_the_kept_positions_cover_every_rows_continuation(rows):
    """Right-padded with 0 (real tokens may be 0 too): the last k positions hold every [len - cont, len)."""
    import torch

    rows = [(tokens, min(cont, len(tokens))) for tokens, cont in rows]
    width = max(len(tokens) for tokens, _ in rows)
    batch = torch.tensor([tokens + [0] * (width - len(tokens)) for tokens, _ in rows])
    keep = positions_to_keep(batch, max(cont for _, cont in rows))
    assert 1 <= keep <= width
    assert all(len(tokens) - cont >= width - keep for tokens, cont in rows)


@pytest.fixture(scope="module")
def hflm(tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_model_dir), batch_size=4, device="cpu")


@contextlib.contextmanager
def _logits_widths(lm):
    """(input positions, logits positions) of every ``_model_call`` of ``lm``: what lm-eval's log-softmax gets."""
    widths: list[tuple[int, int]] = []
    call = lm._model_call

    def spied(inputs, *args, **kwargs):
        out = call(inputs, *args, **kwargs)
        widths.append((int(inputs.shape[1]), int(out.shape[1])))
        return out

    lm._model_call = spied
    try:
        yield widths
    finally:
        del lm._model_call


@given(st.lists(st.tuples(st.lists(st.integers(1, 511), min_size=1, max_size=40),
                          st.lists(st.integers(0, 511), min_size=1, max_size=5)), min_size=1, max_size=9))
@settings(max_examples=6, deadline=None)
def test_log_likelihoods_equal_lm_evals_bit_for_bit(hflm, requests):
    """Random contexts and (multi-token) continuations through HFLM: the same floats and greedy flags; the
    log-softmax never got more positions than the model was given."""
    requests = [(("", ""), ctx, cont) for ctx, cont in requests]
    full = hflm._loglikelihood_tokens(requests, disable_tqdm=True)
    model = hflm._model
    with _logits_widths(hflm) as shapes, scored_logits_only(hflm, max(len(cont) for _, _, cont in requests)):
        trimmed = hflm._loglikelihood_tokens(requests, disable_tqdm=True)
    assert hflm._model is model
    assert trimmed == full
    assert shapes and all(kept <= width for width, kept in shapes)


def test_mmlu_batches_keep_a_few_positions_only(hflm):
    """MMLU-like requests (one-token continuations of similar lengths): a handful of the positions."""
    requests = [(("", ""), list(range(1, 200 + i)), [7]) for i in range(4)]
    with _logits_widths(hflm) as widths, scored_logits_only(hflm, 1):
        hflm._loglikelihood_tokens(requests, disable_tqdm=True)
    assert widths == [(202, 4)]


def test_a_model_wrapped_by_accelerate_is_left_alone():
    class Lm:
        _model = object()
        model = object()  # what HFLM.model returns with an accelerator: the unwrapped model, not _model

    lm = Lm()
    with scored_logits_only(lm, 1):
        assert lm._model is Lm._model
