"""Tiny models for tests and examples, built offline in seconds (no hub access).

``build_tiny_model(path)`` trains a small byte-level BPE tokenizer on a built-in corpus and saves a
randomly initialised Llama (or GPT-2) with it as a Hugging Face model directory. Options make it look
like the instruct models users evaluate: ``chat_template=True`` adds a chat template, ``bos=True`` makes
the tokenizer prepend ``<s>`` and the template start with it (as Llama and Mistral tokenizers do), and a
larger ``init_range`` makes greedy outputs depend on the prompt (at the default 0.02 a random model tends
to repeat one token whatever it is asked, so tests comparing outputs would compare nothing).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_model", "TINY_CORPUS"]

TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: What is the capital of France? Answer: A. Paris B. Rome C. Berlin D. Madrid",
    "Answer: A",
    "Answer: B",
    "Answer: C",
    "Answer: D",
    "Product quality > Damaged item > Arrived broken > Screen cracked",
    "Delivery > Late delivery > Courier delay",
    "Customer service > Rude agent",
    "Returns and refunds > Refund not received",
    "Write a short essay about the history of computing without using any commas.",
    "Label: the package arrived late and the box was damaged, I want a refund.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`",
]

_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_model(
    path: str | Path,
    *,
    arch: str = "llama",
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    vocab_size: int = 512,
    chat_template: bool = False,
    max_positions: int = 1024,
    bos: bool = False,
    init_range: float = 0.02,
) -> Path:
    """Save a tiny random-weight causal LM with a trained BPE tokenizer to ``path`` and return it.

    ``bos``: the tokenizer prepends ``<s>`` to every text (and a chat template starts with ``{{ bos_token }}``);
    ``init_range``: standard deviation of the random weights.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TINY_CORPUS * 4, trainer=trainer)
    if bos:
        bos_id = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos_id)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=max_positions
    )
    if chat_template:
        fast.chat_template = ("{{ bos_token }}" if bos else "") + _CHAT_TEMPLATE
    fast.save_pretrained(path)
    common = dict(
        vocab_size=len(fast),
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=max_positions,
            tie_word_embeddings=True,
            initializer_range=init_range,
            **common,
        )
    elif arch == "gpt2":
        config = GPT2Config(
            n_embd=hidden, n_layer=layers, n_head=4, n_positions=max_positions, initializer_range=init_range, **common
        )
    else:
        raise ValueError(f"arch must be 'llama' or 'gpt2', got {arch!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    return path
