"""lm-eval task YAMLs that evalkit generates: local data for MMLU/IFEval and the letter-answer MMLU.

lm-eval 0.4.13 reads task overrides from YAML files (``dataset_path``/``dataset_kwargs.data_files``);
inline Python dict groups are not supported, so evalkit writes small YAML folders into its cache, one
per data source, and points a ``TaskManager(include_path=..., include_defaults=False)`` at them. The
same folders can be handed to ``lm_eval.simple_evaluate`` (tests do so to check equality).

Generated MMLU folders reuse lm-eval's own template (``include:`` by absolute path) and group
structure (categories weighted by subject size), with explicit task lists instead of tags so that a
folder holding only some subjects still forms valid groups.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from .._io import atomic_write_text, hash_file, stable_hash
from ..lm_eval_tasks import lm_eval_tasks_dir

__all__ = [
    "mmlu_subjects",
    "mmlu_override_dir",
    "ifeval_override_dir",
    "MMLU_CATEGORIES",
    "MMLU_VARIANTS",
    "GENERATOR_VERSION",
]

#: Bump when generated YAMLs change, so cached folders are rewritten.
GENERATOR_VERSION = "1"
#: lm-eval's category groups, in the order of its ``_mmlu.yaml``.
MMLU_CATEGORIES = ("stem", "other", "social_sciences", "humanities")
#: variant -> (top group name, subtask prefix, metric, filter)
MMLU_VARIANTS = {
    "loglikelihood": ("mmlu", "mmlu_", "acc", "none"),
    "letter": ("mmlu_letter", "mmlu_letter_", "exact_match", "letter"),
}


def _shipped_lm_eval_dir() -> Path:
    from .._paths import shipped_tasks_dir

    return shipped_tasks_dir() / "lm_eval"


@functools.lru_cache(maxsize=1)
def mmlu_subjects() -> dict[str, dict[str, str]]:
    """``{subject: {"category": ..., "description": ...}}`` read from lm-eval's MMLU task files."""
    from .._io import load_yaml

    out = {}
    for path in sorted((lm_eval_tasks_dir() / "mmlu" / "default").glob("mmlu_*.yaml")):
        cfg = load_yaml(path)
        tag = cfg.get("tag", "")
        category = tag[len("mmlu_") : -len("_tasks")] if tag.startswith("mmlu_") and tag.endswith("_tasks") else "other"
        out[cfg["dataset_name"]] = {"category": category, "description": cfg.get("description", "")}
    return out


def _write_if_changed(path: Path, text: str) -> None:
    try:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):  # a damaged cache file: it is rewritten below
        current = None
    if current != text:
        atomic_write_text(path, text)


