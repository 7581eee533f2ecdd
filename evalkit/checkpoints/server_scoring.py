"""Log-likelihoods on OpenAI-compatible servers: the shared-prefix walk where the server answers it, lm-eval's
per-option ``echo`` requests otherwise, and the probes that tell which a server supports.

:class:`SharedPrefixServerMixin` is the log-likelihood half of
:class:`~evalkit.checkpoints.resilient_api.ResilientAPIMixin` (which inherits it and sends its requests through
its retry loop); the payload builders and probes here are plain functions of a URL, so the retry loop and
the tests use them too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import ServerError, UsageError
from .answers import MalformedAnswer, next_token_logprobs

__all__ = [
    "SharedPrefixServerMixin",
    "next_token_payload",
    "exact_token_payload",
    "exact_value",
    "probe_next_token_logprobs",
    "returns_next_token_logprobs",
    "returns_exact_token_logprobs",
    "returns_prompt_logprobs",
    "prompt_logprobs_probe",
    "prompt_logprobs_findings",
    "native_prompt_logprobs_payload",
    "NATIVE_PROMPT_LOGPROBS",
    "NATIVE_BATCH",
]

#: vLLM's own request fields for prompt log-probabilities: ``k=1`` lists the prompt token and the best one
#: at each position, what the echo format's ``logprobs=1`` lists (so ``is_greedy`` is today's), and
#: ``return_token_ids`` names the prompt's ids, which key those maps. Callers that need no ``is_greedy``
#: ask for ``k=0`` (:meth:`SharedPrefixServerMixin.loglikelihood_scores`).
NATIVE_PROMPT_LOGPROBS = {"prompt_logprobs": 1, "return_token_ids": True}

#: Prompts per per-option log-likelihood request to such a server when ``--batch-size`` is not given (a
#: ``prompt`` list; vLLM accepts one, and each prompt is scored alone): vLLM's scheduler then gets a request's
#: prompts at once and its API server parses one request instead of eight. Measured in ``bench/served_mc``.
NATIVE_BATCH = 8


class SharedPrefixServerMixin:
    """Scores lm-eval's log-likelihood requests; needs the retry loop's ``get_batched_requests``,
    ``request_stats``, ``retry_policy`` and ``_cache_answers`` and the state :meth:`_init_scoring` sets."""

    # What the classes this is mixed into provide (ResilientAPIMixin's retry loop, lm-eval's TemplateAPI).
    get_batched_requests: Any
    _cache_answers: Any
    request_stats: Any
    retry_policy: Any
    server_name: str
    timeout: float
    base_url: Any
    model: str
    header: Any
    tokenizer: Any
    tokenizer_backend: str
    tokenized_requests: bool
    batch_loglikelihood_requests: Any
    decode_batch: Any
    loglikelihood: Any

    def _init_scoring(self, loglikelihood_scoring: str) -> None:
        from .shared_prefix import scoring_mode

        self.loglikelihood_scoring = scoring_mode(loglikelihood_scoring)
        self._next_token_checked: bool | None = None  # the probe's answer, once asked
        self._exact_tokens_checked = False  # allowed_token_ids answered with raw log-probs (second probe)
        self._prompt_logprobs_checked = False
        #: per-option requests ask for vLLM's ``prompt_logprobs`` instead of an echo (the probe found them)
        self.native_prompt_logprobs = False
        self._scores_only = False  # inside loglikelihood_scores: no is_greedy wanted, nothing cached

    def _loglikelihood_tokens(self, requests, **kwargs):
        """lm-eval's ``(cache key, context ids, continuation ids)`` requests -> ``(log-likelihood, is greedy)``.

        Through the shared-prefix walk (:mod:`evalkit.checkpoints.shared_prefix`) where the server answers
        it; the choices it cannot score exactly (outside the top-k) and every request when it is off go
        through lm-eval's per-option ``echo`` requests.
        """
        if not requests:
            return []
        if not self.uses_shared_prefix():
            return self._per_option_loglikelihood(requests, **kwargs)
        from .shared_prefix import score_choices

        answers, rescored = score_choices(
            requests,
            self._server_sequences(requests),
            self._ask_next_tokens,
            lambda rest: self._per_option_loglikelihood(rest, **kwargs),
            self._ask_exact_tokens if self._exact_tokens_checked else None,
        )
        self.request_stats.rescored_per_option += rescored
        if not self._scores_only:
            self._cache_answers(answers, [key for key, _, _ in requests], generate=False)
        return answers

    def loglikelihood_scores(self, requests) -> list[float]:
        """``[loglikelihood for loglikelihood, _ in self.loglikelihood(requests)]``, for callers that rank
        options by score and never read ``is_greedy`` (constrained VOC).

        Per-option requests then ask vLLM for the prompt token's log-probability alone (``prompt_logprobs=0``,
        the same numbers): vLLM detokenises and sends one entry per prompt position instead of two, about
        half its output work on a 720-token prompt (``bench/served_mc``). The greedy flags are not computed,
        so nothing is written to lm-eval's request cache meanwhile.
        """
        self._scores_only = True
        try:
            return [float(score) for score, _ in self.loglikelihood(requests)]
        finally:
            self._scores_only = False

    def _per_option_loglikelihood(self, requests, **kwargs):
        if requests and not self._prompt_logprobs_checked:
            self.check_prompt_logprobs()
        return super()._loglikelihood_tokens(requests, **kwargs)

    def uses_shared_prefix(self) -> bool:
        """Whether log-likelihoods go through the shared-prefix walk (``loglikelihood_scoring`` and one probe)."""
        if self.loglikelihood_scoring == "per_option" or self.tokenizer_backend != "huggingface":
            return False
        if self._next_token_checked is None:
            from .shared_prefix import TOP_K

            probe = self.tokenizer("Hello, world. Hello").input_ids if self.tokenizer is not None else []
            found = (
                probe_next_token_logprobs(
                    str(self.base_url), self.model, dict(self.header), probe, TOP_K, timeout=min(self.timeout, 60.0)
                )
                if probe
                else {}
            )
            self._next_token_checked = bool(found)
            self._exact_tokens_checked = bool(found) and returns_exact_token_logprobs(
                str(self.base_url), self.model, dict(self.header), probe, found, timeout=min(self.timeout, 60.0)
            )
        if not self._next_token_checked and self.loglikelihood_scoring == "shared_prefix":
            raise UsageError(
                f"server {self.server_name} did not answer a next-token probe (token-id prompt, "
                f"logprobs=20, return_tokens_as_token_ids), which loglikelihood_scoring=shared_prefix "
                f"needs (vLLM does); drop that model argument to score per option.",
                param="model_args",
            )
        return self._next_token_checked

    def _server_sequences(self, requests) -> list[tuple[list[int], int]]:
        """Per request: the token ids the server scores on the per-option path, and how many end the continuation.

        lm-eval sends ``context + continuation`` (left-truncated to ``max_length``) as token ids, or decoded to
        text that the server tokenizes with the tokenizer's defaults (a BOS first for Llama-style tokenizers);
        the continuation is counted from the end, as :func:`~evalkit.checkpoints.server.parse_echo_logprobs` does.
        """
        inputs, ctxlens, _ = self.batch_loglikelihood_requests([requests])
        ids = inputs if self.tokenized_requests else self.tokenizer(self.decode_batch(inputs)).input_ids
        return [(list(seq), len(sent) - ctxlen) for seq, sent, ctxlen in zip(ids, inputs, ctxlens)]

    def _ask_next_tokens(self, prefixes: list[tuple[int, ...]]) -> list[dict[int, float]]:
        """One wave of generation-style requests: the top next-token log-probabilities after each prefix."""
        from .shared_prefix import TOP_K

        prompts = [list(prefix) for prefix in prefixes]
        answers = asyncio.run(
            self.get_batched_requests(prompts, [None] * len(prompts), generate=False, next_token=TOP_K)
        )
        self.request_stats.next_token_requests += len(prompts)
        return [top for batch in answers for top in batch]

    def _ask_exact_tokens(self, pairs: list[tuple[tuple[int, ...], int]]) -> list[float]:
        """One wave of requests for the log-probability of one token after a prefix (``allowed_token_ids``)."""
        answers = asyncio.run(self.get_batched_requests(pairs, [None] * len(pairs), generate=False, exact_token=True))
        self.request_stats.exact_token_requests += len(pairs)
        return [value for batch in answers for value in batch]

    def check_prompt_logprobs(self) -> None:
        """Raise a UsageError unless the server returns prompt log-probabilities (one probe request, retried like
        evaluation requests when the server fails; ServerError when it keeps failing). The same probe tells
        whether the server also answers vLLM's own ``prompt_logprobs`` field, which per-option requests then
        use (:func:`native_prompt_logprobs_payload`)."""
        probe_timeout = min(self.timeout, 60.0)
        policy = self.retry_policy  # a server failure may pass: retried as evaluation requests are
        for attempt in range(policy.max_retries + 1):
            if attempt:
                time.sleep(policy.wait(attempt))
            found, native = prompt_logprobs_findings(
                str(self.base_url), self.model, dict(self.header), timeout=probe_timeout
            )
            if not isinstance(found, str):
                break
        if isinstance(found, str):  # the server failed, not the request: exit 4, as a failing evaluation request
            raise ServerError(
                f"server {self.server_name} gave no usable answer to the prompt-logprobs probe, "
                f"{policy.max_retries + 1} times in a row ({found}); check the server and evaluate again."
            )
        if not found:
            raise UsageError(
                f"server {self.server_name} returned no prompt logprobs to a probe (completions with echo=true and "
                f"logprobs), which log-likelihood tasks need; serve the model with vLLM, which does, or evaluate "
                f"generation tasks only."
            )
        self.native_prompt_logprobs = native
        self._prompt_logprobs_checked = True


def next_token_payload(model: str, prompts: list[list[int]], top_k: int, *, seed: int | None = None) -> dict:
    """A completions request for the top-``top_k`` next-token log-probabilities after each token-id prompt.

    Generation-style (``max_tokens=1``, no ``echo``), so engines serve the prompt from their prefix cache;
    ``return_tokens_as_token_ids`` keys the answer by token id (decoded strings can collide).
    """
    payload = {
        "model": model,
        "prompt": prompts,
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": top_k,
        "echo": False,
        "return_tokens_as_token_ids": True,
    }
    if seed is not None:
        payload["seed"] = seed
    return payload


def native_prompt_logprobs_payload(echo_payload: dict, top: int = 1) -> dict:
    """lm-eval's ``echo`` log-likelihood payload turned into one for vLLM's own prompt log-probabilities.

    The same prompt, generation and seed; ``echo`` and ``logprobs`` go, :data:`NATIVE_PROMPT_LOGPROBS` comes
    (with ``prompt_logprobs=top``: 1 for today's ``is_greedy``, 0 for the scores alone).
    The answer then carries each prompt position's log-probabilities once instead of twice (vLLM's echo
    reply holds both its OpenAI ``logprobs`` and its own ``prompt_logprobs``), and vLLM skips building the
    echo format; measured in ``bench/served_mc``. Parsed by
    :func:`~evalkit.checkpoints.answers.prompt_logprob_scores`.

    >>> native_prompt_logprobs_payload({"model": "m", "prompt": "a b", "max_tokens": 1, "logprobs": 1, "echo": True})
    {'model': 'm', 'prompt': 'a b', 'max_tokens': 1, 'echo': False, 'prompt_logprobs': 1, 'return_token_ids': True}
    """
    payload = {key: value for key, value in echo_payload.items() if key != "logprobs"}
    return {**payload, "echo": False, **NATIVE_PROMPT_LOGPROBS, "prompt_logprobs": top}


def exact_token_payload(model: str, prefix: list[int], token: int, *, seed: int | None = None) -> dict:
    """A completions request whose answer holds ``token``'s log-probability after ``prefix``.

    ``allowed_token_ids=[token]`` makes it the generated token, whose log-probability the answer always
    carries; vLLM computes it from the raw logits, before the whitelist (its default ``logprobs_mode``),
    which :func:`returns_exact_token_logprobs` checks once per server.
    """
    return {**next_token_payload(model, [prefix], 1, seed=seed), "allowed_token_ids": [int(token)]}


def exact_value(top: dict[int, float], token: int) -> float:
    """``token``'s log-probability in an :func:`exact_token_payload` answer (MalformedAnswer if absent)."""
    if token not in top:
        raise MalformedAnswer(f"the answer to a request allowing only token {token} holds no log-prob for it")
    return top[token]


