"""EvalkitCallback under ``torchrun`` (two CPU processes, gloo): only the main process evaluates and
stores, the other does not deadlock, and a failed gate stops training on both at the same step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.mmlu import write_mmlu

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_two_processes_one_evaluation_and_a_shared_stop(tiny_chat_model_dir, tmp_path):
    from evalkit.store import ResultStore

    mmlu = write_mmlu(tmp_path / "mmlu", {"anatomy": "ABCDA"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "tests" / "helpers" / "ddp_train.py"), str(tiny_chat_model_dir), str(mmlu), str(tmp_path)]
    # A deadlocked process would hang here: the timeout turns that into a failure.
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    main, other = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert main["world_size"] == other["world_size"] == 2
    assert main["results"] == ["base", "run.step2"] and other["results"] == []
    assert main["global_step"] == other["global_step"] == 2, "both processes stop at the failed step"
    assert main["stop_reason"].startswith("evalkit gate failed at step 2: impossible")
    assert other["stop_reason"] == main["stop_reason"]
    assert main["logged_steps"] == [0, 2]  # the baseline at step 0, then the save
    with ResultStore(tmp_path / "store.sqlite") as store:
        stored = sorted((run["checkpoint"]["label"], run["task"]) for run in store.runs())
    # one set of results (rank 0's), plus its copies under the saved folders' keys for a later `evalkit compare`
    assert len(stored) == len(set(stored))
    assert [s for s in stored if s[0] in ("base", "run.step2")] == [
        ("base", "mmlu"), ("base", "voc_sample"), ("run.step2", "mmlu"), ("run.step2", "voc_sample")]
    assert {("checkpoint-2", "mmlu"), ("checkpoint-2", "voc_sample")} <= set(stored)
    assert json.loads((tmp_path / "report" / "verdict.json").read_text())["status"] == "fail"
