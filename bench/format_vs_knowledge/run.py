"""Format vs knowledge forgetting, shown on real training (issue 27, item 5).

Four checkpoints: the demo's ``base`` (``evalkit demo``'s recipe: trained from scratch on the invented
general facts, as questions answered by the option's text and as plain sentences, and on unlabelled VOC
comments), its ``domain_only`` fine-tune (600 steps on VOC labels alone, which forgets the facts) and
``voc_fact_text``: a VOC fine-tune (``--steps`` 100 at ``--lr`` 5e-4) whose batches also hold the demo's
fact sentences as plain text (``--fact-share`` 0.25) but never a question or an answer; and ``wrong_answers``:
the base's own general training questions answered in its format (one option's text) but with a wrong option
(``--wrong-steps`` 30 at ``--wrong-lr`` 5e-4). All four are
evaluated on ``demo_general`` (log-likelihood of each option's text: what the model knows) and
``demo_general_generative`` (this folder's task: the same questions, the answer written; ``variant_of:
demo_general``) and compared with ``base`` as the baseline. The comparison's ``format_vs_knowledge`` table
reads ``format`` for ``voc_fact_text`` (it still ranks the right option first but no longer stops after
it: "Quenta and billing and billing >"), ``both`` for ``domain_only`` and ``knowledge`` for ``wrong_answers``.

    nice -n 10 python bench/format_vs_knowledge/run.py --out /tmp/fvk [--fixture tests/fixtures/format_vs_knowledge]

writes ``OUT/comparison.json`` (and the report), ``OUT/summary.json`` (training, seconds, load, the table)
and prints the table; ``--fixture DIR`` also saves the records (ids and scores only) that
``tests/test_compare.py::test_format_vs_knowledge_on_the_bench_records`` compares.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATIVE_TASK = HERE / "demo_general_generative.yaml"


def fine_tune(base: Path, out: Path, sources, steps: int, lr: float, seed: int) -> dict:
    """``base`` fine-tuned ``steps`` x 64 at ``lr`` on ``sources(tokenizer)`` (``train``'s weighted sources), saved to ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalkit.demo.train import Schedule, save_checkpoint, train, training_threads

    with training_threads(1):
        model = AutoModelForCausalLM.from_pretrained(base)
        tokenizer = AutoTokenizer.from_pretrained(base)
        started = time.perf_counter()
        losses = train(model, sources(tokenizer), Schedule(steps=steps, batch_size=64, lr=lr), seed=seed, parts=2)
        seconds = time.perf_counter() - started
        save_checkpoint(model, tokenizer, out)
    return {"steps": steps, "lr": lr, "seed": seed, "seconds": round(seconds, 1),
            "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}


def voc_fact_sources(fact_share: float):
    """The demo's VOC train pairs (loss on the label path) and, as ``fact_share`` of each batch, the demo's fact
    sentences as plain text (loss on every token; no question, no answer)."""
    from evalkit.demo import general_set
    from evalkit.demo.checkpoints import Recipe, load_domain_data
    from evalkit.demo.train import Example, encode_examples

    def sources(tokenizer):
        voc = [(encode_examples(tokenizer, load_domain_data().train, "completion"), 1.0 - fact_share)]
        if fact_share <= 0:
            return voc
        facts = general_set.fact_statements(country_weight=Recipe().country_fact_weight)
        return voc + [(encode_examples(tokenizer, [Example("", t) for t in facts], "all"), fact_share)]
    return sources


def wrong_answer_sources(seed: int):
    """The base's own general training questions (``Recipe``'s count and sample), each answered in the base's
    format (one option's text) but with a wrong option drawn at random: the format rehearsed, the facts
    contradicted (loss on the answer)."""
    import random

    from evalkit.demo import general_set
    from evalkit.demo.checkpoints import Recipe
    from evalkit.demo.train import Example, encode_examples

    recipe, rng = Recipe(), random.Random(f"wrong-answers-{seed}")
    count = recipe.questions_per_fact * len(general_set.training_facts(country_weight=recipe.country_fact_weight))
    questions = general_set.train_questions(count, sample_seed=recipe.seed, country_weight=recipe.country_fact_weight)
    examples = [Example(general_set.render_question(q),
                        " " + q.options[rng.choice([i for i in range(4) if i != q.label])]) for q in questions]

    def sources(tokenizer):
        return [(encode_examples(tokenizer, examples, "completion"), 1.0)]
    return sources


def cached_fine_tune(folder: Path, base: Path, sources, steps: int, lr: float, seed: int, **recipe) -> dict:
    """:func:`fine_tune` into ``folder`` unless its ``training.json`` says it is done; the training record."""
    record = folder / "training.json"
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    training = {**fine_tune(base, folder, sources, steps, lr, seed), **recipe}
    record.write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    return training


def evaluate_all(paths: dict[str, Path], store_path: Path) -> list:
    import evalkit
    from evalkit import api
    from evalkit.demo import demo_load_options
    from evalkit.demo.train import torch_threads

    import dataclasses

    tasks = f"demo_general,{GENERATIVE_TASK}"
    options = api.load_options(**dataclasses.asdict(demo_load_options()))
    results = []
    with torch_threads(1), api.open_store(store_path) as store:
        for label, path in paths.items():
            checkpoint = api.as_checkpoint(str(path), label=label, options=options)
            results.append(evalkit.evaluate(checkpoint, tasks, store=store))
    return results


def save_fixture(results: list, folder: Path) -> None:
    """The records the test compares, cut to what the comparison reads (ids, correct, scores)."""
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        data = result.to_dict()
        data["checkpoint"]["spec"] = result.checkpoint.label  # not this machine's folders
        for task in data["tasks"].values():
            task["settings"] = {k: v for k, v in task["settings"].items() if k == "variant_of"}
            task["samples"] = [{"sample_id": r["sample_id"], "correct": r["correct"], "scores": r["scores"],
                                "extra": {k: v for k, v in (r.get("extra") or {}).items() if k == "parse_failed"}}
                               for r in task["samples"]]
        (folder / f"{result.checkpoint.label}.json").write_text(json.dumps(data, sort_keys=True) + "\n",
                                                               encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=None, help="demo checkpoint cache (evalkit demo --cache-dir)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--fact-share", type=float, default=0.25, help="share of plain fact sentences per batch")
    parser.add_argument("--wrong-steps", type=int, default=30, help="steps of the wrong-answer fine-tune")
    parser.add_argument("--wrong-lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fixture", type=Path, default=None)
    args = parser.parse_args(argv)

    import evalkit
    from evalkit.demo.checkpoints import ensure_checkpoints

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    demo = ensure_checkpoints(args.cache_dir, log=lambda line: print(line, file=sys.stderr))
    brief = args.out / f"voc_fact_text-{args.steps}-{args.lr:g}-{args.fact_share:g}-{args.seed}"
    wrong = args.out / f"wrong_answers-{args.wrong_steps}-{args.wrong_lr:g}-{args.seed}"
    training = {
        "voc_fact_text": cached_fine_tune(brief, demo["base"], voc_fact_sources(args.fact_share), args.steps,
                                          args.lr, args.seed, fact_share=args.fact_share),
        "wrong_answers": cached_fine_tune(wrong, demo["base"], wrong_answer_sources(args.seed), args.wrong_steps,
                                          args.wrong_lr, args.seed)}
    paths = {"base": demo["base"], "domain_only": demo["domain_only"], "voc_fact_text": brief, "wrong_answers": wrong}
    results = evaluate_all(paths, args.out / "store.sqlite")
    comparison = evalkit.compare(*results, baseline="base")
    comparison.write(args.out)
    if args.fixture is not None:
        save_fixture(results, args.fixture)
    rows = json.loads((args.out / "comparison.json").read_text(encoding="utf-8"))["format_vs_knowledge"]
    summary = {"training": training, "seconds_total": round(time.perf_counter() - started, 1),
               "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
               "format_vs_knowledge": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for row in rows:
        print(f"{row['checkpoint']:>13}: log-likelihood acc {row['baseline_loglik_acc']:.3f} -> {row['loglik_acc']:.3f} "
              f"(p {row['loglik_p_value']:.2g}); written acc {row['baseline_generative_acc']:.3f} -> "
              f"{row['generative_acc']:.3f}; parse failures {row['baseline_parse_failure_rate']:.3f} -> "
              f"{row['parse_failure_rate']:.3f}: {row['diagnosis']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
