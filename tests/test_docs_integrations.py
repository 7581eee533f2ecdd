"""docs/integrations.md is run as a doctest: pandas, notebooks, a real MLflow server, wandb offline, a model card."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"


@pytest.mark.slow
def test_integrations_doc_examples_run(mlflow_server, monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    pytest.importorskip("huggingface_hub")
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "evalkit-docs")
    monkeypatch.setenv("EVALKIT_PROGRESS", "0")
    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS,
                                       raise_on_error=False, verbose=False)
    assert tried > 30
    assert failures == 0, f"{failures} of {tried} examples in {DOC.name} failed (see the output above)"
