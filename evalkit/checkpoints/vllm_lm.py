"""lm-eval's in-process ``VLLM`` (``--backend vllm``) with shared-prefix scoring of choices.

lm-eval's ``VLLM`` scores each (question, choice) with one request asking for *prompt* log-probabilities,
for which vLLM skips its prefix cache (``bench/vllm_prefix``): MMLU's four letters are four prefills of
the question. :class:`SharedPrefixVLLMMixin` scores them with generation-style requests instead
(``max_tokens=1``, ``logprobs=20``; vLLM's logprobs are keyed by token id), one per distinct prefix of the
choices' token trie (:mod:`evalkit.checkpoints.shared_prefix`), which the prefix cache serves. A choice token
outside the top 20 is asked for alone (``allowed_token_ids=[token]``: vLLM returns the generated token's
log-probability from the raw logits, before the whitelist, which one probe per engine checks, as for
servers), also served from the prefix cache; if the probe fails such choices go through lm-eval's own path.
``--model-args loglikelihood_scoring=per_option`` keeps lm-eval's path for everything.
"""

from __future__ import annotations

from typing import Any

from .answers import MalformedAnswer
from .resilient_api import RequestStats
from .server_scoring import exact_value
from .shared_prefix import TOP_K, score_choices, scoring_mode, truncated_sequence

__all__ = ["SharedPrefixVLLMMixin", "next_token_tops", "vllm_class"]


class SharedPrefixVLLMMixin:
    """Mix in before lm-eval's ``VLLM`` (see the module docstring)."""

    def __init__(self, *args: Any, loglikelihood_scoring: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loglikelihood_scoring = scoring_mode(loglikelihood_scoring)
        self.request_stats = RequestStats()  # next_token_requests / rescored_per_option, as for servers
        self._exact_tokens_checked: bool | None = None  # allowed_token_ids answers raw log-probs (one probe)

    def uses_shared_prefix(self) -> bool:
        """Whether log-likelihoods go through the shared-prefix walk (every mode but ``per_option``)."""
        return self.loglikelihood_scoring != "per_option"

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False):
        per_option = super()._loglikelihood_tokens  # type: ignore[misc]
        if not requests or not self.uses_shared_prefix():
            return per_option(requests, disable_tqdm=disable_tqdm)
        max_tokens = self.max_length - 1  # type: ignore[attr-defined]  # as lm-eval: one token for generation
        sequences = [truncated_sequence(context, continuation, max_tokens) for _, context, continuation in requests]
        answers, rescored = score_choices(
            requests,
            sequences,
            self._ask_next_tokens,
            lambda rest: per_option(rest, disable_tqdm=True),
            self._ask_exact_tokens if self._exact_tokens_work(sequences) else None,
        )
        self.request_stats.rescored_per_option += rescored
        for (key, _, _), found in zip(requests, answers):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, found)  # type: ignore[attr-defined]
        return answers

    def _ask_next_tokens(self, prefixes: list[tuple[int, ...]]) -> list[dict[int, float]]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0, max_tokens=1, logprobs=TOP_K, detokenize=False)
        outputs = self._model_generate(  # type: ignore[attr-defined]
            [list(p) for p in prefixes], generate=True, sampling_params=params
        )
        self.request_stats.next_token_requests += len(prefixes)
        return [next_token_tops(output) for output in outputs]

    def _ask_exact_tokens(self, pairs: list[tuple[tuple[int, ...], int]]) -> list[float]:
        """Each token's log-probability after its prefix: one request allowing only that token."""
        from vllm import SamplingParams

        params = [
            SamplingParams(temperature=0, max_tokens=1, logprobs=1, detokenize=False, allowed_token_ids=[int(token)])
            for _, token in pairs
        ]
        outputs = self._model_generate(  # type: ignore[attr-defined]
            [list(prefix) for prefix, _ in pairs], generate=True, sampling_params=params
        )
        self.request_stats.exact_token_requests += len(pairs)
        return [exact_value(next_token_tops(output), token) for output, (_, token) in zip(outputs, pairs)]

    def _exact_tokens_work(self, sequences: list[tuple[list[int], int]]) -> bool:
        """Once per engine: does a request allowing one token return that token's raw log-probability (the
        top-k answer's value for the least likely of the top 20 after a real prefix), not a renormalised 0?"""
        if self._exact_tokens_checked is None:
            prefix = next((tuple(ids[:-n]) for ids, n in sequences if len(ids) > n), None)
            if prefix is None:
                return False
            top = self._ask_next_tokens([prefix])[0]
            token, value = min(top.items(), key=lambda item: (item[1], item[0]))
            try:
                found = self._ask_exact_tokens([(prefix, token)])[0]
            except MalformedAnswer:
                found = 0.0
            self._exact_tokens_checked = abs(found - value) <= 1e-4 and value < -1e-3
        return self._exact_tokens_checked


def next_token_tops(output: Any) -> dict[int, float]:
    """``{token id: log-prob}`` of the first generated position of a vLLM ``RequestOutput``."""
    first = output.outputs[0].logprobs[0]
    return {int(token): float(getattr(logprob, "logprob", logprob)) for token, logprob in first.items()}


def vllm_class():
    """lm-eval's ``VLLM`` with :class:`SharedPrefixVLLMMixin` (imports vLLM)."""
    from lm_eval.models.vllm_causallms import VLLM

    class SharedPrefixVLLM(SharedPrefixVLLMMixin, VLLM):
        pass

    return SharedPrefixVLLM