def _post_json(completions_url: str, headers: dict[str, str], payload: dict, timeout: float) -> Any:
    """``POST`` a probe; the parsed JSON answer, or None on any error (a probe that fails means "no")."""
    return _post_json_answer(completions_url, headers, payload, timeout)[0]


def _post_json_answer(
    completions_url: str, headers: dict[str, str], payload: dict, timeout: float
) -> tuple[Any, str | None]:
    """``POST`` a probe: (the parsed JSON answer, None), or (None, why there is none) — an HTTP status, an
    unreachable server or a reply that is not JSON, in words fit for a message (never the reply's text)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        completions_url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={**headers, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read()), None
    except urllib.error.HTTPError as exc:
        return None, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError):
        return None, "no answer (unreachable or timed out)"
    except ValueError:
        return None, "a reply that is not JSON"


def probe_next_token_logprobs(
    completions_url: str, model: str, headers: dict[str, str], prompt: list[int], top_k: int, *, timeout: float = 30.0
) -> dict[int, float]:
    """The top-k next-token log-probabilities the server returns for ``prompt``, or ``{}`` if it does not
    answer a :func:`next_token_payload` request so (vLLM does; ``transformers serve`` takes text prompts only
    and returns none). Errors (unreachable, 4xx/5xx, malformed) count as "no": log-likelihoods then go per option.
    """
    answer = _post_json(completions_url, headers, next_token_payload(model, [prompt], top_k), timeout)
    try:
        top = next_token_logprobs(answer, 1)[0]
    except MalformedAnswer:
        return {}
    return top if len(top) >= min(top_k, 2) else {}  # a server ignoring `logprobs=k` returns one token


def returns_next_token_logprobs(
    completions_url: str, model: str, headers: dict[str, str], prompt: list[int], top_k: int, *, timeout: float = 30.0
) -> bool:
    """Whether :func:`probe_next_token_logprobs` finds top-k next-token log-probabilities keyed by token id."""
    return bool(probe_next_token_logprobs(completions_url, model, headers, prompt, top_k, timeout=timeout))


def returns_exact_token_logprobs(
    completions_url: str,
    model: str,
    headers: dict[str, str],
    prompt: list[int],
    top: dict[int, float],
    *,
    timeout: float = 30.0,
) -> bool:
    """Whether an :func:`exact_token_payload` request returns the same log-probability as the top-k answer
    ``top`` for its least likely token: raw log-probabilities, not ones renormalised over the allowed token
    (which would be 0). Without it, tokens outside the top-k are scored by their echo request."""
    token, value = min(top.items(), key=lambda item: (item[1], item[0]))
    answer = _post_json(completions_url, headers, exact_token_payload(model, prompt, token), timeout)
    try:
        found = exact_value(next_token_logprobs(answer, 1)[0], token)
    except MalformedAnswer:
        return False
    return abs(found - value) <= 1e-4 and value < -1e-3


def returns_prompt_logprobs(
    completions_url: str, model: str, headers: dict[str, str], *, timeout: float = 30.0
) -> bool:
    """Whether ``POST completions_url`` with ``echo=true, logprobs=1`` returns log-probabilities of the prompt.

    vLLM does; ``transformers serve`` ignores ``echo``/``logprobs`` (and chat endpoints have neither).
    Errors (unreachable, 4xx/5xx, malformed) count as "no" here; :func:`prompt_logprobs_probe` tells them apart.
    """
    return prompt_logprobs_probe(completions_url, model, headers, timeout=timeout) is True


def prompt_logprobs_probe(
    completions_url: str, model: str, headers: dict[str, str], *, timeout: float = 30.0
) -> bool | str:
    """The echo probe's finding: True or False from a well-formed completion (with or without prompt
    log-probabilities; an HTTP 4xx refusal of ``echo``/``logprobs`` also counts as False), or, as text, why
    the server gave no usable answer (5xx, unreachable, not JSON, no ``choices``): the server's fault."""
    return prompt_logprobs_findings(completions_url, model, headers, timeout=timeout)[0]


