"""Run the evalkit CLI in-process (fast) on tiny VOC tasks answered by predictions files (no model)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

LABELS = ["A > x", "A > y", "B > z", "B > w > deep"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``evalkit ARGV`` through ``evalkit.cli.main``: (exit code, stdout, stderr)."""
    from evalkit import cli

    out, err = io.StringIO(), io.StringIO()
    cli._State.debug = False
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def make_voc_task(folder: Path, n: int = 6, *, name: str = "tiny") -> Path:
    """A VOC task file over ``n`` rows with ids 1..n (in file order) and a CSV of 4 labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["id,text,label"] + [f"{i},comment number {i},{LABELS[i % len(LABELS)]}" for i in range(1, n + 1)]
    (folder / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    task = folder / f"{name}.yaml"
    task.write_text(f"name: {name}\nevaluator: voc\ndata: {name}.csv\nid_field: id\nlabel_field: label\n"
                    f"n_resamples: 20\n", encoding="utf-8")
    return task


def write_predictions(path: Path, task: Path, n: int = 6, *, outputs: dict[str, str] | None = None,
                      name: str = "tiny") -> Path:
    """A predictions file answering every row of :func:`make_voc_task` (right for odd ids)."""
    outputs = outputs or {}
    lines = []
    for i in range(1, n + 1):
        text = outputs.get(str(i), LABELS[i % len(LABELS)] if i % 2 else LABELS[(i + 1) % len(LABELS)])
        lines.append(json.dumps({"task": name, "id": str(i), "output": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def compare_logged_to(tracker: str, folder: Path) -> tuple[int, str, str]:
    """``evalkit compare base tuned --log TRACKER`` of two predictions files over 8 rows (tuned changes two
    answers), written to ``folder/c``: :func:`run_cli`'s (exit code, stdout, stderr)."""
    task = make_voc_task(folder, n=8)
    base = write_predictions(folder / "base.jsonl", task, n=8)
    tuned = write_predictions(folder / "tuned.jsonl", task, n=8, outputs={"2": LABELS[2], "4": LABELS[0]})
    return run_cli(["--store", str(folder / "s.sqlite"), "compare", f"base={base}", f"tuned={tuned}",
                    "-t", str(task), "--out", str(folder / "c"), "--log", tracker])
