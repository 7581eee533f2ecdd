"""Sequential gating: the bound against confseq, decisions, seeded simulations, verdicts, end to end."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalkit.gate.sequential_verdict import EARLY_SHARE

from evalkit.errors import UsageError
from evalkit.gate import Gate, parse_policy
from evalkit.sequential import (SequentialGate, apply_sequential_verdict, confidence_sequence, decide,
                                sample_order, simulate_stopping, unsupported_reason)
from evalkit.sequential._gates import spec_reason

# ------------------------------------------------------------------------------------------- the bound


def _reference_input() -> np.ndarray:
    i = np.arange(200)  # as bench/sequential/confseq_reference.py builds it
    return ((i * 37) % 101) / 100.0 * (i % 3 != 0)


# confseq 0.0.11 predmix_empbern_twosided_cs(x, alpha=0.05, running_intersection=True, N=...) at t = 50, 100, 200
# (printed by bench/sequential/confseq_reference.py from the package's own code).
CONFSEQ = {
    None: [(0.15077950573670174, 0.5444358685716009), (0.2135287538110272, 0.45441278781098793),
           (0.25093568279953526, 0.4159751958235661)],
    300: [(0.16712838951792064, 0.5280247556352612), (0.23388862495287543, 0.4347315028387131),
          (0.2783638305491879, 0.3869222124864157)],
}


@pytest.mark.parametrize("population", [None, 300])
def test_bound_matches_confseq(population):
    low, high = confidence_sequence(_reference_input(), alpha=0.05, population=population)
    got = [(low[t - 1], high[t - 1]) for t in (50, 100, 200)]
    np.testing.assert_allclose(np.array(got), np.array(CONFSEQ[population]), rtol=0, atol=1e-12)
    assert (low[0], high[0]) == (0.0, 1.0)


def test_bound_rescales_paired_differences_and_only_tightens():
    diffs = np.tile([1.0, 0.0, 0.0, -1.0, 1.0], 200)
    low, high = confidence_sequence(diffs, lower=-1, upper=1)
    scaled_low, scaled_high = confidence_sequence((diffs + 1) / 2)
    np.testing.assert_allclose(low, 2 * scaled_low - 1)
    np.testing.assert_allclose(high, 2 * scaled_high - 1)
    assert np.all(np.diff(low) >= 0) and np.all(np.diff(high) <= 0)
    assert low[-1] < 0.2 < high[-1]


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"lower": 1, "upper": 0}, "lower"),
    ({"population": 2}, "population"),
])
def test_bound_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        confidence_sequence([0.1, 0.2, 0.3], **kwargs)


def test_bound_rejects_observations_outside_the_range():
    with pytest.raises(ValueError, match="within"):
        confidence_sequence([0.5, 1.5])
    with pytest.raises(ValueError, match="finite"):
        confidence_sequence([0.5, float("nan")])


# ------------------------------------------------------------------------------------------- decisions


def _gate(operator: str, threshold: float, alpha: float = 0.05, higher_is_better: bool = True) -> SequentialGate:
    gate = parse_policy({"gates": [{"metric": "mmlu.acc", operator: threshold}]}).gates[0]
    return SequentialGate(gate, "mmlu", "acc", "tuned", higher_is_better, alpha, "scores.acc")


def test_max_drop_fails_passes_or_waits():
    gate = _gate("max_drop", 0.05)
    assert decide(gate, np.ones(60), 14042).status == "fail"
    assert decide(gate, np.zeros(400), 14042).status == "pass"
    assert decide(gate, np.r_[np.ones(3), np.zeros(37)], 14042).status == "undecided"
    assert decide(gate, np.zeros(0), 10).status == "undecided"


def test_drop_is_oriented_by_the_metric_direction():
    tuned, base = np.zeros(200), np.ones(200)  # the score fell from 1 to 0 on every sample
    higher = _gate("max_drop", 0.05)
    lower = _gate("max_drop", 0.05, higher_is_better=False)  # e.g. an error rate: falling is a gain
    assert decide(higher, higher.observations(tuned, base), 1000).status == "fail"
    assert decide(lower, lower.observations(tuned, base), 1000).status == "pass"


def test_min_gain_and_value_bounds():
    gain = _gate("min_gain", 0.1)
    assert decide(gain, gain.observations(np.ones(200), np.zeros(200)), 1000).status == "pass"
    assert decide(gain, gain.observations(np.zeros(200), np.zeros(200)), 1000).status == "fail"
    at_least = _gate("min", 0.5)
    assert decide(at_least, at_least.observations(np.ones(100), None), 1000).status == "pass"
    at_most = _gate("max", 0.5)
    assert decide(at_most, at_most.observations(np.ones(100), None), 1000).status == "fail"


@pytest.mark.parametrize("higher_is_better", [True, False])
@pytest.mark.parametrize("operator, threshold", [("max_relative_drop", 0.1), ("min_relative_gain", 0.05),
                                                 ("min_relative_gain", -0.2)])
def test_relative_gates_bound_a_linear_form_with_the_same_sign(operator, threshold, higher_is_better):
    """mean(change - r*baseline) > 0 exactly when the relative change exceeds r (baseline mean > 0)."""
    gate = _gate(operator, threshold, higher_is_better=higher_is_better)
    rng = np.random.default_rng(3)
    for _ in range(200):
        base = (rng.random(50) < rng.uniform(0.2, 0.9)).astype(float)
        tuned = (rng.random(50) < rng.uniform(0.2, 0.9)).astype(float)
        q = gate.observations(tuned, base)
        low, high = gate.range
        assert low <= q.min() and q.max() <= high and -2 <= low < high <= 2
        change = (tuned.mean() - base.mean()) / base.mean() * (1 if higher_is_better else -1)
        relative = -change if operator == "max_relative_drop" else change
        if abs(relative - threshold) > 1e-9:
            assert (q.mean() > 0) == (relative > threshold)
    assert gate.decision_threshold == 0.0 and "baseline" in gate.quantity


def test_relative_drop_gates_decide_early():
    gate = _gate("max_relative_drop", 0.1)
    base = np.tile([1.0, 1.0, 0.0, 1.0], 100)
    assert decide(gate, gate.observations(np.zeros(400), base), 10_000).status == "fail"
    assert decide(gate, gate.observations(base.copy(), base), 10_000).status == "pass"


def test_breakdown_and_corpus_gates_run_in_full():
    from evalkit.evaluators.base import MetricSpec

    breakdown = Gate(index=2, metric="mmlu.subject/anatomy/acc", operator="max_drop", threshold=0.1)
    assert "breakdown" in unsupported_reason(breakdown)
    assert unsupported_reason(Gate(index=3, metric="mmlu.acc", operator="max_drop", threshold=0.1)) is None
    assert unsupported_reason(Gate(index=1, metric="mmlu.acc", operator="max_relative_drop", threshold=0.1)) is None
    assert "corpus" in spec_reason(MetricSpec(level="corpus"), "leaf_macro_f1")
    assert "elements" in spec_reason(MetricSpec(unit="element", cluster="sample_id"), "inst_level_strict_acc")
    assert "declaration" in spec_reason(None, "x")
    assert spec_reason(MetricSpec(), "acc") is None


def test_sample_order_is_a_seeded_permutation_per_task():
    ids = [f"q{i}" for i in range(50)]
    first = sample_order(ids, "mmlu", 0)
    assert first == sample_order(ids, "mmlu", 0) and sorted(first) == sorted(ids)
    assert first != sample_order(ids, "mmlu", 1) and first != sample_order(ids, "other", 0)


# ------------------------------------------------------------------------------------------- simulations


def _population(n: int, drop: int, discordant: int) -> np.ndarray:
    """Paired drops of n questions: ``drop + discordant`` right->wrong, ``discordant`` wrong->right."""
    return np.r_[np.ones(drop + discordant), -np.ones(discordant), np.zeros(n - drop - 2 * discordant)]


@pytest.mark.parametrize("drop", [100, 90])  # exactly at a 0.05 max_drop on 2,000 questions, and just inside
def test_false_fail_rate_is_at_most_alpha(drop):
    result = simulate_stopping(_population(2000, drop, 150), operator="max_drop", threshold=0.05, alpha=0.1,
                               chunk_size=50, n_runs=300, random_state=drop)
    assert result.rate("fail") <= 0.1


def test_a_large_drop_stops_after_a_small_fraction():
    result = simulate_stopping(_population(14042, 3932, 300), operator="max_drop", threshold=0.05, n_runs=50,
                               random_state=1)
    assert result.rate("fail") == 1.0 and result.median_fraction < 0.05


def test_peeking_at_a_fixed_sample_interval_would_not_be_valid():
    """Why the sequence matters: stopping when a 95% normal interval first excludes the threshold fails far
    more often than 5% at the threshold, while the confidence sequence stays below alpha."""
    population = _population(2000, 100, 150)
    rng = np.random.default_rng(0)
    naive_fails = 0
    for _ in range(300):
        x = rng.permutation(population)
        for n in range(50, 2001, 50):
            mean, se = x[:n].mean(), x[:n].std(ddof=1) / np.sqrt(n)
            if mean - 1.96 * se > 0.05:
                naive_fails += 1
                break
    assert naive_fails / 300 > 0.05
    sequential = simulate_stopping(population, operator="max_drop", threshold=0.05, chunk_size=50, n_runs=300)
    assert sequential.rate("fail") <= 0.05


def test_simulation_validates_its_parameters():
    with pytest.raises(ValueError, match="n_runs"):
        simulate_stopping(np.zeros(10), operator="max_drop", threshold=0.05, n_runs=0)
    with pytest.raises(ValueError, match="non-empty"):
        simulate_stopping([], operator="max_drop", threshold=0.05)


# ------------------------------------------------------------------------------------------- verdicts


def _comparison(stopped: bool, status: str = "fail") -> dict:
    gate = {"gate": "mmlu.acc max_drop 0.05", "gate_index": 1, "metric": "mmlu.acc", "checkpoint": "tuned",
            "operator": "max_drop", "threshold": 0.05, "quantity": "drop", "status": status, "estimate": 0.3,
            "cs_low": 0.2, "cs_high": 0.4, "alpha": 0.05, "n": 100}
    rows = [{"task": "mmlu", "metric": "acc", "checkpoint": label, "value": value, "baseline_value": 0.7,
             "delta": value - 0.7, "p_value": 0.5, "higher_is_better": True}
            for label, value in (("base", 0.7), ("tuned", 0.69))]
    return {"baseline": "base", "checkpoints": [{"label": "base"}, {"label": "tuned"}], "metrics": rows,
            "sequential": {"tasks": {"mmlu": {"sequential": True, "stopped_early": stopped, "reason": "r",
                                              "samples_used": 100, "samples_total": 1000, "gates": [gate]}}}}


def test_a_stopped_task_takes_the_sequence_decision_not_the_fixed_sample_rule():
    from evalkit.gate import evaluate_policy

    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_drop": 0.05}]})
    verdict = evaluate_policy(policy, _comparison(stopped=True))  # the partial data alone would pass (drop 0.01)
    check = verdict.checks[0]
    assert verdict.status == "fail" and check.status == "fail"
    assert "after 100 of 1000 samples" in check.message and check.sequential["cs_low"] == 0.2
    full = evaluate_policy(policy, _comparison(stopped=False))
    assert full.status == "pass" and full.checks[0].sequential["decision"] == "fail"  # ran out: fixed-sample rule


def test_a_gate_the_sequential_run_did_not_monitor_cannot_pass_on_part_of_the_data():
    from evalkit.gate import evaluate_policy

    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_drop": 0.2}]})
    verdict = evaluate_policy(policy, _comparison(stopped=True))
    assert verdict.status == "fail" and "did not monitor" in verdict.checks[0].message


def test_apply_sequential_verdict_leaves_other_comparisons_alone():
    from evalkit.gate import evaluate_policy

    comparison = _comparison(stopped=True)
    del comparison["sequential"]
    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_drop": 0.05}]})
    verdict = evaluate_policy(policy, comparison)
    assert apply_sequential_verdict(verdict, comparison).status == "pass"
    assert verdict.checks[0].sequential is None


# ------------------------------------------------------------------------------------------- end to end

_WORDS = ("quick brown fox jumps lazy dog capital France Paris Rome Berlin Madrid product quality damaged item "
          "screen cracked delivery late courier customer service rude agent refund essay history package box").split()
_SUBJECTS = ("anatomy", "astronomy", "virology", "marketing")


def _write_mmlu(root: Path, per_subject: int, answers: dict[str, str] | None = None) -> Path:
    """An MMLU folder of varied questions (the tiny models then disagree); gold letters from ``answers``."""
    rng = random.Random(0)
    for split in ("test", "dev"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject in _SUBJECTS:
            with (root / split / f"{subject}_{split}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                for i in range(per_subject if split == "test" else 5):
                    question = " ".join(rng.choice(_WORDS) for _ in range(6)) + "?"
                    choices = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4))) for _ in range(4)]
                    answer = (answers or {}).get(f"mmlu_{subject}/{i}", "A") if split == "test" else "A"
                    writer.writerow([question, *choices, answer])
    return root


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """base and tuned tiny chat models; MMLU whose gold answers are base's own picks (base 100%, tuned far less)."""
    from evalkit.checkpoints import Checkpoint
    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore
    from evalkit.taskconfig import parse_overrides, resolve_tasks
    from evalkit.testing import build_tiny_model

    root = tmp_path_factory.mktemp("sequential")
    base = build_tiny_model(root / "base", chat_template=True, seed=1)
    tuned = build_tiny_model(root / "tuned", chat_template=True, seed=7)
    draft = _write_mmlu(root / "draft", 100)
    tasks = resolve_tasks("mmlu", parse_overrides([f"mmlu.data={draft}"]))
    with ResultStore(root / "draft.sqlite") as store:
        records = evaluate_checkpoint(Checkpoint.from_string(str(base)), tasks, store).tasks["mmlu"].samples
    answers = {r.sample_id: "ABCD"[r.extra["choices"].index(r.prediction)] for r in records}
    mmlu = _write_mmlu(root / "mmlu", 100, answers)
    policy = root / "policy.yaml"
    policy.write_text("gates:\n  - metric: mmlu.acc\n    max_drop: 0.05\n", encoding="utf-8")
    return {"root": root, "base": base, "tuned": tuned, "mmlu": mmlu, "policy": policy}


