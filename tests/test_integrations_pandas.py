"""pandas tables: EvalResult.to_pandas, Comparison.to_pandas and evalkit.read_comparison (docs/integrations.md)."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

import evalkit
from evalkit.exports.pandas import BREAKDOWN_COLUMNS, COLUMNS_VERSION, METRIC_COLUMNS, SAMPLE_COLUMNS


@pytest.fixture(scope="module")
def comparison(gated_comparison_dir):
    return evalkit.read_comparison(gated_comparison_dir)


def _same(a, b) -> bool:
    """Equal, with a missing value (None / NaN) equal to a missing value."""
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) for x in (a, b)]
    return all(missing) if any(missing) else a == b


def test_read_comparison_gives_back_the_written_folder(comparison, gated_comparison_dir):
    written = evalkit.Comparison.load(gated_comparison_dir / "comparison.json")
    assert comparison.to_dict() == written.to_dict()
    assert comparison.verdict.to_dict() == written.verdict.to_dict() and comparison.verdict.status == "fail"
    assert [r.checkpoint.label for r in comparison.results] == comparison.labels == ["base", "tuned", "mix"]
    from_file = evalkit.read_comparison(gated_comparison_dir / "comparison.json")
    assert from_file.to_dict() == comparison.to_dict() and len(from_file.results) == 3


def test_read_comparison_of_a_folder_without_one_names_the_file(tmp_path):
    with pytest.raises(evalkit.UsageError, match="comparison.json"):
        evalkit.read_comparison(tmp_path)


def test_comparison_frame_holds_every_metric_row_exactly(comparison):
    frame = comparison.to_pandas()
    assert frame.attrs["evalkit_columns_version"] == COLUMNS_VERSION
    assert tuple(frame.columns[:len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    rows = comparison.data["metrics"]
    assert len(frame) == len(rows)
    for row, (_, got) in zip(rows, frame.iterrows()):
        for key, value in row.items():  # every field of the row, documented or not, is a column
            assert _same(got[key], value), (row["task"], row["metric"], row["checkpoint"], key)


def test_decision_is_the_gate_status_of_the_row(comparison):
    frame = comparison.to_pandas().set_index(["task", "metric", "checkpoint"])
    for check in comparison.verdict.checks:
        task, metric = check.metric.split(".", 1)
        assert frame.loc[(task, metric, check.checkpoint), "decision"] == check.status
    assert set(frame["decision"].dropna()) == {"pass", "warn", "fail"}
    ungated = frame.loc[("mmlu_generative", "exact_match", "tuned")]
    assert pd.isna(ungated["decision"])
    assert bool(ungated["significant"]) == (ungated["delta_ci_low"] > 0 or ungated["delta_ci_high"] < 0)


def test_fields_a_newer_comparison_adds_become_columns(comparison):
    data = comparison.to_dict()
    for row in data["metrics"]:
        row["p_value_adjusted"] = 0.5
        row["status"] = "inconclusive"
    frame = evalkit.Comparison(data).to_pandas()
    assert (frame["p_value_adjusted"] == 0.5).all() and (frame["status"] == "inconclusive").all()
    assert list(frame.columns[len(METRIC_COLUMNS):]) == sorted(frame.columns[len(METRIC_COLUMNS):])


def test_breakdown_frame(comparison):
    frame = comparison.to_pandas("breakdowns")
    assert tuple(frame.columns[:len(BREAKDOWN_COLUMNS)]) == BREAKDOWN_COLUMNS
    assert len(frame) == len(comparison.data["breakdowns"])
    assert set(frame["kind"]) >= {"subject", "category"}
    with pytest.raises(ValueError, match="table must be one of metrics, breakdowns; got 'flips'"):
        comparison.to_pandas("flips")


def _with_stored_specs(result):
    """The result as evaluators write it now: each task's metric declarations stored with it."""
    from evalkit.evaluators.base import get_evaluator

    tasks = {}
    for name, task in result.tasks.items():
        tasks[name] = dataclasses.replace(task, metric_specs=dict(get_evaluator(task.evaluator).metric_specs))
    return dataclasses.replace(result, tasks=tasks)


def test_sample_frame_has_one_row_per_sample_with_breakdown_keys(comparison):
    result = _with_stored_specs(comparison.results[1])
    frame = result.to_pandas()
    assert frame.attrs["evalkit_columns_version"] == COLUMNS_VERSION
    assert tuple(frame.columns[:len(SAMPLE_COLUMNS)]) == SAMPLE_COLUMNS
    assert len(frame) == sum(len(task.samples) for task in result.tasks.values())
    mmlu = frame[frame["task"] == "mmlu"]
    records = result.tasks["mmlu"].samples
    assert list(mmlu["sample_id"]) == [r.sample_id for r in records]
    assert list(mmlu["correct"]) == [r.correct for r in records]
    assert list(mmlu["prediction"]) == [r.prediction for r in records]
    assert list(mmlu["score.acc"]) == [r.scores["acc"] for r in records]
    assert list(mmlu["breakdown.subject"]) == list(mmlu["group"])  # subject breakdowns group by `group`
    assert list(mmlu["breakdown.category"]) == [r.extra["category"] for r in records]
    voc = frame[frame["task"] == "voc_sample"]
    assert list(voc["breakdown.class"]) == list(voc["group"])  # the evaluator's class/recall declaration
    assert (frame["checkpoint"] == "tuned").all() and frame["confidence"].isna().all()
    bare = comparison.results[1].to_pandas()  # no stored declarations: no breakdown columns, the rest the same
    assert not [c for c in bare.columns if c.startswith("breakdown.")]
    assert bare["prediction"].equals(frame["prediction"])


def test_sample_frame_carries_confidence_where_records_have_it(comparison):
    result = comparison.results[0]
    task = result.tasks["voc_sample"]
    samples = [dataclasses.replace(s, extra={**s.extra, "confidence": i / 100}) for i, s in enumerate(task.samples)]
    with_confidence = dataclasses.replace(result, tasks={"voc_sample": dataclasses.replace(task, samples=samples)})
    frame = with_confidence.to_pandas()
    assert list(frame["confidence"]) == [i / 100 for i in range(len(samples))]
    assert isinstance(frame, pd.DataFrame)
