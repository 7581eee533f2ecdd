"""Load options: how a checkpoint spec becomes a model, and which of them change its outputs.

Its own module (re-exported by :mod:`evalkit.checkpoints`) so the fingerprint, loader and server
modules can use it without importing the package that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadOptions", "NON_OUTPUT_MODEL_ARGS"]

#: ``--model-args`` keys left out of :meth:`LoadOptions.output_settings` (and so out of the result
#: store's run key), because they cannot change what the model answers:
#: - server transport and retries (lm-eval's TemplateAPI, evalkit's resilient wrapper): the same
#:   requests reach the same server;
#: - batching and device placement (incl. HFLM's parallelize/device_map options): like any two
#:   lm-eval batch sizes (or devices) they give float-level differences at most, and rerunning every
#:   task because a batch size changed would make the store useless on a shared GPU box;
#: - ``logits_cache`` (HFLM reuses logits of shared prefixes) and ``trust_remote_code`` (a permission:
#:   the code itself is in the checkpoint, hence in its fingerprint);
#: - ``loglikelihood_scoring`` (shared-prefix or per-option scoring of choices on servers and vLLM): both
#:   score the same tokens after the same prefixes, exactly (choices the shared-prefix walk cannot score
#:   go per option), so only float-level differences, as with batch sizes (``evalkit.checkpoints.shared_prefix``).
NON_OUTPUT_MODEL_ARGS = frozenset(
    {
        "num_concurrent",
        "max_retries",
        "timeout",
        "retry_wait",
        "retry_max_wait",
        "verify_certificate",
        "ca_cert_path",
        "auth_token",
        "header",
        "batch_size",
        "max_batch_size",
        "device",
        "logits_cache",
        "trust_remote_code",
        "loglikelihood_scoring",
        "parallelize",
        "device_map_option",
        "max_memory_per_gpu",
        "max_cpu_memory",
        "offload_folder",
    }
)


@dataclass
class LoadOptions:
    """How to turn a spec into a model; the CLI fills it from flags shared by eval and compare."""

    base: str | None = None  # --base: base model for a PEFT adapter
    config: str | None = None  # --config: architecture/tokenizer dir for a weights file
    allow_pickle: bool = False  # --allow-pickle: full unpickling of .bin/.pt/.ckpt files
    trust_remote_code: bool = False  # --trust-remote-code
    batch_size: str | int = "auto"  # --batch-size: int or "auto"
    device: str | None = None  # --device: cpu, cuda, cuda:1, mps (default: best available)
    dtype: str | None = None  # --dtype: auto, float32, bfloat16, float16
    max_length: int | None = None  # --max-length
    model_args: dict[str, Any] = field(default_factory=dict)  # --model-args k=v,...: passed to lm-eval
    num_concurrent: int = 8  # --num-concurrent: parallel requests to a server
    max_retries: int = 5  # --max-retries: server retries on 429/5xx/timeouts
    timeout: float = 300.0  # --request-timeout seconds
    api_key_env: str = "OPENAI_API_KEY"  # --api-key-env: environment variable holding the key
    chat_template: bool | None = None  # --chat-template/--no-chat-template (None: when the model has one)
    endpoint: str | None = None  # --endpoint for servers: auto (None), completions or chat
    backend: str = "hf"  # --backend for local models: hf (lm-eval's HFLM) or vllm (lm-eval's VLLM)

    def output_settings(self) -> dict[str, Any]:
        """The load options that can change the model's outputs, normalised; ``{}`` for the defaults.

        Returns
        -------
        dict
            ``dtype`` (unless None or "auto"), ``max_length``, ``chat_template`` (unless None) and
            ``model_args`` (without :data:`NON_OUTPUT_MODEL_ARGS`, values as lm-eval reads them and
            then as strings, so ``add_bos_token=true`` and ``True`` are the same setting). Device,
            batch size and server transport are left out on purpose (see :data:`NON_OUTPUT_MODEL_ARGS`).
        """
        settings: dict[str, Any] = {}
        if self.dtype not in (None, "auto"):
            settings["dtype"] = str(self.dtype)
        if self.max_length is not None:
            settings["max_length"] = int(self.max_length)
        if self.chat_template is not None:
            settings["chat_template"] = bool(self.chat_template)
        model_args = {
            str(k).strip(): _setting_string(v)
            for k, v in self.model_args.items()
            if str(k).strip() not in NON_OUTPUT_MODEL_ARGS
        }
        if model_args:
            settings["model_args"] = dict(sorted(model_args.items()))
        return settings


def _setting_string(value: Any) -> str:
    """``value`` as lm-eval's loaders read it (``"true"`` -> True), then as one canonical string."""
    import json

    from lm_eval.utils import handle_arg_string

    if isinstance(value, str):
        value = handle_arg_string(value)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
