"""Build (or load from the cache) the three demo checkpoints: base, domain-only and the 75/25 mix.

- ``base``: a tiny Llama trained from scratch on the embedded general set (multiple-choice questions
  and plain fact sentences) and, as generic text, the unlabelled VOC train comments; loss on every token;
- ``domain_only``: ``base`` fine-tuned on the VOC sample's train split only (loss on the label path);
- ``mixed_75_25``: ``base`` fine-tuned on batches of 75% VOC and 25% general questions (loss on the
  label path / answer letter).

Each is saved as a normal Hugging Face model directory (safetensors + word-level
``PreTrainedTokenizerFast``), so the demo evaluates it through the ordinary ``hf`` checkpoint path.
The cache folder is keyed by a hash of the recipe, the training data and :data:`CODE_VERSION`, so a
changed recipe never reuses stale checkpoints.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, dump_json, stable_hash
from . import general_set
from .domain import DomainData, voc_domain_data
from .train import Example, ModelShape, Schedule

__all__ = ["Recipe", "CODE_VERSION", "CHECKPOINT_NAMES", "DomainData", "load_domain_data", "recipe_key",
           "default_cache_dir", "build_checkpoints", "ensure_checkpoints"]

#: Bump when training code changes in a way that changes the weights (invalidates every cache entry).
CODE_VERSION = 2
CHECKPOINT_NAMES = ("base", "domain_only", "mixed_75_25")
_DONE = "demo-recipe.json"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the demo weights (see ``shared/DESIGN-NOTES.md`` for why these values)."""

    shape: ModelShape = ModelShape()
    base: Schedule = Schedule(steps=1000, batch_size=64, lr=3e-3)
    tune: Schedule = Schedule(steps=400, batch_size=64, lr=2e-3)
    mix_domain_fraction: float = 0.75
    base_statement_fraction: float = 0.2    # share of plain fact sentences in the base's batches
    base_domain_text_fraction: float = 0.2  # share of unlabelled VOC comments (generic text) in them
    train_questions: int = 3000             # general MCQs generated for training (30 per fact)
    seed: int = 0
    # One thread: the model is so small that a second thread costs more in synchronisation than it
    # saves, and on a busy machine two spinning threads were 5x slower (bench/demo/README.md).
    threads: int = 1

    def __post_init__(self):
        for name in ("mix_domain_fraction", "base_statement_fraction", "base_domain_text_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def load_domain_data() -> DomainData:
    """VOC sample train rows as (prompt rendered by the voc task's template, `` <label path>``)."""
    return voc_domain_data()


def recipe_key(recipe: Recipe, domain: DomainData) -> str:
    """Cache key: recipe + code version + training data + library versions that change the weights."""
    from importlib import metadata

    versions = {d: metadata.version(d) for d in ("torch", "transformers", "tokenizers")}
    return stable_hash({"recipe": asdict(recipe), "code_version": CODE_VERSION, "domain": domain.fingerprint,
                        "general_seed": general_set.SEED, "versions": versions})


def default_cache_dir() -> Path:
    """``demo-checkpoints`` in evalkit's cache folder (``$EVALKIT_CACHE_DIR`` or the user cache dir)."""
    from .._io import cache_dir

    return cache_dir() / "demo-checkpoints"


def _general_examples(recipe: Recipe) -> tuple[list[Example], list[str]]:
    questions = general_set.train_questions(recipe.train_questions, sample_seed=recipe.seed)
    mcq = [Example(general_set.render_question(q), " " + q.answer_letter) for q in questions]
    return mcq, general_set.fact_statements()


def _vocabulary_texts(mcq: list[Example], statements: list[str], domain: DomainData) -> list[str]:
    tests = [general_set.render_question(q) + " " + q.answer_letter for q in general_set.test_questions()]
    texts = [e.prompt + e.completion for e in mcq + domain.train] + statements + tests
    return texts + domain.train_texts + domain.test_prompts + domain.extra_texts


def build_checkpoints(out_dir: Path, recipe: Recipe = Recipe(), domain: DomainData | None = None) -> dict[str, Any]:
    """Train the three checkpoints into ``out_dir/<name>/``; return a summary (losses, timings)."""
    from .train import build_model, build_tokenizer, encode_examples, save_checkpoint, train, training_threads

    domain = domain or load_domain_data()
    mcq, statements = _general_examples(recipe)
    tokenizer = build_tokenizer(_vocabulary_texts(mcq, statements, domain), recipe.shape.max_positions)
    summary: dict[str, Any] = {"recipe": asdict(recipe), "vocab_size": len(tokenizer), "phases": {}}
    with training_threads(recipe.threads):
        general_all = encode_examples(tokenizer, mcq, "all")
        sentences = encode_examples(tokenizer, [Example("", s) for s in statements], "all")
        general_answers = encode_examples(tokenizer, mcq, "completion")
        voc = encode_examples(tokenizer, domain.train, "completion")
        comments = encode_examples(tokenizer, [Example("", t) for t in domain.train_texts], "all")
        base = build_model(tokenizer, recipe.shape, seed=recipe.seed)
        text_share = recipe.base_statement_fraction + recipe.base_domain_text_fraction
        phases = {
            "base": (base, [(general_all, 1 - text_share), (sentences, recipe.base_statement_fraction),
                            (comments, recipe.base_domain_text_fraction)], recipe.base, recipe.seed),
            "domain_only": (None, [(voc, 1.0)], recipe.tune, recipe.seed + 1),
            "mixed_75_25": (None, [(voc, recipe.mix_domain_fraction), (general_answers, 1 - recipe.mix_domain_fraction)],
                            recipe.tune, recipe.seed + 2),
        }
        for name, (model, sources, schedule, seed) in phases.items():
            model = model if model is not None else copy.deepcopy(base)
            started = time.perf_counter()
            losses = train(model, sources, schedule, seed=seed, desc=f"demo: training {name}")
            save_checkpoint(model, tokenizer, out_dir / name)
            summary["phases"][name] = {"seconds": round(time.perf_counter() - started, 2), "steps": schedule.steps,
                                       "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}
    return summary


def _complete(folder: Path) -> bool:
    return (folder / _DONE).is_file() and all((folder / n / "config.json").is_file() for n in CHECKPOINT_NAMES)


def ensure_checkpoints(cache_dir: Path | None = None, *, retrain: bool = False, recipe: Recipe = Recipe(),
                       log=print) -> dict[str, Path]:
    """Paths of the three checkpoints, trained now unless a complete cache entry for ``recipe`` exists.

    Training writes into a temporary sibling folder that is renamed into place only when all three
    checkpoints are saved, so an interrupted run never leaves a half-built cache entry.
    """
    domain = load_domain_data()
    folder = (cache_dir or default_cache_dir()) / recipe_key(recipe, domain)
    if retrain or not _complete(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        log(f"demo: training 3 tiny checkpoints into {folder} (about 3 minutes on 2 CPU cores)")
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            summary = build_checkpoints(tmp, recipe, domain)
            atomic_write_text(tmp / _DONE, dump_json(summary))
            if folder.exists():
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log("demo: " + ", ".join(f"{n} {p['seconds']:.0f}s" for n, p in summary["phases"].items()))
    else:
        log(f"demo: using cached checkpoints in {folder}")
    return {name: folder / name for name in CHECKPOINT_NAMES}

