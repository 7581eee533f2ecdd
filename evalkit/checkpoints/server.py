"""OpenAI-compatible servers (vLLM, TGI, llama.cpp, ``transformers serve``): checks and the lm-eval backend.

Before a server checkpoint is fingerprinted or used, ``GET {url}/models`` tells whether the server is up,
whether the key is accepted and whether it serves the model. Requests then go through lm-eval's
``local-completions`` or ``local-chat-completions`` backend; :func:`resolve_endpoint` picks one
(``--endpoint``, default ``auto``):

- ``completions`` (``/v1/completions``): prompts are sent as text. With a local tokenizer (the served
  model name is a local model directory, or ``--model-args tokenizer=DIR_OR_ID``) the model's chat
  template is rendered here, exactly as in-process ``HFLM`` renders it, and the text goes to the server
  (see :func:`render_chat_text` for the BOS token). Log-likelihood tasks need this endpoint, the local
  tokenizer and a server that returns prompt logprobs with ``echo=True`` (vLLM does; ``transformers
  serve`` does not).
- ``chat`` (``/v1/chat/completions``): the server applies the model's chat template to the messages;
  generation tasks only (chat endpoints return no prompt logprobs).
- ``auto``: ``completions`` with a local tokenizer or with ``--no-chat-template``; otherwise ``chat``,
  because without a tokenizer the chat template can only be applied by the server (most served models
  are instruct models; pass ``--no-chat-template`` or ``--endpoint completions`` for a base model).

The endpoint is part of the checkpoint's ``settings`` (printed, stored, and in the result store's key).
The API key is read from the environment variable ``LoadOptions.api_key_env`` and sent only as an
``Authorization`` header; it never appears in specs shown to users, results or error messages.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import UsageError, register_secret, arg
from .spec import TOKENIZER_FILES, CheckpointSpec

if TYPE_CHECKING:
    from .options import LoadOptions

__all__ = [
    "list_models",
    "model_entry",
    "load_server_lm",
    "endpoint_url",
    "completions_tokenizer",
    "resolve_endpoint",
    "unsupported_reason",
    "render_chat_text",
    "ENDPOINTS",
    "CHECK_TIMEOUT",
]

#: Values of ``--endpoint``; ``auto`` resolves to one of the others (see :func:`resolve_endpoint`).
ENDPOINTS = ("auto", "completions", "chat")

#: Seconds to wait for ``/models`` before calling a server unreachable.
CHECK_TIMEOUT = 10.0


def _headers(spec: CheckpointSpec, options: "LoadOptions") -> dict[str, str]:
    """Request headers: the API key from ``$api_key_env`` as a bearer token, else URL credentials as Basic."""
    key = os.environ.get(options.api_key_env, "")
    register_secret(key)  # never printed or written, even when a server echoes it back
    parts = urlsplit(str(spec.location))
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    elif parts.username:
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(user_pass).decode("ascii")
    return headers


def endpoint_url(spec: CheckpointSpec, endpoint: str) -> str:
    """``{base}/{endpoint}`` with the spec's query string kept and any ``user:password@`` removed."""
    parts = urlsplit(str(spec.location))
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, f"{parts.path.rstrip('/')}/{endpoint}", parts.query, ""))


def _server_name(spec: CheckpointSpec) -> str:
    return spec.display.partition("#")[0]


def list_models(spec: CheckpointSpec, options: "LoadOptions") -> list[dict[str, Any]]:
    """The ``data`` entries of ``GET {url}/models``; a UsageError says what to do when that fails."""
    name = _server_name(spec)
    request = urllib.request.Request(endpoint_url(spec, "models"), headers=_headers(spec, options))
    try:
        with urllib.request.urlopen(request, timeout=min(CHECK_TIMEOUT, options.timeout)) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise UsageError(
                f"server {name} refused the API key (HTTP {exc.code}); set the environment variable "
                f"{options.api_key_env} to a valid key (or pass {arg('api_key_env', 'NAME')}).",
                param="api_key_env",
            ) from None
        raise UsageError(
            f"server {name} answered HTTP {exc.code} to GET /models; check the URL (it usually ends in /v1)."
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(f"server {name} is unreachable ({reason}); start it or check the URL.") from None
    try:
        data = json.loads(body)
        return [entry for entry in data["data"] if isinstance(entry, dict)]
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            f"server {name}: GET /models did not return an OpenAI-style model list; "
            f"is this an OpenAI-compatible server (URL ending in /v1)?"
        ) from None


def model_entry(spec: CheckpointSpec, options: "LoadOptions") -> dict[str, Any]:
    """The ``/models`` entry of the spec's model, or a UsageError listing the served models."""
    entries = list_models(spec, options)
    for entry in entries:
        if entry.get("id") == spec.model:
            return entry
    served = ", ".join(sorted(str(e.get("id")) for e in entries)) or "(none)"
    raise UsageError(
        f"server {_server_name(spec)} does not serve model {spec.model!r}; it serves: {served}. "
        f"Put one of these after '#'."
    )


