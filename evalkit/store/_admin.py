"""What ``evalkit store`` does: list runs, export and import them, drop the ones no code can reuse.

An export is a JSON Lines file: a header line, then one line per run holding the ``runs`` row's
columns verbatim and its samples (``{sample_id: record}``, the stored JSON text), runs in run-key
order. The same stored runs give the same bytes from either backend, so an export is also a
deterministic CI cache. Importing keeps what the store has, adds what it lacks, and lets a complete
run replace an unfinished one; it validates the whole file first and writes in one transaction,
so a bad file changes nothing.
"""

from __future__ import annotations

import json
import math
from importlib import metadata
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, read_text
from ..errors import UsageError
from ..records import SampleRecord, TaskResult
from ._store import RUN_COLUMNS, STORE_VERSION, ResultStore, _decode, _DAMAGED

__all__ = ["list_runs", "export_store", "import_store", "collect_garbage", "EXPORT_FORMAT"]

#: Version of the export file layout (its header's ``evalkit_store_export``).
EXPORT_FORMAT = 1
#: The identity columns (all of ``RUN_COLUMNS`` before ``status``): non-empty text in an export file.
_TEXT_COLUMNS = RUN_COLUMNS[: RUN_COLUMNS.index("status")]


def list_runs(store: ResultStore) -> list[dict[str, Any]]:
    """Every run (complete or not), newest first: key, checkpoint label, task, status, samples stored, times.

    ``created``/``updated`` are Unix times.
    """
    rows = store._db.query(
        "SELECT r.run_key, r.fingerprint, r.task, r.evaluator, r.evaluator_version, r.lm_eval_version, r.checkpoint, "
        "r.status, r.created, r.updated, (SELECT COUNT(*) FROM samples s WHERE s.run_key = r.run_key) FROM runs r"
    )
    runs = []
    for (
        run_key,
        fingerprint,
        task,
        evaluator,
        evaluator_version,
        lm_eval_version,
        checkpoint,
        status,
        created,
        updated,
        samples,
    ) in rows:
        runs.append(
            {
                "run_key": run_key,
                "label": _label(checkpoint),
                "fingerprint": fingerprint,
                "task": task,
                "evaluator": evaluator,
                "evaluator_version": evaluator_version,
                "lm_eval_version": lm_eval_version,
                "status": status,
                "samples": int(samples),
                "created": float(created),
                "updated": float(updated),
            }
        )
    return sorted(runs, key=lambda run: (-run["updated"], run["run_key"]))


def _label(checkpoint: str) -> str:
    try:
        info = json.loads(checkpoint)
        return str(info.get("label", "?")) if isinstance(info, dict) else "?"
    except ValueError:
        return "?"


# ---------------------------------------------------------------------------------------- export / import


def export_store(store: ResultStore, path: str | Path) -> int:
    """Write every run of ``store`` with its samples to ``path`` (JSON Lines); returns the number of runs."""
    columns = ", ".join(RUN_COLUMNS)
    runs = sorted(store._db.query(f"SELECT {columns} FROM runs"))
    lines = [json.dumps({"evalkit_store_export": EXPORT_FORMAT, "store_version": STORE_VERSION}, sort_keys=True)]
    for row in runs:
        entry = dict(zip(RUN_COLUMNS, row))
        entry["created"], entry["updated"] = float(entry["created"]), float(entry["updated"])
        samples = store._db.query("SELECT sample_id, record FROM samples WHERE run_key=?", (entry["run_key"],))
        entry["samples"] = dict(samples)
        lines.append(json.dumps(entry, sort_keys=True))
    try:
        atomic_write_text(path, "\n".join(lines) + "\n")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the export ({exc.strerror or exc}); pass another PATH.") from None
    return len(runs)


def import_store(store: ResultStore, path: str | Path) -> dict[str, int]:
    """Add the runs of an export file to ``store``.

    Returns counts: ``runs_in_file``, ``runs_added``, ``runs_completed`` (how many more runs are complete
    than before: new complete runs and unfinished ones the file completed) and ``samples_added``.
    """
    entries = _read_export(Path(path))

    def work(run) -> dict[str, int]:
        before = _counts(run)
        placeholders = ",".join("?" * len(RUN_COLUMNS))
        run(
            f"INSERT INTO runs VALUES ({placeholders}) ON CONFLICT(run_key) DO UPDATE SET status=excluded.status, "
            "result=excluded.result, checkpoint=excluded.checkpoint, updated=excluded.updated "
            "WHERE runs.status <> 'complete' AND excluded.status = 'complete'",
            [tuple(entry[c] for c in RUN_COLUMNS) for entry in entries],
        )
        samples = sorted(
            (entry["run_key"], sid, record) for entry in entries for sid, record in entry["samples"].items()
        )
        run("INSERT INTO samples VALUES (?,?,?) ON CONFLICT(run_key, sample_id) DO NOTHING", samples)
        after = _counts(run)
        return {
            "runs_in_file": len(entries),
            "runs_added": after[0] - before[0],
            "runs_completed": after[1] - before[1],
            "samples_added": after[2] - before[2],
        }

    return (
        store._db.transaction(work)
        if entries
        else {"runs_in_file": 0, "runs_added": 0, "runs_completed": 0, "samples_added": 0}
    )


