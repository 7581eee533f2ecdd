"""Issue 26 in a warm process: evalkit's own cost once imports are done and the model is in memory.

    python bench/general_overhead/warm.py --model DIR --data /work/shared/data/mmlu --shots 5 --calls 2 --json F

What a training loop's evaluation pays (``EvalkitCallback`` calls :func:`evalkit.evaluate` on the live model):
the model is loaded with transformers once, then ``evalkit.evaluate(model, "mmlu", tokenizer=...,
rerun=True)`` runs ``--calls`` times in the same process, each into a fresh result store. The forward pass
(``HFLM._model_call``) is timed and its padded inputs kept as in ``side.py``; after each call the same
batches run again in a bare loop (the model's own time for them). Per call: its wall and CPU seconds,
the forward's, the bare loop's and ``whole / pure forward``. The first call also pays lm-eval's and
evalkit's first-use costs (task index, imports done lazily); the later calls are the callback's steady state.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from side import ForwardClock  # noqa: E402


def one_call(model, tokenizer, args, clock: ForwardClock) -> dict:
    """One ``evalkit.evaluate`` into a fresh store, then its batches again in a bare loop."""
    import evalkit

    clock.reset()
    overrides = {"mmlu": {"data": args.data, "num_fewshot": args.shots, "batch_docs": args.batch_docs}}
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        result = evalkit.evaluate(model, "mmlu", tokenizer=tokenizer, store=Path(tmp) / "store.sqlite", rerun=True,
                                  overrides=overrides, limit=args.limit or None, batch_size=args.batch_size,
                                  device="cpu")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    pure_wall, pure_cpu = clock.pure_forward()
    clock.kept = []  # the padded batches are not needed past their bare loop
    return {"acc": result.tasks["mmlu"].metrics["acc"], "wall": round(wall, 3), "cpu": round(cpu, 3),
            "model_seconds": round(clock.seconds, 3), "model_cpu": round(clock.cpu, 3),
            "pure_forward_seconds": round(pure_wall, 3), "pure_forward_cpu": round(pure_cpu, 3),
            "padded_tokens": clock.tokens, "forward_calls": clock.calls, "load": round(os.getloadavg()[0], 2),
            "whole_over_pure": round(wall / pure_wall, 4), "outside_forward_over_pure": round((wall - clock.seconds) / pure_wall, 4)}


def table(paths: list[str]) -> list[str]:
    """The README's table of recorded warm runs: per call, the whole call, the forward inside it, the same
    batches in the bare loop, and evalkit's own time (the call outside its forward) over the bare loop."""
    lines = ["| shots | call | whole s | forward in the call s | same batches, bare loop s | evalkit's own s "
             "| **own / bare loop** | whole / bare loop | forward in call / bare loop | load |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for path in paths:
        run = json.loads(Path(path).read_text(encoding="utf-8"))
        for call in run["calls"]:
            own, pure = call["wall"] - call["model_seconds"], call["pure_forward_seconds"]
            lines.append(f"| {run['args']['shots']} | {call['call']} | {call['wall']:.1f} | {call['model_seconds']:.1f} | "
                         f"{pure:.1f} | {own:.1f} | **{own / pure:.3f}** | {call['wall'] / pure:.3f} | "
                         f"{call['model_seconds'] / pure:.3f} | {call['load']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--limit", type=int, default=0, help="docs per subject; 0: all")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-docs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the calls here")
    parser.add_argument("--from-json", nargs="+", help="print the table of these recorded runs and exit")
    args = parser.parse_args()
    if args.from_json:
        print("\n".join(table(args.from_json)))
        return
    if not (args.model and args.data):
        parser.error("--model and --data are required to run")
    import logging

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    clock = ForwardClock(keep_inputs=True)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    calls = []
    for index in range(args.calls):
        calls.append({"call": index, **one_call(model, tokenizer, args, clock)})
        print(json.dumps(calls[-1]), flush=True)
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        Path(args.json).write_text(json.dumps({"args": vars(args), "date": time.strftime("%Y-%m-%d"),
                                               "code": commit.stdout.strip(), "calls": calls}, indent=1) + "\n")


if __name__ == "__main__":
    main()
