"""Benchmark evalkit's hierarchical metrics against hiclass, and run them on the real CFPB labels.

Usage::

    python bench/hier_metrics/bench.py                 # 1,000,000 predictions, 4 levels, 1,420 leaves
    python bench/hier_metrics/bench.py --n 100000 --repeat 1
    python bench/hier_metrics/bench.py --skip-hiclass  # hiclass takes tens of seconds at n=1e6

Prints Markdown tables (copied into README.md). Timings are wall-clock, best of ``--repeat`` runs,
one process (numpy is single-threaded for these operations).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np

from evalkit.metrics import hierarchical as hm
from evalkit.taxonomy import Taxonomy

SEP = " > "
CFPB = Path(os.environ.get("EVALKIT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) / "voc" / "cfpb" / "cfpb_narratives_4level.csv"
SHARED_NAMES = ["Other", "General", "Billing", "Account", "Fees", "Access"]  # repeated under many parents


def build_taxonomy(unique_names: bool, seed: int = 0) -> Taxonomy:
    """4 levels, exactly 1,420 leaves at depths 3 and 4; names repeat under parents unless ``unique_names``."""
    rng = np.random.default_rng(seed)
    paths: list[tuple[str, ...]] = []
    for a in range(10):
        for b in range(6):
            for c in range(int(rng.integers(4, 9))):
                mid = (f"P{a}", f"S{a}.{b}", f"I{a}.{b}.{c}")
                if rng.random() < 0.2:  # a shallower leaf
                    paths.append(mid)
                    continue
                for d in range(int(rng.integers(2, 9))):
                    paths.append(mid + (_name(a, b, c, d, unique_names),))
    paths = paths[:1420]
    assert len(paths) == 1420, len(paths)
    return Taxonomy.from_paths(paths)


def _name(a: int, b: int, c: int, d: int, unique: bool) -> str:
    base = SHARED_NAMES[d] if d < len(SHARED_NAMES) else f"Leaf{d}"
    return f"{base} ({a}.{b}.{c})" if unique else base


def simulate(tax: Taxonomy, n: int, seed: int = 1) -> tuple[list[str], list[str | None]]:
    """Zipf-like truth; predictions 60% right, 20% a sibling leaf, 15% any leaf, 5% invalid (None)."""
    rng = np.random.default_rng(seed)
    labels = [tax.format(p) for p in tax.labels]
    weights = 1.0 / np.arange(1, len(labels) + 1)
    true_idx = rng.choice(len(labels), size=n, p=weights / weights.sum())
    siblings = _sibling_index(tax)
    pred_idx = true_idx.copy()
    roll = rng.random(n)
    sib = (roll >= 0.6) & (roll < 0.8)
    pred_idx[sib] = _random_sibling(true_idx[sib], siblings, rng)
    pred_idx[roll >= 0.8] = rng.integers(len(labels), size=int((roll >= 0.8).sum()))
    y_true = [labels[i] for i in true_idx]
    y_pred = [None if r >= 0.95 else labels[i] for i, r in zip(pred_idx, roll)]
    return y_true, y_pred


def _sibling_index(tax: Taxonomy) -> list[np.ndarray]:
    by_parent: dict[tuple, list[int]] = {}
    for i, path in enumerate(tax.labels):
        by_parent.setdefault(path[:-1], []).append(i)
    return [np.array(by_parent[path[:-1]]) for path in tax.labels]


def _random_sibling(idx: np.ndarray, siblings: list[np.ndarray], rng) -> np.ndarray:
    return np.array([s[rng.integers(len(s))] for s in (siblings[i] for i in idx)], dtype=np.int64)


def to_levels(paths, depth: int) -> np.ndarray:
    """hiclass's input: 2-D array of names per level, padded with ""."""
    rows = [(p.split(SEP) if p else []) for p in paths]
    return np.array([r + [""] * (depth - len(r)) for r in rows], dtype=object)


