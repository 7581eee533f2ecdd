"""The prompt-prefix token join equals full tokenisation for Llama-3 / Qwen-style and sentencepiece tokenizers.

``PairEncoder`` tokenises a long context once and appends each continuation's ids where
:func:`join_boundary` proves the tokenizer cannot merge across the boundary. Built here offline with the
pre-tokenizers, normalisers and BPE models those families ship (tiktoken-style regex split + byte-level,
NFC for Qwen 2, sentencepiece's ``▁`` with byte fallback and a vocabulary without ``▁`` inside tokens),
trained on a small corpus, and checked against full tokenisation on generated strings.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.tokenization import SPLIT_PATTERNS, _TAIL_HEAD, join_boundary

_GPT2, LLAMA3, QWEN2 = SPLIT_PATTERNS
CORPUS = ["The quick brown fox jumps over the lazy dog's back, 1234 times.\n", "Question: what is 2+2?\nAnswer: B",
          "naïve café — résumé 東京 12,345.67 don't\tI'll", "Réponse: (C) « oui » !!!\n\n  indented\r\n"] * 20
ALPHABET = "abcXYZ éèé\u0301東京12 \t\n\r.,:;!?'\"()-_▁"


def _fast(tokenizer):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>")


def _byte_level(pattern: str, nfc: bool):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.normalizer = normalizers.NFC() if nfc else None
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    return _fast(tokenizer)


def _sentencepiece(style: str):
    """Llama-2-style: trained with whitespace splitting (no ``▁`` inside tokens), used on the whole text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(byte_fallback=True, unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    tokenizer.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "</s>", *bytes_]))
    if style == "metaspace":  # transformers 5's LlamaTokenizer: one piece per text
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:  # the older converted tokenizer.json
        tokenizer.pre_tokenizer = None
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    return _fast(tokenizer)


TOKENIZERS = {"llama3": lambda: _byte_level(LLAMA3, nfc=False), "qwen2": lambda: _byte_level(QWEN2, nfc=True),
              "sentencepiece_metaspace": lambda: _sentencepiece("metaspace"),
              "sentencepiece_normalizer": lambda: _sentencepiece("normalizer")}
_BUILT: dict = {}


def _tokenizer(name: str):
    if name not in _BUILT:
        _BUILT[name] = TOKENIZERS[name]()
    return _BUILT[name]


def _joined(tokenizer, head: str, tail: str) -> list[int]:
    """What PairEncoder composes: the head's ids, then the tail's ids after a one-letter stand-in head."""
    stand_in = len(tokenizer(_TAIL_HEAD, add_special_tokens=False).input_ids)
    return tokenizer(head).input_ids + tokenizer(_TAIL_HEAD + tail, add_special_tokens=False).input_ids[stand_in:]


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_the_shapes_are_recognised(name):
    assert join_boundary(_tokenizer(name))


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@settings(max_examples=100, deadline=None)
@given(head=st.text(ALPHABET, min_size=1, max_size=30), tail=st.text(ALPHABET, max_size=30), data=st.data())
def test_joined_ids_equal_full_tokenisation(name, head, tail, data):
    tokenizer = _tokenizer(name)
    boundary = join_boundary(tokenizer)
    head = head.rstrip() + data.draw(st.sampled_from("aZ.?'1東é\u0301"))  # ends in a non-space character
    tail = data.draw(st.sampled_from(sorted(boundary))) + tail
    assert tokenizer(head + tail).input_ids == _joined(tokenizer, head, tail)


def test_newlines_after_punctuation_are_not_a_boundary_for_llama3_style_regexes():
    # " ?[^\s\p{L}\p{N}]+[\r\n]*" lets ":" take the newline after it: joining there would differ
    from tokenizers import Regex, pre_tokenizers

    assert "\n" not in join_boundary(_tokenizer("llama3")) and "\n" not in join_boundary(_tokenizer("qwen2"))

    pieces = pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated").pre_tokenize_str("Answer:\nB")
    assert [piece for piece, _ in pieces] == ["Answer", ":\n", "B"]


def test_a_vocabulary_with_spaces_inside_tokens_is_not_joined():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = _sentencepiece("metaspace")
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    vocab = backend.get_vocab()
    merged = models.BPE(vocab={**vocab, "x▁": len(vocab)}, merges=[], byte_fallback=True)
    backend.model = merged
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    assert not join_boundary(_fast(backend))


def test_unknown_split_patterns_are_not_joined():
    assert not join_boundary(_byte_level(r"\S+|\s+", nfc=False))
