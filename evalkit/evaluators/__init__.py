"""Evaluators: the protocol, the registry, and the built-in ``lm_eval`` and ``voc`` evaluators."""

from .base import (Evaluator, MetricSpec, declared_specs, evaluator_names, get_evaluator, metric_spec,
                   record_value, register_evaluator)

__all__ = ["Evaluator", "register_evaluator", "get_evaluator", "evaluator_names", "MetricSpec", "metric_spec",
           "declared_specs", "record_value"]
