"""Curves behind the calibration and auto-routing metrics, for the report (``comparison["routing"]``).

For every task and checkpoint whose records all carry a confidence (``extra.confidence.path``, written
by the ``voc`` evaluator: ``voc/confidence.py``): the reliability curve (accuracy against mean confidence
in equal-mass bins, ``metrics.calibration.reliability_curve``) and the risk–coverage curve (precision of
the comments accepted at each confidence cut against their share, in-sample, at most
:data:`MAX_CURVE_POINTS` points). The headline numbers with intervals are the metric rows
(``coverage_at_precision/P``, ``leaf_ece``, ...); these curves are descriptive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics.calibration import reliability_curve, risk_coverage_curve
from ._common import Context

MAX_CURVE_POINTS = 101
N_BINS = 10


def leaf_confidence(records) -> tuple[np.ndarray, np.ndarray] | None:
    """(correct, confidence) of the leaf decision, or None unless every record has both."""
    correct, conf = [], []
    for record in records:
        value = record.extra.get("confidence") if isinstance(record.extra, dict) else None
        path = value.get("path") if isinstance(value, dict) else None
        if record.correct is None or isinstance(path, bool) or not isinstance(path, (int, float)):
            return None
        correct.append(float(bool(record.correct)))
        conf.append(min(max(float(path), 0.0), 1.0))
    return (np.asarray(correct), np.asarray(conf)) if correct else None


def routing_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    for task in ctx.tasks:
        for label in ctx.labels:
            if ctx.task(label, task) is None:
                continue
            records = list(ctx.records(label, task).values())
            arrays = leaf_confidence(records)
            if arrays is None:
                continue
            correct, conf = arrays
            accuracy, mean_conf, counts = reliability_curve(correct, conf, n_bins=N_BINS)
            coverage, precision, cuts = _thin(*risk_coverage_curve(correct, conf))
            methods = sorted({str(r.extra["confidence"].get("method")) for r in records})
            rows.append(
                {
                    "task": task,
                    "checkpoint": label,
                    "n": len(records),
                    "confidence_method": methods,
                    "reliability": {"confidence": mean_conf, "accuracy": accuracy, "count": counts},
                    "risk_coverage": {"coverage": coverage, "precision": precision, "cut": cuts},
                }
            )
    return rows


def _thin(coverage: np.ndarray, precision: np.ndarray, cuts: np.ndarray):
    """At most MAX_CURVE_POINTS points, evenly spaced along the curve, the last (full coverage) kept."""
    if coverage.size <= MAX_CURVE_POINTS:
        return coverage, precision, cuts
    keep = np.unique(np.linspace(0, coverage.size - 1, MAX_CURVE_POINTS).round().astype(int))
    return coverage[keep], precision[keep], cuts[keep]
