"""A missing optional library is one line naming the evalkit extra, from the API and from the CLI."""

from __future__ import annotations

import sys

import pytest

import evalkit
from tests.helpers.cli import make_voc_task, run_cli, write_predictions


@pytest.mark.parametrize("module, call", [("mlflow", "log_to_mlflow"), ("wandb", "log_to_wandb")])
def test_a_missing_library_names_its_extra(module, call, gated_comparison_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    comparison = evalkit.read_comparison(gated_comparison_dir)
    with pytest.raises(evalkit.UsageError, match=rf"needs the {module} package: pip install 'evalkit\[{module}\]'$"):
        getattr(comparison, call)()


def test_card_without_huggingface_hub_names_the_hub_extra(gated_comparison_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    code, out, err = run_cli(["card", str(tmp_path), "--from", str(gated_comparison_dir / "comparison.json")])
    assert code == 2 and err.strip().endswith("pip install 'evalkit[hub]'") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "README.md").exists()


def test_compare_log_checks_the_extra_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    task = make_voc_task(tmp_path)
    preds = write_predictions(tmp_path / "p.jsonl", task)
    code, out, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "compare", f"a={preds}", f"b={preds}", "-t",
                              str(task), "--out", str(tmp_path / "out"), "--log", "wandb"])
    assert code == 2 and err.strip().splitlines() == [
        "evalkit: error: --log: logging to Weights & Biases needs the wandb package: pip install 'evalkit[wandb]'"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.sqlite").exists()
