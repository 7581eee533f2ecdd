"""Tiny real training for the demo: a word-level tokenizer, a 0.7M-parameter Llama, a CPU training loop.

The recipe follows what was measured to show forgetting on a 2-core CPU in about three minutes
(``shared/DESIGN-NOTES.md``, ``bench/demo/README.md``): hidden 128, 2 layers, 4 heads, MLP 512, tied
embeddings; AdamW with 5% warm-up then linear decay to 10% of the peak learning rate.

Examples are ``(prompt, completion)`` pairs. ``loss_on="completion"`` trains only on the completion
tokens (the answer's text, the label path), ``"all"`` on every token (the base model's generic text).
Runs are bit-deterministic for a given seed and thread count: the data order comes from a seeded
generator and ``torch.use_deterministic_algorithms`` is on while training.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ModelShape",
    "Schedule",
    "Example",
    "TOKEN_PATTERN",
    "build_tokenizer",
    "build_model",
    "encode_examples",
    "train",
    "labelled_loss",
    "lr_factor",
    "training_threads",
    "torch_threads",
    "save_checkpoint",
]

#: Pieces of text the word-level tokenizer knows: a word or one punctuation mark, each with its
#: leading space, or a newline. Decoding concatenates the pieces, so text round-trips exactly.
TOKEN_PATTERN = r" ?[^\s\p{P}\p{S}]+| ?[\p{P}\p{S}]|\n"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


@dataclass(frozen=True)
class ModelShape:
    """Size of the demo Llama (defaults: the measured model, 691,584 parameters with the demo's vocabulary)."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    mlp: int = 512
    max_positions: int = 256


@dataclass(frozen=True)
class Schedule:
    """One training phase: steps of ``batch_size`` examples, AdamW at peak ``lr``, warm-up then linear decay."""

    steps: int
    batch_size: int = 64
    lr: float = 3e-3
    warmup: float = 0.05
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")


@dataclass(frozen=True)
class Example:
    """A training sequence: ``prompt + completion``; the completion is what ``loss_on='completion'`` trains."""

    prompt: str
    completion: str


def lr_factor(step: int, schedule: Schedule) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based): linear warm-up, then linear decay.

    Examples
    --------
    >>> s = Schedule(steps=100, warmup=0.1, final_lr_fraction=0.1)
    >>> round(lr_factor(0, s), 3), round(lr_factor(9, s), 3), round(lr_factor(99, s), 3)
    (0.1, 1.0, 0.1)
    """
    warm = max(1, math.ceil(schedule.warmup * schedule.steps)) if schedule.warmup > 0 else 0
    if step < warm:
        return (step + 1) / warm
    span = max(1, schedule.steps - warm - 1)
    progress = min(1.0, (step - warm) / span)
    return 1.0 - progress * (1.0 - schedule.final_lr_fraction)


def build_tokenizer(texts: Iterable[str], model_max_length: int = 256):
    """A word-level ``PreTrainedTokenizerFast`` whose vocabulary is every piece of ``texts``.

    Sequences start with ``<s>`` (added by the tokenizer, as for Llama, so lm-eval's encoding matches
    training); unknown pieces map to ``<unk>``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(Regex(r"[^\S\n]+"), " ")
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False)
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def build_model(tokenizer, shape: ModelShape = ModelShape(), seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` of ``shape`` for ``tokenizer`` (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        intermediate_size=shape.mlp,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def encode_examples(tokenizer, examples: Sequence[Example], loss_on: str = "completion"):
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 where no loss) tensors.

    The completion is followed by ``</s>`` so a model learns where to stop generating.
    """
    import torch

    if loss_on not in ("completion", "all"):
        raise ValueError(f"loss_on must be 'completion' or 'all', got {loss_on!r}")
    rows, label_rows = [], []
    for example in examples:
        prompt_ids = tokenizer(example.prompt)["input_ids"]
        full_ids = tokenizer(example.prompt + example.completion)["input_ids"] + [tokenizer.eos_token_id]
        if full_ids[: len(prompt_ids)] != prompt_ids:  # a piece spanning the boundary: cannot happen with TOKEN_PATTERN
            raise ValueError(f"prompt and completion tokenise across their boundary: {example.prompt!r}")
        start = 1 if loss_on == "all" else len(prompt_ids)
        rows.append(full_ids)
        label_rows.append([-100] * start + full_ids[start:])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in label_rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


@contextlib.contextmanager
def torch_threads(threads: int):
    """Run the block with ``threads`` torch threads, then restore the previous count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def training_threads(threads: int = 1):
    """Fix the thread count and turn on deterministic algorithms; restore both afterwards."""
    import torch

    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    _deterministic(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        _deterministic(old_det)


def _deterministic(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode)`` for eager training.

    The public call also sets torch._inductor's flag, importing the compiler stack (~2 CPU s in each of the
    demo's processes); nothing here compiles, so only the eager flag is set unless inductor is loaded already.
    """
    import sys

    import torch

    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode)
    else:
        setter(mode)


def _batch_order(sizes: Sequence[int], schedule: Schedule, seed: int):
    """Per step, per source, the example indices: epochs of seeded permutations (a fixed data order)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    queues = [torch.empty(0, dtype=torch.long) for _ in sizes]
    for _ in range(schedule.steps):
        picks = []
        for s, count in enumerate(_split_batch(schedule.batch_size, sizes)):
            while len(queues[s]) < count:
                queues[s] = torch.cat([queues[s], torch.randperm(sizes[s][0], generator=gen)])
            picks.append(queues[s][:count])
            queues[s] = queues[s][count:]
        yield picks


def _split_batch(batch_size: int, sizes: Sequence) -> list[int]:
    weights = [w for _, w in sizes]
    counts = [int(round(batch_size * w / sum(weights))) for w in weights]
    counts[0] += batch_size - sum(counts)
    return counts


def train(
    model,
    sources: Sequence[tuple[dict, float]],
    schedule: Schedule,
    *,
    seed: int = 0,
    desc: str = "training",
    position: int | None = None,
    parts: int = 1,
    exchange=None,
) -> list[float]:
    """Train ``model`` in place; return the loss of every step.

    ``sources`` are ``(encoded examples, weight)`` pairs (see :func:`encode_examples`); each batch
    takes ``batch_size * weight / sum(weights)`` examples from each source, so a 0.75/0.25 pair gives
    a 75/25 mix in every batch. ``parts`` cuts every batch into that many micro-batches of similar lengths
    (less padding to compute) whose gradients are summed; each part's loss is its share of the batch's mean
    over labelled tokens, so the parts add up to the loss of the whole batch. With an ``exchange``
    (:class:`~evalkit.demo.exchange.GradientExchange`)
    this process computes only micro-batch ``exchange.rank`` and the exchange sums the others' gradients in:
    ``parts`` processes then train the same weights, bit for bit, as one process doing every part.
    """
    import torch

    from ..progress import bar

    if not sources:
        raise ValueError("sources must name at least one (encoded examples, weight) pair, got none")
    if not 1 <= parts <= schedule.batch_size:
        raise ValueError(f"parts must be between 1 and the batch size {schedule.batch_size}, got {parts}")
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, schedule))
    sizes = [(len(data["input_ids"]), weight) for data, weight in sources]
    mine = [exchange.rank] if exchange is not None else range(parts)
    losses: list[float] = []
    model.train()
    if exchange is None or exchange.rank == 0:
        progress = bar(schedule.steps, desc, unit="step", leave=True, position=position)
    else:  # one bar per training, the first process's
        from tqdm.auto import tqdm

        progress = tqdm(disable=True)
    with progress:
        for picks in _batch_order(sizes, schedule, seed):
            optimizer.zero_grad(set_to_none=True)
            part_losses = []
            batch = _collate([{k: v[idx] for k, v in data.items()} for (data, _), idx in zip(sources, picks)])
            tokens = int((batch["labels"][:, 1:] != -100).sum())
            micro_batches = _by_length(batch, parts)
            for part in mine:
                loss = labelled_loss(model, micro_batches[part], tokens=tokens)
                loss.backward()
                part_losses.append(float(loss.detach()))
            if exchange is not None:
                part_losses = exchange.sum_gradients(model.parameters(), part_losses[0])
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(math.fsum(part_losses))  # the batch's mean: each part's loss was divided by all its tokens
            progress.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            progress.update(1)
    model.eval()
    return losses


def labelled_loss(model, batch: dict[str, Any], tokens: int | None = None):
    """The causal LM loss of ``model(**batch).loss``, with output logits computed only where there are labels.

    A fine-tune's loss is on the label path, a quarter of the tokens; projecting every position onto the
    vocabulary and discarding most of it cost a fifth of each step (bench/demo/README.md). The loss is the
    mean over the labelled tokens, or with ``tokens`` their sum divided by ``tokens`` (the labelled tokens of
    the whole batch this micro-batch is part of).

    Examples
    --------
    >>> import torch
    >>> from evalkit.demo.train import build_tokenizer, build_model, encode_examples, labelled_loss
    >>> tokenizer = build_tokenizer(["Question: why?", " Because."])
    >>> model = build_model(tokenizer, ModelShape(hidden=16, layers=1, heads=2, mlp=32))
    >>> batch = encode_examples(tokenizer, [Example("Question: why?", " Because.")])
    >>> with torch.no_grad():
    ...     bool(torch.isclose(labelled_loss(model, batch), model(**batch).loss))
    True
    """
    import torch

    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]  # position t predicts token t + 1
    keep = targets != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    if tokens is None:
        return torch.nn.functional.cross_entropy(logits.float(), targets[keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum") / tokens


def _by_length(batch: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    """``batch`` cut into ``parts`` micro-batches of rows sorted by length, each trimmed to its longest row.

    A batch is padded to its longest row; cutting the sorted rows into runs of similar length left 12%
    instead of 21% of a fine-tune's tokens as padding (bench/demo/README.md).
    """
    import torch

    lengths = batch["attention_mask"].sum(dim=1)
    order = torch.sort(lengths, stable=True).indices
    return [_collate([{key: value[rows] for key, value in batch.items()}]) for rows in order.tensor_split(parts)]


def _collate(parts: list[dict]) -> dict[str, Any]:
    """Concatenate batches of different widths, trimming padding columns no row uses."""
    import torch

    width = max(int(p["attention_mask"].sum(dim=1).max()) for p in parts if len(p["input_ids"]))
    fill = {"input_ids": 0, "attention_mask": 0, "labels": -100}
    out = {}
    for key, value in fill.items():
        chunks = []
        for p in parts:
            t = p[key][:, :width]
            if t.shape[1] < width:
                t = torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)
            chunks.append(t)
        out[key] = torch.cat(chunks)
    return out


def save_checkpoint(model, tokenizer, path: str | Path) -> Path:
    """Save as a normal Hugging Face model directory (safetensors + tokenizer files)."""
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
