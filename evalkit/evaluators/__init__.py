"""Evaluators: the protocol, the registry, and the built-in ``lm_eval`` and ``voc`` evaluators."""

from .base import Evaluator, evaluator_names, get_evaluator, register_evaluator

__all__ = ["Evaluator", "register_evaluator", "get_evaluator", "evaluator_names"]
