"""Where lm-eval's task YAMLs are, and their task, group and tag names in about a second, for did-you-mean
on a misspelt ``--tasks`` name. A shared low-level piece: task resolution (:mod:`evalkit.taskconfig`) and
the general axis (:mod:`evalkit.general`) both read it, without importing lm-eval.

lm-eval's ``TaskManager`` parses its ~14,000 YAML files to index the names (20 s or more on a busy
machine). A misspelt name needs only the names: this module reads each file's ``task:``, ``group:``
and ``tag:`` lines with a regular expression and caches the result per lm-eval version. The scan
misses a few names that are built by templates (about 1 %), so a name it does not know is only
rejected when no lm-eval folder could define it either; otherwise lm-eval itself decides.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["lm_eval_tasks_dir", "lm_eval_task_names", "could_be_lm_eval_task", "check_task_name"]

_KEY = re.compile(r"""^["']?(task|group|tag)["']?\s*:[ \t]*(.*)$""", re.M)
_ITEM = re.compile(r"""^\s*-\s+["']?([^"'\s#]+)["']?\s*$""")


def lm_eval_tasks_dir() -> Path:
    """The installed ``lm_eval/tasks`` folder (found without importing lm_eval)."""
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        from .errors import UsageError

        raise UsageError("lm-eval is not installed; `pip install lm-eval` (evalkit needs lm-eval 0.4.13).")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


def _names_in(text: str) -> set[str]:
    names: set[str] = set()
    for match in _KEY.finditer(text):
        value = match.group(2).split(" #")[0].strip().strip("'\"")
        if value.startswith("["):
            names.update(part.strip().strip("'\"") for part in value.strip("[]").split(",") if part.strip())
        elif value and not value.startswith(("!", "{")):
            names.add(value)
        elif not value and match.group(1) == "tag":  # a YAML list of tags on the following lines
            for line in text[match.end() :].splitlines()[1:]:
                item = _ITEM.match(line)
                if not item:
                    break
                names.add(item.group(1))
    return names


def _scan(root: Path) -> list[str]:
    names: set[str] = set()
    for folder, _dirs, files in os.walk(root):
        for file in files:
            if file.endswith((".yaml", ".yml")):
                names |= _names_in((Path(folder) / file).read_text(encoding="utf-8", errors="replace"))
    return sorted(names)


def lm_eval_task_names() -> list[str]:
    """lm-eval's task/group/tag names (a regex scan of its YAML files, cached per lm-eval version)."""
    import json
    from importlib import metadata

    from ._io import atomic_write_text, cache_dir

    cache = cache_dir() / f"lm-eval-task-names-{metadata.version('lm-eval')}.json"
    try:
        names = json.loads(cache.read_text(encoding="utf-8"))
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names  # anything else is a damaged cache: scanned and written again below
    except (OSError, ValueError):
        pass
    names = _scan(lm_eval_tasks_dir())
    try:
        atomic_write_text(cache, json.dumps(names))
    except OSError:  # a read-only cache only costs the scan next time
        pass
    return names


def could_be_lm_eval_task(name: str) -> bool:
    """Whether ``name`` is one of lm-eval's scanned names or one of its task folders could define it
    (``afrixnli_tasks`` under ``afrixnli/``): ``False`` means certainly unknown, without lm-eval's full index."""
    if name in lm_eval_task_names():
        return True
    return any(name == d.name or name.startswith(d.name + "_") for d in lm_eval_tasks_dir().iterdir() if d.is_dir())


def check_task_name(name: str, shipped: list[str]) -> None:
    """Raise :class:`UsageError` with did-you-mean when ``name`` is neither shipped nor an lm-eval name.

    A name the scan does not know is left to lm-eval when one of lm-eval's task folders could define
    it (``afrixnli_tasks`` under ``afrixnli/``): the scan is fast, not exhaustive.
    """
    import difflib

    from .errors import UsageError

    if could_be_lm_eval_task(name):
        return
    known = lm_eval_task_names()
    close = difflib.get_close_matches(name, shipped, n=3, cutoff=0.6)
    close += [c for c in difflib.get_close_matches(name, known, n=3, cutoff=0.6) if c not in close][: 3 - len(close)]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UsageError(
        f"unknown task {name!r}: not a shipped task, a task file or one of lm-eval's "
        f"{len(known):,} task/group/tag names.{hint} Shipped tasks: {', '.join(shipped)} "
        f"(`evalkit tasks` describes them).",
        param="tasks",
    )
