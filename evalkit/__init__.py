"""evalkit: evaluate fine-tuned LLM checkpoints on domain and general axes, compare them, gate releases.

The public API is small and imported lazily (so ``evalkit --help`` stays instant)::

    from evalkit import Checkpoint, resolve_tasks, evaluate_checkpoint, ResultStore, build_comparison
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Checkpoint": "evalkit.checkpoints",
    "LoadOptions": "evalkit.checkpoints",
    "parse_spec": "evalkit.checkpoints",
    "resolve_tasks": "evalkit.taskconfig",
    "TaskConfig": "evalkit.taskconfig",
    "evaluate_checkpoint": "evalkit.run",
    "ResultStore": "evalkit.store",
    "EvalResult": "evalkit.records",
    "TaskResult": "evalkit.records",
    "SampleRecord": "evalkit.records",
    "register_evaluator": "evalkit.evaluators.base",
    "get_evaluator": "evalkit.evaluators.base",
    "build_comparison": "evalkit.compare",
    "write_reports": "evalkit.report",
    "load_policy": "evalkit.gate",
    "evaluate_policy": "evalkit.gate",
    "EvalkitError": "evalkit.errors",
    "UsageError": "evalkit.errors",
}
__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return __all__
