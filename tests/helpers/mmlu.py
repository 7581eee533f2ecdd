"""Write a small MMLU folder in the original Hendrycks layout (headerless CSV, letter answers)."""

from __future__ import annotations

import csv
from pathlib import Path


def write_mmlu(root: Path, subjects: dict[str, str]) -> Path:
    """``subjects`` maps a subject to the answer letters of its test questions; dev gets 5 rows each."""
    for split in ("test", "dev"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject, answers in subjects.items():
            rows = answers if split == "test" else "ABCDA"
            with (root / split / f"{subject}_{split}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                for i, answer in enumerate(rows):
                    question = f"{split} {subject} question {i}" + ("\nwith a second line, quoted" if i == 1 else "?")
                    writer.writerow([question, f"alpha {i}", "beta", f"gamma {subject}", "delta", answer])
    return root
