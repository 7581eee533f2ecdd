"""Record a :class:`~evalkit.Comparison` in Weights & Biases (``Comparison.log_to_wandb``, ``evalkit compare --log wandb``).

Where it goes follows wandb's own settings (``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_MODE=offline``,
``WANDB_DIR``). W&B has no nested runs, so one run holds everything, each checkpoint under its label:

* summary ``LABEL/TASK.METRIC`` (the value) and ``LABEL/TASK.METRIC.FIELD`` for every other numeric field
  of the checkpoint's metric rows (``ci_low``, ``ci_high``, ``delta``, ``delta_ci_low``, ``p_value``, any
  adjusted p-value the comparison has, ...), as evalkit computed them;
* the verdict: summary ``evalkit/verdict`` and ``evalkit/verdict/LABEL`` (each checkpoint's own status),
  tag ``evalkit:STATUS``; config ``evalkit`` (baseline, checkpoints, policy);
* ``evalkit/study``: the report's study table as a ``wandb.Table`` (value, delta and p per headline metric);
* the report folder (what :meth:`Comparison.write` writes) as an artifact of type ``evalkit-report``.

A run evalkit starts itself is silent (the library never prints) and finished again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .extras import require
from ._tracking import checkpoint_metrics

__all__ = ["log_comparison", "summary_values", "study_rows", "ARTIFACT_TYPE", "STUDY_KEY"]

ARTIFACT_TYPE = "evalkit-report"
STUDY_KEY = "evalkit/study"


def summary_values(comparison: dict[str, Any]) -> dict[str, Any]:
    """Everything the run summary gets: each checkpoint's metric fields and the verdict."""
    from ..comparison_format import checkpoint_statuses

    values: dict[str, Any] = {}
    for checkpoint in comparison["checkpoints"]:
        label = checkpoint["label"]
        values.update({f"{label}/{key}": value for key, value in checkpoint_metrics(comparison, label).items()})
    verdict = comparison.get("verdict")
    if verdict:
        values["evalkit/verdict"] = verdict["status"]
        values.update(
            {
                f"evalkit/verdict/{label}": status
                for label, status in checkpoint_statuses(verdict.get("checks") or []).items()
            }
        )
    return values


def study_rows(comparison: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The report's study table as columns and rows: checkpoint, note, then value, delta and p per column."""
    from ..report import study_table

    study = study_table(comparison)
    columns = ["checkpoint", "note"]
    for column in study["columns"]:
        name = f"{column['task']}.{column['metric']}"
        columns += [name, f"{name} delta", f"{name} p_value"]
    rows = []
    for row in study["rows"]:
        values = [row["checkpoint"], row["note"]]
        for cell in row["cells"]:
            values += (
                [None, None, None] if cell is None else [cell.get("value"), cell.get("delta"), cell.get("p_value")]
            )
        rows.append(values)
    return columns, rows


def log_comparison(comparison, run: Any = None, *, report: bool = True) -> str:
    """Log ``comparison`` (a :class:`~evalkit.Comparison`) to W&B; return the run's id.

    ``run``: a ``wandb`` run to log into; None: the current run (``wandb.run``), else a new silent run
    (job type ``evalkit-compare``), finished again here.
    """
    wandb = require("wandb", "logging to Weights & Biases", param="log")
    started = run is None and wandb.run is None
    if started:
        run = wandb.init(
            job_type="evalkit-compare",
            name=f"evalkit {' vs '.join(comparison.labels)}",
            settings=wandb.Settings(silent=True, console="off"),
        )
    elif run is None:
        run = wandb.run
    try:
        _log(wandb, run, comparison, report)
    finally:
        if started:
            run.finish()
    return run.id


def _log(wandb, run, comparison, report: bool) -> None:
    data = comparison.data
    verdict = comparison.verdict
    run.config.update(
        {
            "evalkit": {
                "baseline": data.get("baseline"),
                "checkpoints": comparison.labels,
                "policy": verdict.policy if verdict is not None else None,
            }
        },
        allow_val_change=True,
    )
    if verdict is not None:
        run.tags = tuple(run.tags or ()) + (f"evalkit:{verdict.status}",)
    run.summary.update(summary_values(data))
    columns, rows = study_rows(data)
    run.log({STUDY_KEY: wandb.Table(columns=columns, data=rows)})
    if report:
        artifact = wandb.Artifact(
            "evalkit-report", type=ARTIFACT_TYPE, description=f"evalkit report: {', '.join(comparison.labels)}"
        )
        with tempfile.TemporaryDirectory(prefix="evalkit-wandb-") as folder:
            comparison.write(folder)
            for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):  # add_dir would print
                artifact.add_file(str(path), name=path.relative_to(folder).as_posix())  # copied to wandb's staging
            run.log_artifact(artifact)
