"""The evaluator protocol and the one registry of evaluators.

An evaluator turns a task configuration into per-sample records (by asking an lm-eval ``LM`` object)
and turns per-sample records into corpus metrics. The two steps are separate on purpose: per-sample
records are what the store keeps and what comparisons pair; corpus metrics (macro F1, lm-eval's
weighted group means) are not means of per-sample values and are recomputed from the records.

Built-in evaluators register with :func:`register_evaluator`; third-party packages expose theirs
through the ``evalkit.evaluators`` entry-point group (``name = "pkg.module:EvaluatorClass"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from ..errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from ..records import SampleRecord, TaskResult

__all__ = ["Evaluator", "register_evaluator", "get_evaluator", "evaluator_names", "SaveBatch"]

ENTRY_POINT_GROUP = "evalkit.evaluators"

#: Called by an evaluator with each finished batch of records; the store commits it atomically.
SaveBatch = Callable[[list["SampleRecord"]], None]


@runtime_checkable
class Evaluator(Protocol):
    """What every evaluator provides.

    ``__init__(config)`` receives a validated :class:`~evalkit.taskconfig.TaskConfig`; the
    evaluator reads its own options from ``config.options``.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    #: "loglikelihood" and/or "generate_until": lets a spec kind refuse a task up front
    #: (a predictions file cannot produce log-likelihoods).
    needs: ClassVar[frozenset[str]]

    def config_hash(self) -> str:
        """Hash of everything that changes the outcome: options, data content, prompt template."""

    def check_ready(self) -> None:
        """Raise :class:`~evalkit.errors.UsageError` if a prerequisite is missing. Runs before any model loads."""

    def sample_ids(self) -> list[str]:
        """The ids of the samples this task will evaluate, in a deterministic order."""

    def run(self, lm: Any, *, done: Mapping[str, "SampleRecord"], save: SaveBatch) -> list["SampleRecord"]:
        """Evaluate the samples not in ``done`` with ``lm``, calling ``save`` after each batch; return all records."""

    def aggregate(self, records: list["SampleRecord"]) -> "TaskResult":
        """Corpus metrics, breakdowns and CIs from the records (no model needed)."""

    # Optional hook, used by comparisons for paired bootstrap tests of corpus metrics that are not a
    # mean of one per-sample score (macro F1, instruction-level accuracy):
    #
    #     @classmethod
    #     def resample_metrics(cls, records: list[SampleRecord], names: list[str],
    #                          indices: numpy.ndarray) -> dict[str, numpy.ndarray]
    #
    # ``indices`` has shape (B, n) of positions into ``records``; return, per metric name, the B
    # metric values on those resamples. The comparison passes the same indices for both checkpoints
    # (records aligned by sample_id), which is what makes the bootstrap paired.


_BUILTIN_MODULES = ("evalkit.evaluators.lm_eval_tasks", "evalkit.evaluators.voc")
_REGISTRY: dict[str, type] = {}
_entry_points_loaded = False


def register_evaluator(cls: type) -> type:
    """Class decorator: add an evaluator under its ``name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} needs a non-empty class attribute 'name' to be registered")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"an evaluator named {name!r} is already registered ({_REGISTRY[name].__qualname__})")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    # Importing these modules runs their @register_evaluator decorators. They import nothing heavy
    # at module level, so listing evaluators stays fast.
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not break evalkit
            raise UsageError(f"evaluator plug-in {ep.name!r} ({ep.value}) failed to load: {exc}") from None
        if getattr(cls, "name", None) != ep.name:
            raise UsageError(
                f"evaluator plug-in {ep.value} is registered as {ep.name!r} but its class says name={getattr(cls, 'name', None)!r}; make them equal."
            )
        register_evaluator(cls)


def evaluator_names() -> list[str]:
    _load_builtins()
    _load_entry_points()
    return sorted(_REGISTRY)


def get_evaluator(name: str) -> type:
    """Return the evaluator class registered as ``name``; unknown names get a did-you-mean error."""
    names = evaluator_names()
    if name not in _REGISTRY:
        raise UsageError(f"unknown evaluator {name!r}.{did_you_mean(name, names)}")
    return _REGISTRY[name]
