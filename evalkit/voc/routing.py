"""Calibration and auto-routing metrics of VOC records that carry a confidence (``voc/confidence.py``).

Names (all computed from ``extra["confidence"]`` and the true and predicted paths):

- ``leaf_ece``, ``leaf_brier``: the leaf decision (path exactly right) against the path probability;
- ``level{k}_ece``, ``level{k}_brier`` (constrained mode, which has a probability per level): the level-``k``
  prefix (paths cut as the level metrics cut them) against the probability of the predicted prefix;
- ``coverage_at_precision/{P}``: the share of comments routed automatically at leaf precision >= P, the cut
  chosen by cross-fitting over :data:`N_FOLDS` folds of the sample ids; ``routed_precision/{P}`` the
  precision those routed comments actually have.

ECE uses :data:`N_BINS` equal-mass bins. Fixed here (not task options) because the comparison's resample
hook scores these metrics from the records alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..metrics.calibration import coverage_rows, ece_rows, fold_ids
from ..records import SampleRecord

__all__ = ["N_FOLDS", "N_BINS", "routing_metric_names", "routing_arrays", "routing_scores", "precision_name"]

N_FOLDS = 5
N_BINS = 10


def precision_name(precision: float) -> str:
    """``0.95`` -> ``"0.95"`` (the suffix of ``coverage_at_precision/0.95``)."""
    return f"{float(precision):g}"


def routing_metric_names(depth: int, precisions: Sequence[float], *, levels: bool) -> list[str]:
    """The routing metric names for a tree of ``depth`` levels.

    Examples
    --------
    >>> routing_metric_names(2, [0.95], levels=False)
    ['leaf_ece', 'leaf_brier', 'coverage_at_precision/0.95', 'routed_precision/0.95']
    """
    names = ["leaf_ece", "leaf_brier"]
    if levels:
        names += [f"level{k}_{m}" for k in range(1, depth + 1) for m in ("ece", "brier")]
    for p in precisions:
        names += [f"coverage_at_precision/{precision_name(p)}", f"routed_precision/{precision_name(p)}"]
    return names


def _confidence(record: SampleRecord) -> dict | None:
    value = record.extra.get("confidence")
    if isinstance(value, dict) and isinstance(value.get("path"), (int, float)) and not isinstance(value["path"], bool):
        return value
    return None


def routing_arrays(records: Sequence[SampleRecord], depth: int) -> dict[str, Any] | None:
    """Per decision (``"leaf"``, ``"level1"`` ...): (correct, confidence) arrays, plus ``"folds"``.

    None unless every record has a confidence; the level arrays only when every record has level
    probabilities (constrained mode).
    """
    found = [_confidence(r) for r in records]
    confidences = [c for c in found if c is not None]
    if not records or len(confidences) < len(found):
        return None
    truths = [tuple(r.extra.get("target_path") or ()) for r in records]
    preds = [tuple(r.extra.get("pred_path") or ()) for r in records]
    out: dict[str, Any] = {
        "leaf": (
            np.asarray([t == p for t, p in zip(truths, preds)], dtype=float),
            _probabilities([c["path"] for c in confidences]),
        ),
        "folds": fold_ids([r.sample_id for r in records], N_FOLDS),
    }
    if all(isinstance(c.get("levels"), list) for c in confidences):
        for k in range(1, depth + 1):
            correct = [t[:k] == p[:k] and bool(p) for t, p in zip(truths, preds)]
            # a predicted path that stops above level k is its own level-k label: its whole probability
            conf = [c["levels"][k - 1] if len(p) >= k else c["path"] for c, p in zip(confidences, preds)]
            out[f"level{k}"] = (np.asarray(correct, dtype=float), _probabilities(conf))
    return out


def _probabilities(values: list) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)


def routing_scores(arrays: dict[str, Any], names: Sequence[str], indices: np.ndarray) -> dict[str, np.ndarray]:
    """Values of the routing ``names`` on each row of ``indices`` (positions into the arrays)."""
    indices = np.asarray(indices)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name.startswith(("coverage_at_precision/", "routed_precision/")):
            kind, _, precision = name.partition("/")
            correct, conf = arrays["leaf"]
            coverage, realised = coverage_rows(
                correct[indices], conf[indices], arrays["folds"][indices], precision=float(precision)
            )
            out[f"coverage_at_precision/{precision}"], out[f"routed_precision/{precision}"] = coverage, realised
            continue
        decision, _, metric = name.rpartition("_")
        if decision not in arrays:
            raise ValueError(f"routing metric {name!r} needs level probabilities, which these records do not have.")
        correct, conf = arrays[decision]
        if metric == "ece":
            out[name] = ece_rows(correct[indices], conf[indices], n_bins=N_BINS, strategy="quantile")
        else:
            out[name] = ((conf[indices] - correct[indices]) ** 2).mean(axis=1)
    return {name: out[name] for name in names}


def is_routing_metric(name: str) -> bool:
    return name.startswith(("coverage_at_precision/", "routed_precision/")) or name.endswith(("_ece", "_brier"))
