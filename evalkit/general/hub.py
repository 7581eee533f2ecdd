"""Can a task's data be read here? The Hugging Face hub's reachability and local dataset caches.

MMLU and IFEval read the hub unless ``data`` points at a local copy. Offline, ``datasets`` retries for
half a minute before failing; evalkit asks once (a 2-second connection attempt, or the
``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` switches) and fails at once with the ``--set`` line to use.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from pathlib import Path

from ..errors import arg

__all__ = [
    "HUB_DATASETS",
    "hub_reachable",
    "hub_dataset_cached",
    "hub_data_problem",
    "task_data_problem",
    "offline_unless_reachable",
]

#: evalkit's built-in lm-eval task kinds -> (hub dataset, what a local copy looks like).
HUB_DATASETS = {
    "mmlu": ("cais/mmlu", "a folder of MMLU's test/<subject>_test.csv files or cais/mmlu parquet files"),
    "mmlu_letter": ("cais/mmlu", "a folder of MMLU's test/<subject>_test.csv files or cais/mmlu parquet files"),
    "ifeval": ("google/IFEval", "IFEval's input_data.jsonl"),
}
_HOST = ("huggingface.co", 443)


def _offline_switch() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the hub answers a TCP connection within ``timeout`` s and no offline switch is set."""
    if _offline_switch():
        return False
    import socket

    result: list[bool] = []

    def attempt() -> None:  # in a thread: name resolution ignores socket timeouts
        try:
            socket.create_connection(_HOST, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


@contextlib.contextmanager
def offline_unless_reachable():
    """Within the block, ``datasets`` and ``huggingface_hub`` run offline when the hub is not reachable.

    For any other lm-eval task (``arc_easy``...), whose dataset evalkit does not know in advance: offline,
    ``datasets`` would retry the hub for ~25 s before failing; in offline mode it uses a local cache at
    once or fails within a second. Both libraries read these flags when called, so setting them here
    (and restoring them after) works after import. Nothing changes when the hub answers. Yields whether
    offline mode was switched on here, so that errors can say the hub was not reachable.
    """
    if _offline_switch() or hub_reachable():
        yield False
        return
    import datasets.config
    import huggingface_hub.constants

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield True
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def hub_dataset_cached(repo: str) -> bool:
    """Whether ``datasets`` or ``huggingface_hub`` already holds a copy of ``repo`` on this machine."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    hub_cache = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    owner, _, name = repo.partition("/")
    return (datasets_cache / f"{owner}___{name}").is_dir() or (hub_cache / f"datasets--{owner}--{name}").is_dir()


def hub_data_problem(task_name: str, kind: str) -> str | None:
    """Why task ``task_name`` (a built-in ``kind`` reading the hub) cannot get its data here, or None."""
    if kind not in HUB_DATASETS:
        return None
    repo, local = HUB_DATASETS[kind]
    if hub_dataset_cached(repo) or hub_reachable():
        return None
    why = "offline (HF_HUB_OFFLINE is set)" if _offline_switch() else "the Hugging Face hub is not reachable from here"
    return (
        f"task {task_name!r} reads {repo} from the hub, but {why}; use a local copy with "
        f"{arg('overrides', repr(task_name + '.data=PATH'))} ({local})"
    )


def task_data_problem(config) -> str | None:
    """Why a task file's data is not available here (a missing file, an unreachable hub), or None.

    For ``evalkit tasks``: cheap checks only (paths and the hub); evaluation checks the content.
    """
    from ..evaluators.base import get_evaluator

    from ..errors import UsageError
    from ..taskconfig import PATH_KEYS

    options = config.options
    try:
        missing = [
            key
            for key in PATH_KEYS
            if isinstance(options.get(key), str) and not config.resolve_path(options[key]).exists()
        ]
    except UsageError as exc:  # a $EVALKIT_DATA path with no data root here
        return exc.marked.split(": ", 1)[-1]  # its parameters still marked for the command line
    if missing:
        return f"{missing[0]} not found: {config.resolve_path(options[missing[0]])}"
    if config.evaluator == "lm_eval" and options.get("data", "") is None:
        kind = get_evaluator("lm_eval")(config).kind.name
        problem = hub_data_problem(config.name, kind)
        return (
            f"needs the hub (not reachable here): {arg('overrides', repr(config.name + '.data=PATH'))}"
            if problem
            else None
        )
    return None
