"""The file boundary: every read of a user file and every write of an output goes through here.

- Writes: :class:`OutputFolder` is the one write guard (plain names only, nothing outside its folder,
  locations checked before the work, a manifest written last), over :func:`atomic_write_bytes`
  (nothing half-written). :func:`safe_file_name` turns a name from data (a checkpoint label) into a
  file name that cannot leave its folder.
- The one JSON writer (:func:`dump_json`: deterministic, lossless for any Python string) and reader
  (:func:`read_json_object` / :func:`loads_json`: bad input is a one-line UsageError).
- The one YAML loader (:func:`load_yaml` / :func:`parse_yaml`): safe, duplicate keys refused naming
  both lines, alias bombs and deep nesting refused.
- Stable hashing of objects, files and folders; evalkit's cache folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_text",
    "atomic_write_bytes",
    "stable_hash",
    "dump_json",
    "read_json_object",
    "cache_dir",
    "hash_file",
    "hash_tree",
    "escape_surrogates",
    "loads_json",
    "read_text",
    "load_yaml",
    "parse_yaml",
    "safe_file_name",
    "OutputFolder",
    "MANIFEST_NAME",
]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8; characters UTF-8 cannot hold (lone surrogates from untrusted text) are
    written as visible ``\\udXXX`` escapes instead of failing the write."""
    atomic_write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


_SURROGATE = re.compile("[\ud800-\udfff]")


