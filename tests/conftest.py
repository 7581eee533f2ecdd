"""Shared fixtures: tiny models built offline, isolated result stores (SQLite and PostgreSQL), the shared data folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if os.environ.get("EVALKIT_SHARED_DATA"):
    SHARED_DATA = Path(os.environ["EVALKIT_SHARED_DATA"])

# Never touch the network or the user's cache from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Nor the user's result store and caches: a session-wide scratch folder unless a test sets its own.
_SCRATCH = tempfile.mkdtemp(prefix="evalkit-tests-")
os.environ.setdefault("EVALKIT_STORE", os.path.join(_SCRATCH, "store.sqlite"))
os.environ.setdefault("EVALKIT_CACHE_DIR", os.path.join(_SCRATCH, "cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with a BPE tokenizer, as a Hugging Face model directory (no chat template)."""
    from evalkit.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory) -> Path:
    """Like ``tiny_model_dir`` but with a chat template."""
    from evalkit.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_chat"), chat_template=True, seed=1)


@pytest.fixture()
def store_path(tmp_path, monkeypatch) -> Path:
    """A fresh result store path; also set as EVALKIT_STORE so CLI runs in the test use it."""
    path = tmp_path / "store.sqlite"
    monkeypatch.setenv("EVALKIT_STORE", str(path))
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the session (skipped only when no server binary or driver exists)."""
    from tests.helpers.postgres import Server, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = Server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path) -> str:
    """A fresh, empty result store of each backend: a SQLite file, or a new database on the session's server."""
    if request.param == "sqlite":
        return str(tmp_path / "s.sqlite")
    return request.getfixturevalue("postgres_server").empty_store()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
