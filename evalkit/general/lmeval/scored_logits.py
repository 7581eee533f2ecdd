"""Only the scored logits through lm-eval's log-softmax, not a vocabulary row per padded token.

``HFLM._loglikelihood_tokens`` takes a log-softmax over the logits of *every* position of a padded batch
and then keeps, per row, the continuation's positions. For MMLU that is one position in ~360: the
log-softmax over all the others is work thrown away (``bench/general_overhead``). lm-eval's slicing
already allows a logits tensor shorter than its input (``ctx_len = inplen + (logits.shape[0] -
padding_len_inp)``, meant for prompt-tuning's virtual tokens): with the first ``L - k`` positions cut
off, every row's slice ``[inplen - contlen, inplen)`` lands on the same logits as before, as long as ``k``
covers the earliest continuation start of the batch. The log-softmax is per position, so the kept
positions get the same numbers (tested bit for bit against ``lm_eval.simple_evaluate``).

The language-model head itself still runs on every position: asking the model for the last ``k`` only
(``logits_to_keep``) changes the shape of its matrix product, and with it the last bits of some
log-likelihoods (seen at batch size 2 on the tiny test model), so stored records would differ.

``k`` is found from the padded input alone: lm-eval right-pads with token id 0, so a row's last non-zero
token bounds its length from below (a real trailing 0 only makes ``k`` larger), and ``k = L - shortest
row + longest continuation`` keeps every position any row scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["scored_logits_only", "positions_to_keep"]


def positions_to_keep(inputs: Any, max_continuation: int) -> int:
    """How many last positions of a right-padded (with 0) batch hold every row's continuation logits.

    Examples
    --------
    >>> import torch
    >>> positions_to_keep(torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]]), 1)
    3
    >>> positions_to_keep(torch.tensor([[5, 6, 7, 8], [5, 6, 7, 8]]), 2)
    2
    >>> positions_to_keep(torch.tensor([[0, 0], [5, 0]]), 1)
    2
    """
    import torch

    width = int(inputs.shape[-1])
    nonzero = inputs != 0
    last = width - 1 - torch.flip(nonzero, dims=[-1]).int().argmax(dim=-1)  # last non-zero position per row
    lengths = torch.where(nonzero.any(dim=-1), last + 1, torch.zeros_like(last))
    return max(1, min(width, width - int(lengths.min()) + max_continuation))


class _LastPositions:
    """A causal LM whose output keeps only the logits :func:`positions_to_keep` says are scored."""

    def __init__(self, model: Any, max_continuation: int):
        self._evalkit_model = model
        self._evalkit_max_continuation = max_continuation

    def __call__(self, input_ids: Any, **kwargs: Any) -> Any:
        out = self._evalkit_model(input_ids, **kwargs)
        keep = positions_to_keep(input_ids, self._evalkit_max_continuation)
        out.logits = out.logits[:, -keep:]  # a view: lm-eval's log-softmax then runs over these rows only
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._evalkit_model, name)


@contextlib.contextmanager
def scored_logits_only(lm: Any, max_continuation: int) -> Iterator[None]:
    """While open, ``lm``'s (an unwrapped causal ``HFLM``) model hands lm-eval only the scored logits.

    No-op for a model wrapped by Accelerate (``lm.model`` is not ``lm._model``); the model is put back on
    exit."""
    model = getattr(lm, "_model", None)
    if model is None or max_continuation < 1 or lm.model is not model:
        yield
        return
    lm._model = _LastPositions(model, max_continuation)
    try:
        yield
    finally:
        lm._model = model
