"""Docs and their lm-eval requests: built once, sent to the model in lm-eval's global length order.

``lm_eval.simple_evaluate`` hands all log-likelihood requests of a run to the model in one call, which
sorts them by token length (longest first) so each batch pads little. evalkit sends requests in chunks
(each chunk's records are stored before the next starts, so a killed run resumes), so it sorts the
pending docs *globally* by the same key first: the token length of a doc's longest request, ties
broken by the tokens, exactly lm-eval's ``Collator`` key. With one request group per doc (MMLU: the
answer letters share the context) and a chunk size that is a multiple of the batch size, the model
sees lm-eval's batches exactly.

For lm-eval's in-process ``HFLM`` the requests are tokenised here, as ``TemplateLM.loglikelihood``
does (``_encode_pair``), but each distinct string once and in bulk (the context shared by an MMLU
question's four choices is encoded once, not four times), and the token ids go straight to
``HFLM._loglikelihood_tokens``. Other LMs (servers, replays, wrappers) get ``lm.loglikelihood`` and a
character-length order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .scored_logits import scored_logits_only

__all__ = ["Doc", "build_docs", "doc_positions", "iter_docs", "order_for_model", "order_for_generation", "chunks",
           "answer", "PairEncoder", "join_boundary", "joins_at_whitespace", "SPLIT_PATTERNS"]


@dataclass
class Doc:
    """One document of one lm-eval (sub)task with its requests."""

    subtask: str
    doc_id: int
    doc: dict
    sample_id: str
    instances: list
    tokens: list | None = field(default=None, repr=False)  # per instance: ((context, continuation), ctx ids, cont ids)


def doc_positions(task, limit, sample_seed: int | None) -> list[int] | None:
    """lm-eval's ``samples=`` for ``limit`` docs drawn with ``sample_seed`` (see ``evaluators.subset``);
    None when lm-eval's own ``limit`` selects them (all docs, or the first ``limit``)."""
    from lm_eval.evaluator_utils import get_sample_size

    from ...evaluators.subset import subset_positions

    size = get_sample_size(task, limit)
    if size is None or sample_seed is None or size >= len(task.eval_docs):
        return None
    return subset_positions(len(task.eval_docs), size, sample_seed)


def iter_docs(task, limit, positions: list[int] | None):
    """``(lm-eval doc id, index in the task's data, doc)`` of the evaluated docs.

    lm-eval numbers docs chosen with ``samples=`` 0, 1, ...; the data index is kept beside it so a
    doc has the same sample id however it was chosen (and a seeded subset pairs with a full run)."""
    from lm_eval.evaluator_utils import get_sample_size

    if positions is None:
        for doc_id, doc in task.doc_iterator(rank=0, limit=get_sample_size(task, limit), world_size=1):
            yield doc_id, doc_id, doc
    else:
        for doc_id, doc in task.doc_iterator(rank=0, samples=positions, world_size=1):
            yield doc_id, positions[doc_id], doc


def build_docs(loaded, kind, *, limit, sample_seed: int | None = None, lm: Any, apply_chat: bool,
               system_instruction: str | None) -> list[Doc]:
    """Every doc with its Instances, built by lm-eval for all docs (few-shot sampling order kept)."""
    from lm_eval.evaluator_utils import get_sample_size

    from .loading import cached_templates

    docs: list[Doc] = []
    with cached_templates():
        for subtask, task in loaded.tasks.items():
            positions = doc_positions(task, limit, sample_seed)
            task.build_all_requests(
                limit=get_sample_size(task, limit) if positions is None else None, samples=positions,
                rank=0, world_size=1, cache_requests=False,
                system_instruction=system_instruction, apply_chat_template=apply_chat,
                fewshot_as_multiturn=True,  # simple_evaluate's default
                chat_template=getattr(lm, "apply_chat_template", None) if apply_chat else None,
                tokenizer_name=getattr(lm, "tokenizer_name", "") if apply_chat else "",
            )
            by_doc: dict[int, list] = {}
            for inst in task.instances:
                by_doc.setdefault(inst.doc_id, []).append(inst)
            for doc_id, index, doc in iter_docs(task, limit, positions):
                instances = sorted(by_doc.get(doc_id, []), key=lambda i: i.idx)
                docs.append(Doc(subtask, index, doc, kind.sample_id(subtask, index, doc), instances))
    return docs


