"""Comparison.log_to_mlflow and `evalkit compare --log mlflow` against a real MLflow server on loopback,
read back through MlflowClient: the values must be evalkit's own numbers."""

from __future__ import annotations

import json

import pytest

import evalkit
from evalkit.exports._tracking import checkpoint_metrics, comparison_metrics
from tests.helpers.cli import compare_logged_to

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow  # one server per session: its start dominates


@pytest.fixture()
def tracking(mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    return mlflow.MlflowClient(mlflow_server)


def _children(client, parent):
    runs = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return {run.info.run_name: run for run in runs}


def test_log_to_mlflow_records_every_number_verdict_and_report(tracking, gated_comparison_dir, capsys):
    comparison = evalkit.read_comparison(gated_comparison_dir)
    mlflow.set_experiment("evalkit-test")
    run_id = comparison.log_to_mlflow()
    assert capsys.readouterr().out == ""  # the library never prints (MLflow's "View run" lines included)
    assert mlflow.active_run() is None  # the run it started is ended again
    parent = tracking.get_run(run_id)
    data = comparison.data
    assert parent.data.tags["evalkit.verdict"] == comparison.verdict.status == "fail"
    assert parent.data.metrics == comparison_metrics(data)  # deltas and p-values, exactly
    assert parent.data.metrics["tuned/mmlu.acc.p_value"] == comparison.metric("mmlu", checkpoint="tuned")["p_value"]
    children = _children(tracking, parent)
    assert sorted(children) == sorted(comparison.labels)
    statuses = {c.checkpoint: [] for c in comparison.verdict.checks}
    for check in comparison.verdict.checks:
        statuses[check.checkpoint].append(check.status)
    for label, run in children.items():
        assert run.data.metrics == checkpoint_metrics(data, label)
        row = comparison.metric("voc_sample", "leaf_macro_f1", checkpoint=label)
        for field, key in (("value", ""), ("ci_low", ".ci_low"), ("ci_high", ".ci_high")):
            assert run.data.metrics[f"voc_sample.leaf_macro_f1{key}"] == row[field]
        assert run.data.params["fingerprint"] == next(c["fingerprint"] for c in data["checkpoints"] if c["label"] == label)
        if label in statuses:
            worst = "fail" if "fail" in statuses[label] else "warn" if "warn" in statuses[label] else "pass"
            assert run.data.tags["evalkit.verdict"] == worst
    assert "evalkit.verdict" not in children["base"].data.tags  # nothing gates the baseline
    artifacts = {a.path for a in tracking.list_artifacts(run_id, "evalkit-report")}
    assert {"evalkit-report/report.html", "evalkit-report/comparison.json", "evalkit-report/verdict.json"} <= artifacts
    local = tracking.download_artifacts(run_id, "evalkit-report/comparison.json")
    assert json.loads(open(local).read()) == data


def test_log_into_a_given_run(tracking, gated_comparison_dir):
    comparison = evalkit.read_comparison(gated_comparison_dir)
    with mlflow.start_run() as outer:
        assert comparison.log_to_mlflow(report=False) == outer.info.run_id  # the active run
    other = tracking.create_run(outer.info.experiment_id).info.run_id
    assert comparison.log_to_mlflow(other, report=False) == other
    assert tracking.get_run(other).data.tags["evalkit.verdict"] == "fail"
    assert not tracking.list_artifacts(other)


def test_cli_compare_log_mlflow(tracking, tmp_path):
    code, out, err = compare_logged_to("mlflow", tmp_path)
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("logged to MLflow run ")
    run_id = last.rsplit(" ", 1)[-1]
    written = evalkit.read_comparison(tmp_path / "c")
    assert tracking.get_run(run_id).data.metrics == comparison_metrics(written.data)
    assert {run.info.run_name for run in _children(tracking, tracking.get_run(run_id)).values()} == {"base", "tuned"}
