"""(c) A real run: ``evalkit compare`` of two small checkpoints on full MMLU, with and without ``--sequential``.

Both runs start from empty result stores (so each evaluates what it needs), one after the other, as whole
processes the way a user runs them; the load average is recorded before and after each. Writes
``bench/sequential/real_run.json``. Usage::

    python bench/sequential/real_run.py [--mmlu ../shared/data/mmlu] [--work /tmp/evalkit-seq-bench]
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


def _compare(work: Path, mmlu: Path, base: Path, tuned: Path, sequential: bool) -> dict:
    name = "sequential" if sequential else "full"
    out, store = work / name, work / f"{name}.sqlite"
    for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
        path.unlink(missing_ok=True)
    args = [sys.executable, "-m", "evalkit", "compare", f"base={base}", f"tuned={tuned}", "--tasks", "mmlu",
            "--set", f"mmlu.data={mmlu}", "--policy", str(work / "policy.yaml"), "--batch-size", "32",
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
    args = parser.parse_args()
    from evalkit.testing import build_tiny_model

    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "policy.yaml").write_text(POLICY, encoding="utf-8")
    base = build_tiny_model(args.work / "base", chat_template=True, seed=1)
    tuned = build_tiny_model(args.work / "tuned", chat_template=True, seed=7)
    runs = {"sequential": _compare(args.work, args.mmlu, base, tuned, True)}
    runs["full"] = _compare(args.work, args.mmlu, base, tuned, False)
    runs["ratio_wall_sequential_over_full"] = round(runs["sequential"]["wall_seconds"] / runs["full"]["wall_seconds"], 3)
    runs["same_verdict"] = runs["sequential"]["verdict"] == runs["full"]["verdict"]
    (HERE / "real_run.json").write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
