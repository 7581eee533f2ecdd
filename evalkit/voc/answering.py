"""How the voc evaluator asks the model: generation parsed into label paths (plus a confidence pass), or
constrained decoding over the label tree; each answer comes back as (path, extra fields of its record)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..taxonomy import Taxonomy
    from .dataset import VocExample

__all__ = ["Answerer"]


class Answerer:
    """The requests of one voc task (``options``: its ``VocOptions``) over its label ``taxonomy``."""

    def __init__(self, task_name: str, options: Any, taxonomy: "Taxonomy"):
        self.task_name = task_name
        self.options = options
        self.taxonomy = taxonomy
        self.unscorable: str | None = None  # why generate mode's confidence pass could not run on this model

    def request(self, kind: str, example: "VocExample", arguments: tuple, idx: int):
        """An lm-eval ``Instance`` for ``example``, named by the task and the sample id."""
        from lm_eval.api.instance import Instance

        inst = Instance(
            request_type=kind, doc={"id": example.sample_id, "text": example.text}, arguments=arguments, idx=idx
        )
        inst.task_name = self.task_name
        inst.evalkit_sample_id = example.sample_id
        return inst

    def generate(self, lm: Any, batch: list["VocExample"], prompts: list[str], *, chat: bool) -> list[tuple]:
        """Generated answers parsed into paths (with confidences when they can be had): (path, extra) each."""
        o = self.options
        # Completion prompts end at "Label:", so the answer is the rest of the line. Chat models may open
        # with a blank line or a <think> block, so there only EOS (and max_gen_toks) stops the answer and
        # the parser takes the first non-empty line after the reasoning.
        until = list(o.until) if o.until is not None else ([] if chat else ["\n"])
        kwargs = {"until": until, "max_gen_toks": o.max_gen_toks, "do_sample": False, "temperature": 0.0}
        requests = [
            self.request("generate_until", ex, (prompt, dict(kwargs)), i)
            for i, (ex, prompt) in enumerate(zip(batch, prompts))
        ]
        outputs = lm.generate_until(requests)
        parser = self._parser
        outcomes = []
        for raw in outputs:
            parsed = parser.parse(raw)
            outcomes.append((parsed.path, {"raw_output": raw, "parse_rule": parsed.rule, "invalid": parsed.invalid}))
        for (_, extra), confidence in zip(
            outcomes, self._generated_confidences(lm, batch, prompts, outcomes, requests)
        ):
            if confidence is not None:
                extra["confidence"] = confidence
        return outcomes

    def _generated_confidences(
        self, lm: Any, batch: list["VocExample"], prompts: list[str], outcomes: list[tuple], requests: list
    ) -> list[dict[str, Any] | None]:
        """Confidences of generated predictions: a predictions file's own, else one scoring pass (when possible)."""
        from .confidence import continuation_confidences, scoring_unavailable, stored_confidence

        given = getattr(lm, "confidence_for", None)
        if callable(given):
            values = [given(request) for request in requests]
            return [stored_confidence(v) if v is not None else None for v in values]
        if not callable(getattr(lm, "loglikelihood", None)):
            self.unscorable = "the model answers no log-likelihood requests"
        if not self.options.score_confidence or self.unscorable is not None:
            return [None] * len(batch)
        tax = self.taxonomy
        answers = [tax.format(path) if path else None for path, _ in outcomes]
        try:
            return [
                *continuation_confidences(
                    lm,
                    prompts,
                    answers,
                    lambda i, context, continuation: self.request(
                        "loglikelihood", batch[i], (context, continuation), i
                    ),
                )
            ]
        except (UsageError, NotImplementedError) as exc:  # served by an endpoint without prompt log-probabilities
            self.unscorable = scoring_unavailable(exc)
            return [None] * len(batch)

    @cached_property
    def _parser(self):
        from .parsing import OutputParser

        return OutputParser(self.taxonomy, cutoff=self.options.parse_cutoff)

    def constrained(self, lm: Any, batch: list["VocExample"], prompts: list[str]) -> list[tuple]:
        """The most likely path of each prompt by constrained decoding: (path, extra) each."""
        from .confidence import constrained_confidence
        from .constrained import constrained_predict

        tax = self.taxonomy
        results = constrained_predict(
            lm,
            prompts,
            tax,
            lambda i, context, continuation: self.request("loglikelihood", batch[i], (context, continuation), i),
        )
        return [
            (
                r.path,
                {
                    "raw_output": tax.format(r.path),
                    "parse_rule": "constrained",
                    "invalid": False,
                    "level_logprobs": r.logprobs,
                    "level_margins": r.margins,
                    "confidence": constrained_confidence(r),
                },
            )
            for r in results
        ]
