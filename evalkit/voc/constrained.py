"""Constrained prediction: walk the taxonomy top-down, ranking children by log-likelihood.

At each level every child of the path chosen so far is scored as a continuation of
``prompt + answer prefix + path so far`` — the first level as ``" " + name`` (no space when the prompt
ends with whitespace, e.g. after a chat template's assistant header), deeper levels as
``sep + name`` — and the child with the highest summed log-probability is taken (ties: first in sorted
order). Where the path so far is itself a label and also has children (CFPB's
``Mortgage > FHA mortgage > Incorrect information on your report``), stopping is one more option,
scored as the continuation ``"\\n"`` (the end of the answer line). The walk ends at a leaf or on
"stop", so the prediction is always a valid label path.

Scores are *not* length-normalised: this is the same rule as lm-eval's ``acc`` for multiple choice.

How the candidates are scored:

- lm-eval's in-process ``HFLM`` (causal, unmodified): :class:`PrefixScorer` runs each prompt through the
  model once and keeps its key/value cache; every candidate of every level is then scored from that cache,
  one batched forward pass over the short continuations per level. The token ids are exactly those
  ``HFLM.loglikelihood`` scores (``_encode_pair``: context and context+continuation tokenised, the
  continuation is the difference; the prompt is tokenised once and each candidate's ids are joined to it
  where the tokenizer provably cannot merge across the boundary, see ``PairEncoder``), so the walk costs about one prompt pass plus the continuations, instead
  of one full prompt pass per candidate (lm-eval's HF path shares no prefix for multi-token
  continuations). Log-probabilities equal lm-eval's up to floating-point rounding of the different matrix
  shapes (~1e-6); a candidate whose tokens do not extend the cached prompt tokens, or that would be
  truncated, is scored by ``lm.loglikelihood`` instead.
- any other LM (servers, replays): all candidates of one level, for all samples of a batch, go to the
  LM in one ``loglikelihood`` call, so there are ``depth`` calls per batch. A vLLM server with automatic
  prefix caching computes the shared prompt once (see docs/scale-out.md).
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..tokenization import split_trailing_space

if TYPE_CHECKING:
    from ..taxonomy import Taxonomy

__all__ = ["STOP", "ConstrainedResult", "PrefixScorer", "answer_prefix", "constrained_predict"]

STOP = "\n"


@dataclass
class ConstrainedResult:
    """The chosen path and, per level, the chosen option's log-probability, its margin over the runner-up and
    its probability normalised over the level's options."""

    path: tuple[str, ...]
    logprobs: list[float] = field(default_factory=list)
    margins: list[float | None] = field(default_factory=list)  # None: the level had one option
    #: the chosen option's probability normalised over the level's valid options (softmax of the scores),
    #: and its lead over the runner-up's (1.0 when the level had one option)
    probabilities: list[float] = field(default_factory=list)
    probability_margins: list[float] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        """The path's probability: the product of the normalised level probabilities down the path."""
        return math.prod(self.probabilities)


def answer_prefix(prompt: str) -> str:
    """What separates the prompt from the answer: a space, unless the prompt ends with whitespace."""
    return "" if not prompt or prompt[-1].isspace() else " "


def _options(taxonomy: "Taxonomy", prefix: tuple[str, ...]) -> list[tuple[str, ...] | None]:
    """Children of ``prefix``, plus None (= stop here) when ``prefix`` is itself a label."""
    options: list[tuple[str, ...] | None] = list(taxonomy.children(prefix))
    if prefix and taxonomy.is_label(prefix):
        options.append(None)
    return options


def constrained_predict(
    lm: Any, prompts: Sequence[str], taxonomy: "Taxonomy", make_request: Callable[[int, str, str], Any]
) -> list[ConstrainedResult]:
    """Top-down constrained predictions for ``prompts`` (one per sample), always valid label paths.

    ``make_request(sample_index, context, continuation)`` builds the lm-eval ``Instance`` (the
    evaluator tags it with the task name and sample id); ``lm.loglikelihood`` gets one list per level.
    """
    results = [ConstrainedResult(path=()) for _ in prompts]

    def by_lm(pairs: list[tuple[int, str, str]]) -> list[float]:
        requests = [make_request(i, c, x) for i, c, x in pairs]
        # Served LMs score without is_greedy when asked (fewer prompt log-probs per request, same numbers).
        if callable(getattr(lm, "loglikelihood_scores", None)):
            return list(lm.loglikelihood_scores(requests))
        return [float(out[0]) for out in lm.loglikelihood(requests)]

    scorer = PrefixScorer(lm) if PrefixScorer.supports(lm) else None
    # One prompt at a time with a prefix cache (its memory is one prompt's); else each level in one call.
    groups = [[i] for i in range(len(prompts))] if scorer is not None else [list(range(len(prompts)))]
    for active in groups:
        while active:
            pairs, owners = _level_requests(active, results, prompts, taxonomy)
            scores = scorer.score(pairs, by_lm) if scorer is not None else by_lm(pairs)
            active = _choose(results, owners, scores, taxonomy)
    return results


