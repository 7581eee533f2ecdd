"""A fake evaluator and checkpoint for testing the run loop and store without a model."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from evalkit.evaluators.base import register_evaluator
from evalkit.records import CheckpointInfo, SampleRecord, TaskResult
from evalkit.taskconfig import TaskConfig, validate_options


@dataclass
class CountingOptions:
    n: int = 10
    batch: int = 2
    sleep: float = 0.0


@register_evaluator
class CountingEvaluator:
    """Sample i is correct when the LM says so; saves in batches, optionally slowly."""

    name = "counting"
    version = "1"
    needs = frozenset({"generate_until"})

    def __init__(self, config: TaskConfig):
        self.config = config
        self.options = validate_options(config.options, CountingOptions, config)

    def config_hash(self) -> str:
        return f"n{self.options.n}"

    def check_ready(self) -> None:
        pass

    def sample_ids(self) -> list[str]:
        return [f"{i:04d}" for i in range(self.options.n)]

    def run(self, lm, *, done, save):
        records = dict(done)
        todo = [s for s in self.sample_ids() if s not in done]
        for start in range(0, len(todo), self.options.batch):
            answers = {s: lm.answer(s) for s in todo[start:start + self.options.batch]}
            batch = [SampleRecord(sample_id=s, correct=ok, scores={"acc": float(ok)}) for s, ok in answers.items()]
            time.sleep(self.options.sleep)
            save(batch)
            records.update({r.sample_id: r for r in batch})
        return [records[s] for s in sorted(records)]

    def aggregate(self, records):
        acc = sum(r.correct for r in records) / len(records)
        return TaskResult(task=self.config.name, evaluator=self.name, evaluator_version=self.version,
                          config_hash=self.config_hash(), metrics={"acc": acc}, n_samples=len(records))


class FakeLM:
    def __init__(self, log_path=None):
        self.calls = 0
        self.log_path = log_path

    def answer(self, sample_id: str) -> bool:
        self.calls += 1
        if self.log_path:
            with open(self.log_path, "a") as handle:
                handle.write(sample_id + "\n")
        return int(sample_id) % 3 != 0


class _Spec:
    kind = "fake"
    display = "fake://model"


class FakeCheckpoint:
    """Duck-types evalkit.checkpoints.Checkpoint for the run loop."""

    kind = "fake"
    display = "fake://model"

    def __init__(self, label="fake", fingerprint="f" * 16, log_path=None):
        self.label = label
        self.spec = _Spec()
        self.loads = 0
        self._fingerprint = fingerprint
        self._log_path = log_path
        self._lm = None

    @property
    def info(self):
        return CheckpointInfo(label=self.label, spec="fake://model", kind="fake", fingerprint=self._fingerprint)

    def supports(self, need):
        return self.unsupported_reason(need) is None

    def unsupported_reason(self, need):
        return None if need == "generate_until" else "the fake model only generates"

    @property
    def lm(self):
        if self._lm is None:
            self.loads += 1
            self._lm = FakeLM(self._log_path)
        return self._lm


def counting_task(n=10, batch=2, sleep=0.0, name="count"):
    return TaskConfig(name=name, evaluator="counting", options={"n": n, "batch": batch, "sleep": sleep})


if __name__ == "__main__":  # used by the SIGKILL resume test: run one slow evaluation
    import sys

    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore

    store_file, log_file = sys.argv[1], sys.argv[2]
    with ResultStore(store_file) as store:
        result = evaluate_checkpoint(FakeCheckpoint(log_path=log_file), [counting_task(n=40, batch=4, sleep=0.15)], store)
    print(result.tasks["count"].metrics["acc"], os.getpid())
