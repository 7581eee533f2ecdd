"""Where `evalkit eval ... --tasks mmlu` spends its CPU before the model's first forward pass.

    python bench/general_overhead/startup.py --model DIR --data /work/shared/data/mmlu --shots 5 [--json out.json]
    python bench/general_overhead/startup.py --from-json runs/issue26_startup_phases.json   # the README's table

Runs ``evalkit eval`` in this process exactly as ``side.py`` does and stops it at the first
``HFLM._model_call``; each phase is timed in process CPU seconds by wrapping the function that does it
(no profiler, so Python-heavy phases are not inflated). Nested phases include their children:
``sample_ids`` includes the first ``load_tasks``, ``order_for_model`` includes ``PairEncoder.encode``.
Whatever code ``PYTHONPATH`` puts first is measured (a worktree or main).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _Stop(BaseException):
    """Raised by the first forward pass: start-up ends there."""


def _timed(phases: list, owner, name: str, label: str) -> None:
    method = getattr(owner, name)

    @functools.wraps(method)
    def timed(*args, **kwargs):
        started = time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            phases.append((label, round(time.process_time() - started, 2)))

    setattr(owner, name, timed)


def _wrap_phases(phases: list) -> None:
    import evalkit.checkpoints.loaders as loaders
    import evalkit.general.evaluator as evaluator
    import evalkit.general.lmeval.lazy as lazy
    import evalkit.tokenization as tokenization

    _timed(phases, evaluator.LmEvalEvaluator, "check_ready", "check_ready (task index)")
    _timed(phases, lazy, "load_tasks", "load_tasks (lm-eval builds the subject tasks, datasets load)")
    _timed(phases, evaluator.LmEvalEvaluator, "sample_ids", "sample_ids (incl. the first load_tasks)")
    _timed(phases, loaders, "_hflm", "HFLM(...): model and tokenizer load")
    _timed(phases, evaluator, "build_docs", "build_docs (lm-eval's build_all_requests)")
    _timed(phases, tokenization.PairEncoder, "encode", "PairEncoder.encode (tokenisation)")
    _timed(phases, evaluator, "order_for_model", "order_for_model (incl. PairEncoder.encode)")


def table(path: str) -> None:
    """The recorded runs as a markdown table: one column per run, one row per phase (CPU s)."""
    data = json.loads(open(path).read())
    runs = data["runs"] if isinstance(data, dict) else data
    labels = list(dict.fromkeys(label for run in runs for label, _ in run["phases"]))
    print("| phase (CPU s; nested phases include their children) | "
          + " | ".join(f"{run['shots']}-shot, {run.get('code', '?').split(' (')[0]}" for run in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for label in labels:
        cells = [sum(s for name, s in run["phases"] if name == label) for run in runs]
        print(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    print("| **process CPU before the first forward** | "
          + " | ".join(f"**{run['cpu_before_first_forward']:.1f}**" for run in runs) + " |")
    print("| load (start-end), UTC start | "
          + " | ".join(f"{run['load_at_start']:.1f}-{run['load_at_end']:.1f}, {run['date'][-5:]}" for run in runs) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", default=None, help="print the table of the runs recorded in this file")
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="docs per subject; 0: all")
    parser.add_argument("--json", default=None, help="append this run to a JSON list in this file")
    args = parser.parse_args()
    if args.from_json:
        return table(args.from_json)
    if not args.model or not args.data:
        parser.error("--model and --data are required")
    phases: list = []
    started = time.process_time()
    import logging

    import torch

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    from lm_eval.models.huggingface import HFLM

    phases.append(("import torch, lm_eval.models.huggingface", round(time.process_time() - started, 2)))

    def stop(self, *args, **kwargs):
        raise _Stop

    HFLM._model_call = stop
    from evalkit.cli import main as cli

    _wrap_phases(phases)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--store", f"{tmp}/store.sqlite", "eval", f"model={args.model}", "--tasks", "mmlu", "--batch-size", "32",
                "--device", "cpu", "--out", f"{tmp}/out", "--set", f"mmlu.data={args.data}",
                "--set", f"mmlu.num_fewshot={args.shots}", "--set", "mmlu.batch_docs=64"]
        if args.limit:
            argv += ["--set", f"mmlu.limit={args.limit}"]
        try:
            cli(argv)
        except _Stop:
            pass
    import evalkit

    run = {"shots": args.shots, "limit": args.limit, "evalkit": os.path.dirname(evalkit.__file__),
           "cpu_before_first_forward": round(time.process_time(), 2), "phases": phases, "load_at_start": load,
           "load_at_end": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    for label, seconds in phases:
        print(f"{seconds:7.2f}  {label}")
    print(f"{run['cpu_before_first_forward']:7.2f}  process CPU before the first forward (load {load:.1f})")
    if args.json:
        runs = json.loads(open(args.json).read()) if os.path.exists(args.json) else []
        with open(args.json, "w") as out:
            json.dump(runs + [run], out, indent=1)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
