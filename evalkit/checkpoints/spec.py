"""Parse a checkpoint spec ``[LABEL=]SPEC`` into a :class:`CheckpointSpec` (no heavy imports).

The kind is decided from the text and the file system only; nothing is loaded or downloaded here, so
bad specs fail in milliseconds, before any task or model work starts.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._validate import label as check_label
from .._validate import path_is_dir
from ..errors import UsageError

__all__ = [
    "CheckpointSpec",
    "parse_spec",
    "KINDS",
    "WEIGHT_SUFFIXES",
    "hf_dir_problems",
    "read_adapter_base",
    "server_label",
    "trainer_position",
    "split_spec_label",
]

KINDS = ("hf", "hub", "peft", "weights", "server", "predictions")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
EXPECTED = "expected a model dir, adapter dir, weights file, predictions .jsonl or http(s)://HOST/v1#MODEL"

_LABEL = re.compile(r"[A-Za-z0-9_.-]+")
_TRAINER_DIR = re.compile(r"checkpoint-(\d+)")  # what transformers.Trainer names its saves
_UNSAFE_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_LABEL_MAX_CHARS = 96
_PLUGIN_SPEC = re.compile(r"([a-z][a-z0-9_]*):(?!//)(.+)")  # NAME:LOCATION, not a URL's scheme://
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+(@[A-Za-z0-9_./-]+)?")
# Query parameters that may carry a secret; they are never shown in outputs.
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig", re.IGNORECASE)

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
    "vocab.txt",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)


@dataclass(frozen=True)
class CheckpointSpec:
    """A parsed checkpoint spec.

    ``label`` names the checkpoint in outputs; ``raw`` is the text as given; ``display`` is the spec as
    shown in outputs (for servers ``URL#MODEL`` with credentials stripped); ``kind`` is one of
    :data:`KINDS`; ``location`` is a :class:`~pathlib.Path` for local kinds, the server base URL
    (``.../v1``, may hold credentials: never print it) or the hub id; ``model`` is the served model
    name for servers; ``revision`` a hub revision (``org/name@rev``).
    """

    label: str
    raw: str
    display: str
    kind: str
    location: Path | str
    model: str | None = None
    note: str | None = None
    revision: str | None = None


def parse_spec(text: str, *, index: int = 0) -> CheckpointSpec:
    """Parse ``[LABEL=]SPEC``; raise :class:`~evalkit.errors.UsageError` for anything unusable.

    ``index`` is the spec's position on the command line; it names specs whose label would be empty.

    Examples
    --------
    >>> spec = parse_spec("ft=http://user:pw@localhost:8000/v1#my-model")
    >>> spec.label, spec.kind, spec.display
    ('ft', 'server', 'http://localhost:8000/v1#my-model')
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"checkpoint {index + 1}: empty spec; {EXPECTED}.")
    raw = text.strip()
    label, body = split_spec_label(raw)
    if not body:
        raise UsageError(f"checkpoint {raw!r}: nothing after '{label}='; {EXPECTED}.")
    plugin = _plugin_spec(raw, body)
    if plugin is not None:
        spec = plugin
    elif re.match(r"https?://", body, re.IGNORECASE):
        try:
            spec = _server_spec(raw, body)
        except ValueError as exc:  # urllib: "Invalid IPv6 URL", a port that is not a number, ...
            raise UsageError(
                f"checkpoint {index + 1}: not a valid URL ({exc}); use http://HOST:PORT/v1#MODEL."
            ) from None
    else:
        spec = _path_or_hub_spec(raw, body)
    final_label = check_label(label or spec.label or f"checkpoint{index + 1}", param="label")
    return CheckpointSpec(
        label=final_label,
        raw=raw,
        display=spec.display,
        kind=spec.kind,
        location=spec.location,
        model=spec.model,
        revision=spec.revision,
    )


def _plugin_spec(raw: str, body: str) -> CheckpointSpec | None:
    """``NAME:LOCATION`` for a checkpoint kind a plug-in registered as NAME (not an existing path)."""
    match = _PLUGIN_SPEC.fullmatch(body)
    if match is None or match.group(1) in KINDS or Path(body).expanduser().exists():
        return None
    from .registry import CHECKPOINT_KINDS

    if CHECKPOINT_KINDS.find(match.group(1)) is None:
        return None
    location = match.group(2)
    return CheckpointSpec(
        label=server_label(Path(location).name or location),
        raw=raw,
        display=body,
        kind=match.group(1),
        location=location,
    )


