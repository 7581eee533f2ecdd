"""Wall time of evalkit's lm_eval evaluator versus a direct ``lm_eval.simple_evaluate`` on MMLU.

Both runs use the same HFLM object (loaded once, outside the timings), the same batch size and the same
lm-eval task folder (evalkit's generated YAMLs for the local MMLU data), so the difference is what
evalkit adds: chunked requests, per-sample records, lm-eval aggregation from the records. Each side is
timed from building its TaskManager to having the corpus metrics; runs alternate; median and minimum wall
time and median process CPU time are reported (the machine may be shared: minima and CPU time are steadier).

    python bench/general_overhead/run.py --data /work/shared/data/mmlu --limit 10 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def time_evalkit(lm, data: str, limit, batch_docs: int) -> tuple[float, float]:
    from evalkit.evaluators.lm_eval_tasks import LmEvalEvaluator
    from evalkit.taskconfig import TaskConfig

    started = time.perf_counter()
    config = TaskConfig(name="mmlu", evaluator="lm_eval", source="bench",
                        options={"lm_eval_task": "mmlu", "data": data, "limit": limit, "batch_docs": batch_docs})
    evaluator = LmEvalEvaluator(config)
    evaluator.check_ready()
    saved: list = []
    records = evaluator.run(lm, done={}, save=saved.append)
    result = evaluator.aggregate(records)
    return time.perf_counter() - started, result.metrics["acc"]


def time_lm_eval(lm, data: str, limit) -> tuple[float, float]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from evalkit.general.overrides import mmlu_override_dir

    folder, _ = mmlu_override_dir(Path(data))  # cached: the same YAMLs evalkit uses
    started = time.perf_counter()
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    results = lm_eval.simple_evaluate(model=lm, tasks=["mmlu"], task_manager=manager, limit=limit, log_samples=False)
    return time.perf_counter() - started, results["results"]["mmlu"]["acc,none"]


class ModelClock:
    """Times the LM's request methods (patched on the instance, so both harnesses call through it)."""

    def __init__(self, lm):
        self.seconds = 0.0
        for name in ("loglikelihood", "generate_until"):
            setattr(lm, name, self._timed(getattr(lm, name)))

    def _timed(self, method):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
        return call


def build_model(path: Path, hidden: int, layers: int) -> Path:
    from evalkit.testing import build_tiny_model

    return build_tiny_model(path, hidden=hidden, layers=layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/mmlu")
    parser.add_argument("--limit", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-docs", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 steadies timings on a shared machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    limit = int(args.limit) if args.limit >= 1 else args.limit

    import logging

    logging.disable(logging.WARNING)
    from lm_eval.models.huggingface import HFLM

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("EVALKIT_CACHE_DIR", str(Path(tmp) / "cache"))
        model = build_model(Path(tmp) / "model", args.hidden, args.layers)
        lm = HFLM(pretrained=str(model), batch_size=args.batch_size, device="cpu")
        clock = ModelClock(lm)
        time_evalkit(lm, args.data, limit, args.batch_docs)  # warm-up: data conversion, HF datasets cache
        time_lm_eval(lm, args.data, limit)
        ours, theirs, cpu_ours, cpu_theirs, rest_ours, rest_theirs = [], [], [], [], [], []
        for _ in range(args.repeats):
            cpu, clock.seconds = time.process_time(), 0.0
            seconds, acc_ours = time_evalkit(lm, args.data, limit, args.batch_docs)
            ours.append(seconds)
            rest_ours.append(seconds - clock.seconds)
            cpu_ours.append(time.process_time() - cpu)
            cpu, clock.seconds = time.process_time(), 0.0
            seconds, acc_theirs = time_lm_eval(lm, args.data, limit)
            theirs.append(seconds)
            rest_theirs.append(seconds - clock.seconds)
            cpu_theirs.append(time.process_time() - cpu)
            if acc_ours != acc_theirs:
                raise SystemExit(f"accuracy differs: evalkit {acc_ours} vs lm-eval {acc_theirs}")
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"model hidden={args.hidden} layers={args.layers}, limit={limit}/subject, batch_size={args.batch_size}, "
          f"batch_docs={args.batch_docs}, acc={acc_ours:.4f} (equal)")
    print(f"lm_eval.simple_evaluate: median {med_theirs:.2f} s  runs {[round(s, 2) for s in theirs]}")
    print(f"evalkit lm_eval:         median {med_ours:.2f} s  runs {[round(s, 2) for s in ours]}")
    print(f"outside model calls: lm-eval median {statistics.median(rest_theirs):.2f} s, evalkit median "
          f"{statistics.median(rest_ours):.2f} s -> evalkit adds "
          f"{100 * (statistics.median(rest_ours) - statistics.median(rest_theirs)) / med_theirs:+.1f} % of lm-eval's wall time")
    print(f"overhead (median wall): {100 * (med_ours / med_theirs - 1):+.1f} %; "
          f"(min wall): {100 * (min(ours) / min(theirs) - 1):+.1f} %; "
          f"(median CPU): {100 * (statistics.median(cpu_ours) / statistics.median(cpu_theirs) - 1):+.1f} %")


if __name__ == "__main__":
    main()
