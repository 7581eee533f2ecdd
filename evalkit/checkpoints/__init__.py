"""Checkpoint specs: ``[LABEL=]SPEC`` -> :class:`Checkpoint` (kind, fingerprint) -> one lm-eval ``LM``.

Spec kinds (see :func:`parse_spec`):

- ``hf``: a Hugging Face model directory (config + weights + tokenizer), or a hub id when online;
- ``peft``: a PEFT/LoRA adapter directory (base model from ``adapter_config.json`` or ``--base``);
- ``weights``: one ``.safetensors``/``.bin``/``.pt``/``.pth``/``.ckpt`` file applied to a sibling
  ``config.json`` (or ``--config DIR``);
- ``server``: an OpenAI-compatible server ``http(s)://HOST[:PORT]/v1#MODEL``;
- ``predictions``: a JSONL file of ``{"task", "id", "output"}`` rows, replayed for generation tasks;
- ``NAME:LOCATION``: a kind a plug-in registers in the ``evalkit.checkpoint_kinds`` entry-point group
  (:data:`~evalkit.checkpoints.registry.CHECKPOINT_KINDS`).

The model is loaded at most once per checkpoint, on first use of :attr:`Checkpoint.lm`, and shared by
every evaluator; a run answered entirely from the result store never loads it.
"""

from __future__ import annotations

from typing import Any

from ..records import CheckpointInfo
from .lazy import LazyCheckpoint
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


class Checkpoint(LazyCheckpoint):
    """A parsed spec with its lazily computed fingerprint and lazily loaded ``LM``.

    Everything that differs between spec kinds comes from the kind's class (:mod:`.kinds`).
    """

    def __init__(self, spec: CheckpointSpec, options: LoadOptions | None = None):
        self.spec = spec
        self.options = options or LoadOptions()

    @classmethod
    def from_string(cls, text: str, options: LoadOptions | None = None, *, index: int = 0) -> "Checkpoint":
        return cls(parse_spec(text, index=index), options)

    @property
    def label(self) -> str:
        return self.spec.label

    def _compute_fingerprint(self) -> str:
        from .kinds import fingerprint

        return fingerprint(self.spec, self.options)

    def _load_lm(self) -> Any:
        from .kinds import load_lm

        return load_lm(self.spec, self.options)

    @property
    def settings(self) -> dict[str, Any]:
        """The load options that change this checkpoint's outputs (see ``CheckpointKind.settings``)."""
        from .kinds import settings

        return settings(self.spec, self.options)

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
        return CheckpointInfo.from_dict(
            {
                "label": self.spec.label,
                "spec": self.spec.display,
                "kind": self.spec.kind,
                "fingerprint": self.fingerprint,
                "note": self.spec.note,
                "settings": self.settings,
                "run": run,
                "step": step,
            }
        )

    def supports(self, need: str) -> bool:
        """Whether this checkpoint can answer lm-eval requests of type ``need`` ("loglikelihood", ...)."""
        return self.unsupported_reason(need) is None

    def unsupported_reason(self, need: str, *, marked: bool = False) -> str | None:
        """Why this checkpoint cannot answer requests of type ``need``, naming what to pass; None if it can.

        In Python's words (``model_args='tokenizer=DIR'``); ``marked=True`` keeps the parameter marks
        (:func:`evalkit.errors.arg`) for a message the CLI renders with its flags.
        """
        from ..errors import python_words
        from .kinds import unsupported_reason

        reason = unsupported_reason(self.spec, self.options, need)
        return reason if reason is None or marked else python_words(reason)
