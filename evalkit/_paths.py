"""Where evalkit's own files are: the shipped task files (package data), found without importing anything."""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_tasks_dir"]


def shipped_tasks_dir() -> Path:
    """Folder of the task files that come with evalkit (``evalkit/tasks/``, package data in wheels)."""
    return Path(__file__).resolve().parent / "tasks"
