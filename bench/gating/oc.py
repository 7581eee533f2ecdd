"""Operating characteristic of a `max_drop` gate: P(pass), P(fail), P(inconclusive) against the true drop.

Seeded simulation through evalkit's own decision path (``evalkit.sequential.operating_characteristic``):
each run draws n paired questions from a population where the baseline is right on 75% (MMLU-like), 10%
of questions flip at random (5% each way) and the tuned checkpoint additionally loses ``drop`` of them, and
the gate decides at level alpha = 0.05 in fixed mode (one-sided Newcombe bounds on the 2x2 table) or
sequential mode (confidence sequence after every 100 questions at 20% of alpha per side, then the
fixed-sample bounds at the remaining 80%).

    python bench/gating/oc.py            # writes bench/gating/oc.json
    python bench/gating/oc.py --table    # the README's tables from oc.json
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from evalkit.sequential import operating_characteristic

HERE = Path(__file__).resolve().parent
ALPHA, RUNS, FLIPS = 0.05, 1000, 0.10
THRESHOLDS = (0.02, 0.05)
SIZES = (300, 1000, 14042)
MULTIPLES = (0.0, 0.5, 1.0, 2.0)


def cell(threshold: float, n: int, multiple: float, sequential: bool, seed: int) -> dict:
    drop = multiple * threshold
    result = operating_characteristic(baseline_accuracy=0.75, drop=drop, discordance=FLIPS + drop, n=n,
                                      threshold=threshold, alpha=ALPHA, sequential=sequential, n_runs=RUNS,
                                      random_state=seed)
    return {"threshold": threshold, "n": n, "true_drop": round(drop, 6), "multiple": multiple,
            "mode": "sequential" if sequential else "fixed", "runs": RUNS,
            "pass": result.rate("pass"), "fail": result.rate("fail"), "inconclusive": result.rate("inconclusive"),
            "median_fraction_used": result.median_fraction}


def main() -> None:
    started = time.time()
    rows, seed = [], 0
    for threshold in THRESHOLDS:
        for n in SIZES:
            for multiple in MULTIPLES:
                for sequential in (False, True):
                    seed += 1
                    rows.append(cell(threshold, n, multiple, sequential, seed))
                    print(json.dumps(rows[-1]), flush=True)
    seed_case = operating_characteristic(baseline_accuracy=0.75, drop=0.01, discordance=0.10, n=14042,
                                         threshold=0.02, alpha=ALPHA, n_runs=RUNS, random_state=1000)
    seed_case_seq = operating_characteristic(baseline_accuracy=0.75, drop=0.01, discordance=0.10, n=14042,
                                             threshold=0.02, alpha=ALPHA, sequential=True, n_runs=RUNS,
                                             random_state=1001)
    collapse = operating_characteristic(baseline_accuracy=0.75, drop=0.28, discordance=0.30, n=14042,
                                        threshold=0.02, alpha=ALPHA, sequential=True, n_runs=RUNS, random_state=1002)
    out = {"settings": {"alpha": ALPHA, "runs": RUNS, "random_flips": FLIPS, "baseline_accuracy": 0.75,
                        "chunk_size": 100, "early_share": 0.2},
           "cells": rows,
           "seed_case": {"fixed_pass": seed_case.rate("pass"), "sequential_pass": seed_case_seq.rate("pass")},
           "collapse": {"fail": collapse.rate("fail"), "max_fraction_used": float(collapse.samples_used.max() / 14042),
                        "median_fraction_used": collapse.median_fraction},
           "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                       "wall_seconds": round(time.time() - started)}}
    (HERE / "oc.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


def table(data: dict, sizes=SIZES) -> list[str]:
    """Markdown rows: per threshold, n and true drop, P(pass) / P(fail) / P(inconclusive) in both modes."""
    lines = ["| t | n | true drop | fixed: pass / fail / inconclusive | sequential: pass / fail / inconclusive "
             "| sequential: median share of questions used |",
             "|---:|---:|---|---|---|---:|"]
    cells = {(c["threshold"], c["n"], c["multiple"], c["mode"]): c for c in data["cells"]}
    names = {0.0: "0", 0.5: "½t", 1.0: "**t**", 2.0: "2t"}
    for threshold in THRESHOLDS:
        for n in sizes:
            for multiple in MULTIPLES:
                fixed, seq = cells[threshold, n, multiple, "fixed"], cells[threshold, n, multiple, "sequential"]
                rates = [" / ".join(f"{c[k]:.1%}" for k in ("pass", "fail", "inconclusive")) for c in (fixed, seq)]
                lines.append(f"| {threshold:g} | {n:,} | {names[multiple]} | {rates[0]} | {rates[1]} | "
                             f"{seq['median_fraction_used']:.1%} |")
    return lines


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        print("\n".join(table(json.loads((HERE / "oc.json").read_text(encoding="utf-8")))))
    else:
        main()
