"""(c) A real run: ``evalkit compare`` of two small checkpoints on real MMLU, with and without ``--sequential``.

The base is a tiny chat model (``evalkit.testing.build_tiny_model``); the tuned checkpoint is the base with
every weight perturbed by Gaussian noise (``--noise`` times each tensor's standard deviation), the way a
light fine-tune leaves most answers unchanged. Both runs start from empty result stores (so each
evaluates what it needs), one after the other, as whole processes the way a user runs them; the load
average is recorded before and after each. ``--limit`` caps the questions per subject (lm-eval's
``--limit``; 0 for all 14,042). Writes ``bench/sequential/real_run.json``. Usage::

    python bench/sequential/real_run.py [--mmlu ../shared/data/mmlu] [--limit 50] [--work /tmp/evalkit-seq-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POLICY = "gates:\n  - metric: mmlu.acc\n    max_drop: 0.05\n"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def perturbed_copy(base: Path, out: Path, noise: float, seed: int) -> Path:
    """The base model with each weight tensor plus noise * its std * N(0, 1) (a stand-in for a light fine-tune)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(base, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(base)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() > 1:
                parameter.add_(noise * parameter.std() * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(out)
    return out


def _compare(work: Path, mmlu: Path, base: Path, tuned: Path, sequential: bool, limit: int) -> dict:
    name = "sequential" if sequential else "full"
    out, store = work / name, work / f"{name}.sqlite"
    for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
        path.unlink(missing_ok=True)
    args = [sys.executable, "-m", "evalkit", "compare", f"base={base}", f"tuned={tuned}", "--tasks", "mmlu",
            "--set", f"mmlu.data={mmlu}", *(["--set", f"mmlu.limit={limit}"] if limit else []), "--policy", str(work / "policy.yaml"), "--batch-size", "32",
            "--out", str(out), "--store", str(store)] + (["--sequential"] if sequential else [])
    env = {**os.environ, "EVALKIT_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    load_before, started = _load(), time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    (work / f"{name}.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    verdict = json.loads((out / "verdict.json").read_text())
    comparison = json.loads((out / "comparison.json").read_text())
    outcome = (comparison.get("sequential") or {}).get("tasks", {}).get("mmlu")
    return {"exit_code": result.returncode, "wall_seconds": round(seconds, 1), "load_before": load_before,
            "load_after": _load(), "verdict": verdict["status"], "check": verdict["checks"][0]["message"],
            "n_samples": comparison["tasks"][0]["n_samples"], "sequential": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmlu", type=Path, default=ROOT.parent / "shared" / "data" / "mmlu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/evalkit-seq-bench"))
    parser.add_argument("--limit", type=int, default=50, help="questions per subject; 0 for all")
    parser.add_argument("--noise", type=float, default=0.05, help="weight noise of the tuned checkpoint")
    parser.add_argument("--output", default="real_run.json", help="file name written beside this script")
    args = parser.parse_args()
    from evalkit.testing import build_tiny_model

    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "policy.yaml").write_text(POLICY, encoding="utf-8")
    base = build_tiny_model(args.work / "base", chat_template=True, seed=1)
    tuned = perturbed_copy(base, args.work / "tuned", args.noise, seed=7)
    runs = {"settings": {"limit_per_subject": args.limit or None, "noise": args.noise, "batch_size": 32,
                         "policy": POLICY}}
    runs["sequential"] = _compare(args.work, args.mmlu, base, tuned, True, args.limit)
    runs["full"] = _compare(args.work, args.mmlu, base, tuned, False, args.limit)
    runs["ratio_wall_sequential_over_full"] = round(runs["sequential"]["wall_seconds"] / runs["full"]["wall_seconds"], 3)
    runs["same_verdict"] = runs["sequential"]["verdict"] == runs["full"]["verdict"]
    (HERE / args.output).write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
