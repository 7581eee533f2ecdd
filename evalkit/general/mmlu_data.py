"""Local MMLU data: read a folder in the original or the ``cais/mmlu`` layout, write lm-eval-ready JSONL.

Two layouts are accepted (either one, per split):

- original (Hendrycks): ``test/<subject>_test.csv`` and ``dev/<subject>_dev.csv``, headerless
  ``question,A,B,C,D,answer`` with the answer a letter; quoted fields may contain newlines. A CSV with
  the header ``question,choice0,...,answer`` (0-3 answers) is read too.
- ``cais/mmlu`` parquet: ``<subject>/test-*.parquet`` and ``<subject>/dev-*.parquet`` (columns
  ``question``, ``subject``, ``choices``, ``answer``), or ``test/<subject>.parquet``.

A folder with only some subjects is fine: only those subjects are evaluated.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

__all__ = ["MMLUFolder", "scan_mmlu_folder", "read_split", "write_jsonl_splits", "LETTERS"]

LETTERS = ("A", "B", "C", "D")
SPLITS = ("test", "dev")


@dataclass
class MMLUFolder:
    """What a local MMLU folder holds: ``files[split][subject]`` -> list of files."""

    root: Path
    files: dict[str, dict[str, list[Path]]] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        """Subjects with test data, sorted."""
        return sorted(self.files.get("test", {}))

    def has_dev(self, subject: str) -> bool:
        return subject in self.files.get("dev", {})


def scan_mmlu_folder(root: str | Path, *, source: str = "data") -> MMLUFolder:
    """Find the per-subject files of a local MMLU folder; raise UsageError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{source}: MMLU data folder {root} does not exist (expected test/<subject>_test.csv files).")
    found = MMLUFolder(root)
    for split in SPLITS:
        by_subject: dict[str, list[Path]] = {}
        for path in sorted((root / split).glob(f"*_{split}.csv")):
            by_subject.setdefault(path.name[: -len(f"_{split}.csv")], []).append(path)
        for path in sorted((root / split).glob("*.parquet")):
            by_subject.setdefault(path.stem, []).append(path)
        for path in sorted(root.glob(f"*/{split}-*.parquet")):
            by_subject.setdefault(path.parent.name, []).append(path)
        if by_subject:
            found.files[split] = by_subject
    if not found.subjects:
        raise UsageError(
            f"{source}: no MMLU test data in {root}; expected test/<subject>_test.csv (headerless "
            "question,A,B,C,D,answer) or the cais/mmlu parquet layout <subject>/test-*.parquet."
        )
    return found


def _answer_index(value: object, where: str) -> int:
    text = str(value).strip()
    if text in LETTERS:
        return LETTERS.index(text)
    if text in ("0", "1", "2", "3"):
        return int(text)
    raise UsageError(f"{where}: answer must be one of A, B, C, D (or 0-3), got {text!r}.")


def _read_csv(path: Path, subject: str) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if number == 1 and row and row[0] == "question" and row[-1] == "answer":
                continue  # a header row (vendored cais-style CSV)
            if len(row) != 6:
                raise UsageError(f"{path}: row {number} has {len(row)} fields; expected 6 (question,A,B,C,D,answer).")
            rows.append(
                {
                    "question": row[0],
                    "subject": subject,
                    "choices": row[1:5],
                    "answer": _answer_index(row[5], f"{path} row {number}"),
                }
            )
    return rows


def _read_parquet(path: Path, subject: str) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pylist()
    rows = []
    for number, row in enumerate(table, start=1):
        try:
            rows.append(
                {
                    "question": row["question"],
                    "subject": row.get("subject") or subject,
                    "choices": list(row["choices"]),
                    "answer": _answer_index(row["answer"], f"{path} row {number}"),
                }
            )
        except KeyError as exc:
            raise UsageError(f"{path}: missing column {exc}; expected question, choices, answer.") from None
    return rows


def read_split(folder: MMLUFolder, split: str, subject: str) -> list[dict]:
    """Rows of one subject and split as ``{"question", "subject", "choices", "answer"}`` dicts."""
    rows: list[dict] = []
    for path in folder.files.get(split, {}).get(subject, []):
        rows.extend(_read_parquet(path, subject) if path.suffix == ".parquet" else _read_csv(path, subject))
    return rows


def write_jsonl_splits(folder: MMLUFolder, out_dir: Path) -> dict[str, dict[str, Path]]:
    """Write ``out_dir/<split>/<subject>.jsonl`` for every subject; return ``paths[subject][split]``."""
    from .._io import atomic_write_text

    paths: dict[str, dict[str, Path]] = {}
    for split in SPLITS:
        for subject in sorted(folder.files.get(split, {})):
            if subject not in folder.subjects:
                continue
            target = out_dir / split / f"{subject}.jsonl"
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in read_split(folder, split, subject))
            atomic_write_text(target, text)
            paths.setdefault(subject, {})[split] = target
    return paths


def folder_fingerprint(folder: MMLUFolder) -> str:
    """Content hash of every data file of the folder (decides when generated files are reused)."""
    import hashlib

    from .._io import hash_file

    digest = hashlib.sha256()
    for split in sorted(folder.files):
        for subject in sorted(folder.files[split]):
            for path in folder.files[split][subject]:
                digest.update(f"{split}/{subject}/{path.name}\0".encode())
                digest.update(bytes.fromhex(hash_file(path)))
    return digest.hexdigest()[:16]