def split_spec_label(raw: str) -> tuple[str | None, str]:
    """Split off ``LABEL=`` unless the whole text is an existing path or the prefix is not a label."""
    from .._pairs import split_labelled

    label, rest = split_labelled(raw, _LABEL)
    return (label, rest.strip()) if label is not None else (None, raw)


def _server_spec(raw: str, body: str) -> CheckpointSpec:
    url, _, model = body.partition("#")
    parts = urlsplit(url)
    if not model.strip():
        raise UsageError(
            f"checkpoint {_public_url(parts)!r}: a server spec needs the model name after '#', "
            f"as in http://HOST:PORT/v1#MODEL (the name the server lists at /v1/models)."
        )
    if not parts.hostname:
        raise UsageError(f"checkpoint {_public_url(parts)!r}: no host in the URL; use http://HOST:PORT/v1#MODEL.")
    path = re.sub(r"/(chat/)?completions/?$", "", parts.path).rstrip("/") or "/v1"
    base = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    public = _public_url(parts._replace(path=path))
    model = model.strip()
    return CheckpointSpec(
        label=server_label(model), raw=raw, display=f"{public}#{model}", kind="server", location=base, model=model
    )


def server_label(model: str) -> str:
    """A label for a served model name that is safe as a file name: the default label of ``URL#MODEL``.

    Labels name output files (``results/LABEL.json``), and a served model name is free text: often
    ``org/name`` or a path on the server (``transformers serve /models/x``). Path components are joined
    with ``--``; any other character outside ``[A-Za-z0-9_.-]`` becomes ``_``; ``.`` and ``..``
    components are dropped and runs of dots shortened, so the label has no separator, no ``..``, is never
    absolute and never starts with a dot. Long names keep their end (the distinctive part) and a short
    hash of the whole name, so two long names stay apart. Pass ``LABEL=`` to choose another.

    Examples
    --------
    >>> server_label("meta-llama/Llama-3.1-8B-Instruct")
    'meta-llama--Llama-3.1-8B-Instruct'
    >>> server_label("../../x"), server_label("/abs/dir"), server_label("C:\\models\\m")
    ('x', 'abs--dir', 'C_--models--m')
    >>> server_label(".."), server_label("a..b"), server_label("my model:v1")
    ('server', 'a.b', 'my_model_v1')
    """
    import hashlib

    parts = [part for part in re.split(r"[/\\]+", model) if part.strip(". ")]
    label = "--".join(_UNSAFE_LABEL_CHARS.sub("_", part.strip()) for part in parts)
    label = re.sub(r"\.{2,}", ".", label).lstrip(".-") or "server"
    if len(label) > _LABEL_MAX_CHARS:
        digest = hashlib.sha256(model.encode("utf-8")).hexdigest()[:8]
        label = label[-(_LABEL_MAX_CHARS - 10) :].lstrip(".-") + "--" + digest
    return label


def _public_url(parts) -> str:
    """The URL without user:password@ and without query parameters that look like secrets."""
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, v) for k, v in pairs if not _SECRET_PARAM.search(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _path_or_hub_spec(raw: str, body: str) -> CheckpointSpec:
    path = Path(body).expanduser()
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError) as exc:  # a name longer than the filesystem allows, a NUL byte
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"checkpoint {body[:80]!r}: not a usable path ({reason}); {EXPECTED}.") from None
    if is_dir:
        return _dir_spec(raw, body, path)
    if is_file:
        return _file_spec(raw, body, path)
    # "org/name" is a hub id unless "org" is a local folder: then it is a mistyped local path.
    if _HUB_ID.fullmatch(body) and not body.startswith((".", "/", "~")) and not path_is_dir(path.parent):
        repo, _, revision = body.partition("@")
        return CheckpointSpec(
            label=repo.rsplit("/", 1)[-1], raw=raw, display=body, kind="hub", location=repo, revision=revision or None
        )
    raise UsageError(f"checkpoint {body!r}: no such file or directory; {EXPECTED}.{_similar_paths(body, path)}")