# ------------------------------------------------------------------------------------- tokenisation
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
        self._cache: dict[str, list[int]] = {}   # fully tokenised strings (HFLM.tok_encode)
        self._tails: dict[str, list[int]] = {}   # continuations' ids after a head (see _encode_tails)
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
        return (isinstance(lm, HFLM) and getattr(lm, "backend", None) == "causal"
                and not getattr(lm, "enable_thinking", False)
                and not any(name in vars(lm) for name in ("loglikelihood", "tok_encode", "_encode_pair", "_loglikelihood_tokens"))
                and cls.loglikelihood is HFLM.loglikelihood and cls.tok_encode is HFLM.tok_encode
                and cls._encode_pair is TemplateLM._encode_pair)

    def encode(self, docs: list[Doc]) -> None:
        """Set ``doc.tokens`` for the log-likelihood requests of ``docs`` (strings tokenised in bulk).

        Every doc must have non-empty contexts (see :func:`encodable`)."""
        todo = [d for d in docs if d.tokens is None]
        pairs = [[split_trailing_space(*inst.args) for inst in d.instances if inst.request_type == "loglikelihood"]
                 for d in todo]
        self.encode_pairs([pair for doc_pairs in pairs for pair in doc_pairs])
        for d, doc_pairs in zip(todo, pairs):
            d.tokens = [self._request(inst.args, ctx, cont)
                        for inst, (ctx, cont) in zip((i for i in d.instances if i.request_type == "loglikelihood"), doc_pairs)]

    def _request(self, args: tuple, context: str, continuation: str):
        ctx, cont = self.pair(context, continuation)
        return (tuple(args), ctx, cont)

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """``_encode_pair``'s (context ids, continuation ids) of a pair split and encoded by ``encode_pairs``."""
        ctx = self.ids(context)
        head, tail = self._joined.get(context + continuation, (None, None))
        if head == context:  # joined to this very context: the continuation's ids are the tail's
            return ctx, self._tails[tail]
        return ctx, self.ids(context + continuation)[len(ctx):]

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
        self._joined[string] = (head, string[len(head):])
        self._plan(head, heads[heads.index(head) + 1:], full)

    def _verify(self) -> None:
        """Check the first joined strings against full tokenisation; on a difference stop joining."""
        if self._to_verify <= 0 or not self._joined:
            return
        sample = sorted(s for s in self._joined if s not in self._cache)[:self._to_verify]
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
            head, *ids = self.lm.tokenizer([_TAIL_HEAD] + [_TAIL_HEAD + text for text in texts],
                                           add_special_tokens=False)["input_ids"]
            self._tails.update((text, tail_ids[len(head):]) for text, tail_ids in zip(texts, ids))

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
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""":
        frozenset(" \t"),
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""":
        frozenset(" \t"),
}
_GPT2_BOUNDARY = frozenset(" \t\n\r")
_METASPACE = "\u2581"


def _safe_boundary(string: str, head: str, boundary: frozenset = _GPT2_BOUNDARY) -> bool:
    """``string`` = ``head`` + a tail starting with a ``boundary`` character, ``head`` ending in a non-space
    character other than sentencepiece's ``▁``."""
    return (len(string) > len(head) and string.startswith(head) and string[len(head)] in boundary
            and not head[-1].isspace() and head[-1] != _METASPACE)


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
    return boundary if special[len(special) - len(plain):] == plain else frozenset()


