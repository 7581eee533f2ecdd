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
All candidates of one level, for all samples of a batch, go to the LM in one ``loglikelihood`` call,
so there are ``depth`` calls per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..taxonomy import Taxonomy

__all__ = ["STOP", "ConstrainedResult", "answer_prefix", "constrained_predict"]

STOP = "\n"


@dataclass
class ConstrainedResult:
    """The chosen path and, per level, the chosen option's log-probability and its margin over the runner-up."""

    path: tuple[str, ...]
    logprobs: list[float] = field(default_factory=list)
    margins: list[float | None] = field(default_factory=list)  # None: the level had one option


def answer_prefix(prompt: str) -> str:
    """What separates the prompt from the answer: a space, unless the prompt ends with whitespace."""
    return "" if not prompt or prompt[-1].isspace() else " "


def _options(taxonomy: "Taxonomy", prefix: tuple[str, ...]) -> list[tuple[str, ...] | None]:
    """Children of ``prefix``, plus None (= stop here) when ``prefix`` is itself a label."""
    options: list[tuple[str, ...] | None] = list(taxonomy.children(prefix))
    if prefix and taxonomy.is_label(prefix):
        options.append(None)
    return options


def constrained_predict(lm: Any, prompts: Sequence[str], taxonomy: "Taxonomy",
                        make_request: Callable[[int, str, str], Any]) -> list[ConstrainedResult]:
    """Top-down constrained predictions for ``prompts`` (one per sample), always valid label paths.

    ``make_request(sample_index, context, continuation)`` builds the lm-eval ``Instance`` (the
    evaluator tags it with the task name and sample id); ``lm.loglikelihood`` gets one list per level.
    """
    results = [ConstrainedResult(path=()) for _ in prompts]
    active = list(range(len(prompts)))
    while active:
        requests, owners = [], []
        for i in active:
            prefix = results[i].path
            head = prompts[i] + (answer_prefix(prompts[i]) + taxonomy.format(prefix) if prefix else "")
            for option in _options(taxonomy, prefix):
                continuation = STOP if option is None else (taxonomy.sep if prefix else answer_prefix(prompts[i])) + option[-1]
                requests.append(make_request(i, head, continuation))
                owners.append((i, option))
        scores = [float(out[0]) for out in lm.loglikelihood(requests)]
        active = _choose(results, owners, scores, taxonomy)
    return results


def _choose(results: list[ConstrainedResult], owners: list, scores: list[float], taxonomy: "Taxonomy") -> list[int]:
    """Apply the best option per sample; return the samples that must go one level deeper."""
    best: dict[int, list] = {}
    for (i, option), score in zip(owners, scores):
        entry = best.setdefault(i, [None, float("-inf"), float("-inf"), False])  # option, best, second, seen
        if not entry[3] or score > entry[1]:
            entry[2] = entry[1] if entry[3] else entry[2]
            entry[0], entry[1], entry[3] = option, score, True
        elif score > entry[2]:
            entry[2] = score
    deeper = []
    for i, (option, top, second, _) in sorted(best.items()):
        results[i].logprobs.append(top)
        results[i].margins.append(top - second if second != float("-inf") else None)
        if option is None:
            continue
        results[i].path = option
        if taxonomy.children(option):
            deeper.append(i)
    return deeper
