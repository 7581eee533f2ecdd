"""lm-eval's tokenisation of (context, continuation) pairs, each distinct string once and in bulk.

A shared low-level piece: the general axis (:mod:`evalkit.general.lmeval.requests`, lm-eval's
log-likelihood requests) and the VOC axis (:mod:`evalkit.voc.constrained`, candidate labels after a
prompt) both score continuations with the ids lm-eval's ``TemplateLM._encode_pair`` would produce.
:class:`PairEncoder` reproduces them; the boundary helpers decide when a continuation's ids may be
joined to its context's instead of tokenising the concatenation.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "PairEncoder",
    "join_boundary",
    "joins_at_whitespace",
    "shared_head",
    "split_trailing_space",
    "SPLIT_PATTERNS",
]


class PairEncoder:
    """``TemplateLM.loglikelihood``'s request encoding for lm-eval's causal ``HFLM``, each string once.

    ``supports(lm)`` is true only for an unmodified causal HFLM (no instance- or subclass-level override of
    the methods reproduced here), so the ids always equal what ``lm.loglikelihood`` would compute.

    Long contexts are tokenised once: where the tokenizer provably cannot merge tokens across the
    context/continuation boundary (:func:`join_boundary`), the ids of ``context + continuation`` are
    the context's ids followed by the continuation's own ids (tokenised after a one-letter head, without
    special tokens, and the head's ids dropped: what a sentencepiece tokenizer prepends to a text's start
    then stays out of the continuation), so an MMLU
    question's four choices or a VOC prompt's ~22 candidates cost one long tokenisation instead of one each.
    The first joined strings of every encoder are also tokenised in full and compared; on any difference
    joining is switched off for that encoder and everything is tokenised in full.
    """

    VERIFY = 16  # joined strings checked against full tokenisation per encoder

    def __init__(self, lm: Any):
        self.lm = lm
        self._cache: dict[str, list[int]] = {}  # fully tokenised strings (HFLM.tok_encode)
        self._tails: dict[str, list[int]] = {}  # continuations' ids after a head (see _encode_tails)
        self._joined: dict[str, tuple[str, str]] = {}  # string -> (head, tail): ids(head) + tail ids
        self._bos = lm.tokenizer.decode(lm.prefix_token_id)
        self.boundary = join_boundary(lm.tokenizer)  # characters a joined tail may start with
        self.join = bool(self.boundary)
        self._to_verify = self.VERIFY

    @staticmethod
    def supports(lm: Any) -> bool:
        try:
            from lm_eval.api.model import TemplateLM
            from lm_eval.models.huggingface import HFLM
        except ImportError:
            return False
        cls = type(lm)
        return (
            isinstance(lm, HFLM)
            and getattr(lm, "backend", None) == "causal"
            and not getattr(lm, "enable_thinking", False)
            and not any(
                name in vars(lm) for name in ("loglikelihood", "tok_encode", "_encode_pair", "_loglikelihood_tokens")
            )
            and cls.loglikelihood is HFLM.loglikelihood
            and cls.tok_encode is HFLM.tok_encode
            and cls._encode_pair is TemplateLM._encode_pair
        )

    def encode(self, docs: list[Any]) -> None:
        """Set ``doc.tokens`` for the log-likelihood requests of ``docs`` (strings tokenised in bulk).

        ``docs`` are :class:`evalkit.general.lmeval.requests.Doc` objects (lm-eval ``instances``, ``tokens``
        set here); every doc must have non-empty contexts (see :func:`~evalkit.general.lmeval.requests.encodable`)."""
        todo = [d for d in docs if d.tokens is None]
        pairs = [
            [split_trailing_space(*inst.args) for inst in d.instances if inst.request_type == "loglikelihood"]
            for d in todo
        ]
        by_subtask: dict[Any, list[tuple[str, str]]] = {}
        for d, doc_pairs in zip(todo, pairs):
            by_subtask.setdefault(getattr(d, "subtask", None), []).extend(doc_pairs)
        for subtask_pairs in by_subtask.values():
            # A subtask's prompts share their start (a description, few-shot examples: ~3/4 of a 5-shot MMLU
            # prompt): it is tokenised once and every context joins its ids (see shared_head).
            anchor = shared_head([context for context, _ in subtask_pairs], self.boundary) if self.join else None
            self.encode_pairs(subtask_pairs, anchor=anchor)
        for d, doc_pairs in zip(todo, pairs):
            contexts: dict[str, list[int]] = {}  # an MMLU question's four letters share one context
            d.tokens = [
                self._request(inst.args, ctx, cont, contexts)
                for inst, (ctx, cont) in zip((i for i in d.instances if i.request_type == "loglikelihood"), doc_pairs)
            ]

    def _request(self, args: tuple, context: str, continuation: str, contexts: dict[str, list[int]]):
        if context not in contexts:  # a joined context's ids are composed at each ids() call: once per doc here
            contexts[context] = self.ids(context)
        ctx = contexts[context]
        return (tuple(args), ctx, self._continuation_ids(context, continuation, ctx))

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """``_encode_pair``'s (context ids, continuation ids) of a pair split and encoded by ``encode_pairs``."""
        ctx = self.ids(context)
        return ctx, self._continuation_ids(context, continuation, ctx)

    def _continuation_ids(self, context: str, continuation: str, ctx: list[int]) -> list[int]:
        head, tail = self._joined.get(context + continuation, (None, None))
        if head == context:  # joined to this very context: the continuation's ids are the tail's
            return self._tails[tail]
        return self.ids(context + continuation)[len(ctx) :]

    def ids(self, string: str) -> list[int]:
        """``HFLM.tok_encode(string)`` of a string encoded by ``encode_pairs``."""
        if string in self._cache:
            return self._cache[string]
        head, tail = self._joined[string]
        return self.ids(head) + self._tails[tail]

    def forget(self) -> None:
        """Drop the long strings (a VOC prompt is not reused by the next); short continuations stay."""
        self._cache.clear()
        self._joined.clear()

    def encode_pairs(self, pairs, anchor: str | None = None) -> None:
        """Tokenise what :meth:`pair` needs for these split (context, continuation) pairs, in bulk.

        ``context + continuation`` joins the context's ids where the boundary is safe; ``anchor`` (a
        prompt the contexts extend, e.g. a VOC prompt followed by the answer so far) lets the contexts
        themselves join the anchor's ids.
        """
        full: set[str] = set()
        for context, continuation in pairs:
            self._plan(context, (anchor,) if anchor else (), full)
            self._plan(context + continuation, (context, anchor) if anchor else (context,), full)
        self.encode_strings(full)
        self._encode_tails({tail for head, tail in self._joined.values() if tail not in self._tails})
        self._verify()

    def _plan(self, string: str, heads: tuple, full: set[str]) -> None:
        if string in self._cache or string in self._joined or string in full:
            return
        head = next((h for h in heads if self.join and h and _safe_boundary(string, h, self.boundary)), None)
        if head is None:
            full.add(string)
            return
        self._joined[string] = (head, string[len(head) :])
        self._plan(head, heads[heads.index(head) + 1 :], full)

    def _verify(self) -> None:
        """Check the first joined strings against full tokenisation; on a difference stop joining."""
        if self._to_verify <= 0 or not self._joined:
            return
        sample = sorted(s for s in self._joined if s not in self._cache)[: self._to_verify]
        composed = {s: self.ids(s) for s in sample}
        self.encode_strings(sample)
        self._to_verify -= len(sample)
        if any(self._cache[s] != ids for s, ids in composed.items()):
            self.join = False
            pending = list(self._joined)
            self._joined.clear()
            self.encode_strings(pending)

    def _encode_tails(self, tails) -> None:
        """Each tail's ids as they follow a context: ``tok(HEAD + tail)`` without ``tok(HEAD)``.

        Where :func:`join_boundary` holds, the pieces after any context ending in a non-space character are
        the tail's, whatever that context is, so a one-letter head stands for every context."""
        texts = sorted(tails)
        if texts:
            head, *ids = self.lm.tokenizer(
                [_TAIL_HEAD] + [_TAIL_HEAD + text for text in texts], add_special_tokens=False
            )["input_ids"]
            self._tails.update((text, tail_ids[len(head) :]) for text, tail_ids in zip(texts, ids))

    def encode_strings(self, strings) -> None:
        """HFLM.tok_encode for every new string, one tokenizer call per special-tokens setting."""
        from lm_eval.models.utils import _add_special_kwargs, has_bos_prefix

        new = sorted(s for s in strings if s not in self._cache)
        base = _add_special_kwargs(None, self.lm.add_bos_token)
        groups: dict[tuple, list[str]] = {}
        for s in new:
            kwargs = dict(base)
            if has_bos_prefix(s, self._bos):
                kwargs["add_special_tokens"] = False
            groups.setdefault(tuple(sorted(kwargs.items())), []).append(s)
        for kwargs, texts in groups.items():
            ids = self.lm.tokenizer(texts, **dict(kwargs))["input_ids"]
            self._cache.update(zip(texts, ids))


