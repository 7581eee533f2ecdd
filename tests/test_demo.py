"""The demo: embedded general set, tokenizer, real (tiny) training, checkpoint cache, end-to-end run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evalkit.demo import general_set as gs
from evalkit.demo.checkpoints import Recipe
from evalkit.demo.train import Example, ModelShape, Schedule, lr_factor

REPO = Path(__file__).resolve().parents[1]
TINY_SHAPE = ModelShape(hidden=32, layers=1, heads=2, mlp=64, max_positions=128)


# ------------------------------------------------------------------------------------ general set

def test_general_set_is_deterministic_and_matches_the_committed_file():
    assert gs.test_questions() == gs.test_questions()
    assert gs.train_questions(500) == gs.train_questions(500)
    assert gs.train_questions(500) != gs.train_questions(500, sample_seed=1)
    committed = (REPO / "evalkit" / "tasks" / "data" / "demo_general" / "test.jsonl").read_text(encoding="utf-8")
    assert committed == gs.test_file_text(), "regenerate with: python -m evalkit.demo.general_set > evalkit/tasks/data/demo_general/test.jsonl"


def test_general_set_shape_and_balanced_answers():
    questions = gs.test_questions()
    assert len(questions) == 320 and len({q.fact_id for q in questions}) == 320
    assert sorted(sum(q.label == k for q in questions) for k in range(4)) == [80, 80, 80, 80]
    for q in questions:
        assert len(set(q.options)) == 4


def test_test_option_sets_never_appear_in_training():
    facts = {f.fact_id: f for f in gs.build_facts()}
    test_sets = {q.fact_id: frozenset(q.options) for q in gs.test_questions()}
    train = gs.train_questions(3000, country_weight=3)
    assert {q.fact_id for q in train} == set(test_sets)
    for q in train:
        assert q.options[q.label] == facts[q.fact_id].answer
        assert frozenset(q.options) != test_sets[q.fact_id], q


def test_lm_eval_task_renders_exactly_the_trained_prompt():
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(REPO / "evalkit" / "tasks" / "lm_eval" / "demo_general"), include_defaults=False)
    task = get_task_dict(["demo_general"], manager)["demo_general"]
    docs = list(task.test_docs())
    assert [task.doc_to_text(d) for d in docs] == [gs.render_question(q) for q in gs.test_questions()]
    assert [task.doc_to_target(d) for d in docs] == [q.label for q in gs.test_questions()]
    assert [task.doc_to_choice(d) for d in docs] == [list(q.options) for q in gs.test_questions()]


def test_train_questions_rejects_negative_count():
    with pytest.raises(ValueError, match="count must be >= 0"):
        gs.train_questions(-1)


def test_country_facts_are_repeated_by_their_weight_in_questions_and_sentences():
    from collections import Counter

    def per_relation(fact_ids):
        return Counter(fact_id.split("-")[0] for fact_id in fact_ids)

    questions = per_relation(q.fact_id for q in gs.train_questions(20 * 480, country_weight=3))
    assert questions == {"capital": 1200, "language": 1200, "export": 1200, "emblem": 1200, "category": 4800}
    sentences = gs.fact_statements(country_weight=3)
    assert len(sentences) == 480 and sentences.count("The capital of Velmora is Quenta.") == 3
    assert gs.fact_statements() == sorted(set(sentences), key=sentences.index)  # weight 1: each fact once, same order
    assert gs.train_questions(320 * 3) == gs.train_questions(320 * 3, country_weight=1)
    with pytest.raises(ValueError, match="country_weight must be >= 1"):
        gs.train_questions(10, country_weight=0)
    with pytest.raises(ValueError, match="country_fact_weight must be >= 1"):
        Recipe(country_fact_weight=0)


# ------------------------------------------------------------------------------------ tokenizer

@pytest.fixture(scope="module")
def domain():
    from evalkit.demo.domain import voc_domain_data

    return voc_domain_data()


@pytest.fixture(scope="module")
def tokenizer(domain):
    from evalkit.demo.checkpoints import _general_examples, _vocabulary_texts
    from evalkit.demo.train import build_tokenizer

    mcq, statements = _general_examples(Recipe(questions_per_fact=1))
    return build_tokenizer(_vocabulary_texts(mcq, statements, domain))


def test_tokenizer_covers_voc_and_general_vocab_and_round_trips(tokenizer, domain):
    texts = [e.prompt + e.completion for e in domain.train] + domain.test_prompts
    texts += domain.train_texts  # the base model's generic text
    texts += [gs.render_question(q) + " " + q.options[q.label] for q in gs.test_questions()] + gs.fact_statements()
    unk = tokenizer.unk_token_id
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and unk not in ids, text
        assert tokenizer.decode(ids[1:]) == " ".join(text.split(" ")), text
    assert 300 < len(tokenizer) < 3000


def test_every_answer_option_is_one_token_after_the_prompt(tokenizer):
    """demo_general scores each option's text; one token each keeps the options comparable."""
    for question in gs.test_questions():
        prompt = gs.render_question(question)
        context = tokenizer(prompt)["input_ids"]
        for option in question.options:
            whole = tokenizer(prompt + " " + option)["input_ids"]
            assert whole[:len(context)] == context and len(whole) == len(context) + 1, option