def best_of(repeat: int, fn):
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def bench_speed(n: int, repeat: int, skip_hiclass: bool) -> None:
    for unique in (True, False):
        tax = build_taxonomy(unique_names=unique)
        y_true, y_pred = simulate(tax, n)
        print(f"\n### n = {n:,}, {len(tax)} leaves + {len(tax.labels) - len(tax)} inner labels, depth {tax.depth}, "
              f"{'unique' if unique else 'repeated'} leaf names\n")
        t_enc, (t_ids, p_ids) = best_of(repeat, lambda: (tax.encode(y_true), tax.encode(y_pred)))
        t_ids_only, ours = best_of(repeat, lambda: hm.hierarchical_precision_recall_fscore(t_ids, p_ids, taxonomy=tax))
        t_str, ours_str = best_of(repeat, lambda: hm.hierarchical_precision_recall_fscore(y_true, y_pred, taxonomy=tax))
        t_derive, _ = best_of(repeat, lambda: hm.hierarchical_precision_recall_fscore(y_true, y_pred))
        assert ours == ours_str
        rows = [("evalkit, pre-encoded node ids (fast path)", t_ids_only, ours),
                ("evalkit, `taxonomy.encode` of both columns only", t_enc, None),
                ("evalkit, sep-strings + given taxonomy (encode included)", t_str, ours_str),
                ("evalkit, sep-strings, taxonomy derived from the labels", t_derive, ours_str)]
        if not skip_hiclass:
            from hiclass import metrics as hcm

            t2, p2 = to_levels(y_true, tax.depth), to_levels(y_pred, tax.depth)
            t_hc, theirs = best_of(1, lambda: (hcm.precision(t2, p2), hcm.recall(t2, p2), hcm.f1(t2, p2)))
            t_hc_f1, _ = best_of(1, lambda: hcm.f1(t2, p2))
            rows.append(("hiclass.metrics precision+recall+f1 (3 calls)", t_hc, theirs))
            rows.append(("hiclass.metrics.f1 alone (computes P and R inside)", t_hc_f1, None))
        _print_rows(rows)
        if not skip_hiclass:
            same = np.allclose(ours, theirs, rtol=1e-12)
            print(f"\nvalues equal: {same}; speed-up of the fast path over hiclass.metrics.f1: {t_hc_f1 / t_ids_only:,.0f}x, "
                  f"strings incl. encoding: {t_hc_f1 / t_str:,.0f}x")


def _print_rows(rows) -> None:
    print("| implementation | seconds | hP | hR | hF |\n|---|---:|---:|---:|---:|")
    for name, seconds, value in rows:
        vals = " | ".join(f"{v:.6f}" for v in value) if value else " | | "
        print(f"| {name} | {seconds:.3f} | {vals} |")


def bench_bootstrap(repeat: int) -> None:
    rng = np.random.default_rng(2)
    classes = [f"P{i // 100} > S{i // 10} > I{i // 3} > L{i}" for i in range(441)]
    y_true = [classes[i] for i in rng.integers(441, size=1000)]
    y_pred = [t if rng.random() < 0.5 else classes[j] for t, j in zip(y_true, rng.integers(441, size=1000))]
    metrics = ["leaf_macro_f1", "leaf_micro_f1", "hier_f1", "lca_f1", "path_accuracy"]
    t_ci, _ = best_of(repeat, lambda: hm.bootstrap_ci(y_true, y_pred, metrics=metrics, n_resamples=1000))
    t_all, _ = best_of(repeat, lambda: hm.bootstrap_ci(y_true, y_pred, metrics=hm.metric_names(4), n_resamples=1000))
    print("\n### Bootstrap: 1,000 resamples x 1,000 samples x 441 classes\n")
    print(f"| metrics | seconds |\n|---|---:|\n| {', '.join(metrics)} | {t_ci:.3f} |\n| all {len(hm.metric_names(4))} report metrics | {t_all:.3f} |")
    if repeat:
        from sklearn.metrics import f1_score

        idx = np.random.default_rng(0).integers(0, 1000, size=(50, 1000))
        start = time.perf_counter()
        for row in idx:
            f1_score([y_true[i] for i in row], [y_pred[i] for i in row], average="macro")
        per = (time.perf_counter() - start) / 50
        print(f"\nFor scale: a Python loop of sklearn `f1_score(average='macro')` costs {per * 1000:.1f} ms per resample, "
              f"{per * 1000:.1f} s for 1,000 resamples of that one metric.")


