"""The result store: an embedded SQLite database of runs and per-sample records.

A run is one (checkpoint fingerprint, output-changing load settings, task-config hash, evaluator
version, lm-eval version) key. Its per-sample records are committed batch by batch, so a run killed
mid-way (even by SIGKILL) resumes from the samples it finished and loses at most the batch in flight.
When every sample is in, the corpus result is written and the run is complete; a rerun with the same
key is answered from here without loading the model.

SQLite in WAL mode with a busy timeout lets several evalkit processes share one store; every write
is one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._io import cache_dir, stable_hash
from .errors import UsageError, warn
from .records import SampleRecord, TaskResult, in_sample_order

__all__ = ["RunKey", "ResultStore", "default_store_path", "settings_hash"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    task TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    evaluator TEXT NOT NULL,
    evaluator_version TEXT NOT NULL,
    lm_eval_version TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_fingerprint ON runs (fingerprint, task);
CREATE TABLE IF NOT EXISTS samples (
    run_key TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_key, sample_id)
);
"""
_STORE_VERSION = "1"


#: What a row edited or corrupted outside evalkit raises when decoded.
_DAMAGED = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


def _decode(text: str, build):
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return build(data)


def default_store_path() -> Path:
    """``$EVALKIT_STORE`` if set, else ``results.sqlite`` in evalkit's cache folder."""
    env = os.environ.get("EVALKIT_STORE")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "results.sqlite"


@dataclass(frozen=True)
class RunKey:
    """What makes two runs interchangeable: same weights loaded the same way, same task config, same code.

    ``model_settings`` is :func:`settings_hash` of the load options that change outputs
    (``LoadOptions.output_settings``: dtype, max length, chat template, model args), ``""`` for the
    defaults.
    """

    fingerprint: str
    task: str
    config_hash: str
    evaluator: str
    evaluator_version: str
    lm_eval_version: str
    model_settings: str = ""

    @property
    def id(self) -> str:
        fields = asdict(self)
        if not self.model_settings:
            # Default settings hash the six fields keys had before model_settings existed, so runs
            # already in a store stay valid for default load options.
            del fields["model_settings"]
        return stable_hash(fields, length=32)


def settings_hash(settings: dict[str, Any]) -> str:
    """``RunKey.model_settings`` for a ``LoadOptions.output_settings()`` dict: ``""`` when empty."""
    return stable_hash(settings, length=32) if settings else ""


