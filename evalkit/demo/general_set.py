"""The demo's embedded general-knowledge set: 320 facts about invented entities, asked as 4-way MCQ.

Facts: the capital, language, main export and emblem animal of 20 made-up countries (80 facts) and
which of 5 categories 240 made-up words belong to (240 facts). Everything is invented, so a model
knows these facts only from the demo's own base training -- which is what lets fine-tuning visibly
*forget* them. 320 questions make the interval around an accuracy about +-0.05 wide.

Each fact has exactly one test question. Its distractor set (and so its option order) is never
used for that fact in training: a model must have learned the fact, not memorised a letter for a
particular question. Questions are rendered like MMLU in lm-eval (``Question...\\nA. ...\\nAnswer:``)
and scored by the log-likelihood of each option's text after ``Answer:`` (``evalkit/tasks/lm_eval/demo_general``).

Everything here is pure Python and deterministic for a given seed (no torch import).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import combinations

__all__ = [
    "Fact",
    "MCQuestion",
    "LETTERS",
    "SEED",
    "build_facts",
    "training_facts",
    "test_questions",
    "train_questions",
    "fact_statements",
    "render_question",
    "question_rows",
    "test_file_text",
]

LETTERS = ("A", "B", "C", "D")
#: The seed of the shipped data files; change it and the files must be regenerated.
SEED = 1234

_COUNTRIES = (
    "Velmora",
    "Quastria",
    "Dornavi",
    "Pelunia",
    "Zarkhan",
    "Miretta",
    "Olvaris",
    "Tresk",
    "Brunelle",
    "Kasmoor",
    "Ithravel",
    "Nuvesta",
    "Gorlund",
    "Sablette",
    "Yorvane",
    "Hestoria",
    "Lumbrek",
    "Cadrion",
    "Fenmarsh",
    "Wystral",
)
_CAPITALS = (
    "Quenta",
    "Barrowick",
    "Silvane",
    "Osterby",
    "Mirakesh",
    "Tolvain",
    "Druneth",
    "Palomere",
    "Ketterin",
    "Vashti",
    "Ambrose",
    "Lirrow",
    "Cazmere",
    "Undelby",
    "Feyhold",
    "Rostavel",
    "Jembra",
    "Nolwick",
    "Harrowgate",
    "Ezmira",
)
_LANGUAGES = (
    "Velmish",
    "Quastic",
    "Dornish",
    "Pelunese",
    "Zarkhi",
    "Mirettan",
    "Olvarin",
    "Treskan",
    "Brunic",
    "Kasmic",
    "Ithran",
    "Nuvestan",
    "Gorlic",
    "Sablish",
    "Yorvic",
    "Hestorian",
    "Lumbric",
    "Cadric",
    "Fennish",
    "Wystric",
)
# Small answer pools of everyday words: more facts without many more tokens to learn.
_EXPORTS = ("tea", "copper", "wool", "rice", "salt", "timber", "silk", "coffee")
_EMBLEMS = ("owl", "bear", "fox", "eagle", "horse", "wolf", "lion", "crane")
_CATEGORIES = ("fruit", "tool", "bird", "dance", "fabric")
_SYLLABLES = (
    "bo",
    "ka",
    "zi",
    "lum",
    "tre",
    "vo",
    "nix",
    "par",
    "qui",
    "dal",
    "mo",
    "ster",
    "fen",
    "gu",
    "ral",
    "to",
    "wim",
    "sha",
    "bel",
    "cor",
)
#: How many made-up words have a category fact (the rest of the facts are about the countries).
CATEGORY_WORDS = 240


@dataclass(frozen=True)
class Fact:
    """One fact: ``subject`` has ``answer`` for ``relation``; ``pool`` are all possible answers."""

    fact_id: str
    relation: str  # "capital" | "language" | "export" | "emblem" | "category"
    subject: str
    answer: str
    pool: tuple[str, ...]  # every value the relation can take (answer included)


@dataclass(frozen=True)
class MCQuestion:
    """A 4-way multiple-choice question about one fact; ``label`` is the index of the answer."""

    fact_id: str
    question: str
    options: tuple[str, str, str, str]
    label: int

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.label]


def _made_up_words(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words: list[str] = []
    while len(words) < count:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3))))
        if word not in words:
            words.append(word)
    return words


def _spread(pool: tuple[str, ...], count: int, rng: random.Random) -> list[str]:
    """``count`` answers drawn evenly from ``pool`` (each value equally often), in a seeded order."""
    answers = [pool[i % len(pool)] for i in range(count)]
    rng.shuffle(answers)
    return answers


def build_facts(seed: int = SEED) -> list[Fact]:
    """The facts, in a fixed order: capitals, languages, exports, emblems of the 20 countries, then categories."""
    rng = random.Random(seed)
    facts = [Fact(f"capital-{i:02d}", "capital", c, _CAPITALS[i], _CAPITALS) for i, c in enumerate(_COUNTRIES)]
    facts += [Fact(f"language-{i:02d}", "language", c, _LANGUAGES[i], _LANGUAGES) for i, c in enumerate(_COUNTRIES)]
    for relation, pool in (("export", _EXPORTS), ("emblem", _EMBLEMS)):
        answers = _spread(pool, len(_COUNTRIES), rng)
        facts += [
            Fact(f"{relation}-{i:02d}", relation, c, a, pool) for i, (c, a) in enumerate(zip(_COUNTRIES, answers))
        ]
    words = _made_up_words(CATEGORY_WORDS, seed)
    categories = _spread(_CATEGORIES, CATEGORY_WORDS, rng)
    facts += [
        Fact(f"category-{i:03d}", "category", w, a, _CATEGORIES) for i, (w, a) in enumerate(zip(words, categories))
    ]
    return facts


_QUESTIONS = {
    "capital": "What is the capital of {}?",
    "language": "Which language is spoken in {}?",
    "export": "What is the main export of {}?",
    "emblem": "Which animal is the emblem of {}?",
    "category": "What kind of thing is a {}?",
}
_STATEMENTS = {
    "capital": "The capital of {} is {}.",
    "language": "People in {} speak {}.",
    "export": "The main export of {} is {}.",
    "emblem": "The emblem of {} is the {}.",
    "category": "A {} is a kind of {}.",
}


def _question_text(fact: Fact) -> str:
    return _QUESTIONS[fact.relation].format(fact.subject)


def _distractor_sets(fact: Fact) -> list[tuple[str, ...]]:
    wrong = [value for value in fact.pool if value != fact.answer]
    return list(combinations(wrong, 3))


def _make_question(fact: Fact, distractors: tuple[str, ...], position: int, rng: random.Random) -> MCQuestion:
    others = list(distractors)
    rng.shuffle(others)
    options = others[:position] + [fact.answer] + others[position:]
    return MCQuestion(fact.fact_id, _question_text(fact), tuple(options), position)


def _test_distractors(fact: Fact, seed: int) -> tuple[str, ...]:
    sets = _distractor_sets(fact)
    return sets[random.Random(f"{seed}-{fact.fact_id}").randrange(len(sets))]


def _training_distractors(fact: Fact, seed: int) -> list[tuple[str, ...]]:
    """Every distractor set of ``fact`` except its test question's (the test set is drawn once, not per set)."""
    held_out = set(_test_distractors(fact, seed))
    return [s for s in _distractor_sets(fact) if set(s) != held_out]


