"""Wall time of evalkit's lm_eval evaluator versus a direct ``lm_eval.simple_evaluate`` on MMLU.

Both runs use the same HFLM object (loaded once, outside the timings), the same batch size and the same
lm-eval task folder (evalkit's generated YAMLs for the local MMLU data), so the difference is what
evalkit adds: chunked requests, per-sample records, lm-eval aggregation from the records. Each side is
timed from building its TaskManager to having the corpus metrics; runs alternate; median and minimum wall
time and median process CPU time are reported (the machine may be shared: minima and CPU time are steadier).

    python bench/general_overhead/run.py --data /work/shared/data/mmlu --limit 10 --repeats 3

Full-size mode (``--processes``): each side runs as a user runs it, in its own process (``side.py``:
``evalkit eval`` with a fresh store against ``lm_eval.simple_evaluate(model="hf")``), under the same
``nice`` level, torch threads and batch size; repeats alternate which side goes first; the load average
is recorded before every run; the table gives per-size medians and the evalkit/lm-eval ratios of wall,
CPU, model (forward pass) and non-model time, from the same interleaved runs. ``--limits 0`` is full MMLU.

    python bench/general_overhead/run.py --processes --limits 5,20,100,0 --repeats 3 --shots 0 --json out.json
    python bench/general_overhead/run.py --from-json out.json more.json     # the table of recorded runs
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
    from evalkit.general.evaluator import LmEvalEvaluator
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


def _run_side(side: str, args, limit: int, model: Path) -> dict:
    """One whole-process run of ``side.py``: wall and CPU measured here, model time reported by the child."""
    import json
    import resource
    import subprocess
    import sys

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    command = ["nice", "-n", str(args.nice), sys.executable, str(Path(__file__).with_name("side.py")), side,
               "--model", str(model), "--data", args.data, "--limit", str(limit), "--shots", str(args.shots),
               "--batch-size", str(args.batch_size), "--batch-docs", str(args.batch_docs), "--threads", str(args.threads),
               "--task", args.task, "--max-gen-toks", str(args.max_gen_toks)]
    if args.pure_forward and side == "evalkit":
        command.append("--pure-forward")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    started_at = time.time()  # wall-clock span: runs overlapping a paused (QUIET) window can be told apart
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{side} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**out, "wall": round(wall, 3), "cpu": round(cpu, 3), "rest": round(wall - out["model_seconds"], 3),
            "rest_cpu": round(out["cpu_in_process"] - out["model_cpu"], 3), "load": load,
            "load_end": os.getloadavg()[0], "started_at": round(started_at, 1), "ended_at": round(time.time(), 1)}


def processes_mode(args) -> None:
    """Whole processes, interleaved, per size: the ratios the README reports."""
    import json

    limits = [int(x) for x in args.limits.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("EVALKIT_CACHE_DIR", str(Path(tmp) / "cache"))
        model = build_model(Path(tmp) / "model", args.hidden, args.layers)
        runs: list[dict] = []
        if args.task == "ifeval" and args.data.endswith("mmlu"):
            args.data = str(Path(args.data).parent / "ifeval" / "input_data.jsonl")
        _run_side("evalkit", args, 1, model)  # warm-up: generated YAMLs, HF datasets cache (both sides use them)
        for limit in limits:
            for repeat in range(args.repeats):
                order = ("evalkit", "lm_eval") if repeat % 2 == 0 else ("lm_eval", "evalkit")
                pair = {}
                for side in order:
                    pair[side] = _run_side(side, args, limit, model)
                    if args.json:  # after every run: a long run stopped early keeps what it measured
                        done = runs + [{"limit": limit, "repeat": repeat, **r} for r in pair.values()]
                        _write_json(args, done)
                if pair["evalkit"]["acc"] != pair["lm_eval"]["acc"]:
                    raise SystemExit(f"limit {limit}: accuracy differs: {pair}")
                for side, run in pair.items():
                    runs.append({"limit": limit, "repeat": repeat, **run})  # as measured: the loop stays in "wall"
                print(f"limit {limit or 'full'} repeat {repeat}: " + ", ".join(
                    f"{s} wall {r['wall']:.1f}s model {r['model_seconds']:.1f}s rest {r['rest']:.1f}s "
                    f"CPU {r['cpu']:.1f}s non-model CPU {r['rest_cpu']:.1f}s load {r['load']:.1f}"
                    for s, r in ((s, without_loop(r)) for s, r in pair.items())), flush=True)
                if pair["evalkit"].get("pure_forward_cpu"):
                    print(pure_forward_line(limit, pair["evalkit"]), flush=True)
    print(f"\ntask={args.task} shots={args.shots} max_gen_toks={args.max_gen_toks} batch_size={args.batch_size} batch_docs={args.batch_docs} threads={args.threads} "
          f"nice={args.nice} model hidden={args.hidden} layers={args.layers}")
    print_table(runs)
    print_pure_forward_table(runs)


def _write_json(args, runs: list[dict]) -> None:
    """The runs so far, with the date and the commit measured (the working tree's state beside it)."""
    import json
    import subprocess

    def git(*words: str) -> str:
        here = Path(__file__).parent
        return subprocess.run(["git", *words], capture_output=True, text=True, cwd=here).stdout.strip()

    code = {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain", "--", "evalkit"))}
    meta = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "code": code}
    Path(args.json).write_text(json.dumps({"args": vars(args), **meta, "runs": runs}, indent=1))


def pure_forward_line(limit: int, run: dict) -> str:
    return (f"limit {limit or 'full'}: evalkit whole process {run['cpu_in_process']:.1f} CPU s, pure forward "
            f"{run['pure_forward_cpu']:.1f} CPU s: whole / pure forward {run['cpu_in_process'] / run['pure_forward_cpu']:.2f} "
            f"(CPU before the first forward {run['cpu_before_first_forward']:.1f} s)")


def print_pure_forward_table(runs: list[dict]) -> None:
    """Per evalkit run timed with ``--pure-forward``: the whole process against the model's own time (CPU s)."""
    timed = [r for r in runs if r["side"] == "evalkit" and r.get("pure_forward_cpu")]
    if not timed:
        return
    print("\n| docs/subject | evalkit process CPU s | CPU before the first forward | forward CPU s (in run) "
          "| pure forward CPU s | **whole / pure forward (CPU)** | wall s | load (start-end) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in timed:
        print(f"| {r['limit'] or 'all'} | {r['cpu_in_process']:.1f} | {r['cpu_before_first_forward']:.1f} "
              f"| {r['model_cpu']:.1f} | {r['pure_forward_cpu']:.1f} | **{r['cpu_in_process'] / r['pure_forward_cpu']:.2f}** "
              f"| {r['wall_in_process']:.1f} | {r['load']:.1f}-{r.get('load_end', r['load']):.1f} |")


def without_loop(run: dict) -> dict:
    """The run with the ``--pure-forward`` loop taken out of the parent's ``wall``, ``cpu`` and ``rest``.

    ``side.py --pure-forward`` times the bare forward loop *after* its evaluation, inside the process the parent
    times, so the parent's figures of that side hold the loop too: compared as they are, they are not evalkit's
    evaluation against lm-eval's. Subtracting the loop's own wall and CPU (``pure_forward_seconds``/``_cpu``,
    measured by side.py around it) keeps every run measured the same way (whole process, as the parent sees it,
    start-up and exit included) whether or not it ran the loop; runs without it (lm-eval's side, older JSONs:
    the keys absent or null) are returned unchanged. ``rest_cpu`` is in-process up to the end of the run already.
    """
    loop_wall, loop_cpu = run.get("pure_forward_seconds"), run.get("pure_forward_cpu")
    if loop_wall is None or loop_cpu is None:
        return run
    return {**run, "wall": run["wall"] - loop_wall, "cpu": run["cpu"] - loop_cpu, "rest": run["rest"] - loop_wall}


def print_table(runs: list[dict]) -> None:
    """Per size: medians, the median of the per-pair ratios (evalkit / lm-eval), padded tokens and load.

    Wall, CPU and non-model wall exclude the evalkit side's ``--pure-forward`` loop (``without_loop``)."""
    if not {r["side"] for r in runs} >= {"evalkit", "lm_eval"}:  # no pair finished: nothing to compare
        return
    runs = [without_loop(r) for r in runs]
    print("| docs/subject | runs | acc (equal) | lm-eval wall | evalkit wall | wall ratio | CPU ratio | model ratio "
          "| non-model ratio (wall) | non-model CPU (lm-eval / evalkit) | padded tokens (lm-eval / evalkit) | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for limit in dict.fromkeys(r["limit"] for r in runs):
        mine = [r for r in runs if r["limit"] == limit and r["side"] == "evalkit"]
        theirs = [r for r in runs if r["limit"] == limit and r["side"] == "lm_eval"]
        if not mine or not theirs:  # a run stopped before its pair finished
            continue
        med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
        ratio = lambda k: statistics.median(a[k] / b[k] for a, b in zip(mine, theirs))  # noqa: E731
        loads = [r["load"] for r in mine + theirs]
        print(f"| {limit or 'all'} | {len(mine)} | {mine[0]['acc']:.4f} | {med(theirs, 'wall'):.1f} s | {med(mine, 'wall'):.1f} s "
              f"| {ratio('wall'):.2f} | {ratio('cpu'):.2f} | {ratio('model_seconds'):.2f} | {ratio('rest'):.2f} "
              f"| {med(theirs, 'rest_cpu'):.1f} s / {med(mine, 'rest_cpu'):.1f} s ({ratio('rest_cpu'):.2f}) "
              f"| {theirs[0]['padded_tokens']:,} / {mine[0]['padded_tokens']:,} | {min(loads):.1f}-{max(loads):.1f} |")


def from_json(paths: list[str]) -> None:
    """The table of runs recorded with ``--json`` (several files: their runs together, pairs kept)."""
    import json

    runs = []
    for path in paths:  # each file holds whole pairs, so the n-th evalkit and lm-eval runs of a size pair up
        runs.extend(json.loads(Path(path).read_text())["runs"])
    print_table(runs)
    print_pure_forward_table(runs)


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
    parser.add_argument("--processes", action="store_true", help="full-size mode: whole processes per side (side.py)")
    parser.add_argument("--limits", default="5,20,100,0", help="--processes: docs per subject, 0 = all (comma list)")
    parser.add_argument("--shots", type=int, default=0, help="--processes: num_fewshot for both sides")
    parser.add_argument("--nice", type=int, default=5, help="--processes: nice level of both sides")
    parser.add_argument("--json", default=None, help="--processes: also write every run to this JSON file")
    parser.add_argument("--task", choices=["mmlu", "ifeval"], default="mmlu", help="--processes: MMLU or IFEval")
    parser.add_argument("--max-gen-toks", type=int, default=32, help="--processes --task ifeval: generation budget")
    parser.add_argument("--pure-forward", action="store_true",
                        help="--processes: the evalkit side also times its exact batches again in a bare forward loop")
    parser.add_argument("--from-json", nargs="+", default=None, help="print the table of runs recorded with --json")
    args = parser.parse_args()
    if args.from_json:
        return from_json(args.from_json)
    if args.processes:
        return processes_mode(args)
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
