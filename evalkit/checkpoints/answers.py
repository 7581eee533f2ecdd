"""What a served model's reply must contain before it becomes a generation or a log-likelihood.

Every HTTP 200 reply of an OpenAI-compatible server passes through here, checked against the shape its
request needs; nothing is guessed or filled in:

- generation on ``/v1/completions``: ``choices`` a list with one entry per prompt (``index`` 0..n-1, each
  once), each ``text`` a string;
- generation on ``/v1/chat/completions``: the same with ``message.content`` a string. ``null`` (a content
  filter, a tool call, a refusal) is no answer: scoring it as the empty string would give a model that
  answered nothing, and a gate would fail a good model for the server's fault;
- log-likelihood (``/v1/completions`` with ``echo=true``): per prompt ``logprobs.token_logprobs`` covering
  the continuation plus the one generated token, each continuation value a finite number <= 0, and
  ``top_logprobs`` holding such numbers for the same positions;
- log-likelihood with vLLM's own prompt log-probabilities (``echo=false``, ``prompt_logprobs=k``,
  ``return_token_ids``; see :func:`prompt_logprob_scores`): per prompt ``prompt_token_ids`` and
  ``prompt_logprobs`` of the same length, each continuation position a map holding the prompt token's id;
- next-token log-probabilities (``/v1/completions`` with ``max_tokens=1``, ``logprobs=k``,
  ``return_tokens_as_token_ids``; see :mod:`evalkit.checkpoints.shared_prefix`): per prompt
  ``logprobs.top_logprobs[0]`` a non-empty map of ``"token_id:N"`` to such numbers.

A reply that fails raises :class:`MalformedAnswer`, whose message says what was missing in a few words.
The request loop (:mod:`evalkit.checkpoints.resilient_api`) retries it like a transient failure (a proxy
or an overloaded server sometimes answers a half-built body) and, when retries run out, stops the run
with :class:`~evalkit.errors.ServerError` (exit code 4).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import UsageError

__all__ = ["MalformedAnswer", "generated_texts", "echo_logprobs", "prompt_logprob_scores", "next_token_logprobs"]

#: Largest log-probability accepted: 0 plus float rounding (a probability is at most 1).
_MAX_LOGPROB = 1e-3
_SHOWN_CHARS = 80


class MalformedAnswer(ValueError):
    """A server reply lacks what its request needs; the message says what (e.g. "no `choices`")."""


def generated_texts(reply: Any, n_prompts: int, *, chat: bool) -> list[str]:
    """The generated text of each of ``n_prompts`` prompts, in prompt order.

    Examples
    --------
    >>> generated_texts({"choices": [{"index": 1, "text": " b"}, {"index": 0, "text": ""}]}, 2, chat=False)
    ['', ' b']
    >>> generated_texts({"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]}, 1,
    ...                 chat=True)
    Traceback (most recent call last):
    ...
    evalkit.checkpoints.answers.MalformedAnswer: choices[0].message.content is null, not text (finish_reason 'content_filter')
    """
    field = "message.content" if chat else "text"
    texts = []
    for position, choice in enumerate(_choices(reply, n_prompts)):
        text = choice.get("message", _MISSING) if chat else choice.get("text", _MISSING)
        if chat:
            text = text.get("content", _MISSING) if isinstance(text, dict) else _MISSING
        if not isinstance(text, str):
            finish = choice.get("finish_reason")
            why = f" (finish_reason {_shown(finish)})" if finish is not None else ""
            raise MalformedAnswer(f"choices[{position}].{field} is {_described(text)}, not text{why}")
        texts.append(text)
    return texts


def echo_logprobs(reply: Any, inputs: list, ctxlens: list[int]) -> list[tuple[float, bool]]:
    """(sum of continuation log-probs, is greedy) per prompt of an ``echo=true, max_tokens=1`` reply.

    The continuation is counted from the *end* of the echoed tokens: the last entry is the one generated
    token, the ``len(input) - ctxlen`` before it are the continuation. lm-eval 0.4.13 counts from the
    start (``token_logprobs[ctxlen:-1]``), which is off by one when the server prepends a BOS token to a
    text prompt (vLLM does for Llama-style tokenizers): it then adds the last context token's log-prob to
    every choice. Counting from the end needs no assumption about what the server put in front.

    Examples
    --------
    >>> reply = {"choices": [{"index": 0, "logprobs": {
    ...     "token_logprobs": [None, -1.0, -2.0, -0.5, -0.25, -9.0],  # <s> c1 c2 k1 k2 generated
    ...     "top_logprobs": [None, {"a": -1.0}, {"b": -0.1}, {"c": -0.5}, {"d": -0.25}, {"e": -9.0}]}}]}
    >>> echo_logprobs(reply, inputs=[[11, 12, 13, 14]], ctxlens=[2])  # sent c1 c2 k1 k2, no <s>
    [(-0.75, True)]
    """
    return _scores(reply, inputs, ctxlens, _continuation_score)


def prompt_logprob_scores(reply: Any, inputs: list, ctxlens: list[int]) -> list[tuple[float, bool]]:
    """What :func:`echo_logprobs` returns, from vLLM's own ``prompt_logprobs`` field instead of the echo.

    vLLM answers ``prompt_logprobs=k`` (without ``echo``) with, per prompt position, a map of token id to
    ``{"logprob", "rank", "decoded_token"}`` holding the prompt token and the top ``k``; with
    ``return_token_ids`` the reply names the prompt's ids. These are the very numbers the echo format
    repeats (vLLM builds both from the same objects, ``-inf`` clamped to -9999 in both), so with ``k=1`` the
    sum and the greedy test (the token's value equals the best value at its position) are today's, while
    the reply carries each position once instead of twice and the server skips the echo format.

    Examples
    --------
    >>> choice = {"index": 0, "prompt_token_ids": [1, 11, 12, 13, 14], "prompt_logprobs": [None,
    ...     {"11": {"logprob": -1.0}}, {"12": {"logprob": -2.0}, "7": {"logprob": -0.1}},
    ...     {"13": {"logprob": -0.5}}, {"14": {"logprob": -0.25}}]}
    >>> prompt_logprob_scores({"choices": [choice]}, inputs=[[11, 12, 13, 14]], ctxlens=[2])
    [(-0.75, True)]
    >>> prompt_logprob_scores({"choices": [choice]}, inputs=[[11, 12, 13, 14]], ctxlens=[1])
    [(-2.75, False)]
    """
    return _scores(reply, inputs, ctxlens, _prompt_score)


def _scores(reply: Any, inputs: list, ctxlens: list[int], score) -> list[tuple[float, bool]]:
    """``score(choice, position, continuation length)`` per prompt, in prompt order (both log-likelihood formats)."""
    if len(inputs) != len(ctxlens):
        raise ValueError(f"{len(inputs)} inputs but {len(ctxlens)} context lengths")
    return [
        score(choice, position, len(tokens) - ctxlen)
        for position, (choice, tokens, ctxlen) in enumerate(zip(_choices(reply, len(inputs)), inputs, ctxlens))
    ]


def _prompt_score(choice: dict, position: int, n_continuation: int) -> tuple[float, bool]:
    """(sum, is greedy) over the last ``n_continuation`` prompt positions of one ``prompt_logprobs`` choice."""
    if n_continuation < 1:
        raise UsageError(f"a log-likelihood request has an empty continuation ({n_continuation} tokens).")
    where = f"choices[{position}]"
    ids, entries = choice.get("prompt_token_ids", _MISSING), choice.get("prompt_logprobs", _MISSING)
    for name, value in (("prompt_token_ids", ids), ("prompt_logprobs", entries)):
        if not isinstance(value, list):
            raise MalformedAnswer(f"{where}.{name} is {_described(value)}, not a list (prompt_logprobs)")
    if len(entries) != len(ids) or len(ids) < n_continuation + 1:
        raise MalformedAnswer(
            f"{where} has {len(entries)} prompt log-probs for {len(ids)} prompt tokens, and the continuation has "
            f"{n_continuation} (is the server tokenizing with another tokenizer than model_args='tokenizer=...'?)"
        )
    total, greedy = 0.0, True
    for i in range(len(ids) - n_continuation, len(ids)):
        value, best = _token_and_best(entries[i], ids[i], f"{where}.prompt_logprobs[{i}]")
        total += value
        greedy = greedy and value == best
    return total, greedy


def _token_and_best(entry: Any, token: Any, where: str) -> tuple[float, float]:
    """The prompt token's log-probability at one position and the best one listed there."""
    if not isinstance(entry, dict) or not entry:
        raise MalformedAnswer(f"{where} is {_described(entry)}, not a map of token ids to log-probs")
    values = {}
    for key, item in entry.items():
        logprob = item.get("logprob", _MISSING) if isinstance(item, dict) else _MISSING
        values[key] = _logprob(logprob, f"{where}[{_shown(key)}].logprob")
    if str(token) not in values:
        raise MalformedAnswer(f"{where} holds no log-prob for the prompt token {_shown(token)}")
    return values[str(token)], max(values.values())


def next_token_logprobs(reply: Any, n_prompts: int) -> list[dict[int, float]]:
    """``{token id: log-prob}`` of the first generated position, per prompt, in prompt order.

    Examples
    --------
    >>> reply = {"choices": [{"index": 0, "logprobs": {"top_logprobs": [{"token_id:5": -0.1, "token_id:9": -2.5}]}}]}
    >>> next_token_logprobs(reply, 1)
    [{5: -0.1, 9: -2.5}]
    >>> next_token_logprobs({"choices": [{"index": 0, "logprobs": {"top_logprobs": [{" A": -0.1}]}}]}, 1)
    Traceback (most recent call last):
    ...
    evalkit.checkpoints.answers.MalformedAnswer: choices[0].logprobs.top_logprobs[0] has key ' A', not 'token_id:N' (return_tokens_as_token_ids)
    """
    from .shared_prefix import parse_token_id_key

    tops = []
    for position, choice in enumerate(_choices(reply, n_prompts)):
        where = f"choices[{position}].logprobs.top_logprobs"
        logprobs = choice.get("logprobs")
        entries = logprobs.get("top_logprobs", _MISSING) if isinstance(logprobs, dict) else _MISSING
        if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict) or not entries[0]:
            raise MalformedAnswer(
                f"{where} is {_described(entries)}: no next-token log-probs (logprobs=k) in the reply"
            )
        top = {}
        for key, value in entries[0].items():
            token = parse_token_id_key(key)
            if token is None:
                raise MalformedAnswer(
                    f"{where}[0] has key {_shown(key)}, not 'token_id:N' (return_tokens_as_token_ids)"
                )
            top[token] = _logprob(value, f"{where}[0][{_shown(key)}]")
        tops.append(top)
    return tops


def _continuation_score(choice: dict, position: int, n_continuation: int) -> tuple[float, bool]:
    if n_continuation < 1:  # the request's fault, not the server's
        raise UsageError(f"a log-likelihood request has an empty continuation ({n_continuation} tokens).")
    where = f"choices[{position}].logprobs"
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        raise MalformedAnswer(f"{where} is {_described(logprobs)}: no prompt log-probs (echo=true) in the reply")
    values, top = logprobs.get("token_logprobs", _MISSING), logprobs.get("top_logprobs", _MISSING)
    for name, entries in (("token_logprobs", values), ("top_logprobs", top)):
        if not isinstance(entries, list):
            raise MalformedAnswer(f"{where}.{name} is {_described(entries)}, not a list")
    if len(values) < n_continuation + 1 or len(top) != len(values):
        raise MalformedAnswer(
            f"{where} has {len(values)} token log-probs and {len(top)} top log-probs for a prompt whose "
            f"continuation has {n_continuation} tokens plus the generated one (is the server tokenizing with "
            f"another tokenizer than model_args='tokenizer=...'?)"
        )
    window = range(len(values) - 1 - n_continuation, len(values) - 1)
    scores = [_logprob(values[i], f"{where}.token_logprobs[{i}]") for i in window]
    best = [_best_logprob(top[i], f"{where}.top_logprobs[{i}]") for i in window]
    return float(sum(scores)), all(score == most for score, most in zip(scores, best))


def _best_logprob(entry: Any, where: str) -> float:
    if not isinstance(entry, dict) or not entry:
        raise MalformedAnswer(f"{where} is {_described(entry)}, not a map of tokens to log-probs")
    return max(_logprob(value, f"{where}[{_shown(key)}]") for key, value in entry.items())


def _logprob(value: Any, where: str) -> float:
    """``value`` as a log-probability: a finite number <= 0 (JSON ``NaN``/``Infinity`` parse as floats)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value > _MAX_LOGPROB
    ):
        raise MalformedAnswer(f"{where} is {_described(value)}, not a finite log-probability <= 0")
    return float(value)


def _choices(reply: Any, n_prompts: int) -> list[dict]:
    """The reply's choices in prompt order: exactly one per prompt, each index 0..n-1 once."""
    if not isinstance(reply, dict):
        raise MalformedAnswer(f"the reply is {_described(reply)}, not a JSON object")
    choices = reply.get("choices", _MISSING)
    if not isinstance(choices, list) or not choices:
        error = reply.get("error")
        said = f" (it says: {_shown(error)})" if error is not None else ""
        raise MalformedAnswer(f"`choices` is {_described(choices)}{said}")
    if len(choices) != n_prompts:
        raise MalformedAnswer(f"{len(choices)} choices for {n_prompts} prompts")
    by_index: dict[int, dict] = {}
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise MalformedAnswer(f"choices[{position}] is {_described(choice)}, not an object")
        index = choice.get("index", position if n_prompts == 1 else None)  # one choice may omit its index
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_prompts or index in by_index:
            raise MalformedAnswer(
                f"choices[{position}].index is {_described(index)}: each of 0..{n_prompts - 1} must appear once"
            )
        by_index[index] = choice
    return [by_index[i] for i in range(n_prompts)]


_MISSING = object()


def _described(value: Any) -> str:
    """A few words for what a reply held instead: "missing", "null", "an empty list", "the string 'x'"."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, (list, dict, str)) and not value:
        return f"an empty {type(value).__name__}"
    return f"{type(value).__name__} {_shown(value)}"


def _shown(value: Any) -> str:
    """``repr(value)`` cut short: a reply is untrusted text and may be huge."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"