def _compare(setting, specs, out, *, policy=None, store="store.sqlite", sequential=True, chunk=20) -> int:
    from evalkit.checkpoints import LoadOptions
    from evalkit.cli.commands import compare_pipeline

    return compare_pipeline(specs=specs, tasks="mmlu", out=out, baseline=None, baseline_results=[],
                            policy=str(policy or setting["policy"]), notes=[],
                            overrides=[f"mmlu.data={setting['mmlu']}"], rerun=False, load_options=LoadOptions(),
                            store_path=str(setting["root"] / store), sequential=sequential, sequential_chunk=chunk)


@pytest.mark.slow
def test_a_clear_drop_stops_early_and_fails(setting, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="evalkit")  # without a command line, progress lines are INFO records
    out = setting["root"] / "drop"
    code = _compare(setting, [f"base={setting['base']}", f"tuned={setting['tuned']}"], out, store="drop.sqlite")
    assert code == 1
    comparison = json.loads((out / "comparison.json").read_text())
    outcome = comparison["sequential"]["tasks"]["mmlu"]
    assert outcome["stopped_early"] and outcome["samples_used"] < 0.2 * outcome["samples_total"] == 80
    gate = outcome["gates"][0]
    # the sequence runs at a two-sided level of 2 * EARLY_SHARE * alpha: EARLY_SHARE of the gate's 0.05 per side
    assert gate["status"] == "fail" and gate["cs_low"] > 0.05 and gate["alpha"] == pytest.approx(2 * EARLY_SHARE * 0.05)
    assert comparison["tasks"][0]["n_samples"] == {"base": outcome["samples_used"], "tuned": outcome["samples_used"]}
    check = json.loads((out / "verdict.json").read_text())["checks"][0]
    assert check["status"] == "fail" and check["sequential"]["samples_used"] == outcome["samples_used"]
    for report in ("report.md", "report.html"):
        text = (out / report).read_text()
        assert "Sequential evaluation" in text and f"{outcome['samples_used']} of 400" in text
    assert "stopped after" in caplog.text


