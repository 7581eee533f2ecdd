"""Parameter checks and label encoding shared by the hierarchical metrics.

Messages follow scikit-learn's form: "The 'average' parameter of leaf_f1_score must be one of ...
Got 'weighed' instead." so a user sees which function, which parameter, what is allowed and what came.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from evalkit.taxonomy import DEFAULT_SEP, Taxonomy, as_path, is_missing

AVERAGE_OPTIONS = ("macro", "micro", "weighted", None)


@dataclass(frozen=True)
class Encoded:
    """Labels as node ids of one taxonomy: ``true`` >= 0, ``pred`` = -1 for an invalid prediction."""

    taxonomy: Taxonomy
    true: np.ndarray
    pred: np.ndarray
    labels: np.ndarray | None = None  # node ids of an explicit ``labels=`` set, in the given order


def check_average(average: Any, func: str) -> str | None:
    if average not in AVERAGE_OPTIONS or isinstance(average, bool):
        raise ValueError(
            f"The 'average' parameter of {func} must be one of 'macro', 'micro', 'weighted' or None. Got {average!r} instead."
        )
    return average


def check_zero_division(zero_division: Any, func: str) -> float | str:
    if zero_division == "warn":
        return "warn"
    if isinstance(zero_division, Real) and not isinstance(zero_division, bool):
        if math.isnan(zero_division) or zero_division in (0.0, 1.0):
            return float(zero_division)
    raise ValueError(
        f"The 'zero_division' parameter of {func} must be one of 0.0, 1.0, nan or 'warn'. Got {zero_division!r} instead."
    )


def check_level(level: Any, depth: int, func: str) -> int:
    if isinstance(level, bool) or not isinstance(level, Integral) or not 1 <= level <= max(depth, 1):
        raise ValueError(
            f"The 'level' parameter of {func} must be an int in [1, {max(depth, 1)}]. Got {level!r} instead."
        )
    return int(level)


def check_int(value: Any, name: str, func: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"The '{name}' parameter of {func} must be an int >= {minimum}. Got {value!r} instead.")
    return int(value)


def check_confidence(confidence: Any, func: str) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise ValueError(f"The 'confidence' parameter of {func} must be a float in (0, 1). Got {confidence!r} instead.")
    return float(confidence)


def _as_sequence(values: Any, name: str, func: str) -> Any:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(
            f"The '{name}' parameter of {func} must be a sequence of label paths. Got {type(values).__name__} instead."
        )
    if isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype.kind in "OUS":
        return [tuple(row) for row in values.tolist()]  # the per-level 2-D form used by hiclass
    return values.tolist() if hasattr(values, "tolist") and not isinstance(values, list) else values


def _is_id_array(values: Any) -> bool:
    return isinstance(values, np.ndarray) and values.dtype.kind in "iu"


def encode(
    y_true: Any, y_pred: Any, func: str, *, taxonomy: Taxonomy | None = None, labels: Any = None, sep: str = DEFAULT_SEP
) -> Encoded:
    """Check lengths and encode both label sequences as node ids.

    Without ``taxonomy`` the taxonomy is built from the true labels, the valid predictions and
    ``labels``. With ``taxonomy``, integer arrays are taken as node ids (the fast path) and predicted
    paths that are not nodes of the taxonomy count as invalid.
    """
    if _is_id_array(y_true) and _is_id_array(y_pred) and taxonomy is not None:
        true, pred = _check_ids(y_true, y_pred, taxonomy, func)
    else:
        y_true, y_pred = _as_sequence(y_true, "y_true", func), _as_sequence(y_pred, "y_pred", func)
        _check_lengths(len(y_true), len(y_pred), func)
        if taxonomy is None:
            taxonomy = _build_taxonomy(y_true, y_pred, labels, sep, func)
        true, pred = taxonomy.encode(y_true), taxonomy.encode(y_pred)
        _check_true_known(true, y_true, func)
    label_ids = None if labels is None else _encode_labels(labels, taxonomy, func)
    return Encoded(taxonomy, true, pred, label_ids)


def _check_lengths(n_true: int, n_pred: int, func: str) -> None:
    if n_true != n_pred:
        raise ValueError(f"{func}: y_true and y_pred must have the same length. Got {n_true} and {n_pred}.")
    if n_true == 0:
        raise ValueError(f"{func}: y_true and y_pred are empty; at least one sample is needed.")


def _check_ids(y_true: np.ndarray, y_pred: np.ndarray, taxonomy: Taxonomy, func: str) -> tuple[np.ndarray, np.ndarray]:
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise ValueError(f"{func}: node-id arrays must be 1-D. Got shapes {y_true.shape} and {y_pred.shape}.")
    _check_lengths(len(y_true), len(y_pred), func)
    n_nodes = len(taxonomy.nodes)
    true, pred = y_true.astype(np.int64, copy=False), y_pred.astype(np.int64, copy=False)
    if true.min() < 0 or true.max() >= n_nodes:
        bad = int(np.flatnonzero((true < 0) | (true >= n_nodes))[0])
        raise ValueError(
            f"{func}: y_true[{bad}] = {int(true[bad])} is not a node id of the taxonomy (0..{n_nodes - 1})."
        )
    # An out-of-range predicted id is an invalid prediction, like an unknown path.
    return true, np.where((pred >= 0) & (pred < n_nodes), pred, -1)


def _build_taxonomy(y_true: Any, y_pred: Any, labels: Any, sep: str, func: str) -> Taxonomy:
    paths = []
    for item in _distinct(y_true):
        try:
            paths.append(as_path(item, sep))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{func}: y_true contains an invalid label {item!r}: {exc}.") from None
    for item in _distinct(y_pred):
        if not is_missing(item):
            try:
                paths.append(as_path(item, sep))
            except (ValueError, TypeError):
                pass  # a malformed prediction is an invalid prediction, not an error
    for item in [] if labels is None else labels:
        try:
            paths.append(as_path(_key(item), sep))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{func}: 'labels' contains an invalid label {item!r}: {exc}.") from None
    return Taxonomy(paths, sep=sep)


def _distinct(values: Any) -> dict:
    try:
        return dict.fromkeys(values)
    except TypeError:  # lists inside
        return dict.fromkeys(_key(v) for v in values)


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check_true_known(true: np.ndarray, y_true: Any, func: str) -> None:
    if true.size and true.min() < 0:
        bad = int(np.flatnonzero(true < 0)[0])
        raise ValueError(f"{func}: y_true[{bad}] = {y_true[bad]!r} is missing or not a node of the taxonomy.")


def _encode_labels(labels: Any, taxonomy: Taxonomy, func: str) -> np.ndarray:
    ids = taxonomy.encode([_key(v) for v in labels])
    if ids.size == 0:
        raise ValueError(f"{func}: 'labels' is empty; give at least one label or None.")
    if ids.min() < 0:
        bad = list(labels)[int(np.flatnonzero(ids < 0)[0])]
        raise ValueError(f"{func}: 'labels' contains {bad!r}, which is not a node of the taxonomy.")
    return ids