def _level_requests(
    active: list[int], results: list[ConstrainedResult], prompts: Sequence[str], taxonomy: "Taxonomy"
) -> tuple[list[tuple[int, str, str]], list]:
    """(sample, context, continuation) of every option of the next level of the ``active`` samples."""
    pairs, owners = [], []
    for i in active:
        prefix = results[i].path
        head = prompts[i] + (answer_prefix(prompts[i]) + taxonomy.format(prefix) if prefix else "")
        for option in _options(taxonomy, prefix):
            continuation = (
                STOP if option is None else (taxonomy.sep if prefix else answer_prefix(prompts[i])) + option[-1]
            )
            pairs.append((i, head, continuation))
            owners.append((i, option))
    return pairs, owners


class PrefixScorer:
    """Log-likelihoods of continuations of one prompt from one cached forward pass of the prompt.

    The prompt's tokens (``HFLM.tok_encode`` of the context, trailing spaces moved to the continuation as
    ``_encode_pair`` does) but the last are run once with ``use_cache``; each request then feeds only its
    tokens after that prefix. Requests are ``(sample, context, continuation)``; the cache is kept while the
    sample stays the same.
    """

    def __init__(self, lm: Any):
        from ..tokenization import PairEncoder

        self.lm = lm
        self._sample: int | None = None
        self._prefix: list[int] = []
        self._prompt: str | None = None
        self._cache = None
        self._encoder = PairEncoder(lm)  # lm-eval's tokenisation, each string once, in bulk

    @staticmethod
    def supports(lm: Any) -> bool:
        """An unmodified causal ``HFLM`` (the token ids reproduced here are then the ones it would score)."""
        from ..tokenization import PairEncoder

        return (
            PairEncoder.supports(lm)
            and "_model_call" not in vars(lm)
            and hasattr(lm, "model")
            and _full_attention_only(getattr(lm.model, "config", None))
        )

    def score(self, pairs: list[tuple[int, str, str]], fallback: Callable[[list], list[float]]) -> list[float]:
        """Summed log-probabilities of each continuation (``fallback`` scores what the cache cannot)."""
        import torch

        scores: list[float | None] = [None] * len(pairs)
        for sample in dict.fromkeys(p[0] for p in pairs):
            mine = [k for k, p in enumerate(pairs) if p[0] == sample]
            if sample != self._sample:
                self._prime(sample, pairs[mine[0]][1])
            split = {k: split_trailing_space(*pairs[k][1:]) for k in mine}
            self._encoder.encode_pairs(split.values(), anchor=self._prompt)  # the long prompt is tokenised once
            tails = [t for t in (self._tail(k, *split[k]) for k in mine) if t is not None]
            step = (
                self.lm.batch_size
                if isinstance(self.lm.batch_size, int) and self.lm.batch_size > 0
                else len(tails) or 1
            )
            with torch.no_grad():
                for start in range(0, len(tails), step):
                    for k, value in self._score_tails(tails[start : start + step]):
                        scores[k] = value
        missing = [k for k, value in enumerate(scores) if value is None]
        if missing:
            for k, value in zip(missing, fallback([pairs[k] for k in missing])):
                scores[k] = value
        return [float(v) for v in scores]

    def _tail(self, k: int, context: str, continuation: str) -> tuple[int, list[int], list[int]] | None:
        """(k, model input after the cached prefix, continuation ids), or None if the cache cannot score it.

        ``context`` and ``continuation`` are split as ``_encode_pair`` splits them and already encoded.
        """
        ctx, cont = self._encoder.pair(context, continuation)
        tokens, cut = ctx + cont, len(self._prefix)
        if (
            self._cache is None
            or len(tokens) > self.lm.max_length
            or tokens[:cut] != self._prefix
            or len(ctx) <= cut
            or not cont
        ):
            return None
        return k, tokens[cut:-1], cont

    def _prime(self, sample: int, prompt: str) -> None:
        """Run the prompt (all tokens but the last) once and keep its key/value cache."""
        import torch
        from transformers import DynamicCache

        self._sample = sample
        self._encoder.forget()  # strings of one prompt are not reused by the next
        self._prompt = context = split_trailing_space(prompt, "")[0]
        self._encoder.encode_strings({context})
        tokens = self._encoder.ids(context)
        self._prefix = tokens[:-1] if len(tokens) <= self.lm.max_length else []
        self._cache = None
        if self._prefix:
            cache = DynamicCache()
            with torch.no_grad():
                self.lm.model(
                    torch.tensor([self._prefix], device=self.lm.device),
                    **{_cache_argument(self.lm.model): cache},
                    use_cache=True,
                )
            self._cache = cache

    def _score_tails(self, tails: list[tuple[int, list[int], list[int]]]) -> list[tuple[int, float]]:
        """One batched forward pass of right-padded tails on the prompt cache (repeated, then cropped back)."""
        import torch
        import torch.nn.functional as F

        if not tails:
            return []
        width = max(len(t) for _, t, _ in tails)
        # Right padding: a causal model's logits at real positions do not see the padding after them.
        batch = torch.tensor([t + [t[-1]] * (width - len(t)) for _, t, _ in tails], device=self.lm.device)
        cache = copy.deepcopy(self._cache)  # the forward pass appends to it; the prompt's stays for the next level
        cache.batch_repeat_interleave(len(tails))
        logits = self.lm.model(batch, **{_cache_argument(self.lm.model): cache}, use_cache=True).logits
        logprobs = F.log_softmax(logits, dim=-1)
        out = []
        for row, (k, tail, targets) in enumerate(tails):
            # the logits at tail position p predict the token after it: the continuation's n tokens are
            # predicted by the last n positions of the tail
            positions = torch.arange(len(tail) - len(targets), len(tail), device=self.lm.device)
            picked = logprobs[row, positions, torch.tensor(targets, device=self.lm.device)]
            out.append((k, float(picked.sum())))
        return out


