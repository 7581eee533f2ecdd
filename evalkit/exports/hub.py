"""A checkpoint's evaluation results in its Hugging Face model card (``evalkit card DIR --from comparison.json``).

The card's ``model-index`` gets one ``huggingface_hub.EvalResult`` per metric row of the checkpoint in the
comparison, written through ``huggingface_hub.ModelCard`` into ``DIR/README.md`` (created from the hub's
template when missing; otherwise its text and other front matter are kept, and results from other sources
stay). Each result carries the task (as dataset type and name, with its split when the task names one),
the metric and its value as evalkit computed it. The front matter's ``evalkit`` entry records the verdict:
the checkpoint's own status, the baseline, the policy, and per metric the interval, the delta against the
baseline and its p-value; on an update the results it lists are replaced, any other result stays. Pushing the card is left to the user
(``hf upload`` / ``huggingface-cli upload``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError, arg
from .extras import require

__all__ = ["write_model_card", "card_results", "checkpoint_label", "TASK_TYPE"]

#: evalkit evaluates language models: every task is text generation on the hub's task list.
TASK_TYPE = "text-generation"
_DETAIL_FIELDS = (
    "ci_low",
    "ci_high",
    "baseline_value",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "p_value",
    "test",
    "n",
)


def checkpoint_label(comparison: dict[str, Any], checkpoint_dir: str | Path, label: str | None = None) -> str:
    """Which checkpoint of the comparison the folder is: ``label``, else the one whose spec is that folder,
    else the only non-baseline checkpoint."""
    labels = [c["label"] for c in comparison["checkpoints"]]
    if label is not None:
        if label not in labels:
            raise UsageError(
                f"label {label!r} is not a checkpoint of the comparison; it has {', '.join(labels)}.", param="label"
            )
        return label
    folder = Path(checkpoint_dir).resolve()
    matching = [c["label"] for c in comparison["checkpoints"] if _spec_path(c.get("spec")) == folder]
    tuned = [name for name in labels if name != comparison.get("baseline")]
    if len(matching) == 1:
        return matching[0]
    if len(tuned) == 1:
        return tuned[0]
    raise UsageError(
        f"{checkpoint_dir} is not the spec of one checkpoint of the comparison; name it with "
        f"{arg('label', 'NAME')} (one of {', '.join(labels)}).",
        param="label",
    )


def _spec_path(spec: Any) -> Path | None:
    if not isinstance(spec, str) or not spec:
        return None
    return Path(spec.split("=", 1)[-1] if "=" in spec and not Path(spec).exists() else spec).resolve()


def card_results(comparison: dict[str, Any], label: str) -> list:
    """The ``huggingface_hub.EvalResult`` of every metric row of ``label`` that has a value."""
    hub = require("huggingface_hub", "writing a model card", param=None)
    settings = {task["name"]: task.get("settings") or {} for task in comparison["tasks"]}
    results = []
    for row in comparison["metrics"]:
        if row["checkpoint"] != label or row.get("value") is None:
            continue
        split = settings.get(row["task"], {}).get("split")
        results.append(
            hub.EvalResult(
                task_type=TASK_TYPE,
                task_name=row["task"],
                dataset_type=row["task"],
                dataset_name=row["task"],
                dataset_split=split if isinstance(split, str) else None,
                metric_type=row["metric"],
                metric_name=row["metric"],
                metric_value=row["value"],
                verified=False,
            )
        )
    return results


def _verdict_entry(comparison: dict[str, Any], label: str) -> dict[str, Any]:
    from ..comparison_format import checkpoint_statuses

    verdict = comparison.get("verdict") or {}
    statuses = checkpoint_statuses(verdict.get("checks") or [])
    details = {
        f"{row['task']}.{row['metric']}": {key: row.get(key) for key in _DETAIL_FIELDS if row.get(key) is not None}
        for row in comparison["metrics"]
        if row["checkpoint"] == label
    }
    return {
        "checkpoint": label,
        "baseline": comparison.get("baseline"),
        "verdict": statuses.get(label),
        "policy": verdict.get("policy"),
        "confidence": (comparison.get("settings") or {}).get("confidence"),
        "metrics": details,
    }


def write_model_card(checkpoint_dir: str | Path, comparison, label: str | None = None) -> Path:
    """Write or update ``checkpoint_dir/README.md`` with the comparison's results for the checkpoint; return its path.

    ``comparison`` is a :class:`~evalkit.Comparison`; ``label`` names the checkpoint when the folder is not
    the spec of exactly one (see :func:`checkpoint_label`).
    """
    from .._io import atomic_write_text

    hub = require("huggingface_hub", "writing a model card", param=None)
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise UsageError(
            f"{folder} is not a folder; give the checkpoint folder whose README.md gets the results.",
            param="checkpoint_dir",
        )
    data = comparison.data
    label = checkpoint_label(data, folder, label)
    path = folder / "README.md"
    card = hub.ModelCard.load(path) if path.is_file() else hub.ModelCard.from_template(hub.ModelCardData())
    previous = getattr(card.data, "evalkit", None)
    ours = set((previous.get("metrics") or {}) if isinstance(previous, dict) else ())
    kept = [r for r in (card.data.eval_results or []) if f"{r.task_name}.{r.metric_type}" not in ours]
    card.data.eval_results = kept + card_results(data, label)
    card.data.model_name = card.data.model_name or folder.resolve().name
    card.data.evalkit = _verdict_entry(data, label)
    atomic_write_text(path, str(card))
    return path
