"""The shared backend: a PostgreSQL database that processes on many machines write at once.

Credentials are libpq's business: the URL, ``PGPASSWORD``, ``~/.pgpass`` and the other ``PG*``
variables work as they do for ``psql``. evalkit's tables live in their own schema (``evalkit``), so
a database other applications use is not cluttered. Each write is one transaction; two writers that
lock the same rows in different orders (PostgreSQL detects the deadlock and aborts one of them) are
retried, so concurrent writers never fail on each other. A killed writer's connection drops and
PostgreSQL rolls its open transaction back.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import UsageError, redact

T = TypeVar("T")
Run = Callable[..., list]

SCHEMA = "evalkit"
#: Key of the advisory lock that serialises schema creation and migration (any fixed 64-bit number).
_SCHEMA_LOCK = 0x6576616C6B6974  # "evalkit"
_RETRIES = 20


def _driver():
    try:
        import psycopg
    except ImportError:
        raise UsageError(
            "store: a postgresql:// store needs the PostgreSQL driver: pip install 'evalkit[postgres]'.", param="store"
        ) from None
    return psycopg


class PostgresBackend:
    """SQL over one PostgreSQL connection (autocommit reads, one transaction per write); ``?`` placeholders."""

    kind = "postgresql"
    double = "DOUBLE PRECISION"

    def __init__(self, url: str, display: str, *, timeout: float = 60.0):
        psycopg = _driver()
        self.path = None
        self.location = display
        self._errors = psycopg.errors
        self._operational = psycopg.OperationalError
        self._data_error = psycopg.DataError
        self._connect = lambda: _connect(psycopg, url, display, timeout)
        self._conn = self._connect()

    def _reconnected(self, exc: Exception) -> None:
        """A new connection after ``exc`` broke the old one (a server restart, an idle connection dropped by a
        proxy while a model loaded); the operation is then run again, which is safe as every write is an upsert
        or a delete. Raises the lost-connection error when the old one is not broken or no new one can be had.
        """
        if not self._conn.broken and not self._conn.closed:
            raise self._lost(exc) from None
        try:
            self._conn = self._connect()
        except UsageError:
            raise self._lost(exc) from None

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        try:
            return self._conn.execute(_placeholders(sql), params).fetchall()
        except self._operational as exc:
            self._reconnected(exc)
        try:
            return self._conn.execute(_placeholders(sql), params).fetchall()
        except self._operational as exc:
            raise self._lost(exc) from None

    def transaction(self, work: Callable[[Run], T], *, schema: bool = False) -> T:
        """``work(run)`` inside one transaction, retried when PostgreSQL aborted it for a deadlock or conflict."""
        retryable = (self._errors.DeadlockDetected, self._errors.SerializationFailure, self._errors.UniqueViolation)
        reconnected = False
        for attempt in range(_RETRIES):
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    if schema:
                        _create_schema(cur)
                    return work(lambda sql, params=(): _run(cur, sql, params))
            except retryable:
                # UniqueViolation: two first writers of one row both saw it absent (schema creation races too)
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
            except self._operational as exc:
                if reconnected:
                    raise self._lost(exc) from None
                self._reconnected(exc)
                reconnected = True
            except self._data_error as exc:  # e.g. a NUL character, which PostgreSQL text cannot hold
                raise UsageError(
                    f"{self.location}: PostgreSQL cannot store a value ({_first_line(exc)}); "
                    f"a sample id or record from the task's data holds it."
                ) from None
            except self._errors.InsufficientPrivilege as exc:
                raise UsageError(
                    f"{self.location}: the database user may not write evalkit's tables "
                    f"({_first_line(exc)}); grant it CREATE on the database or use another store."
                ) from None
        raise AssertionError("unreachable")

    def _lost(self, exc: Exception) -> UsageError:
        return UsageError(
            f"{self.location}: lost the connection to the result store ({_first_line(exc)}); "
            f"finished samples are stored, evaluate again to resume."
        )

    def compact(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum reclaims deleted rows."""

    def close(self) -> None:
        self._conn.close()


def _connect(psycopg: Any, url: str, display: str, timeout: float) -> Any:
    """An autocommit connection with evalkit's schema first on the search path."""
    try:
        conn = psycopg.connect(url, autocommit=True, **_connect_defaults(url, timeout))
        conn.execute(f"SET search_path TO {SCHEMA}")
        return conn
    except psycopg.Error as exc:
        raise UsageError(
            f"{display}: cannot connect to the result store ({_first_line(exc)}); check the URL, "
            f"the server and the credentials (PGPASSWORD or ~/.pgpass)."
        ) from None
    except ValueError as exc:  # libpq refused the URL itself (an unknown option, a bad port)
        raise UsageError(f"{display}: not a valid PostgreSQL URL ({_first_line(exc)}).") from None


def _create_schema(cur: Any) -> None:
    """evalkit's schema, created under an advisory lock so concurrent first connections do not race."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    if cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone() is None:
        cur.execute(f"CREATE SCHEMA {SCHEMA}")


def _run(cur: Any, sql: str, params: tuple | list) -> list[tuple]:
    if isinstance(params, list):
        cur.executemany(_placeholders(sql), params)
        return []
    cur.execute(_placeholders(sql), params)
    return cur.fetchall() if cur.description else []


def _placeholders(sql: str) -> str:
    """The store's SQL uses SQLite's ``?``; psycopg's are ``%s`` (no ``%`` or ``?`` appears otherwise)."""
    return sql.replace("?", "%s")


def _connect_defaults(url: str, timeout: float) -> dict[str, Any]:
    """A connect timeout (an unreachable server fails in seconds, not minutes) and an application name, unless set."""
    out: dict[str, Any] = {}
    if "connect_timeout" not in url and not os.environ.get("PGCONNECT_TIMEOUT"):
        out["connect_timeout"] = max(1, int(min(timeout, 10)))
    if "application_name" not in url and not os.environ.get("PGAPPNAME"):
        out["application_name"] = "evalkit"
    return out


def _first_line(exc: BaseException) -> str:
    """The driver's message, one line, with any registered secret (the URL's password) redacted."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text)
