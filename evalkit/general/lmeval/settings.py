"""The ``lm_eval`` evaluator's options (task file keys), the store key they make (``config_hash``) and
the settings recorded beside its results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._io import hash_tree
from ..._validate import task_seeds
from ...errors import UsageError
from ...records import SampleRecord
from ...taskconfig import TaskConfig
from .generation import GenerationFit
from .kinds import TaskKind
from .loading import LoadedTasks
from .scoring import jsonable

__all__ = ["LmEvalOptions", "TaskSettings", "check_options"]


@dataclass
class LmEvalOptions:
    """Options of the ``lm_eval`` evaluator (keys of a task file)."""

    lm_eval_task: str
    lm_eval_config: str | None = None
    num_fewshot: int | None = None
    data: str | None = None
    limit: int | float | None = None
    sample_seed: int | None = None  # with limit: that many docs per subtask drawn with this seed, not the first ones
    batch_docs: int = 64
    generation: dict | None = None
    chat_template: bool | None = None
    system_instruction: str | None = None
    seed: int | None = None
    # This task asks the same questions as another task of the run, answered by writing (generate_until):
    # the comparison then tells format forgetting from knowledge forgetting (_compare/_format.py).
    variant_of: str | None = None


def check_options(options: LmEvalOptions, config: TaskConfig) -> None:
    """Values the dataclass types cannot express (non-empty task, counts >= 0 or 1, limit's range)."""
    src = config.source
    if not options.lm_eval_task.strip():
        raise UsageError(f"{src}: key 'lm_eval_task' must name an lm-eval task or group, e.g. mmlu, ifeval, hellaswag.")
    if options.num_fewshot is not None and options.num_fewshot < 0:
        raise UsageError(f"{src}: key 'num_fewshot' must be an integer >= 0 or null; got {options.num_fewshot!r}.")
    if options.batch_docs < 1:
        raise UsageError(f"{src}: key 'batch_docs' must be an integer >= 1; got {options.batch_docs!r}.")
    task_seeds(options, ("seed", "sample_seed"), source=src)
    if options.variant_of is not None and not options.variant_of.strip():  # the type is checked already
        raise UsageError(
            f"{src}: key 'variant_of' must name the log-likelihood task this task restates "
            f"(e.g. mmlu); got {options.variant_of!r}."
        )
    if options.limit is not None and (
        options.limit <= 0
        or (isinstance(options.limit, float) and options.limit >= 1 and not options.limit.is_integer())
    ):
        raise UsageError(
            f"{src}: key 'limit' must be a positive integer (docs per subtask) or a fraction "
            f"0 < limit < 1; got {options.limit!r}."
        )


class TaskSettings:
    """One task file's options with its paths resolved: the store key and the recorded settings."""

    def __init__(self, config: TaskConfig, options: LmEvalOptions):
        self.config = config
        self.options = options
        self._hash: str | None = None

    def data_path(self) -> Path | None:
        return None if self.options.data is None else self.config.resolve_path(self.options.data)

    def config_path(self) -> Path | None:
        return None if self.options.lm_eval_config is None else self.config.resolve_path(self.options.lm_eval_config)

    def config_hash(self, kind: TaskKind, version: str) -> str:
        """Hash of options, data content, custom YAML content and the generated-template version."""
        if self._hash is None:
            from ..._io import stable_hash  # looked up at call time: tests count what is hashed
            from ..overrides import GENERATOR_VERSION

            options = dataclasses.asdict(self.options)
            for name in (
                "sample_seed",
                "variant_of",
            ):  # unset: the key results stored before the option existed were under
                if options[name] is None:
                    del options[name]
            self._hash = stable_hash(
                {
                    "options": options,
                    "kind": kind.name,
                    "data": _content_digest(self.data_path()),
                    "lm_eval_config": _content_digest(self.config_path()),
                    "generator": GENERATOR_VERSION,
                    "evaluator": version,
                }
            )
        return self._hash

    def recorded(
        self,
        records: list[SampleRecord],
        loaded: LoadedTasks,
        kind: TaskKind,
        *,
        chat_applied: bool | None,
        fit: GenerationFit | None,
    ) -> dict[str, Any]:
        """The settings stored with the results (what lm-eval was asked, what the run applied)."""
        first = next(iter(loaded.tasks.values()), None)
        data = self.data_path()
        settings: dict[str, Any] = {
            "lm_eval_task": self.options.lm_eval_task,
            "num_fewshot": None if first is None else first.get_config("num_fewshot"),
            "data": str(data) if data is not None else ("hub" if self.options.lm_eval_config is None else None),
            "limit": self.options.limit,
            "sample_seed": self.options.sample_seed,
            "chat_template": chat_applied,
            "system_instruction": self.options.system_instruction,
        }
        if self.options.lm_eval_config is not None:
            settings["lm_eval_config"] = str(self.config_path())
        if first is not None and first.OUTPUT_TYPE == "generate_until":
            settings["generation_kwargs"] = jsonable(first.get_config("generation_kwargs"))
        if fit is not None and fit.capped:  # the model's context, not the task, set the answers' length
            settings["max_gen_toks_capped"] = {
                "requested": fit.requested,
                "used": fit.max_gen_toks,
                "context": fit.context,
                "longest_prompt": fit.longest_prompt,
            }
        settings.update(kind.settings(records, loaded))
        if self.options.variant_of is not None:
            settings["variant_of"] = self.options.variant_of
        return settings


def _content_digest(path: Path | None) -> str | None:
    return hash_tree(path) if path is not None and path.exists() else None