@pytest.mark.slow
def test_no_drop_passes_before_the_data_run_out(setting):
    twin = setting["root"] / "twin"
    if not twin.exists():
        shutil.copytree(setting["base"], twin)  # same weights under another label: no drop at all
    from evalkit.compare_run import compare_sequential  # the Python API under compare --sequential

    comparison = compare_sequential(f"base={setting['base']}", f"twin={twin}", tasks="mmlu", policy=setting["policy"],
                                    overrides=[f"mmlu.data={setting['mmlu']}"], store=setting["root"] / "same.sqlite",
                                    chunk_size=20)
    assert comparison.verdict.passed and comparison.verdict.checks[0].sequential["decision"] == "pass"
    outcome = comparison.data["sequential"]["tasks"]["mmlu"]
    assert outcome["stopped_early"] and outcome["gates"][0]["status"] == "pass"
    assert outcome["gates"][0]["cs_high"] <= 0.05


@pytest.mark.slow
def test_resume_after_a_sequential_stop(setting):
    from evalkit.store import ResultStore

    specs = [f"base={setting['base']}", f"tuned={setting['tuned']}"]
    _compare(setting, specs, setting["root"] / "r1", store="resume.sqlite")
    first = json.loads((setting["root"] / "r1" / "comparison.json").read_text())["sequential"]["tasks"]["mmlu"]
    with ResultStore(setting["root"] / "resume.sqlite") as store:
        assert store.runs() == []  # stopped runs stay open: their samples wait for a later run
    strict = setting["root"] / "strict.yaml"
    strict.write_text("gates:\n  - metric: mmlu.acc\n    max_drop: 0.05\n    significance: 0.000001\n", encoding="utf-8")
    _compare(setting, specs, setting["root"] / "r2", policy=strict, store="resume.sqlite")
    second = json.loads((setting["root"] / "r2" / "comparison.json").read_text())
    outcome = second["sequential"]["tasks"]["mmlu"]
    assert outcome["samples_used"] > first["samples_used"]
    assert outcome["gates"][0]["alpha"] == pytest.approx(2 * EARLY_SHARE * 0.000001)
    timing = {c["label"]: c["timing"]["mmlu"] for c in second["checkpoints"]}
    assert timing["tuned"]["evaluated_samples"] == outcome["samples_used"] - first["samples_used"]
    assert _compare(setting, specs, setting["root"] / "r3", store="resume.sqlite", sequential=False) == 1
    full = json.loads((setting["root"] / "r3" / "comparison.json").read_text())
    timing = {c["label"]: c["timing"]["mmlu"] for c in full["checkpoints"]}
    assert timing["tuned"]["resumed_samples"] == outcome["samples_used"] and full["tasks"][0]["n_samples"]["tuned"] == 400
    # Everything is in the store now: a sequential run has nothing to save and decides on all samples.
    _compare(setting, specs, setting["root"] / "r3b", store="resume.sqlite")
    again = json.loads((setting["root"] / "r3b" / "comparison.json").read_text())
    assert not again["sequential"]["tasks"]["mmlu"]["sequential"] and again["tasks"][0]["n_samples"]["tuned"] == 400
    # The baseline's run is complete in the store: a new candidate is paired with it at no cost.
    from evalkit.testing import build_tiny_model

    other = build_tiny_model(setting["root"] / "other", chat_template=True, seed=9)
    _compare(setting, [specs[0], f"other={other}"], setting["root"] / "r4", store="resume.sqlite")
    fourth = json.loads((setting["root"] / "r4" / "comparison.json").read_text())
    timing = {c["label"]: c["timing"]["mmlu"] for c in fourth["checkpoints"]}
    assert fourth["sequential"]["tasks"]["mmlu"]["stopped_early"] and timing["base"]["evaluated_samples"] == 0
    assert timing["other"]["evaluated_samples"] == fourth["sequential"]["tasks"]["mmlu"]["samples_used"]


