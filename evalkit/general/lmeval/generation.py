"""Generation lengths that fit the model's context, planned before the first request.

lm-eval's IFEval asks for up to 1280 new tokens. On a model with a 1,024-token context, in-process
``HFLM`` fails its assertion ("requested max tokens to generate (1280) must be less than ...") and a
server answers HTTP 400: an evaluation failure an hour in, or at once. evalkit caps ``max_gen_toks`` so
the task's longest prompt and the answer fit (one cap for the whole task, so lm-eval batches as before),
says so in one line, and records the cap in the task result's settings. A prompt that leaves no room at
all is a usage error naming the task, the model's context and the prompt's length.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ...errors import UsageError, arg

__all__ = ["GenerationFit", "fit_generation_lengths"]

log = logging.getLogger(__name__)
_WARNED: set[str] = set()


@dataclass(frozen=True)
class GenerationFit:
    """The outcome for one task: the requested and the capped ``max_gen_toks`` (equal when it fits)."""

    requested: int
    max_gen_toks: int
    context: int
    longest_prompt: int

    @property
    def capped(self) -> bool:
        return self.max_gen_toks < self.requested


def _max_gen_toks(gen_kwargs: dict, lm: Any) -> int:
    from lm_eval.models.utils import normalize_gen_kwargs

    default = getattr(lm, "max_gen_toks", None) or getattr(lm, "_max_gen_toks", None) or 256
    return int(normalize_gen_kwargs(gen_kwargs, int(default))["max_gen_toks"])


def _prompt_tokens(lm: Any, text: Any) -> int | None:
    """Tokens of a prompt as the LM encodes it; None when the LM has no local tokenizer (a chat endpoint)."""
    try:
        return len(lm.tok_encode(text))
    except Exception:  # API LMs without a tokenizer raise (or return None) here
        return None


def fit_generation_lengths(instances: list, lm: Any, task_name: str) -> GenerationFit | None:
    """Cap the ``generate_until`` instances' ``max_gen_toks`` to what ``lm``'s context leaves (in place).

    Returns None when there is nothing to plan (no generation requests, no known context or tokenizer).
    """
    generation = [inst for inst in instances if inst.request_type == "generate_until"]
    try:
        context = getattr(lm, "max_length", None)
    except Exception:  # an LM whose max_length needs what it does not have (a replay, a wrapper)
        return None
    if not generation or not isinstance(context, int) or isinstance(context, bool) or context <= 0:
        return None
    lengths = [_prompt_tokens(lm, inst.args[0]) for inst in generation]
    if any(n is None for n in lengths):
        return None
    longest = max(n for n in lengths if n is not None)
    requested = max(_max_gen_toks(inst.args[1], lm) for inst in generation)
    room = context - longest
    if room < 1:
        raise UsageError(
            f"task {task_name!r}: its longest prompt has {longest} tokens, which leaves no room for an "
            f"answer in the model's {context}-token context; use a model with a longer context, fewer "
            f"few-shot examples, or {arg('max_length', 'N')} if the model takes more than it says."
        )
    fit = GenerationFit(requested, min(requested, room), context, longest)
    if fit.capped:
        for inst in generation:
            inst.arguments = (
                inst.args[0],
                {**inst.args[1], "max_gen_toks": min(room, _max_gen_toks(inst.args[1], lm))},
                *inst.args[2:],
            )
        _note(
            f"{task_name}: max_gen_toks {requested} does not fit the model's {context}-token context; answers "
            f"are capped at {room} new tokens (the longest prompt has {longest} tokens)."
        )
    return fit


def _note(message: str) -> None:
    log.log(logging.DEBUG if message in _WARNED else logging.WARNING, message)
    _WARNED.add(message)