def _cache_intact(out: Path, stamp: Path) -> bool:
    """Whether a generated folder is complete and undamaged: its stamp lists every file with its sha256.

    The folder is a disposable cache; when this is False it is generated again (with a warning if a
    stamp was there, i.e. the cache was damaged rather than missing).
    """
    if not stamp.is_file():
        return False
    try:
        files = json.loads(stamp.read_text(encoding="utf-8"))["files"]
        intact = all(hash_file(out / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        intact = False
    if not intact:
        from ..errors import warn

        warn(f"{out}: cached lm-eval task files are damaged; recreating them.")
    return intact


def _dump(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=1000)


def _subject_task(variant: str, subject: str, data: dict[str, Path] | None) -> dict:
    _, prefix, _, _ = MMLU_VARIANTS[variant]
    template = (
        lm_eval_tasks_dir() / "mmlu" / "default" / "_default_template_yaml"
        if variant == "loglikelihood"
        else _shipped_lm_eval_dir() / "mmlu_letter_template_yaml"
    )
    cfg: dict = {
        "include": str(template),
        "task": f"{prefix}{subject}",
        "task_alias": subject,
        "description": mmlu_subjects()
        .get(subject, {})
        .get(
            "description",
            f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n",
        ),
    }
    if data is None:
        cfg.update({"dataset_path": "cais/mmlu", "dataset_name": subject})
    else:
        cfg.update(
            {
                "dataset_path": "json",
                "dataset_name": None,
                "dataset_kwargs": {"data_files": {split: str(path) for split, path in sorted(data.items())}},
            }
        )
        if "dev" not in data:
            cfg["fewshot_split"] = None
    return cfg


def _group(name: str, alias: str | None, tasks: list[str], variant: str) -> dict:
    _, _, metric, filter_name = MMLU_VARIANTS[variant]
    agg = {"metric": metric, "weight_by_size": True}
    if filter_name != "none":
        agg["filter_list"] = filter_name
    cfg: dict = {"group": name}
    if alias:
        cfg["group_alias"] = alias
    cfg.update({"task": tasks, "aggregate_metric_list": [agg], "metadata": {"version": 2}})
    return cfg


def _write_mmlu_yamls(out: Path, variant: str, subjects: list[str], data: dict[str, dict[str, Path]] | None) -> None:
    top, prefix, _, _ = MMLU_VARIANTS[variant]
    categories = mmlu_subjects()
    by_category: dict[str, list[str]] = {c: [] for c in MMLU_CATEGORIES}
    for subject in sorted(subjects):
        by_category.setdefault(categories.get(subject, {}).get("category", "other"), []).append(subject)
        cfg = _subject_task(variant, subject, None if data is None else data[subject])
        _write_if_changed(out / "tasks" / f"{prefix}{subject}.yaml", _dump(cfg))
    present = [c for c, members in by_category.items() if members]
    for category in present:
        tasks = [f"{prefix}{s}" for s in by_category[category]]
        _write_if_changed(
            out / "tasks" / f"_{top}_{category}.yaml", _dump(_group(f"{top}_{category}", category, tasks, variant))
        )
    _write_if_changed(
        out / "tasks" / f"_{top}.yaml", _dump(_group(top, None, [f"{top}_{c}" for c in present], variant))
    )


def mmlu_override_dir(
    data: Path | None, variant: str = "loglikelihood", *, source: str = "data"
) -> tuple[Path, list[str]]:
    """Folder of lm-eval YAMLs for MMLU from ``data`` (None: the hub) and the subjects it covers.

    With ``data=None`` and the log-likelihood variant this is lm-eval's own ``mmlu/default`` folder.
    """
    from . import cache_dir
    from .mmlu_data import folder_fingerprint, scan_mmlu_folder, write_jsonl_splits

    if data is None and variant == "loglikelihood":
        return lm_eval_tasks_dir() / "mmlu" / "default", sorted(mmlu_subjects())
    if data is None:
        subjects = sorted(mmlu_subjects())
        out = cache_dir() / "lm_eval_tasks" / f"{variant}-hub-{stable_hash([GENERATOR_VERSION, subjects])}"
        _write_mmlu_yamls(out, variant, subjects, None)
        return out / "tasks", subjects
    folder = scan_mmlu_folder(data, source=source)
    key = stable_hash([GENERATOR_VERSION, variant, str(Path(data).resolve()), folder_fingerprint(folder)])
    out = cache_dir() / "lm_eval_tasks" / f"mmlu-{variant}-{key}"
    stamp = out / "complete.json"
    if not _cache_intact(out, stamp):
        paths = write_jsonl_splits(folder, out / "data")
        _write_mmlu_yamls(out, variant, folder.subjects, paths)
        files = {
            p.relative_to(out).as_posix(): hash_file(p) for p in sorted(out.rglob("*")) if p.is_file() and p != stamp
        }
        atomic_write_text(stamp, json.dumps({"source": str(data), "subjects": folder.subjects, "files": files}) + "\n")
    return out / "tasks", folder.subjects


def ifeval_override_dir(data: Path) -> Path:
    """Folder with an ``ifeval`` task reading Google's IFEval JSONL ``data`` (lm-eval's scoring code)."""
    from . import cache_dir

    digest = hash_file(data)[:16]
    out = (
        cache_dir() / "lm_eval_tasks" / f"ifeval-{stable_hash([GENERATOR_VERSION, str(Path(data).resolve()), digest])}"
    )
    cfg = {
        "include": str(lm_eval_tasks_dir() / "ifeval" / "ifeval.yaml"),
        "task": "ifeval",
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"train": str(Path(data).resolve())}},
    }
    _write_if_changed(out / "ifeval.yaml", _dump(cfg))
    return out
