"""VOC throughput on CFPB rows: constrained mode with and without the prefix cache, generate mode's parsing
with the rapidfuzz-bounded matcher against the old difflib-only one; predictions must be equal.

    PYTHONPATH=. python bench/voc_throughput/run.py --rows 256 --repeats 2

One HFLM (tiny random Llama, ``--batch-size`` 8 as evalkit's default for in-process models on CPU, torch
``--threads``) is loaded once; each repeat runs, in alternating order, constrained mode with the prefix
cache (``PrefixScorer``) and without it (every candidate a full ``lm.loglikelihood`` request, the old
path), then generate mode once, whose raw outputs are parsed by both parsers (timed separately). The load
average is recorded with every figure. Nothing is printed unless the predictions are equal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _evaluator(data: Path, rows: int, mode: str, batch_docs: int):
    from evalkit.evaluators.base import get_evaluator
    from evalkit.taskconfig import load_task_file

    config = load_task_file(ROOT / "evalkit" / "tasks" / "voc_cfpb.yaml")
    config.options.update({"data": str(data), "limit": rows, "mode": mode, "batch_docs": batch_docs, "n_resamples": 0})
    evaluator = get_evaluator("voc")(config)
    evaluator.check_ready()
    return evaluator


CPU: dict[str, list[float]] = {}


def _timed_run(evaluator, lm, label: str) -> tuple[float, list]:
    """Wall seconds (returned) and process CPU seconds (kept in CPU[label]: steadier on a shared machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    CPU.setdefault(label, []).append(time.process_time() - cpu)
    return time.perf_counter() - started, records


def constrained(lm, data: Path, args, cached: bool) -> tuple[float, list]:
    from evalkit.voc import constrained as module

    original = module.PrefixScorer.supports
    if not cached:
        module.PrefixScorer.supports = staticmethod(lambda lm: False)
    try:
        label = "constrained, prefix cache" if cached else "constrained, old path"
        return _timed_run(_evaluator(data, args.rows, "constrained", args.batch_docs), lm, label)
    finally:
        module.PrefixScorer.supports = original


def parse_times(taxonomy, outputs: list[str], cutoff: float) -> tuple[float, float, list]:
    from evalkit.voc.parsing import OutputParser
    from tests.helpers.difflib_parser import DifflibParser

    timings, results = [], []
    for cls in (OutputParser, DifflibParser):
        parser = cls(taxonomy, cutoff=cutoff)
        started = time.perf_counter()
        results.append([parser.parse(o) for o in outputs])
        timings.append(time.perf_counter() - started)
    if results[0] != results[1]:
        raise SystemExit("parses differ between the bulk matcher and difflib")
    return timings[0], timings[1], results[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "voc" / "cfpb" / "cfpb_narratives_4level.csv"))
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batch-docs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chat-template", action="store_true", help="build the tiny model with a chat template")
    args = parser.parse_args()
    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    from lm_eval.models.huggingface import HFLM

    from evalkit.testing import build_tiny_model

    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "model", chat_template=args.chat_template)
        lm = HFLM(pretrained=str(model), batch_size=args.batch_size, device="cpu")
        figures: dict[str, list[float]] = {"constrained, prefix cache": [], "constrained, old path": [],
                                           "generate (incl. new parsing)": [], "parse, new": [], "parse, old": []}
        loads = []
        for repeat in range(args.repeats):
            loads.append(os.getloadavg()[0])
            order = (True, False) if repeat % 2 == 0 else (False, True)
            runs = {cached: constrained(lm, data, args, cached) for cached in order}
            new, old = runs[True][1], runs[False][1]
            if [r.prediction for r in new] != [r.prediction for r in old]:
                raise SystemExit("constrained predictions differ with and without the prefix cache")
            figures["constrained, prefix cache"].append(runs[True][0])
            figures["constrained, old path"].append(runs[False][0])
            evaluator = _evaluator(data, args.rows, "generate", args.batch_docs)
            seconds, records = _timed_run(evaluator, lm, "generate (incl. new parsing)")
            figures["generate (incl. new parsing)"].append(seconds)
            fast, slow, parsed = parse_times(evaluator.data.taxonomy, [r.extra["raw_output"] for r in records],
                                             evaluator.options.parse_cutoff)
            if [p.path for p in parsed] != [tuple(r.extra["pred_path"]) if r.extra["pred_path"] else None for r in records]:
                raise SystemExit("the evaluator's parses differ from the parser's")
            figures["parse, new"].append(fast)
            figures["parse, old"].append(slow)
            loads.append(os.getloadavg()[0])
            print(f"repeat {repeat}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in figures.items()) + f", load {loads[-1]:.1f}",
                  flush=True)
    rules = {}
    for p in parsed:
        rules[p.rule] = rules.get(p.rule, 0) + 1
    print(f"\n{args.rows} CFPB rows, batch_size={args.batch_size}, threads={args.threads}, chat template "
          f"{args.chat_template}, load {min(loads):.1f}-{max(loads):.1f}; predictions equal; parse rules {rules}")
    print("| what | median wall s | median CPU s | wall runs |\n|---|---:|---:|---|")
    for key, values in figures.items():
        cpu = f"{statistics.median(CPU[key]):.2f}" if key in CPU else "-"
        print(f"| {key} | {statistics.median(values):.2f} | {cpu} | {[round(v, 2) for v in values]} |")
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"constrained: prefix cache / old path = {med['constrained, prefix cache'] / med['constrained, old path']:.2f}; "
          f"constrained (cache) / generate = {med['constrained, prefix cache'] / med['generate (incl. new parsing)']:.2f}; "
          f"parsing old / new = {med['parse, old'] / max(med['parse, new'], 1e-9):.1f}x")
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    print(f"CPU: prefix cache / old path = {cpu['constrained, prefix cache'] / cpu['constrained, old path']:.2f}; "
          f"constrained (cache) / generate = {cpu['constrained, prefix cache'] / cpu['generate (incl. new parsing)']:.2f}")


if __name__ == "__main__":
    main()
