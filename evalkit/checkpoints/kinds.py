"""One class per checkpoint kind: how a spec of that kind is fingerprinted, loaded, and what it can answer.

:func:`kind_of` is the one place a spec's kind is looked up; :class:`~evalkit.checkpoints.Checkpoint`
asks it (through :func:`fingerprint`, :func:`load_lm` and :func:`unsupported_reason`) for everything
that differs between kinds. The work itself stays where it was written: file hashing in
:mod:`.fingerprint`, lm-eval backends in :mod:`.loaders`, servers in :mod:`.server`, predictions
files in :mod:`.replay`. Those modules never import this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from . import fingerprint as _files
from . import loaders as _loaders
from .registry import CHECKPOINT_KINDS
from .spec import CheckpointSpec

if TYPE_CHECKING:
    from .options import LoadOptions

__all__ = [
    "CheckpointKind",
    "kind_of",
    "fingerprint",
    "load_lm",
    "settings",
    "supports",
    "unsupported_reason",
    "CHECKPOINT_KINDS",
]


class CheckpointKind:
    """What every kind provides; the defaults fit a model evaluated in this process."""

    name: ClassVar[str]

    def fingerprint(self, spec: CheckpointSpec, options: "LoadOptions") -> str:
        raise NotImplementedError

    def load(self, spec: CheckpointSpec, options: "LoadOptions") -> Any:
        raise NotImplementedError

    def unsupported_reason(self, spec: CheckpointSpec, options: "LoadOptions", need: str) -> str | None:
        return None  # a model computes log-likelihoods and generates

    def settings(self, spec: CheckpointSpec, options: "LoadOptions") -> dict[str, Any]:
        """The load options that change this checkpoint's outputs (part of its results' identity)."""
        return options.output_settings()


class _LocalModel(CheckpointKind):
    """A model loaded in process, by lm-eval's ``HFLM`` (or its ``VLLM`` with ``--backend vllm``)."""

    def load(self, spec: CheckpointSpec, options: "LoadOptions") -> Any:
        return _loaders.load_local(spec, options, self.load_hf)

    def settings(self, spec, options):
        settings = super().settings(spec, options)
        if options.backend != "hf":
            settings["backend"] = options.backend  # another engine: other kernels, other numbers
        return settings

    def load_hf(self, spec: CheckpointSpec, options: "LoadOptions") -> Any:
        raise NotImplementedError


class HfKind(_LocalModel):
    """A Hugging Face model directory."""

    name = "hf"

    def fingerprint(self, spec, options):
        return _files._fp_hf(spec, options)

    def load_hf(self, spec, options):
        return _loaders._load_hf(spec, options)


class HubKind(_LocalModel):
    """A hub id (``org/name[@revision]``), used when online or already in the local cache."""

    name = "hub"

    def fingerprint(self, spec, options):
        return _files._fp_hub(spec, options)

    def load_hf(self, spec, options):
        return _loaders._load_hub(spec, options)


class PeftKind(_LocalModel):
    """A PEFT/LoRA adapter directory over its base model."""

    name = "peft"

    def fingerprint(self, spec, options):
        return _files._fp_peft(spec, options)

    def load_hf(self, spec, options):
        return _loaders._load_peft(spec, options)


class WeightsKind(_LocalModel):
    """One weights file applied to a config directory."""

    name = "weights"

    def fingerprint(self, spec, options):
        return _files._fp_weights(spec, options)

    def load_hf(self, spec, options):
        return _loaders._load_weights(spec, options)


class ServerKind(CheckpointKind):
    """An OpenAI-compatible server."""

    name = "server"

    def fingerprint(self, spec, options):
        return _files._fp_server(spec, options)

    def load(self, spec, options):
        from .server import load_server_lm

        return load_server_lm(spec, options)  # sets the chat choice itself: the chat endpoint always applies it

    def unsupported_reason(self, spec, options, need):
        from .server import unsupported_reason as server_reason

        return server_reason(spec, options, need)  # validates --endpoint even for generation

    def settings(self, spec, options):
        from .server import resolve_endpoint

        # the endpoint changes outputs: the chat endpoint applies the server's copy of the chat template,
        # completions the local one
        return {**super().settings(spec, options), "endpoint": resolve_endpoint(spec, options)}


class PredictionsKind(CheckpointKind):
    """A predictions file: generations made elsewhere, replayed."""

    name = "predictions"

    def fingerprint(self, spec, options):
        return _files._fp_predictions(spec, options)

    def load(self, spec, options):
        from .replay import ReplayLM

        return ReplayLM(spec.location)

    def unsupported_reason(self, spec, options, need):
        return None if need == "generate_until" else "a predictions file holds generations only"


for _builtin in (HfKind, HubKind, PeftKind, WeightsKind, ServerKind, PredictionsKind):
    CHECKPOINT_KINDS.register(_builtin)


def kind_of(spec: CheckpointSpec) -> CheckpointKind:
    """The kind object of ``spec`` (one of :data:`~evalkit.checkpoints.spec.KINDS` or a plug-in kind)."""
    return CHECKPOINT_KINDS.get(spec.kind)()


def fingerprint(spec: CheckpointSpec, options: "LoadOptions | None" = None) -> str:
    """Hex sha256 fingerprint of the checkpoint ``spec`` (see :mod:`.fingerprint` for what it covers)."""
    from .options import LoadOptions

    return kind_of(spec).fingerprint(spec, options or LoadOptions())


def load_lm(spec: CheckpointSpec, options: "LoadOptions") -> Any:
    """Load the checkpoint as an lm-eval ``LM`` (errors a user can fix are UsageErrors)."""
    return kind_of(spec).load(spec, options)


def unsupported_reason(spec: CheckpointSpec, options: "LoadOptions", need: str) -> str | None:
    """Why the checkpoint cannot answer requests of type ``need`` and what to pass instead; None when it can."""
    if need not in _loaders.NEEDS:
        raise ValueError(f"need must be one of {', '.join(_loaders.NEEDS)}, got {need!r}")
    return kind_of(spec).unsupported_reason(spec, options, need)


def settings(spec: CheckpointSpec, options: "LoadOptions") -> dict[str, Any]:
    """The load options that change the checkpoint's outputs, as its kind counts them."""
    return kind_of(spec).settings(spec, options)


def supports(spec: CheckpointSpec, options: "LoadOptions", need: str) -> bool:
    """Whether a checkpoint of this kind can answer lm-eval requests of type ``need``."""
    return unsupported_reason(spec, options, need) is None