def prompt_logprobs_findings(
    completions_url: str, model: str, headers: dict[str, str], *, timeout: float = 30.0
) -> tuple[bool | str, bool]:
    """(:func:`prompt_logprobs_probe`'s finding, whether the same answer also held vLLM's own prompt
    log-probabilities). One request asks for both: servers ignore fields they do not know, and one that
    refuses them (HTTP 4xx) is asked again with the echo fields alone."""
    echo = {
        "model": model,
        "prompt": "Hello, world. Hello",
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": 1,
        "echo": True,
    }
    body, failure = _post_json_answer(completions_url, headers, {**echo, **NATIVE_PROMPT_LOGPROBS}, timeout)
    if failure is not None and failure.startswith("HTTP 4"):
        body, failure = _post_json_answer(completions_url, headers, echo, timeout)
    if failure is not None:
        return (False if failure.startswith("HTTP 4") else failure), False
    try:
        logprobs = body["choices"][0].get("logprobs") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return "a reply without completion `choices`", False
    tokens = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    # The prompt has several tokens; an answer covering only the generated token has one entry.
    found = isinstance(tokens, list) and len(tokens) >= 3 and isinstance(logprobs.get("top_logprobs"), list)
    return found, found and _has_native_prompt_logprobs(body)


def _has_native_prompt_logprobs(body: Any) -> bool:
    """Whether a probe's answer holds parseable ``prompt_logprobs`` for its prompt's last token, and its echo
    gives that token the same log-probability (so both formats hold the same numbers)."""
    from .answers import echo_logprobs, prompt_logprob_scores

    try:
        choice = body["choices"][0]
        ids = choice["prompt_token_ids"]
        native = prompt_logprob_scores({"choices": [choice]}, [ids], [len(ids) - 1])
        echoed = echo_logprobs({"choices": [choice]}, [ids], [len(ids) - 1])
    except (MalformedAnswer, UsageError, KeyError, IndexError, TypeError, AttributeError):
        return False
    return native == echoed
