"""Constrained VOC from a cached prompt prefix, and bulk fuzzy parsing: same predictions as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.evaluators.base import get_evaluator
from evalkit.taskconfig import TaskConfig
from evalkit.voc import constrained

LABELS = ["Delivery > Late > Courier", "Delivery > Late > Backorder", "Delivery > Lost", "Billing > Other",
          "Billing > Charges > Twice", "Mortgage > FHA", "Mortgage > FHA > Escrow", "Mortgage > Other"]


def _task(tmp_path: Path, n: int, **options) -> TaskConfig:
    lines = ["id,text,label"] + [f"t{i},my comment number {i} about a problem,{LABELS[i % len(LABELS)]}" for i in range(n)]
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = {"data": "test.csv", "label_field": "label", "id_field": "id", "n_resamples": 0, "batch_docs": 5,
            "mode": "constrained", "label_options": "levels"}
    return TaskConfig(name="voc_t", evaluator="voc", options={**base, **options}, source="voc_t.yaml", base_dir=tmp_path)


@pytest.fixture(scope="module")
def chat_lm(tiny_chat_model_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_chat_model_dir), device="cpu", batch_size=4, max_length=1024)


class _Counting:
    """Counts ``lm.loglikelihood`` requests while delegating (so the fallback path is visible)."""

    def __init__(self, lm):
        self.lm, self.requests = lm, 0

    def __call__(self, requests, disable_tqdm=False):
        self.requests += len(requests)
        return type(self.lm).loglikelihood(self.lm, requests, disable_tqdm=disable_tqdm)


def test_prefix_scores_equal_lm_eval_loglikelihood(chat_lm):
    from lm_eval.api.instance import Instance

    assert constrained.PrefixScorer.supports(chat_lm)
    prompt = chat_lm.apply_chat_template([{"role": "user", "content": "Classify: the parcel never came."}])
    pairs = [(0, prompt, "Delivery"), (0, prompt, "Billing > Other"), (0, prompt + "Delivery", " > Late"),
             (0, prompt + "Delivery > Late", "\n")]
    fallback_calls = []
    ours = constrained.PrefixScorer(chat_lm).score(pairs, lambda p: fallback_calls.append(p) or [0.0] * len(p))
    theirs = [out[0] for out in chat_lm.loglikelihood([Instance("loglikelihood", {}, (c, x), 0) for _, c, x in pairs])]
    assert fallback_calls == []
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert len(set(ours)) == len(ours)  # distinct candidates, distinct scores: the comparison is not vacuous


def test_constrained_predictions_equal_with_and_without_the_prefix_cache(tmp_path, chat_lm, monkeypatch):
    evaluator = get_evaluator("voc")(_task(tmp_path, n=12))
    evaluator.check_ready()
    cached = evaluator.run(chat_lm, done={}, save=lambda batch: None)
    assert cached[0].extra["chat_template"] is True
    monkeypatch.setattr(constrained.PrefixScorer, "supports", staticmethod(lambda lm: False))
    counting = _Counting(chat_lm)
    chat_lm.loglikelihood = counting  # not monkeypatch: its undo would leave the bound method in the instance dict
    try:
        plain = evaluator.run(chat_lm, done={}, save=lambda batch: None)
    finally:
        del chat_lm.loglikelihood
    assert counting.requests > 12  # the old path really ran: one request per candidate
    assert [r.prediction for r in cached] == [r.prediction for r in plain]
    for a, b in zip(cached, plain):
        assert a.extra["level_logprobs"] == pytest.approx(b.extra["level_logprobs"], abs=1e-4)


def test_prompt_tokenised_once_per_sample_with_equal_predictions(tmp_path, chat_lm, monkeypatch):
    """Joining candidates' ids to the prompt's changes no id: predictions and log-probs are bit-equal."""
    from evalkit import tokenization

    evaluator = get_evaluator("voc")(_task(tmp_path, n=12))
    evaluator.check_ready()
    long_strings = []
    real = tokenization.PairEncoder.encode_strings
    monkeypatch.setattr(tokenization.PairEncoder, "VERIFY", 0)
    monkeypatch.setattr(tokenization.PairEncoder, "encode_strings",
                        lambda self, strings: long_strings.extend(s for s in strings if "my comment" in s) or real(self, strings))
    joined = evaluator.run(chat_lm, done={}, save=lambda batch: None)
    assert len(long_strings) == 12  # one tokenisation of each prompt; the ~10 candidates per sample join it
    monkeypatch.setattr(tokenization, "join_boundary", lambda tokenizer: frozenset())
    long_strings.clear()
    full = evaluator.run(chat_lm, done={}, save=lambda batch: None)
    assert len(long_strings) > 5 * 12  # every candidate's context + continuation in full
    assert [r.prediction for r in joined] == [r.prediction for r in full]
    assert [r.extra["level_logprobs"] for r in joined] == [r.extra["level_logprobs"] for r in full]


def test_prefix_cache_falls_back_for_what_it_cannot_score(chat_lm):
    scorer = constrained.PrefixScorer(chat_lm)
    long_context = "word " * 2000  # beyond max_length: lm-eval truncates, the cache path does not
    asked = []
    scores = scorer.score([(0, "short prompt", " A"), (1, long_context, " B")],
                          lambda pairs: asked.extend(pairs) or [-1.5] * len(pairs))
    assert asked == [(1, long_context, " B")] and scores[1] == -1.5 and scores[0] < 0


# ----------------------------------------------------------------------------- bulk fuzzy parsing

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evalkit.taxonomy import Taxonomy  # noqa: E402
from evalkit.voc.parsing import OutputParser  # noqa: E402
from tests.helpers.difflib_parser import DifflibParser  # noqa: E402


TAXONOMY = Taxonomy.from_paths([
    "Delivery > Late delivery > Courier", "Delivery > Late delivery > Backorder", "Delivery > Lost parcel",
    "Delivery > Other", "Billing > Other", "Billing > Charged twice", "Billing > Charges > Twice",
    "Mortgage > FHA mortgage", "Mortgage > FHA mortgage > Escrow", "Taking/threatening an illegal action > Other",
    "Account > Closing account > Other", "Account > Opening account > Other", "Account > Other",
])
_WORDS = sorted({w for p in TAXONOMY.labels for name in p for w in name.split()}) + ["the", "my", "Label:", ">"]


def _mutated(text: str, draws) -> str:
    """Typos of a label path: dropped, doubled and swapped characters, case and separator changes."""
    chars = list(text)
    for op, pos in draws:
        if not chars:
            break
        pos %= len(chars)
        if op == 0:
            del chars[pos]
        elif op == 1:
            chars.insert(pos, chars[pos])
        elif op == 2 and pos + 1 < len(chars):
            chars[pos], chars[pos + 1] = chars[pos + 1], chars[pos]
        elif op == 3:
            chars[pos] = chars[pos].swapcase()
    return "".join(chars)


outputs = st.one_of(
    st.builds(lambda label, sep, skip, draws: _mutated(sep.join(label[skip:]), draws),
              st.sampled_from(TAXONOMY.labels), st.sampled_from([" > ", "/", " | ", " -> ", ">"]),
              st.integers(0, 2), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 200)), max_size=4)),
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6).map(" ".join),
    st.text(max_size=40),
)


@settings(max_examples=400, deadline=None)
@given(outputs, st.sampled_from([0.6, 0.8, 0.95]))
def test_bulk_matching_equals_difflib_everywhere(output, cutoff):
    assert OutputParser(TAXONOMY, cutoff=cutoff).parse(output) == DifflibParser(TAXONOMY, cutoff=cutoff).parse(output)


@pytest.mark.shared_data
def test_bulk_matching_equals_difflib_on_cfpb_labels(shared_data):
    import random

    from evalkit.taxonomy import load_taxonomy

    tax = load_taxonomy(shared_data / "voc" / "cfpb" / "taxonomy_counts.csv",
                        columns=["product", "sub_product", "issue", "sub_issue"])
    fast, slow = OutputParser(tax), DifflibParser(tax)
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        label = rng.choice(tax.labels)
        text = _mutated(" > ".join(label[rng.randrange(len(label)):]), [(rng.randrange(4), rng.randrange(300))
                                                                       for _ in range(rng.randrange(4))])
        result = fast.parse(text)
        assert result == slow.parse(text), text
        seen.add(result.rule)
    assert {"closest", "invalid"} <= seen  # the fuzzy rule really ran


def test_prefix_cache_only_for_full_attention_models():
    from transformers import LlamaConfig, MistralConfig

    from evalkit.voc.constrained import _full_attention_only

    assert _full_attention_only(LlamaConfig())
    assert not _full_attention_only(MistralConfig(sliding_window=4096))  # a window: lm.loglikelihood instead
    assert not _full_attention_only(LlamaConfig(num_hidden_layers=2, layer_types=["full_attention", "sliding_attention"]))
    assert not _full_attention_only(None)
