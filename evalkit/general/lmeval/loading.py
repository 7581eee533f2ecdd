"""Loading lm-eval tasks: a ``TaskManager`` indexing only the folders a task needs, and the loaded tasks
configured exactly as ``lm_eval.simple_evaluate`` configures them."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UsageError, did_you_mean

__all__ = ["LoadedTasks", "LM_EVAL_SEEDS", "index_tasks", "load_tasks", "cached_templates"]

#: lm-eval's default seeds in ``simple_evaluate`` (random, numpy, torch, few-shot sampler).
LM_EVAL_SEEDS = (0, 1234, 1234, 1234)


@dataclass
class LoadedTasks:
    """lm-eval objects of one task: leaf tasks in lm-eval's order, groups, flat score names per leaf."""

    name: str
    tasks: dict[str, Any]
    groups: dict[str, Any]
    score_names: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    #: Jinja texts rendered from these tasks' docs, kept from building the requests to the records
    renders: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def generative(self) -> bool:
        return any(t.OUTPUT_TYPE == "generate_until" for t in self.tasks.values())

    def all_score_names(self) -> dict[tuple[str, str], str]:
        return {k: v for per_task in self.score_names.values() for k, v in per_task.items()}


def task_manager(folder: Path | str | None, *, defaults: bool = False):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=None if folder is None else str(folder), include_defaults=defaults)


def index_tasks(name: str, custom: Path | None, source: str):
    """The TaskManager of a task that is not one of evalkit's known kinds (a custom YAML or lm-eval's own)."""
    if custom is not None:
        folder = custom if custom.is_dir() else custom.parent
        manager = task_manager(folder)
        return manager if name in manager.all_tasks else _full_index(name, str(folder), source)
    return _fast_index(name) or _full_index(name, None, source)


def _fast_index(name: str):
    """Index only lm-eval's folder(s) whose name starts the task name (hellaswag, arc for arc_easy)."""
    from ...lm_eval_tasks import lm_eval_tasks_dir

    root = lm_eval_tasks_dir()
    candidates = sorted(
        (d for d in root.iterdir() if d.is_dir() and (name == d.name or name.startswith(d.name + "_"))),
        key=lambda d: -len(d.name),
    )
    for folder in candidates:
        manager = task_manager(folder)
        if name in manager.all_tasks:
            return manager
    return None


def _full_index(name: str, include_path: str | None, source: str):
    from lm_eval.tasks import TaskManager

    from ...lm_eval_tasks import could_be_lm_eval_task, lm_eval_task_names

    if include_path is None and not could_be_lm_eval_task(name):  # known in a second, not after lm-eval's full index
        raise _unknown_task(name, source, lm_eval_task_names())
    manager = TaskManager(include_path=include_path)
    if name not in manager.all_tasks:
        raise _unknown_task(name, source, manager.all_tasks)
    return manager


def _unknown_task(name: str, source: str, names) -> UsageError:
    return UsageError(
        f"{source}: key 'lm_eval_task': unknown lm-eval task or group {name!r}.{did_you_mean(name, names)}"
    )


def load_tasks(
    manager,
    name: str,
    *,
    num_fewshot: int | None,
    generation: dict | None,
    seed: int | None,
    error_hint: str,
    source: str,
) -> LoadedTasks:
    """Load ``name`` (a task or group) with ``manager`` and configure every leaf task."""
    from ..hub import offline_unless_reachable

    unreachable = False
    try:
        with offline_unless_reachable() as unreachable:
            loaded = manager.load([name])
    except UsageError:
        raise
    except Exception as exc:
        why = (
            (" (the Hugging Face hub is not reachable from here, so only datasets already in the local cache load)")
            if unreachable
            else ""
        )
        raise UsageError(
            f"{source}: lm-eval could not load task {name!r}{why} ({type(exc).__name__}: {exc}); {error_hint}."
        ) from exc
    out = LoadedTasks(name=name, tasks=dict(loaded["tasks"]), groups=dict(loaded.get("groups", {})))
    for task_name, task in out.tasks.items():
        _configure(task, num_fewshot, generation, seed)
        out.score_names[task_name] = _score_names(task)
    return out


def _configure(task, num_fewshot: int | None, generation: dict | None, seed: int | None) -> None:
    """Apply generation, few-shot and seed settings exactly as ``lm_eval.simple_evaluate`` does."""
    if task.get_config("output_type") == "generate_until" and generation:
        task.set_config(key="generation_kwargs", value=dict(generation), update=True)
    if num_fewshot is not None:
        if task.get_config("num_fewshot") != 0:  # lm-eval never overrides a task that pins 0
            task.set_config(key="num_fewshot", value=num_fewshot)
    elif task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=LM_EVAL_SEEDS[3] if seed is None else seed)


def _score_names(task) -> dict[tuple[str, str], str]:
    """(metric, filter) -> flat score name: ``acc`` for one filter, ``exact_match_flexible-extract`` for several."""
    filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
    metrics = list(task.aggregation())
    single = len(filters) == 1
    return {(m, f): (m if single or f == "none" else f"{m}_{f}") for f in filters for m in metrics}


@contextlib.contextmanager
def cached_templates(renders: dict):
    """Render lm-eval's Jinja prompt templates from compiled templates kept for the duration.

    lm-eval's ``utils.apply_template`` compiles the template string on every call (``Environment.from_string``
    has no cache): on full MMLU that is ~3 compilations per question and the largest single cost outside
    the model. Compiling once per distinct template string renders the same text (same environment, same
    template) at a fraction of the cost. The original function is restored on exit.

    Each text is also kept in ``renders`` (a dict kept across calls: ``LoadedTasks.renders``) per template and
    doc object: the records render a doc's question again (``doc_to_text``) after lm-eval rendered it to build
    its prompt, ~0.3 ms a question (~5 CPU s on full MMLU). A doc counts as the same only while it is the same
    object (lm-eval never changes a doc once loaded).
    """
    from lm_eval import utils

    original = utils.apply_template

    @functools.lru_cache(maxsize=1024)
    def compiled(template: str):
        # A template's globals are a ChainMap over the environment's, which every render copies key by key: a
        # render of MMLU's question took 18 us with it, 7.7 us with a flat copy (the same names and values).
        done = utils.env.from_string(template)
        done.globals = dict(done.globals)
        return done

    def apply_template(template: str, doc: dict) -> str:
        kept = renders.get((template, id(doc)))
        if kept is None:  # keeping the doc itself keeps its id from passing to another object
            kept = renders[template, id(doc)] = (doc, compiled(template).render(**doc))
        return kept[1]

    utils.apply_template = apply_template
    try:
        yield
    finally:
        utils.apply_template = original
