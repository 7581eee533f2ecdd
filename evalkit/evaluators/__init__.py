"""Evaluators: the protocol and the one registry.

The built-in evaluators: ``lm_eval`` (:mod:`.lm_eval_tasks`) and ``voc`` (:mod:`evalkit.voc.evaluator`,
beside the VOC code).
"""

from .base import (Evaluator, MetricSpec, declared_specs, evaluator_names, get_evaluator, metric_spec,
                   record_value, register_evaluator)

__all__ = ["Evaluator", "register_evaluator", "get_evaluator", "evaluator_names", "MetricSpec", "metric_spec",
           "declared_specs", "record_value"]