def dump_json(obj: Any, *, allow_nan: bool = True) -> str:
    """The one JSON writer: sorted keys, indented, non-ASCII kept readable.

    Lone surrogates (a model output or file cut in the middle of a character) cannot be encoded as
    UTF-8; they are written as JSON ``\\udXXX`` escapes, which read back to the same string, so
    untrusted text is stored losslessly and never makes a write fail. ``allow_nan=False`` refuses NaN
    and infinity (files whose schema says ``null``).
    """
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str, allow_nan=allow_nan)
    # Surrogates only occur inside JSON strings, where "\\udXXX" is exactly their escape.
    return escape_surrogates(text) + "\n"


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as ``\\udXXX``: how files, charts and terminals show
    text that UTF-8 cannot hold (a model output or label cut in the middle of a character).

    >>> escape_surrogates("caf\\udce9 ok")
    'caf\\\\udce9 ok'
    """
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def hash_file(path: str | Path, *, chunk: int = 8 * 1024 * 1024) -> str:
    """sha256 of a file's bytes, read in chunks (weights and data files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(path: str | Path, length: int = 16) -> str:
    """Content hash of a file, or of every file below a folder together with its relative name."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    root = path.parent if path.is_file() else path
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(hash_file(file)))
    return digest.hexdigest()[:length]


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable object that does not depend on dict order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def read_text(path: str | Path, *, what: str = "file", hint: str = "") -> str:
    """The UTF-8 text of a user file; missing, unreadable or binary files are a one-line UsageError."""
    from .errors import UsageError

    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():  # /dev/zero, a FIFO: would never end
        raise UsageError(f"{path}: not a regular file; give the path of a {what}.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found{hint}.") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, expected a {what}.") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); is it a {what}?") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what} ({exc.strerror or exc}).") from None


def loads_json(text: str, *, source: str) -> Any:
    """Parse JSON text from ``source``; invalid, too deeply nested or oversized numbers are a UsageError."""
    from .errors import UsageError

    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float)
    except _OutOfRange as exc:
        raise UsageError(f"{source}: the number {exc} is outside the range of a float; is the file damaged?") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    except RecursionError:
        raise UsageError(f"{source}: JSON nested too deeply to be an evalkit file.") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise UsageError(f"{source}: not valid JSON ({exc}).") from None


class _OutOfRange(ValueError):
    """A JSON number no float holds (``1e400``, a 401-digit integer): it would become ``inf`` or fail in
    numpy, matplotlib or a statistic far from the file that held it."""


_FLOAT_MAX = sys.float_info.max


def _json_int(text: str) -> int:
    value = int(text)
    if abs(value) > _FLOAT_MAX:
        raise _OutOfRange(f"{text[:12]}… ({len(text.lstrip('-'))} digits)")
    return value


def _json_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # NaN/Infinity are spelled as words and parsed elsewhere; this is overflow
        raise _OutOfRange(text[:40])
    return value


def read_json_object(path: str | Path, *, what: str = "file", hint: str = "") -> dict[str, Any]:
    """A JSON object from ``path``; a missing file or bad JSON is a one-line UsageError.

    ``what`` names the file in the message ("comparison file"); ``hint`` says where one comes from.
    """
    from .errors import UsageError

    path = Path(path)
    data = loads_json(read_text(path, what=what, hint=hint), source=str(path))
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object, found {type(data).__name__}.")
    return data


# ----------------------------------------------------------------------------------------- YAML

#: Most nodes a YAML file may expand to once aliases are followed (a "billion laughs" file is tiny on
#: disk and astronomically large in memory).
MAX_YAML_NODES = 1_000_000


def load_yaml(path: str | Path, *, what: str = "YAML file") -> Any:
    """The one YAML loader for files evalkit reads (task files, policies, taxonomies)."""
    return parse_yaml(read_text(path, what=what), source=str(path))


def parse_yaml(text: str, *, source: str) -> Any:
    r"""Safe-load YAML ``text``; duplicate keys, syntax errors and alias bombs are a UsageError naming ``source``.

    PyYAML keeps the last of two equal keys silently, so ``max_drop: 0.02`` followed by
    ``max_drop: 0.5`` would loosen a gate without a word; here it is an error naming both lines.

    Examples
    --------
    >>> parse_yaml("a: 1\nb: [x, y]", source="f.yaml")
    {'a': 1, 'b': ['x', 'y']}
    >>> parse_yaml("a: 1\na: 2", source="f.yaml")
    Traceback (most recent call last):
    ...
    evalkit.errors.UsageError: f.yaml line 2: duplicate key 'a' (first on line 1); remove one of them.
    """
    import yaml

    from .errors import UsageError

    try:
        data = yaml.load(text, Loader=_strict_loader(source))  # noqa: S506 - a SafeLoader subclass
    except UsageError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        column = f"column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise UsageError(f"{source}:{where} is not valid YAML ({column}{problem}).") from None
    except RecursionError:
        raise UsageError(f"{source}: YAML nested too deeply.") from None
    if _node_count(data, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise UsageError(
            f"{source}: YAML expands to more than {MAX_YAML_NODES:,} values through aliases; "
            f"write the values out instead of nesting aliases."
        )
    return data


def _strict_loader(source: str) -> type:
    import yaml

    from .errors import UsageError

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise UsageError(
                    f"{source} line {line}: duplicate key {key!r} (first on line {first}); remove one of them."
                )
            seen[key] = line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def _node_count(data: Any, limit: int) -> int:
    """Number of values in ``data`` with aliases expanded (stops counting past ``limit``; cycles count as over)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in active:  # a recursive alias
            return limit + 1
        active.add(key)
        children = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        active.discard(key)
        sizes[key] = total
        return total

    try:
        return size(data)
    except RecursionError:
        return limit + 1


# ------------------------------------------------------------------------------- the write guard

MANIFEST_NAME = "manifest.json"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def safe_file_name(name: str, suffix: str = "") -> str:
    """A file name for ``name`` (from data: a checkpoint label, a task name) that stays in its folder.

    Names of letters, digits, ``.``, ``_`` and ``-`` (not starting with a dot or dash, at most 100
    characters) are kept; anything else (``/``, ``..``, spaces, control characters, reserved device
    names) is replaced by ``_`` and a short hash of the original name is appended, so two distinct
    names never share a file.

    Examples
    --------
    >>> safe_file_name("tuned-v2", ".json")
    'tuned-v2.json'
    >>> safe_file_name("../../tmp/x", ".json")
    'tmp_x-9d7abeb1.json'
    """
    text = str(name)
    if _PLAIN_NAME.fullmatch(text) and text.split(".")[0].upper() not in _WINDOWS_RESERVED:
        return text + suffix
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:80] or "item"
    return f"{cleaned}-{stable_hash(text, length=8)}{suffix}"


def _check_part(part: str, root: Path) -> str:
    from .errors import UsageError

    if (
        not isinstance(part, str)
        or part in ("", ".", "..")
        or "/" in part
        or "\\" in part
        or any(ord(c) < 32 for c in part)
        or os.path.isabs(part)
    ):
        raise UsageError(
            f"refusing to write {part!r} into {root}: not a plain file name "
            f"(a name from data or a label must not leave its folder)."
        )
    return part


#: Attempts of the output probe when sibling runs create and remove the same new parent folder at once.
_PROBE_TRIES = 8


class OutputFolder:
    """The one write guard: every output file evalkit writes goes through an OutputFolder.

    - :meth:`path` accepts plain names only (no ``/``, ``..``, absolute paths) and checks that the
      resolved file lies inside the folder (a symlinked sub-folder pointing elsewhere is refused), so
      no name from data, labels or outputs can leave it; use :func:`safe_file_name` for names from data.
    - :meth:`check` validates the location before any slow work: the folder can be created and
      written, and no output name is taken by a folder.
    - As a context manager it is one batch of outputs: entering removes ``manifest.json``, leaving
      without an error writes it last, listing every file of the folder's outputs with its sha256.
      A folder without a manifest (or with files the manifest does not list) is incomplete: the
      run was interrupted while writing.

    Errors are :class:`~evalkit.errors.UsageError` naming the location (exit code 2).
    """

    def __init__(self, root: str | os.PathLike[str], *, option: str = "output folder"):  # the CLI passes "--out"
        self.root = Path(root)
        self.option = option
        self._written: list[tuple[str, ...]] = []
        self._previous: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.root)!r})"

    @classmethod
    def of_file(cls, path: str | Path) -> tuple["OutputFolder", str]:
        """The folder and name of an output file the caller named (an API user's own path)."""
        path = Path(path)
        return cls(path.parent, option="output file"), path.name

    def path(self, *parts: str) -> Path:
        """``root/part/...`` for plain names; raise UsageError if it would leave the folder."""
        from .errors import UsageError

        target = self.root.joinpath(*(_check_part(p, self.root) for p in parts))
        root = self.root.resolve()
        if not target.parent.resolve().is_relative_to(root):
            raise UsageError(
                f"refusing to write {target}: it resolves outside {self.option} {self.root} "
                f"(a symbolic link?); remove the link or choose another folder."
            )
        return target

    def write_text(self, *parts: str, text: str) -> Path:
        return self.write_bytes(*parts, data=text.encode("utf-8", errors="backslashreplace"))

    def write_bytes(self, *parts: str, data: bytes) -> Path:
        """Write one output file atomically; an OS refusal is a UsageError naming the file."""
        from .errors import UsageError, redact_secrets

        path = self.path(*parts)
        try:
            atomic_write_bytes(path, redact_secrets(data))
        except OSError as exc:
            raise UsageError(
                f"{path}: cannot write this output ({exc.strerror or exc}); check {self.option} {self.root}."
            ) from None
        self._written.append(tuple(parts))
        return path

    # -------------------------------------------------------------- checking before the work
    def check(self, *names: str | tuple[str, ...]) -> "OutputFolder":
        """Fail now, before any evaluation, if the outputs ``names`` could not be written later.

        ``names`` are file names or tuples of names (``("results", "base.json")``).
        """
        from .errors import UsageError

        where = f"{self.option} {self.root}"
        self._check_root()
        for name in names:
            parts = (name,) if isinstance(name, str) else tuple(name)
            path = self.path(*parts)
            for folder in [self.root.joinpath(*parts[:k]) for k in range(1, len(parts))]:
                if folder.exists() and not folder.is_dir():
                    raise UsageError(
                        f"{where}: {folder} is a file, but outputs go into a folder of that name; move it away."
                    )
            if path.is_dir():
                raise UsageError(f"{where}: {path} is a folder, but evalkit writes a file there; move it away.")
        self._probe(where)
        return self

    def _probe(self, where: str) -> None:
        """Create the folder (and any missing parents) and a temporary file in it, then remove what was created.

        Safe when sibling runs probe under the same new parent at once: a parent another run created is
        not ours to remove, and one that run removes between our mkdirs is made again (a few tries).
        """
        from .errors import UsageError

        for attempt in range(_PROBE_TRIES):
            created: list[Path] = []
            try:
                created = self._make_folders()
                fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".evalkit-probe-")
                os.close(fd)
                os.unlink(tmp)
                return
            except FileNotFoundError as exc:  # a sibling's probe removed a parent we had just seen
                if attempt + 1 == _PROBE_TRIES:
                    raise UsageError(
                        f"{where}: cannot write there ({exc.strerror or exc}); choose a writable folder."
                    ) from None
            except OSError as exc:
                raise UsageError(
                    f"{where}: cannot write there ({exc.strerror or exc}); choose a writable folder."
                ) from None
            finally:
                for folder in reversed(created):
                    try:
                        folder.rmdir()  # fails, as it should, once a sibling run put its own folder inside
                    except OSError:
                        pass

    def _make_folders(self) -> list[Path]:
        """Make the root and its missing parents; the ones this call made, outermost first."""
        created = []
        for folder in reversed([self.root, *self.root.parents]):
            if folder.is_dir():
                continue
            try:
                folder.mkdir()
            except FileExistsError:  # a sibling run made it a moment ago
                continue
            created.append(folder)
        return created

    # -------------------------------------------------------------- the manifest
    def _check_root(self) -> None:
        from .errors import UsageError

        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{self.option} {self.root}: exists and is not a folder; choose a folder path.")

    def __enter__(self) -> "OutputFolder":
        self._check_root()  # also when the batch was not checked beforehand (an API caller's write())
        manifest = self.root / MANIFEST_NAME
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8"))
            self._previous = {k: v for k, v in previous.get("files", {}).items() if isinstance(v, str)}
        except (OSError, ValueError, AttributeError):
            self._previous = {}
        if not manifest.is_dir():
            manifest.unlink(missing_ok=True)
        self._written = []
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.write_manifest()

    def write_manifest(self) -> Path:
        """Write ``manifest.json`` listing the outputs (this batch's and earlier batches' still present)."""
        files = {}
        names = [tuple(k.split("/")) for k in self._previous] + self._written
        for parts in names:
            path = self.root.joinpath(*parts)
            if path.is_file() and parts != (MANIFEST_NAME,):
                files["/".join(parts)] = hash_file(path)
        manifest = {
            "kind": "evalkit.outputs",
            "complete": True,
            "files": dict(sorted(files.items())),
            "note": "Written last: a folder without this file, or with outputs it does not list, "
            "was interrupted while writing.",
        }
        return self.write_text(MANIFEST_NAME, text=dump_json(manifest))


def cache_dir() -> Path:
    """evalkit's cache folder: ``$EVALKIT_CACHE_DIR`` or the platform's user cache dir, created on demand."""
    env = os.environ.get("EVALKIT_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("evalkit"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from .errors import UsageError

        raise UsageError(
            f"{path}: cannot create evalkit's cache folder ({exc.strerror or exc}); "
            f"set EVALKIT_CACHE_DIR to a writable folder."
        ) from None
    return path