def _explicit_endpoint(options: "LoadOptions") -> str | None:
    """``--endpoint`` (or the older ``--model-args api=``), validated; None for ``auto``."""
    flag = str(options.endpoint or "auto").strip().lower()
    if flag not in ENDPOINTS:
        raise UsageError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {options.endpoint!r}.", param="endpoint")
    api = str(options.model_args.get("api", "")).strip().lower()
    if api and api not in ("chat", "completions"):
        raise UsageError(
            f"model_args api must be 'chat' or 'completions' for a server, got {api!r}.", param="model_args"
        )
    if api and flag != "auto" and api != flag:
        raise UsageError(
            f"{arg('endpoint', repr(flag))} and {arg('model_args', repr(f'api={api}'))} disagree; pass only "
            "the endpoint.",
            param="endpoint",
        )
    return api or (None if flag == "auto" else flag)


def resolve_endpoint(spec: CheckpointSpec, options: "LoadOptions") -> str:
    """``"completions"`` or ``"chat"`` for a server checkpoint (see the module docstring for ``auto``)."""
    chosen = _explicit_endpoint(options)
    if chosen == "chat" and options.chat_template is False:
        raise UsageError(
            f"{arg('endpoint', repr('chat'))} always applies the model's chat template on the server; drop "
            f"{arg('chat_template', False)}, or use {arg('endpoint', repr('completions'))} to send prompts "
            "as plain text.",
            param="endpoint",
        )
    if chosen == "completions" and options.chat_template is True and not _has_local_tokenizer(spec, options):
        raise UsageError(
            f"{arg('chat_template', True)} with {arg('endpoint', repr('completions'))} needs a local "
            f"tokenizer to render the template: pass {arg('model_args', repr('tokenizer=DIR_OR_ID'))} (the "
            f"model's tokenizer), or use {arg('endpoint', repr('chat'))}.",
            param="chat_template",
        )
    if chosen:
        return chosen
    if options.chat_template is False or _has_local_tokenizer(spec, options):
        return "completions"
    return "chat"


def _has_local_tokenizer(spec: CheckpointSpec, options: "LoadOptions") -> bool:
    return completions_tokenizer(spec, options).get("tokenizer_backend") is not None


def _local_tokenizer_name(spec: CheckpointSpec, options: "LoadOptions") -> str | None:
    return (
        str(options.model_args.get("tokenizer") or completions_tokenizer(spec, options).get("tokenizer") or "") or None
    )


def local_chat_template(spec: CheckpointSpec, options: "LoadOptions") -> bool | None:
    """Whether the local tokenizer directory has a chat template; None when there is no local directory."""
    name = _local_tokenizer_name(spec, options)
    folder = Path(name).expanduser() if name else None
    if folder is None or not folder.is_dir():
        return None
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bool(config.get("chat_template")) if isinstance(config, dict) else None


def local_context_length(spec: CheckpointSpec, options: "LoadOptions") -> int | None:
    """The context length of a served model whose folder is local (the served name, or model_args
    tokenizer=DIR), read as lm-eval's in-process ``HFLM`` reads it; None without such a folder.

    Without it lm-eval's API models assume 2048 tokens, so a 1,024-token model behind a server that
    reports no length (``transformers serve``) got prompts planned for twice its context.
    """
    from types import SimpleNamespace

    from lm_eval.models.utils import resolve_max_length

    name = _local_tokenizer_name(spec, options)
    folder = Path(name).expanduser() if name else None
    if folder is None or not folder.is_dir():
        return None
    config = _json_object(folder / "config.json")
    tokenizer = _json_object(folder / "tokenizer_config.json")
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else None
    try:  # untrusted files: a length that is not a number is no length
        found = resolve_max_length(
            SimpleNamespace(**(text_config or config)),
            SimpleNamespace(model_max_length=tokenizer.get("model_max_length")),
            default=0,
        )
    except (TypeError, ValueError, OverflowError):
        return None
    return found if 0 < found < 1 << 40 else None


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def unsupported_reason(spec: CheckpointSpec, options: "LoadOptions", need: str) -> str | None:
    """Why this server checkpoint cannot answer requests of type ``need``, with what to pass; None if it can."""
    endpoint = resolve_endpoint(spec, options)
    if endpoint == "chat" and local_chat_template(spec, options) is False:
        return (
            "the chat endpoint applies the model's chat template, and its tokenizer "
            f"({_local_tokenizer_name(spec, options)}) has none; use {arg('endpoint', repr('completions'))}"
        )
    if need == "generate_until":
        return None
    if endpoint == "chat" and _explicit_endpoint(options) == "chat":
        return (
            f"chat endpoints return no prompt log-probabilities; pass {arg('endpoint', repr('completions'))} with "
            f"{arg('model_args', repr('tokenizer=DIR'))} (a local copy of the model's tokenizer) to a server that "
            "returns "
            "them (vLLM)"
        )
    if not _has_local_tokenizer(spec, options):
        return (
            "log-likelihoods need a local tokenizer to find where the continuation starts (and to render the "
            f"chat template); pass {arg('model_args', repr('tokenizer=DIR'))} (a local copy of the model's tokenizer)"
        )
    return None