def _similar_paths(body: str, path: Path) -> str:
    """ " Did you mean 'models/base'?" from the entries of the folder a misspelt path points into.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "base").mkdir()
    >>> _similar_paths(str(root / "bsae"), root / "bsae") == f" Did you mean {str(root / 'base')!r}?"
    True
    >>> _similar_paths(str(root / "zzzzzz"), root / "zzzzzz")
    ''
    """
    import difflib

    try:
        siblings = sorted(entry.name for entry in path.parent.iterdir())[:10_000]
    except (
        OSError,
        ValueError,
    ):  # no such folder either, unreadable, or no path (a lone surrogate): nothing to suggest
        return ""
    close = difflib.get_close_matches(path.name, siblings, n=3, cutoff=0.6)
    if not close:
        return ""
    head = body[: len(body) - len(path.name)] if body.endswith(path.name) else str(path.parent) + "/"
    return " Did you mean " + ", ".join(repr(head + name) for name in close) + "?"


def _named_path(path: Path) -> Path:
    """``path`` made absolute as the user named it: ``.``/``..`` removed, symlinks kept (a symlinked
    ``run/checkpoint-200`` is named after ``run``, not after its target's folder; fingerprints still
    read the target)."""
    return Path(os.path.abspath(path))


def _dir_spec(raw: str, body: str, path: Path) -> CheckpointSpec:
    label = _named_path(path).name
    if (path / "adapter_config.json").is_file():
        read_adapter_base(path)  # fail now on a broken adapter_config.json
        return CheckpointSpec(label=label, raw=raw, display=body, kind="peft", location=path)
    if (path / "config.json").is_file():
        problems = hf_dir_problems(path)
        if problems:
            raise UsageError(f"checkpoint {body!r}: model directory has config.json but {' and '.join(problems)}.")
        return CheckpointSpec(label=label, raw=raw, display=body, kind="hf", location=path)
    raise UsageError(
        f"checkpoint {body!r}: directory has neither config.json (a model) nor adapter_config.json "
        f"(a PEFT adapter); {EXPECTED}."
    )


def _file_spec(raw: str, body: str, path: Path) -> CheckpointSpec:
    suffix = path.suffix.lower()
    if suffix in WEIGHT_SUFFIXES:
        kind = "weights"
    elif suffix == ".jsonl":
        kind = "predictions"
    else:
        raise UsageError(
            f"checkpoint {body!r}: unsupported file type {suffix or '(none)'!r}; "
            f"weights files end in {', '.join(WEIGHT_SUFFIXES)} and predictions files in .jsonl."
        )
    return CheckpointSpec(label=path.stem, raw=raw, display=body, kind=kind, location=path)


def hf_dir_problems(path: Path) -> list[str]:
    """What a Hugging Face model directory lacks: weights and/or a tokenizer (empty list when complete)."""
    problems = []
    weights = [p for pattern in ("*.safetensors", "pytorch_model*.bin", "*.index.json") for p in path.glob(pattern)]
    if not weights:
        problems.append("no weights (*.safetensors, pytorch_model*.bin or an index .json)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        problems.append("no tokenizer (tokenizer.json, tokenizer_config.json, tokenizer.model or vocab.json)")
    return problems


def read_adapter_base(path: Path) -> str | None:
    """``base_model_name_or_path`` from a PEFT adapter's ``adapter_config.json`` (None when absent)."""
    config_path = Path(path) / "adapter_config.json"
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{config_path}: not a readable adapter config ({exc}); re-save the adapter.") from None
    if not isinstance(data, dict):
        raise UsageError(f"{config_path}: expected a JSON object; re-save the adapter.")
    base = data.get("base_model_name_or_path")
    return str(base) if base else None


def trainer_position(spec: CheckpointSpec) -> tuple[str, int] | None:
    """``(run, step)`` for a Trainer save folder ``RUN/checkpoint-STEP`` (model or adapter), else None.

    Examples
    --------
    >>> from pathlib import Path
    >>> trainer_position(CheckpointSpec("c", "runs/mix25/checkpoint-500", "runs/mix25/checkpoint-500", "hf",
    ...                                 Path("runs/mix25/checkpoint-500")))
    ('mix25', 500)
    """
    if spec.kind not in ("hf", "peft"):
        return None
    path = _named_path(Path(spec.location))
    match = _TRAINER_DIR.fullmatch(path.name)
    if not match:
        return None
    return _named_path(path).parent.name, int(match.group(1))
