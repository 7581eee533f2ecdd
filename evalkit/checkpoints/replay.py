"""Replay a predictions file as an lm-eval ``LM``: generation tasks score outputs produced elsewhere.

The file format is described in ``docs/predictions-format.md``: JSONL, one
``{"task": NAME, "id": SAMPLE_ID, "output": TEXT}`` object per line. Outputs are returned verbatim
(no stop-sequence truncation): they are what the model said, and the task's own filters apply.
A row may carry ``"confidence"`` (a probability in [0, 1] that the output is right), which the ``voc``
evaluator stores as the prediction's confidence.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lm_eval.api.model import LM

from ..errors import UsageError

__all__ = ["ReplayLM", "read_predictions", "read_confidences"]

_REQUIRED = ("task", "id", "output")


def read_predictions(path: str | Path) -> dict[tuple[str, str], str]:
    """Map ``(task, str(id))`` to the output text; line-numbered UsageErrors for bad rows."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a BOM (Windows editors) is no part of row 1
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"predictions file {path}: cannot be read as UTF-8 text ({exc}).") from None
    outputs: dict[tuple[str, str], str] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        task, sample_id, output = _parse_row(path, lineno, line)
        if (task, sample_id) in outputs:
            raise UsageError(
                f"{path}:{lineno}: duplicate output for task {task!r} sample id {sample_id!r}; "
                f"keep one row per (task, id)."
            )
        outputs[(task, sample_id)] = output
    if not outputs:
        raise UsageError(
            f"predictions file {path} has no rows; expected one JSON object per line "
            f'like {{"task": "ifeval", "id": "1000", "output": "..."}}.'
        )
    return outputs


def read_confidences(path: str | Path) -> dict[tuple[str, str], float]:
    """Map ``(task, str(id))`` to the row's ``confidence`` where a row has one (rows already validated)."""
    path = Path(path)
    found: dict[tuple[str, str], float] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if line.strip():
            row = _load_row(path, lineno, line)
            if isinstance(row, dict) and "confidence" in row:
                found[(str(row["task"]), str(row["id"]))] = _confidence(path, lineno, row["confidence"])
    return found


def _confidence(path: Path, lineno: int, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise UsageError(
            f"{path}:{lineno}: 'confidence' must be a number in [0, 1] (the probability that the output "
            f"is right), got {value!r}; fix or drop it."
        )
    return float(value)


def _load_row(path: Path, lineno: int, line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
    except (RecursionError, ValueError) as exc:  # nested too deeply, an integer too long to convert
        raise UsageError(f"{path}:{lineno}: not a predictions row ({type(exc).__name__}: {exc}).") from None


def _parse_row(path: Path, lineno: int, line: str) -> tuple[str, str, str]:
    row = _load_row(path, lineno, line)
    if not isinstance(row, dict):
        raise UsageError(
            f"{path}:{lineno}: expected a JSON object with keys task, id, output; got {type(row).__name__}."
        )
    missing = [key for key in _REQUIRED if key not in row]
    if missing:
        raise UsageError(f"{path}:{lineno}: missing key(s) {', '.join(missing)}; every row needs task, id and output.")
    task, sample_id, output = row["task"], row["id"], row["output"]
    if not isinstance(task, str) or not task:
        raise UsageError(f"{path}:{lineno}: 'task' must be a non-empty string, got {task!r}.")
    if isinstance(sample_id, bool) or not isinstance(sample_id, (str, int)):
        raise UsageError(f"{path}:{lineno}: 'id' must be a string or integer, got {sample_id!r}.")
    if not isinstance(output, str):
        raise UsageError(f"{path}:{lineno}: 'output' must be a string, got {type(output).__name__}.")
    if "confidence" in row:
        _confidence(path, lineno, row["confidence"])
    return task, str(sample_id), output


class ReplayLM(LM):
    """An lm-eval ``LM`` answering ``generate_until`` from a predictions file.

    Each request must carry ``task_name`` (the evalkit task name) and ``evalkit_sample_id`` (str),
    which evalkit's evaluators set on every lm-eval ``Instance`` they build.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.outputs = read_predictions(self.path)
        self.confidences = read_confidences(self.path)

    def confidence_for(self, request) -> float | None:
        """The row's ``confidence`` for this request's (task, sample id), None when the row has none."""
        return self.confidences.get(self._key(request))

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        keys = [self._key(request) for request in requests]
        self._raise_if_missing(keys)
        return [self.outputs[key] for key in keys]

    def check_coverage(self, task: str, sample_ids: list[str]) -> None:
        """Raise before any work if the file lacks an output for one of a task's samples."""
        self._raise_if_missing([(task, str(s)) for s in sample_ids])

    def _raise_if_missing(self, keys: list[tuple[str, str]]) -> None:
        missing = [key for key in keys if key not in self.outputs]
        if missing:
            task, sample_id = missing[0]
            examples = ", ".join(repr(s) for _, s in missing[:5])
            raise UsageError(
                f"predictions file {self.path} has no output for task {task!r} sample id {sample_id!r} "
                f"({len(missing)} of {len(keys)} missing, e.g. {examples}); add rows for them."
            )

    @staticmethod
    def _key(request) -> tuple[str, str]:
        task = getattr(request, "task_name", None)
        sample_id = getattr(request, "evalkit_sample_id", None)
        if not task or sample_id is None:
            raise ValueError(
                "ReplayLM needs requests with task_name and evalkit_sample_id set by an evalkit "
                f"evaluator; got task_name={task!r}, evalkit_sample_id={sample_id!r}"
            )
        return str(task), str(sample_id)

    def _refuse(self, requests) -> list:
        task = getattr(requests[0], "task_name", None) if requests else None
        raise UsageError(
            f"task {task!r} needs log-likelihoods, which predictions file {self.path} cannot provide; "
            f"use a generation task or evaluate the model itself."
        )

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self._refuse(requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return self._refuse(requests)