def load_server_lm(spec: CheckpointSpec, options: "LoadOptions"):
    """An lm-eval ``LocalCompletionsAPI`` / ``LocalChatCompletion`` for the spec, after the /models check.

    The LM's ``evalkit_chat_template`` is True for the chat endpoint (the server always applies the
    template, so evaluators must build chat requests), else ``--chat-template``/``--no-chat-template``.
    """
    from lm_eval.utils import handle_arg_string

    endpoint = resolve_endpoint(spec, options)
    entry = model_entry(spec, options)
    extra = {k: handle_arg_string(v) if isinstance(v, str) else v for k, v in options.model_args.items() if k != "api"}
    common = dict(
        model=spec.model,
        num_concurrent=options.num_concurrent,
        max_retries=options.max_retries,
        timeout=options.timeout,
        header=_headers(spec, options),
        server_name=_server_name(spec),
    )
    if options.max_length:
        common["max_length"] = options.max_length
    elif isinstance(entry.get("max_model_len"), int) and entry["max_model_len"] > 1:  # vLLM reports it
        common["max_length"] = entry["max_model_len"]
    elif local_context_length(spec, options):  # transformers serve does not: the local config says, as in-process
        common["max_length"] = local_context_length(spec, options)
    if isinstance(options.batch_size, int):
        common["batch_size"] = options.batch_size
    if endpoint == "chat":
        lm = _chat_class()(
            base_url=endpoint_url(spec, "chat/completions"), **{"tokenizer_backend": None, **common, **extra}
        )
        lm.evalkit_chat_template = True
        return lm
    tokenizer_args = completions_tokenizer(spec, options)
    _refuse_text_prompts_with_bos({**tokenizer_args, **extra})
    lm = _completions_class()(base_url=endpoint_url(spec, "completions"), **{**tokenizer_args, **common, **extra})
    lm.evalkit_chat_template = options.chat_template
    return lm


def completions_tokenizer(spec: CheckpointSpec, options: "LoadOptions") -> dict[str, Any]:
    """Tokenizer arguments for the completions backend.

    Log-likelihood requests need a local tokenizer to find where the continuation starts: one given with
    ``--model-args tokenizer=DIR_OR_ID`` (or ``tokenizer_backend=...``), or the served model name when it
    is a local model directory (as with ``transformers serve DIR``). Without one, requests go as text and
    only generation works. Prompts are sent as text either way (``tokenized_requests=False``), which every
    OpenAI-compatible server accepts; pass ``tokenized_requests=true`` to send token ids (vLLM).
    """
    args = options.model_args
    if "tokenizer_backend" in args:
        backend = str(args["tokenizer_backend"]).strip().lower()
        return {"tokenizer_backend": None if backend in ("", "none") else backend, "tokenized_requests": False}
    if "tokenizer" in args:
        return {"tokenizer_backend": "huggingface", "tokenized_requests": False}
    model_dir = Path(spec.model or "").expanduser()
    if spec.model and model_dir.is_dir() and any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        return {"tokenizer_backend": "huggingface", "tokenizer": str(model_dir), "tokenized_requests": False}
    return {"tokenizer_backend": None}


def _refuse_text_prompts_with_bos(args: dict[str, Any]) -> None:
    """``add_bos_token=true`` only with ``tokenized_requests=true``: text prompts would carry two BOS tokens.

    With text prompts lm-eval decodes its BOS-prefixed tokens to text ("<s>Question: ...") and the
    server, tokenizing with the tokenizer's defaults as in-process ``HFLM`` does, adds another BOS
    (measured with vLLM: bench/vllm/README.md). Text prompts already get the tokenizer's BOS from the server.
    """
    if (
        str(args.get("add_bos_token", "")).strip().lower() == "true"
        and str(args.get("tokenized_requests", "")).strip().lower() != "true"
    ):
        raise UsageError(
            "model_args add_bos_token=true needs tokenized_requests=true: with text prompts the server "
            "already adds the tokenizer's BOS token, and lm-eval would send a second one as text. Drop "
            "add_bos_token, or add tokenized_requests=true to send token ids.",
            param="model_args",
        )


