"""A wheel installed in a fresh virtual environment lists its tasks and finds a shipped task's data under
``$EVALKIT_DATA`` (README, "Task data"). The venv sees the system's packages (torch, lm-eval, ...) so
nothing is downloaded; evalkit itself comes from the wheel, not from this checkout."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the sources (building in the checkout would leave build/ and *.egg-info there)."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "evalkit", source / "evalkit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("evalkit-*.whl")
    return wheel


def _cfpb_like_data(root: Path) -> list[str]:
    """A few rows in voc_cfpb's columns at the documented place under the data root; returns the test ids."""
    path = root / "voc" / "cfpb" / "cfpb_narratives_4level.csv"
    path.parent.mkdir(parents=True)
    rows = [("1", "Mortgage", "FHA mortgage", "Trouble during payment process", "Escrow", "test"),
            ("2", "Debt collection", "Medical debt", "Written notification about debt", "Not enough info", "test"),
            ("3", "Mortgage", "FHA mortgage", "Trouble during payment process", "Escrow", "train")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["complaint_id", "product", "sub_product", "issue", "sub_issue", "narrative", "split"])
        for cid, *labels, split in rows:
            writer.writerow([cid, *labels, f"complaint {cid} about my account", split])
    return [cid for cid, *_, split in rows if split == "test"]


def _assert_ships_every_task_file(wheel: Path) -> None:
    """A wheel (what `pip install evalkit` gets) carries evalkit/tasks/ whole as package data."""
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("evalkit/tasks/")}
    folder = ROOT / "evalkit" / "tasks"
    on_disk = {f"evalkit/tasks/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped == on_disk
    assert "evalkit/tasks/mmlu.yaml" in shipped and "evalkit/tasks/lm_eval/mmlu_letter_template_yaml" in shipped


def test_wheel_lists_tasks_and_runs_a_shipped_task_on_data_under_evalkit_data(tmp_path):
    wheel = _build_wheel(tmp_path)
    _assert_ships_every_task_file(wheel)  # one wheel build for both checks (a build is ~10 s of CPU)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EVALKIT_DATA")}
    env.update(EVALKIT_STORE=str(tmp_path / "store.sqlite"), EVALKIT_PROGRESS="0")
    # away from the checkout: pip counts an evalkit.egg-info on its path (the checkout's, from an editable
    # install) as evalkit already installed, and leaves the venv without the wheel
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=600, cwd=tmp_path, env=env)
    data = tmp_path / "data"
    test_ids = _cfpb_like_data(data)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"task": "voc_cfpb", "id": cid, "output": "Mortgage > FHA mortgage > "
                                         "Trouble during payment process > Escrow"}) + "\n" for cid in test_ids))
    evalkit = [str(python), "-m", "evalkit"]
    where = subprocess.run([str(python), "-c", "import evalkit; print(evalkit.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout  # the wheel, not this checkout

    without = subprocess.run([*evalkit, "tasks"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert without.returncode == 0, without.stderr
    assert "✗ voc_cfpb" in without.stdout and "EVALKIT_DATA" in without.stdout
    env["EVALKIT_DATA"] = str(data)
    listed = subprocess.run([*evalkit, "tasks"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "  voc_cfpb" in listed.stdout and "✗ voc_cfpb" not in listed.stdout, listed.stdout
    run = subprocess.run([*evalkit, "eval", str(preds), "--tasks", "voc_cfpb", "--set", "voc_cfpb.n_resamples=0",
                          "--out", "out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["tasks"]["voc_cfpb"]["n_samples"] == len(test_ids)
