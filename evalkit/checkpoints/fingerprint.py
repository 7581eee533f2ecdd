"""Content fingerprints of checkpoints: same bytes -> same fingerprint, any changed byte -> a new one.

A fingerprint is a sha256 over the sorted relative names and content hashes of the files that decide
the model's outputs (weights, config, tokenizer). File hashes are memoised in a small SQLite cache
keyed by (resolved path, size, mtime_ns, inode, ctime_ns), so a 15 GB checkpoint is hashed once, not on
every run, and a file rewritten in place with the same size and mtime is still hashed again. The cache
lives in the user cache dir (``EVALKIT_CACHE_DIR`` overrides it); it is disposable (see :class:`_HashCache`).
One ``_fp_KIND`` function per checkpoint kind; :func:`evalkit.checkpoints.kinds.fingerprint` picks it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from .._io import cache_dir, hash_file
from ..errors import EvalkitError, UsageError
from ..errors import warn as _warn
from .spec import TOKENIZER_FILES, CheckpointSpec, read_adapter_base

__all__ = ["file_sha256", "hash_file", "cache_dir", "model_files"]

_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.index.json")
_CONFIG_FILES = ("config.json", "generation_config.json") + TOKENIZER_FILES
_ADAPTER_PATTERNS = ("adapter_config.json", "adapter_model*.safetensors", "adapter_model*.bin")
# Fields of a /v1/models entry that change between calls (vLLM stamps `created` with the request time).
_VOLATILE_MODEL_FIELDS = ("created", "status", "permission")


def file_sha256(path: Path) -> str:
    """sha256 of ``path``, memoised so big weights are hashed once (see :class:`_HashCache` for the key)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
    digest = _HashCache.lookup(key)
    if digest is None:
        digest = hash_file(resolved)
        _HashCache.store(key, digest)
    return digest


class _HashCache:
    """The file-hash cache: ``file-hashes-v2.sqlite`` in the cache folder, disposable.

    The key is (resolved path, size, mtime_ns, inode, ctime_ns). Size and mtime alone miss a file
    rewritten in place with the same size and a restored mtime (``touch -r``, ``rsync -t``, a copy
    tool preserving times); a rewrite always moves ctime (which no user call can set back) and a
    replace-by-rename changes the inode, so either is seen and the file is hashed again.

    The cache only saves time: a corrupt or unwritable cache file is deleted and recreated with a
    one-line warning, and if that fails too, files are hashed without a cache. It never fails a run.
    """

    FILE = "file-hashes-v2.sqlite"
    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT, size INTEGER, mtime_ns INTEGER, inode INTEGER, "
        "ctime_ns INTEGER, sha256 TEXT NOT NULL, PRIMARY KEY (path, size, mtime_ns, inode, ctime_ns))"
    )
    _disabled = False

    @classmethod
    def lookup(cls, key: tuple) -> str | None:
        row = cls._run(
            "SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=? AND inode=? AND ctime_ns=?", key
        )
        return row[0] if row else None

    @classmethod
    def store(cls, key: tuple, digest: str) -> None:
        cls._run("DELETE FROM file_hashes WHERE path=?", key[:1])  # the old versions of the file are dead keys
        cls._run("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?)", (*key, digest))

    @classmethod
    def _run(cls, sql: str, params: tuple):
        if cls._disabled:
            return None
        for attempt in (1, 2):
            try:
                return cls._execute(sql, params)
            except (sqlite3.DatabaseError, OSError, EvalkitError) as exc:
                if attempt == 2 or not cls._recreate(exc):
                    cls._disabled = True
                    _warn(f"file-hash cache unusable ({exc}); hashing without a cache in this run.")
                    return None
        return None

    @classmethod
    def _execute(cls, sql: str, params: tuple):
        conn = sqlite3.connect(cls.path(), timeout=30)
        try:
            conn.execute(cls._SCHEMA)
            row = conn.execute(sql, params).fetchone()
            conn.commit()
            return row
        finally:
            conn.close()

    @classmethod
    def path(cls) -> Path:
        return cache_dir() / cls.FILE

    @classmethod
    def _recreate(cls, exc: Exception) -> bool:
        """Delete a broken cache file (it is disposable); True if there was one to delete."""
        try:
            path = cls.path()
        except EvalkitError:
            return False
        if not path.exists():
            return False
        _warn(f"{path}: file-hash cache is broken ({exc}); recreating it.")
        for name in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
            path.with_name(path.name + "-journal"),
        ):
            try:
                name.unlink(missing_ok=True)
            except OSError:
                return False
        return True


def model_files(folder: Path, *, weights: bool = True) -> list[Path]:
    """The files of a model directory that decide its outputs, sorted by name."""
    names = {folder / name for name in _CONFIG_FILES if (folder / name).is_file()}
    if weights:
        names |= {p for pattern in _WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(names)


def _digest(kind: str, entries: list[tuple[str, str]]) -> str:
    """Combine (name, content-hash-or-value) pairs, in sorted order, into one hex digest."""
    digest = hashlib.sha256(f"evalkit-fingerprint-v1\0{kind}\0".encode())
    for name, value in sorted(entries):
        digest.update(f"{name}\0{value}\n".encode())
    return digest.hexdigest()


def _files_entries(files: list[Path], root: Path, prefix: str = "") -> list[tuple[str, str]]:
    return [(prefix + path.relative_to(root).as_posix(), file_sha256(path)) for path in files]


def _fp_hf(spec: CheckpointSpec, options) -> str:
    folder = Path(spec.location)
    return _digest("hf", _files_entries(model_files(folder), folder))


def _fp_hub(spec: CheckpointSpec, options) -> str:
    return _digest("hub", [("id", str(spec.location)), ("revision", spec.revision or "main")])


def _fp_peft(spec: CheckpointSpec, options) -> str:
    folder = Path(spec.location)
    adapter = sorted({p for pattern in _ADAPTER_PATTERNS for p in folder.glob(pattern) if p.is_file()})
    adapter += [p for p in model_files(folder, weights=False) if p not in adapter]
    entries = _files_entries(adapter, folder, "adapter/")
    base = options.base or read_adapter_base(folder)
    if base and Path(base).expanduser().is_dir():
        base_dir = Path(base).expanduser()
        entries.append(("base", _digest("hf", _files_entries(model_files(base_dir), base_dir))))
    else:
        entries.append(("base-id", str(base)))
    return _digest("peft", entries)


def _fp_weights(spec: CheckpointSpec, options) -> str:
    from .loaders import weights_config_dir

    path = Path(spec.location)
    config_dir = weights_config_dir(spec, options)
    entries = [("weights/" + path.name, file_sha256(path))]
    entries += _files_entries(model_files(config_dir, weights=False), config_dir, "config/")
    return _digest("weights", entries)


def _fp_server(spec: CheckpointSpec, options) -> str:
    from .server import model_entry

    entry = {k: v for k, v in model_entry(spec, options).items() if k not in _VOLATILE_MODEL_FIELDS}
    url = spec.display.partition("#")[0]
    return _digest("server", [("url", url), ("model", spec.model or ""), ("entry", json.dumps(entry, sort_keys=True))])


def _fp_predictions(spec: CheckpointSpec, options) -> str:
    path = Path(spec.location)
    try:
        return _digest("predictions", [("file", file_sha256(path))])
    except OSError as exc:
        raise UsageError(f"predictions file {path}: cannot be read ({exc.strerror or exc}).") from None
