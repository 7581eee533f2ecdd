"""The result store: runs and per-sample records, in SQLite (one machine) or PostgreSQL (many).

A run is one (checkpoint fingerprint, output-changing load settings, task-config hash, evaluator
version, lm-eval version) key. Its per-sample records are committed batch by batch, so a run killed
mid-way (even by SIGKILL) resumes from the samples it finished and loses at most the batch in flight.
When every sample is in, the corpus result is written and the run is complete; a rerun with the same
key is answered from here without loading the model.

:class:`ResultStore` is the one interface; what differs between the databases (connecting, locking,
placeholders) is in its backend (``_sqlite.py``, ``_postgres.py``), which runs the same SQL. Every
write is one transaction: several processes, on one machine or many, share a store.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._io import stable_hash
from ..errors import UsageError, warn, arg
from ..records import SampleRecord, TaskResult, in_sample_order
from ._location import StoreLocation, default_store_path, parse_location

__all__ = ["RunKey", "ResultStore", "default_store_path", "settings_hash", "STORE_VERSION"]

#: The schema version this code writes; a store at a newer version is refused, an older one migrated.
STORE_VERSION = 1
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
#: ``_MIGRATIONS[v]`` takes a store from version v-1 to v ({double}: the backend's 8-byte float type).
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS runs (
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
        created {double} NOT NULL,
        updated {double} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS runs_by_fingerprint ON runs (fingerprint, task)",
        """CREATE TABLE IF NOT EXISTS samples (
        run_key TEXT NOT NULL,
        sample_id TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (run_key, sample_id))""",
    ]
}
#: The columns of ``runs`` in table order (export and import move them verbatim).
RUN_COLUMNS = (
    "run_key",
    "fingerprint",
    "task",
    "config_hash",
    "evaluator",
    "evaluator_version",
    "lm_eval_version",
    "checkpoint",
    "status",
    "result",
    "created",
    "updated",
)


#: What a row edited or corrupted outside evalkit raises when decoded.
_DAMAGED = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


def _decode(text: str, build):
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return build(data)


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
    """Runs and per-sample records in a SQLite file or a PostgreSQL database (created on first use).

    ``location`` is a file path, a ``postgresql://USER@HOST:PORT/DB`` URL, or None for
    ``$EVALKIT_STORE`` (else ``results.sqlite`` in evalkit's cache folder).
    """

    def __init__(self, location: str | os.PathLike | None = None, *, timeout: float = 60.0):
        where = parse_location(location)
        self._db = _open_backend(where, timeout)
        self.path: Path | None = where.path  # the SQLite file; None for PostgreSQL
        self.location: str = where.display  # for messages: never holds a password
        self.kind: str = where.kind
        try:
            self._db.transaction(self._migrate, schema=True)
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, run) -> None:
        """Create the schema or bring it to :data:`STORE_VERSION`; refuse a store written by newer code."""
        run(_META)
        rows = run("SELECT value FROM meta WHERE key='store_version'")
        found = _version_number(rows[0][0], self.location) if rows else 0
        if found > STORE_VERSION:
            raise UsageError(
                f"{self.location}: the result store's schema is version {found}, newer than this evalkit "
                f"understands ({STORE_VERSION}); upgrade evalkit or pass another {arg('store', 'PATH')}."
            )
        for version in range(found + 1, STORE_VERSION + 1):
            for sql in _MIGRATIONS[version]:
                run(sql.format(double=self._db.double))
        if found < STORE_VERSION:
            run(
                "INSERT INTO meta VALUES ('store_version', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(STORE_VERSION),),
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes (each one transaction)

    def _write(self, statements: list[tuple[str, tuple | list[tuple]]]) -> None:
        """One transaction; a list of parameter tuples runs its statement once per tuple (executemany)."""

        def work(run) -> None:
            for sql, params in statements:
                run(sql, params)

        self._db.transaction(work)

    def start_run(self, key: RunKey, checkpoint: dict[str, Any]) -> None:
        """Record that a run began (idempotent: a resumed run keeps its samples)."""
        now = time.time()
        self._write(
            [
                (
                    "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,'running',NULL,?,?) "
                    "ON CONFLICT(run_key) DO UPDATE SET checkpoint=excluded.checkpoint, updated=excluded.updated",
                    (
                        key.id,
                        key.fingerprint,
                        key.task,
                        key.config_hash,
                        key.evaluator,
                        key.evaluator_version,
                        key.lm_eval_version,
                        json.dumps(checkpoint, sort_keys=True),
                        now,
                        now,
                    ),
                )
            ]
        )

    def add_samples(self, key: RunKey, records: list[SampleRecord]) -> None:
        """Commit one batch of finished samples (one transaction, one bulk insert)."""
        if not records:
            return
        # Sorted, so concurrent writers of one run lock rows in one order (no deadlock on PostgreSQL).
        rows = sorted((key.id, r.sample_id, json.dumps(r.to_dict(), sort_keys=True, default=str)) for r in records)
        self._write(
            [
                (
                    "INSERT INTO samples VALUES (?,?,?) "
                    "ON CONFLICT(run_key, sample_id) DO UPDATE SET record=excluded.record",
                    rows,
                ),
                ("UPDATE runs SET updated=? WHERE run_key=?", (time.time(), key.id)),
            ]
        )

    def discard_run(self, key: RunKey) -> None:
        """Forget a run and its samples (``--rerun``)."""
        self._write(
            [("DELETE FROM samples WHERE run_key=?", (key.id,)), ("DELETE FROM runs WHERE run_key=?", (key.id,))]
        )

    def finish_run(self, key: RunKey, result: TaskResult) -> None:
        """Store the corpus result (without samples: they are in ``samples``) and mark the run complete."""
        payload = json.dumps(result.to_dict(with_samples=False), sort_keys=True, default=str)
        self._write(
            [("UPDATE runs SET status='complete', result=?, updated=? WHERE run_key=?", (payload, time.time(), key.id))]
        )

    # ------------------------------------------------------------------ reads

    def count_samples(self, key: RunKey) -> int:
        """How many samples of the run are stored (without reading them)."""
        return self._db.query("SELECT COUNT(*) FROM samples WHERE run_key=?", (key.id,))[0][0]

    def load_samples(self, key: RunKey) -> dict[str, SampleRecord]:
        """The stored records of a run; damaged ones are left out (with a warning), so they are evaluated again."""
        rows = self._db.query("SELECT sample_id, record FROM samples WHERE run_key=?", (key.id,))
        records, damaged = {}, []
        for sid, rec in rows:
            try:
                records[sid] = _decode(rec, SampleRecord.from_dict)
            except _DAMAGED:
                damaged.append(sid)
        if damaged:
            warn(
                f"{self.location}: {len(damaged)} stored sample(s) of task {key.task} are damaged "
                f"(e.g. {damaged[0]!r}); evaluating them again."
            )
        return records

    def completed_result(self, key: RunKey) -> TaskResult | None:
        """The stored result with its samples, or None if the run is missing, unfinished or damaged.

        A damaged stored result (a row edited or corrupted outside evalkit) is discarded with a
        warning and the task is evaluated again, rather than failing every run that needs it.
        """
        rows = self._db.query("SELECT result FROM runs WHERE run_key=? AND status='complete'", (key.id,))
        if not rows:
            return None
        row = rows[0]
        try:
            result = _decode(row[0], TaskResult.from_dict)
        except _DAMAGED as exc:
            warn(
                f"{self.location}: the stored result of task {key.task} is damaged ({type(exc).__name__}); "
                f"evaluating it again."
            )
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
        rows = self._db.query(sql + " ORDER BY updated DESC", params)
        out = []
        for run_key, fp, task, checkpoint, updated in rows:
            info = json.loads(checkpoint)
            if label is None or info.get("label") == label:
                out.append(
                    {"run_key": run_key, "fingerprint": fp, "task": task, "checkpoint": info, "updated": updated}
                )
        return out

    def result_by_run_key(self, run_key: str) -> TaskResult | None:
        found = self._db.query("SELECT result FROM runs WHERE run_key=? AND status='complete'", (run_key,))
        if not found:
            return None
        row = found[0]
        rows = self._db.query("SELECT record FROM samples WHERE run_key=?", (run_key,))
        try:
            result = _decode(row[0], TaskResult.from_dict)
            result.samples = in_sample_order([_decode(r[0], SampleRecord.from_dict) for r in rows])
        except _DAMAGED as exc:
            raise UsageError(
                f"{self.location}: stored run {run_key} is damaged ({type(exc).__name__}: {exc}); "
                f"evaluate the checkpoint again with {arg('rerun', True)}."
            ) from None
        return result


def _open_backend(where: StoreLocation, timeout: float):
    if where.kind == "postgresql":
        from ._postgres import PostgresBackend

        return PostgresBackend(where.url or "", where.display, timeout=timeout)
    from ._sqlite import SQLiteBackend

    return SQLiteBackend(where.path or default_store_path(), timeout=timeout)


def _version_number(value: str, location: str) -> int:
    if not str(value).isdigit():
        raise UsageError(
            f"{location}: the result store's schema version {value!r} is not one evalkit knows; "
            f"pass another {arg('store', 'PATH')}."
        )
    return int(value)
