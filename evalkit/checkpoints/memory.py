"""Models that live in this Python process: a ``transformers`` model (+ tokenizer), a PEFT model, an lm-eval ``LM``.

:class:`InMemoryCheckpoint` answers the same questions as :class:`~evalkit.checkpoints.Checkpoint`
(label, kind, fingerprint, info, supports, lm), so :func:`evalkit.run.evaluate_checkpoint` treats
both alike. A model object is handed to lm-eval's ``HFLM`` exactly as a directory would be after
loading (same batch size, length and chat-template choice), so a model evaluated in memory and the
same model saved with ``save_pretrained`` give the same records.

Fingerprint of an in-memory model (what the result store keys its runs by), see :func:`model_fingerprint`:
sha256 over every tensor of ``model.state_dict()`` (name, dtype, shape, bytes, in name order), the
model config without bookkeeping keys, a PEFT model's adapter configs, and the tokenizer's saved
files. It differs from the fingerprint of the saved directory (that one hashes files), is stable
across processes, and changes with any trained weight.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import UsageError
from ..records import CheckpointInfo
from .lazy import LazyCheckpoint

__all__ = ["InMemoryCheckpoint", "model_fingerprint", "is_lm_eval_lm", "evaluation_mode"]

# Config keys that record where or how a model was loaded, not what it computes: the tensors' own
# dtypes are hashed, and use_cache (off under gradient checkpointing) does not change outputs.
_BOOKKEEPING_CONFIG_KEYS = ("transformers_version", "torch_dtype", "dtype", "use_cache", "name_or_path")


def is_lm_eval_lm(obj: Any) -> bool:
    """Whether ``obj`` is an lm-eval ``LM`` (answers requests itself; evalkit does not wrap it)."""
    from lm_eval.api.model import LM

    return isinstance(obj, LM)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))  # str(set) order varies between processes
    return str(value)


def _config_text(model: Any) -> str:
    config = getattr(model, "config", None)
    data = config.to_dict() if hasattr(config, "to_dict") else {}
    data = {k: v for k, v in data.items() if not k.startswith("_") and k not in _BOOKKEEPING_CONFIG_KEYS}
    peft = getattr(model, "peft_config", None)  # PEFT: rank, alpha, target modules change outputs
    if isinstance(peft, dict):
        data["evalkit_peft"] = {name: c.to_dict() if hasattr(c, "to_dict") else c for name, c in peft.items()}
    return json.dumps(data, sort_keys=True, default=_json_default)


def _tokenizer_entries(tokenizer: Any) -> list[tuple[str, str]]:
    """(file name, sha256) of the tokenizer as ``save_pretrained`` writes it (vocab, chat template, ...)."""
    from .._io import hash_file
    from .fingerprint import model_files

    with tempfile.TemporaryDirectory(prefix="evalkit-tokenizer-") as folder:
        tokenizer.save_pretrained(folder)
        return [(path.name, hash_file(path)) for path in model_files(Path(folder), weights=False)]


def model_fingerprint(model: Any, tokenizer: Any = None) -> str:
    """Hex sha256 of an in-memory model's weights, config and tokenizer (see the module docstring).

    Hashing reads every weight once (about a second per GB on one core); nothing is written but the
    tokenizer's few files, to a temporary folder.
    """
    digest = hashlib.sha256(b"evalkit-fingerprint-v1\0memory\0")
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(__import__("torch").uint8).numpy().tobytes())
    digest.update(b"\0config\0" + _config_text(model).encode())
    if tokenizer is not None:
        for name, value in _tokenizer_entries(tokenizer):
            digest.update(f"\0tokenizer/{name}\0{value}".encode())
    return digest.hexdigest()


@contextmanager
def evaluation_mode(model: Any) -> Iterator[None]:
    """Put a torch model in eval mode (no dropout) for the block and restore its training mode after."""
    training = bool(getattr(model, "training", False))
    if training:
        model.eval()
    try:
        yield
    finally:
        if training and hasattr(model, "train"):
            model.train(True)


class InMemoryCheckpoint(LazyCheckpoint):
    """A model object evaluated without saving it; built by :func:`evalkit.evaluate` for non-spec models.

    Parameters
    ----------
    model : transformers model, PEFT model or lm-eval ``LM``
    tokenizer : transformers tokenizer, optional
        Required for a transformers/PEFT model; copied before lm-eval configures its padding.
    label : str, optional
        Name in results and reports (default: the model's class name).
    options : LoadOptions, optional
        ``batch_size``, ``max_length``, ``chat_template`` and ``model_args`` apply; ``device``
        and ``dtype`` do not (the model stays where it is).
    fingerprint : str, optional
        Overrides :func:`model_fingerprint`; required for an lm-eval ``LM`` without ``.model``.
    run, step : optional
        Where the model is in a training run (set by the Trainer callback).
    """

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        label: str | None = None,
        note: str | None = None,
        options: Any = None,
        fingerprint: str | None = None,
        run: str | None = None,
        step: int | None = None,
    ):
        from .options import LoadOptions

        self.model = model
        self.options = options or LoadOptions()
        self.is_lm = is_lm_eval_lm(model)
        self.tokenizer = getattr(model, "tokenizer", None) if self.is_lm else tokenizer
        if not self.is_lm:
            _check_transformers_pair(model, tokenizer)
        self.label = label or type(model).__name__
        self.note, self.run, self.step = note, run, step
        self._fingerprint = fingerprint

    @property
    def kind(self) -> str:
        return "lm" if self.is_lm else "memory"

    @property
    def display(self) -> str:
        return f"<in-memory {type(self.model).__name__}>"

    def _compute_fingerprint(self) -> str:
        torch_model = getattr(self.model, "model", None) if self.is_lm else self.model
        if torch_model is None or not hasattr(torch_model, "state_dict"):
            raise UsageError(
                f"cannot fingerprint the lm-eval LM {type(self.model).__name__} (it has no .model "
                f"with weights); pass fingerprint='...', a string that changes whenever its "
                f"answers would, so stored results are not reused for another model."
            )
        return model_fingerprint(torch_model, self.tokenizer)

    @property
    def info(self) -> CheckpointInfo:
        return CheckpointInfo.from_dict(
            {
                "label": self.label,
                "spec": self.display,
                "kind": self.kind,
                "fingerprint": self.fingerprint,
                "note": self.note,
                "settings": self.options.output_settings(),
                "run": self.run,
                "step": self.step,
            }
        )

    def supports(self, need: str) -> bool:
        return True  # a model computes log-likelihoods and generates; an LM object says so by failing

    def _load_lm(self) -> Any:
        lm = self.model if self.is_lm else _hflm_over(self.model, self.tokenizer, self.options)
        lm.evalkit_chat_template = self.options.chat_template  # as loaders._with_chat_choice
        return lm


def _check_transformers_pair(model: Any, tokenizer: Any) -> None:
    from transformers import PreTrainedTokenizerBase

    if not hasattr(model, "state_dict") or not hasattr(model, "config"):
        raise UsageError(
            f"cannot evaluate a {type(model).__name__}: give a checkpoint spec (path, URL), a "
            f"transformers or PEFT model with its tokenizer, or an lm-eval LM."
        )
    if tokenizer is None:
        raise UsageError(
            f"an in-memory {type(model).__name__} needs its tokenizer: evaluate(model, tasks, tokenizer=tokenizer)."
        )
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise UsageError(
            f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__} "
            f"(for a processor, pass processor.tokenizer)."
        )


def _hflm_over(model: Any, tokenizer: Any, options: Any):
    """lm-eval's ``HFLM`` over a model object, with the options a directory would be loaded with."""
    from lm_eval.models.huggingface import HFLM

    from .loaders import _batch_size, _hflm_kwargs

    kwargs = _hflm_kwargs(options)
    for applied in ("device", "dtype", "trust_remote_code"):  # the model is already built and placed
        kwargs.pop(applied)
    kwargs["batch_size"] = _batch_size(options.batch_size, str(getattr(model, "device", "cpu")))
    # lm-eval sets a pad token on the tokenizer it gets; the caller's (e.g. the Trainer's) stays untouched.
    with _quiet("lm_eval.models.huggingface"):  # two warnings about passing a model object, which we mean to do
        return HFLM(pretrained=model, tokenizer=copy.deepcopy(tokenizer), **kwargs)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    import logging

    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
