"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder, on 127.0.0.1.

Password authentication (scram-sha-256) is on, so wrong-password tests meet a real refusal. initdb
refuses to run as root; as root the server runs as the ``postgres`` user (Debian's package creates
it) or ``nobody``. ``fsync`` is off: the tests kill processes, never the machine.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

USER, PASSWORD = "evalkit", "pg-test-secret-7f3a"


def binaries() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'evalkit[postgres]')"
    if binaries() is None:
        return "no PostgreSQL server binaries (initdb) on this machine (apt-get install postgresql)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A running server; :meth:`empty_store` gives each test an empty store."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable  # PostgreSQL's defaults (fsync on) for benchmarks; off for tests
        self.bin = binaries()
        self.root = Path(tempfile.mkdtemp(prefix="evalkit-pg-"))
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = _unprivileged_account()
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
        (self.root / "pw").write_text(PASSWORD)
        os.chmod(self.root / "pw", 0o644)
        self.data = self.root / "data"
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={self.root / 'pw'}", "-A", "scram-sha-256",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")
        self.port = self._start()
        self._tests_url: str | None = None

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as_user, str(self.bin / tool), *args], check=True, capture_output=True,
                              text=True, timeout=120, cwd=self.root)

    def _start(self) -> int:
        for _ in range(5):  # another process may take the port between the probe and the bind
            port = _free_port()
            options = f"-h 127.0.0.1 -p {port} -k {self.root} -c max_connections=60"
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB"
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
                return port
            except subprocess.CalledProcessError:
                continue
        raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'log').read_text()[-2000:]}")

    def url(self, database: str = "postgres", *, password: str | None = PASSWORD) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """An empty database of its own (for benchmarks); returns its URL (password included)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")  # a few times faster with fsync off
        return self.url(name)

    def empty_store(self) -> str:
        """The URL of the tests' database with evalkit's schema dropped: an empty store, in milliseconds
        (a database per test would copy ~8 MB each)."""
        import psycopg

        if self._tests_url is None:
            self._tests_url = self.new_database()
        with psycopg.connect(self._tests_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS evalkit CASCADE")
        return self._tests_url

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root with neither a 'postgres' nor a 'nobody' user to run initdb as")