def test_sequential_needs_a_policy(tmp_path):
    from evalkit.checkpoints import LoadOptions
    from evalkit.cli.commands import compare_pipeline

    with pytest.raises(UsageError, match="needs policy=FILE"):
        compare_pipeline(specs=["a", "b"], tasks="mmlu", out=tmp_path, baseline=None, baseline_results=[], policy=None,
                         notes=[], overrides=[], rerun=False, load_options=LoadOptions(), store_path=None,
                         sequential=True)


# ------------------------------------------------------------------------------------------- the benchmark

BENCH = Path(__file__).resolve().parents[1] / "bench" / "sequential"


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_sequential_simulate", BENCH / "simulate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_figures_are_the_recorded_run_and_reproduce():
    """The README's tables are simulate.json's numbers, and a row recomputes to the same figures."""
    recorded = json.loads((BENCH / "simulate.json").read_text())
    readme = (BENCH / "README.md").read_text()
    for row in recorded["validity"]:
        assert row["runs"] >= 1000 and row["false_fail_rate"] <= recorded["settings"]["alpha"]
        assert f"**{row['false_fail_rate']:.1%}**" in readme and f"{row['naive_peeking_false_fail_rate']:.1%}" in readme
    for row in recorded["savings"]:
        assert f"**{row['median_fraction']:.1%}**" in readme and f"{row['median_samples']:,}" in readme
    for file in ("real_run.json", "real_run_noise0.5.json"):
        real = json.loads((BENCH / file).read_text())
        assert real["same_verdict"] and f"**{real['ratio_wall_sequential_over_full']:.3f}**" in readme
        for name in ("sequential", "full"):
            assert f"**{real[name]['wall_seconds']} s**" in readme
        used = real["sequential"]["sequential"]["samples_used"]
        assert f"{used} of {real['full']['n_samples']['tuned']:,}" in readme
    again = _bench_module().savings(28, runs=200, seed=38)
    assert again == recorded["savings"][0]


