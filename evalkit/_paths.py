"""Where evalkit's own files are: the shipped task files (package data), found without importing anything."""

from __future__ import annotations

from pathlib import Path

import os

__all__ = ["shipped_tasks_dir", "data_root", "DATA_ROOT_VARIABLE"]

#: The environment variable naming the folder external task data lives under (``$EVALKIT_DATA/voc/cfpb/...``).
DATA_ROOT_VARIABLE = "EVALKIT_DATA"


def shipped_tasks_dir() -> Path:
    """Folder of the task files that come with evalkit (``evalkit/tasks/``, package data in wheels)."""
    return Path(__file__).resolve().parent / "tasks"


def data_root() -> Path | None:
    """The folder task files' ``$EVALKIT_DATA/...`` paths are under, or None when there is none here.

    ``$EVALKIT_DATA`` when set; otherwise, when evalkit runs from a source checkout, the ``shared/data``
    folder beside the checkout (``../shared/data`` seen from the repository), if it exists. A wheel
    install has no default: set ``EVALKIT_DATA``.
    """
    if os.environ.get(DATA_ROOT_VARIABLE):
        return Path(os.environ[DATA_ROOT_VARIABLE]).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    sibling = checkout.parent / "shared" / "data"
    if (checkout / "pyproject.toml").is_file() and sibling.is_dir():
        return sibling
    return None
