"""The embedded backend: one SQLite file in WAL mode, shared by the processes of one machine.

Every write is one ``BEGIN IMMEDIATE`` transaction, so writers queue on SQLite's lock (with a busy
timeout) instead of failing, and a killed writer leaves nothing half-committed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import UsageError, arg

T = TypeVar("T")
Run = Callable[..., list]


class SQLiteBackend:
    """SQL over one SQLite file (created on first use); ``?`` placeholders."""

    kind = "sqlite"
    double = "REAL"

    def __init__(self, path: Path, *, timeout: float = 60.0):
        self.path = path
        self.location = str(path)
        self._timeout = timeout
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            self._retry_while_locked(self._enable_wal)
        except sqlite3.DatabaseError as exc:
            raise UsageError(
                f"{path}: cannot open the result store ({exc}); pass another {arg('store', 'PATH')} or delete the file."
            ) from None
        except OSError as exc:  # e.g. --store under a regular file, or in a read-only place
            raise UsageError(
                f"{path}: cannot create the result store ({exc.strerror or exc}); pass another {arg('store', 'PATH')}."
            ) from None

    def _enable_wal(self) -> None:
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")

    def _retry_while_locked(self, work: Callable[[], T]) -> T:
        """Retry ``work`` while another process holds the lock SQLite answers "locked" for at once.

        Switching a new file to WAL needs an exclusive lock and SQLite answers "database is locked"
        without its busy timeout when another process holds it (several ranks starting together).
        """
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return work()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self._conn.execute(sql, params).fetchall()

    def transaction(self, work: Callable[[Run], T], *, schema: bool = False) -> T:
        """``work(run)`` inside one write transaction; ``run(sql, params)`` executes (a list of tuples: once per tuple)."""

        def attempt() -> T:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                out = work(lambda sql, params=(): _run(cur, sql, params))
                cur.execute("COMMIT")
                return out
            except BaseException:
                cur.execute("ROLLBACK")
                raise

        try:
            return self._retry_while_locked(attempt) if schema else attempt()
        except sqlite3.DatabaseError as exc:
            if not schema:
                raise
            raise UsageError(
                f"{self.path}: cannot open the result store ({exc}); pass another {arg('store', 'PATH')} or "
                "delete the file."
            ) from None

    def compact(self) -> None:
        """Give the space of deleted rows back to the file system."""
        self._conn.execute("VACUUM")

    def close(self) -> None:
        self._conn.close()


def _run(cur: Any, sql: str, params: tuple | list) -> list[tuple]:
    if isinstance(params, list):
        cur.executemany(sql, params)
        return []
    return cur.execute(sql, params).fetchall()