class ResultStore:
    """Runs and per-sample records in one SQLite file (created on first use)."""

    def __init__(self, path: str | Path | None = None, *, timeout: float = 60.0):
        self.path = Path(path) if path else default_store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._set_up(timeout)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.path}: cannot open the result store ({exc}); pass another store=PATH or delete the file.") from None
        except OSError as exc:  # e.g. --store under a regular file, or in a read-only place
            raise UsageError(f"{self.path}: cannot create the result store ({exc.strerror or exc}); "
                             f"pass another store=PATH.") from None

    def _set_up(self, timeout: float) -> None:
        """WAL mode, schema and version check; retried while another process is creating the same file.

        Switching a new file to WAL needs an exclusive lock and SQLite answers "database is locked" at
        once, without its busy timeout, when another process holds it (several ranks starting together).
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
                self._check_version()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _check_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()
        if row is None:
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_version', ?)", (_STORE_VERSION,))
        elif row[0] != _STORE_VERSION:
            raise UsageError(f"{self.path}: result store version {row[0]} is not {_STORE_VERSION}; use another store=PATH.")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes (each one transaction)

    def _write(self, sql_params: Iterable[tuple[str, tuple | list[tuple]]]) -> None:
        """One transaction; a list of parameter tuples runs its statement once per tuple (executemany)."""
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in sql_params:
                if isinstance(params, list):
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def start_run(self, key: RunKey, checkpoint: dict[str, Any]) -> None:
        """Record that a run began (idempotent: a resumed run keeps its samples)."""
        now = time.time()
        self._write([(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,'running',NULL,?,?) "
            "ON CONFLICT(run_key) DO UPDATE SET checkpoint=excluded.checkpoint, updated=excluded.updated",
            (key.id, key.fingerprint, key.task, key.config_hash, key.evaluator, key.evaluator_version,
             key.lm_eval_version, json.dumps(checkpoint, sort_keys=True), now, now),
        )])

    def add_samples(self, key: RunKey, records: list[SampleRecord]) -> None:
        """Commit one batch of finished samples (one transaction, one bulk insert)."""
        if not records:
            return
        rows = [(key.id, r.sample_id, json.dumps(r.to_dict(), sort_keys=True, default=str)) for r in records]
        self._write([("INSERT OR REPLACE INTO samples VALUES (?,?,?)", rows),
                     ("UPDATE runs SET updated=? WHERE run_key=?", (time.time(), key.id))])

    def discard_run(self, key: RunKey) -> None:
        """Forget a run and its samples (``--rerun``)."""
        self._write([("DELETE FROM samples WHERE run_key=?", (key.id,)), ("DELETE FROM runs WHERE run_key=?", (key.id,))])

    def finish_run(self, key: RunKey, result: TaskResult) -> None:
        """Store the corpus result (without samples: they are in ``samples``) and mark the run complete."""
        payload = json.dumps(result.to_dict(with_samples=False), sort_keys=True, default=str)
        self._write([("UPDATE runs SET status='complete', result=?, updated=? WHERE run_key=?",
                      (payload, time.time(), key.id))])

    # ------------------------------------------------------------------ reads

    def count_samples(self, key: RunKey) -> int:
        """How many samples of the run are stored (without reading them)."""
        return self._conn.execute("SELECT COUNT(*) FROM samples WHERE run_key=?", (key.id,)).fetchone()[0]

    def load_samples(self, key: RunKey) -> dict[str, SampleRecord]:
        """The stored records of a run; damaged ones are left out (with a warning), so they are evaluated again."""
        rows = self._conn.execute("SELECT sample_id, record FROM samples WHERE run_key=?", (key.id,)).fetchall()
        records, damaged = {}, []
        for sid, rec in rows:
            try:
                records[sid] = _decode(rec, SampleRecord.from_dict)
            except _DAMAGED:
                damaged.append(sid)
        if damaged:
            warn(f"{self.path}: {len(damaged)} stored sample(s) of task {key.task} are damaged "
                 f"(e.g. {damaged[0]!r}); evaluating them again.")
        return records

    def completed_result(self, key: RunKey) -> TaskResult | None:
        """The stored result with its samples, or None if the run is missing, unfinished or damaged.

        A damaged stored result (a row edited or corrupted outside evalkit) is discarded with a
        warning and the task is evaluated again, rather than failing every run that needs it.
        """
        row = self._conn.execute("SELECT result FROM runs WHERE run_key=? AND status='complete'", (key.id,)).fetchone()
        if row is None:
            return None
        try:
            result = _decode(row[0], TaskResult.from_dict)
        except _DAMAGED as exc:
            warn(f"{self.path}: the stored result of task {key.task} is damaged ({type(exc).__name__}); "
                 f"evaluating it again.")
            self.discard_run(key)
            return None
        samples = self.load_samples(key)
        if len(samples) < result.n_samples:  # damaged records were dropped: finish the run again
            self._write([("UPDATE runs SET status='running', result=NULL WHERE run_key=?", (key.id,))])
            return None
        result.samples = in_sample_order(list(samples.values()))
        return result

    def runs(self, *, fingerprint: str | None = None, label: str | None = None) -> list[dict[str, Any]]:
        """Completed runs, newest first, optionally for one fingerprint or checkpoint label."""
        sql = "SELECT run_key, fingerprint, task, checkpoint, updated FROM runs WHERE status='complete'"
        params: list[Any] = []
        if fingerprint:
            sql += " AND fingerprint=?"
            params.append(fingerprint)
        rows = self._conn.execute(sql + " ORDER BY updated DESC", params).fetchall()
        out = []
        for run_key, fp, task, checkpoint, updated in rows:
            info = json.loads(checkpoint)
            if label is None or info.get("label") == label:
                out.append({"run_key": run_key, "fingerprint": fp, "task": task, "checkpoint": info, "updated": updated})
        return out

    def result_by_run_key(self, run_key: str) -> TaskResult | None:
        row = self._conn.execute("SELECT result FROM runs WHERE run_key=? AND status='complete'", (run_key,)).fetchone()
        if row is None:
            return None
        rows = self._conn.execute("SELECT record FROM samples WHERE run_key=?", (run_key,)).fetchall()
        try:
            result = _decode(row[0], TaskResult.from_dict)
            result.samples = in_sample_order([_decode(r[0], SampleRecord.from_dict) for r in rows])
        except _DAMAGED as exc:
            raise UsageError(f"{self.path}: stored run {run_key} is damaged ({type(exc).__name__}: {exc}); "
                             f"evaluate the checkpoint again with rerun=True.") from None
        return result
