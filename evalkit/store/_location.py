"""Where a result store lives: a file path (SQLite) or a ``postgresql://`` URL, and how it is shown.

Anything that looks like a URL (``scheme:``) but is not a PostgreSQL one is refused rather than
created as a SQLite file under a folder named ``mysql:`` or ``postgres:``. A URL is shown without
its password and query (which may hold ``password=``), and the password is registered as a secret
so nothing evalkit prints or writes can echo it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .._io import cache_dir
from ..errors import UsageError, register_secret

__all__ = ["StoreLocation", "parse_location", "default_store_path"]

#: A scheme of two or more characters before a colon ("C:" stays a Windows drive letter).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
_POSTGRES_SCHEMES = ("postgresql", "postgres")  # both are libpq's
_FORM = "a file path (SQLite) or postgresql://USER@HOST:PORT/DB"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store location: ``kind`` is ``"sqlite"`` (``path`` set) or ``"postgresql"`` (``url`` set)."""

    kind: str
    path: Path | None = None
    url: str | None = None

    @property
    def display(self) -> str:
        """The location as shown in messages: a URL without password or query."""
        if self.path is not None:
            return str(self.path)
        return redacted_url(self.url or "")


def default_store_path() -> Path:
    """``results.sqlite`` in evalkit's cache folder (the store when neither ``store=`` nor ``$EVALKIT_STORE`` is set)."""
    return cache_dir() / "results.sqlite"


def parse_location(store: str | os.PathLike | None) -> StoreLocation:
    """``store`` (None: ``$EVALKIT_STORE``, else the cache folder's SQLite file) as a :class:`StoreLocation`.

    Examples
    --------
    >>> parse_location("runs/results.sqlite").kind
    'sqlite'
    >>> parse_location("postgresql://ci@db.example:5432/evals?sslmode=require").display
    'postgresql://ci@db.example:5432/evals'
    >>> parse_location("mysql://db/evals")
    Traceback (most recent call last):
    ...
    evalkit.errors.UsageError: store must be a file path (SQLite) or postgresql://USER@HOST:PORT/DB; 'mysql:' is not a result store scheme (a file name with a colon: ./NAME).
    """
    if store is None or str(store) == "":
        env = os.environ.get("EVALKIT_STORE")
        return parse_location(env) if env else StoreLocation("sqlite", path=default_store_path())
    if isinstance(store, os.PathLike):
        return StoreLocation("sqlite", path=Path(store).expanduser())
    text = str(store).strip()
    match = _SCHEME.match(text)
    if match is None:
        return StoreLocation("sqlite", path=Path(text).expanduser())
    scheme, rest = match.group(1), text[match.end() :]
    if scheme.lower() == "sqlite" and rest.startswith("//"):
        return StoreLocation("sqlite", path=Path(rest[2:]).expanduser())
    if scheme.lower() not in _POSTGRES_SCHEMES:
        raise UsageError(
            f"store must be {_FORM}; {scheme + ':'!r} is not a result store scheme (a file name with a colon: ./NAME).",
            param="store",
        )
    if not rest.startswith("//"):
        raise UsageError(
            f"store must be a URL {scheme}://USER@HOST:PORT/DB for PostgreSQL: '//' is missing after '{scheme}:'.",
            param="store",
        )
    _register_password(text)
    return StoreLocation("postgresql", url=text)


def redacted_url(url: str) -> str:
    """``url`` without its password and query string.

    >>> redacted_url("postgresql://u:pw@h:5/db?sslmode=require&password=pw")
    'postgresql://u@h:5/db'
    """
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        user = parts.username
    except ValueError:  # e.g. a bad port: show the scheme only
        return url.split(":", 1)[0] + "://…"
    netloc = f"{user}@{host}" if user else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def _register_password(url: str) -> None:
    """The URL's password (in the netloc or as ``password=``) is a secret from now on."""
    try:
        parts = urlsplit(url)
        register_secret(unquote(parts.password) if parts.password else None)
        register_secret(parts.password)
        for pair in parts.query.split("&"):
            key, _, value = pair.partition("=")
            if key == "password":
                register_secret(unquote(value))
    except ValueError:
        pass
    register_secret(os.environ.get("PGPASSWORD"))
