"""Hierarchical voice-of-customer (VOC) classification: data, prompts, output parsing, constrained decoding.

The evaluator that drives these pieces is :mod:`evalkit.voc.evaluator` (registered as ``voc``).
Nothing heavy is imported here.
"""
