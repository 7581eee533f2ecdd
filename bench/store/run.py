"""Write throughput of the result store: samples committed per second, SQLite against PostgreSQL.

Each writer process commits batches of samples the way a run does (``ResultStore.add_samples``: one
transaction per batch). Writers either write different runs (separate jobs) or one run (torchrun
ranks: disjoint samples of the same run key). Configurations are interleaved round by round, so the
machine's changing load hits each alike; the median of the rounds is reported.

    python bench/store/run.py --rounds 3 --out bench/store/results.json

PostgreSQL runs on a throwaway local server (tests/helpers/postgres.py) with its default durability
(fsync on); ``synchronous_commit=off`` is measured too, which like SQLite's WAL with
``synchronous=NORMAL`` may lose the last commits in a power cut but never corrupts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evalkit.records import SampleRecord  # noqa: E402
from evalkit.store import ResultStore, RunKey  # noqa: E402
from tests.helpers.postgres import Server  # noqa: E402

BATCH, BATCHES = 8, 40  # a writer commits 320 samples in 40 transactions


def _record(writer: int, index: int) -> SampleRecord:
    """A record about the size of a VOC one (~600 bytes of JSON)."""
    return SampleRecord(f"w{writer:02d}-{index:05d}", prediction="Billing > Fees > Late fee " * 4, correct=index % 3 != 0,
                        scores={"path_accuracy": 1.0, "lca_f1": 0.75},
                        extra={"target_path": ["Billing", "Fees", "Late fee"], "pred_path": ["Billing", "Fees"],
                               "prompt_tokens": 412, "raw": "x" * 200})


def _writer(location: str, writer: int, shared_run: bool, start: float) -> None:
    with ResultStore(location) as store:
        key = RunKey("shared" if shared_run else f"fp{writer}", "bench", "cfg", "bench", "1", "x")
        store.start_run(key, {"label": key.fingerprint})
        while time.time() < start:  # all writers begin together
            time.sleep(0.001)
        for batch in range(BATCHES):
            store.add_samples(key, [_record(writer, batch * BATCH + i) for i in range(BATCH)])


def _measure(location: str, writers: int, shared_run: bool) -> float:
    """Samples committed per second by ``writers`` processes into a fresh store at ``location``."""
    ResultStore(location).close()
    ctx = multiprocessing.get_context("fork")
    start = time.time() + 1.0
    procs = [ctx.Process(target=_writer, args=(location, w, shared_run, start)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    seconds = time.time() - start
    with ResultStore(location) as store:
        stored = store._db.query("SELECT COUNT(*) FROM samples")[0][0]
    assert stored == writers * BATCH * BATCHES, stored
    return stored / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    server = Server(durable=True)
    scratch = Path(server.root.parent) / f"evalkit-bench-{os.getpid()}"
    scratch.mkdir()
    backends = {
        "sqlite": lambda: str(scratch / f"{time.time_ns()}.sqlite"),
        "postgresql": server.new_database,
        "postgresql (synchronous_commit=off)": lambda: server.new_database() + "?options=-csynchronous_commit%3Doff",
    }
    cases = [(name, writers, shared) for writers, shared in [(1, False), (8, False), (8, True)] for name in backends]
    rates: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    try:
        for round_ in range(args.rounds):
            order = cases[round_ % len(cases):] + cases[:round_ % len(cases)]  # rotate: no case always first
            for name, writers, shared in order:
                label = f"{name} | {writers} | {'one run' if shared else 'own runs'}"
                rates.setdefault(label, []).append(_measure(backends[name](), writers, shared))
                print(f"round {round_}: {label}: {rates[label][-1]:.0f} samples/s", flush=True)
    finally:
        server.stop()
    summary = {"batch": BATCH, "batches_per_writer": BATCHES, "rounds": args.rounds, "cpus": os.cpu_count(),
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "samples_per_second": {label: {"median": statistics.median(v), "all": v} for label, v in rates.items()}}
    args.out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    for label, stats in summary["samples_per_second"].items():
        print(f"| {label} | {stats['median']:.0f} |")


if __name__ == "__main__":
    main()