# ------------------------------------------------------------------------------------ training

def test_lr_schedule_warms_up_then_decays_to_the_final_fraction():
    schedule = Schedule(steps=200, warmup=0.05, final_lr_fraction=0.1)
    factors = [lr_factor(s, schedule) for s in range(200)]
    assert factors[9] == pytest.approx(1.0) and factors[0] == pytest.approx(0.1)
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    with pytest.raises(ValueError, match="warmup"):
        Schedule(steps=10, warmup=1.5)


def _short_run(tokenizer, seed: int):
    from evalkit.demo.train import build_model, encode_examples, train, training_threads

    questions = gs.train_questions(64)
    examples = [Example(gs.render_question(q), " " + q.answer_letter) for q in questions]
    with training_threads(1):
        model = build_model(tokenizer, TINY_SHAPE, seed=seed)
        data = encode_examples(tokenizer, examples, "all")
        losses = train(model, [(data, 1.0)], Schedule(steps=25, batch_size=16, lr=1e-2), seed=seed)
    return losses, model


def test_short_training_decreases_loss_and_is_bit_deterministic(tokenizer):
    losses_a, model_a = _short_run(tokenizer, seed=0)
    losses_b, model_b = _short_run(tokenizer, seed=0)
    assert sum(losses_a[-5:]) / 5 < 0.7 * sum(losses_a[:5]) / 5
    assert losses_a == losses_b
    state_b = model_b.state_dict()
    assert all((value == state_b[key]).all() for key, value in model_a.state_dict().items())
    losses_c, _ = _short_run(tokenizer, seed=1)
    assert losses_c != losses_a


@pytest.mark.parametrize("loss_on", ["completion", "all"])
def test_labelled_loss_equals_the_models_own_loss_and_gradients(tokenizer, loss_on):
    """Logits only where there are labels: the same loss and gradients as the full forward, padding included."""
    import torch

    from evalkit.demo.train import build_model, encode_examples, labelled_loss

    questions = gs.train_questions(6)
    examples = [Example(gs.render_question(q), " " + q.options[q.label]) for q in questions]
    examples.append(Example("", "The capital of Velmora is Quenta."))  # shorter: padded in the batch
    batch = encode_examples(tokenizer, examples, loss_on)
    assert (batch["attention_mask"] == 0).any()
    model = build_model(tokenizer, TINY_SHAPE, seed=0)
    gradients = []
    for loss_fn in (lambda: model(**batch).loss, lambda: labelled_loss(model, batch)):
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        gradients.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (full, full_grads), (labelled, labelled_grads) = gradients
    assert torch.allclose(full, labelled, rtol=1e-6, atol=0)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(full_grads, labelled_grads))


def test_micro_batches_by_length_hold_every_row_once_and_add_up_to_the_batch_loss(tokenizer):
    import torch

    from evalkit.demo.train import _by_length, build_model, encode_examples, labelled_loss

    questions = gs.train_questions(4)
    examples = [Example(gs.render_question(q), " " + q.options[q.label]) for q in questions]
    examples += [Example("", s) for s in gs.fact_statements()[:4]]  # short rows
    batch = encode_examples(tokenizer, examples, "all")
    parts = _by_length(batch, 2)
    lengths = [p["attention_mask"].sum(dim=1) for p in parts]
    assert sum(len(p["input_ids"]) for p in parts) == len(examples)
    assert lengths[0].max() <= lengths[1].min()  # the short rows together, the long rows together
    assert all(p["input_ids"].shape[1] == int(length.max()) for p, length in zip(parts, lengths))  # no padding column
    assert parts[0]["input_ids"].shape[1] < batch["input_ids"].shape[1]
    model = build_model(tokenizer, TINY_SHAPE, seed=0)
    tokens = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        whole = labelled_loss(model, batch)
        summed = sum(labelled_loss(model, p, tokens=tokens) for p in parts)
    assert torch.allclose(whole, summed, rtol=1e-6, atol=0)


