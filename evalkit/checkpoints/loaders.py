"""Turn a :class:`CheckpointSpec` into ONE lm-eval ``LM`` object, building on lm-eval's own backends.

- ``hf``/``hub``: ``lm_eval.models.huggingface.HFLM(pretrained=DIR_OR_ID)``;
- ``peft``: ``HFLM(pretrained=BASE, peft=ADAPTER_DIR)``;
- ``weights``: the state dict is read safely (safetensors, or ``torch.load(weights_only=True)`` unless
  ``--allow-pickle``), checked against a model built from the config, and the instantiated model is
  handed to ``HFLM`` with the config dir's tokenizer;
- ``server``: lm-eval's ``local-completions`` / ``local-chat-completions`` (see :mod:`.server`);
- ``--backend vllm`` (``hf``/``hub``/``peft``): lm-eval's in-process ``VLLM`` instead of ``HFLM``, with the
  same options (``--dtype``, ``--max-length``, ``--model-args``; a PEFT adapter as ``lora_local_path``);
- ``predictions``: :class:`~evalkit.checkpoints.replay.ReplayLM`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EvalkitError, UsageError, arg
from .spec import TOKENIZER_FILES, CheckpointSpec, read_adapter_base

if TYPE_CHECKING:
    from .options import LoadOptions

__all__ = ["load_local", "weights_config_dir", "read_state_dict", "fit_state_dict", "NEEDS", "BACKENDS"]

NEEDS = ("loglikelihood", "loglikelihood_rolling", "generate_until")
_EXAMPLES = 3
_DTYPES = (None, "auto", "float32", "bfloat16", "float16")


#: Values of ``--backend`` for local checkpoints: lm-eval's ``HFLM`` or its ``VLLM``.
BACKENDS = ("hf", "vllm")


def load_local(spec: CheckpointSpec, options: "LoadOptions", load_hf):
    """A local checkpoint (model dir, hub id, adapter, weights file) as an lm-eval ``LM``: ``load_hf`` (the
    kind's own ``HFLM`` loader, see :mod:`.kinds`) or lm-eval's ``VLLM`` with ``--backend vllm``."""
    if options.backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {options.backend!r}.", param="backend")
    if options.backend == "vllm":
        return _with_chat_choice(_load_vllm(spec, options), options)
    return _with_chat_choice(load_hf(spec, options), options)


def _with_chat_choice(lm, options: "LoadOptions"):
    # --chat-template/--no-chat-template travels with the LM so every evaluator sees the same choice
    # (None: each task's own `chat_template` key, default "when the model has one").
    lm.evalkit_chat_template = options.chat_template
    return lm


def _hflm_kwargs(options: "LoadOptions") -> dict[str, Any]:
    import torch
    from lm_eval.utils import handle_arg_string

    if options.dtype not in _DTYPES:
        raise UsageError(
            f"dtype must be one of {', '.join(d for d in _DTYPES if d)}, got {options.dtype!r}.", param="dtype"
        )
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":  # one GPU per process under torchrun / accelerate launch (evalkit.parallel)
        from ..parallel import current_ranks

        ranks = current_ranks()
        device = f"cuda:{ranks.local_rank}" if ranks.parallel else device
    kwargs: dict[str, Any] = dict(
        batch_size=_batch_size(options.batch_size, device),
        dtype=options.dtype or "auto",
        device=device,
        trust_remote_code=options.trust_remote_code,
    )
    if options.max_length:
        kwargs["max_length"] = options.max_length
    kwargs.update(
        {
            k: handle_arg_string(v) if isinstance(v, str) else v
            for k, v in options.model_args.items()
            if k not in SERVER_ONLY_MODEL_ARGS
        }
    )
    return kwargs


#: --model-args keys meant for server checkpoints; in a mixed compare they must not reach HFLM.
SERVER_ONLY_MODEL_ARGS = frozenset(
    {
        "retry_wait",
        "retry_max_wait",
        "api",
        "tokenized_requests",
        "tokenizer_backend",
        "base_url",
        "num_concurrent",
        "max_retries",
        "timeout",
        "loglikelihood_scoring",
    }
)

#: "auto" on CPU: lm-eval's detection probes ever larger batches until memory runs out, which on a
#: CPU with plenty of RAM costs tens of seconds and finds nothing useful; a fixed batch is as fast.
CPU_AUTO_BATCH_SIZE = 8


def _batch_size(requested: str | int, device: str) -> str | int:
    if isinstance(requested, str) and requested.startswith("auto") and device.startswith("cpu"):
        return CPU_AUTO_BATCH_SIZE
    return requested


def _load_vllm(spec: CheckpointSpec, options: "LoadOptions"):
    """lm-eval's ``VLLM`` for a model directory, hub id or PEFT adapter (``lora_local_path``).

    Passed through like ``HFLM``: ``--dtype`` (vLLM's ``auto`` may pick bfloat16 where HF keeps float32, so
    give the dtype to compare backends), ``--max-length``, ``--trust-remote-code``, ``--batch-size`` and
    ``--model-args`` (e.g. ``tensor_parallel_size=2``, ``gpu_memory_utilization=0.8``). Chat templates and
    BOS tokens are handled by lm-eval's ``VLLM`` as by ``HFLM`` (rendered, then tokenized without a second BOS).
    """
    from importlib.util import find_spec

    if spec.kind not in ("hf", "hub", "peft"):
        raise UsageError(
            f"{arg('backend', repr('vllm'))} loads model directories, hub ids and PEFT adapters; checkpoint "
            f"{spec.display!r} is a {spec.kind} file: use the default {arg('backend', repr('hf'))}.",
            param="backend",
        )
    if find_spec("vllm") is None:
        raise UsageError(
            f"{arg('backend', repr('vllm'))} needs vLLM in this Python environment (pip install vllm; on "
            f"CPU-only machines its CPU build, see bench/vllm/README.md), or use the default "
            f"{arg('backend', repr('hf'))}.",
            param="backend",
        )
    if options.dtype not in _DTYPES:
        raise UsageError(
            f"dtype must be one of {', '.join(d for d in _DTYPES if d)}, got {options.dtype!r}.", param="dtype"
        )
    kwargs: dict[str, Any] = dict(
        dtype=options.dtype or "auto", trust_remote_code=options.trust_remote_code, batch_size=options.batch_size
    )
    if options.max_length:
        kwargs["max_length"] = options.max_length
    if spec.kind == "hub":
        kwargs["revision"] = spec.revision or "main"
    pretrained = str(spec.location)
    if spec.kind == "peft":
        adapter = Path(spec.location)
        pretrained = options.base or read_adapter_base(adapter) or ""
        if not pretrained:
            raise UsageError(
                f"adapter {adapter}: adapter_config.json names no base_model_name_or_path; "
                f"pass {arg('base', 'DIR_OR_ID')}.",
                param="base",
            )
        kwargs["lora_local_path"] = str(adapter)
    from lm_eval.utils import handle_arg_string

    kwargs.update(
        {
            k: handle_arg_string(v) if isinstance(v, str) else v
            for k, v in options.model_args.items()
            if k not in SERVER_ONLY_MODEL_ARGS
        }
    )
    # choices scored with generation-style requests that vLLM's prefix cache serves (see vllm_lm.py)
    kwargs["loglikelihood_scoring"] = options.model_args.get("loglikelihood_scoring", "auto")
    from .vllm_lm import vllm_class

    try:
        return vllm_class()(pretrained=pretrained, **kwargs)
    except EvalkitError:
        raise
    except Exception as exc:  # engine start-up failures (memory, unsupported architecture) as one line
        raise UsageError(
            f"checkpoint {spec.display!r} could not be loaded with vLLM: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _hflm(spec: CheckpointSpec, **kwargs):
    """``HFLM(**kwargs)``; library errors while reading files become one-line UsageErrors."""
    from lm_eval.models.huggingface import HFLM

    try:
        return HFLM(**kwargs)
    except EvalkitError:
        raise
    except Exception as exc:  # missing/corrupt files, unknown architectures, hub access: all one-line errors
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        hint = (
            (
                " (offline: HF_HUB_OFFLINE is set, so hub ids only work when already in the local cache; "
                "download the model and pass its directory)"
            )
            if offline and spec.kind in ("hub", "peft")
            else ""
        )
        raise UsageError(
            f"checkpoint {spec.display!r} could not be loaded{hint}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _load_hf(spec: CheckpointSpec, options: "LoadOptions"):
    return _hflm(spec, pretrained=str(spec.location), **_hflm_kwargs(options))


def _load_hub(spec: CheckpointSpec, options: "LoadOptions"):
    kwargs = _hflm_kwargs(options)
    kwargs.setdefault("revision", spec.revision or "main")
    return _hflm(spec, pretrained=str(spec.location), **kwargs)


def _load_peft(spec: CheckpointSpec, options: "LoadOptions"):
    adapter = Path(spec.location)
    base = options.base or read_adapter_base(adapter)
    if not base:
        raise UsageError(
            f"adapter {adapter}: adapter_config.json names no base_model_name_or_path; "
            f"pass {arg('base', 'DIR_OR_ID')}.",
            param="base",
        )
    base_path = Path(base).expanduser()
    if base_path.is_dir():
        base = str(base_path)
    elif not _looks_like_hub_id(base):
        source = "the base option" if options.base else str(adapter / "adapter_config.json")
        raise UsageError(
            f"adapter {adapter}: base model {base!r} (from {source}) is neither a model directory "
            f"nor a hub id; pass {arg('base', 'DIR')}.",
            param="base",
        )
    kwargs = _hflm_kwargs(options)
    has_tokenizer = any((adapter / name).is_file() for name in TOKENIZER_FILES)
    kwargs.setdefault("tokenizer", str(adapter) if has_tokenizer else base)
    return _hflm(spec, pretrained=base, peft=str(adapter), **kwargs)


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not text.startswith((".", "/", "~"))


def weights_config_dir(spec: CheckpointSpec, options: "LoadOptions") -> Path:
    """The folder whose config.json and tokenizer a weights file is applied to (``--config`` or sibling)."""
    path = Path(spec.location)
    if options.config:
        folder = Path(options.config).expanduser()
        if not (folder / "config.json").is_file():
            raise UsageError(
                f"{arg('config', repr(options.config))}: no config.json there; pass the model dir whose "
                f"architecture and tokenizer {path.name} uses.",
                param="config",
            )
    else:
        folder = path.parent
        if not (folder / "config.json").is_file():
            raise UsageError(
                f"weights file {path}: no config.json beside it; pass {arg('config', 'DIR')} (a model dir with "
                f"config.json and tokenizer files).",
                param="config",
            )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UsageError(
            f"config dir {folder}: no tokenizer files (tokenizer.json, tokenizer_config.json, "
            f"tokenizer.model); add them or pass another {arg('config', 'DIR')}.",
            param="config",
        )
    return folder


def read_state_dict(path: Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """The tensors of a weights file, read without running code from it unless ``allow_pickle``."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
            raise UsageError(
                f"weights file {path} is not a readable safetensors file ({_first_line(exc)}); "
                f"re-save or re-download it."
            ) from None
    return _unwrap(_torch_load(path, allow_pickle), path)


def _torch_load(path: Path, allow_pickle: bool) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        if allow_pickle:
            raise UsageError(f"weights file {path} could not be unpickled ({_first_line(exc)}).") from None
        raise UsageError(
            f"weights file {path} holds objects beyond tensors and needs full unpickling, which can run "
            f"code from the file; if you trust it, pass {arg('allow_pickle', True)}.",
            param="allow_pickle",
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, AttributeError, ModuleNotFoundError) as exc:
        raise UsageError(
            f"weights file {path} could not be read ({_first_line(exc)}); is it a PyTorch checkpoint?"
        ) from None


def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    """The state dict inside a Lightning/trainer checkpoint (``state_dict``, ``model_state_dict``, ``module``)."""
    import torch

    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not tensors:
        raise UsageError(f"weights file {path} holds no tensors (expected a state dict, or a dict with 'state_dict').")
    return tensors


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _align_prefix(state: dict[str, Any], model_keys: set[str]) -> dict[str, Any]:
    """Strip (or add) the key prefix that makes ``state`` match ``model_keys`` best (e.g. Lightning's ``model.``)."""

    def renamed(strip: str, add: str) -> dict[str, Any]:
        return {add + (k[len(strip) :] if strip and k.startswith(strip) else k): v for k, v in state.items()}

    candidates = {("", "")}
    for key in list(state)[:1000]:
        parts = key.split(".")
        candidates |= {(".".join(parts[:n]) + ".", "") for n in range(1, min(3, len(parts)))}
    for key in list(model_keys)[:1000]:
        parts = key.split(".")
        candidates |= {("", ".".join(parts[:n]) + ".") for n in range(1, min(3, len(parts)))}
    best = max(sorted(candidates), key=lambda c: (len(renamed(*c).keys() & model_keys), c == ("", "")))
    return renamed(*best)


def fit_state_dict(model, state: dict[str, Any], *, weights: Path, config_dir: Path) -> dict[str, Any]:
    """Check ``state`` fits ``model`` (names and shapes); return it with its key prefix aligned."""
    expected = model.state_dict()
    state = _align_prefix(state, set(expected))
    ignore_missing = list(getattr(model, "_keys_to_ignore_on_load_missing", None) or [])
    ignore_unexpected = list(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if getattr(config, "tie_word_embeddings", False):
        ignore_missing.append(r"^lm_head\.weight$")  # tied to the input embeddings, often not saved
    missing = _unmatched(expected.keys() - state.keys(), ignore_missing)
    unexpected = _unmatched(state.keys() - expected.keys(), ignore_unexpected)
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in state.keys() & expected.keys()
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        parts = [
            f"{len(missing)} missing keys{_examples(missing)}",
            f"{len(unexpected)} unexpected{_examples(unexpected)}",
        ]
        if shapes:
            parts.append(f"{len(shapes)} with another shape{_examples(shapes, sep='; ')}")
        raise UsageError(
            f"weights file {weights} does not fit config {config_dir / 'config.json'}: "
            f"{', '.join(parts)}; pass {arg('config', 'DIR')} with the matching architecture.",
            param="config",
        )
    return {k: v for k, v in state.items() if k in expected}


def _unmatched(keys, ignore_patterns: list[str]) -> list[str]:
    import re

    return sorted(k for k in keys if not any(re.search(pattern, k) for pattern in ignore_patterns))


def _examples(items: list[str], sep: str = ", ") -> str:
    return f" (e.g. {sep.join(items[:_EXAMPLES])})" if items else ""


def _load_weights(spec: CheckpointSpec, options: "LoadOptions"):
    path = Path(spec.location)
    kwargs = _hflm_kwargs(options)  # validates options before the (possibly large) file is read
    config_dir = weights_config_dir(spec, options)
    state = read_state_dict(path, allow_pickle=options.allow_pickle)
    model, tokenizer = _model_from_config(config_dir, options)
    model.load_state_dict(fit_state_dict(model, state, weights=path, config_dir=config_dir), strict=False)
    model.tie_weights()
    model = model.to(device=kwargs.pop("device"), dtype=_weights_dtype(options.dtype, state)).eval()
    for applied in ("dtype", "trust_remote_code"):  # already applied to the instantiated model
        kwargs.pop(applied)
    return _hflm(spec, pretrained=model, tokenizer=tokenizer, **kwargs)


def _model_from_config(config_dir: Path, options: "LoadOptions"):
    """A randomly initialised causal LM of the config's architecture, and the config dir's tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    trust = options.trust_remote_code
    try:
        config = AutoConfig.from_pretrained(config_dir, trust_remote_code=trust)
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust)
        tokenizer = AutoTokenizer.from_pretrained(config_dir, trust_remote_code=trust)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"config dir {config_dir}: cannot build a causal LM from it ({_first_line(exc)}).") from None
    return model, tokenizer


def _weights_dtype(dtype: str | None, state: dict[str, Any]):
    """``--dtype``, or for auto/None the dtype the weights file was saved in (like ``from_pretrained``)."""
    import torch

    if dtype and dtype != "auto":
        return getattr(torch, dtype)
    floating = [tensor.dtype for tensor in state.values() if tensor.is_floating_point()]
    return floating[0] if floating else torch.float32
