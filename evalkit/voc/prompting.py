"""VOC prompts: a jinja2 template, optional label lists, seeded few-shot examples, chat templates,
and a guard that keeps prompts inside the model's context.

Templates render untrusted comment text, so they run in jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment`
(templates come from task files; a comment is only ever a value, never template source).
The template sees ``text``, ``examples`` (``[{"text", "label"}]``), ``label_options``, ``labels``
(path strings), ``levels`` (sorted names per level), ``sep`` and ``depth``.

Context-length guard (see :func:`plan_prompts`): token counts use the LM's tokenizer (``lm.tok_encode``)
when it has one, else ``len(text) / 4``. The label list is chosen once per run, so every sample sees
the same kind of prompt: if the configured ``label_options`` leaves fewer than ``min_comment_tokens``
for the comment, it falls back ``paths`` -> ``levels`` -> ``none`` with a warning (or, with
``label_options_fallback: false``, raises); the choice is recorded in every record. Per sample,
few-shot examples that would leave less than ``min_comment_tokens`` are dropped (the record says how
many were used), and a comment that still does not fit is cut at the end (kept from its start) and
its record says ``truncated``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..taxonomy import Taxonomy
    from .dataset import VocExample

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "LABEL_OPTIONS",
    "load_template_text",
    "PromptBuilder",
    "fewshot_examples",
    "TokenCounter",
    "token_counter",
    "context_limit",
    "use_chat_template",
    "PromptPlan",
    "plan_prompts",
]

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE_PATH = Path(__file__).parent / "templates" / "default_prompt.jinja"
LABEL_OPTIONS = ("none", "paths", "levels")
_FALLBACK = {"paths": "levels", "levels": "none"}
#: Fallback warnings already given in this process. The same model and template fall back the same way
#: at every evaluation (every checkpoint of a compare, every step of a training run): said once, then
#: logged at debug level; each result records it anyway (settings["label_options_used"]).
_WARNED: set[str] = set()
_TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2", ".txt")


def load_template_text(value: str | None, base_dir: Path) -> str:
    """The template source: the default file, a file path (relative to the task file) or inline text."""
    if value is None:
        return DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8")
    looks_like_file = "\n" not in value and "{{" not in value and value.strip().endswith(_TEMPLATE_SUFFIXES)
    if looks_like_file:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise UsageError(f"{path}: prompt template file not found (key 'prompt_template').")
        return path.read_text(encoding="utf-8")
    return value


@dataclass
class PromptBuilder:
    """Renders the prompt for one comment; ``render`` is a pure function of its arguments."""

    template_text: str
    taxonomy: "Taxonomy"
    _template: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from jinja2 import StrictUndefined, TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        try:
            self._template = env.from_string(self.template_text)
        except TemplateSyntaxError as exc:
            raise UsageError(f"prompt_template: jinja2 syntax error on line {exc.lineno}: {exc.message}.") from None
        tax = self.taxonomy
        self._labels = [tax.format(p) for p in tax.labels]
        self._levels = [sorted({p[k] for p in tax.nodes if len(p) > k}) for k in range(tax.depth)]

    def render(self, text: str, *, examples: Sequence["VocExample"] = (), label_options: str = "none") -> str:
        """The prompt for ``text`` with few-shot ``examples`` and the label block ``label_options``."""
        from jinja2 import TemplateError

        shots = [{"text": ex.text, "label": self.taxonomy.format(ex.path)} for ex in examples]
        try:
            return self._template.render(
                text=text,
                examples=shots,
                label_options=label_options,
                sep=self.taxonomy.sep,
                depth=self.taxonomy.depth,
                labels=self._labels if label_options == "paths" else [],
                levels=self._levels if label_options == "levels" else [],
            )
        except TemplateError as exc:
            raise UsageError(f"prompt_template: cannot render ({type(exc).__name__}: {exc}).") from None


def fewshot_examples(pool: Sequence["VocExample"], sample_id: str, k: int, seed: int) -> list["VocExample"]:
    """``k`` train examples for one sample, drawn with a generator seeded by ``(seed, sample_id)``.

    Seeding per sample makes the choice independent of batching and resumption.
    """
    if k <= 0 or not pool:
        return []
    rng = random.Random(f"{seed}:{sample_id}")  # str seeds hash with sha512: stable across processes
    # Draw one spare position so the sample itself (when it is in the pool) can be left out.
    picked = [pool[i] for i in rng.sample(range(len(pool)), min(k + 1, len(pool)))]
    return [ex for ex in picked if ex.sample_id != sample_id][:k]


# ----------------------------------------------------------------------------- model-dependent parts


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of a string; ``method`` is "tokenizer" or "chars/4" (recorded in the settings)."""

    count: Callable[[str], int]
    method: str