#: The stand-in context continuations are tokenised after (see ``PairEncoder._encode_tails``).
_TAIL_HEAD = "a"

#: Pre-tokenizer regexes proven to split ``a + b`` into the pieces of ``a`` followed by those of ``b`` when
#: ``a`` ends in a non-space character and ``b`` starts with one of the given characters, and the
#: characters. GPT-2's (also the byte-level pre-tokenizer's built-in one): no alternative matches a
#: non-space character followed by whitespace (a space may only *begin* a match) and the only look-ahead
#: follows whitespace. Llama 3's (tiktoken ``cl100k``-style, ``\p{N}{1,3}``) and Qwen 2's (``\p{N}``):
#: the same, except that ``?[^\s\p{L}\p{N}]+[\r\n]*`` lets punctuation take the newlines after it, so
#: only a space or a tab may start the tail there.
SPLIT_PATTERNS = {
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""": frozenset(" \t\n\r"),
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": frozenset(
        " \t"
    ),
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": frozenset(
        " \t"
    ),
}
_GPT2_BOUNDARY = frozenset(" \t\n\r")
_METASPACE = "\u2581"


def _safe_boundary(string: str, head: str, boundary: frozenset = _GPT2_BOUNDARY) -> bool:
    """``string`` = ``head`` + a tail starting with a ``boundary`` character, ``head`` ending in a non-space
    character other than sentencepiece's ``▁``."""
    return (
        len(string) > len(head)
        and string.startswith(head)
        and string[len(head)] in boundary
        and not head[-1].isspace()
        and head[-1] != _METASPACE
    )


def shared_head(strings: list[str], boundary: frozenset) -> str | None:
    """The longest start of all ``strings`` that each of them may join to (``_safe_boundary``), or None.

    Few-shot prompts of one task share their description and examples; joined to this head, only the
    rest of each prompt is tokenised. None for fewer than two distinct strings or no safe boundary."""
    if len(set(strings)) < 2 or not boundary:
        return None
    common = os.path.commonprefix(strings)
    for k in range(len(common), 0, -1):
        head = common[:k]
        if k < len(common):  # every string continues with common[k]
            safe = common[k] in boundary
        else:
            safe = all(len(s) > k and s[k] in boundary for s in strings)
        if safe and not head[-1].isspace() and head[-1] != _METASPACE:
            return head
    return None


def joins_at_whitespace(tokenizer: Any) -> bool:
    """Whether :func:`join_boundary` allows joining at all for this tokenizer."""
    return bool(join_boundary(tokenizer))


def join_boundary(tokenizer: Any) -> frozenset:
    """The characters ``b`` may start with so that ``tok(a + b) == tok(a) + tok(HEAD + b)[len(tok(HEAD)):]``
    (``HEAD`` a letter, the second tokenisation without special tokens) whenever ``a`` ends in a non-space
    character other than ``▁``; empty when that is not proven for the tokenizer.

    Proven for these shapes only (anything else is tokenised in full); all need a fast tokenizer with a
    BPE model without dropout, and special tokens added in front only (checked on a probe):

    - **GPT-2-style byte-level BPE**: no normaliser, the byte-level pre-tokenizer with its regex and no
      prefix space; space, tab, newline or carriage return (:data:`SPLIT_PATTERNS`).
    - **tiktoken-style byte-level BPE** (Llama 3, Qwen 2): no normaliser or NFC, a ``Split`` by one of the
      regexes of :data:`SPLIT_PATTERNS` (isolated, not inverted) followed by the byte-level pre-tokenizer
      without its own regex and no prefix space; a space or a tab. BPE merges only within a piece, so the
      pieces' ids are the pieces of ``a`` and then those of ``b``. NFC composes a character only with
      combining characters after it, and a space or tab composes with nothing.
    - **sentencepiece-style BPE** (Llama 2, Mistral): spaces become ``▁`` (a ``Metaspace`` pre-tokenizer,
      or a ``Prepend("▁")`` + ``Replace(" ", "▁")`` normaliser, which prepends ``▁`` only at the start of
      the text) and no token of the vocabulary has ``▁`` after another character (sentencepiece's
      ``split_by_whitespace``); a space. No merge can then join a character before a ``▁`` to it, and
      merges that never touch each other give the same tokens in any order.

    Added tokens are matched before all this: none may contain a non-space character followed by a boundary
    character, strip the whitespace after it (``rstrip``) or depend on its neighbours (``single_word``).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not getattr(tokenizer, "is_fast", False) or backend is None:
        return frozenset()
    import json

    config = json.loads(backend.to_str())
    model = config.get("model") or {}
    if model.get("type") != "BPE" or model.get("dropout"):
        return frozenset()
    boundary = _shape_boundary(config.get("normalizer"), config.get("pre_tokenizer"), model)
    if not boundary or not _added_tokens_keep(tokenizer, boundary):
        return frozenset()
    probe = "a b"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    special = tokenizer(probe)["input_ids"]
    return boundary if special[len(special) - len(plain) :] == plain else frozenset()


def _shape_boundary(normalizer: dict | None, pre: dict | None, model: dict) -> frozenset:
    kind = (pre or {}).get("type")
    if normalizer is None and kind == "ByteLevel":
        return _GPT2_BOUNDARY if pre.get("use_regex") and not pre.get("add_prefix_space") else frozenset()
    if kind == "Sequence" and (normalizer is None or normalizer.get("type") == "NFC"):
        steps = pre.get("pretokenizers") or []
        if len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == "ByteLevel":
            split, byte_level = steps
            pattern = (split.get("pattern") or {}).get("Regex")
            if (
                split.get("behavior") == "Isolated"
                and not split.get("invert")
                and not byte_level.get("use_regex")
                and not byte_level.get("add_prefix_space")
            ):
                return SPLIT_PATTERNS.get(pattern, frozenset())
        return frozenset()
    metaspace = normalizer is None and kind == "Metaspace" and pre.get("replacement") == _METASPACE
    prepend_replace = pre is None and normalizer == {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": _METASPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": _METASPACE},
        ],
    }
    if (metaspace or prepend_replace) and not any(
        _METASPACE in token.lstrip(_METASPACE) for token in (model.get("vocab") or {})
    ):
        return frozenset(" ")
    return frozenset()


def _added_tokens_keep(tokenizer: Any, boundary: frozenset) -> bool:
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        text = str(token)
        if (
            getattr(token, "rstrip", False)
            or getattr(token, "single_word", False)
            or any(not a.isspace() and b in boundary for a, b in zip(text, text[1:]))
        ):
            return False
    return True


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """``_encode_pair``'s rule: trailing spaces of the context move to the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation
