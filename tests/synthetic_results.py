"""Synthetic EvalResults of three checkpoints for comparison, report and gate tests.

``python tests/synthetic_results.py`` regenerates ``tests/fixtures/comparison_example.json`` (what
``build_comparison(make_results(), n_resamples=200)`` returns). Tasks:

* ``mmlu`` (general, log-likelihood): subjects and categories, ``correct`` + ``scores["acc"]``;
* ``mmlu_generative`` (general, ``settings["variant_of"] = "mmlu"``): exact_match, and parse failures in
  ``extra["parse_failed"]`` as the lm_eval evaluator stores them;
* ``ifeval`` (general): prompt-level accuracy per sample, instruction-level accuracy as a corpus metric;
  both general evaluators are the ``synthetic_lm_eval`` stand-in registered here (so the fixture does
  not change when the real lm_eval evaluator does);
* ``voc_sample`` (domain): string label paths, path accuracy, invalid rate, leaf macro F1 through the
  ``resample_metrics`` hook of the small ``synthetic_voc`` evaluator registered here.

Checkpoints: ``base``; ``tuned`` (domain up, general down, generative MMLU collapses through parse
failures = format forgetting); ``mix`` (domain up, general mostly kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from evalkit.evaluators.base import MetricSpec, register_evaluator
from evalkit.records import CheckpointInfo, EvalResult, SampleRecord, TaskResult

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "comparison_example.json"

SUBJECTS = {"anatomy": "stem", "astronomy": "stem", "philosophy": "humanities", "world_religions": "humanities"}
INSTRUCTIONS = ["punctuation:no_comma", "length_constraints:number_words", "detectable_format:title",
                "change_case:english_lowercase", "keywords:existence"]
LEAVES = ["Billing > Fees > Late fee", "Billing > Fees > Overdraft", "Account > Access > Locked out",
          "Account > Access > Password", "Card > Fraud > Unknown charge", "Card > Delivery > Not received"]

# Per checkpoint: P(correct) per task (and parse failure rate / instruction pass rate where relevant).
PROFILES = {
    "base": {"mmlu": 0.62, "gen": 0.55, "parse_fail": 0.03, "ifeval": 0.55, "inst": 0.7, "voc": 0.30, "invalid": 0.20},
    "tuned": {"mmlu": 0.64, "gen": 0.12, "parse_fail": 0.75, "ifeval": 0.30, "inst": 0.5, "voc": 0.88, "invalid": 0.02},
    "mix": {"mmlu": 0.61, "gen": 0.52, "parse_fail": 0.05, "ifeval": 0.52, "inst": 0.68, "voc": 0.82, "invalid": 0.03},
}


@register_evaluator
class SyntheticVocEvaluator:
    """Just enough of an evaluator for comparisons: the optional ``resample_metrics`` hook."""

    name = "synthetic_voc"
    version = "1"
    needs = frozenset({"generate_until"})
    metric_specs = {
        "path_acc": MetricSpec(level="sample", score="correct", binary=True),
        "invalid_rate": MetricSpec(higher_is_better=False, level="sample", binary=True),
        "leaf_macro_f1": MetricSpec(level="corpus", bounds=(0.0, 1.0)),
        "class/recall": MetricSpec(level="sample", score="correct", group_by="group", binary=True),
        "frequency/*": MetricSpec(level="corpus"),
    }

    @classmethod
    def resample_metrics(cls, records, names, indices):
        true = np.array([LEAVES.index(r.target) for r in records])
        pred = np.array([LEAVES.index(r.prediction) if r.prediction in LEAVES else -1 for r in records])
        return {name: np.array([_macro_f1(true[row], pred[row]) for row in np.atleast_2d(indices)])
                for name in names if name == "leaf_macro_f1"}


@register_evaluator
class SyntheticGeneralEvaluator:
    """Stands in for the lm_eval evaluator: pooled instruction-level accuracy and parse failures on resamples."""

    name = "synthetic_lm_eval"
    version = "1"
    needs = frozenset({"loglikelihood", "generate_until"})
    metric_specs = {
        "acc": MetricSpec(level="sample", bounds=(0.0, 1.0), binary=True),
        "exact_match": MetricSpec(level="sample", binary=True),
        "parse_failure_rate": MetricSpec(higher_is_better=False, level="sample", score="extra.parse_failed", binary=True),
        "prompt_level_strict_acc": MetricSpec(level="sample", binary=True),
        "inst_level_strict_acc": MetricSpec(level="sample", unit="element", cluster="sample_id", binary=True,
                                              bounds=(0.0, 1.0)),
        "subject/acc": MetricSpec(level="sample", score="correct", group_by="group", binary=True),
        "category/acc": MetricSpec(level="sample", score="correct", group_by="extra.category", binary=True),
        "instruction/acc": MetricSpec(level="sample", score="scores.inst_level_strict_acc", unit="element",
                                      group_by="extra.instruction_ids", binary=True),
    }

    @classmethod
    def resample_metrics(cls, records, names, indices):
        idx = np.atleast_2d(indices)
        out = {}
        if "inst_level_strict_acc" in names:
            passed = np.array([float(sum(r.scores["inst_level_strict_acc"])) for r in records])
            counts = np.array([float(len(r.scores["inst_level_strict_acc"])) for r in records])
            out["inst_level_strict_acc"] = passed[idx].sum(axis=1) / counts[idx].sum(axis=1)
        if "parse_failure_rate" in names:
            failed = np.array([float(r.extra.get("parse_failed", False)) for r in records])
            out["parse_failure_rate"] = failed[idx].mean(axis=1)
        return out


def _macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    k = len(LEAVES)
    hit = true == pred
    tp = np.bincount(true[hit], minlength=k)
    support = np.bincount(true, minlength=k)
    predicted = np.bincount(pred[pred >= 0], minlength=k)
    denom = support + predicted
    present = support > 0
    return float(np.mean(2 * tp[present] / denom[present])) if present.any() else float("nan")


def _outcomes(difficulty: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Correct when the sample is easy enough, with 5 % noise: outcomes correlate across checkpoints like real ones."""
    return (difficulty < p) ^ (rng.random(difficulty.size) < 0.05)


def _mmlu(profile: dict, rng: np.random.Generator, difficulty: np.ndarray, generative: bool) -> TaskResult:
    subjects = list(SUBJECTS)
    records = []
    parse_fail = rng.random(difficulty.size) < profile["parse_fail"] if generative else np.zeros(difficulty.size, bool)
    correct = _outcomes(difficulty, profile["gen" if generative else "mmlu"], rng) & ~parse_fail
    for i, ok in enumerate(correct):
        subject = subjects[i % len(subjects)]
        target = "ABCD"[i % 4]
        wrong = "ABCD"[(i + 1) % 4]
        prediction = ("[invalid]" if parse_fail[i] else target if ok else wrong) if generative else (target if ok else wrong)
        scores = {"exact_match": float(ok)} if generative else {"acc": float(ok)}
        extra = {"category": SUBJECTS[subject]} | ({"parse_failed": bool(parse_fail[i])} if generative else {})
        question = f"Question {i} about {subject.replace('_', ' ')}?"
        if i == 3:
            question += " <script>alert('untrusted')</script> & <b>bold</b>"
        records.append(SampleRecord(sample_id=f"q{i}", target=target, prediction=prediction, correct=bool(ok),
                                    scores=scores, group=subject, input=question, extra=extra))
    metric = "exact_match" if generative else "acc"
    metrics = {metric: float(correct.mean())}
    if generative:
        metrics["parse_failure_rate"] = float(parse_fail.mean())
    breakdowns = {"subject": _group_means(records, lambda r: r.group, metric),
                  "category": _group_means(records, lambda r: r.extra["category"], metric)}
    return TaskResult(task="mmlu_generative" if generative else "mmlu", evaluator="synthetic_lm_eval", evaluator_version="1",
                      config_hash="gen0001" if generative else "mmlu0001", metrics=metrics, n_samples=len(records),
                      axis="general", primary_metric=metric,
                      higher_is_better={metric: True} | ({"parse_failure_rate": False} if generative else {}),
                      breakdowns=breakdowns, settings={"variant_of": "mmlu"} if generative else {"num_fewshot": 0},
                      timing={"seconds": 1.5}, samples=records)


def _group_means(records, key, metric) -> dict:
    groups: dict[str, list[float]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r.scores.get(metric, float(r.correct)))
    return {k: {"acc": float(np.mean(v)), "n": len(v)} for k, v in sorted(groups.items())}


def _ifeval(profile: dict, rng: np.random.Generator, difficulty: np.ndarray) -> TaskResult:
    records, per_instruction = [], {}
    for i in range(difficulty.size):
        ids = [INSTRUCTIONS[(i + j) % len(INSTRUCTIONS)] for j in range(1 + i % 3)]
        passed = [bool(difficulty[i] + 0.1 * j < profile["inst"]) for j in range(len(ids))]
        prompt_ok = bool(all(passed) and difficulty[i] < profile["ifeval"] + 0.2)
        for inst, ok in zip(ids, passed):
            per_instruction.setdefault(inst, []).append(ok)
        records.append(SampleRecord(sample_id=str(1000 + i), target=None, prediction=f"response {i}",
                                    correct=prompt_ok, scores={"prompt_level_strict_acc": float(prompt_ok),
                                                               "inst_level_strict_acc": passed},
                                    input=f"Write {i} words without commas.", extra={"instruction_ids": ids}))
    all_passed = [ok for r in records for ok in r.scores["inst_level_strict_acc"]]
    metrics = {"prompt_level_strict_acc": float(np.mean([r.correct for r in records])),
               "inst_level_strict_acc": float(np.mean(all_passed))}
    breakdowns = {"instruction": {k: {"acc": float(np.mean(v)), "n": len(v)} for k, v in sorted(per_instruction.items())}}
    return TaskResult(task="ifeval", evaluator="synthetic_lm_eval", evaluator_version="1", config_hash="ifeval0001",
                      metrics=metrics, n_samples=len(records), axis="general", primary_metric="prompt_level_strict_acc",
                      breakdowns=breakdowns, timing={"seconds": 4.0}, samples=records)


def _voc(profile: dict, rng: np.random.Generator, difficulty: np.ndarray) -> TaskResult:
    correct = _outcomes(difficulty, profile["voc"], rng)
    invalid = ~correct & (rng.random(difficulty.size) < profile["invalid"] / max(1e-9, 1 - profile["voc"]))
    records = []
    for i, ok in enumerate(correct):
        target = LEAVES[(i * 7) % len(LEAVES)]
        prediction = target if ok else ("Billing > ???" if invalid[i] else LEAVES[(i * 7 + 1) % len(LEAVES)])
        records.append(SampleRecord(sample_id=f"cfpb-{i}", target=target, prediction=prediction, correct=bool(ok),
                                    scores={"invalid_rate": float(invalid[i])}, group=target,
                                    input=("My card was charged twice. " * (60 if i == 5 else 1)).strip()))
    leaf_f1 = SyntheticVocEvaluator.resample_metrics(records, ["leaf_macro_f1"], np.arange(len(records)))["leaf_macro_f1"][0]
    metrics = {"path_acc": float(correct.mean()), "leaf_macro_f1": float(leaf_f1), "invalid_rate": float(invalid.mean())}
    classes = {}
    for leaf in LEAVES:
        members = [r for r in records if r.target == leaf]
        classes[leaf] = {"recall": float(np.mean([r.correct for r in members])), "n": len(members)}
    frequency = {"head": {"macro_f1": float(leaf_f1) + 0.02, "n": 100}, "tail": {"macro_f1": float(leaf_f1) - 0.05, "n": 50}}
    return TaskResult(task="voc_sample", evaluator="synthetic_voc", evaluator_version="1", config_hash="voc0001",
                      metrics=metrics, n_samples=len(records), axis="domain", primary_metric="path_acc",
                      breakdowns={"class": classes, "frequency": frequency}, timing={"seconds": 9.0}, samples=records)


def make_results(labels=("base", "tuned", "mix"), *, n_mmlu: int = 120, n_ifeval: int = 60, n_voc: int = 150) -> list[EvalResult]:
    """Three (or fewer) synthetic EvalResults with correlated per-sample outcomes (deterministic)."""
    shared = np.random.default_rng(12345)
    difficulty = {"mmlu": shared.random(n_mmlu), "ifeval": shared.random(n_ifeval), "voc": shared.random(n_voc)}
    results = []
    for k, label in enumerate(labels):
        profile, rng = PROFILES[label], np.random.default_rng(100 + k)
        tasks = {"mmlu": _mmlu(profile, rng, difficulty["mmlu"], False),
                 "mmlu_generative": _mmlu(profile, rng, difficulty["mmlu"], True),
                 "ifeval": _ifeval(profile, rng, difficulty["ifeval"]),
                 "voc_sample": _voc(profile, rng, difficulty["voc"])}
        info = CheckpointInfo(label=label, spec=f"models/{label}", kind="hf", fingerprint=f"fp-{label}",
                              note="no tuning" if label == "base" else None)
        results.append(EvalResult(checkpoint=info, versions={"evalkit": "0.1.0", "lm-eval": "0.4.13"}, tasks=tasks,
                                  created=f"2026-11-24T1{k}:00:00+00:00"))
    return results


def main() -> None:
    from evalkit._compare import build_comparison, write_comparison

    comparison = build_comparison(make_results(), notes={"tuned": "domain-only fine-tune"}, n_resamples=200)
    write_comparison(comparison, FIXTURE)
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    sys.exit(main())


def make_sweep(runs=("domain_only", "mix75", "mix90"), saves: int = 13, *, n_mmlu: int = 60, n_ifeval: int = 30,
               n_voc: int = 60) -> list[EvalResult]:
    """The base and ``saves`` Trainer saves of each run (steps 50, 100, ...): the domain rises along every run
    and the general axis falls along the first run only, as in a domain-only vs mixed sweep (deterministic)."""
    ends = {runs[0]: PROFILES["tuned"]}
    ends.update({run: PROFILES["mix"] for run in runs[1:]})
    labels, places = ["base"], {}
    for run in runs:
        for index in range(1, saves + 1):
            label = f"{run}.step{50 * index}"
            fraction = index / saves
            PROFILES[label] = {key: PROFILES["base"][key] + fraction * (ends[run][key] - PROFILES["base"][key])
                               for key in PROFILES["base"]}
            labels.append(label)
            places[label] = (run, 50 * index)
    try:
        results = make_results(tuple(labels), n_mmlu=n_mmlu, n_ifeval=n_ifeval, n_voc=n_voc)
    finally:
        for label in labels[1:]:
            del PROFILES[label]
    for result in results:
        result.checkpoint.run, result.checkpoint.step = places.get(result.checkpoint.label, (None, None))
    return results
