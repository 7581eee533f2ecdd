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

from typing import Any

from ..records import CheckpointInfo
from .options import NON_OUTPUT_MODEL_ARGS, LoadOptions
from .spec import CheckpointSpec, parse_spec

__all__ = ["Checkpoint", "CheckpointSpec", "LoadOptions", "parse_spec", "NON_OUTPUT_MODEL_ARGS", "format_settings"]


def format_settings(settings: dict[str, Any]) -> str:
    """A checkpoint's output-changing settings on one line, as runs print them.

    Examples
    --------
    >>> format_settings({"endpoint": "chat", "dtype": "float32", "model_args": {"tokenizer": "/m"}})
    'endpoint=chat, dtype=float32, model_args.tokenizer=/m'
    """
    items = []
    for key, value in settings.items():
        if isinstance(value, dict):
            items += [f"{key}.{k}={v}" for k, v in value.items()]
        else:
            items.append(f"{key}={value}")
    return ", ".join(items)


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
            from .kinds import fingerprint

            self._fingerprint = fingerprint(self.spec, self.options)
        return self._fingerprint

    @property
    def settings(self) -> dict[str, Any]:
        """:meth:`LoadOptions.output_settings`, plus the backend when it is not HF and for servers the
        endpoint used (it changes outputs: the chat endpoint applies the server's copy of the chat template,
        completions the local one)."""
        settings = self.options.output_settings()
        if self.options.backend != "hf" and self.spec.kind not in ("server", "predictions"):
            settings["backend"] = self.options.backend  # another engine: other kernels, other numbers
        if self.spec.kind == "server":
            from .server import resolve_endpoint

            settings["endpoint"] = resolve_endpoint(self.spec, self.options)
        return settings

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def display(self) -> str:
        return self.spec.display

    @property
    def info(self) -> CheckpointInfo:
        from .spec import trainer_position

        run, step = trainer_position(self.spec) or (None, None)
        return CheckpointInfo.from_dict({"label": self.spec.label, "spec": self.spec.display, "kind": self.spec.kind,
                                         "fingerprint": self.fingerprint, "note": self.spec.note,
                                         "settings": self.settings, "run": run, "step": step})

    def supports(self, need: str) -> bool:
        """Whether this checkpoint can answer lm-eval requests of type ``need`` ("loglikelihood", ...)."""
        return self.unsupported_reason(need) is None

    def unsupported_reason(self, need: str) -> str | None:
        """Why this checkpoint cannot answer requests of type ``need``, naming what to pass; None if it can."""
        from .kinds import unsupported_reason

        return unsupported_reason(self.spec, self.options, need)

    @property
    def loaded(self) -> bool:
        return self._lm is not None

    @property
    def lm(self) -> Any:
        """The lm-eval ``LM`` object, loaded on first access and reused afterwards."""
        if self._lm is None:
            from .kinds import load_lm

            self._lm = load_lm(self.spec, self.options)
        return self._lm