def bench_cfpb(repeat: int, skip_hiclass: bool) -> None:
    if not CFPB.exists():
        print(f"\n(CFPB data not found at {CFPB}; skipped)")
        return
    with CFPB.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    def path(r):
        return SEP.join(x for x in (r["product"], r["sub_product"], r["issue"], r["sub_issue"]) if x)
    train = Counter(path(r) for r in rows if r["split"] == "train")
    test = [path(r) for r in rows if r["split"] == "test"]
    tax = Taxonomy.from_data([path(r) for r in rows])
    names_parents = Counter(n for node in tax.nodes for n in [node[-1]])
    repeated = sum(1 for n, c in names_parents.items() if c > 1)
    # Predictions: a "model" that is right 55% of the time, else picks a sibling (25%), the majority
    # class (15%) or nothing parseable (5%).
    rng = np.random.default_rng(3)
    siblings = {p: [q for q in tax.labels if q[:-1] == p[:-1]] for p in tax.labels}
    majority = train.most_common(1)[0][0]
    pred = []
    for t in test:
        r = rng.random()
        sib = siblings[tax.parse(t)]
        pred.append(t if r < 0.55 else tax.format(sib[rng.integers(len(sib))]) if r < 0.8 else majority if r < 0.95 else None)
    t_rep, report = best_of(repeat, lambda: hm.hierarchical_report(test, pred, taxonomy=tax, train_counts=train, n_resamples=1000))
    m = report["metrics"]
    print(f"\n### CFPB test split: {len(test):,} samples, {len(tax.labels)} label paths ({len(tax)} leaves), "
          f"{len(tax.nodes)} nodes, {repeated} node names used under more than one parent\n")
    print(f"`hierarchical_report` with 1,000 bootstrap resamples, all metrics and breakdowns: {t_rep:.2f} s\n")
    print("| metric | value | 95% CI |\n|---|---:|---|")
    for name in ["leaf_macro_f1", "leaf_micro_f1", "leaf_weighted_f1", "level1_macro_f1", "level2_macro_f1",
                 "level3_macro_f1", "level4_macro_f1", "hier_f1", "lca_f1", "path_accuracy", "invalid_rate",
                 "mean_first_error_depth"]:
        ci = report["ci"].get(name)
        print(f"| {name} | {m[name]:.4f} | {'' if ci is None else f'[{ci[0]:.4f}, {ci[1]:.4f}]'} |")
    print("\n| frequency bucket (train count: tail < 20 <= torso <= 100 < head) | macro F1 | test samples | classes |\n|---|---:|---:|---:|")
    for name, b in report["breakdowns"]["frequency"].items():
        print(f"| {name} | {b['macro_f1']:.4f} | {b['n']} | {b['n_classes']} |")
    if not skip_hiclass:
        from hiclass import metrics as hcm

        t2, p2 = to_levels(test, tax.depth), to_levels(pred, tax.depth)
        print(f"\nhierarchical F1: evalkit (path identity) {m['hier_f1']:.4f} vs hiclass (name identity) {hcm.f1(t2, p2):.4f}; "
              f"hP {m['hier_precision']:.4f} vs {hcm.precision(t2, p2):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-hiclass", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}; load average at start {os.getloadavg()[0]:.2f}")
    bench_speed(args.n, args.repeat, args.skip_hiclass)
    bench_bootstrap(args.repeat)
    bench_cfpb(1, args.skip_hiclass)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
