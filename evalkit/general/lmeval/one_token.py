"""Log-likelihoods of one-token continuations read a batch at a time, not a request at a time.

MMLU asks for one context and four one-token continuations (the answer letters). lm-eval's
``HFLM._loglikelihood_tokens`` groups the four on their shared context (its ``Collator``), runs one padded
batch of contexts through the model, and then, in Python, one request at a time: a tensor for the
continuation, an argmax, a comparison, a gather, a sum. On full MMLU with a small model that loop, with
the ``Collator``'s keys (a tuple of ~1,000 ids per request at 5 shots), cost ~20 CPU s: about 0.07x of the
model's own forward time (``bench/general_overhead``).

:func:`loglikelihood_tokens` sends the same padded batches in the same order through the same
``_model_call`` and the same log-softmax, then reads every request of a batch with one indexing: the
log-probability at the position before the continuation, and whether the argmax there is the
continuation. The floats and greedy flags are lm-eval's bit for bit (a one-element sum is the element;
``argmax`` takes the first maximum in both), which ``tests/test_one_token.py`` checks against lm-eval's
own loop on random requests, padded tensors included.

It takes only requests where that equality is plain: a causal ``HFLM`` whose ``_loglikelihood_tokens`` is
lm-eval's, with an integer batch size and its one-token cache on (``logits_cache``: the grouping), every
continuation one token and every context non-empty. Anything else goes to lm-eval's loop. A context
longer than the model's window is cut from the left as lm-eval cuts it (with its warning).
"""

from __future__ import annotations

from typing import Any

__all__ = ["loglikelihood_tokens", "takes"]

Request = tuple  # ((context, continuation) strings, context ids, continuation ids), lm-eval's request


def takes(lm: Any, requests: list[Request]) -> bool:
    """Whether :func:`loglikelihood_tokens` scores ``requests`` itself (else lm-eval's loop does)."""
    from lm_eval.models.huggingface import HFLM

    if not (isinstance(lm, HFLM) and type(lm)._loglikelihood_tokens is HFLM._loglikelihood_tokens):
        return False
    batch = lm.batch_size
    if lm.backend != "causal" or not lm.logits_cache or not isinstance(batch, int) or batch < 1:
        return False
    return all(len(cont) == 1 and len(ctx) > 0 for _, ctx, cont in requests)


def loglikelihood_tokens(lm: Any, requests: list[Request]) -> list[tuple[float, bool]]:
    """``lm._loglikelihood_tokens(requests, disable_tqdm=True)``: ``(log-probability, greedy)`` per request.

    Requests :func:`takes` refuses go to lm-eval's loop unchanged.
    """
    if not takes(lm, requests):
        return lm._loglikelihood_tokens(requests, disable_tqdm=True)
    answers: list[Any] = [None] * len(requests)
    window = lm.max_length  # a property lm-eval recomputes from the model's config on every read
    for batch in _batches(requests, lm.batch_size):
        scored = _score_batch(lm, requests, batch, window)
        for index, answer in zip((i for group in batch for i in group), scored):
            answers[index] = answer
            if requests[index][0] is not None:  # lm-eval's loop feeds its request cache the same way
                lm.cache_hook.add_partial("loglikelihood", requests[index][0], answer)
    return answers


def _batches(requests: list[Request], size: int):
    """Request indices grouped by context, in lm-eval's ``Collator`` order, ``size`` groups at a time.

    The ``Collator`` groups by ``context + continuation[:-1]`` (the context, for one-token continuations),
    keeps each group's members in request order and sorts the groups by their first member's
    ``(-len(ids), ids)``, ``ids`` = context + continuation. The tuple of a context is built once per list
    object (an MMLU question's four requests share one) but compared by value, as lm-eval's is."""
    keys: dict[int, tuple[int, ...]] = {}
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (_, ctx, _) in enumerate(requests):
        key = keys.get(id(ctx))
        if key is None:
            key = keys[id(ctx)] = tuple(ctx)
        groups.setdefault(key, []).append(index)
    order = sorted(groups.items(), key=lambda item: (-len(item[0]) - 1, item[0] + tuple(requests[item[1][0]][2])))
    members = [indices for _, indices in order]
    for start in range(0, len(members), size):
        yield members[start : start + size]


def _score_batch(lm: Any, requests: list[Request], batch: list[list[int]], window: int) -> list[tuple[float, bool]]:
    """One model call for the batch's contexts (right-padded with 0, as ``pad_and_concat``); an answer per
    member of each group, in group order."""
    import torch
    import torch.nn.functional as F

    contexts = [_model_input(requests[group[0]], window) for group in batch]
    width = max(len(ctx) for ctx in contexts)
    inputs = _right_padded(contexts, width).to(lm.device)
    log_probs = F.log_softmax(lm._model_call(inputs), dim=-1, dtype=lm.softmax_dtype)
    # lm-eval's slice for a row of length n is [n - 1, n) shifted by what the logits lack of the input's width
    # (scored_logits_only keeps the last positions only): ctx_len = n + (logits width - input width)
    shift = log_probs.shape[1] - width
    positions = [len(ctx) + shift - 1 for ctx in contexts]
    if min(positions) < 0:  # the kept logits miss a row's position: lm-eval would read a wrapped slice
        raise RuntimeError(f"logits of width {log_probs.shape[1]} miss a continuation of a batch of width {width}")
    device = log_probs.device
    rows = log_probs[torch.arange(len(batch), device=device), torch.tensor(positions, device=device)]  # [groups, vocab]
    greedy = rows.argmax(dim=-1)
    row_of = torch.tensor([row for row, group in enumerate(batch) for _ in group], device=device)
    token = torch.tensor([requests[i][2][0] for group in batch for i in group], dtype=torch.long, device=device)
    values = rows[row_of, token].tolist()
    hits = (greedy[row_of] == token).tolist()
    return [(float(value), bool(hit)) for value, hit in zip(values, hits)]


def _right_padded(rows: list[list[int]], width: int) -> Any:
    """``rows`` right-padded with 0 to ``width``, as one int64 tensor (what lm-eval's per-row tensors and
    ``pad_and_concat`` make), filled through one flat buffer: half the time of a nested-list ``torch.tensor``.

    Examples
    --------
    >>> _right_padded([[5, 6, 7], [8]], 3).tolist()
    [[5, 6, 7], [8, 0, 0]]
    """
    from array import array
    from itertools import repeat

    import torch

    flat = array("q")
    for row in rows:
        flat.extend(row)
        flat.extend(repeat(0, width - len(row)))
    return torch.frombuffer(flat, dtype=torch.long).view(len(rows), width)  # the tensor keeps ``flat`` alive


def _model_input(request: Request, window: int) -> list[int]:
    """lm-eval's model input for a one-token continuation: ``(context + continuation)[-(window + 1):][:-1]``,
    i.e. the context's last ``window`` ids, with lm-eval's warning when that cuts it."""
    _, context, continuation = request
    if len(context) + len(continuation) > window + 1:
        import logging

        logging.getLogger("lm_eval.models.huggingface").warning(
            f"Combined length of context ({len(context)}) and continuation ({len(continuation)}) "
            f"exceeds model's maximum length ({window}). "
            f"Truncating {len(context) + len(continuation) - window + 1} tokens from the left."
        )
        return context[-window:]
    return context