def _completions_class():
    """lm-eval's completions backend: chat templates rendered locally, prompt logprobs checked."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    from .resilient_api import ResilientAPIMixin  # retries/backoff/progress (see that module)

    class CompletionsServerLM(ResilientAPIMixin, LocalCompletionsAPI):
        def apply_chat_template(self, chat_history, add_generation_prompt=True):
            # lm-eval 0.4.13 renders only for token-id requests; with text prompts it returns the messages
            # as JSON, which it then sends as `prompt` (HTTP 400 "prompt must be a string"). Render here.
            if self.tokenizer_backend != "huggingface" or self.tokenizer is None:
                raise UsageError(
                    f"the completions endpoint needs a local tokenizer to apply the chat template: pass "
                    f"{arg('model_args', repr('tokenizer=DIR_OR_ID'))}, or {arg('endpoint', repr('chat'))} "
                    "to let the server apply it."
                )
            return render_chat_text(
                self.tokenizer,
                chat_history,
                add_generation_prompt=add_generation_prompt,
                server_adds_special_tokens=not self.tokenized_requests,
            )

    return CompletionsServerLM


def render_chat_text(
    tokenizer, chat_history: list[dict], *, add_generation_prompt: bool = True, server_adds_special_tokens: bool = True
) -> str:
    """The chat template rendered to text as in-process ``HFLM`` renders it, ready to send as a text prompt.

    In-process, ``HFLM`` tokenizes a rendered prompt that starts with the BOS token *without* special tokens
    (lm-eval's ``has_bos_prefix``), so the model sees one BOS. A server tokenizes a text prompt on
    ``/v1/completions`` *with* the tokenizer's special tokens (vLLM documents ``add_special_tokens=True``
    as the completions default and ``False`` for chat, where the template is expected to carry BOS;
    ``transformers serve`` calls the tokenizer with its defaults). When that adds a BOS, the template's
    own BOS text is left out here, so the server's tokens equal the in-process tokens (one BOS either way).
    With token-id requests (``server_adds_special_tokens=False``) the text is kept as rendered.

    Examples
    --------
    >>> class Tok:  # a Llama-like tokenizer: prepends <s>, and its template starts with it
    ...     bos_token, bos_token_id = "<s>", 1
    ...     def apply_chat_template(self, chat, **kwargs):
    ...         return "<s>[user] " + chat[-1]["content"] + " [bot]"
    ...     def __call__(self, text, add_special_tokens=True):
    ...         return type("Enc", (), {"input_ids": ([1] if add_special_tokens else []) + [7] * len(text.split())})
    >>> render_chat_text(Tok(), [{"role": "user", "content": "hi"}])
    '[user] hi [bot]'
    >>> render_chat_text(Tok(), [{"role": "user", "content": "hi"}], server_adds_special_tokens=False)
    '<s>[user] hi [bot]'
    """
    import jinja2

    kwargs = dict(
        tokenize=False, add_generation_prompt=add_generation_prompt, continue_final_message=not add_generation_prompt
    )
    try:
        text = tokenizer.apply_chat_template(chat_history, **kwargs)
    except jinja2.exceptions.TemplateError:  # as HFLM: templates without a system role get the chat without it
        text = tokenizer.apply_chat_template([m for m in chat_history if m.get("role") != "system"], **kwargs)
    bos = getattr(tokenizer, "bos_token", None)
    if server_adds_special_tokens and bos and text.startswith(bos) and _tokenizer_adds_bos(tokenizer):
        text = text[len(bos) :]
    return text


def _tokenizer_adds_bos(tokenizer) -> bool:
    """Whether tokenizing text with the tokenizer's defaults (as servers do) puts a BOS token first."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    with_special = tokenizer("x").input_ids
    return (
        bool(with_special)
        and with_special[0] == bos_id
        and tokenizer("x", add_special_tokens=False).input_ids[:1] != [bos_id]
    )


def _chat_class():
    """lm-eval's chat backend: the server applies the chat template; plain-text prompts become one user message."""
    from lm_eval.models.openai_completions import LocalChatCompletion

    from .resilient_api import ResilientAPIMixin

    class ChatServerLM(ResilientAPIMixin, LocalChatCompletion):
        chat_replies = True

        def chat_template(self, chat_template=False):
            # The template lives on the server; evaluators only need to know that one is applied.
            return "(applied by the server)" if chat_template not in (False, None) else None

        def tok_encode(self, string, *args, **kwargs):
            # lm-eval's chat backend returns the string itself; evaluators counting tokens must not take
            # characters for tokens, so say there is no local tokenizer.
            raise NotImplementedError("no local tokenizer behind the chat endpoint")

        def create_message(self, messages, generate=False):
            if messages and isinstance(messages[0], str):
                return [{"role": "user", "content": messages[0]}]
            return super().create_message(messages, generate=generate)

    return ChatServerLM
