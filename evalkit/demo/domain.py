"""The demo's domain training data: the VOC sample's train split, rendered by the ``demo_voc`` task.

The ``voc`` evaluator built from ``evalkit/tasks/demo_voc.yaml`` reads the data and the template, and its own
:class:`~evalkit.voc.prompting.PromptBuilder` renders the training prompts, so the demo models are
trained on exactly the prompt the evaluation sends them (one source of truth: the task file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .train import Example

__all__ = ["DEMO_VOC_TASK", "DomainData", "demo_task_path", "voc_domain_data"]

DEMO_VOC_TASK = "demo_voc"


@dataclass(frozen=True)
class DomainData:
    """The VOC sample rendered as training pairs (train split) and the test prompts (for the vocabulary).

    Defined here, beside the code that builds it, so that ``demo.checkpoints`` (which trains on it) imports
    this module and not the other way round.
    """

    train: list[Example]
    test_prompts: list[str]
    train_texts: list[str] = field(default_factory=list)  # the train comments alone (generic text)
    fingerprint: str = ""
    extra_texts: list[str] = field(default_factory=list)


def demo_task_path(name: str) -> Path:
    """Path of a shipped demo file relative to the tasks folder (``demo_voc``, ``policies/demo_policy``)."""
    from ..taskconfig import shipped_tasks_dir

    return shipped_tasks_dir() / f"{name}.yaml"


def voc_domain_data(task_file: Path | None = None) -> DomainData:
    """``DomainData``: train pairs (rendered prompt, `` <label path>``) and the rendered test prompts."""
    from .._io import stable_hash
    from ..evaluators.base import get_evaluator
    from ..taskconfig import load_task_file
    from ..voc.prompting import PromptBuilder

    config = load_task_file(task_file or demo_task_path(DEMO_VOC_TASK))
    evaluator = get_evaluator(config.evaluator)(config)
    if evaluator.options.num_fewshot or evaluator.options.label_options != "none":
        raise ValueError(
            f"{config.source}: the demo trains zero-shot prompts without a label list; "
            f"set num_fewshot: 0 and label_options: none"
        )
    data, render = evaluator.data, PromptBuilder(evaluator.template_text, evaluator.data.taxonomy).render
    fmt = data.taxonomy.format
    train = [Example(render(ex.text), " " + fmt(ex.path)) for ex in data.train]
    tests = [render(ex.text) for ex in data.test]
    labels = [fmt(p) for p in data.taxonomy.labels]
    fingerprint = stable_hash({"train": [(e.prompt, e.completion) for e in train], "test": tests})
    return DomainData(
        train=train,
        test_prompts=tests,
        train_texts=[ex.text for ex in data.train],
        fingerprint=fingerprint,
        extra_texts=labels,
    )
