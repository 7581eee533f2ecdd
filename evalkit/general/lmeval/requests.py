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
``HFLM._loglikelihood_tokens``, or for one-token continuations to :mod:`.one_token`, which reads a batch's
answers at once. Other LMs (servers, replays, wrappers) get ``lm.loglikelihood`` and a
character-length order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...tokenization import PairEncoder
from .one_token import loglikelihood_tokens
from .scored_logits import scored_logits_only

__all__ = [
    "Doc",
    "build_docs",
    "doc_positions",
    "doc_indices",
    "iter_docs",
    "order_for_model",
    "order_for_generation",
    "chunks",
    "answer",
]


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


def doc_indices(task, limit, positions: list[int] | None) -> list[tuple[int, int]] | None:
    """``(lm-eval doc id, index in the task's data)`` of what :func:`iter_docs` yields, without reading the docs.

    Reading a doc formats a ``datasets`` row (~0.1 ms each: over a second on full MMLU per pass), and the ids
    only need positions: this is lm-eval's ``doc_iterator`` slicing applied to ``range(len(eval_docs))``.
    None where that slicing is not the plain one (an empty ``samples`` list): read the docs instead."""
    from itertools import islice

    from lm_eval.evaluator_utils import get_sample_size

    n = len(task.eval_docs)
    if positions is None:
        size = get_sample_size(task, limit)
        return [(i, i) for i in islice(range(n), 0, int(size) if size else None)]
    if not positions:
        return None
    chosen = set(positions)
    return [(doc_id, positions[doc_id]) for doc_id in range(sum(1 for i in range(n) if i in chosen))]


def build_docs(
    loaded, kind, *, limit, sample_seed: int | None = None, lm: Any, apply_chat: bool, system_instruction: str | None
) -> list[Doc]:
    """Every doc with its Instances, built by lm-eval for all docs (few-shot sampling order kept)."""
    from lm_eval.evaluator_utils import get_sample_size

    from .loading import cached_templates

    docs: list[Doc] = []
    with cached_templates(loaded.renders):
        for subtask, task in loaded.tasks.items():
            positions = doc_positions(task, limit, sample_seed)
            task.build_all_requests(
                limit=get_sample_size(task, limit) if positions is None else None,
                samples=positions,
                rank=0,
                world_size=1,
                cache_requests=False,
                system_instruction=system_instruction,
                apply_chat_template=apply_chat,
                fewshot_as_multiturn=True,  # simple_evaluate's default
                chat_template=getattr(lm, "apply_chat_template", None) if apply_chat else None,
                tokenizer_name=getattr(lm, "tokenizer_name", "") if apply_chat else "",
            )
            by_doc: dict[int, list] = {}
            for inst in task.instances:
                by_doc.setdefault(inst.doc_id, []).append(inst)
            for doc_id, index, doc in _built_docs(task, limit, positions, by_doc):
                instances = sorted(by_doc.get(doc_id, []), key=lambda i: i.idx)
                docs.append(Doc(subtask, index, doc, kind.sample_id(subtask, index, doc), instances))
    return docs


def _built_docs(task, limit, positions: list[int] | None, by_doc: dict[int, list]):
    """:func:`iter_docs` of a task whose requests were just built: each doc as its requests hold it (the
    dict lm-eval built them from, in the same iteration), so the data is not read a second time."""
    indices = doc_indices(task, limit, positions)
    if indices is None or any(doc_id not in by_doc for doc_id, _ in indices):  # a doc without requests
        yield from iter_docs(task, limit, positions)
        return
    for doc_id, index in indices:
        yield doc_id, index, by_doc[doc_id][0].doc


# ------------------------------------------------------------------------------------- tokenisation
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
            return _collator_key(d.tokens)
        return (-max((sum(len(a) for a in inst.args if isinstance(a, str)) for inst in d.instances), default=0), [])

    return sorted(docs, key=key)


def _collator_key(tokens: list) -> tuple[int, list[int]]:
    """``min((-len(ids), ids))`` over a doc's requests (``ids`` = context + continuation ids), lm-eval's
    ``Collator`` key of the doc's first request in its order. Requests sharing one context list (an MMLU
    question's letters) are compared by their continuations, so one concatenation is built per context
    (a 5-shot MMLU context is ~1,000 ids), not one per request."""
    longest = max(len(ctx) + len(cont) for _, ctx, cont in tokens)
    smallest: dict[int, tuple[list[int], list[int]]] = {}  # id(context) -> (context, smallest continuation)
    for _, ctx, cont in tokens:
        if len(ctx) + len(cont) == longest:  # same context and length: the order is the continuations'
            known = smallest.get(id(ctx))
            if known is None or cont < known[1]:
                smallest[id(ctx)] = (ctx, cont)
    return -longest, min(ctx + cont for ctx, cont in smallest.values())


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
            yield docs[start : start + size]
        return
    chunk: list[Doc] = []
    groups: set = set()
    for d in docs:
        chunk.append(d)
        if d.tokens:
            groups.update(_request_groups(d.tokens))
        else:  # a generation doc: one request of its own
            groups.add(id(d))
        if len(chunk) >= 2 * size or (len(chunk) >= size and len(groups) % batch == 0):
            yield chunk
            chunk, groups = [], set()
    if chunk:
        yield chunk


def _request_groups(tokens: list):
    """The distinct ``context + continuation[:-1]`` ids of a doc's requests (lm-eval batches one request per
    group), as tuples; built once per shared context list and continuation head, not once per request."""
    groups: dict[tuple[int, tuple[int, ...]], tuple[int, ...]] = {}
    for _, ctx, cont in tokens:
        head = tuple(cont[:-1])
        if (id(ctx), head) not in groups:
            groups[id(ctx), head] = tuple(ctx) + head
    return groups.values()


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
                resps = loglikelihood_tokens(encoder.lm, tokens)
        else:
            resps = getattr(lm, reqtype)(cloned)
        if len(resps) != len(cloned):
            raise RuntimeError(
                f"{type(lm).__name__}.{reqtype} returned {len(resps)} answers for {len(cloned)} requests"
            )
        for resp, inst in zip(resps, cloned):
            inst.resps.append(resp)


def _ll(d: Doc) -> list:
    return [inst for inst in d.instances if inst.request_type == "loglikelihood"]
