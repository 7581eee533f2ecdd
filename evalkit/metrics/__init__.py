"""Metrics: hierarchical classification metrics (:mod:`.hierarchical`), calibration and selective prediction
(:mod:`.calibration`) and paired statistics (:mod:`.stats`).

The hierarchical metrics are re-exported here; import statistics from :mod:`evalkit.metrics.stats`.
"""

from evalkit.metrics.hierarchical import (
    DEFAULT_CI_METRICS,
    DEFAULT_FREQUENCY_BINS,
    UndefinedMetricWarning,
    bootstrap_ci,
    frequency_breakdown,
    hierarchical_precision_recall_fscore,
    hierarchical_report,
    invalid_rate,
    lca_precision_recall_fscore,
    leaf_f1_score,
    leaf_precision_recall_fscore_support,
    leaf_precision_score,
    leaf_recall_score,
    level_f1_score,
    level_precision_recall_fscore_support,
    mean_first_error_depth,
    metric_names,
    path_accuracy_score,
    per_class_table,
    resampled_scores,
)

__all__ = [
    "DEFAULT_CI_METRICS",
    "DEFAULT_FREQUENCY_BINS",
    "UndefinedMetricWarning",
    "bootstrap_ci",
    "frequency_breakdown",
    "hierarchical_precision_recall_fscore",
    "hierarchical_report",
    "invalid_rate",
    "lca_precision_recall_fscore",
    "leaf_f1_score",
    "leaf_precision_recall_fscore_support",
    "leaf_precision_score",
    "leaf_recall_score",
    "level_f1_score",
    "level_precision_recall_fscore_support",
    "mean_first_error_depth",
    "metric_names",
    "path_accuracy_score",
    "per_class_table",
    "resampled_scores",
]
