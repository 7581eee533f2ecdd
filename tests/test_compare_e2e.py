"""`evalkit compare` end to end on two tiny checkpoints: reports, store reuse, baseline reuse, gating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.mmlu import write_mmlu

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    from evalkit.testing import build_tiny_model

    root = tmp_path_factory.mktemp("e2e")
    other = build_tiny_model(root / "tuned", seed=7)
    mmlu = write_mmlu(root / "mmlu", {"anatomy": "ABCDA", "astronomy": "DCBAD"})
    env = {**os.environ, "EVALKIT_STORE": str(root / "store.sqlite"), "EVALKIT_CACHE_DIR": str(root / "cache"),
           "EVALKIT_PROGRESS": "0"}
    task_args = ["--tasks", "voc_sample,mmlu", "--set", "voc_sample.limit=12", "--set", f"mmlu.data={mmlu}",
                 "--set", "voc_sample.n_resamples=50"]
    return {"root": root, "base": tiny_model_dir, "tuned": other, "env": env, "task_args": task_args}


def _evalkit(setup, *args):
    return subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=ROOT,
                          env=setup["env"], timeout=600)


@pytest.fixture(scope="module")
def first_run(setup):
    out = setup["root"] / "report"
    result = _evalkit(setup, "compare", f"base={setup['base']}", f"tuned={setup['tuned']}", *setup["task_args"],
                      "--out", str(out), "--note", "tuned=seed 7")
    assert result.returncode == 0, result.stderr
    return out


def test_compare_writes_every_output(first_run):
    for name in ("report.html", "report.md", "comparison.json", "metrics.csv", "results/base.json", "results/tuned.json"):
        assert (first_run / name).is_file(), name
    comparison = json.loads((first_run / "comparison.json").read_text())
    assert [c["label"] for c in comparison["checkpoints"]] == ["base", "tuned"]
    assert {t["name"] for t in comparison["tasks"]} == {"voc_sample", "mmlu"}
    rows = {(r["task"], r["metric"], r["checkpoint"]): r for r in comparison["metrics"]}
    acc = rows[("mmlu", "acc", "tuned")]
    assert acc["n_paired"] == 10 and acc["test"] in ("mcnemar_exact", "mcnemar_chi2")
    assert rows[("voc_sample", "leaf_macro_f1", "tuned")]["baseline"] == "base"
    assert any(b["kind"] == "subject" and b["key"] == "anatomy" for b in comparison["breakdowns"])
    assert "seed 7" in (first_run / "report.html").read_text()


def test_rerun_is_answered_from_the_store_without_loading_a_model(setup, first_run, monkeypatch, capsys):
    from evalkit.checkpoints import kinds as loaders  # load_lm: the one entry that loads any kind
    from evalkit.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded although every result is stored")

    monkeypatch.setattr(loaders, "load_lm", refuse)
    for key, value in setup["env"].items():
        monkeypatch.setenv(key, value)
    out = setup["root"] / "again"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", f"base={setup['base']}", f"tuned={setup['tuned']}", *setup["task_args"], "--out", str(out)])
    assert exit_info.value.code == 0
    said = capsys.readouterr().err
    assert "evaluating" not in said and said.count("answered from the store") == 2, said
    first = json.loads((first_run / "comparison.json").read_text())
    again = json.loads((out / "comparison.json").read_text())
    assert first["metrics"] == again["metrics"]


def test_baseline_results_and_policy_gate_the_new_checkpoint(setup, first_run):
    policy = setup["root"] / "policy.yaml"
    policy.write_text("baseline: base\ngates:\n  - metric: mmlu.acc\n    min: 1.01\n  - metric: voc_sample.invalid_rate\n    max: 1.0\n")
    out = setup["root"] / "ci"
    result = _evalkit(setup, "compare", f"tuned_v2={setup['tuned']}", *setup["task_args"], "--out", str(out),
                      "--baseline-results", str(first_run / "results" / "base.json"), "--policy", str(policy))
    assert result.returncode == 1, result.stderr  # mmlu.acc can never reach 1.01
    # the terminal gets plain text; Markdown (escapes, entities, tables) is for the step summary and report.md
    assert "FAIL  tuned_v2  mmlu.acc" in result.stdout, result.stdout
    assert not any(markup in result.stdout for markup in ("\\_", "&gt;", "&lt;", "|---", "###")), result.stdout
    suite = ET.parse(out / "junit.xml").getroot()
    assert len(suite.findall(".//testcase")) == 2 and len(suite.findall(".//failure")) == 1
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["verdict"]["status"] == "fail"
    assert "FAIL" in (out / "report.md").read_text().upper()
    gate = _evalkit(setup, "gate", str(out / "comparison.json"), "--policy", str(policy), "--out", str(setup["root"] / "g"))
    assert gate.returncode == 1 and (setup["root"] / "g" / "junit.xml").is_file()


def test_report_rerenders_from_comparison_results_and_store(setup, first_run, monkeypatch):
    """`evalkit report` from each of its three sources, in process (three fresh interpreters cost ~14 CPU s)."""
    from tests.helpers.cli import run_cli

    for key, value in setup["env"].items():
        monkeypatch.setenv(key, value)
    root = setup["root"]
    sources = {"r1": [str(first_run / "comparison.json")],
               "r2": [str(first_run / "results" / "base.json"), str(first_run / "results" / "tuned.json")],
               "r3": ["base", "tuned"]}  # from the store
    for out, source in sources.items():
        code, _, said = run_cli(["report", *source, "--out", str(root / out)])
        assert code == 0 and (root / out / "report.html").is_file(), said
    metrics = [json.loads((root / d / "comparison.json").read_text())["metrics"] for d in ("r2", "r3")]
    assert metrics[0] == metrics[1]


def test_evaluation_failure_exits_3(setup, tmp_path, monkeypatch, capsys):
    from evalkit.cli import main
    from evalkit.voc.evaluator import VocEvaluator

    def crash(self, lm, *, done, save):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(VocEvaluator, "run", crash)
    monkeypatch.setenv("EVALKIT_STORE", str(tmp_path / "store.sqlite"))
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", f"a={setup['base']}", f"b={setup['tuned']}", "--tasks", "voc_sample", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 3
    assert "device-side assert" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_input_exits_2_before_evaluating(setup, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: brk\nevaluator: lm_eval\nlm_eval_task: mmlu\ndata: /does/not/exist\n")
    bad = _evalkit(setup, "compare", f"a={setup['base']}", f"b={setup['tuned']}", "--tasks", str(broken), "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "o").exists(), "nothing half-written on bad input"
    same = _evalkit(setup, "compare", str(setup["base"]), str(setup["base"]), "--tasks", "voc_sample", "--out", str(tmp_path / "o"))
    assert same.returncode == 2 and "used twice" in same.stderr
