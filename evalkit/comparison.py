""":class:`Comparison`: the outcome of :func:`evalkit.compare`, with the gate and the report writers on it.

It wraps the ``comparison.json`` dictionary (schema in ``docs/comparison-schema.md``) and the results
it was built from, so ``comparison.write(out)`` writes the same folder as ``evalkit compare --out``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .records import EvalResult

if TYPE_CHECKING:
    from ._io import OutputFolder
    from .gate import Verdict

__all__ = ["Comparison", "read_comparison"]


class Comparison:
    """Paired comparison of checkpoints against a baseline.

    Attributes
    ----------
    data : dict
        The ``comparison.json`` content (metric rows with deltas, intervals and p-values,
        breakdowns, flips, summary; ``data["verdict"]`` once gated).
    results : list of EvalResult
        The results given as objects (written to ``results/LABEL.json`` by :meth:`write`); results
        read from files are not written again.
    verdict : Verdict or None
        Set by :meth:`gate`; read from ``data["verdict"]``, where it is stored (once).
    """

    def __init__(self, data: dict[str, Any], *, results: list[EvalResult] | None = None, verdict: Any = None):
        from .comparison_format import check_comparison

        self.data = check_comparison(data)
        self.results = list(results or [])
        self._verdict: tuple[Any, Any] = (None, None)  # (the dict in data["verdict"], its Verdict object)
        if verdict is not None:
            self.verdict = verdict

    @property
    def verdict(self) -> Any:
        """The :class:`~evalkit.gate.Verdict` stored in ``data["verdict"]``, or None before :meth:`gate`."""
        stored = self.data.get("verdict")
        if not stored:
            return None
        if self._verdict[0] is not stored:
            from .gate import Verdict

            self._verdict = (stored, Verdict.from_dict(stored))
        return self._verdict[1]

    @verdict.setter
    def verdict(self, verdict: Any) -> None:
        stored = verdict.to_dict()
        self.data["verdict"] = stored
        self._verdict = (stored, verdict)

    # ------------------------------------------------------------------------------ reading
    @property
    def baseline(self) -> str:
        return self.data["baseline"]

    @property
    def labels(self) -> list[str]:
        """Checkpoint labels in display order (the baseline among them)."""
        return [c["label"] for c in self.data["checkpoints"]]

    @property
    def tasks(self) -> list[str]:
        return [t["name"] for t in self.data["tasks"]]

    def metric(self, task: str, metric: str | None = None, checkpoint: str | None = None) -> dict[str, Any]:
        """The metric row of ``task`` (its primary metric unless ``metric``) for ``checkpoint`` (default: the
        last one): value, ``ci_low``/``ci_high``, ``delta`` with its interval, ``p_value``, ``test``, ``n``."""
        return _metric_row(self, task, metric, checkpoint)

    def summary(self) -> str:
        """One line per task and checkpoint: the primary metric, its change against the baseline and p."""
        return _summary(self)

    def trajectory(self) -> dict[str, Any] | None:
        """Learning (domain primary) and forgetting (general primary) per run, ordered by step, and the
        Pareto-optimal checkpoints across runs; None when no checkpoint has a step (see
        :func:`evalkit.report.trajectory.trajectory`)."""
        from .report.trajectory import trajectory

        return trajectory(self.data)

    def recommendation(self) -> dict[str, Any] | None:
        """The checkpoint to ship among training saves (``label``, ``run``, ``step``, the ``rule`` that chose it,
        or ``label`` None with a ``reason``); None when the checkpoints form no training trajectory. The rule:
        :data:`evalkit.report.trajectory.RECOMMENDATION_RULE`."""
        context = self.trajectory()
        return None if context is None else dict(context["recommended"])

    def __repr__(self) -> str:
        gated = f", verdict={self.verdict.status!r}" if self.verdict is not None else ""
        return f"<Comparison baseline={self.baseline!r} checkpoints={self.labels} tasks={self.tasks}{gated}>"

    def _repr_html_(self) -> str:
        """Jupyter's view: the report's verdict, summary cards and study table."""
        from .report.notebook import comparison_html

        return comparison_html(self.data)

    def to_pandas(self, table: str = "metrics") -> Any:
        """The metric rows (``table="breakdowns"``: the breakdown rows) as a ``pandas.DataFrame``.

        One row per task, metric and checkpoint: value and interval, baseline value, delta and its
        interval, test, p and adjusted p, ``significant`` and the gate's ``decision``; any further field
        of the rows follows. Columns: ``docs/integrations.md``.
        """
        from .exports.pandas import comparison_frame

        return comparison_frame(self.data, table)

    # ------------------------------------------------------------------------------ experiment trackers
    def log_to_mlflow(self, run: Any = None, *, report: bool = True) -> str:
        """Record the comparison in MLflow; return the parent run's id (needs ``evalkit[mlflow]``).

        ``run``: a run id or ``mlflow`` run to log into; None: the active run, else a new one. Each
        checkpoint gets a nested run with its metrics and their interval bounds; the parent gets the
        deltas and p-values, the verdict as tags and, with ``report``, the report folder as artifacts.
        See :mod:`evalkit.exports.mlflow`.
        """
        from .exports.mlflow import log_comparison

        return log_comparison(self, run=run, report=report)

    def log_to_wandb(self, run: Any = None, *, report: bool = True) -> str:
        """Record the comparison in Weights & Biases; return the run's id (needs ``evalkit[wandb]``).

        ``run``: a ``wandb`` run to log into; None: the current run, else a new one. Metrics, deltas and
        p-values go to the run summary, the verdict to tags and summary, the study table as a
        ``wandb.Table``, the report folder as an artifact. See :mod:`evalkit.exports.wandb`.
        """
        from .exports.wandb import log_comparison

        return log_comparison(self, run=run, report=report)

    def to_model_card(self, checkpoint_dir: str | Path, label: str | None = None) -> Path:
        """Write (or update) the ``model-index`` results and the verdict of one checkpoint in
        ``checkpoint_dir/README.md`` (needs ``evalkit[hub]``); return the card's path.

        ``label`` names the checkpoint when ``checkpoint_dir`` is not the spec of exactly one. See
        :mod:`evalkit.exports.hub`; ``evalkit card DIR --from comparison.json`` on the command line.
        """
        from .exports.hub import write_model_card

        return write_model_card(checkpoint_dir, self, label=label)

    # ------------------------------------------------------------------------------ gating and writing
    def gate(self, policy: Any) -> Verdict:
        """Apply a release policy (a YAML path, a policy mapping or a :class:`~evalkit.gate.Policy`).

        The verdict is kept on the comparison (``self.verdict`` and ``data["verdict"]``), so
        :meth:`write` renders it and writes ``junit.xml`` and ``verdict.json`` too.

        Returns
        -------
        Verdict
            ``verdict.passed``, ``verdict.failures``, ``str(verdict)`` explain the outcome.
        """
        from .gate import as_policy, evaluate_policy

        self.verdict = evaluate_policy(as_policy(policy), self.data)
        return self.verdict

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write the report folder ``evalkit compare --out`` writes; return the paths.

        ``results/LABEL.json`` for each result object, ``report.html``, ``report.md``,
        ``comparison.json``, ``metrics.csv``, and after :meth:`gate` ``junit.xml`` and ``verdict.json``.
        """
        return _write_folder(self, out_dir)

    def write_report(self, out_dir: str | Path | OutputFolder) -> list[Path]:
        """Only ``report.html``, ``report.md``, ``comparison.json`` and ``metrics.csv`` (``evalkit report``)."""
        return _write_report(self.data, out_dir)

    # ------------------------------------------------------------------------------ serialising
    def to_dict(self) -> dict[str, Any]:
        """The ``comparison.json`` content (a copy)."""
        return copy.deepcopy(self.data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Comparison":
        return cls(copy.deepcopy(data))

    @classmethod
    def load(cls, path: str | Path) -> "Comparison":
        """Read a ``comparison.json`` written by :meth:`write` or ``evalkit compare``."""
        from . import _validate
        from .comparison_format import load_comparison

        return cls(load_comparison(_validate.path(path, param="path")))


def read_comparison(path: str | Path) -> Comparison:
    """Load a folder written by :meth:`Comparison.write` (or ``evalkit compare --out``) as a :class:`Comparison`.

    ``path`` is the folder or its ``comparison.json``. The verdict comes back when the comparison was
    gated, and ``results`` holds the ``results/LABEL.json`` files the folder has.
    """
    folder = Path(path)
    file = folder / "comparison.json" if folder.is_dir() else folder
    comparison = Comparison.load(file)
    for label in comparison.labels:
        result_path = file.parent.joinpath(*results_file_name(label))
        if result_path.is_file():
            comparison.results.append(EvalResult.load(result_path))
    return comparison


def _metric_row(comparison: Comparison, task: str, metric: str | None, checkpoint: str | None) -> dict[str, Any]:
    """:meth:`Comparison.metric`: the row, or a KeyError naming what is missing."""
    entry = next((t for t in comparison.data["tasks"] if t["name"] == task), None)
    if entry is None:
        raise KeyError(f"no task {task!r} in this comparison; tasks: {', '.join(comparison.tasks)}")
    metric = metric or entry.get("primary_metric")
    checkpoint = checkpoint or comparison.labels[-1]
    for row in comparison.data["metrics"]:
        if row["task"] == task and row["metric"] == metric and row["checkpoint"] == checkpoint:
            return dict(row)
    raise KeyError(f"no row for {task}.{metric} on checkpoint {checkpoint!r}")


def _summary(comparison: Comparison) -> str:
    """:meth:`Comparison.summary`: a header line, one line per task and checkpoint, the gate's status."""
    from .report import fmt_delta, fmt_value

    lines = [f"baseline {comparison.baseline}; {len(comparison.labels)} checkpoints, {len(comparison.tasks)} tasks"]
    for task in comparison.data["tasks"]:
        for label in comparison.labels:
            try:
                row = comparison.metric(task["name"], checkpoint=label)
            except KeyError:
                continue
            change = (
                ""
                if label == comparison.baseline
                else (
                    f"  {fmt_delta(row.get('delta'))} [{fmt_delta(row.get('delta_ci_low'))}, "
                    f"{fmt_delta(row.get('delta_ci_high'))}]"
                    + (f"  p={row['p_value']:.3g}" if isinstance(row.get("p_value"), float) else "")
                )
            )
            lines.append(
                f"  {task['name']}.{row['metric']} ({task['axis']})  {label}: {fmt_value(row.get('value'))}{change}"
            )
    if comparison.verdict is not None:
        lines.append(f"gate: {comparison.verdict.status.upper()}")
    return "\n".join(lines)


def _write_folder(comparison: Comparison, out_dir: str | Path) -> list[Path]:
    """:meth:`Comparison.write`: the result objects, the report files and, once gated, the gate's files."""
    from . import _validate
    from ._io import OutputFolder, dump_json

    with OutputFolder(
        _validate.path(out_dir, param="out_dir")
    ) as folder:  # every file through the one write guard; manifest.json last
        written = [
            folder.write_text(*results_file_name(r.checkpoint.label), text=dump_json(r.to_dict()))
            for r in comparison.results
        ]
        written += comparison.write_report(folder)
        if comparison.verdict is not None:
            from .gate import write_gate_outputs

            written += write_gate_outputs(comparison.verdict, folder)
    return written


def _write_report(data: dict[str, Any], out_dir: str | Path | OutputFolder) -> list[Path]:
    """:meth:`Comparison.write_report`: the report files of ``data`` in a path checked here or an open folder."""
    from . import _validate
    from ._io import OutputFolder
    from .report import write_reports

    if not isinstance(out_dir, OutputFolder):
        _validate.path(out_dir, param="out_dir")
    return write_reports(data, out_dir if isinstance(out_dir, OutputFolder) else Path(out_dir))


def results_file_name(label: str) -> tuple[str, str]:
    """Where a checkpoint's results go in an output folder: ``results/<label>.json``, the label made a
    safe file name (a label from a server spec or data could hold ``/`` or ``..``; see
    :func:`evalkit._io.safe_file_name`)."""
    from ._io import safe_file_name

    return ("results", safe_file_name(label, ".json"))
