"""The Trainer callback's bookkeeping of what it evaluated: each step against the baseline, the gate that stops
training, the scalars logged through ``Trainer.log`` and the report folder.

Nothing here needs ``transformers``: it works on results, comparisons and the Trainer's state object. The
imports inside functions load the comparison machinery at the first evaluation, not when the callback is imported.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("evalkit.integrations.transformers")  # the callback's logger: users filter on that name

PREFIX = "eval_evalkit"  # the Trainer's integrations map "eval_" to "eval/" (TensorBoard, W&B)


class StepReports:
    """The comparisons, gate stop, logged metrics and report folder of ``EvalkitCallback``, which sets the
    attributes declared here in its ``__init__`` (they are its documented attributes)."""

    results: list
    step_comparisons: dict[str, Any]
    comparison: Any
    stop_reason: str | None
    report_dir: Path | None
    policy: Any
    trainer: Any
    _stopped_at: dict[str, Any] | None
    _state: Any
    _reported: int

    def _compare_step(self, result) -> None:
        """The new step against the baseline, once: the cost of a save does not grow with the saves before it."""
        from ..compare_run import conclude

        self.step_comparisons[result.checkpoint.label] = conclude(
            [], [self.results[0], result], baseline=self.results[0].checkpoint.label, policy=self.policy
        )

    def _write_report(self) -> None:
        """Every step so far against the baseline, gated, written to the report folder."""
        from ..compare_run import conclude

        self.comparison = conclude([], self.results, baseline=self.results[0].checkpoint.label, policy=self.policy)
        training: dict[str, Any] = {"loss": training_loss(self._state)}
        if self._stopped_at is not None:
            training["stopped"] = dict(self._stopped_at)
        self.comparison.data["training"] = training
        self.comparison.write(self.report_dir)
        self._reported = len(self.results)

    def _log(self, state, metrics: dict[str, float], *, step: int) -> None:
        if not metrics:
            return
        if self.trainer is not None and step == state.global_step:
            self.trainer.log(dict(metrics))
        else:  # the baseline when no trainer is found, or logged before the Trainer's own step counter moved
            state.log_history.append({**metrics, "step": step})

    def _check_gates(self, result) -> None:
        """Set ``stop_reason`` when a gate fails for ``result``'s step."""
        label = result.checkpoint.label
        failed = _step_failures(self.step_comparisons[label], label)
        if failed:
            self.stop_reason = f"evalkit gate failed at step {result.checkpoint.step}: " + "; ".join(
                f"{c.gate}: {c.message}" for c in failed
            )
            self._stopped_at = {
                "checkpoint": label,
                "step": result.checkpoint.step,
                "gates": [c.gate for c in failed],
                "reason": self.stop_reason,
            }
            log.warning("%s; stopping training (report: %s).", self.stop_reason, self.report_dir)


def step_metrics(comparison: Any, label: str) -> dict[str, float]:
    """What ``EvalkitCallback.metrics_for`` logs for the step ``label`` of its ``comparison`` (None: nothing)."""
    if comparison is None:
        return {}
    logged = metric_scalars(comparison, label)
    if comparison.verdict is not None:
        failures = _step_failures(comparison, label)
        logged[f"{PREFIX}/gate_passed"] = 0.0 if failures else 1.0
        logged[f"{PREFIX}/gate_failures"] = float(len(failures))
    return logged


def _step_failures(comparison: Any, label: str) -> list:
    """The failed gate checks of the step ``label`` (none without a policy)."""
    verdict = comparison.verdict
    return [c for c in verdict.failures if c.checkpoint == label] if verdict is not None else []


def metric_scalars(comparison: Any, label: str) -> dict[str, float]:
    """Each task's primary metric of ``label`` in ``comparison``, with its interval, change and the change's interval."""
    logged: dict[str, float] = {}
    fields = (
        ("value", ""),
        ("ci_low", "_ci_low"),
        ("ci_high", "_ci_high"),
        ("delta", "_delta"),
        ("delta_ci_low", "_delta_ci_low"),
        ("delta_ci_high", "_delta_ci_high"),
    )
    for task in comparison.tasks:
        try:
            row = comparison.metric(task, checkpoint=label)
        except KeyError:
            continue
        name = f"{PREFIX}/{task}.{row['metric']}"
        for field, suffix in fields:
            value = row.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                logged[name + suffix] = float(value)
    return logged


def training_loss(state: Any) -> list[list[float]]:
    """``[[step, loss], ...]`` from the Trainer's log history (the trajectory report draws it beside the metrics)."""
    history = getattr(state, "log_history", None) or []
    return [
        [int(e["step"]), float(e["loss"])]
        for e in history
        if isinstance(e.get("loss"), (int, float)) and isinstance(e.get("step"), int) and math.isfinite(e["loss"])
    ]


def baseline_metrics(result: Any) -> dict[str, float]:
    """The baseline's primary metrics with their intervals, as every comparison shows them: the step-0 point
    of every logged curve."""
    from .._compare import build_comparison
    from ..comparison import Comparison

    return metric_scalars(Comparison(build_comparison([result])), result.checkpoint.label)
