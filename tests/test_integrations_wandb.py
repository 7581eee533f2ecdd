"""Comparison.log_to_wandb and `evalkit compare --log wandb` in offline mode, read back from the run's own
files (the .wandb transaction log, the table file, the artifact manifest): evalkit's numbers, exactly."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

import evalkit
from evalkit.exports.wandb import ARTIFACT_TYPE, STUDY_KEY, study_rows, summary_values
from tests.helpers.cli import compare_logged_to
from tests.helpers.wandb_offline import records, run_file

wandb = pytest.importorskip("wandb")
pytestmark = pytest.mark.slow  # wandb starts its service process per run


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """One wandb folder for the module: wandb reads WANDB_DIR once per process (its setup is a singleton)."""
    folder = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_DIR", str(folder))
        patch.setenv("WANDB_PROJECT", "evalkit-test")
        patch.chdir(folder)
        yield folder


def _summary(run_records) -> dict:
    values = {}
    for record in run_records:
        if record.WhichOneof("record_type") == "summary":
            values.update({item.key: json.loads(item.value_json) for item in record.summary.update if item.key})
    return values


def _of_type(run_records, kind: str) -> list:
    return [getattr(r, kind) for r in run_records if r.WhichOneof("record_type") == kind]


def test_log_to_wandb_offline_records_numbers_verdict_table_and_report(offline, gated_comparison_dir, capsys):
    comparison = evalkit.read_comparison(gated_comparison_dir)
    run_id = comparison.log_to_wandb()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # the library never prints (a run it starts is silent)
    assert wandb.run is None  # the run it started is finished
    path = run_file(offline, run_id)
    logged = records(path)
    summary = _summary(logged)
    expected = summary_values(comparison.data)
    assert {key: summary[key] for key in expected} == expected  # every number exactly, and the verdict
    assert summary["tuned/mmlu.acc.p_value"] == comparison.metric("mmlu", checkpoint="tuned")["p_value"]
    assert summary["evalkit/verdict"] == "fail" and summary["evalkit/verdict/tuned"] == "fail"
    assert "evalkit:fail" in _of_type(logged, "run")[-1].tags
    # The study table: the table file wandb wrote holds the report's study table.
    (table_file,) = path.parent.glob("files/media/table/evalkit/study_*.table.json")
    table = json.loads(table_file.read_text())
    columns, rows = study_rows(comparison.data)
    assert table["columns"] == columns and table["data"] == rows
    assert any(item.nested_key[:1] == [STUDY_KEY] for h in _of_type(logged, "history") for item in h.item)
    # The report folder as an artifact: its manifest lists every file with its MD5.
    (report,) = [a for a in _of_type(logged, "artifact") if a.type == ARTIFACT_TYPE]
    digests = {entry.path: entry.digest for entry in report.manifest.contents}
    files = sorted(p.relative_to(gated_comparison_dir).as_posix() for p in gated_comparison_dir.rglob("*") if p.is_file())
    assert sorted(digests) == files
    html = (gated_comparison_dir / "report.html").read_bytes()
    assert digests["report.html"] == base64.b64encode(hashlib.md5(html).digest()).decode()


def test_log_into_the_current_run(offline, gated_comparison_dir):
    comparison = evalkit.read_comparison(gated_comparison_dir)
    run = wandb.init(settings=wandb.Settings(silent=True))
    try:
        assert comparison.log_to_wandb(report=False) == run.id
        assert wandb.run is run  # not finished: it is the user's run
    finally:
        run.finish()
    logged = records(run_file(offline, run.id))
    assert _summary(logged)["mix/voc_sample.leaf_macro_f1"] == comparison.metric("voc_sample", "leaf_macro_f1", "mix")["value"]
    assert not [a for a in _of_type(logged, "artifact") if a.type == ARTIFACT_TYPE]


def test_cli_compare_log_wandb(offline, tmp_path):
    """`evalkit compare --log wandb`: the run it names holds the written comparison's numbers and its report."""
    code, out, err = compare_logged_to("wandb", tmp_path)
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("logged to Weights & Biases run ")
    logged = records(run_file(offline, last.rsplit(" ", 1)[-1]))
    expected = summary_values(evalkit.read_comparison(tmp_path / "c").data)
    assert expected and {key: _summary(logged)[key] for key in expected} == expected
    assert [a for a in _of_type(logged, "artifact") if a.type == ARTIFACT_TYPE]  # the report folder
