"""Build (or load from the cache) the three demo checkpoints: base, domain-only and the 75/25 mix.

- ``base``: a tiny Llama trained from scratch on the embedded general set (multiple-choice questions,
  loss on the answer's text, and plain fact sentences) and, as generic text, the unlabelled VOC train
  comments (loss on every token of the sentences and comments);
- ``domain_only``: ``base`` fine-tuned on the VOC sample's train split only (loss on the label path);
- ``mixed_75_25``: ``base`` fine-tuned on batches of 75% VOC and 25% general questions (loss on the
  label path / the answer's text).

Each is saved as a normal Hugging Face model directory (safetensors + word-level
``PreTrainedTokenizerFast``), so the demo evaluates it through the ordinary ``hf`` checkpoint path.
The cache folder is keyed by a hash of the recipe, the training data and :data:`CODE_VERSION`, so a
changed recipe never reuses stale checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
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

__all__ = [
    "Recipe",
    "CODE_VERSION",
    "CHECKPOINT_NAMES",
    "DomainData",
    "load_domain_data",
    "recipe_key",
    "default_cache_dir",
    "build_checkpoints",
    "ensure_checkpoints",
]

#: Bump when training code changes in a way that changes the weights (invalidates every cache entry).
CODE_VERSION = 4
CHECKPOINT_NAMES = ("base", "domain_only", "mixed_75_25")
_DONE = "demo-recipe.json"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the demo weights (see ``shared/DESIGN-NOTES.md`` for why these values)."""

    shape: ModelShape = ModelShape()
    base: Schedule = Schedule(steps=600, batch_size=64, lr=3e-3)
    # 600 steps at 2.5e-3: leaf macro F1 counts a single test comment of 14 leaves as a whole leaf, so a few
    # errors move it by 0.04; with 500 steps one seed of three fell to 0.875 and lr 2e-3 was no better
    # (bench/demo/README.md has the sweep)
    tune: Schedule = Schedule(steps=600, batch_size=64, lr=2.5e-3)
    mix_domain_fraction: float = 0.75
    base_statement_fraction: float = 0.2  # share of plain fact sentences in the base's batches
    base_domain_text_fraction: float = 0.1  # share of unlabelled VOC comments (generic text) in them
    # Country facts come 3 times as often as category words in the questions and sentences: with equal
    # repetition, seed 1's base missed 6 of the 80 country facts (median answer margin 1.6 nats against 7 for
    # the words), and the mix's rehearsal then *gained* significantly on them; bench/demo/README.md has the runs.
    country_fact_weight: int = 3
    # The base's loss on its questions: "completion" (the answer's text, as an instruction-tuned model learns
    # them) or "all" (every token, distractors included). With "all", seed 0 under AVX2 kernels instead of
    # AVX-512 stalled at 0.81 general accuracy; with "completion" it was at 1.00 by step 300 of 600.
    base_question_loss: str = "completion"
    questions_per_fact: int = 20  # general MCQs generated for training, per fact of training_facts()
    seed: int = 0
    # Each base step's batch in two halves whose gradients are summed: on two cores the halves train in two
    # processes (the base is the one phase nothing runs beside), on one core one after the other; the same
    # weights either way, bit for bit (evalkit/demo/exchange.py).
    base_parts: int = 2
    # Each fine-tune batch in two micro-batches of rows of similar length (one process): less padding makes
    # a step 14% cheaper (bench/demo/README.md), which pays for 600 steps instead of 500 within the 3 minutes.
    tune_parts: int = 2
    # One thread: the model is so small that a second thread costs more in synchronisation than it
    # saves, and on a busy machine two spinning threads were 5x slower (bench/demo/README.md).
    threads: int = 1

    def __post_init__(self):
        for name in ("mix_domain_fraction", "base_statement_fraction", "base_domain_text_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")
        if self.base_question_loss not in ("completion", "all"):
            raise ValueError(f"base_question_loss must be 'completion' or 'all', got {self.base_question_loss!r}")
        for name in ("country_fact_weight", "questions_per_fact", "base_parts", "tune_parts", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def load_domain_data() -> DomainData:
    """VOC sample train rows as (prompt rendered by the voc task's template, `` <label path>``)."""
    return voc_domain_data()


def recipe_key(recipe: Recipe, domain: DomainData) -> str:
    """Cache key: recipe + code version + training data + library versions that change the weights."""
    from importlib import metadata

    versions = {d: metadata.version(d) for d in ("torch", "transformers", "tokenizers")}
    general = stable_hash([general_set.test_file_text(), general_set.fact_statements()])
    return stable_hash(
        {
            "recipe": asdict(recipe),
            "code_version": CODE_VERSION,
            "domain": domain.fingerprint,
            "general_seed": general_set.SEED,
            "general": general,
            "versions": versions,
        }
    )


def default_cache_dir() -> Path:
    """``demo-checkpoints`` in evalkit's cache folder (``$EVALKIT_CACHE_DIR`` or the user cache dir)."""
    from .._io import cache_dir

    return cache_dir() / "demo-checkpoints"


def _general_examples(recipe: Recipe) -> tuple[list[Example], list[str]]:
    weight = recipe.country_fact_weight
    count = recipe.questions_per_fact * len(general_set.training_facts(country_weight=weight))
    questions = general_set.train_questions(count, sample_seed=recipe.seed, country_weight=weight)
    # The answer is the option's text, as demo_general scores it (the log-likelihood of each option).
    mcq = [Example(general_set.render_question(q), " " + q.options[q.label]) for q in questions]
    return mcq, general_set.fact_statements(country_weight=weight)


def _vocabulary_texts(mcq: list[Example], statements: list[str], domain: DomainData) -> list[str]:
    tests = [general_set.render_question(q) + " " + q.options[q.label] for q in general_set.test_questions()]
    texts = [e.prompt + e.completion for e in mcq + domain.train] + statements + tests
    return texts + domain.train_texts + domain.test_prompts + domain.extra_texts


def build_checkpoints(
    out_dir: Path, recipe: Recipe = Recipe(), domain: DomainData | None = None, processes: int | None = None
) -> dict[str, Any]:
    """Train the three checkpoints into ``out_dir/<name>/``; return a summary (losses, timings).

    ``processes``: how many processes may train at once (default: one per CPU core). Any count gives the
    same weights bit for bit; 1 suits a machine whose cores are busy with other work, where processes
    waiting on each other's gradients cost more than they save.
    """
    processes = _process_count(processes)
    from .train import build_model, build_tokenizer, encode_examples, training_threads

    domain = domain or load_domain_data()
    mcq, statements = _general_examples(recipe)
    tokenizer = build_tokenizer(_vocabulary_texts(mcq, statements, domain), recipe.shape.max_positions)
    summary: dict[str, Any] = {"recipe": asdict(recipe), "vocab_size": len(tokenizer), "phases": {}}
    with training_threads(recipe.threads):
        base_questions = encode_examples(tokenizer, mcq, recipe.base_question_loss)
        sentences = encode_examples(tokenizer, [Example("", s) for s in statements], "all")
        general_answers = encode_examples(tokenizer, mcq, "completion")
        voc = encode_examples(tokenizer, domain.train, "completion")
        comments = encode_examples(tokenizer, [Example("", t) for t in domain.train_texts], "all")
        base = build_model(tokenizer, recipe.shape, seed=recipe.seed)
        text_share = recipe.base_statement_fraction + recipe.base_domain_text_fraction
        base_sources = [
            (base_questions, 1 - text_share),
            (sentences, recipe.base_statement_fraction),
            (comments, recipe.base_domain_text_fraction),
        ]
        summary["phases"]["base"] = _train_base(base, tokenizer, base_sources, recipe, out_dir / "base", processes)
    # The fine-tunes only read the base: on two cores they train side by side, one process each (this one and a worker)
    # (one thread each, as every phase), which gives the same weights as one after the other.
    jobs = [
        ("domain_only", [(voc, 1.0)], recipe.tune, recipe.seed + 1),
        (
            "mixed_75_25",
            [(voc, recipe.mix_domain_fraction), (general_answers, 1 - recipe.mix_domain_fraction)],
            recipe.tune,
            recipe.seed + 2,
        ),
    ]
    summary["phases"].update(_fine_tune_all(jobs, out_dir, recipe.threads, recipe.tune_parts, processes))
    return summary


def _train_and_save(
    model,
    tokenizer,
    sources,
    schedule,
    seed: int,
    path: Path,
    name: str,
    position: int | None = None,
    parts: int = 1,
    exchange=None,
) -> dict[str, Any]:
    from .train import save_checkpoint, train

    started = time.perf_counter()
    losses = train(
        model,
        sources,
        schedule,
        seed=seed,
        desc=f"demo: training {name}",
        position=position,
        parts=parts,
        exchange=exchange,
    )
    if exchange is None or exchange.rank == 0:  # every process holds the same weights
        save_checkpoint(model, tokenizer, path)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "steps": schedule.steps,
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
    }


