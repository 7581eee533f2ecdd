"""The demo's domain training data: the VOC sample's train split, rendered with ``tasks/demo_voc.yaml``.

Prompts come from the voc evaluator's own :class:`~evalkit.voc.prompting.PromptBuilder` with the
task file's template, so what the demo models are trained on is exactly what ``demo_voc`` asks them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_VOC_TASK", "voc_domain_data"]


def _task_path() -> Path:
    from ..taskconfig import shipped_tasks_dir

    return shipped_tasks_dir() / "demo_voc.yaml"


DEMO_VOC_TASK = "demo_voc"


def voc_domain_data(task_file: Path | None = None):
    """``DomainData``: train pairs (rendered prompt, `` <label path>``) and the rendered test prompts."""
    from ..taskconfig import load_task_file
    from ..voc.dataset import DataSpec, file_sha256, load_voc_data
    from ..voc.prompting import PromptBuilder, load_template_text
    from .._io import stable_hash
    from .checkpoints import DomainData
    from .train import Example

    config = load_task_file(task_file or _task_path())
    opts = config.options
    spec = DataSpec(data=config.resolve_path(opts["data"]), train_data=config.resolve_path(opts["train_data"]),
                    taxonomy=config.resolve_path(opts["taxonomy"]), text_field=opts.get("text_field", "text"),
                    id_field=opts.get("id_field"), label_field=opts.get("label_field", "label"))
    data = load_voc_data(spec)
    builder = PromptBuilder(load_template_text(opts.get("prompt_template"), config.base_dir), data.taxonomy)
    label_options = opts.get("label_options", "none")
    train = [Example(builder.render(ex.text, label_options=label_options), " " + data.taxonomy.format(ex.path))
             for ex in data.train]
    tests = [builder.render(ex.text, label_options=label_options) for ex in data.test]
    labels = [data.taxonomy.format(p) for p in data.taxonomy.labels]
    fingerprint = stable_hash({"train": [(e.prompt, e.completion) for e in train], "test": tests})
    return DomainData(train=train, test_prompts=tests, fingerprint=fingerprint, extra_texts=labels)
