"""A confidence for every VOC prediction, stored in the record as ``extra["confidence"]``.

The field is a versioned object, added beside what records always held (records written before it
existed have no such key and stay as they were)::

    {"version": 1, "method": "path_probability", "path": 0.62, "levels": [0.97, 0.81, 0.62], "margin": 0.35}

- ``path_probability`` (constrained mode): at each level the chosen option's probability normalised
  over the level's valid options (the softmax of their log-likelihoods; "stop here" is an option where
  an inner node is itself a label), multiplied down the path. ``levels[k-1]`` is the probability of the
  level-``k`` prefix (the product of the first ``k`` factors); ``margin`` is the smallest lead of the
  chosen option over the runner-up on the way down (1.0 where every level had one option).
- ``continuation_logprob`` (generate mode): the parsed path, formatted as the label line, scored as a
  continuation of the prompt (one extra log-likelihood pass): ``path`` is the exponential of the mean
  log-probability per token (``per: "token"``; per UTF-8 byte, ``per: "byte"``, when the model's
  tokenizer is not at hand), so long and short labels are on one scale; ``logprob`` and ``length`` are
  kept. An output that does not parse to a label gets ``path: 0.0``: nothing routes it automatically.
- ``predictions`` (predictions files): the row's own ``confidence``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from .constrained import ConstrainedResult

__all__ = ["CONFIDENCE_VERSION", "constrained_confidence", "continuation_confidences", "stored_confidence"]

CONFIDENCE_VERSION = 1


def constrained_confidence(result: "ConstrainedResult") -> dict[str, Any]:
    """The ``path_probability`` confidence of one constrained walk."""
    levels, running = [], 1.0
    for probability in result.probabilities[: len(result.path)]:
        running *= probability
        levels.append(running)
    margins = result.probability_margins
    return {
        "version": CONFIDENCE_VERSION,
        "method": "path_probability",
        "path": result.confidence,
        "levels": levels,
        "margin": min(margins) if margins else 1.0,
    }


def stored_confidence(value: float) -> dict[str, Any]:
    """A confidence given with the prediction (a predictions file's ``confidence``)."""
    return {"version": CONFIDENCE_VERSION, "method": "predictions", "path": float(value)}


def continuation_confidences(
    lm: Any, prompts: Sequence[str], answers: Sequence[str | None], make_request: Callable[[int, str, str], Any]
) -> list[dict[str, Any]]:
    """``continuation_logprob`` confidences of ``answers`` (None: unparsed output) after ``prompts``.

    Raises UsageError or NotImplementedError when ``lm`` cannot score log-likelihoods (the caller then
    stores no confidence).
    """
    from .constrained import answer_prefix

    todo = [
        (i, prompt, answer_prefix(prompt) + answer)
        for i, (prompt, answer) in enumerate(zip(prompts, answers))
        if answer
    ]
    scores = [float(out[0]) for out in lm.loglikelihood([make_request(i, c, x) for i, c, x in todo])] if todo else []
    out = [
        {
            "version": CONFIDENCE_VERSION,
            "method": "continuation_logprob",
            "path": 0.0,
            "logprob": None,
            "length": 0,
            "per": None,
        }
        for _ in prompts
    ]
    for (i, context, continuation), logprob in zip(todo, scores):
        length, per = _length(lm, context, continuation)
        mean = logprob / length
        out[i].update(path=math.exp(mean) if math.isfinite(mean) else 0.0, logprob=logprob, length=length, per=per)
    return out


def _length(lm: Any, context: str, continuation: str) -> tuple[int, str]:
    """Tokens of ``continuation`` after ``context`` as lm-eval counts them, else its UTF-8 bytes."""
    encode = getattr(lm, "tok_encode", None)
    if callable(encode):
        try:
            whole, head = encode(context + continuation), encode(context)
            if len(whole) > len(head):
                return len(whole) - len(head), "token"
        except (AttributeError, TypeError, ValueError):  # an API model without a local tokenizer
            pass
    return max(1, len(continuation.encode("utf-8"))), "byte"


def scoring_unavailable(exc: BaseException) -> str:
    """Why the confidence pass was skipped, for the task settings."""
    if isinstance(exc, UsageError):
        return str(exc).split(";")[0]
    return f"the model cannot score log-likelihoods ({type(exc).__name__})"
