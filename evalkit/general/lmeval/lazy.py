"""One task's lm-eval ``TaskManager`` and loaded tasks, made at first use and then kept.

Indexing lm-eval's task folders and loading a task take seconds, and the evaluator is built for every
task of a run before anything is evaluated: only what is used gets loaded.
"""

from __future__ import annotations

from typing import Any

from ..punkt import ensure_punkt_tab
from .kinds import TaskKind
from .loading import LoadedTasks, load_tasks
from .settings import LmEvalOptions, TaskSettings

__all__ = ["LazyTasks"]


class LazyTasks:
    """The lm-eval side of one ``lm_eval`` task: its task manager and its loaded tasks (each made once)."""

    def __init__(self, kind: TaskKind, options: LmEvalOptions, settings: TaskSettings, source: str):
        self.kind, self.options, self.settings, self.source = kind, options, settings, source
        self._manager: tuple[Any, str] | None = None
        self._loaded: LoadedTasks | None = None

    def manager(self) -> tuple[Any, str]:
        """(TaskManager, lm-eval name) indexing only the YAML folders this task needs."""
        if self._manager is None:
            self._manager = self.kind.task_manager(self.settings.config_path()), self.options.lm_eval_task
        return self._manager

    def load(self) -> LoadedTasks:
        """The loaded tasks, loaded at the first call."""
        if self._loaded is None:
            if self.kind.uses_ifeval:
                ensure_punkt_tab()  # lm-eval's IFEval module would try a download at import otherwise
            self._loaded = self.reload()
        return self._loaded

    def reload(self) -> LoadedTasks:
        """The tasks loaded afresh (lm-eval's loading draws from ``random``; see ``RecordScorer``)."""
        manager, name = self.manager()
        o = self.options
        return load_tasks(
            manager,
            name,
            num_fewshot=o.num_fewshot,
            generation=o.generation,
            seed=o.seed,
            error_hint=self.kind.offline_hint,
            source=self.source,
        )
