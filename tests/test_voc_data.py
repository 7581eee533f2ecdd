"""VOC data loading (CSV/JSONL/Parquet, per-level labels, splits, taxonomy checks), sample data, prompts."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.taskconfig import shipped_tasks_dir
from evalkit.taxonomy import Taxonomy
from evalkit.voc.dataset import DataSpec, load_voc_data, read_examples
from evalkit.voc.prompting import PromptBuilder, fewshot_examples, load_template_text, plan_prompts
from evalkit.voc.sample_data import SAMPLE_TAXONOMY, generate_sample_data, sample_files

ROWS = [
    {"cid": "a1", "body": "late parcel", "l1": "Delivery", "l2": "Late", "l3": "Courier", "split": "test"},
    {"cid": "a2", "body": "charged twice", "l1": "Billing", "l2": "Charges", "l3": "", "split": "train"},
    {"cid": "a3", "body": "rude agent", "l1": "Service", "l2": "", "l3": "", "split": "test"},
    {"cid": "a4", "body": "lost box", "l1": "Delivery", "l2": "Lost", "l3": "Other", "split": "train"},
]
PATHS = [("Delivery", "Late", "Courier"), ("Billing", "Charges"), ("Service",), ("Delivery", "Lost", "Other")]


def _write(rows: list[dict], path: Path) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_formats_and_per_level_columns_with_empty_levels(tmp_path, suffix):
    path = _write(ROWS, tmp_path / f"data{suffix}")
    spec = DataSpec(data=path, text_field="body", id_field="cid", label_fields=("l1", "l2", "l3"))
    examples = read_examples(spec, path)
    assert [ex.sample_id for ex in examples] == ["a1", "a2", "a3", "a4"]
    assert [ex.path for ex in examples] == PATHS  # empty levels skipped -> shallower leaves
    assert [ex.text for ex in examples] == [r["body"] for r in ROWS]


def test_path_column_default_ids_and_split(tmp_path):
    rows = [{"text": r["body"], "label": " > ".join(p), "split": r["split"]} for r, p in zip(ROWS, PATHS)]
    path = _write(rows, tmp_path / "data.csv")
    data = load_voc_data(DataSpec(data=path, label_field="label", split_field="split"))
    assert [ex.sample_id for ex in data.test] == ["1", "3"]  # row numbers of the test rows
    assert [ex.path for ex in data.train] == [PATHS[1], PATHS[3]]
    assert sorted(data.taxonomy.labels) == sorted(PATHS)
    assert data.train_counts() == {PATHS[1]: 1, PATHS[3]: 1}


def test_unknown_labels_list_first_rows(tmp_path):
    rows = [{"text": f"t{i}", "label": "Delivery > Late > Courier" if i % 2 else f"Nope > {i}"} for i in range(1, 11)]
    path = _write(rows, tmp_path / "data.csv")
    tax = tmp_path / "taxonomy.txt"
    tax.write_text("Delivery > Late > Courier\nBilling > Charges\n", encoding="utf-8")
    with pytest.raises(UsageError) as info:
        load_voc_data(DataSpec(data=path, label_field="label", taxonomy=tax))
    message = str(info.value)
    assert "5 row(s)" in message and "row 2: 'Nope > 2'" in message and "row 10: 'Nope > 10'" in message
    assert "row 1:" not in message


def test_unknown_labels_truncates_the_list(tmp_path):
    rows = [{"text": "t", "label": f"Nope > {i}"} for i in range(9)]
    tax = tmp_path / "taxonomy.txt"
    tax.write_text("A > B\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"row 5: 'Nope > 4' \(and 4 more\)"):
        load_voc_data(DataSpec(data=_write(rows, tmp_path / "d.csv"), label_field="label", taxonomy=tax))


@pytest.mark.parametrize("change, pattern", [
    ({"text_field": "missing"}, r"column 'missing' \(key 'text_field'\) not found"),
    ({"id_field": "dup"}, r"sample ids must be unique.*'x' x4"),
    ({"label_field": "empty"}, r"4 row\(s\) have an empty label: row 1; row 2"),
])
def test_bad_columns(tmp_path, change, pattern):
    rows = [{"text": "t", "label": "A > B", "dup": "x", "empty": ""} for _ in range(4)]
    spec = DataSpec(data=_write(rows, tmp_path / "d.csv"), **{"label_field": "label", **change})
    with pytest.raises(UsageError, match=pattern):
        load_voc_data(spec)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(UsageError, match="data file not found"):
        load_voc_data(DataSpec(data=tmp_path / "none.csv", label_field="label"))
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(UsageError, match="unsupported data file type '.xlsx'"):
        load_voc_data(DataSpec(data=tmp_path / "d.xlsx", label_field="label"))


# ----------------------------------------------------------------------------- sample data

def test_committed_sample_files_equal_a_fresh_generation():
    folder = shipped_tasks_dir() / "data" / "voc_sample"
    fresh = sample_files(seed=0)
    assert sorted(p.name for p in folder.iterdir()) == sorted(fresh)
    for name, text in fresh.items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{name} differs: rerun python -m evalkit.voc.sample_data"
    assert sum((folder / n).stat().st_size for n in fresh) < 1_000_000


def test_sample_data_is_deterministic_and_shaped_as_promised():
    first, again, other = generate_sample_data(0), generate_sample_data(0), generate_sample_data(1)
    assert first == again and first.train != other.train
    assert len(first.train) == 1500 and len(first.test) == 300
    assert 40 <= len(first.leaves) <= 80 and max(map(len, first.leaves)) == 4
    assert any(len(leaf) == 3 for leaf in first.leaves)
    tax = Taxonomy.from_paths(first.leaves)
    assert len(tax.leaves) == len(first.leaves)  # every path is a real leaf (no path is a prefix of another)
    assert Counter(leaf[-1] for leaf in first.leaves)["Other"] >= 3
    counts = Counter(label for _, _, label in first.train)
    assert len(counts) == len(first.leaves) and min(counts.values()) >= 3
    assert max(counts.values()) > 20 * min(counts.values())  # long tail
    phrases = [p for v in SAMPLE_TAXONOMY.values() for p in v]
    assert len(phrases) == len(set(phrases))  # each key phrase points to one leaf
    for _, text, label in first.test[:50]:
        leaf = tuple(label.split(" > "))
        assert any(p in text or p[0].upper() + p[1:] in text for p in SAMPLE_TAXONOMY[leaf])


# ----------------------------------------------------------------------------- prompts

def _builder(template: str | None = None) -> PromptBuilder:
    tax = Taxonomy.from_paths(["Delivery > Late", "Delivery > Lost", "Billing"])
    return PromptBuilder(load_template_text(template, Path(".")), tax)


def test_default_prompt_label_blocks_and_examples():
    from evalkit.voc.dataset import VocExample

    builder = _builder()
    plain = builder.render("my parcel is late")
    assert plain.endswith("Comment: my parcel is late\nLabel:") and "Valid categories" not in plain
    paths = builder.render("x", label_options="paths")
    assert "- Delivery > Late\n- Delivery > Lost" in paths
    assert "Level 2: Late; Lost" in builder.render("x", label_options="levels")
    shot = VocExample("s1", "box lost", ("Delivery", "Lost"), 1)
    assert "Comment: box lost\nLabel: Delivery > Lost\n\nComment: x\nLabel:" in builder.render("x", examples=[shot])


def test_template_is_sandboxed_and_comment_text_is_not_template_code():
    builder = _builder("{{ text }} :: {{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(UsageError, match="cannot render"):
        builder.render("hi")
    assert _builder("[{{ text }}]").render("{{ 7 * 7 }} {% if 1 %}x{% endif %}") == "[{{ 7 * 7 }} {% if 1 %}x{% endif %}]"
    with pytest.raises(UsageError, match="syntax error"):
        _builder("{{ text ")


def test_template_from_file(tmp_path):
    (tmp_path / "p.jinja").write_text("Q: {{ text }}\nA:", encoding="utf-8")
    assert load_template_text("p.jinja", tmp_path) == "Q: {{ text }}\nA:"
    with pytest.raises(UsageError, match="prompt template file not found"):
        load_template_text("missing.jinja", tmp_path)


def test_fewshot_is_seeded_per_sample_and_excludes_the_sample():
    from evalkit.voc.dataset import VocExample

    pool = [VocExample(str(i), f"t{i}", ("A",), i) for i in range(20)]
    first = fewshot_examples(pool, "3", 5, seed=0)
    assert first == fewshot_examples(pool, "3", 5, seed=0) and len(first) == 5
    assert first != fewshot_examples(pool, "3", 5, seed=1)
    assert all(ex.sample_id != "3" for ex in fewshot_examples(pool, "3", 19, seed=0))
    assert fewshot_examples(pool, "3", 0, seed=0) == []


class _ShortLM:
    """No tokenizer (chars/4 estimate), a fixed context length, no chat template."""

    def __init__(self, max_length: int):
        self.max_length = max_length


def test_context_guard_falls_back_then_errors():
    builder = PromptBuilder(load_template_text(None, Path(".")), Taxonomy.from_paths(SAMPLE_TAXONOMY))
    paths_len = len(builder.render("", label_options="paths")) // 4
    levels_len = len(builder.render("", label_options="levels")) // 4
    assert levels_len < paths_len
    common = dict(label_options="paths", chat_template=None, answer_tokens=10, min_comment_tokens=5)
    roomy = plan_prompts(_ShortLM(paths_len + 50), builder, fallback=True, **common)
    assert roomy.label_options == "paths" and roomy.counter.method == "chars/4" and roomy.chat is False
    tight = plan_prompts(_ShortLM(levels_len + 20), builder, fallback=True, **common)
    assert tight.label_options == "levels"
    with pytest.raises(UsageError, match="prompt too long.*label_options='paths'"):
        plan_prompts(_ShortLM(levels_len + 20), builder, fallback=False, **common)
    with pytest.raises(UsageError, match="prompt too long.*label_options='none'"):
        plan_prompts(_ShortLM(12), builder, fallback=True, **common)


def test_long_comment_is_truncated_to_fit():
    plan = plan_prompts(_ShortLM(60), _builder(), label_options="none", chat_template=None, answer_tokens=5,
                        min_comment_tokens=1, fallback=True)
    prompt, truncated, _ = plan.build("word " * 400, [])
    assert truncated and len(prompt) // 4 <= 60 - 5
    assert plan.build("short", []) == (_builder().render("short"), False, 0)


def test_fewshot_examples_that_do_not_fit_are_dropped():
    from evalkit.voc.dataset import VocExample

    plan = plan_prompts(_ShortLM(100), _builder(), label_options="none", chat_template=None, answer_tokens=5,
                        min_comment_tokens=10, fallback=True)
    short = VocExample("s", "box lost", ("Delivery", "Lost"), 1)
    long = VocExample("l", "very long example " * 30, ("Billing",), 2)
    prompt, truncated, used = plan.build("my comment", [short, long])
    assert used == 1 and "box lost" in prompt and "very long" not in prompt and not truncated


def test_a_fallback_is_said_once_per_process(caplog, monkeypatch):
    """The same fallback at every evaluation (each training step, each checkpoint) warns once."""
    import logging

    import evalkit.voc.prompting as prompting

    monkeypatch.setattr(prompting, "_WARNED", set())
    builder = PromptBuilder(load_template_text(None, Path(".")), Taxonomy.from_paths(SAMPLE_TAXONOMY))
    levels_len = len(builder.render("", label_options="levels")) // 4
    common = dict(label_options="paths", chat_template=None, answer_tokens=10, min_comment_tokens=5, fallback=True)
    with caplog.at_level(logging.DEBUG, logger="evalkit.voc.prompting"):
        for _ in range(3):
            assert plan_prompts(_ShortLM(levels_len + 20), builder, **common).label_options == "levels"
        plan_prompts(_ShortLM(levels_len + 21), builder, **common)  # another context: another message
    levels = [r.levelname for r in caplog.records if "falling back to label_options='levels'" in r.getMessage()]
    assert levels == ["WARNING", "DEBUG", "DEBUG", "WARNING"]