def _process_count(processes: int | None) -> int:
    """``processes`` checked (a positive integer), or one per CPU core when None."""
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise ValueError(f"processes must be a positive integer or None, got {processes!r}")
    return processes or os.cpu_count() or 1


def _train_base(model, tokenizer, sources, recipe: Recipe, path: Path, processes: int) -> dict[str, Any]:
    """Train the base, its batches' parts in parallel processes when ``processes`` allows one per part."""
    parts = recipe.base_parts
    if parts < 2 or processes < parts:
        return _train_and_save(model, tokenizer, sources, recipe.base, recipe.seed, path, "base", parts=parts)
    from .exchange import exchange_folder

    folder = exchange_folder()
    try:
        return _train_base_parts(model, tokenizer, sources, recipe, path, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _train_base_parts(model, tokenizer, sources, recipe: Recipe, path: Path, folder: Path) -> dict[str, Any]:
    """Rank 0 here, ranks 1.. in worker interpreters, gradients summed through ``folder`` (shared memory)."""
    from .exchange import GradientExchange

    parts = recipe.base_parts
    size = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder / "init")  # the other processes start from these weights
    job = {
        "kind": "base_part",
        "sources": [(dict(data), weight) for data, weight in sources],
        "schedule": asdict(recipe.base),
        "seed": recipe.seed,
        "init": str(folder / "init"),
        "folder": str(folder),
        "world": parts,
        "size": size,
        "threads": recipe.threads,
    }
    workers = {f"base (part {rank + 1} of {parts})": {**job, "rank": rank} for rank in range(1, parts)}
    with _workers(workers, folder) as running:
        exchange = GradientExchange(folder, 0, parts, size)
        result = _train_and_save(
            model, tokenizer, sources, recipe.base, recipe.seed, path, "base", parts=parts, exchange=exchange
        )
        running.wait()
    return result


