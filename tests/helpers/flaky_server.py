"""A deterministic OpenAI-compatible stub server on 127.0.0.1 that fails on purpose, for retry tests.

``GET /v1/models`` lists one model; ``POST /v1/completions`` and ``POST /v1/chat/completions`` answer
every prompt with a fixed text chosen from ``answers`` by a hash of the prompt, so a run that saw
failures can be compared with one that did not. Failures follow a deterministic pattern:

- ``fail_every=k``: every k-th POST answers ``fail_status`` (500, 429, ...) instead, but never twice in a
  row for the same request body (so one retry always suffices and runs finish deterministically);
- ``always_status``: every POST answers this status (401, 404, 500);
- ``down_after=n``: after n answered POSTs every POST answers 503 (a server that died);
- ``hang_every=k``: every k-th POST sleeps ``hang_seconds`` before answering (client timeouts), again
  never twice in a row for the same body;
- ``prompt_logprobs``: completions return vLLM-style echo log-probabilities (one per character), or with
  ``echo_tokenizer`` (a Hugging Face tokenizer) one per token of the prompt tokenized as vLLM does (text
  prompts with the tokenizer's special tokens, so a BOS first; token-id prompts as sent), each token id
  ``t`` scoring :func:`token_logprob` ``(t)``;
- ``upstream``: a real server's ``/v1`` URL; answered POSTs are forwarded there (a flaky proxy);
- ``refuse_fields``: request fields the stub does not know and refuses with HTTP 400 (as a strict server
  would refuse vLLM's own fields), before any other behaviour;
- ``malform``: a function turning a well-formed reply (a dict) into what is sent instead (any JSON value:
  no ``choices``, ``null`` content, short or non-finite log-probs), for the first ``malformed_replies``
  answered POSTs (None: every one); these still answer HTTP 200.

Loopback only, a free port, daemon threads; use as a context manager.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FlakyServer", "answer_for", "token_logprob"]


def token_logprob(token_id: int) -> float:
    """The log-probability the ``echo_tokenizer`` stub gives token ``token_id`` wherever it stands."""
    return -((token_id % 7) + 1) / 8


def answer_for(prompt: str, answers: list[str]) -> str:
    """The fixed answer the stub gives ``prompt``."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return answers[int.from_bytes(digest[:4], "big") % len(answers)]


