"""Time the CLI's fail-fast and help paths (bench/cli/README.md): wall and CPU (user+sys) per case.

Usage: python bench/cli/run.py [--repeats 3]   (from the repository root; builds a tiny model in a temp dir)

CPU time is what the machine load does not inflate; wall time is what a user waits. Cases run
interleaved (case 1, 2, ... then again), each in a fresh process, as a user would type them.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evalkit", *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode, (proc.stderr or proc.stdout).strip().splitlines()[-1][:110]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-cli-bench-"))
    from evalkit.testing import build_tiny_model

    model = build_tiny_model(tmp / "tiny")
    policy = tmp / "policy.yaml"
    policy.write_text("gates:\n  - metric: demo_voc.acc\n    min_gain: 0.2\n")
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "EVALKIT_STORE": str(tmp / "s.sqlite"),
           "EVALKIT_CACHE_DIR": str(tmp / "cache"), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf")}
    cases = {
        "misspelt task (first run: scans lm-eval's names)": ["eval", str(model), "--tasks", "mmlo"],
        "misspelt task (names cached)": ["eval", str(model), "--tasks", "hellaswg"],
        "offline --tasks mmlu": ["eval", str(model), "--tasks", "mmlu"],
        "compare --policy with a wrong metric": ["compare", f"a={model}", f"b={model}", "--tasks",
                                                 "demo_voc,demo_general", "--policy", str(policy), "--out", str(tmp / "o")],
        "evalkit tasks": ["tasks"],
        "evalkit compare --help": ["compare", "--help"],
    }
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    last: dict[str, str] = {}
    for repeat in range(args.repeats):
        for name, argv in cases.items():
            if name.startswith("misspelt task (first") and repeat:
                (tmp / "cache" / next(iter(sorted(p.name for p in (tmp / "cache").glob("lm-eval-task-names-*"))), "x")
                 ).unlink(missing_ok=True)
            wall, cpu, code, tail = _run(argv, env)
            timings[name].append((wall, cpu))
            last[name] = f"exit {code}: {tail}"
    print(f"load average before/after: {os.getloadavg()}")
    print("| case | wall (s), median | CPU user+sys (s), median | exit / last line |")
    print("|---|---:|---:|---|")
    for name, values in timings.items():
        walls, cpus = sorted(v[0] for v in values), sorted(v[1] for v in values)
        print(f"| {name} | {walls[len(walls) // 2]:.2f} | {cpus[len(cpus) // 2]:.2f} | {last[name]} |")


if __name__ == "__main__":
    main()