def _choose(results: list[ConstrainedResult], owners: list, scores: list[float], taxonomy: "Taxonomy") -> list[int]:
    """Apply the best option per sample; return the samples that must go one level deeper."""
    options: dict[int, list] = {}
    for (i, option), score in zip(owners, scores):
        options.setdefault(i, []).append((option, score))
    deeper = []
    for i, scored in sorted(options.items()):
        # max() keeps the first of equal scores: ties go to the first option in sorted order
        option, top = max(scored, key=lambda pair: pair[1])
        rest = sorted((s for o, s in scored if o is not option), reverse=True)
        probability, runner_up = _normalised(top, [s for _, s in scored], rest[0] if rest else None)
        results[i].logprobs.append(top)
        results[i].margins.append(top - rest[0] if rest else None)
        results[i].probabilities.append(probability)
        results[i].probability_margins.append(probability - runner_up)
        if option is None:
            continue
        results[i].path = option
        if taxonomy.children(option):
            deeper.append(i)
    return deeper


def _normalised(top: float, scores: list[float], second: float | None) -> tuple[float, float]:
    """Probabilities of the chosen option and the runner-up, normalised over the level's valid options."""
    finite = [s for s in scores if math.isfinite(s)]
    if not finite or not math.isfinite(top):
        return 1.0 / len(scores), (1.0 / len(scores) if second is not None else 0.0)  # nothing told them apart
    peak = max(finite)
    total = math.fsum(math.exp(s - peak) for s in finite)
    runner_up = math.exp(second - peak) / total if second is not None and math.isfinite(second) else 0.0
    return math.exp(top - peak) / total, runner_up


def _full_attention_only(config: Any) -> bool:
    """A plain key/value cache reproduces the full forward pass only for full attention in every layer.

    Sliding-window and hybrid models (Mistral with a window, Gemma 2/3, recurrent layers) keep other caches;
    they take the ``lm.loglikelihood`` path.
    """
    if config is None:
        return False
    text = getattr(config, "get_text_config", lambda: config)()
    if getattr(text, "sliding_window", None) or getattr(text, "attention_chunk_size", None):
        return False
    layer_types = getattr(text, "layer_types", None)
    return not layer_types or all(t == "full_attention" for t in layer_types)


@functools.lru_cache(maxsize=8)
def _cache_argument_of(forward) -> str:
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def _cache_argument(model: Any) -> str:
    """The forward argument that takes a key/value cache (transformers 5 renames ``past_key_values``)."""
    return _cache_argument_of(type(model).forward)
