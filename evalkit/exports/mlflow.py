"""Record a :class:`~evalkit.Comparison` in MLflow (``Comparison.log_to_mlflow``, ``evalkit compare --log mlflow``).

Where it goes follows MLflow's own settings (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME`` or
``mlflow.set_experiment``). One parent run holds the comparison; each checkpoint gets a nested run:

* nested run ``LABEL`` (tag ``mlflow.parentRunId``): every numeric field of the checkpoint's metric rows,
  ``TASK.METRIC`` for the value and ``TASK.METRIC.FIELD`` for the rest (``ci_low``, ``ci_high``, ``n``,
  ``delta``, ``delta_ci_low``, ``delta_ci_high``, ``p_value``, any adjusted p-value the comparison has...),
  logged at the checkpoint's training ``step`` (0 when it has none); params ``spec``, ``kind``,
  ``fingerprint``, ``run``, ``step``; tags ``evalkit.checkpoint`` and ``evalkit.verdict`` (its own status);
* parent run: the comparison's deltas and p-values as ``LABEL/TASK.METRIC.FIELD``; tags
  ``evalkit.verdict`` (the overall status), ``evalkit.policy``, ``evalkit.baseline``; the report folder
  (what :meth:`Comparison.write` writes) as artifacts under ``evalkit-report/``.

Values are logged as evalkit computed them (MLflow stores doubles); missing values are not logged.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import Any

from .extras import require
from ._tracking import checkpoint_metrics, comparison_metrics

__all__ = ["log_comparison", "ARTIFACT_PATH"]

#: Where the report folder goes among the parent run's artifacts.
ARTIFACT_PATH = "evalkit-report"
_BATCH = 1000  # MLflow's limit on metrics per log_batch call
_QUIET_URLS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def log_comparison(comparison, run: Any = None, *, report: bool = True) -> str:
    """Log ``comparison`` (a :class:`~evalkit.Comparison`) to MLflow; return the parent run's id.

    ``run``: a run id or an ``mlflow`` run to log into; None: the active run, else a new run named
    after the checkpoints (ended again here).
    """
    mlflow = require("mlflow", "logging to MLflow", param="log")
    client = mlflow.MlflowClient()
    with _no_run_links():
        parent_id, started = _parent_run(mlflow, run, comparison)
        try:
            _log_parent(client, parent_id, comparison, report)
            experiment = client.get_run(parent_id).info.experiment_id
            for checkpoint in comparison.data["checkpoints"]:
                _log_checkpoint(client, experiment, parent_id, comparison.data, checkpoint)
        finally:
            if started:
                mlflow.end_run()
    return parent_id


@contextlib.contextmanager
def _no_run_links():
    """MLflow writes "View run ... at URL" to stdout when a run ends; the library never prints (the CLI
    says where the run is), so that is switched off, unless the user chose otherwise."""
    if _QUIET_URLS in os.environ:
        yield
        return
    os.environ[_QUIET_URLS] = "true"
    try:
        yield
    finally:
        os.environ.pop(_QUIET_URLS, None)


def _parent_run(mlflow, run: Any, comparison) -> tuple[str, bool]:
    if run is not None:
        return (run if isinstance(run, str) else run.info.run_id), False
    active = mlflow.active_run()
    if active is not None:
        return active.info.run_id, False
    return mlflow.start_run(run_name=f"evalkit {' vs '.join(comparison.labels)}").info.run_id, True


def _log_parent(client, run_id: str, comparison, report: bool) -> None:
    data = comparison.data
    tags = {
        "evalkit.kind": "comparison",
        "evalkit.baseline": str(data.get("baseline")),
        "evalkit.checkpoints": ", ".join(comparison.labels),
    }
    if comparison.verdict is not None:
        tags.update({"evalkit.verdict": comparison.verdict.status, "evalkit.policy": str(comparison.verdict.policy)})
    _log(client, run_id, comparison_metrics(data), tags=tags, step=0)
    if report:
        with tempfile.TemporaryDirectory(prefix="evalkit-mlflow-") as folder:
            comparison.write(folder)
            client.log_artifacts(run_id, folder, artifact_path=ARTIFACT_PATH)


def _log_checkpoint(client, experiment: str, parent_id: str, data: dict[str, Any], checkpoint: dict[str, Any]):
    from ..comparison_format import checkpoint_statuses

    label = checkpoint["label"]
    statuses = checkpoint_statuses([c for c in (data.get("verdict") or {}).get("checks") or []])
    tags = {
        "mlflow.parentRunId": parent_id,
        "evalkit.checkpoint": label,
        "evalkit.baseline": "true" if label == data.get("baseline") else "false",
    }
    if label in statuses:
        tags["evalkit.verdict"] = statuses[label]
    nested = client.create_run(experiment, run_name=label, tags=tags).info.run_id
    params = {key: checkpoint.get(key) for key in ("spec", "kind", "fingerprint", "run", "step")}
    _log(
        client,
        nested,
        checkpoint_metrics(data, label),
        params={k: v for k, v in params.items() if v is not None},
        step=checkpoint.get("step") or 0,
    )
    client.set_terminated(nested)


def _log(
    client,
    run_id: str,
    metrics: dict[str, float],
    *,
    tags: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    step: int = 0,
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
    client.log_batch(
        run_id,
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )
    for start in range(0, len(entries), _BATCH):
        client.log_batch(run_id, metrics=entries[start : start + _BATCH])