def token_counter(lm: Any) -> TokenCounter:
    """The LM's tokenizer when it exposes ``tok_encode`` (HFLM does), else an estimate of 4 chars per token."""
    encode = getattr(lm, "tok_encode", None)
    if callable(encode):
        try:
            encode("probe")
            return TokenCounter(lambda s: len(encode(s)), "tokenizer")
        except Exception:  # API models without a local tokenizer raise here
            pass
    return TokenCounter(lambda s: (len(s) + 3) // 4, "chars/4")


def context_limit(lm: Any) -> int | None:
    """The LM's context length in tokens, or None when it has none (predictions files)."""
    try:
        value = getattr(lm, "max_length", None)
    except Exception:
        return None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def use_chat_template(lm: Any, option: bool | None) -> bool:
    """Whether to wrap prompts in the LM's chat template: ``option`` if set, else when the LM has one."""
    if option is False:
        return False
    has_template = False
    try:
        has_template = bool(lm.chat_template(True))
    except Exception:  # LMs without a tokenizer or chat support
        has_template = False
    if option is True and not has_template:
        raise UsageError("chat_template: true, but the model has no chat template; set chat_template: false or null.")
    return has_template


@dataclass
class PromptPlan:
    """Everything model-dependent about the prompts of one run, decided once before the first sample."""

    builder: PromptBuilder
    label_options: str
    chat: bool
    counter: TokenCounter
    limit: int | None
    answer_tokens: int
    min_comment_tokens: int = 0
    _base_cache: dict = field(default_factory=dict, repr=False)
    _lm: Any = field(default=None, repr=False)

    def model_input(self, prompt: str) -> str:
        """The string sent to the LM: the prompt, wrapped in the chat template in chat mode."""
        if not self.chat:
            return prompt
        return self._lm.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)

    def build(self, text: str, examples: Sequence["VocExample"]) -> tuple[str, bool, int]:
        """``(model input, comment truncated?, few-shot examples used)`` for one comment.

        Few-shot examples that leave less than ``min_comment_tokens`` for the comment are dropped
        (last first); then a comment that is still too long is cut at the end.
        """
        examples = list(examples)
        if self.limit is None:
            return self._render(text, examples), False, len(examples)
        while examples and self._room(examples) < self.min_comment_tokens:
            examples.pop()
        budget = self._room(examples)
        truncated = False
        text_tokens = self.counter.count(text)
        while text and text_tokens > budget:
            # Proportional cut, repeated until it fits (token counts are not exactly proportional).
            text = text[: max(0, int(len(text) * budget / text_tokens) - 1)]
            text_tokens = self.counter.count(text)
            truncated = True
        return self._render(text, examples), truncated, len(examples)

    def _render(self, text: str, examples: Sequence["VocExample"]) -> str:
        return self.model_input(self.builder.render(text, examples=examples, label_options=self.label_options))

    def _room(self, examples: Sequence["VocExample"]) -> int:
        """Tokens left for the comment with these few-shot examples."""
        return self.limit - self.answer_tokens - self._base_tokens(examples)

    def _base_tokens(self, examples: Sequence["VocExample"]) -> int:
        key = tuple(ex.sample_id for ex in examples)
        if key not in self._base_cache:
            prompt = self.model_input(self.builder.render("", examples=examples, label_options=self.label_options))
            self._base_cache[key] = self.counter.count(prompt) + 2  # +2: tokens can merge at the comment's edges
        return self._base_cache[key]


def plan_prompts(
    lm: Any,
    builder: PromptBuilder,
    *,
    label_options: str,
    chat_template: bool | None,
    answer_tokens: int,
    min_comment_tokens: int,
    fallback: bool,
) -> PromptPlan:
    """Choose the chat mode and the label block that fit the LM's context (see the module docstring).

    The check is made without few-shot examples: examples that do not fit are dropped per sample.
    """
    plan = PromptPlan(
        builder=builder,
        label_options=label_options,
        chat=use_chat_template(lm, chat_template),
        counter=token_counter(lm),
        limit=context_limit(lm),
        answer_tokens=answer_tokens,
        min_comment_tokens=min_comment_tokens,
        _lm=lm,
    )
    if plan.limit is None:
        return plan
    while True:
        room = plan._room(())
        if room >= min_comment_tokens:
            return plan
        detail = (
            f"the prompt with label_options={plan.label_options!r} leaves {room} tokens for the comment "
            f"(context {plan.limit}, answer {answer_tokens}, min_comment_tokens {min_comment_tokens}; "
            f"tokens counted by {plan.counter.method})"
        )
        nxt = _FALLBACK.get(plan.label_options)
        if nxt is None or not fallback:
            hint = (
                "lower min_comment_tokens or shorten the template"
                if nxt is None
                else "use label_options: levels or none"
            )
            raise UsageError(f"prompt too long for the model: {detail}; {hint}, or use a model with a longer context.")
        message = f"VOC prompt: {detail}; falling back to label_options={nxt!r}."
        log.log(logging.DEBUG if message in _WARNED else logging.WARNING, message)
        _WARNED.add(message)
        plan.label_options, plan._base_cache = nxt, {}
