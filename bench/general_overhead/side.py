"""One side of the full-size benchmark, as a user runs it, in its own process.

    python bench/general_overhead/side.py evalkit  --model DIR --data DIR [--limit N] [--shots K]
    python bench/general_overhead/side.py lm_eval  --model DIR --data DIR [--limit N] [--shots K]

``evalkit`` runs the ``evalkit eval`` command (``evalkit.cli.main``) on the shipped ``mmlu`` task with
``--set mmlu.data=...`` and a fresh result store; ``lm_eval`` runs ``lm_eval.simple_evaluate`` with
``model="hf"`` on lm-eval's MMLU template over the same CSVs (the folder evalkit generates: lm-eval's
``_default_template_yaml`` and ``weight_by_size`` groups). Both load the model themselves. The forward
pass (``HFLM._model_call``, patched on the class before either side loads) is timed and its padded input
tokens counted, so the parent can separate model time from everything else. The last stdout line is a
JSON object: side, accuracy, model wall and CPU seconds, process CPU seconds, padded tokens, forward
calls, in-process wall seconds. On a loaded machine CPU seconds are the steadier measure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ForwardClock:
    """Times and counts ``HFLM._model_call`` for every HFLM instance (class-level patch)."""

    def __init__(self):
        from lm_eval.models.huggingface import HFLM

        self.seconds, self.cpu, self.tokens, self.calls = 0.0, 0.0, 0, 0
        forward = HFLM._model_call

        def timed(lm, inps, *args, **kwargs):
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return forward(lm, inps, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.cpu += time.process_time() - cpu
                self.tokens += int(inps.numel())
                self.calls += 1

        HFLM._model_call = timed


def run_evalkit(args, store: Path) -> float:
    from evalkit.cli import main
    from evalkit.records import EvalResult

    out = store.parent / "out"
    argv = ["--store", str(store), "eval", f"model={args.model}", "--tasks", "mmlu", "--batch-size", str(args.batch_size),
            "--device", "cpu", "--out", str(out), "--set", f"mmlu.data={args.data}", "--set", f"mmlu.num_fewshot={args.shots}",
            "--set", f"mmlu.batch_docs={args.batch_docs}"]
    if args.limit:
        argv += ["--set", f"mmlu.limit={args.limit}"]
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code:
            raise
    return EvalResult.load(out / "results.json").tasks["mmlu"].metrics["acc"]


def run_lm_eval(args) -> float:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from evalkit.general.overrides import mmlu_override_dir

    folder, _ = mmlu_override_dir(Path(args.data))
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={args.model}", tasks=["mmlu"],
                                      task_manager=manager, batch_size=args.batch_size, device="cpu",
                                      limit=args.limit or None, num_fewshot=args.shots, log_samples=False)
    return results["results"]["mmlu"]["acc,none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["evalkit", "lm_eval"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=0, help="docs per subject; 0: all")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-docs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    clock = ForwardClock()
    with tempfile.TemporaryDirectory() as tmp:
        acc = run_evalkit(args, Path(tmp) / "store.sqlite") if args.side == "evalkit" else run_lm_eval(args)
    print(json.dumps({"side": args.side, "acc": acc, "model_seconds": round(clock.seconds, 3),
                      "model_cpu": round(clock.cpu, 3), "cpu_in_process": round(time.process_time(), 3),
                      "padded_tokens": clock.tokens,
                      "forward_calls": clock.calls, "wall_in_process": round(time.perf_counter() - started, 3)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