def _counts(run) -> tuple[int, int, int]:
    runs, complete = run("SELECT COUNT(*), SUM(CASE WHEN status='complete' THEN 1 ELSE 0 END) FROM runs")[0]
    return int(runs), int(complete or 0), int(run("SELECT COUNT(*) FROM samples")[0][0])


def _read_export(path: Path) -> list[dict[str, Any]]:
    """The runs of an export file, every field checked (the file may come from anywhere: a CI cache, a colleague)."""
    text = read_text(path, what="store export", hint="; pass a file written by `evalkit store export`")
    lines = text.splitlines()
    header = _json_line(path, 1, lines[0] if lines else "")
    if not isinstance(header, dict) or "evalkit_store_export" not in header:
        raise UsageError(
            f"{path}:1: not an evalkit store export (no evalkit_store_export header); "
            f"pass a file written by `evalkit store export`."
        )
    if header["evalkit_store_export"] != EXPORT_FORMAT:
        raise UsageError(
            f"{path}:1: export format {header['evalkit_store_export']!r} is not {EXPORT_FORMAT}; "
            f"import it with the evalkit version that exported it, or upgrade evalkit."
        )
    entries, seen = [], set()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        entry = _checked_entry(path, number, _json_line(path, number, line))
        if entry["run_key"] in seen:
            raise UsageError(f"{path}:{number}: run {entry['run_key']} appears twice; export the store again.")
        seen.add(entry["run_key"])
        entries.append(entry)
    return entries


def _json_line(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{path}:{number}: not JSON ({type(exc).__name__}); export the store again.") from None


def _checked_entry(path: Path, number: int, entry: Any) -> dict[str, Any]:
    where = f"{path}:{number}"
    if not isinstance(entry, dict) or set(entry) != {*RUN_COLUMNS, "samples"}:
        raise UsageError(
            f"{where}: expected a run with the fields {', '.join(RUN_COLUMNS)}, samples; export the store again."
        )
    for column in _TEXT_COLUMNS:
        if not isinstance(entry[column], str) or not entry[column] or "\x00" in entry[column]:
            raise UsageError(f"{where}: {column} must be a non-empty string; export the store again.")
    for column in ("created", "updated"):
        value = entry[column]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(f"{where}: {column} must be a finite number; export the store again.")
    if entry["status"] not in ("running", "complete"):
        raise UsageError(f"{where}: status must be 'running' or 'complete'; export the store again.")
    _check_decodes(where, "checkpoint", entry["checkpoint"], lambda data: data)
    if entry["status"] == "complete" or entry["result"] is not None:
        _check_decodes(where, "result", entry["result"], TaskResult.from_dict)
    samples = entry["samples"]
    if not isinstance(samples, dict):
        raise UsageError(f"{where}: samples must be an object of sample id -> record; export the store again.")
    for sample_id, record in samples.items():
        if "\x00" in sample_id:
            raise UsageError(f"{where}: sample id {sample_id!r} holds a NUL character; export the store again.")
        _check_decodes(where, f"sample {sample_id!r}", record, SampleRecord.from_dict)
    return entry


def _check_decodes(where: str, what: str, text: Any, build) -> None:
    try:
        if not isinstance(text, str) or "\x00" in text:
            raise TypeError("not a JSON string")
        _decode(text, build)
    except (*_DAMAGED, json.JSONDecodeError) as exc:
        raise UsageError(f"{where}: {what} is damaged ({type(exc).__name__}); export the store again.") from None


# ---------------------------------------------------------------------------------------- gc


def collect_garbage(store: ResultStore, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """Drop the runs this installation can never reuse: another lm-eval version, or another version of an
    installed evaluator. Runs of evaluators not installed here are kept (another machine may use them).

    Returns the runs dropped (or, with ``dry_run``, that would be), each with its ``reason``.
    """
    dropped = []
    for run in list_runs(store):
        reason = _unusable_reason(run)
        if reason:
            dropped.append({**run, "reason": reason})
    if dropped and not dry_run:
        keys = sorted((run["run_key"],) for run in dropped)
        store._db.transaction(
            lambda run: (
                run("DELETE FROM samples WHERE run_key=?", keys),
                run("DELETE FROM runs WHERE run_key=?", keys),
            )
        )
        store._db.compact()
    return dropped


def _unusable_reason(run: dict[str, Any]) -> str | None:
    installed_lm_eval = _installed_version("lm-eval")
    if run["lm_eval_version"] != installed_lm_eval:
        return f"lm-eval {run['lm_eval_version']} (installed: {installed_lm_eval})"
    installed = _evaluator_version(run["evaluator"])
    if installed is not None and run["evaluator_version"] != installed:
        return f"evaluator {run['evaluator']} version {run['evaluator_version']} (installed: {installed})"
    return None


def _installed_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"  # the value run keys hold then (evalkit.run.library_versions)


def _evaluator_version(name: str) -> str | None:
    from ..evaluators.base import get_evaluator

    try:
        evaluator: Any = get_evaluator(name)  # a class following the Evaluator protocol: it declares its version
        return str(evaluator.version)
    except (UsageError, ImportError):
        return None
