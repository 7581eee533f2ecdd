"""Coverage of evalkit's nominal 95 % intervals in seeded simulations.

Usage::

    nice -n 5 python bench/stats/coverage.py --reps 400            # the figures in bench/stats/README.md
    python bench/stats/coverage.py --reps 40 --n 600 --classes 300  # a quick look

Settings (one "world" per seed, then ``reps`` test sets drawn from it):

* accuracy: n samples, P(correct) = 0.7; Wilson interval (``proportion_ci``); the truth is 0.7.
* paired accuracy delta: two correlated checkpoints (B shares A's outcome with probability 0.6,
  else an independent draw at 0.75); Newcombe's paired interval; the truth is the exact expected delta.
* macro F1 over ``classes`` Zipf-distributed classes (P(class k) ∝ 1/k, a long tail like CFPB's:
  most classes have 0-3 test samples), per-class accuracy uniform in [0.4, 0.95], errors drawn from
  the class prior; and the paired delta of two such checkpoints. With most classes seen once or
  never, the macro F1 of a test set is not an estimate of the population macro F1 over all classes
  (it is far lower: classes seen once as a false positive score 0); the estimand is the expected
  macro F1 *on a test set of this size* from this distribution, E[T_n], computed here by Monte Carlo
  over ``truth_reps`` fresh test sets. The population macro F1 (all classes, infinite data) is
  computed exactly from the world and the jackknife interval's coverage of it is reported beside
  (what a reader who mistakes one estimand for the other would get). Methods compared: percentile bootstrap, BCa (evalkit's
  ``bca_interval``), and the normal intervals with bootstrap and with jackknife standard errors.

Every figure is printed with its Monte Carlo standard error and the machine load (``uptime``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from evalkit.metrics.stats import (bca_interval, jackknife_indices, paired_proportion_difference_ci,
                                   proportion_ci)

Z = 1.959963984540054


# ------------------------------------------------------------------------------------------ worlds
class ZipfWorld:
    """A classifier's confusion behaviour over ``k`` Zipf classes; ``draw`` makes one test set."""

    def __init__(self, k: int, seed: int, exponent: float = 1.0):
        rng = np.random.default_rng(seed)
        self.k = k
        self.prior = 1 / np.arange(1, k + 1) ** exponent
        self.prior /= self.prior.sum()
        self.acc_a = rng.uniform(0.4, 0.95, k)
        self.acc_b = np.clip(self.acc_a + rng.normal(0.03, 0.05, k), 0.05, 0.99)

    def population_macro_f1(self, accuracy: np.ndarray) -> float:
        """Macro F1 over all ``k`` classes on the whole population (exact, from the world's parameters).

        Errors are drawn from the prior without the true class, so P(pred = j) = pi_j acc_j +
        sum over k != j of pi_k (1 - acc_k) pi_j / (1 - pi_k)."""
        wrong_mass = self.prior * (1 - accuracy) / (1 - self.prior)
        predicted = self.prior * accuracy + self.prior * (wrong_mass.sum() - wrong_mass)
        return float(np.mean(2 * self.prior * accuracy / (self.prior + predicted)))

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True classes and the predictions of checkpoints A and B (errors share a latent difficulty)."""
        true = rng.choice(self.k, n, p=self.prior)
        difficulty = rng.random(n)
        shared = rng.random(n) < 0.7
        difficulty_b = np.where(shared, difficulty, rng.random(n))
        return true, self._predict(true, difficulty < self.acc_a[true], rng), \
            self._predict(true, difficulty_b < self.acc_b[true], rng)

    def _predict(self, true: np.ndarray, correct: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pred = true.copy()
        wrong = ~correct
        while wrong.any():
            pred[wrong] = rng.choice(self.k, int(wrong.sum()), p=self.prior)
            wrong &= pred == true
        return pred


def macro_f1(true: np.ndarray, pred: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """Macro F1 of each row of ``indices`` over the classes present in it (scikit-learn's label set);
    the same counting as evalkit.metrics.hierarchical on a flat taxonomy."""
    rows = indices.shape[0]
    offsets = (np.arange(rows) * k)[:, None]
    t, p = true[indices] + offsets, pred[indices] + offsets
    tp = np.bincount(t[t == p], minlength=rows * k).reshape(rows, k)
    tc = np.bincount(t.ravel(), minlength=rows * k).reshape(rows, k)
    pc = np.bincount(p.ravel(), minlength=rows * k).reshape(rows, k)
    present = (tc + pc) > 0
    f1 = np.where(present, 2 * tp / np.maximum(tc + pc, 1), 0.0)
    return f1.sum(axis=1) / present.sum(axis=1)


# ------------------------------------------------------------------------------------------ studies
def accuracy_coverage(n: int, reps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits_single = hits_paired = 0
    p_a, share, p_fresh = 0.7, 0.6, 0.75
    true_delta = (1 - share) * (p_fresh - p_a)
    for _ in range(reps):
        a = rng.random(n) < p_a
        b = np.where(rng.random(n) < share, a, rng.random(n) < p_fresh)
        low, high = proportion_ci(int(a.sum()), n)
        hits_single += low <= p_a <= high
        _, low, high = paired_proportion_difference_ci(a, b)
        hits_paired += low <= true_delta <= high
    return {"accuracy (Wilson)": hits_single / reps, "paired accuracy delta (Newcombe)": hits_paired / reps}


def _intervals(estimate: float, boot: np.ndarray, jack: np.ndarray) -> dict[str, tuple[float, float]]:
    n = jack.size
    sd_boot = float(np.std(boot, ddof=1))
    sd_jack = float(np.sqrt((n - 1) / n * np.sum((jack - jack.mean()) ** 2)))
    return {"percentile": tuple(np.quantile(boot, [0.025, 0.975])),
            "BCa": bca_interval(estimate, boot, jack),
            "normal, bootstrap SE": (estimate - Z * sd_boot, estimate + Z * sd_boot),
            "normal, jackknife SE": (estimate - Z * sd_jack, estimate + Z * sd_jack)}


def macro_f1_coverage(k: int, n: int, reps: int, seed: int, n_resamples: int, truth_reps: int) -> dict[str, float]:
    world = ZipfWorld(k, seed)
    rng = np.random.default_rng(seed + 1)
    everything = np.arange(n)[None, :]
    truth_a, truth_d = [], []
    for _ in range(truth_reps):
        true, a, b = world.draw(n, rng)
        fa, fb = macro_f1(true, a, everything, k)[0], macro_f1(true, b, everything, k)[0]
        truth_a.append(fa)
        truth_d.append(fb - fa)
    target = {"value": float(np.mean(truth_a)), "delta": float(np.mean(truth_d))}
    population = {"value": world.population_macro_f1(world.acc_a),
                  "delta": world.population_macro_f1(world.acc_b) - world.population_macro_f1(world.acc_a)}
    print(f"macro F1 over {k} classes: test-set expectation E[T_n] {target['value']:.4f} (delta {target['delta']:+.4f}), "
          f"population {population['value']:.4f} (delta {population['delta']:+.4f}); true SD of T_n "
          f"{np.std(truth_a, ddof=1):.4f} (delta {np.std(truth_d, ddof=1):.4f})")
    hits: dict[str, int] = {}
    jack_se: dict[str, list[float]] = {"value": [], "delta": []}
    for _ in range(reps):
        true, a, b = world.draw(n, rng)
        idx = rng.integers(0, n, (n_resamples, n))
        jack_idx = np.concatenate(list(jackknife_indices(n)))
        fa, fb = macro_f1(true, a, everything, k)[0], macro_f1(true, b, everything, k)[0]
        boot_a, boot_b = macro_f1(true, a, idx, k), macro_f1(true, b, idx, k)
        jack_a, jack_b = macro_f1(true, a, jack_idx, k), macro_f1(true, b, jack_idx, k)
        for what, estimate, boot, jack in (("value", fa, boot_a, jack_a),
                                           ("delta", fb - fa, boot_b - boot_a, jack_b - jack_a)):
            intervals = _intervals(estimate, boot, jack)
            for method, (low, high) in intervals.items():
                key = f"macro F1 {what}: {method}"
                hits[key] = hits.get(key, 0) + (low <= target[what] <= high)
            low, high = intervals["normal, jackknife SE"]  # evalkit's interval against the population value
            key = f"macro F1 {what}: jackknife vs POPULATION"
            hits[key] = hits.get(key, 0) + (low <= population[what] <= high)
            jack_se[what].append((high - low) / (2 * Z))
    for what, truth in (("value", truth_a), ("delta", truth_d)):
        print(f"mean jackknife SE of the {what} / true SD of T_n: {np.mean(jack_se[what]) / np.std(truth, ddof=1):.3f}")
    return {key: count / reps for key, count in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--n", type=int, default=1000, help="test-set size")
    parser.add_argument("--classes", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--truth-reps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    print(f"load before: {os.getloadavg()}")
    figures = accuracy_coverage(args.n, max(args.reps, 2000), args.seed)
    figures.update(macro_f1_coverage(args.classes, args.n, args.reps, args.seed, args.resamples, args.truth_reps))
    for key, value in figures.items():
        reps = max(args.reps, 2000) if key.startswith(("accuracy", "paired accuracy")) else args.reps
        se = np.sqrt(value * (1 - value) / reps)
        print(f"{key:45s} {100 * value:5.1f} %  (Monte Carlo SE {100 * se:.1f}, {reps} test sets)")
    print(f"n={args.n} classes={args.classes} resamples={args.resamples} seed={args.seed}; "
          f"{time.time() - started:.0f} s; load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
