"""The request loop for OpenAI-compatible servers: lm-eval's ``TemplateAPI`` with production behaviour.

lm-eval 0.4.13's ``TemplateAPI`` already sends requests concurrently (aiohttp, ``num_concurrent``) with
tenacity retries and a timeout, but it retries *every* failure (a 401 or 404 is tried ``max_retries``
times, then a traceback), its waits are fixed at 1-10 s, ``max_retries`` counts attempts, not retries,
``timeout`` is truncated to whole seconds, and a ``stop`` string a server leaves in its output (as
``transformers serve`` does; vLLM strips it) stays in the generation. :class:`ResilientAPIMixin` keeps
everything else of lm-eval's backends (payloads, parsing, batching, caching) and replaces the loop
(mixed into the backends of :func:`evalkit.checkpoints.server.load_server_lm`):

- one code path for every concurrency (lm-eval's async path; ``num_concurrent=1`` is a semaphore of one);
- retries with exponential backoff and jitter only on 408/425/429/5xx, timeouts and dropped connections,
  honouring ``Retry-After`` (capped); ``max_retries`` is the number of *re*-tries after the first attempt;
- every 200 reply is checked against the shape its request needs (:mod:`evalkit.checkpoints.answers`): a
  reply without ``choices``, with ``null`` content or with missing, short or non-finite log-probs is
  retried like a transient failure, never scored as an empty answer;
- when retries run out: :class:`~evalkit.errors.ServerError` (exit code 4, the server's fault), one line
  naming the server, the request kind and the last failure;
- other 4xx fail at once with a one-line evalkit error (401/403: the API key; 404: the model or endpoint);
- a progress bar per request wave with ETA and requests/s (:func:`evalkit.progress.bar`), and
  :attr:`ResilientAPIMixin.request_stats` (requests, retries, failures by status, seconds);
- generations are cut at the first stop string, as lm-eval's in-process ``HFLM`` does; an empty stop list is
  left out of the request (``transformers serve`` answers HTTP 500 to ``"stop": []``);
- log-likelihood requests start with one probe; a server that returns no prompt log-probabilities
  (``echo=true`` with ``logprobs``) gets a clear :class:`~evalkit.errors.UsageError` before any
  evaluation request (see :func:`returns_prompt_logprobs`); a server that also answers vLLM's own
  ``prompt_logprobs`` field is asked through it instead of the echo (same numbers, half the reply; see
  :func:`~evalkit.checkpoints.server_scoring.native_prompt_logprobs_payload`).

Tuning keys, passed through ``--model-args``: ``retry_wait`` (first backoff in seconds, default 1) and
``retry_max_wait`` (cap, default 30).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import ServerError, UsageError, arg, python_words
from .answers import MalformedAnswer, echo_logprobs, generated_texts, next_token_logprobs, prompt_logprob_scores
from .server_scoring import (
    SharedPrefixServerMixin,
    exact_token_payload,
    NATIVE_BATCH,
    exact_value,
    native_prompt_logprobs_payload,
    next_token_payload,
    probe_next_token_logprobs,
    returns_exact_token_logprobs,
    returns_next_token_logprobs,
    returns_prompt_logprobs,
)

__all__ = [
    "RetryPolicy",
    "RequestStats",
    "ResilientAPIMixin",
    "is_retryable_status",
    "returns_prompt_logprobs",
    "returns_next_token_logprobs",
    "next_token_payload",
    "exact_token_payload",
    "probe_next_token_logprobs",
    "returns_exact_token_logprobs",
    "RETRYABLE_STATUS",
]

logger = logging.getLogger(__name__)

#: HTTP statuses worth another try: request timeout, too early, rate limited, and every 5xx.
RETRYABLE_STATUS = frozenset({408, 425, 429})
_DETAIL_CHARS = 300


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is transient (408, 425, 429 or 5xx).

    Examples
    --------
    >>> [is_retryable_status(s) for s in (200, 401, 404, 429, 500, 503)]
    [False, False, False, True, True, True]
    """
    return status in RETRYABLE_STATUS or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: wait ``base_wait * 2**(n-1)`` (capped at ``max_wait``) before retry ``n``.

    A random factor in [0.5, 1] spreads concurrent retries apart; a server's ``Retry-After`` raises the
    wait (still capped).

    Examples
    --------
    >>> policy = RetryPolicy(max_retries=3, base_wait=1.0, max_wait=3.0)
    >>> [policy.wait(n, jitter=1.0) for n in (1, 2, 3)]
    [1.0, 2.0, 3.0]
    >>> policy.wait(1, retry_after=2.5, jitter=1.0)
    2.5
    """

    max_retries: int = 5
    base_wait: float = 1.0
    max_wait: float = 30.0

    def __post_init__(self):
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise UsageError(f"max_retries must be an integer >= 0, got {self.max_retries!r}.", param="max_retries")
        for name, key in (("base_wait", "retry_wait"), ("max_wait", "retry_max_wait")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(
                    f"model_args {key} must be a number of seconds >= 0, got {value!r}.", param="model_args"
                )

    def wait(self, retry: int, *, retry_after: float | None = None, jitter: float | None = None) -> float:
        """Seconds to sleep before retry number ``retry`` (1-based)."""
        factor = random.uniform(0.5, 1.0) if jitter is None else jitter
        backoff = self.base_wait * 2 ** (retry - 1) * factor
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(self.max_wait, backoff)


@dataclass
class RequestStats:
    """What the request loop did: totals over the LM's lifetime, for logs, benchmarks and tests."""

    requests: int = 0  # requests answered
    next_token_requests: int = 0  # shared-prefix prompts (one per distinct prefix; see shared_prefix.py)
    exact_token_requests: int = 0  # a choice's token outside the top-k, asked for alone (allowed_token_ids)
    rescored_per_option: int = 0  # choices outside the top-k, scored by echo requests instead
    attempts: int = 0  # HTTP attempts, including retries
    retries: int = 0
    seconds: float = 0.0  # wall time inside request waves
    failures: Counter = field(default_factory=Counter)  # "HTTP 503", "timeout", "connection" -> count

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        failed = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        return (
            f"{self.requests} requests in {self.seconds:.1f} s ({self.requests_per_second:.2f} req/s), "
            f"{self.retries} retries (failures: {failed})"
        )