def _shape_boundary(normalizer: dict | None, pre: dict | None, model: dict) -> frozenset:
    kind = (pre or {}).get("type")
    if normalizer is None and kind == "ByteLevel":
        return _GPT2_BOUNDARY if pre.get("use_regex") and not pre.get("add_prefix_space") else frozenset()
    if kind == "Sequence" and (normalizer is None or normalizer.get("type") == "NFC"):
        steps = pre.get("pretokenizers") or []
        if len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == "ByteLevel":
            split, byte_level = steps
            pattern = (split.get("pattern") or {}).get("Regex")
            if (split.get("behavior") == "Isolated" and not split.get("invert") and not byte_level.get("use_regex")
                    and not byte_level.get("add_prefix_space")):
                return SPLIT_PATTERNS.get(pattern, frozenset())
        return frozenset()
    metaspace = normalizer is None and kind == "Metaspace" and pre.get("replacement") == _METASPACE
    prepend_replace = pre is None and normalizer == {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": _METASPACE}, {"type": "Replace", "pattern": {"String": " "}, "content": _METASPACE}]}
    if (metaspace or prepend_replace) and not any(_METASPACE in token.lstrip(_METASPACE)
                                                  for token in (model.get("vocab") or {})):
        return frozenset(" ")
    return frozenset()


def _added_tokens_keep(tokenizer: Any, boundary: frozenset) -> bool:
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        text = str(token)
        if getattr(token, "rstrip", False) or getattr(token, "single_word", False) or any(
                not a.isspace() and b in boundary for a, b in zip(text, text[1:])):
            return False
    return True


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """``_encode_pair``'s rule: trailing spaces of the context move to the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def encodable(d: Doc) -> bool:
    """Docs whose log-likelihood requests all have a context (empty contexts take lm-eval's own path)."""
    return all(inst.args[0] for inst in d.instances if inst.request_type == "loglikelihood")


# ------------------------------------------------------------------------------------- order
def order_for_model(docs: list[Doc], encoder: PairEncoder | None) -> list[Doc]:
    """Log-likelihood docs in lm-eval's global order (longest request first, ties by tokens).

    Without token ids (``encoder`` None) the character length of the longest request stands in.
    """
    if encoder is not None:
        encoder.encode([d for d in docs if encodable(d)])

    def key(d: Doc):
        if d.tokens:
            return min((-(len(ctx) + len(cont)), tuple(ctx + cont)) for _, ctx, cont in d.tokens)
        return (-max((sum(len(a) for a in inst.args if isinstance(a, str)) for inst in d.instances), default=0), ())

    return sorted(docs, key=key)


def order_for_generation(docs: list[Doc], encoder: PairEncoder | None) -> list[Doc]:
    """Generation docs in the order ``HFLM.generate_until`` runs them (its ``Collator`` key: longest prompt
    in tokens first, ties by the prompt), so each batch pads as little as in lm-eval's single call.

    Without token ids (``encoder`` None) the prompt's character length stands in.
    """
    prompts = {id(d): d.instances[0].args[0] if d.instances else "" for d in docs}
    if encoder is not None:
        encoder.encode_strings(prompts.values())
        return sorted(docs, key=lambda d: (-len(encoder.ids(prompts[id(d)])), prompts[id(d)]))
    return sorted(docs, key=lambda d: (-len(prompts[id(d)]), prompts[id(d)]))


def chunks(docs: list[Doc], size: int, encoder: PairEncoder | None):
    """``size`` docs at a time; with token ids, extended until the chunk holds whole model batches.

    lm-eval batches one request per group (context + continuation[:-1]; an MMLU question's four letters
    share one), so a chunk ends where its group count is a multiple of the batch size: duplicate questions
    (one group, two docs) then shift no batch boundary against lm-eval's single global call; a generation
    doc is one request. At most ``2 * size`` docs, and without an encoder or an integer batch size exactly
    ``size``.
    """
    batch = getattr(encoder.lm, "batch_size", None) if encoder is not None else None
    if not isinstance(batch, int) or batch < 1:
        for start in range(0, len(docs), size):
            yield docs[start:start + size]
        return
    chunk: list[Doc] = []
    groups: set = set()
    for d in docs:
        chunk.append(d)
        if d.tokens:
            groups.update(tuple(ctx + cont[:-1]) for _, ctx, cont in d.tokens)
        else:  # a generation doc: one request of its own
            groups.add(id(d))
        if len(chunk) >= 2 * size or (len(chunk) >= size and len(groups) % batch == 0):
            yield chunk
            chunk, groups = [], set()
    if chunk:
        yield chunk


# ------------------------------------------------------------------------------------- answering
def answer(lm: Any, chunk: list[Doc], task_name: str, encoder: PairEncoder | None) -> None:
    """Ask ``lm`` for the chunk's requests (by type, as lm-eval does); responses land in ``inst.resps``."""
    instances = [inst for d in chunk for inst in d.instances]
    for d in chunk:
        for inst in d.instances:
            inst.resps = []
            inst.filtered_resps = {}
            inst.task_name = task_name
            inst.evalkit_sample_id = d.sample_id
    for reqtype in dict.fromkeys(inst.request_type for inst in instances):
        cloned = [inst for inst in instances if inst.request_type == reqtype for _ in range(inst.repeats)]
        if reqtype == "loglikelihood" and encoder is not None and all(d.tokens is not None for d in chunk):
            tokens = [t for d in chunk for t, inst in zip(d.tokens, _ll(d)) for _ in range(inst.repeats)]
            with scored_logits_only(encoder.lm, max((len(cont) for _, _, cont in tokens), default=0)):
                resps = encoder.lm._loglikelihood_tokens(tokens, disable_tqdm=True)
        else:
            resps = getattr(lm, reqtype)(cloned)
        if len(resps) != len(cloned):
            raise RuntimeError(f"{type(lm).__name__}.{reqtype} returned {len(resps)} answers for {len(cloned)} requests")
        for resp, inst in zip(resps, cloned):
            inst.resps.append(resp)


def _ll(d: Doc) -> list:
    return [inst for inst in d.instances if inst.request_type == "loglikelihood"]
