"""The result store and the run loop: cache hits, resume after SIGKILL, concurrent writers (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.errors import EvaluationError, UsageError
from evalkit.records import SampleRecord, TaskResult
from evalkit.run import evaluate_checkpoint
from evalkit.store import ResultStore, RunKey
from tests.helpers.fake import FakeCheckpoint, counting_task

ROOT = Path(__file__).resolve().parents[1]


def _key(task="t", fp="fp"):
    return RunKey(fp, task, "cfg", "counting", "1", "0.4.13")


def test_store_roundtrip_and_completion(store_location):
    with ResultStore(store_location) as store:
        key = _key()
        store.start_run(key, {"label": "a"})
        assert store.completed_result(key) is None
        store.add_samples(key, [SampleRecord("1", correct=True), SampleRecord("2", correct=False)])
        assert sorted(store.load_samples(key)) == ["1", "2"]
        result = TaskResult(task="t", evaluator="counting", evaluator_version="1", config_hash="cfg",
                            metrics={"acc": 0.5}, n_samples=2)
        store.finish_run(key, result)
        got = store.completed_result(key)
        assert got.metrics == {"acc": 0.5}
        assert [s.sample_id for s in got.samples] == ["1", "2"]
        assert store.runs(label="a")[0]["task"] == "t"
        assert store.runs(label="other") == []


def test_run_key_depends_on_every_part():
    base = _key()
    variants = [RunKey("fp2", "t", "cfg", "counting", "1", "0.4.13"), RunKey("fp", "t", "cfg2", "counting", "1", "0.4.13"),
                RunKey("fp", "t", "cfg", "counting", "2", "0.4.13"), RunKey("fp", "t", "cfg", "counting", "1", "0.4.14")]
    assert len({base.id, *(v.id for v in variants)}) == 5


def test_rerun_is_answered_from_store_without_loading(store_location):
    with ResultStore(store_location) as store:
        first = FakeCheckpoint()
        result = evaluate_checkpoint(first, [counting_task()], store)
        assert first.loads == 1
        second = FakeCheckpoint()
        again = evaluate_checkpoint(second, [counting_task()], store)
        assert second.loads == 0, "a stored run must not load the model"
        assert again.tasks["count"].metrics == result.tasks["count"].metrics
        assert len(again.tasks["count"].samples) == 10
        first_timing = result.tasks["count"].timing
        assert first_timing["answered_from_store"] is False and first_timing["seconds"] >= 0
        assert again.tasks["count"].timing == {"answered_from_store": True, "evaluated_run": first_timing}
        third = FakeCheckpoint(fingerprint="other")
        evaluate_checkpoint(third, [counting_task()], store)
        assert third.loads == 1, "another fingerprint is another run"


def test_model_loaded_once_for_all_tasks(store_location):
    with ResultStore(store_location) as store:
        checkpoint = FakeCheckpoint()
        evaluate_checkpoint(checkpoint, [counting_task(name="a"), counting_task(name="b", n=7)], store)
        assert checkpoint.loads == 1


def test_failure_mid_run_keeps_finished_batches(store_location):
    class Boom(FakeCheckpoint):
        pass

    with ResultStore(store_location) as store:
        checkpoint = Boom()
        lm = checkpoint.lm
        original = lm.answer
        lm.answer = lambda s: (_ for _ in ()).throw(RuntimeError("cuda oom")) if s == "0006" else original(s)
        with pytest.raises(EvaluationError, match="task 'count' on checkpoint 'fake' failed: RuntimeError: cuda oom"):
            evaluate_checkpoint(checkpoint, [counting_task()], store)
        key = RunKey("f" * 16, "count", "n10", "counting", "1", _lm_eval_version())
        assert sorted(store.load_samples(key)) == ["0000", "0001", "0002", "0003", "0004", "0005"]


def _lm_eval_version():
    from importlib.metadata import version

    return version("lm-eval")


def test_resume_after_sigkill(tmp_path, store_location):
    """Killed on one "machine" (a working directory), resumed on another."""
    store_file, log_file = store_location, tmp_path / "answered.log"
    cmd = [sys.executable, "-m", "tests.helpers.fake", store_file, str(log_file)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    machine_a.mkdir(), machine_b.mkdir()
    proc = subprocess.Popen(cmd, cwd=machine_a, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until a few batches are committed
        if log_file.exists() and len(log_file.read_text().split()) >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    answered_before = log_file.read_text().split()
    assert 0 < len(answered_before) < 40
    with ResultStore(store_file) as store:
        key = RunKey("f" * 16, "count", "n40", "counting", "1", _lm_eval_version())
        stored = set(store.load_samples(key))
    # at most the batch in flight (4 samples) was lost
    assert len(set(answered_before) - stored) <= 4
    log_file.unlink()
    out = subprocess.run(cmd, cwd=machine_b, env=env, capture_output=True, text=True, check=True)
    answered_after = log_file.read_text().split()
    assert set(answered_after).isdisjoint(stored), "stored samples must not be evaluated again"
    assert len(answered_after) == 40 - len(stored)
    assert float(out.stdout.split()[0]) == pytest.approx(sum(int(i) % 3 != 0 for i in range(40)) / 40)


def _writer(path: str, worker: int) -> None:
    with ResultStore(path) as store:
        key = RunKey(f"fp{worker}", "t", "cfg", "counting", "1", "x")
        store.start_run(key, {"label": f"w{worker}"})
        for batch in range(20):
            store.add_samples(key, [SampleRecord(f"{batch}-{i}") for i in range(10)])


def test_two_processes_share_a_store(store_location):
    path = store_location
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with ResultStore(path) as store:
        for w in range(2):
            assert len(store.load_samples(RunKey(f"fp{w}", "t", "cfg", "counting", "1", "x"))) == 200


def test_corrupt_store_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UsageError, match="cannot open the result store"):
        ResultStore(path)


def test_rerun_is_refused_under_a_multi_process_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with ResultStore(tmp_path / "s.sqlite") as store, pytest.raises(UsageError, match="rerun cannot be used"):
        evaluate_checkpoint(FakeCheckpoint(), [counting_task()], store, rerun=True)


def test_server_only_model_args_do_not_reach_in_process_models():
    from evalkit.checkpoints import LoadOptions
    from evalkit.checkpoints.loaders import _hflm_kwargs

    kwargs = _hflm_kwargs(LoadOptions(model_args={"retry_wait": "0.1", "api": "chat", "parallelize": "True"}))
    assert "retry_wait" not in kwargs and "api" not in kwargs
    assert kwargs["parallelize"] is True
    assert kwargs["batch_size"] == 8, "'auto' on CPU is a fixed batch"


def test_data_errors_surface_before_the_model_loads(tmp_path, monkeypatch):
    from tests.helpers.fake import CountingEvaluator

    def missing_data(self):
        raise UsageError("tasks/x.yaml: data file missing")

    monkeypatch.setattr(CountingEvaluator, "sample_ids", missing_data)
    checkpoint = FakeCheckpoint()
    with ResultStore(tmp_path / "s.sqlite") as store, pytest.raises(UsageError, match="data file missing"):
        evaluate_checkpoint(checkpoint, [counting_task(name="a"), counting_task(name="b")], store)
    assert checkpoint.loads == 0


def test_rerun_evaluates_every_sample_again(store_location):
    with ResultStore(store_location) as store:
        evaluate_checkpoint(FakeCheckpoint(), [counting_task()], store)
        again = FakeCheckpoint()
        evaluate_checkpoint(again, [counting_task()], store, rerun=True)
        assert again.loads == 1 and again.lm.calls == 10, "--rerun must not reuse stored samples"
