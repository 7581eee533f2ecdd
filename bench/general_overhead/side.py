"""One side of the full-size benchmark, as a user runs it, in its own process.

    python bench/general_overhead/side.py evalkit  --model DIR --data DIR [--limit N] [--shots K]
    python bench/general_overhead/side.py lm_eval  --model DIR --data DIR [--limit N] [--shots K]
    python bench/general_overhead/side.py evalkit  --task ifeval --model DIR --data input_data.jsonl --max-gen-toks 32

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
    """Times and counts ``HFLM._model_call`` and ``_model_generate`` for every HFLM (class-level patch)."""

    def __init__(self, keep_inputs: bool = False):
        from lm_eval.models.huggingface import HFLM

        self.reset()
        self.keep_inputs = keep_inputs
        for name in ("_model_call", "_model_generate"):
            setattr(HFLM, name, self._timed(getattr(HFLM, name), name))

    def reset(self) -> None:
        """Zero the counts and drop the kept inputs (a new run in the same process)."""
        self.seconds, self.cpu, self.tokens, self.calls = 0.0, 0.0, 0, 0
        self.cpu_at_first_call: float | None = None  # process CPU before the first forward: the fixed costs
        self.kept: list = []  # (lm, original _model_call, padded input tensor) with keep_inputs

    def pure_forward(self) -> tuple[float, float]:
        """Wall and CPU seconds of the kept ``_model_call`` batches run again in a bare loop: the model's own
        time for exactly the batches the run sent (same padded tensors, same order)."""
        import torch

        started, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for lm, method, inputs in self.kept:
                method(lm, inputs)
        return time.perf_counter() - started, time.process_time() - cpu

    def _timed(self, method, name):
        def timed(lm, *args, **kwargs):
            if self.cpu_at_first_call is None:
                self.cpu_at_first_call = time.process_time()
            if self.keep_inputs and name == "_model_call" and args and not kwargs:
                self.kept.append((lm, method, args[0]))
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return method(lm, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.cpu += time.process_time() - cpu
                inputs = args[0] if args else kwargs.get("inps", kwargs.get("context"))
                self.tokens += int(inputs.numel())  # padded input tokens (prompts, for generation)
                self.calls += 1

        return timed


def run_evalkit(args, store: Path) -> float:
    if args.task == "ifeval":
        return _evalkit_ifeval(args, store)
    from evalkit.cli import main
    from evalkit.records import EvalResult

    out = store.parent / "out"
    argv = ["--store", str(store), "eval", f"model={args.model}", "--tasks", "mmlu", "--batch-size", str(args.batch_size),
            "--device", "cpu", "--out", str(out), "--set", f"mmlu.data={args.data}", "--set", f"mmlu.num_fewshot={args.shots}",
            "--set", f"mmlu.batch_docs={args.batch_docs}"]
    if args.limit:
        argv += ["--set", f"mmlu.limit={args.limit}"]
    _call(main, argv)
    return EvalResult.load(out / "results.json").tasks["mmlu"].metrics["acc"]


def _call(main, argv: list[str]) -> None:
    """``evalkit.cli.main`` as the console script runs it (it exits 0 on success)."""
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code:
            raise


def _evalkit_ifeval(args, store: Path) -> float:
    from evalkit.cli import main
    from evalkit.records import EvalResult

    out = store.parent / "out"
    argv = ["--store", str(store), "eval", f"model={args.model}", "--tasks", "ifeval", "--batch-size", str(args.batch_size),
            "--device", "cpu", "--out", str(out), "--set", f"ifeval.data={args.data}",
            "--set", f"ifeval.generation={{max_gen_toks: {args.max_gen_toks}}}"]
    if args.limit:
        argv += ["--set", f"ifeval.limit={args.limit}"]
    _call(main, argv)
    return EvalResult.load(out / "results.json").tasks["ifeval"].metrics["prompt_level_strict_acc"]


def _lm_eval_ifeval(args) -> float:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from evalkit.general.overrides import ifeval_override_dir
    from evalkit.general.punkt import ensure_punkt_tab

    ensure_punkt_tab()
    manager = TaskManager(include_path=str(ifeval_override_dir(Path(args.data))), include_defaults=False)
    results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={args.model}", tasks=["ifeval"],
                                      task_manager=manager, batch_size=args.batch_size, device="cpu",
                                      limit=args.limit or None, gen_kwargs=f"max_gen_toks={args.max_gen_toks}",
                                      log_samples=False)
    return results["results"]["ifeval"]["prompt_level_strict_acc,none"]


def run_lm_eval(args) -> float:
    if args.task == "ifeval":
        return _lm_eval_ifeval(args)
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
    parser.add_argument("--task", choices=["mmlu", "ifeval"], default="mmlu",
                        help="ifeval: --data is Google's input_data.jsonl; no chat template (the tiny model has none)")
    parser.add_argument("--max-gen-toks", type=int, default=32, help="ifeval: generation budget of both sides")
    parser.add_argument("--pure-forward", action="store_true",
                        help="after the run, time the same padded batches in a bare forward loop (log-likelihood tasks)")
    args = parser.parse_args()
    started = time.perf_counter()
    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    clock = ForwardClock(keep_inputs=args.pure_forward)
    with tempfile.TemporaryDirectory() as tmp:
        acc = run_evalkit(args, Path(tmp) / "store.sqlite") if args.side == "evalkit" else run_lm_eval(args)
    run_wall, run_cpu = time.perf_counter() - started, time.process_time()
    pure = clock.pure_forward() if args.pure_forward else (None, None)
    print(json.dumps({"side": args.side, "pure_forward_seconds": pure[0], "pure_forward_cpu": pure[1], "acc": acc, "model_seconds": round(clock.seconds, 3),
                      "model_cpu": round(clock.cpu, 3), "cpu_in_process": round(run_cpu, 3),
                      "padded_tokens": clock.tokens, "cpu_before_first_forward": clock.cpu_at_first_call,
                      "forward_calls": clock.calls, "wall_in_process": round(run_wall, 3)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
