"""Concurrency as a tested property: eight processes evaluate into one result store and into sibling output
folders under one parent that does not exist yet, while one of them is killed mid-run and resumed. Every
process succeeds, no sample is lost or stored twice, and the results equal a serial run's."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import make_voc_task, run_cli, write_predictions

N = 8  # processes at once: seven `evalkit eval` runs and one slow evaluation that is killed
ROWS = 12


def _stable(results_file: Path) -> dict:
    """results.json without what differs between runs by design (creation time, timings)."""
    data = json.loads(results_file.read_text(encoding="utf-8"))
    data.pop("created")
    for task in data["tasks"].values():
        task.pop("timing")
    return data


def _stored_rows(store_file: Path) -> dict[str, int]:
    """Sample rows per run label, counted in the database itself (duplicates would count twice)."""
    import sqlite3

    with sqlite3.connect(store_file) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "samples"} <= tables, tables
        rows = db.execute("SELECT r.checkpoint, COUNT(s.sample_id) FROM runs r JOIN samples s ON s.run_key = r.run_key "
                          "GROUP BY r.run_key").fetchall()
    return {json.loads(checkpoint)["label"]: count for checkpoint, count in rows}


def _evaluate_and_exit(argv: list[str], err_file: str, start) -> None:
    """A forked process: ``evalkit ARGV`` (evalkit already imported, so no per-process import cost), started
    together with its siblings so their output checks meet under the parent that none has created yet."""
    start.wait()
    code, _, err = run_cli(argv)
    Path(err_file).write_text(err, encoding="utf-8")
    os._exit(code)


def _slow_evaluation(store_file: str, log_file: str) -> None:
    """60 samples in batches of 4, 0.3 s a batch: long enough to be killed mid-run on a loaded machine."""
    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore
    from tests.helpers.fake import FakeCheckpoint, counting_task

    with ResultStore(store_file) as store:
        evaluate_checkpoint(FakeCheckpoint(log_path=log_file), [counting_task(n=60, batch=4, sleep=0.3)], store)
    os._exit(0)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_eight_processes_share_one_store_and_a_new_output_parent_with_one_killed(tmp_path):
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    task = make_voc_task(tmp_path / "task", n=ROWS)
    specs = [f"c{i}={write_predictions(tmp_path / f'p{i}.jsonl', task, n=ROWS, outputs={str(i + 1): 'B > z'})}"
             for i in range(N - 1)]  # distinct answers: distinct fingerprints, distinct runs
    store, parent, log = tmp_path / "store.sqlite", tmp_path / "new" / "runs", tmp_path / "answered.log"
    for spec in specs:  # first one process at a time, each in a fresh store: the results to match (and the
        label = spec.partition("=")[0]  # imports done once, before the forks)
        code, _, err = run_cli(["--store", str(tmp_path / "serial" / f"{label}.sqlite"), "eval", spec, "-t", str(task),
                                "-o", str(tmp_path / "serial" / label)])
        assert code == 0, err
    start = fork.Barrier(N - 1)
    runs = [fork.Process(target=_evaluate_and_exit, args=(["--store", str(store), "eval", spec, "-t", str(task), "-o",
                                                           str(parent / spec.partition("=")[0])],
                                                          str(tmp_path / f"{spec.partition('=')[0]}.err"), start))
            for spec in specs]
    victim = fork.Process(target=_slow_evaluation, args=(str(store), str(log)))
    for proc in [victim, *runs]:
        proc.start()
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and len(log.read_text().split()) >= 8):
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)  # mid-run: some batches committed, the rest not
    victim.join()
    for proc in runs:
        proc.join(300)
    errors = {spec: (tmp_path / f"{spec.partition('=')[0]}.err").read_text() for spec in specs}
    assert [proc.exitcode for proc in runs] == [0] * (N - 1), errors
    answered = len(log.read_text().split())
    assert victim.exitcode == -signal.SIGKILL and 0 < answered < 60, (victim.exitcode, answered)
    stored_at_kill = _stored_rows(store).get("fake", 0)
    log.unlink()
    resumed = fork.Process(target=_slow_evaluation, args=(str(store), str(log)))
    resumed.start()
    resumed.join(120)
    assert resumed.exitcode == 0
    assert len(log.read_text().split()) == 60 - stored_at_kill  # only what the kill lost is evaluated again

    rows = _stored_rows(store)
    assert rows == {**{f"c{i}": ROWS for i in range(N - 1)}, "fake": 60}  # none lost, none twice
    for spec in specs:
        label = spec.partition("=")[0]
        assert _stable(parent / label / "results.json") == _stable(tmp_path / "serial" / label / "results.json")
