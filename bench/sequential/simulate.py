"""(a) Validity and (b) savings of sequential gating by seeded simulation (no model).

Populations are MMLU-like: 14,042 questions (14,000 where the drop must sit exactly on a 0.05
threshold), each with its own probability of being answered right, drawn from Beta(1.5, 0.5) (mean 0.75,
most questions easy, a long tail of hard ones: the base model's 0.75 of the reference study). The base
checkpoint answers question i right with probability p_i; the tuned checkpoint, independently given
p_i, with probability p_i * (1 - drop / 0.75); the tuned outcomes are then adjusted at random positions
until the population's mean paired drop is exactly the target. Each run draws a fresh population and a
fresh random order and replays ``compare --sequential``: a look every 100 samples, the gate
``max_drop: 0.05`` with the default anytime-valid alpha 0.05.

(a) False-fail rate (the sequence says "fail" although the population's drop is within the threshold)
    with the drop exactly at the threshold and just inside it, over >= 1,000 seeded runs each; beside
    it, the same populations with naive peeking (stop when a fixed-sample 95% normal interval first
    lies above the threshold), to show what the confidence sequence prevents.
(b) Median fraction of the 14,042 questions evaluated for drops of 28, 10, 5 and 2 points.

Writes ``bench/sequential/simulate.json``. Usage: ``python bench/sequential/simulate.py [--runs 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_dist

from evalkit.sequential import confidence_sequence

HERE = Path(__file__).resolve().parent
THRESHOLD, ALPHA, CHUNK = 0.05, 0.05, 100


def population_drops(n: int, drop_questions: int, rng: np.random.Generator) -> np.ndarray:
    """Paired drops (base - tuned, each -1, 0 or 1) of an MMLU-like population with an exact total drop."""
    p = rng.beta(1.5, 0.5, size=n)
    base = rng.random(n) < p
    tuned = rng.random(n) < p * (1 - drop_questions / n / 0.75)
    excess = int(base.sum() - tuned.sum()) - drop_questions  # > 0: tuned lost too much; flip some back
    candidates = np.flatnonzero(~tuned if excess > 0 else tuned)
    tuned[rng.choice(candidates, size=abs(excess), replace=False)] ^= True
    drops = base.astype(float) - tuned.astype(float)
    assert int(drops.sum()) == drop_questions
    return drops


def first_decision(x: np.ndarray) -> tuple[str, int]:
    """What compare --sequential decides on this order of the population, and after how many samples."""
    lows, highs = confidence_sequence(x, alpha=ALPHA, lower=-1, upper=1, population=x.size)
    for look in range(CHUNK, x.size + CHUNK, CHUNK):
        t = min(look, x.size) - 1
        if lows[t] > THRESHOLD:
            return "fail", t + 1
        if highs[t] <= THRESHOLD:
            return "pass", t + 1
    return "undecided", x.size


def naive_peeking_fails(x: np.ndarray) -> bool:
    """Stopping when a fixed-sample 95% interval first lies above the threshold (what not to do)."""
    counts = np.arange(1, x.size + 1)
    means = np.cumsum(x) / counts
    variances = (np.cumsum(x ** 2) - counts * means ** 2) / np.maximum(counts - 1, 1)
    looks = np.arange(CHUNK, x.size + 1, CHUNK) - 1
    return bool(np.any(means[looks] - 1.96 * np.sqrt(variances[looks] / counts[looks]) > THRESHOLD))


def clopper_pearson_upper(failures: int, runs: int, confidence: float = 0.95) -> float:
    return 1.0 if failures == runs else float(beta_dist.ppf(confidence, failures + 1, runs - failures))


def validity(n: int, drop_questions: int, runs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    fails = naive = 0
    for _ in range(runs):
        x = rng.permutation(population_drops(n, drop_questions, rng))
        fails += first_decision(x)[0] == "fail"
        naive += naive_peeking_fails(x)
    return {"questions": n, "drop": drop_questions / n, "runs": runs, "false_fail_rate": fails / runs,
            "false_fail_upper_95": round(clopper_pearson_upper(fails, runs), 4),
            "naive_peeking_false_fail_rate": naive / runs}


def savings(drop_points: int, runs: int, seed: int, n: int = 14042) -> dict:
    rng = np.random.default_rng(seed)
    decisions, used = [], []
    for _ in range(runs):
        decision, at = first_decision(rng.permutation(population_drops(n, round(drop_points / 100 * n), rng)))
        decisions.append(decision)
        used.append(at)
    used_arr = np.asarray(used)
    return {"drop_points": drop_points, "runs": runs, "median_fraction": round(float(np.median(used_arr)) / n, 4),
            "median_samples": int(np.median(used_arr)), "p90_fraction": round(float(np.quantile(used_arr, 0.9)) / n, 4),
            "decisions": {d: decisions.count(d) for d in ("fail", "pass", "undecided")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per validity setting (>= 1000 for the README)")
    parser.add_argument("--savings-runs", type=int, default=200, help="runs per drop in the savings table")
    args = parser.parse_args()
    started, load = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    report = {
        "settings": {"threshold": THRESHOLD, "alpha": ALPHA, "chunk": CHUNK, "beta_prior": [1.5, 0.5]},
        "validity": [validity(14000, 700, args.runs, seed=1), validity(14000, 630, args.runs, seed=2)],
        "savings": [savings(d, args.savings_runs, seed=10 + d) for d in (28, 10, 5, 2)],
    }
    report["seconds"], report["load_before"], report["load_after"] = (round(time.perf_counter() - started, 1), load,
                                                                       [round(x, 2) for x in os.getloadavg()])
    (HERE / "simulate.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