def _fine_tune(
    name: str, sources, schedule, seed: int, out_dir: Path, threads: int, position: int | None = None, parts: int = 1
) -> dict[str, Any]:
    """Fine-tune a copy of ``out_dir/base`` (as saved: float32 safetensors) into ``out_dir/name``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..progress import quiet_third_party
    from .train import training_threads

    with quiet_third_party(), training_threads(threads):
        model = AutoModelForCausalLM.from_pretrained(out_dir / "base")
        tokenizer = AutoTokenizer.from_pretrained(out_dir / "base")
        return _train_and_save(model, tokenizer, sources, schedule, seed, out_dir / name, name, position, parts)


def _fine_tune_all(
    jobs: list[tuple], out_dir: Path, threads: int, parts: int = 1, processes: int = 1
) -> dict[str, dict[str, Any]]:
    """Run the fine-tunes, side by side when ``processes`` >= 2: the first in this process, the others in
    worker interpreters (see ``_worker``; each fresh one spends ~9 CPU s importing torch and transformers)."""
    if len(jobs) < 2 or processes < 2:
        return {
            name: _fine_tune(name, sources, schedule, seed, out_dir, threads, parts=parts)
            for name, sources, schedule, seed in jobs
        }
    first, *others = jobs
    work = {
        name: {
            "kind": "fine_tune",
            "name": name,
            "sources": [(dict(data), weight) for data, weight in sources],
            "schedule": asdict(schedule),
            "seed": seed,
            "out_dir": str(out_dir),
            "threads": threads,
            "position": position,
            "parts": parts,
        }
        for position, (name, sources, schedule, seed) in enumerate(others, start=1)
    }
    with _workers(work, out_dir) as running:
        name, sources, schedule, seed = first
        results = {name: _fine_tune(name, sources, schedule, seed, out_dir, threads, position=0, parts=parts)}
        return {**results, **running.wait()}


class _Running:
    """Worker interpreters started by :func:`_workers`; ``wait()`` returns their results by name."""

    def __init__(self):
        self.processes: dict[str, tuple[Any, Path]] = {}

    def wait(self) -> dict[str, Any]:
        results = {}
        for name, (process, job) in self.processes.items():
            if process.wait() != 0:
                raise RuntimeError(f"demo: training {name} failed (exit code {process.returncode}); see above.")
            results[name] = json.loads(Path(f"{job}.json").read_text(encoding="utf-8"))
        return results


@contextlib.contextmanager
def _workers(jobs: dict[str, dict], folder: Path):
    """Start one ``python -m evalkit.demo._worker`` per job (job files in ``folder``); stop and clean up after."""
    import subprocess
    import sys

    import torch

    import evalkit

    # the workers import this evalkit, even when it is not the installed one (a source checkout)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(evalkit.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
        ),
        "EVALKIT_DEMO_PARENT": str(os.getpid()),
    }  # a worker exits when this process is gone (_worker.py)
    running = _Running()
    try:
        for index, (name, job) in enumerate(jobs.items()):
            path = Path(folder) / f".job-{index}.pt"
            torch.save(job, path)
            running.processes[name] = (
                subprocess.Popen([sys.executable, "-m", "evalkit.demo._worker", str(path)], env=env),
                path,
            )
        yield running
    finally:
        for process, path in running.processes.values():
            if process.poll() is None:
                process.terminate()
                process.wait()
            for leftover in (path, Path(f"{path}.json")):
                leftover.unlink(missing_ok=True)


def _complete(folder: Path) -> bool:
    return (folder / _DONE).is_file() and all((folder / n / "config.json").is_file() for n in CHECKPOINT_NAMES)


def ensure_checkpoints(
    cache_dir: Path | None = None,
    *,
    retrain: bool = False,
    recipe: Recipe = Recipe(),
    log=print,
    processes: int | None = None,
) -> dict[str, Path]:
    """Paths of the three checkpoints, trained now unless a complete cache entry for ``recipe`` exists.

    ``processes``: see :func:`build_checkpoints` (not part of the cache key: it changes no weight).

    Training writes into a temporary sibling folder that is renamed into place only when all three
    checkpoints are saved, so an interrupted run never leaves a half-built cache entry.
    """
    _process_count(processes)  # a bad count is refused even when the cache answers
    domain = load_domain_data()
    folder = (cache_dir or default_cache_dir()) / recipe_key(recipe, domain)
    if retrain or not _complete(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        log(f"demo: training 3 tiny checkpoints into {folder} (3 to 6 minutes on 2 idle CPU cores)")
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            summary = build_checkpoints(tmp, recipe, domain, processes)
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
