"""The result store: per-sample records and corpus results of every run, keyed so reruns are free.

One interface, :class:`ResultStore`, over two backends: an embedded SQLite file (the default, one
machine) and a PostgreSQL database (``postgresql://USER@HOST:PORT/DB``: CI jobs, nodes of a sweep,
a team). :func:`list_runs`, :func:`export_store`, :func:`import_store` and :func:`collect_garbage`
are the ``evalkit store`` commands. See docs/store.md.
"""

from ._admin import collect_garbage, export_store, import_store, list_runs
from ._location import default_store_path, parse_location
from ._store import STORE_VERSION, ResultStore, RunKey, settings_hash

__all__ = [
    "ResultStore",
    "RunKey",
    "settings_hash",
    "default_store_path",
    "parse_location",
    "STORE_VERSION",
    "list_runs",
    "export_store",
    "import_store",
    "collect_garbage",
]
