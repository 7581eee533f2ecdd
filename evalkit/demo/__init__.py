"""``evalkit demo``: catastrophic forgetting at toy scale, from real training, fully offline.

Three tiny checkpoints are trained on this machine (3 to 6 minutes on 2 idle CPU cores, cached
after the first run; see :mod:`evalkit.demo.checkpoints`) and compared by the same pipeline as
``evalkit compare`` on the ``demo_voc`` (domain) and ``demo_general`` (general) tasks with the
``evalkit/tasks/policies/demo_policy.yaml`` gate (not in ``evalkit/tasks/`` itself, where every YAML is a task).
Expected outcome: domain-only tuning learns the domain and forgets the general facts (its gate
fails); the 75/25 mix learns the domain and keeps them (its gate passes).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..progress import note, result

__all__ = ["run_demo", "DEMO_TASKS", "demo_notes"]

DEMO_TASKS = "demo_voc,demo_general"


def demo_notes(recipe) -> dict[str, str]:
    """What each checkpoint is, for the report's notes (steps from ``recipe``, the one trained)."""
    base, tune = recipe.base.steps, recipe.tune.steps
    return {
        "base": f"trained from scratch on the embedded general set and unlabelled VOC comments ({base} steps)",
        "domain_only": f"base fine-tuned on VOC train only ({tune} steps)",
        "mixed_75_25": f"base fine-tuned on 75% VOC / 25% general questions ({tune} steps)",
    }


_EXPECTED = {"domain_only": "fail", "mixed_75_25": "pass"}


def run_demo(
    out: Path,
    cache_dir: Path | None = None,
    retrain: bool = False,
    store_path=None,
    *,
    recipe=None,
    batch_size: int = 32,
    processes: int | None = None,
) -> int:
    """Build or load the demo checkpoints, compare them, write the report to ``out``; return the exit code.

    ``processes`` bounds the training processes (default: one per CPU core; the weights are the same).

    Returns 0 when the gate shows the expected outcome (domain_only fails on forgetting, the mix
    passes), 1 otherwise (the phenomenon did not appear, e.g. with other library versions).
    """
    import dataclasses

    from .. import api, compare_run
    from ..gate import verdict_text
    from .checkpoints import Recipe, ensure_checkpoints
    from .domain import demo_task_path
    from .train import torch_threads

    recipe = recipe or Recipe()
    # a broken install fails now, not after minutes of training
    tasks = compare_run.prepare_tasks(DEMO_TASKS, policy=demo_task_path("policies/demo_policy"))
    log = note  # progress on stderr; stdout is the report summary
    paths = ensure_checkpoints(cache_dir, retrain=retrain, recipe=recipe, log=log, processes=processes)
    options = api.load_options(**dataclasses.asdict(demo_load_options(batch_size)))
    checkpoints = [api.as_checkpoint(str(path), label=name, options=options) for name, path in paths.items()]
    plan = compare_run.prepare(checkpoints, tasks, baseline="base", notes=demo_notes(recipe))
    with torch_threads(recipe.threads):  # tiny models: extra threads only add synchronisation
        comparison = compare_run.run(plan, store_path)
    assert comparison is not None and comparison.verdict is not None  # one process, with a policy
    result(verdict_text(comparison.verdict))
    for written in comparison.write(Path(out)):
        result(f"wrote {written}")
    _print_table(Path(out))
    return _expected_outcome(Path(out), log)


def _print_table(out: Path) -> None:
    """The demo's result in one table on stdout: the same table as the README's quick start."""
    from .summary import demo_summary, demo_table

    comparison = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    result("\n" + demo_table(demo_summary(comparison)))


def demo_load_options(batch_size: int = 32):
    """How the demo loads its checkpoints: CPU and a fixed batch, nothing that changes outputs.

    The dtype stays the checkpoint's own (float32) rather than being named, so the run key equals a
    plain ``evalkit compare``'s and that command reuses the demo's stored results.
    """
    from ..checkpoints import LoadOptions

    return LoadOptions(batch_size=batch_size, device="cpu")


def _expected_outcome(out: Path, log) -> int:
    """0 if every demo checkpoint got the gate status the demo is meant to show, else 1."""
    statuses = gate_statuses(out / "comparison.json")
    wrong = {label: status for label, status in statuses.items() if _EXPECTED.get(label, status) != status}
    if wrong:
        log(f"demo: unexpected gate outcome {wrong} (expected {_EXPECTED}); see {out / 'report.md'}")
        return 1
    log(
        "demo: as expected, domain_only fails the forgetting gate and mixed_75_25 passes "
        f"(report: {out / 'report.html'})"
    )
    return 0


def gate_statuses(comparison_path: Path) -> dict[str, str]:
    """Each checkpoint's own gate status from a ``comparison.json`` with a verdict."""
    from ..comparison_format import checkpoint_statuses

    verdict = json.loads(comparison_path.read_text(encoding="utf-8")).get("verdict") or {}
    return checkpoint_statuses(verdict.get("checks") or [])