def test_training_refuses_more_parts_than_rows_in_a_batch(tokenizer):
    from evalkit.demo.train import build_model, encode_examples, train

    data = encode_examples(tokenizer, [Example("", s) for s in gs.fact_statements()[:8]], "all")
    model = build_model(tokenizer, TINY_SHAPE, seed=0)
    with pytest.raises(ValueError, match="parts must be between 1 and the batch size 4, got 5"):
        train(model, [(data, 1.0)], Schedule(steps=1, batch_size=4), parts=5)


def test_training_shows_a_bar_with_steps_loss_and_eta(tokenizer, monkeypatch, capsys):
    monkeypatch.setenv("EVALKIT_PROGRESS", "1")
    _short_run(tokenizer, seed=0)
    err = capsys.readouterr().err
    assert "training: 100%" in err and "25/25" in err and "loss=" in err and "<00:" in err


def test_encode_examples_trains_only_on_the_completion(tokenizer):
    from evalkit.demo.train import encode_examples

    batch = encode_examples(tokenizer, [Example("Comment: late parcel\nLabel:", " Delivery > Late delivery")])
    labelled = [t for t, l in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist()) if l != -100]
    assert tokenizer.decode(labelled) == " Delivery > Late delivery</s>"
    with pytest.raises(ValueError, match="loss_on"):
        encode_examples(tokenizer, [], "prompt")


# ------------------------------------------------------------------------------------ cache

def test_cache_key_changes_with_the_recipe(domain):
    from evalkit.demo.checkpoints import recipe_key

    key = recipe_key(Recipe(), domain)
    assert key == recipe_key(Recipe(), domain)
    assert key != recipe_key(Recipe(seed=1), domain)
    assert key != recipe_key(replace(Recipe(), tune=Schedule(steps=401, lr=2e-3)), domain)
    assert key != recipe_key(Recipe(), replace(domain, fingerprint="other data"))
    with pytest.raises(ValueError, match="mix_domain_fraction"):
        Recipe(mix_domain_fraction=1.0)


def test_demo_runs_share_the_run_key_of_a_plain_compare():
    """The demo stores its results under the same key a later `evalkit compare` of its checkpoints uses."""
    from evalkit.checkpoints import LoadOptions
    from evalkit.demo import demo_load_options

    assert demo_load_options().output_settings() == LoadOptions().output_settings() == {}


# ------------------------------------------------------------------------------------ README table

def _demo_like_comparison() -> dict:
    def row(task, metric, label, value, base, p=None, ci=(None, None), n=None):
        return {"task": task, "metric": metric, "checkpoint": label, "value": value, "baseline_value": base,
                "delta": None if label == "base" else value - base, "p_value": p, "ci_low": ci[0], "ci_high": ci[1],
                "n": n}
    metrics = [row("demo_general", "acc", "base", 0.95, 0.95, ci=(0.92, 0.97), n=320),
               row("demo_general", "acc", "domain_only", 0.40, 0.95, p=3.2e-40, ci=(0.35, 0.45), n=320),
               row("demo_general", "acc", "mixed_75_25", 0.94, 0.95, p=0.62, ci=(0.91, 0.96), n=320)]
    metrics += [row("demo_voc", "leaf_macro_f1", label, value, 0.0) for label, value in
                (("base", 0.0), ("domain_only", 0.96), ("mixed_75_25", 0.961))]
    checks = [{"checkpoint": "domain_only", "status": "fail", "message": "dropped 0.550 (> 0.100), significant"},
              {"checkpoint": "mixed_75_25", "status": "pass", "message": "dropped 0.010 (<= 0.100)"}]
    return {"baseline": "base", "checkpoints": [{"label": c} for c in ("base", "domain_only", "mixed_75_25")],
            "metrics": metrics, "verdict": {"status": "fail", "checks": checks}}


def test_demo_table_shows_each_checkpoint_with_interval_change_and_verdict():
    from evalkit.demo.summary import demo_summary, demo_table

    table = demo_table(demo_summary(_demo_like_comparison())).splitlines()
    assert table[0].startswith("| checkpoint | general accuracy, 95% CI (`demo_general`, 320 questions) |")
    assert table[2] == "| base | 0.95 [0.92, 0.97] | 0.00 | baseline |"
    assert table[3] == ("| domain_only | 0.40 [0.35, 0.45] (-0.55, p < 1e-6) | 0.96 | "
                        "**FAIL**: dropped 0.550 (> 0.100), significant |")
    assert table[4] == "| mixed_75_25 | 0.94 [0.91, 0.96] (-0.01, p = 0.62) | 0.96 | **PASS** |"


