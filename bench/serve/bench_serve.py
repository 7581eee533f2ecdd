"""Throughput of served evaluation (``transformers serve`` on 127.0.0.1) at concurrency 1, 2, 4, 8 against
in-process evaluation of the same model, through the same evalkit checkpoint loaders.

    python bench/serve/bench_serve.py                       # builds a small model, writes bench/serve/results.json
    python bench/serve/bench_serve.py --model DIR --requests 64 --max-gen-toks 32
    python bench/serve/bench_serve.py --continuous-batching # pass --continuous-batching to transformers serve
    python bench/serve/bench_serve.py --continuous-batching --no-in-process --concurrency 4,8,16
    python bench/serve/bench_serve.py --model DIR --server http://127.0.0.1:8000/v1#NAME  # a running server (vLLM)

Each configuration answers the same ``--requests`` greedy generation requests (VOC sample comments as
prompts, a fixed number of new tokens: the stop string never occurs) and is timed after one warm-up
request. Served outputs are checked equal to in-process ones. Figures are machine- and load-dependent:
``results.json`` records the machine's core count and load average next to them; README.md explains them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # reuse the test helper that starts transformers serve

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _prompts(n: int) -> list[str]:
    with open(ROOT / "evalkit" / "tasks" / "data" / "voc_sample" / "test.csv", newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return [f"Comment: {texts[i % len(texts)]}\nLabel:" for i in range(n)]


def _requests(prompts: list[str], max_gen_toks: int):
    from lm_eval.api.instance import Instance

    kwargs = {"until": ["\u0000never\u0000"], "max_gen_toks": max_gen_toks, "do_sample": False, "temperature": 0.0}
    return [Instance("generate_until", {}, (p, dict(kwargs)), i) for i, p in enumerate(prompts)]


def _timed(lm, prompts: list[str], max_gen_toks: int) -> tuple[float, list[str]]:
    lm.generate_until(_requests(prompts[:1], max_gen_toks))  # warm-up: model load, first-request costs
    started = time.perf_counter()
    outputs = lm.generate_until(_requests(prompts, max_gen_toks))
    return time.perf_counter() - started, outputs


def _row(name: str, seconds: float, n: int, max_gen_toks: int, **extra) -> dict:
    row = {"config": name, "seconds": round(seconds, 3), "requests_per_s": round(n / seconds, 3),
           "new_tokens_per_s": round(n * max_gen_toks / seconds, 1), **extra}
    print(json.dumps(row), flush=True)
    return row


@contextlib.contextmanager
def _served(args: argparse.Namespace, model: Path, work: Path):
    """The checkpoint spec of the server to measure: ``--server`` as given, else ``transformers serve``."""
    from helpers.transformers_serve import transformers_serve

    if args.server:
        yield args.server
        return
    serve_args = ("--continuous-batching",) if args.continuous_batching else ()
    with transformers_serve(model, work / "serve.log", extra_args=serve_args) as url:
        if url is None:
            raise SystemExit(f"transformers serve did not start; see {work / 'serve.log'}")
        yield f"{url}#{model}"


def run(args: argparse.Namespace) -> dict:
    from evalkit.checkpoints import Checkpoint, LoadOptions
    from evalkit.testing import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="evalkit-bench-serve-"))
    model = Path(args.model) if args.model else build_tiny_model(work / "model", hidden=args.hidden, layers=args.layers)
    prompts = _prompts(args.requests)
    rows, reference = [], None
    for batch in ((1, 8) if args.in_process else ()):
        local = Checkpoint.from_string(str(model), LoadOptions(batch_size=batch, device="cpu", max_length=1024)).lm
        seconds, outputs = _timed(local, prompts, args.max_gen_toks)
        rows.append(_row(f"in-process HFLM batch {batch}", seconds, len(prompts), args.max_gen_toks))
        if batch == 1:
            reference = outputs  # served answers are compared with unpadded in-process generation
        del local
    with _served(args, model, work) as spec:
        for concurrency in args.concurrency:
            # Plain prompts, as sent to the in-process reference: the completions endpoint whatever the served name
            options = LoadOptions(num_concurrent=concurrency, max_retries=2, timeout=600, max_length=1024,
                                  endpoint="completions")
            served = Checkpoint.from_string(spec, options).lm
            seconds, outputs = _timed(served, prompts, args.max_gen_toks)
            rows.append(_row(f"served, concurrency {concurrency}", seconds, len(prompts), args.max_gen_toks,
                             same_as_in_process=None if reference is None else outputs == reference,
                             retries=served.request_stats.retries))
    return {"rows": rows, "requests": len(prompts), "max_gen_toks": args.max_gen_toks,
            "model": "tiny Llama" if not args.model else str(args.model), "hidden": args.hidden, "layers": args.layers,
            "continuous_batching": args.continuous_batching, "server": args.server or "transformers serve",
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="A model directory (default: build a small random Llama)")
    parser.add_argument("--hidden", type=int, default=256, help="Hidden size of the built model")
    parser.add_argument("--layers", type=int, default=4, help="Layers of the built model")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-gen-toks", type=int, default=32)
    parser.add_argument("--continuous-batching", action="store_true")
    parser.add_argument("--server", help="Measure this running server (URL#MODEL, e.g. vLLM) instead of starting "
                                         "transformers serve; --model should be the same weights")
    parser.add_argument("--concurrency", type=lambda text: [int(x) for x in text.split(",")], default=[1, 2, 4, 8],
                        help="Comma-separated concurrency levels (default 1,2,4,8)")
    parser.add_argument("--no-in-process", dest="in_process", action="store_false",
                        help="Skip the in-process runs (and the output check)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args(argv)
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
