"""A seeded subset of samples (``limit`` + ``sample_seed``): the same samples every time, not the first ones,
chosen the same way by every evaluator, and paired across checkpoints."""

from __future__ import annotations

import pytest

from evalkit.api import resolve, with_limit
from evalkit.errors import UsageError
from evalkit.evaluators.subset import subset_positions
from tests.helpers.mmlu import write_mmlu

SUBJECTS = {"anatomy": "ABCDABCD", "astronomy": "DCBADCBAB"}


def test_positions_are_a_fixed_draw_nested_in_larger_ones():
    drawn = subset_positions(1000, 50, seed=7)
    assert drawn == sorted(drawn) and len(set(drawn)) == 50 and all(0 <= i < 1000 for i in drawn)
    assert drawn != list(range(50)) and drawn != subset_positions(1000, 50, seed=8)
    assert set(drawn) <= set(subset_positions(1000, 200, seed=7))
    assert subset_positions(1000, 50, seed=None) == list(range(50))


def test_positions_are_spread_over_the_data():
    """About uniform: each tenth of 10,000 positions gets close to a tenth of a 2,000 draw."""
    drawn = subset_positions(10_000, 2_000, seed=0)
    per_tenth = [sum(1 for i in drawn if lo <= i < lo + 1000) for lo in range(0, 10_000, 1000)]
    assert all(140 <= count <= 260 for count in per_tenth), per_tenth


def _voc(**options):
    from evalkit.voc.evaluator import VocEvaluator

    (config,) = resolve(["voc_sample"], {"voc_sample": options})
    return VocEvaluator(config)


def test_voc_evaluator_takes_the_seeded_rows():
    every = [ex.sample_id for ex in _voc().examples]
    first = [ex.sample_id for ex in _voc(limit=5).examples]
    seeded = [ex.sample_id for ex in _voc(limit=5, sample_seed=0).examples]
    assert first == every[:5]
    assert seeded == [every[i] for i in subset_positions(len(every), 5, 0)] and seeded != first
    assert _voc(limit=5, sample_seed=0).sample_ids() == seeded


def test_an_unset_seed_keeps_the_stored_results_key():
    """Results stored before ``sample_seed`` existed stay found; each seed is its own key."""
    hashes = {_voc(limit=5).config_hash(), _voc(limit=5, sample_seed=None).config_hash()}
    assert len(hashes) == 1
    assert len(hashes | {_voc(limit=5, sample_seed=0).config_hash(), _voc(limit=5, sample_seed=1).config_hash()}) == 3


def test_with_limit_copies_and_checks():
    tasks = resolve(["voc_sample"])
    (limited,) = with_limit(tasks, 3)
    assert limited.options["limit"] == 3 and limited.options["sample_seed"] == 0 and "limit" not in tasks[0].options
    assert with_limit(tasks, None) is tasks
    with pytest.raises(UsageError, match="limit must be a positive integer") as info:
        with_limit(tasks, 0)
    assert info.value.param == "limit"
    with pytest.raises(UsageError, match=r"sample_seed must be an integer from 0 to 2\*\*63 - 1 \(or None\)"):
        with_limit(tasks, 3, "zero")


@pytest.fixture(scope="module")
def mmlu_dir(tmp_path_factory):
    return write_mmlu(tmp_path_factory.mktemp("subset_mmlu"), SUBJECTS)


@pytest.fixture(scope="module")
def hflm(tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_model_dir), batch_size=4, device="cpu")


def _lm_eval(mmlu_dir, **options):
    from evalkit.general.evaluator import LmEvalEvaluator
    from evalkit.taskconfig import TaskConfig

    return LmEvalEvaluator(TaskConfig(name="mmlu", evaluator="lm_eval", source="tasks/test.yaml",
                                      options={"lm_eval_task": "mmlu", "data": str(mmlu_dir), **options}))


def test_lm_eval_seeded_subset_keeps_each_docs_id_and_scores(mmlu_dir, hflm):
    """Per subject, the drawn docs are evaluated under their own index: their records equal a full run's."""
    full = {r.sample_id: r for r in _lm_eval(mmlu_dir).run(hflm, done={}, save=lambda batch: None)}
    evaluator = _lm_eval(mmlu_dir, limit=3, sample_seed=0)
    records = evaluator.run(hflm, done={}, save=lambda batch: None)
    expected = sorted(f"mmlu_{subject}/{i}" for subject, answers in SUBJECTS.items()
                      for i in subset_positions(len(answers), 3, 0))
    assert sorted(r.sample_id for r in records) == expected == sorted(evaluator.sample_ids())
    assert set(expected) != {f"mmlu_{s}/{i}" for s in SUBJECTS for i in range(3)}, "not the first three"
    for record in records:
        assert (record.target, record.scores) == (full[record.sample_id].target, full[record.sample_id].scores)
    settings = evaluator.aggregate(records).settings
    assert (settings["limit"], settings["sample_seed"]) == (3, 0)


def test_evaluate_limit_draws_the_same_samples_for_every_checkpoint(mmlu_dir, hflm, tmp_path):
    """``evaluate(..., limit=3)`` (default ``sample_seed=0``) on two checkpoints: the same drawn docs, all paired."""
    import evalkit

    overrides = {"mmlu": {"data": str(mmlu_dir)}}
    results = [evalkit.evaluate(hflm, ["mmlu"], overrides=overrides, limit=3, fingerprint=fp, label=fp,
                                store=tmp_path / "store.sqlite") for fp in ("before", "after")]
    drawn = [sorted(s.sample_id for s in r.tasks["mmlu"].samples) for r in results]
    assert drawn[0] == drawn[1] == sorted(f"mmlu_{subject}/{i}" for subject, answers in SUBJECTS.items()
                                          for i in subset_positions(len(answers), 3, 0))
    assert evalkit.compare(*results).metric("mmlu", checkpoint="after")["n_paired"] == 6
    first = evalkit.evaluate(hflm, ["mmlu"], overrides=overrides, limit=3, sample_seed=None, fingerprint="before",
                             store=tmp_path / "store.sqlite")
    assert sorted(s.sample_id for s in first.tasks["mmlu"].samples) == sorted(
        f"mmlu_{subject}/{i}" for subject in SUBJECTS for i in range(3))


def test_the_cli_limit_is_the_api_limit(mmlu_dir, tiny_model_dir, tmp_path, capsys):
    """``evalkit eval --limit 3`` draws the same docs as ``evaluate(limit=3)`` (both default to seed 0)."""
    import json

    import evalkit
    from evalkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(tiny_model_dir), "--tasks", "mmlu", "--set", f"mmlu.data={mmlu_dir}", "--limit", "3",
              "--batch-size", "4", "--store", str(tmp_path / "cli.sqlite"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 0, capsys.readouterr().err
    on_cli = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["mmlu"]
    in_api = evalkit.evaluate(str(tiny_model_dir), ["mmlu"], overrides={"mmlu": {"data": str(mmlu_dir)}}, limit=3,
                              batch_size=4, store=tmp_path / "api.sqlite").tasks["mmlu"]
    assert [s["sample_id"] for s in on_cli["samples"]] == [s.sample_id for s in in_api.samples]
    assert sorted(s.sample_id for s in in_api.samples) == sorted(
        f"mmlu_{subject}/{i}" for subject, answers in SUBJECTS.items() for i in subset_positions(len(answers), 3, 0))
    assert (on_cli["settings"]["limit"], on_cli["settings"]["sample_seed"]) == (3, 0)