def test_readme_shows_the_table_of_the_recorded_demo_run():
    """The README's table is generated from bench/demo/summary.json, which a real `evalkit demo` wrote."""
    from evalkit.demo.summary import demo_table, readme_table

    summary = json.loads((REPO / "bench" / "demo" / "summary.json").read_text(encoding="utf-8"))
    assert readme_table((REPO / "README.md").read_text(encoding="utf-8")) == demo_table(summary), (
        "regenerate: python -m evalkit.demo.summary reports/demo/comparison.json > bench/demo/summary.json, "
        "then paste demo_table() between the README's demo-table markers")


def test_a_training_worker_exits_when_its_parent_is_gone(tmp_path):
    """A killed `evalkit demo` cannot clean up its workers; each one notices and stops by itself."""
    import os
    import subprocess
    import sys

    job = tmp_path / "job.pt"
    os.mkfifo(job)  # opening it blocks until a writer comes: without the watch the worker would wait forever
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = {**os.environ, "EVALKIT_DEMO_PARENT": str(gone.pid), "PYTHONPATH": str(REPO)}
    worker = subprocess.run([sys.executable, "-m", "evalkit.demo._worker", str(job)], env=env, timeout=120,
                            capture_output=True)
    assert worker.returncode == 1 and not (tmp_path / "job.pt.json").exists()


@pytest.mark.slow
def test_checkpoints_are_trained_in_parallel_as_one_process_would_then_loaded_from_the_cache(tmp_path, monkeypatch):
    """Two cores train the base's two batch halves in two processes (gradients summed through shared memory)
    and the two fine-tunes side by side; the weights must be those of one process doing it all, bit for bit.
    A second call loads the cached checkpoints (one tiny build serves both properties: each build starts
    worker processes, the bulk of its time)."""
    import os

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalkit.demo import checkpoints, exchange

    two_cores = (os.cpu_count() or 1) >= 2
    exchanges = []

    class Counting(exchange.GradientExchange):
        def sum_gradients(self, parameters, loss):
            exchanges.append(self.rank)
            return super().sum_gradients(parameters, loss)

    monkeypatch.setattr(exchange, "GradientExchange", Counting)
    recipe = Recipe(shape=TINY_SHAPE, base=Schedule(steps=4, batch_size=8), tune=Schedule(steps=3, batch_size=8),
                    questions_per_fact=1)
    parallel = checkpoints.ensure_checkpoints(tmp_path / "parallel", recipe=recipe, log=lambda _: None)
    assert list(parallel) == ["base", "domain_only", "mixed_75_25"]
    for path in parallel.values():
        AutoModelForCausalLM.from_pretrained(path)
        assert AutoTokenizer.from_pretrained(path).decode([]) == ""
    summary = json.loads((parallel["base"].parent / "demo-recipe.json").read_text())
    assert summary["phases"]["domain_only"]["steps"] == 3
    if two_cores:
        assert exchanges == [0] * 4  # the base's steps went through the exchange (this process is rank 0)

    with monkeypatch.context() as patch:
        def must_not_train(*args, **kwargs):
            raise AssertionError("cached checkpoints were retrained")

        patch.setattr(checkpoints, "build_checkpoints", must_not_train)
        assert checkpoints.ensure_checkpoints(tmp_path / "parallel", recipe=recipe, log=lambda _: None) == parallel
        with pytest.raises(AssertionError, match="retrained"):
            checkpoints.ensure_checkpoints(tmp_path / "parallel", recipe=recipe, retrain=True, log=lambda _: None)
    assert [p.name for p in (tmp_path / "parallel").iterdir()] == [parallel["base"].parent.name]  # nothing half-built

    if not two_cores:
        pytest.skip("needs two cores to compare the parallel path with one process")
    sequential = checkpoints.ensure_checkpoints(tmp_path / "sequential", recipe=recipe, log=lambda _: None, processes=1)
    for name in ("base", "domain_only", "mixed_75_25"):
        a, b = (load_file(paths[name] / "model.safetensors") for paths in (parallel, sequential))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name


@pytest.mark.parametrize("processes", [0, -1, 1.5, True, "2"])
def test_a_bad_process_count_is_refused_before_training(tmp_path, processes):
    from evalkit.demo import checkpoints

    with pytest.raises(ValueError, match="processes must be a positive integer or None"):
        checkpoints.build_checkpoints(tmp_path, processes=processes)
    with pytest.raises(ValueError, match="processes must be a positive integer or None"):
        checkpoints.ensure_checkpoints(tmp_path / "cache", processes=processes, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []
