"""Evaluators: the protocol and the one registry.

The built-in evaluators live beside their domain's code: ``lm_eval`` (:mod:`evalkit.general.evaluator`)
and ``voc`` (:mod:`evalkit.voc.evaluator`).
"""

from .base import (
    EVALUATORS,
    Evaluator,
    MetricSpec,
    declared_specs,
    evaluator_names,
    get_evaluator,
    metric_spec,
    record_value,
    register_evaluator,
)

__all__ = [
    "Evaluator",
    "EVALUATORS",
    "register_evaluator",
    "get_evaluator",
    "evaluator_names",
    "MetricSpec",
    "metric_spec",
    "declared_specs",
    "record_value",
]
