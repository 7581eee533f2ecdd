"""VOC throughput on CFPB rows: constrained mode (prefix cache, prompt tokenised once) against free generation,
constrained mode's earlier paths, and generate mode's parsing against the old difflib-only parser; predictions
must be equal.

    PYTHONPATH=. python bench/voc_throughput/run.py --rows 256 --repeats 3

One HFLM (tiny random Llama, ``--batch-size`` 8 as evalkit's default for in-process models on CPU, torch
``--threads``) is loaded once. Each repeat runs, in an order rotated from repeat to repeat (interleaved):

- constrained mode as shipped (``PrefixScorer``: prompt run once with a key/value cache; the prompt tokenised
  once, candidates' ids joined to it where provably identical, ``PairEncoder.join``);
- constrained mode with full tokenisation of every candidate (joining off: the path before it);
- constrained mode without the prefix cache (every candidate a full ``lm.loglikelihood`` request; skipped
  with ``--no-old-path``);
- generate mode, whose raw outputs are then parsed by both parsers (timed separately).

The load average is recorded with every figure. Nothing is printed unless the predictions are equal.
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


VARIANTS = {"constrained": "constrained (shipped)", "full": "constrained, full tokenisation",
            "old": "constrained, no prefix cache", "generate": "generate (incl. new parsing)"}


def constrained(lm, data: Path, args, variant: str) -> tuple[float, list]:
    """Constrained mode as shipped, with joining off ("full") or without the prefix cache ("old")."""
    from evalkit import tokenization
    from evalkit.voc import constrained as module

    originals = module.PrefixScorer.supports, tokenization.joins_at_whitespace
    if variant == "old":
        module.PrefixScorer.supports = staticmethod(lambda lm: False)
    if variant == "full":
        tokenization.joins_at_whitespace = lambda tokenizer: False
    try:
        return _timed_run(_evaluator(data, args.rows, "constrained", args.batch_docs), lm, VARIANTS[variant])
    finally:
        module.PrefixScorer.supports, tokenization.joins_at_whitespace = originals


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
    parser.add_argument("--no-old-path", action="store_true", help="skip constrained mode without the prefix cache")
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
        variants = ["constrained", "full", "generate"] + ([] if args.no_old_path else ["old"])
        figures: dict[str, list[float]] = {VARIANTS[v]: [] for v in variants}
        figures.update({"parse, new": [], "parse, old": []})
        loads = []
        for repeat in range(args.repeats):
            loads.append(os.getloadavg()[0])
            order = variants[repeat % len(variants):] + variants[:repeat % len(variants)]
            runs = {}
            for variant in order:
                if variant == "generate":
                    evaluator = _evaluator(data, args.rows, "generate", args.batch_docs)
                    runs[variant] = _timed_run(evaluator, lm, VARIANTS[variant])
                else:
                    runs[variant] = constrained(lm, data, args, variant)
                figures[VARIANTS[variant]].append(runs[variant][0])
            predictions = {v: [r.prediction for r in runs[v][1]] for v in runs if v != "generate"}
            if any(p != predictions["constrained"] for p in predictions.values()):
                raise SystemExit(f"constrained predictions differ between variants: {sorted(predictions)}")
            records = runs["generate"][1]
            fast, slow, parsed = parse_times(evaluator.data.taxonomy, [r.extra["raw_output"] for r in records],
                                             evaluator.options.parse_cutoff)
            if [p.path for p in parsed] != [tuple(r.extra["pred_path"]) if r.extra["pred_path"] else None for r in records]:
                raise SystemExit("the evaluator's parses differ from the parser's")
            figures["parse, new"].append(fast)
            figures["parse, old"].append(slow)
            loads.append(os.getloadavg()[0])
            print(f"repeat {repeat} (order {order}): " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in figures.items())
                  + f", load {loads[-1]:.1f}", flush=True)
    rules = {}
    for p in parsed:
        rules[p.rule] = rules.get(p.rule, 0) + 1
    print(f"\n{args.rows} CFPB rows, batch_size={args.batch_size}, threads={args.threads}, chat template "
          f"{args.chat_template}, load {min(loads):.1f}-{max(loads):.1f}; predictions equal; parse rules {rules}")
    print("| what | median wall s | median CPU s | wall runs |\n|---|---:|---:|---|")
    for key, values in figures.items():
        cpu = f"{statistics.median(CPU[key]):.2f}" if key in CPU else "-"
        print(f"| {key} | {statistics.median(values):.2f} | {cpu} | {[round(v, 2) for v in values]} |")
    shipped, full, generate = VARIANTS["constrained"], VARIANTS["full"], VARIANTS["generate"]
    wall = {k: statistics.median(v) for k, v in figures.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    per_repeat = lambda d, a, b: statistics.median(x / y for x, y in zip(d[a], d[b]))  # noqa: E731
    print(f"constrained / generate: wall {per_repeat(figures, shipped, generate):.2f}, CPU {per_repeat(CPU, shipped, generate):.2f} "
          f"(median of per-repeat ratios); full tokenisation / shipped: wall {per_repeat(figures, full, shipped):.2f}, "
          f"CPU {per_repeat(CPU, full, shipped):.2f}; parsing old / new = {wall['parse, old'] / max(wall['parse, new'], 1e-9):.1f}x")
    if VARIANTS["old"] in CPU:
        print(f"no prefix cache / shipped: CPU {cpu[VARIANTS['old']] / cpu[shipped]:.2f}")


if __name__ == "__main__":
    main()
