"""The voc evaluator's corpus side: the sample records (made and read back), records -> hierarchical and
routing metrics, the recorded settings, and the resampling hooks the comparison's intervals and tests call."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..records import SampleRecord

if TYPE_CHECKING:
    from ..taxonomy import Taxonomy
    from .dataset import VocData, VocExample

__all__ = [
    "sample_record",
    "record_paths",
    "identical_metrics",
    "declared_identities",
    "routing_metrics",
    "recorded_settings",
    "frequency_bands",
    "resample_metrics",
    "resample_breakdown",
]


def sample_record(
    taxonomy: "Taxonomy", example: "VocExample", path: tuple[str, ...] | None, extra: dict
) -> SampleRecord:
    """The record of ``example`` answered with ``path`` (None: no valid path); ``record_paths`` reads it back."""
    target = taxonomy.format(example.path)
    return SampleRecord(
        sample_id=example.sample_id,
        target=target,
        prediction=taxonomy.format(path) if path else None,
        correct=path == example.path,
        scores={"path_correct": float(path == example.path)},
        group=target,
        input=example.text,
        extra={**extra, "target_path": list(example.path), "pred_path": list(path) if path else None},
    )


def record_paths(records: list[SampleRecord]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...] | None]]:
    """The true and predicted label paths of ``records`` (None where the output named no valid path)."""
    y_true = [tuple(r.extra["target_path"]) for r in records]
    y_pred = [tuple(r.extra["pred_path"]) if r.extra.get("pred_path") else None for r in records]
    return y_true, y_pred


def identical_metrics(depth: int) -> dict[str, str]:
    """Alias -> representative: the metrics equal by construction when every true and predicted path is a
    valid label at the taxonomy's full ``depth`` (:func:`declared_identities` says when that holds).

    >>> identical_metrics(2)["hier_f1"], identical_metrics(2)["level2_micro_f1"]
    ('hier_precision', 'path_accuracy')
    """
    return {
        "hier_recall": "hier_precision",
        "hier_f1": "hier_precision",
        "lca_recall": "lca_precision",
        "lca_f1": "lca_precision",
        "leaf_micro_f1": "path_accuracy",
        f"level{depth}_micro_f1": "path_accuracy",
        f"level{depth}_macro_f1": "leaf_macro_f1",
    }


def declared_identities(
    mode: str, taxonomy: "Taxonomy", y_true: list[tuple[str, ...]], metrics: dict[str, Any]
) -> dict[str, str]:
    """The metrics equal to another by construction in this run (``TaskResult.same_as``), checked against the values.

    Declared from the mode and the taxonomy, not from the numbers: constrained mode only walks valid paths
    and stops at a label, so when every label (every leaf, no labelled inner node) and every true path has
    the taxonomy's full depth, every predicted and true ancestor set has that size and the precision and
    recall denominators of the hierarchical and LCA scores are equal; and every prediction being one valid
    class makes micro F1 path accuracy. Generate mode may answer an invalid or partial path, which breaks
    both. A declared identity the values then contradict is a bug in this reasoning: it fails loudly (an
    unexpected exception, exit 3) rather than hide a row.
    """
    full = taxonomy.depth
    if mode != "constrained" or any(len(p) != full for p in taxonomy.labels) or any(len(p) != full for p in y_true):
        return {}
    same_as = {alias: rep for alias, rep in identical_metrics(full).items() if alias in metrics and rep in metrics}
    for alias, rep in same_as.items():
        a, r = metrics[alias], metrics[rep]
        if (a is None) != (r is None) or (a is not None and abs(a - r) > 1e-9):
            raise AssertionError(
                f"evalkit bug: voc declared {alias!r} identical to {rep!r} in constrained mode, "
                f"but they are {a!r} and {r!r}; please report it."
            )
    return same_as


def routing_metrics(records: list[SampleRecord], depth: int, coverage_precisions: Any) -> dict[str, float | None]:
    """Calibration and coverage metrics (voc/routing.py); none unless every record has a confidence."""
    from .routing import routing_arrays, routing_metric_names, routing_scores

    arrays = routing_arrays(records, depth)
    if arrays is None:
        return {}
    names = routing_metric_names(depth, coverage_precisions, levels="level1" in arrays)
    values = routing_scores(arrays, names, np.arange(len(records))[None, :])
    return {name: (float(v[0]) if np.isfinite(v[0]) else None) for name, v in values.items()}


def recorded_settings(records: list[SampleRecord], o: Any, data: "VocData", unscorable: str | None) -> dict[str, Any]:
    """The settings stored with the results: the options (``o``, the evaluator's ``VocOptions``), what the run
    applied and counted, the frequency bands."""
    tax = data.taxonomy
    extras = [r.extra for r in records]
    return {
        "mode": o.mode,
        "n_samples": len(records),
        "num_fewshot": o.num_fewshot,
        "label_options": o.label_options,
        "label_options_used": sorted({e.get("label_options") for e in extras if e.get("label_options")}),
        "chat_template": sorted({bool(e.get("chat_template")) for e in extras}),
        "tokens_counted_by": sorted({e.get("tokens_counted_by") for e in extras if e.get("tokens_counted_by")}),
        "n_invalid": sum(bool(e.get("invalid")) for e in extras),
        "n_truncated": sum(bool(e.get("truncated")) for e in extras),
        "n_fewshot_reduced": sum(e.get("num_fewshot_used", o.num_fewshot) < o.num_fewshot for e in extras),
        "parse_rules": dict(sorted(Counter(e.get("parse_rule", "?") for e in extras).items())),
        "prompt_template": o.prompt_template or "default",
        "sep": tax.sep,
        "n_labels": len(tax.labels),
        "n_leaves": len(tax.leaves),
        "depth": tax.depth,
        "n_train": len(data.train),
        "seed": o.seed,
        "limit": o.limit,
        "sample_seed": o.sample_seed,
        "confidence": sorted({(e.get("confidence") or {}).get("method", "none") for e in extras}),
        **({"confidence_unavailable": unscorable} if unscorable else {}),
        **frequency_bands(records, data),
    }


def frequency_bands(records: list[SampleRecord], data: "VocData") -> dict[str, Any]:
    """The classes of each head / torso / tail band, which the comparison's resamples of a band average
    over (``resample_breakdown``); nothing without training data (no frequency breakdown then)."""
    from ..metrics.hierarchical import frequency_bands as bands_of

    train_counts = data.train_counts()
    if not train_counts or not records:
        return {}
    y_true, _ = record_paths(records)
    return {"frequency_bands": bands_of(y_true, train_counts, taxonomy=data.taxonomy)}


def resample_metrics(records: list[SampleRecord], names: list[str], indices: Any) -> dict[str, Any]:
    """Corpus metrics on resamples (rows of ``indices``), for the comparison's intervals and tests."""
    from ..metrics.hierarchical import resampled_scores
    from .routing import is_routing_metric, routing_arrays, routing_scores

    routing = [n for n in names if is_routing_metric(n)]
    hierarchical = [n for n in names if not is_routing_metric(n)]
    y_true, y_pred = record_paths(records)
    out = resampled_scores(y_true, y_pred, hierarchical, indices) if hierarchical else {}
    if routing:
        depth = max([len(t) for t in y_true] + [int(n[5:].split("_")[0]) for n in routing if n.startswith("level")])
        arrays = routing_arrays(records, depth)
        if arrays is None:
            raise ValueError("calibration and routing metrics need a confidence on every record")
        out.update(routing_scores(arrays, routing, indices))
    return {name: out[name] for name in names}


def resample_breakdown(
    records: list[SampleRecord], kind: str, metric: str, keys: list[str], indices: Any, settings: dict[str, Any]
) -> np.ndarray:
    """Per-class, per-level and per-frequency-band breakdown values on resamples, shape (B, len(keys)): the
    comparison's intervals and tests for breakdown rows (``metrics.hierarchical.resampled_breakdown``).

    The bands' classes come from the task's ``settings["frequency_bands"]``; results stored before they
    were recorded get nan (the comparison then leaves those rows without an interval, as before)."""
    from ..metrics.hierarchical import resampled_breakdown

    bands = settings.get("frequency_bands")
    if kind == "frequency" and not isinstance(bands, dict):
        return np.full((len(indices), len(keys)), np.nan)
    y_true, y_pred = record_paths(records)
    return resampled_breakdown(y_true, y_pred, kind, metric, keys, indices, bands=bands)
