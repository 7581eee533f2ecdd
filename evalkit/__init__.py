"""evalkit: evaluate fine-tuned LLM checkpoints on domain and general axes, compare them, gate releases.

The public API is small and imported lazily (so ``evalkit --help`` stays instant); see
``docs/python-api.md``::

    import evalkit

    base = evalkit.evaluate("models/base", ["voc_sample", "mmlu"])
    tuned = evalkit.evaluate(model, ["voc_sample", "mmlu"], tokenizer=tokenizer, label="tuned")
    comparison = evalkit.compare(base, tuned)      # -> Comparison
    verdict = comparison.gate("policy.yaml")       # -> Verdict
    comparison.write("reports/tuned")              # the files `evalkit compare --out` writes
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "evaluate": "evalkit.api",
    "compare": "evalkit.api",
    "Comparison": "evalkit.comparison",
    "read_comparison": "evalkit.comparison",
    "Verdict": "evalkit.gate",
    "Policy": "evalkit.gate",
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
    "build_comparison": "evalkit._compare",
    "write_reports": "evalkit.report",
    "load_policy": "evalkit.gate",
    "evaluate_policy": "evalkit.gate",
    "EvalkitError": "evalkit.errors",
    "UsageError": "evalkit.errors",
    "ParameterTypeError": "evalkit.errors",
    "EvaluationError": "evalkit.errors",
    "ServerError": "evalkit.errors",
}
#: The object API: what a user of evalkit needs (a literal, so linters and type checkers see it). The
#: lower-level functions also in ``_PUBLIC`` stay importable from here for existing code, but live in
#: their packages: ``evalkit.checkpoints.parse_spec``, ``evalkit.taskconfig.resolve_tasks``,
#: ``evalkit.run.evaluate_checkpoint``, ``evalkit.evaluators.base.register_evaluator`` / ``get_evaluator``,
#: ``evalkit.gate.load_policy`` / ``evaluate_policy``, ``evalkit.report.write_reports`` and
#: ``build_comparison`` (the dict-level comparison).
__all__ = [
    "evaluate",
    "compare",
    "read_comparison",
    "Comparison",
    "Verdict",
    "Policy",
    "Checkpoint",
    "LoadOptions",
    "TaskConfig",
    "ResultStore",
    "EvalResult",
    "TaskResult",
    "SampleRecord",
    "EvalkitError",
    "UsageError",
    "ParameterTypeError",
    "EvaluationError",
    "ServerError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return __all__
