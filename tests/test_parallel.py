"""Data parallelism across processes (evalkit.parallel): each rank evaluates its share, rank 0 aggregates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.parallel import Ranks, ShardView, wait_until
from tests.helpers.mmlu import write_mmlu


def test_ranks_from_env():
    assert Ranks.from_env({}) == Ranks(0, 1, 0)
    assert Ranks.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)
    with pytest.raises(UsageError, match="WORLD_SIZE must be an integer, got 'two'"):
        Ranks.from_env({"WORLD_SIZE": "two"})
    with pytest.raises(UsageError, match="RANK must be in \\[0, WORLD_SIZE\\).*RANK=2 WORLD_SIZE=2"):
        Ranks.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_shares_partition_the_samples():
    ids = [f"s{i}" for i in range(10)]
    shares = [Ranks(r, 3, r).owned(ids) for r in range(3)]
    assert set().union(*shares) == set(ids)
    assert sum(len(s) for s in shares) == len(ids)
    assert sorted(len(s) for s in shares) == [3, 3, 4]


def test_shard_view_hides_other_ranks_samples_from_an_evaluator():
    view = ShardView({"s0": "stored"}, owned={"s0", "s2"})
    todo = [sid for sid in ("s0", "s1", "s2", "s3") if sid not in view]
    assert todo == ["s2"]
    assert view["s0"] == "stored" and view["s1"] is None
    with pytest.raises(KeyError):
        view["s2"]


def test_wait_until_gives_up_with_what_it_waited_for():
    with pytest.raises(UsageError, match="waiting for other ranks: 3/5 samples"):
        wait_until(lambda: None, lambda: "3/5 samples", timeout=0.05, poll=0.01)
    assert wait_until(iter([None, None, 7]).__next__, lambda: "", poll=0.0) == 7


def _records(path: Path) -> dict:
    tasks = json.loads(path.read_text())["tasks"]
    return {name: ({s["sample_id"]: s["prediction"] for s in task["samples"]}, task["metrics"])
            for name, task in tasks.items()}


def test_torchrun_two_processes_equal_one_process(tmp_path, tiny_model_dir):
    mmlu = write_mmlu(tmp_path / "mmlu", {"anatomy": "ABCDABCDAB", "astronomy": "DCBAD"})
    args = ["eval", str(tiny_model_dir), "--tasks", "mmlu,voc_sample", "--set", f"mmlu.data={mmlu}",
            "--set", "voc_sample.limit=8", "--set", "voc_sample.n_resamples=0"]
    from tests.helpers.cli import run_cli

    # the one-process reference in this interpreter (a fresh one costs ~9 CPU s of imports; torchrun's are real)
    code, _, said = run_cli(["--store", str(tmp_path / "one.sqlite"), *args, "--out", str(tmp_path / "one")])
    assert code == 0, said[-2000:]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              "-m", "evalkit", "--store", str(tmp_path / "two.sqlite"), *args, "--out", str(tmp_path / "two")]
    parallel = subprocess.run(launch, capture_output=True, text=True, timeout=240)
    assert parallel.returncode == 0, parallel.stderr[-2000:]
    for rank, share in ((0, 8), (1, 7)):
        assert f"rank {rank}/2: evaluated {share} of 15 samples of task mmlu" in parallel.stderr
    assert "rank 1/2: evaluated 4 of 8 samples of task voc_sample" in parallel.stderr
    assert parallel.stdout.count("wrote ") == 1  # only rank 0 writes
    assert _records(tmp_path / "two" / "results.json") == _records(tmp_path / "one" / "results.json")
