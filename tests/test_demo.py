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
    committed = (REPO / "tasks" / "data" / "demo_general" / "test.jsonl").read_text(encoding="utf-8")
    assert committed == gs.test_file_text(), "regenerate with: python -m evalkit.demo.general_set > tasks/data/demo_general/test.jsonl"


def test_general_set_shape_and_balanced_answers():
    questions = gs.test_questions()
    assert len(questions) == 100 and len({q.fact_id for q in questions}) == 100
    assert sorted(sum(q.label == k for q in questions) for k in range(4)) == [25, 25, 25, 25]
    for q in questions:
        assert len(set(q.options)) == 4


def test_test_option_sets_never_appear_in_training():
    facts = {f.fact_id: f for f in gs.build_facts()}
    test_sets = {q.fact_id: frozenset(q.options) for q in gs.test_questions()}
    train = gs.train_questions(3000)
    assert {q.fact_id for q in train} == set(test_sets)
    for q in train:
        assert q.options[q.label] == facts[q.fact_id].answer
        assert frozenset(q.options) != test_sets[q.fact_id], q


def test_lm_eval_task_renders_exactly_the_trained_prompt():
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(REPO / "tasks" / "lm_eval" / "demo_general"), include_defaults=False)
    task = get_task_dict(["demo_general"], manager)["demo_general"]
    docs = list(task.test_docs())
    assert [task.doc_to_text(d) for d in docs] == [gs.render_question(q) for q in gs.test_questions()]
    assert [task.doc_to_target(d) for d in docs] == [q.label for q in gs.test_questions()]


def test_train_questions_rejects_negative_count():
    with pytest.raises(ValueError, match="count must be >= 0"):
        gs.train_questions(-1)


# ------------------------------------------------------------------------------------ tokenizer

@pytest.fixture(scope="module")
def domain():
    from evalkit.demo.domain import voc_domain_data

    return voc_domain_data()


@pytest.fixture(scope="module")
def tokenizer(domain):
    from evalkit.demo.checkpoints import _general_examples, _vocabulary_texts
    from evalkit.demo.train import build_tokenizer

    mcq, statements = _general_examples(Recipe(train_questions=400))
    return build_tokenizer(_vocabulary_texts(mcq, statements, domain))


def test_tokenizer_covers_voc_and_general_vocab_and_round_trips(tokenizer, domain):
    texts = [e.prompt + e.completion for e in domain.train] + domain.test_prompts
    texts += domain.train_texts  # the base model's generic text
    texts += [gs.render_question(q) + " " + q.answer_letter for q in gs.test_questions()] + gs.fact_statements()
    unk = tokenizer.unk_token_id
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and unk not in ids, text
        assert tokenizer.decode(ids[1:]) == " ".join(text.split(" ")), text
    assert 300 < len(tokenizer) < 3000


def test_answer_letters_are_single_tokens_after_the_prompt(tokenizer):
    prompt = gs.render_question(gs.test_questions()[0])
    context = tokenizer(prompt)["input_ids"]
    for letter in gs.LETTERS:
        whole = tokenizer(prompt + " " + letter)["input_ids"]
        assert whole[:len(context)] == context and len(whole) == len(context) + 1


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


def test_checkpoints_are_built_once_then_loaded_from_the_cache(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalkit.demo import checkpoints

    recipe = Recipe(shape=TINY_SHAPE, base=Schedule(steps=3, batch_size=8), tune=Schedule(steps=2, batch_size=8),
                    train_questions=100)
    paths = checkpoints.ensure_checkpoints(tmp_path, recipe=recipe, log=lambda _: None)
    assert list(paths) == ["base", "domain_only", "mixed_75_25"]
    for path in paths.values():
        AutoModelForCausalLM.from_pretrained(path)
        assert AutoTokenizer.from_pretrained(path).decode([]) == ""
    summary = json.loads((paths["base"].parent / "demo-recipe.json").read_text())
    assert summary["phases"]["domain_only"]["steps"] == 2

    def must_not_train(*args, **kwargs):
        raise AssertionError("cached checkpoints were retrained")

    monkeypatch.setattr(checkpoints, "build_checkpoints", must_not_train)
    assert checkpoints.ensure_checkpoints(tmp_path, recipe=recipe, log=lambda _: None) == paths
    with pytest.raises(AssertionError, match="retrained"):
        checkpoints.ensure_checkpoints(tmp_path, recipe=recipe, retrain=True, log=lambda _: None)
    assert [p.name for p in tmp_path.iterdir()] == [paths["base"].parent.name]  # no half-built folder left


# ------------------------------------------------------------------------------------ end to end

def _metric(comparison: dict, task: str, metric: str, checkpoint: str) -> float:
    rows = [r for r in comparison["metrics"] if (r["task"], r["metric"], r["checkpoint"]) == (task, metric, checkpoint)]
    assert len(rows) == 1, (task, metric, checkpoint)
    return rows[0]["value"]


@pytest.mark.slow
def test_full_demo_shows_forgetting_and_the_mix_keeps_general_accuracy(tmp_path, store_path):
    from evalkit.demo import run_demo

    out = tmp_path / "report"
    code = run_demo(out=out, cache_dir=tmp_path / "cache", retrain=False, store_path=str(store_path))
    comparison = json.loads((out / "comparison.json").read_text())
    general = {cp: _metric(comparison, "demo_general", "acc", cp) for cp in ("base", "domain_only", "mixed_75_25")}
    domain = {cp: _metric(comparison, "demo_voc", "leaf_macro_f1", cp) for cp in ("base", "domain_only", "mixed_75_25")}
    assert general["domain_only"] < general["base"] - 0.2, general
    assert domain["domain_only"] > domain["base"] + 0.2, domain
    assert general["mixed_75_25"] >= 0.8 * general["base"], general
    assert code == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


def test_demo_runs_share_the_run_key_of_a_plain_compare():
    """The demo stores its results under the same key a later `evalkit compare` of its checkpoints uses."""
    from evalkit.checkpoints import LoadOptions
    from evalkit.demo import demo_load_options

    assert demo_load_options().output_settings() == LoadOptions().output_settings() == {}
