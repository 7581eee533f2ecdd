"""Task configuration files: YAML in ``evalkit/tasks/`` (or any path) -> validated :class:`TaskConfig`.

A task file names its evaluator and that evaluator's options::

    name: mmlu                 # how the task is called in results, comparisons and gates
    evaluator: lm_eval         # a registered evaluator (see ``evalkit tasks``)
    description: MMLU, 57 subjects, log-likelihood of A-D
    lm_eval_task: mmlu         # ... evaluator-specific keys, validated by the evaluator

``--tasks`` accepts shipped task names (``mmlu``), paths to YAML files, or any lm-eval task or group
name (``hellaswag``), which runs through the ``lm_eval`` evaluator with its defaults. ``--set
TASK.KEY=VALUE`` overrides one key of one task from the command line.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._paths import shipped_tasks_dir
from .errors import UsageError, arg

__all__ = [
    "TaskConfig",
    "shipped_tasks_dir",
    "shipped_task_names",
    "load_task_file",
    "resolve_tasks",
    "parse_overrides",
    "validate_options",
    "check_choice",
]

_COMMON_KEYS = ("name", "evaluator", "description", "cluster_field")


@dataclass
class TaskConfig:
    """A task as the user configured it; ``options`` are the evaluator's own keys, not yet validated."""

    name: str
    evaluator: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: A record field whose equal values make samples dependent (docs/statistics.md); recorded in the
    #: task result's settings, it makes the comparison's intervals and tests cluster-robust.
    cluster_field: str | None = None
    source: str = "<command line>"
    base_dir: Path = field(default_factory=Path.cwd)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the task file: under the data root for ``$EVALKIT_DATA/...``
        (:func:`evalkit._paths.data_root`), else relative to the file's folder unless absolute."""
        text = str(value)
        for prefix in ("${EVALKIT_DATA}", "$EVALKIT_DATA"):
            if text.startswith(prefix + "/") or text.startswith(prefix + "\\"):
                return self._data_root(text) / text[len(prefix) + 1 :]
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def _data_root(self, value: str) -> Path:
        from ._paths import data_root

        root = data_root()
        if root is None:
            raise UsageError(
                f"{self.source}: {value} is under the data root, which is not set here; set "
                f"EVALKIT_DATA=DIR (the folder holding {value.split('/', 1)[1]}) or point the task "
                f"at its file with {arg('overrides', repr(self.name + '.data=PATH'))} (or another path key)."
            )
        return root


def shipped_task_names() -> list[str]:
    folder = shipped_tasks_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_task_file(path: str | Path) -> TaskConfig:
    """Read and check the common keys of one task YAML file."""
    from ._io import load_yaml

    path = Path(path)
    data = load_yaml(path, what="task file")
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a task file must be a YAML mapping with at least 'name' and 'evaluator'.")
    for key in ("name", "evaluator"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise UsageError(f"{path}: key '{key}' is required and must be a non-empty string.")
    if "." in data["name"]:
        raise UsageError(
            f"{path}: key 'name' must not contain '.', got {data['name']!r} (metrics are named TASK.METRIC)."
        )
    options = {k: v for k, v in data.items() if k not in _COMMON_KEYS}
    cluster_field = data.get("cluster_field")
    if cluster_field is not None:
        from .records import check_field

        try:
            check_field(cluster_field, "key 'cluster_field'")
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
    return TaskConfig(
        cluster_field=cluster_field,
        name=data["name"],
        evaluator=data["evaluator"],
        options=options,
        description=str(data.get("description", "")),
        source=str(path),
        base_dir=path.resolve().parent,
    )


def _looks_like_path(item: str) -> bool:
    return item.endswith((".yaml", ".yml")) or "/" in item or "\\" in item


def resolve_tasks(
    items: list[str | TaskConfig] | str, overrides: dict[str, dict[str, Any]] | None = None
) -> list[TaskConfig]:
    """Turn task items (names, paths or TaskConfig objects, copied) into task configs, applying overrides."""
    if isinstance(items, str):
        items = [part.strip() for part in items.split(",") if part.strip()]
    if not items:
        raise UsageError("give at least one task name or task file (see `evalkit tasks`).", param="tasks")
    configs = [_resolve_one(item) for item in items]
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(
            f"task name(s) {', '.join(duplicates)} given twice; each task runs once per checkpoint.", param="tasks"
        )
    for task_name, values in (overrides or {}).items():
        matching = [c for c in configs if c.name == task_name]
        if not matching:
            raise UsageError(
                f"an override names no task named {task_name!r} among the tasks ({', '.join(names)}).",
                param="overrides",
            )
        matching[0].options.update(_paths_from_here(values))
    return configs


#: Task options that name files or folders: given as overrides, a relative one is relative to the current
#: folder (where the user typed it), not to the task file's folder (inside the installed package).
PATH_KEYS = ("data", "train_data", "taxonomy", "lm_eval_config")


def _paths_from_here(values: dict[str, Any]) -> dict[str, Any]:
    """Override values with relative paths made absolute from the current folder; ``$EVALKIT_DATA/...`` kept."""
    return {
        key: str(Path(value).expanduser().absolute())
        if key in PATH_KEYS and isinstance(value, str) and value and not value.startswith("$")
        else value
        for key, value in values.items()
    }


def _resolve_one(item: str | TaskConfig) -> TaskConfig:
    if isinstance(item, TaskConfig):  # a copy: overrides must not change the caller's object
        return dataclasses.replace(item, options=dict(item.options))
    if _looks_like_path(item) or Path(item).is_file():
        return load_task_file(item)
    shipped = shipped_tasks_dir() / f"{item}.yaml"
    if shipped.is_file():
        return load_task_file(shipped)
    # Anything else is taken as an lm-eval task or group name; a misspelt one fails here in about a second
    # (the lm_eval evaluator checks the rest when it loads the task).
    from .lm_eval_tasks import check_task_name

    check_task_name(item, shipped_task_names())
    return TaskConfig(name=item, evaluator="lm_eval", options={"lm_eval_task": item}, source=f"lm-eval task {item!r}")


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``["mmlu.num_fewshot=5"]`` -> ``{"mmlu": {"num_fewshot": 5}}`` (values parsed as YAML scalars)."""
    from ._io import parse_yaml

    from ._pairs import parse_pairs

    result: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        ((key, raw),) = parse_pairs([pair], param="overrides", form="TASK.KEY=VALUE (e.g. mmlu.num_fewshot=5)").items()
        task, dot, option = key.partition(".")
        if not dot or not task or not option:
            raise UsageError(f"expected TASK.KEY=VALUE (e.g. mmlu.num_fewshot=5), got {pair!r}.", param="overrides")
        try:
            value = parse_yaml(raw, source=f"--set {key}") if raw.strip() else None
        except UsageError:  # not YAML: the text as given
            value = raw
        result.setdefault(task, {})[option] = value
    return result


# ----------------------------------------------------------------------------- option validation


def validate_options(options: dict[str, Any], schema: type, config: TaskConfig) -> Any:
    """Build the evaluator's options dataclass ``schema`` from ``options``, with clear errors.

    Unknown keys, missing required keys and values of the wrong type raise :class:`UsageError`
    naming the task file, the key, what is allowed and what was given.
    """
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(set(fields) | set(_COMMON_KEYS)))
        raise UsageError(f"{config.source}: unknown key {unknown[0]!r}; allowed keys: {allowed}.")
    hints = typing.get_type_hints(schema)
    values = {}
    for name, f in fields.items():
        if name not in options:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UsageError(f"{config.source}: key {name!r} is required.")
            continue
        values[name] = _check_type(options[name], hints[name], name, config)
    return schema(**values)


def _check_type(value: Any, hint: Any, key: str, config: TaskConfig) -> Any:
    allowed = _allowed_types(hint)
    if allowed is None or value is None and type(None) in allowed:
        return value
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    else:
        ok = isinstance(value, tuple(t for t in allowed if isinstance(t, type)))
    if not ok:
        names = " or ".join(sorted({_type_name(t) for t in allowed}))
        raise UsageError(f"{config.source}: key {key!r} must be {names}, got {value!r}.")
    return value


def _allowed_types(hint: Any) -> tuple | None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: list = []
        for arg in typing.get_args(hint):
            sub = _allowed_types(arg)
            if sub is None:
                return None
            out.extend(sub)
        return tuple(out)
    if origin is typing.Literal:
        return None  # checked with check_choice by the evaluator
    if hint is Any:
        return None
    if origin is not None:
        return (origin,)
    return (hint,)


def _type_name(t: Any) -> str:
    return {
        type(None): "null",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "a mapping",
    }.get(t, getattr(t, "__name__", str(t)))


def check_choice(value: Any, allowed: tuple | list, key: str, config: TaskConfig) -> Any:
    """Raise a clear error unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise UsageError(
            f"{config.source}: key {key!r} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}."
        )
    return value
