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

# Under pytest-xdist (addopts: -n 2) each worker gets its share of the cores for torch's threads, set before torch
# is imported so the servers and CLI runs a test starts inherit it: two workers with two threads each on two cores
# spin-wait on each other. Thread counts change no result a test checks (same inputs, same outputs; in-process and
# served runs inherit the same setting).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _THREADS = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, _THREADS)


#: The module that takes longest by far (the demo trains three models: over half of one worker's time).
LONGEST_MODULE = "tests/test_demo_story.py"


def pytest_collection_modifyitems(config, items):
    """Modules holding slow tests run first (stable order otherwise): with two workers taking whole modules, the
    long ones then overlap each other instead of one of them running alone at the end.

    The longest module goes first, and a quick one third: xdist (loadscope) hands each worker two modules to
    start with (first and third to one worker), and whatever is queued behind the longest module waits for it
    while the other worker may already be idle."""
    def module(item) -> str:
        return item.nodeid.split("::", 1)[0]

    slow_modules = {module(item) for item in items if item.get_closest_marker("slow")}
    quick = next((module(item) for item in items if module(item) not in slow_modules), None)
    first_slow = next((module(item) for item in items if module(item) in slow_modules - {LONGEST_MODULE}), None)

    def rank(item) -> int:
        name = module(item)
        if name == LONGEST_MODULE:
            return 0
        return 1 if name == first_slow else 2 if name == quick else 3 if name in slow_modules else 4

    items.sort(key=rank)


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


@pytest.fixture(scope="session")
def served_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """The tiny instruct models every test through ``transformers_server`` serves: "plain" and "bos" (chat
    templates, the second with a BOS token) and "base" (no template), 1,024 positions each.

    The server runs each model it is asked for in a process of its own (~10 CPU s to start), so the served tests
    share these three instead of bringing their own. init_range 0.2: greedy outputs that differ per prompt.
    """
    from evalkit.testing import build_tiny_model

    root = tmp_path_factory.mktemp("served_models")
    return {"plain": build_tiny_model(root / "plain", chat_template=True, seed=3, init_range=0.2, max_positions=1024),
            "bos": build_tiny_model(root / "bos", chat_template=True, bos=True, seed=4, init_range=0.2,
                                    max_positions=1024),
            "base": build_tiny_model(root / "base", seed=5, init_range=0.2, max_positions=1024)}


@pytest.fixture(scope="session")
def transformers_server(tmp_path_factory):
    """One ``transformers serve`` per test worker on 127.0.0.1, loading whichever model directory a request names.

    Starting one costs ~10 CPU s (imports, first model load); the modules that test served paths share it and
    load their own models with :func:`tests.helpers.transformers_serve.served_models`. Yields (URL or None, log path).
    """
    from tests.helpers.transformers_serve import transformers_serve

    log = tmp_path_factory.mktemp("transformers_serve") / "serve.log"
    with transformers_serve(None, log, timeout=300) as url:  # a busy machine starts it slowly
        yield url, log


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


#: A policy with a passing, a warning and a failing gate on the synthetic comparison (tests/synthetic_results.py);
#: the warning is an inconclusive check of a severity-warn gate (its bounds straddle 0.02).
MIXED_POLICY = {"gates": [{"metric": "voc_sample.path_acc", "min_gain": 0.1},
                          {"metric": "mmlu.acc", "max_drop": 0.02, "significance": 0.05, "severity": "warn"},
                          {"metric": "ifeval.prompt_level_strict_acc", "max_drop": 0.05}]}


@pytest.fixture(scope="session")
def gated_comparison_dir(tmp_path_factory) -> Path:
    """The synthetic three-checkpoint comparison, gated by :data:`MIXED_POLICY`, written as ``evalkit compare
    --out`` writes it (results/, report, comparison.json, verdict.json)."""
    import evalkit
    from synthetic_results import make_results

    comparison = evalkit.compare(*make_results(), n_resamples=200)
    comparison.gate(MIXED_POLICY)
    out = tmp_path_factory.mktemp("gated") / "report"
    comparison.write(out)
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (for a server that cannot bind port 0 and report it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` (SQLite backend, artifacts served from a temporary folder) on 127.0.0.1;
    one per test session; yields its tracking URI."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job workers
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    log = open(root / "server.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # creating the tables takes seconds on idle cores, minutes on busy ones
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the uvicorn worker it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