class FlakyServer:
    """See the module docstring; ``url`` is ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, *, model: str = "flaky-model", answers: list[str] | None = None, fail_every: int = 0,
                 fail_status: int = 500, always_status: int | None = None, down_after: int | None = None,
                 hang_every: int = 0, hang_seconds: float = 2.0, retry_after: str | None = None,
                 prompt_logprobs: bool = False, upstream: str | None = None, echo_tokenizer=None,
                 malform=None, malformed_replies: int | None = None, refuse_fields: tuple[str, ...] = ()):
        self.model = model
        self.answers = answers or [" yes", " no", " maybe"]
        self.fail_every, self.fail_status, self.always_status = fail_every, fail_status, always_status
        self.down_after, self.hang_every, self.hang_seconds = down_after, hang_every, hang_seconds
        self.retry_after, self.prompt_logprobs, self.upstream = retry_after, prompt_logprobs, upstream
        self.echo_tokenizer = echo_tokenizer
        self.malform, self.malformed_replies = malform, malformed_replies
        self.refuse_fields = refuse_fields
        self.malformed = 0                # 200 answers sent malformed
        self.posts = 0                    # POST requests received
        self.answered = 0                 # POST requests answered with 200
        self.statuses: Counter = Counter()
        self.prompts: list[str] = []      # prompts answered with 200, in arrival order
        self.requests: list[dict] = []    # request bodies answered with 200, in arrival order
        self.post_times: list[float] = []
        self._lock = threading.Lock()
        self._failed_last: set[str] = set()  # bodies whose last attempt failed by the fail_every pattern
        self._hung_last: set[str] = set()    # bodies whose last attempt hung by the hang_every pattern
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default, per test).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "FlakyServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ behaviour
    def _decide(self, key: str) -> tuple[int, float]:
        """(status, seconds to sleep) for the next POST of body ``key``, from the failure pattern."""
        with self._lock:
            self.posts += 1
            self.post_times.append(time.monotonic())
            n = self.posts
            if self.always_status:
                status = self.always_status
            elif self.down_after is not None and self.answered >= self.down_after:
                status = 503
            elif self.fail_every and n % self.fail_every == 0 and key not in self._failed_last:
                status = self.fail_status
                self._failed_last.add(key)
            else:
                status = 200
                self._failed_last.discard(key)
            self.statuses[status] += 1
            hang = bool(self.hang_every) and n % self.hang_every == 0 and key not in self._hung_last
            (self._hung_last.add if hang else self._hung_last.discard)(key)
        return status, (self.hang_seconds if hang else 0.0)

    def _forward(self, path: str, body: dict) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.upstream.rstrip("/") + path.removeprefix("/v1"), method="POST",
                                         data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {"error": {"message": exc.read().decode(errors="replace")}}

    def _completion(self, body: dict, chat: bool) -> dict:
        if chat:
            prompt = str(body["messages"][-1]["content"])
            choice = {"index": 0, "message": {"role": "assistant", "content": answer_for(prompt, self.answers)},
                      "finish_reason": "stop"}
            return {"object": "chat.completion", "model": self.model, "choices": [choice]}
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if prompts and isinstance(prompts[0], int):  # one prompt of token ids
            prompts = [prompts]
        choices = [self._text_choice(i, p if isinstance(p, list) else str(p), body) for i, p in enumerate(prompts)]
        return {"object": "text_completion", "model": self.model, "choices": choices}

    def _text_choice(self, index: int, prompt: str | list[int], body: dict) -> dict:
        choice = {"index": index, "text": answer_for(str(prompt), self.answers), "finish_reason": "stop"}
        if self.prompt_logprobs and body.get("echo") and body.get("logprobs"):
            if self.echo_tokenizer is not None:
                choice["logprobs"] = self._token_echo(prompt)
            else:
                values = [None] + [-0.5] * len(prompt)  # one "token" per character, plus the generated one
                choice["logprobs"] = {"token_logprobs": values, "top_logprobs": [None] + [{"x": -0.5}] * len(prompt)}
        return choice

    def _token_echo(self, prompt) -> dict:
        """Per-token echo as vLLM gives it: no log-prob for the first token, then one per token + generated."""
        if isinstance(prompt, list):  # token ids are used as sent
            ids = [int(t) for t in prompt]
        else:
            ids = self.echo_tokenizer(prompt).input_ids  # text: the tokenizer's defaults (BOS for Llama)
        ids = ids + [ids[-1]]  # the one generated token
        values = [None] + [token_logprob(t) for t in ids[1:]]
        return {"tokens": [str(t) for t in ids], "token_logprobs": values,
                "top_logprobs": [None] + [{str(t): token_logprob(t)} for t in ids[1:]]}

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                if self.path.rstrip("/") == "/v1/models" and server.upstream:
                    import urllib.request

                    with urllib.request.urlopen(server.upstream.rstrip("/") + "/models", timeout=30) as response:
                        self._send(200, json.loads(response.read()))
                elif self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) or b"{}"
                body = json.loads(raw)
                if self.path not in ("/v1/completions", "/v1/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                refused = [name for name in server.refuse_fields if name in body]
                if refused:
                    with server._lock:
                        server.statuses[400] += 1
                    self._send(400, {"error": {"message": f"unknown fields {refused}"}})
                    return
                status, pause = server._decide(raw.decode("utf-8", "replace"))
                time.sleep(pause)
                if status != 200:
                    self._send(status, {"error": {"message": f"failing on purpose with {status}"}})
                    return
                if server.upstream:
                    status, answer = server._forward(self.path, body)
                    if status != 200:
                        self._send(status, answer)
                        return
                else:
                    answer = server._completion(body, chat=self.path.endswith("chat/completions"))
                with server._lock:
                    server.answered += 1
                    server.prompts.extend([str(body.get("prompt", body.get("messages")))])
                    server.requests.append(body)
                    if server.malform and (server.malformed_replies is None
                                           or server.malformed < server.malformed_replies):
                        server.malformed += 1
                        answer = server.malform(answer)
                self._send(200, answer)

            def _send(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()  # NaN / Infinity as Python writes them (vLLM can too)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    if status == 429 and server.retry_after is not None:
                        self.send_header("Retry-After", server.retry_after)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        return Handler
