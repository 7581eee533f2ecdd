"""Start ``transformers serve`` (transformers' OpenAI-compatible server) on 127.0.0.1 for tests and benchmarks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = ["free_port", "transformers_serve", "served_or_skip", "served_models", "stop_process", "wait_for_models",
           "load_models"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_models(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Poll ``GET {url}/models`` until it answers 200, the process exits, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.3)
    return False


def load_models(url: str, model_dirs, timeout: float = 60.0) -> None:
    """Have a server started without a model load each of ``model_dirs`` (one tiny completion each).

    ``transformers serve`` without FORCE_MODEL loads models on their first request and lists only loaded
    ones at ``/v1/models``, which evalkit checks before using a server.
    """
    import json

    for model_dir in model_dirs:
        body = json.dumps({"model": str(model_dir), "prompt": "a", "max_tokens": 1}).encode()
        request = urllib.request.Request(f"{url}/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()


@contextlib.contextmanager
def transformers_serve(model_dir: Path | None, log_path: Path, *, timeout: float = 90.0,
                       extra_args: tuple[str, ...] = ()) -> Iterator[str | None]:
    """Serve ``model_dir`` on a free loopback port; yields the ``/v1`` URL, or None if it did not start.

    The served model name is ``str(model_dir)`` (transformers serve loads models by path or hub id). With
    ``model_dir=None`` the server loads whichever model directory a request names (see :func:`load_models`).
    """
    port = free_port()
    forced = [str(model_dir)] if model_dir is not None else ["--model-timeout", "3600"]
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve",
               *forced, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", *extra_args]
    with open(log_path, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        yield url if wait_for_models(url, process, timeout) else None
    finally:
        stop_process(process, timeout=15)


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Terminate, wait up to ``timeout`` seconds, then kill."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def served_or_skip(model_dir: Path | None, log_path: Path) -> Iterator[str]:
    """Like :func:`transformers_serve`, but skips the test (with the server's log tail) if it did not start."""
    import pytest

    with transformers_serve(model_dir, log_path) as url:
        if url is None:
            pytest.skip(f"transformers serve did not start: {log_path.read_text(errors='replace')[-500:]}")
        yield url


def served_models(server: tuple[str | None, Path], *model_dirs) -> str:
    """The ``/v1`` URL of the shared server (conftest's ``transformers_server``) with ``model_dirs`` loaded, each
    served under ``str(model_dir)``; skips the test with the server's log tail if the server did not start."""
    import pytest

    url, log_path = server
    if url is None:
        pytest.skip(f"transformers serve did not start: {log_path.read_text(errors='replace')[-500:]}")
    load_models(url, model_dirs, timeout=300)  # a first load on a busy machine is slow
    return url