def test_a_policy_baseline_other_than_the_comparison_baseline_fails_before_evaluating():
    from evalkit.compare_run import check_labels

    policy = parse_policy({"baseline": "other", "gates": [{"metric": "mmlu.acc", "max_drop": 0.05}]})
    with pytest.raises(UsageError, match="'baseline' is 'other'"):
        check_labels(["base", "tuned"], policy=policy)  # the one preparation step, fixed or sequential mode


def test_each_gate_spends_a_stated_share_of_its_level_on_the_early_looks():
    from evalkit.sequential._drive import _plan

    class Task:
        name = "mmlu"

    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_drop": 0.05, "significance": 0.05},
                                     {"metric": "ifeval.prompt_level_strict_acc", "max_drop": 0.05, "significance": 0.05},
                                     {"metric": "mmlu.acc", "min": 0.3}]})
    planned, reason = _plan(Task(), policy, ["base", "tuned"], "base")
    # The sequence is two-sided at 2 * EARLY_SHARE of the gate's level (EARLY_SHARE of it per side), the final
    # fixed-sample look gets the rest per side; a gate without a level stops early at DEFAULT_ALPHA's share.
    assert reason is None and [(p.checkpoint, p.alpha) for p in planned] == [("tuned", pytest.approx(0.02))] * 2


