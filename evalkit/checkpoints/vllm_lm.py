"""lm-eval's in-process ``VLLM`` (``--backend vllm``) with shared-prefix scoring of choices.

lm-eval's ``VLLM`` scores each (question, choice) with one request asking for *prompt* log-probabilities,
for which vLLM skips its prefix cache (``bench/vllm_prefix``): MMLU's four letters are four prefills of
the question. :class:`SharedPrefixVLLMMixin` scores them with generation-style requests instead
(``max_tokens=1``, ``logprobs=20``; vLLM's logprobs are keyed by token id), one per distinct prefix of the
choices' token trie (:mod:`evalkit.checkpoints.shared_prefix`), which the prefix cache serves; choices
outside the top 20 go through lm-eval's own path. ``--model-args loglikelihood_scoring=per_option``
keeps lm-eval's path for everything.
"""

from __future__ import annotations

from typing import Any

from .resilient_api import RequestStats
from .shared_prefix import TOP_K, score_choices, scoring_mode, truncated_sequence

__all__ = ["SharedPrefixVLLMMixin", "next_token_tops", "vllm_class"]


class SharedPrefixVLLMMixin:
    """Mix in before lm-eval's ``VLLM`` (see the module docstring)."""

    def __init__(self, *args: Any, loglikelihood_scoring: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loglikelihood_scoring = scoring_mode(loglikelihood_scoring)
        self.request_stats = RequestStats()  # next_token_requests / rescored_per_option, as for servers

    def uses_shared_prefix(self) -> bool:
        """Whether log-likelihoods go through the shared-prefix walk (every mode but ``per_option``)."""
        return self.loglikelihood_scoring != "per_option"

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False):
        per_option = super()._loglikelihood_tokens  # type: ignore[misc]
        if not requests or not self.uses_shared_prefix():
            return per_option(requests, disable_tqdm=disable_tqdm)
        max_tokens = self.max_length - 1  # type: ignore[attr-defined]  # as lm-eval: one token for generation
        sequences = [truncated_sequence(context, continuation, max_tokens) for _, context, continuation in requests]
        answers, rescored = score_choices(requests, sequences, self._ask_next_tokens,
                                          lambda rest: per_option(rest, disable_tqdm=True))
        self.request_stats.rescored_per_option += rescored
        for (key, _, _), found in zip(requests, answers):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, found)  # type: ignore[attr-defined]
        return answers

    def _ask_next_tokens(self, prefixes: list[tuple[int, ...]]) -> list[dict[int, float]]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0, max_tokens=1, logprobs=TOP_K, detokenize=False)
        outputs = self._model_generate([list(p) for p in prefixes], generate=True,  # type: ignore[attr-defined]
                                       sampling_params=params)
        self.request_stats.next_token_requests += len(prefixes)
        return [next_token_tops(output) for output in outputs]


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
