"""Multiple-choice log-likelihoods from next-token log-probabilities: one prefill per shared prefix.

lm-eval scores a choice on a serving engine with one ``echo`` request asking for the prompt's
log-probabilities, one per (question, choice); engines skip their prefix cache for such requests
(``bench/vllm_prefix``), so MMLU's four letters cost four prefills of the same question. The same numbers
come from *generation-style* requests, which engines do serve from their prefix cache: the log-probability
of a continuation token is the next-token log-probability after the tokens before it. So for every choice
(the token ids the engine would see, and how many of them at the end are the continuation) this module
walks the choices' token trie level by level: level ``d`` asks, once per distinct prefix, for the top-k
next-token log-probabilities after ``prefix`` (``max_tokens=1``), and reads the continuation token's value
there. An MMLU question (single-token letters) is one request; multi-token choices share every common
prefix, and each deeper level re-uses the engine's cached prefix.

Exactness: a choice whose token is not among the top-k at some level is *not* bounded or guessed; the
walk reports ``None`` and the caller scores it by the per-option path. Every returned value is the same
quantity the per-option path sums (the engine's log-probability of that token after that prefix, added
left to right), and "greedy" is the same test (the token's value equals the best value there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = [
    "continuation_steps",
    "walk_choices",
    "score_choices",
    "scoring_mode",
    "truncated_sequence",
    "parse_token_id_key",
    "TOP_K",
    "SCORING_MODES",
]

#: Top log-probabilities asked for per prefix: vLLM's default ``--max-logprobs``.
TOP_K = 20

#: Longest continuation (in tokens) scored by the walk; longer ones go per option. Each trie level is a
#: request that recomputes the prompt's last, partial cache block, so a long multi-token choice costs more
#: walked than in one echo request: constrained VOC (labels of 10-30 tokens with the tiny model's 512-token
#: vocabulary) took 3.4x the wall and 2.8x the prefilled tokens walked on vLLM (bench/served_mc). Single-token
#: choices (MMLU's letters) are where one request per question replaces one per option.
WALK_MAX_TOKENS = 1

#: Values of ``--model-args loglikelihood_scoring=``: ``auto`` uses the shared-prefix walk where the engine
#: can answer it (next-token top-k log-probabilities keyed by token id), ``per_option`` is lm-eval's path.
SCORING_MODES = ("auto", "shared_prefix", "per_option")

Prefix = tuple[int, ...]
Ask = Callable[[list[Prefix]], list[dict[int, float]]]
AskTokens = Callable[[list[tuple[Prefix, int]]], list[float]]


def continuation_steps(ids: Sequence[int], n_continuation: int) -> list[tuple[Prefix, int]]:
    """``(prefix, token)`` for each of the last ``n_continuation`` tokens of ``ids``.

    Examples
    --------
    >>> continuation_steps([1, 5, 6, 7], 2)
    [((1, 5), 6), ((1, 5, 6), 7)]
    """
    if n_continuation < 1 or n_continuation >= len(ids):
        return []
    start = len(ids) - n_continuation
    return [(tuple(ids[:position]), int(ids[position])) for position in range(start, len(ids))]


def walk_choices(
    sequences: Sequence[tuple[Sequence[int], int]], ask: Ask, ask_tokens: AskTokens | None = None
) -> list[tuple[float, bool] | None]:
    """``(sum of continuation log-probs, is greedy)`` per ``(token ids, continuation length)``, or None.

    ``ask(prefixes)`` returns, per prefix, the engine's top next-token log-probabilities by token id. It is
    called once per trie level with the distinct prefixes still needed (in first-seen order). A token
    outside the returned top-k is asked for by ``ask_tokens((prefix, token) pairs)`` when given (an engine
    request for exactly that token's log-probability after the prefix, which the prefix cache serves too);
    it is not the greedy choice there. Without ``ask_tokens``, None marks a sequence whose continuation token
    fell outside the top-k at some level (or that has no context before its continuation): the caller
    scores those by the per-option path.

    Examples
    --------
    >>> top = {(1, 2): {7: -0.5, 8: -1.0}, (1, 2, 8): {9: -0.25}}
    >>> asked = []
    >>> def ask(prefixes):
    ...     asked.append(prefixes)
    ...     return [top[p] for p in prefixes]
    >>> walk_choices([([1, 2, 7], 1), ([1, 2, 8, 9], 2), ([1, 2, 6], 1)], ask)
    [(-0.5, True), (-1.25, False), None]
    >>> asked  # one request for the shared prefix, one for the next level
    [[(1, 2)], [(1, 2, 8)]]
    >>> walk_choices([([1, 2, 6], 1)], ask, ask_tokens=lambda pairs: [-3.0 for _ in pairs])
    [(-3.0, False)]
    """
    steps = [continuation_steps(ids, n) for ids, n in sequences]
    totals: list[float] = [0.0] * len(steps)
    greedy: list[bool] = [True] * len(steps)
    finished: set[int] = set()
    alive = [i for i, s in enumerate(steps) if s]
    depth = 0
    while alive:
        prefixes = list(dict.fromkeys(steps[i][depth][0] for i in alive))
        tops = dict(zip(prefixes, ask(prefixes)))
        outside = list(
            dict.fromkeys(steps[i][depth] for i in alive if steps[i][depth][1] not in tops[steps[i][depth][0]])
        )
        exact = dict(zip(outside, ask_tokens(outside))) if outside and ask_tokens is not None else {}
        still: list[int] = []
        for i in alive:
            prefix, token = steps[i][depth]
            top = tops[prefix]
            if token in top:
                value, best = top[token], top[token] == max(top.values())
            elif (prefix, token) in exact:
                value, best = exact[(prefix, token)], False  # below the whole top-k: not the greedy token
            else:
                continue  # outside the top-k: the per-option path scores it
            totals[i] += value  # left to right, as the per-option path sums
            greedy[i] = greedy[i] and best
            (still.append if depth + 1 < len(steps[i]) else finished.add)(i)
        alive, depth = still, depth + 1
    return [(totals[i], greedy[i]) if i in finished else None for i in range(len(steps))]


def score_choices(
    requests: list,
    sequences: Sequence[tuple[Sequence[int], int]],
    ask: Ask,
    per_option: Callable[[list], list],
    ask_tokens: AskTokens | None = None,
) -> tuple[list[tuple[float, bool]], int]:
    """Answers of lm-eval's ``(cache key, context ids, continuation ids)`` requests by :func:`walk_choices`
    (continuations of at most :data:`WALK_MAX_TOKENS` tokens), the others and the ones it hands back scored
    by ``per_option`` (lm-eval's own path) on just those requests; and how many went per option.

    Examples
    --------
    >>> requests = ["r0", "r1"]
    >>> score_choices(requests, [([1, 7], 1), ([1, 8], 1)], lambda prefixes: [{7: -0.5}],
    ...               lambda rest: [(-4.0, False)] * len(rest))
    ([(-0.5, True), (-4.0, False)], 1)
    >>> score_choices(requests, [([1, 7], 1), ([1, 8, 9], 2)], lambda prefixes: [{7: -0.5}],
    ...               lambda rest: [(-4.0, False)] * len(rest))  # longer than WALK_MAX_TOKENS: per option
    ([(-0.5, True), (-4.0, False)], 1)
    """
    walked = [i for i, (_, n) in enumerate(sequences) if n <= WALK_MAX_TOKENS]
    answers: list[tuple[float, bool] | None] = [None] * len(sequences)
    for i, found in zip(walked, walk_choices([sequences[i] for i in walked], ask, ask_tokens)):
        answers[i] = found
    missing = [i for i, found in enumerate(answers) if found is None]
    rescored = per_option([requests[i] for i in missing]) if missing else []
    for i, found in zip(missing, rescored):
        answers[i] = found
    return answers, len(missing)  # type: ignore[return-value]  # every None was replaced


def truncated_sequence(context: Sequence[int], continuation: Sequence[int], max_tokens: int) -> tuple[list[int], int]:
    """lm-eval's left truncation of ``context + continuation`` to ``max_tokens``, and the continuation length.

    Examples
    --------
    >>> truncated_sequence([1, 2, 3, 4], [5, 6], 4)
    ([3, 4, 5, 6], 2)
    """
    whole = list(context) + list(continuation)
    kept = whole[-max_tokens:]
    context_kept = len(context) - max(0, len(whole) - max_tokens)
    return kept, len(kept) - context_kept


def scoring_mode(value: object) -> str:
    """``value`` of ``--model-args loglikelihood_scoring=`` validated (one of :data:`SCORING_MODES`)."""
    from ..errors import UsageError

    mode = str(value).strip().lower()
    if mode not in SCORING_MODES:
        raise UsageError(
            f"model_args loglikelihood_scoring must be one of {', '.join(SCORING_MODES)}, got {value!r}.",
            param="model_args",
        )
    return mode


def parse_token_id_key(key: object) -> int | None:
    """The token id of a ``top_logprobs`` key ``"token_id:N"`` (vLLM's ``return_tokens_as_token_ids``).

    Examples
    --------
    >>> parse_token_id_key("token_id:42"), parse_token_id_key(" A"), parse_token_id_key("token_id:-1")
    (42, None, None)
    """
    if not isinstance(key, str) or not key.startswith("token_id:"):
        return None
    digits = key[len("token_id:") :]
    return int(digits) if digits.isdigit() else None