def test_a_stopped_relative_gate_states_its_linear_form():
    from evalkit.gate import evaluate_policy

    comparison = _comparison(stopped=True)
    comparison["sequential"]["tasks"]["mmlu"]["gates"][0].update(
        {"gate": "mmlu.acc max_relative_drop 0.1", "operator": "max_relative_drop", "threshold": 0.1,
         "decision_threshold": 0.0, "quantity": "drop - 0.1*baseline", "cs_low": 0.02, "cs_high": 0.3})
    policy = parse_policy({"gates": [{"metric": "mmlu.acc", "max_relative_drop": 0.1}]})
    check = evaluate_policy(policy, comparison).checks[0]
    assert check.status == "fail" and "drop - 0.1*baseline in [0.020, 0.300] entirely above 0 after" in check.message


def test_sequence_bounds_are_cut_to_what_the_baseline_mean_allows():
    """As the fixed-sample gate's (issue 23): a gain from a baseline at 0.01 cannot exceed 0.99."""
    gain = _gate("min_gain", 0.2)
    base = np.zeros(60)
    base[:3] = 1.0  # the baseline's mean is 0.05
    tuned = np.ones(60)
    state = decide(gain, gain.observations(tuned, base), 1000, baseline_mean=float(base.mean()))
    uncut = decide(gain, gain.observations(tuned, base), 1000)
    assert uncut.high > 0.95 and state.high == pytest.approx(0.95) and state.low == uncut.low
    drop = _gate("max_relative_drop", 0.1)
    state = decide(drop, drop.observations(tuned, base), 1000, baseline_mean=0.05)
    least, most = sorted(drop.observations(np.array([0.0, 1.0]), np.array([0.05, 0.05])))
    assert least - 1e-12 <= state.low <= state.high <= most + 1e-12
