"""Checkpoint specs: ``[LABEL=]SPEC`` -> :class:`Checkpoint` (kind, fingerprint) -> one lm-eval ``LM``.

Spec kinds (see :func:`parse_spec`):

- ``hf``: a Hugging Face model directory (config + weights + tokenizer), or a hub id when online;
- ``peft``: a PEFT/LoRA adapter directory (base model from ``adapter_config.json`` or ``--base``);
- ``weights``: one ``.safetensors``/``.bin``/``.pt``/``.pth``/``.ckpt`` file applied to a sibling
  ``config.json`` (or ``--config DIR``);
- ``server``: an OpenAI-compatible server ``http(s)://HOST[:PORT]/v1#MODEL``;
- ``predictions``: a JSONL file of ``{"task", "id", "output"}`` rows, replayed for generation tasks.

The model is loaded at most once per checkpoint, on first use of :attr:`Checkpoint.lm`, and shared by
every evaluator; a run answered entirely from the result store never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..records import CheckpointInfo
from .spec import CheckpointSpec, parse_spec

__all__ = ["Checkpoint", "CheckpointSpec", "LoadOptions", "parse_spec"]


@dataclass
class LoadOptions:
    """How to turn a spec into a model; the CLI fills it from flags shared by eval and compare."""

    base: str | None = None               # --base: base model for a PEFT adapter
    config: str | None = None             # --config: architecture/tokenizer dir for a weights file
    allow_pickle: bool = False            # --allow-pickle: full unpickling of .bin/.pt/.ckpt files
    trust_remote_code: bool = False       # --trust-remote-code
    batch_size: str | int = "auto"        # --batch-size: int or "auto"
    device: str | None = None             # --device: cpu, cuda, cuda:1, mps (default: best available)
    dtype: str | None = None              # --dtype: auto, float32, bfloat16, float16
    max_length: int | None = None         # --max-length
    model_args: dict[str, Any] = field(default_factory=dict)  # --model-args k=v,...: passed to lm-eval
    num_concurrent: int = 8               # --num-concurrent: parallel requests to a server
    max_retries: int = 5                  # --max-retries: server retries on 429/5xx/timeouts
    timeout: float = 300.0                # --request-timeout seconds
    api_key_env: str = "OPENAI_API_KEY"   # --api-key-env: environment variable holding the key
    chat_template: bool | None = None     # --chat-template/--no-chat-template (None: when the model has one)


class Checkpoint:
    """A parsed spec with its lazily computed fingerprint and lazily loaded ``LM``."""

    def __init__(self, spec: CheckpointSpec, options: LoadOptions | None = None):
        self.spec = spec
        self.options = options or LoadOptions()
        self._fingerprint: str | None = None
        self._lm: Any = None

    @classmethod
    def from_string(cls, text: str, options: LoadOptions | None = None, *, index: int = 0) -> "Checkpoint":
        return cls(parse_spec(text, index=index), options)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from .fingerprint import fingerprint

            self._fingerprint = fingerprint(self.spec, self.options)
        return self._fingerprint

    @property
    def info(self) -> CheckpointInfo:
        return CheckpointInfo(label=self.spec.label, spec=self.spec.display, kind=self.spec.kind,
                              fingerprint=self.fingerprint, note=self.spec.note)

    def supports(self, need: str) -> bool:
        """Whether this checkpoint can answer lm-eval requests of type ``need`` ("loglikelihood", ...)."""
        from .loaders import supports

        return supports(self.spec, self.options, need)

    @property
    def loaded(self) -> bool:
        return self._lm is not None

    @property
    def lm(self) -> Any:
        """The lm-eval ``LM`` object, loaded on first access and reused afterwards."""
        if self._lm is None:
            from .loaders import load_lm

            self._lm = load_lm(self.spec, self.options)
        return self._lm