class _Transient(Exception):
    """A failure worth another try (status/timeout/connection), with the server's Retry-After if any."""

    def __init__(self, label: str, detail: str = "", retry_after: float | None = None):
        super().__init__(f"{label}{': ' + detail if detail else ''}")
        self.label = label
        self.retry_after = retry_after


class ResilientAPIMixin(SharedPrefixServerMixin):
    """Mix in before an lm-eval ``TemplateAPI`` subclass (see the module docstring)."""

    #: Where a generation's text is: ``message.content`` (chat endpoint) or ``text`` (completions).
    chat_replies = False

    def __init__(
        self,
        *args: Any,
        retry_wait: float = 1.0,
        retry_max_wait: float = 30.0,
        server_name: str | None = None,
        timeout: float = 300.0,
        loglikelihood_scoring: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, timeout=max(1, int(timeout)), **kwargs)
        self._batch_size_given = "batch_size" in kwargs  # --batch-size: every request, as the user said
        self._init_scoring(loglikelihood_scoring)
        self.timeout = float(timeout)  # lm-eval keeps whole seconds; sub-second timeouts matter in tests
        self.concurrency = max(1, int(self._concurrent))
        self._concurrent = max(2, self.concurrency)  # always lm-eval's async path: one retry loop for all
        self.retry_policy = RetryPolicy(int(self.max_retries), float(retry_wait), float(retry_max_wait))
        self.server_name = server_name or str(self.base_url)
        self.request_stats = RequestStats()

    # ------------------------------------------------------------------ the request wave
    async def get_batched_requests(
        self, requests: list, cache_keys: list, *, generate: bool = True, ctxlens: list | None = None, **kwargs: Any
    ) -> list:
        """Send ``requests`` in batches of ``batch_size``, ``concurrency`` at a time; answers in order."""
        from aiohttp import ClientSession, ClientTimeout, TCPConnector
        from lm_eval.models.utils import chunks

        from ..progress import bar

        ctxlens = ctxlens or [None] * len(requests)
        size = self._prompts_per_request(generate, kwargs)
        batches = list(zip(chunks(requests, n=size), chunks(cache_keys, n=size), chunks(ctxlens, n=size)))
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(self.concurrency)
        connector = TCPConnector(limit=self.concurrency, ssl=self.verify_certificate)
        with bar(len(requests), f"{self.server_name} requests", unit="req") as progress:
            async with ClientSession(connector=connector, timeout=ClientTimeout(total=self.timeout)) as session:
                tasks = [
                    asyncio.create_task(
                        self._send_with_retries(
                            session, semaphore, batch, keys, lens, progress, generate=generate, **kwargs
                        )
                    )
                    for batch, keys, lens in batches
                ]
                try:
                    answers = await _gather_or_cancel(tasks)
                finally:
                    self.request_stats.seconds += time.perf_counter() - started
        logger.info("%s: %s", self.server_name, self.request_stats.summary())
        return answers

    def _prompts_per_request(self, generate: bool, kwargs: dict) -> int:
        """``batch_size``, except: one allowed token per request, and :data:`NATIVE_BATCH` prompts per
        per-option log-likelihood request to vLLM (native prompt log-probs) when no ``--batch-size`` was given."""
        if kwargs.get("exact_token"):
            return 1
        native = not generate and not kwargs.get("next_token") and self.native_prompt_logprobs
        return NATIVE_BATCH if native and not self._batch_size_given else self._batch_size

    async def _send_with_retries(
        self, session, semaphore, messages, cache_keys, ctxlens, progress, *, generate: bool, **kwargs: Any
    ) -> list:
        policy, last = self.retry_policy, None
        # A retrying request keeps its slot while it waits: a struggling server gets no new requests meanwhile,
        # and a server that always fails sees at most concurrency * (max_retries + 1) attempts.
        async with semaphore:
            for attempt in range(policy.max_retries + 1):
                if attempt:
                    await asyncio.sleep(policy.wait(attempt, retry_after=last.retry_after))
                    self.request_stats.retries += 1
                try:
                    answers = await self._send_once(session, messages, ctxlens, generate=generate, **kwargs)
                except _Transient as exc:
                    last = exc
                    self.request_stats.failures[exc.label] += 1
                    logger.info(
                        "%s: %s (attempt %d of %d)",
                        self.server_name,
                        python_words(str(exc)),
                        attempt + 1,
                        policy.max_retries + 1,
                    )
                    continue
                if generate or not self._scores_only:  # scores alone carry no is_greedy worth caching
                    self._cache_answers(answers, cache_keys, generate)
                self.request_stats.requests += len(messages)
                progress.update(len(messages))
                progress.set_postfix(retries=self.request_stats.retries, refresh=False)
                return answers
        raise self._server_error("generation" if generate else "log-likelihood", str(last), policy.max_retries + 1)

    def _server_error(self, kind: str, last: str, attempts: int) -> ServerError:
        return _server_error(self.server_name, kind, last, attempts)

    async def _send_once(
        self,
        session,
        messages,
        ctxlens,
        *,
        generate: bool,
        gen_kwargs: dict | None = None,
        next_token: int | None = None,
        exact_token: bool = False,
        **kwargs: Any,
    ) -> list:
        import aiohttp

        gen_kwargs = copy.deepcopy(gen_kwargs)
        # The EOS string is a stop as in-process HFLM; lm-eval warns when asked for it without a tokenizer.
        eos = self.eos_string if generate and (self._eos_string or self.tokenizer is not None) else None
        stops = _stop_strings(gen_kwargs, eos) if generate else []
        if exact_token:
            ((prefix, token),) = messages
            payload = exact_token_payload(self.model, list(prefix), token, seed=self._seed)
        elif next_token:
            payload = next_token_payload(self.model, messages, next_token, seed=self._seed)
        elif not generate and self.native_prompt_logprobs:
            echo = self._create_payload(self._prompts(messages), generate=False, seed=self._seed, **kwargs)
            payload = native_prompt_logprobs_payload(echo, top=0 if self._scores_only else 1)
        else:
            payload = self._create_payload(
                self.create_message(messages),
                generate=generate,
                gen_kwargs=gen_kwargs,
                seed=self._seed,
                eos=eos,
                **kwargs,
            )
        if payload.get("stop") == []:  # "no stop strings" by omission: transformers serve fails on an empty list
            del payload["stop"]
        self.request_stats.attempts += 1
        try:
            async with session.post(self.base_url, json=payload, headers=self.header) as response:
                if response.status >= 400:
                    self._raise_for_status(response.status, await response.text(), response.headers)
                outputs = await response.json(content_type=None)
        except asyncio.TimeoutError:
            raise _Transient("timeout", f"no answer within {arg('timeout', f'{self.timeout:g}')} s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise _Transient("connection", str(exc) or type(exc).__name__) from None
        except ValueError as exc:  # a body that is not JSON (a proxy's error page, a cut-off answer)
            raise _Transient("invalid JSON", str(exc)[:_DETAIL_CHARS]) from None
        if next_token or exact_token:
            try:
                tops = next_token_logprobs(outputs, len(messages))
                return [exact_value(tops[0], messages[0][1])] if exact_token else tops
            except MalformedAnswer as exc:
                raise _Transient("malformed answer", str(exc)) from None
        return self._parse_answers(outputs, messages, ctxlens, generate, stops)

    def _prompts(self, messages: list):
        """The ``prompt`` of a log-likelihood request for token-id ``messages``: text unless token ids are sent,
        a list for several (lm-eval's ``create_message`` keeps one prompt per request at ``batch_size`` 1)."""
        prompts = messages if self.tokenized_requests else self.decode_batch(messages)
        return prompts[0] if len(prompts) == 1 else prompts

    def _raise_for_status(self, status: int, text: str, headers) -> None:
        raise _http_failure(status, text, headers, self.server_name, str(self.base_url))

    def _parse_answers(self, outputs, messages, ctxlens, generate: bool, stops: list[str]) -> list:
        """The reply's answers, checked against the shape the request needs (:mod:`.answers`); never guessed."""
        from lm_eval.models.utils import postprocess_generated_text

        try:
            if not generate:
                parse = prompt_logprob_scores if self.native_prompt_logprobs else echo_logprobs
                return parse(outputs, messages, ctxlens)
            texts = generated_texts(outputs, len(messages), chat=self.chat_replies)
        except MalformedAnswer as exc:
            raise _Transient("malformed answer", str(exc)) from None
        think_end = getattr(self, "think_end_token", None) if self.chat_replies else None
        return [postprocess_generated_text(text, stops, think_end) for text in texts]

    # lm-eval's own parsers fill a missing answer with None or "" (its chat parser logs a warning and goes
    # on): any lm-eval code path that still calls them gets the checked parsers instead.
    def parse_generations(self, outputs, **kwargs) -> list[str]:
        choices = outputs.get("choices") if isinstance(outputs, dict) else None
        try:
            return generated_texts(outputs, len(choices) if isinstance(choices, list) else 1, chat=self.chat_replies)
        except MalformedAnswer as exc:
            raise self._server_error("generation", f"malformed answer: {exc}", attempts=1) from None

    def parse_logprobs(self, outputs, tokens=None, ctxlens=None, **kwargs) -> list[tuple[float, bool]]:
        try:
            return echo_logprobs(outputs, tokens or [], ctxlens or [])
        except MalformedAnswer as exc:
            raise self._server_error("log-likelihood", f"malformed answer: {exc}", attempts=1) from None

    def _cache_answers(self, answers: list, cache_keys, generate: bool) -> None:
        method = "generate_until" if generate else "loglikelihood"
        for answer, key in zip(answers, cache_keys or []):
            if key is not None:
                self.cache_hook.add_partial(method, key, answer)


async def _gather_or_cancel(tasks: list) -> list:
    """The tasks' results in order; when one fails for good, the others are cancelled (and awaited) at once
    instead of running on against a server that already failed the wave."""
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _server_error(server: str, kind: str, last: str, attempts: int) -> ServerError:
    """Retries ran out (or a reply can never be scored): the server's fault, with what to try."""
    return ServerError(
        f"server {server} failed {attempts} time{'s in a row' if attempts > 1 else ''} on a {kind} "
        f"request ({last}); the server is at fault, not the input: it may be down, overloaded or not answering "
        f"in the OpenAI format. Check it, lower {arg('num_concurrent', 'N')} or raise {arg('max_retries', 'N')} / "
        f"{arg('timeout', 'SECONDS')} "
        f"(finished samples are stored; evaluate again to resume)."
    )


def _http_failure(status: int, text: str, headers: Any, server: str, url: str) -> Exception:
    """What an HTTP error status means: a transient failure to retry, or an evalkit error naming the fix."""
    detail = " ".join(text.split())[:_DETAIL_CHARS]
    if is_retryable_status(status):
        return _Transient(f"HTTP {status}", detail, _retry_after(headers.get("Retry-After")))
    endpoint = "/" + url.rstrip("/").rsplit("/v1/", 1)[-1]
    if status in (401, 403):
        return UsageError(
            f"server {server} refused the API key (HTTP {status}) on POST {endpoint}; "
            f"set the environment variable named by {arg('api_key_env', 'NAME')} to a valid key."
        )
    if status == 404:
        return UsageError(
            f"server {server} answered HTTP 404 to POST {endpoint} "
            f"({detail or 'no detail'}); "
            f"check the model name after '#' (GET /v1/models lists them) and that the server has "
            f"this endpoint ({arg('endpoint', repr('chat'))} or {arg('endpoint', repr('completions'))})."
        )
    return UsageError(
        f"server {server} rejected a request with HTTP {status} on POST {endpoint}: {detail or 'no detail'}"
    )


def _stop_strings(gen_kwargs: dict | None, eos: str | None) -> list[str]:
    """The stop strings of a generation request plus the EOS string, as in-process ``HFLM`` cuts at."""
    until = (gen_kwargs or {}).get("until") or []
    stops = [until] if isinstance(until, str) else list(until)
    return stops + ([eos] if eos and eos not in stops else [])


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: treat as "no hint"
        return None
