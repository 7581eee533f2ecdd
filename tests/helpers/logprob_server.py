"""An OpenAI-compatible completions stub that answers log-probabilities from a real tiny causal model.

Like vLLM: text prompts are tokenized with the tokenizer's defaults (a BOS first for Llama-style
tokenizers), token-id prompts are used as sent; ``echo=true`` returns every prompt token's log-probability
plus the generated (greedy) token, each with the top ``logprobs`` alternatives keyed by decoded text; a
generation-style request (``max_tokens=1``, no echo) returns the top ``logprobs`` next-token
log-probabilities of the first generated position, keyed ``"token_id:N"`` with
``return_tokens_as_token_ids``. ``max_top`` caps k (a server that returns fewer alternatives, so choices
fall outside the top-k), ``whole_vocabulary=True`` returns every token's (no choice is ever outside);
``token_ids=False`` ignores ``return_tokens_as_token_ids``. ``allowed_token_ids`` restricts the generated
token and, as vLLM, the answer holds its raw log-probability (``renormalized=True``: the log-probability
after the whitelist, 0, as a server computing processed log-probs would; ``allowed=False`` ignores it).
``native=True`` also answers vLLM's own ``prompt_logprobs=k`` field: per prompt position (``None`` first) a
map of token id to ``{"logprob", "rank", "decoded_token"}`` holding the prompt token and the top ``k``, and
with ``return_token_ids`` the prompt's ids (``prompt_token_ids``); ``kinds["prompt_logprobs"]`` counts them.

It keeps vLLM's prefill accounting: ``prefilled`` counts prompt tokens computed, where a request that
asks for prompt log-probabilities (``echo``) never uses the prefix cache and any other request reuses the
longest prefix of an earlier prompt (a cache that never evicts).
"""

from __future__ import annotations

import threading
from collections import Counter

from tests.helpers.flaky_server import FlakyServer

__all__ = ["ModelServer"]


class ModelServer(FlakyServer):
    """See the module docstring; use as a context manager, ``url`` is ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, model_dir, *, max_top: int | None = None, whole_vocabulary: bool = False,
                 token_ids: bool = True, allowed: bool = True, renormalized: bool = False, native: bool = False,
                 **kwargs):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        super().__init__(model=str(model_dir), prompt_logprobs=True, echo_tokenizer=tokenizer, **kwargs)
        self.lm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.max_top, self.whole_vocabulary, self.token_ids = max_top, whole_vocabulary, token_ids
        self.allowed, self.renormalized, self.native = allowed, renormalized, native
        self.kinds: Counter = Counter()  # "echo" / "next_token" prompts answered
        self.prefilled = 0
        self._cached: set[tuple[int, ...]] = set()
        self._model_lock = threading.Lock()

    def _log_softmax(self, ids: list[int]):
        import torch

        with self._model_lock, torch.no_grad():
            logits = self.lm(torch.tensor([ids])).logits[0].float()
        return torch.log_softmax(logits, dim=-1)

    def _prefill(self, ids: list[int], use_cache: bool) -> None:
        hit = max((n for n in range(len(ids), 0, -1) if tuple(ids[:n]) in self._cached), default=0) if use_cache else 0
        with self._lock:
            self.prefilled += len(ids) - hit
            self._cached.update(tuple(ids[:n]) for n in range(1, len(ids) + 1))

    def _top(self, row, k: int, as_ids: bool) -> dict:
        values, indices = row.topk(min(k, row.shape[-1]))
        tokenizer = self.echo_tokenizer
        return {(f"token_id:{i}" if as_ids else tokenizer.decode([i])): float(v)
                for v, i in zip(values.tolist(), indices.tolist())}

    def _native(self, ids: list[int], rows, k: int, with_ids: bool) -> dict:
        """vLLM's ``prompt_logprobs`` (and ``prompt_token_ids``) for a prompt: the token and the top ``k``."""
        entries: list = [None]
        for i in range(1, len(ids)):
            row = rows[i - 1]
            listed = [*row.topk(k).indices.tolist(), ids[i]] if k else [ids[i]]
            entries.append({str(t): {"logprob": float(row[t]), "rank": int((row >= row[t]).sum()),
                                     "decoded_token": self.echo_tokenizer.decode([t])} for t in listed})
        return {"prompt_logprobs": entries, "prompt_token_ids": ids if with_ids else None}

    def _text_choice(self, index: int, prompt, body: dict) -> dict:
        ids = [int(t) for t in prompt] if isinstance(prompt, list) else self.echo_tokenizer(prompt).input_ids
        k = int(body.get("logprobs") or 0)
        k = min(k, self.max_top) if self.max_top else k
        rows = self._log_softmax(ids)
        allowed = body.get("allowed_token_ids") if self.allowed else None
        generated = max(allowed, key=lambda t: float(rows[-1, t])) if allowed else int(rows[-1].argmax())
        choice = {"index": index, "text": self.echo_tokenizer.decode([generated]), "finish_reason": "length"}
        echo = bool(body.get("echo"))
        native = self.native and body.get("prompt_logprobs") is not None
        self._prefill(ids, use_cache=not (echo or native))
        with self._lock:
            self.kinds["echo" if echo else "prompt_logprobs" if native else "next_token"] += 1
        if native:
            choice.update(self._native(ids, rows, int(body["prompt_logprobs"]), bool(body.get("return_token_ids"))))
        if not k:
            return choice
        if echo:
            full = ids + [generated]
            values = [None] + [float(rows[i - 1, full[i]]) for i in range(1, len(full))]
            tops = [None] + [{**self._top(rows[i - 1], k, False), self.echo_tokenizer.decode([full[i]]): values[i]}
                             for i in range(1, len(full))]
            choice["logprobs"] = {"tokens": [self.echo_tokenizer.decode([t]) for t in full],
                                  "token_logprobs": values, "top_logprobs": tops}
        else:
            as_ids = self.token_ids and bool(body.get("return_tokens_as_token_ids"))
            k = rows.shape[-1] if self.whole_vocabulary else k
            top = self._top(rows[-1], k, as_ids)
            key = f"token_id:{generated}" if as_ids else self.echo_tokenizer.decode([generated])
            top[key] = 0.0 if allowed and self.renormalized else float(rows[-1, generated])  # the generated token
            choice["logprobs"] = {"top_logprobs": [top]}
        return choice