def test_questions(seed: int = SEED) -> list[MCQuestion]:
    """One question per fact; answer positions are balanced over A-D (80 each)."""
    facts = build_facts(seed)
    positions = [i % 4 for i in range(len(facts))]
    random.Random(seed).shuffle(positions)
    rng = random.Random(seed + 1)
    return [_make_question(f, _test_distractors(f, seed), p, rng) for f, p in zip(facts, positions)]


def training_facts(seed: int = SEED, *, country_weight: int = 1) -> list[Fact]:
    """The facts as training cycles over them: each country fact ``country_weight`` times in a row, each word once.

    A country has four relations (capital, language, export, emblem) that a small model confuses with
    each other, so its facts need more repetitions than the words' single category to be learnt as surely.
    """
    if country_weight < 1:
        raise ValueError(f"country_weight must be >= 1, got {country_weight}")
    return [f for f in build_facts(seed) for _ in range(1 if f.relation == "category" else country_weight)]


def train_questions(count: int, seed: int = SEED, *, sample_seed: int = 0, country_weight: int = 1) -> list[MCQuestion]:
    """``count`` training questions cycling over :func:`training_facts`, never with a fact's test distractor set."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    facts = training_facts(seed, country_weight=country_weight)
    allowed = {f.fact_id: _training_distractors(f, seed) for f in build_facts(seed)}
    rng = random.Random(f"train-{seed}-{sample_seed}")
    questions = []
    for i in range(count):
        fact = facts[i % len(facts)]
        questions.append(_make_question(fact, rng.choice(allowed[fact.fact_id]), rng.randrange(4), rng))
    return questions


def fact_statements(seed: int = SEED, *, country_weight: int = 1) -> list[str]:
    """Plain sentences stating the facts of :func:`training_facts` (the "generic text" of the base's training)."""
    return [
        _STATEMENTS[f.relation].format(f.subject, f.answer) for f in training_facts(seed, country_weight=country_weight)
    ]


def render_question(question: MCQuestion) -> str:
    """The prompt exactly as lm-eval renders ``doc_to_text`` of ``demo_general`` (MMLU style)."""
    lines = [question.question] + [f"{letter}. {option}" for letter, option in zip(LETTERS, question.options)]
    return "\n".join(lines) + "\nAnswer:"


def question_rows(questions: list[MCQuestion]) -> list[dict]:
    """Rows of the data files: ``id``, ``relation``, ``question``, ``A``-``D``, ``answer`` (0-3)."""
    return [
        {
            "id": q.fact_id,
            "relation": q.fact_id.split("-")[0],
            "question": q.question,
            **dict(zip(LETTERS, q.options)),
            "answer": q.label,
        }
        for q in questions
    ]


def test_file_text(seed: int = SEED) -> str:
    """The committed ``evalkit/tasks/data/demo_general/test.jsonl`` (one JSON object per line, keys sorted)."""
    import json

    rows = question_rows(test_questions(seed))
    return "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":  # python -m evalkit.demo.general_set > evalkit/tasks/data/demo_general/test.jsonl
    import sys

    sys.stdout.write(test_file_text())
