"""Tests for evalkit.taxonomy: tree structure, encoding, and the file loaders with their line-numbered errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.errors import UsageError
from evalkit.taxonomy import Taxonomy, load_taxonomy

PATHS = [
    "Delivery > Late > Courier delay",
    "Delivery > Late > Other",
    "Delivery > Lost",
    "Billing > Other",
    "Billing",  # a given label that is also an inner node
]


@pytest.fixture()
def tax() -> Taxonomy:
    return Taxonomy.from_paths(PATHS)


def test_nodes_leaves_labels_and_depth(tax):
    assert tax.nodes == [
        ("Billing",),
        ("Billing", "Other"),
        ("Delivery",),
        ("Delivery", "Late"),
        ("Delivery", "Late", "Courier delay"),
        ("Delivery", "Late", "Other"),
        ("Delivery", "Lost"),
    ]
    assert tax.leaves == [
        ("Billing", "Other"),
        ("Delivery", "Late", "Courier delay"),
        ("Delivery", "Late", "Other"),
        ("Delivery", "Lost"),
    ]
    assert len(tax) == 4
    assert tax.depth == 3
    assert tax.is_label(("Billing",)) and not tax.is_leaf(("Billing",))
    assert not tax.is_label(("Delivery",))
    assert tax.is_leaf("Delivery > Lost")


def test_repeated_name_under_two_parents_is_two_nodes(tax):
    a, b = tax.node_id(("Billing", "Other")), tax.node_id(("Delivery", "Late", "Other"))
    assert a != b
    assert tax.parent[a] == tax.node_id(("Billing",))
    assert tax.parent[b] == tax.node_id(("Delivery", "Late"))


def test_children_contains_format_parse(tax):
    assert tax.children() == [("Billing",), ("Delivery",)]
    assert tax.children(("Delivery", "Late")) == [("Delivery", "Late", "Courier delay"), ("Delivery", "Late", "Other")]
    assert tax.children("Delivery > Lost") == []
    with pytest.raises(KeyError, match="Nope"):
        tax.children(("Nope",))
    assert ("Delivery", "Late") in tax and "Delivery > Late" in tax and ("Late",) not in tax
    assert tax.format(("A", "B")) == "A > B"
    assert tax.parse(" A >B >  C ") == ("A", "B", "C")


def test_arrays(tax):
    courier = tax.node_id(("Delivery", "Late", "Courier delay"))
    assert tax.node_depth[courier] == 3
    assert tax.ancestors.shape == (7, 3)
    assert tax.ancestors[courier].tolist() == [tax.node_id(("Delivery",)), tax.node_id(("Delivery", "Late")), courier]
    lost = tax.node_id(("Delivery", "Lost"))
    assert tax.ancestors[lost, 2] == -1
    assert tax.parent[tax.node_id(("Delivery",))] == -1
    assert tax.is_leaf_node.sum() == 4 and tax.is_label_node.sum() == 5


def test_encode_decode(tax):
    ids = tax.encode(["Delivery > Lost", ("Delivery", "Lost"), ["Billing", "Other"], None, "", "Nope > X", "Delivery >> Lost", 3])
    lost = tax.node_id(("Delivery", "Lost"))
    assert ids.dtype == np.int64
    assert ids.tolist() == [lost, lost, tax.node_id(("Billing", "Other")), -1, -1, -1, -1, -1]
    assert tax.encode([("Delivery", "Lost", "")]).tolist() == [lost]  # padded per-level form
    assert tax.decode([lost, -1]) == [("Delivery", "Lost"), None]


def test_from_paths_rejects_empty_names():
    with pytest.raises(ValueError, match="position 1: empty name at level 2"):
        Taxonomy.from_paths(["A > B", "A >  > B"])
    with pytest.raises(ValueError, match="position 0: empty path"):
        Taxonomy.from_paths([""])


def test_from_data_skips_missing_and_merges_duplicates():
    tax = Taxonomy.from_data(["A > B", None, "", float("nan"), "A > B", ("A", "C")])
    assert tax.labels == [("A", "B"), ("A", "C")]


def test_equality_fingerprint_and_to_tree(tax):
    assert tax == Taxonomy.from_paths(reversed(PATHS))
    assert tax.fingerprint() == Taxonomy.from_paths(reversed(PATHS)).fingerprint()
    assert tax.fingerprint() != Taxonomy.from_paths(PATHS[:-1]).fingerprint()
    assert tax.to_tree() == {
        "Billing": {"Other": None},
        "Delivery": {"Late": {"Courier delay": None, "Other": None}, "Lost": None},
    }


def test_custom_separator():
    tax = Taxonomy.from_paths(["A / B", "A / C"], sep=" / ")
    assert tax.format(("A", "B")) == "A / B"
    assert tax.encode(["A / C", "A > C"]).tolist() == [tax.node_id(("A", "C")), -1]
    with pytest.raises(ValueError, match="'sep' parameter"):
        Taxonomy.from_paths(["A"], sep=" ")


# ------------------------------------------------------------------------------------------ loaders
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


YAML_TREE = """\
Delivery:
  Late:
    - Courier delay
    - Other
  Lost: null
  Damaged: {}
Billing:
  Other:
"""


def test_load_yaml_tree(tmp_path):
    tax = load_taxonomy(write(tmp_path, "t.yaml", YAML_TREE))
    assert tax.leaves == [
        ("Billing", "Other"),
        ("Delivery", "Damaged"),
        ("Delivery", "Late", "Courier delay"),
        ("Delivery", "Late", "Other"),
        ("Delivery", "Lost"),
    ]


def test_load_json_tree(tmp_path):
    tree = {"A": {"B": ["x", "y"], "C": None}, "D": {}}
    tax = load_taxonomy(write(tmp_path, "t.json", json.dumps(tree)))
    assert tax.leaves == [("A", "B", "x"), ("A", "B", "y"), ("A", "C"), ("D",)]


def test_yaml_duplicate_key_names_line(tmp_path):
    text = "A:\n  B: null\n  C: null\n  B: null\n"
    with pytest.raises(UsageError, match=r"t.yaml line 4: duplicate key 'B' \(first on line 2\)"):
        load_taxonomy(write(tmp_path, "t.yaml", text))


def test_yaml_duplicate_list_item_names_key_path(tmp_path):
    with pytest.raises(UsageError, match="duplicate name 'x' under 'A > B'"):
        load_taxonomy(write(tmp_path, "t.yaml", "A:\n  B: [x, y, x]\n"))


def test_yaml_bad_values_name_key_path(tmp_path):
    with pytest.raises(UsageError, match="'A > B' has value 3"):
        load_taxonomy(write(tmp_path, "t.yaml", "A:\n  B: 3\n"))
    with pytest.raises(UsageError, match="under 'A': empty name"):
        load_taxonomy(write(tmp_path, "t.yaml", "A:\n  '': null\n"))
    with pytest.raises(UsageError, match="under 'A': name True is not a string"):
        load_taxonomy(write(tmp_path, "t.yaml", "A:\n  yes: null\n"))
    with pytest.raises(UsageError, match="not valid YAML"):
        load_taxonomy(write(tmp_path, "t.yaml", "A: [\n"))


def test_json_duplicate_key(tmp_path):
    with pytest.raises(UsageError, match=r"duplicate key\(s\) \['B'\]"):
        load_taxonomy(write(tmp_path, "t.json", '{"A": {"B": null, "B": {}}}'))


def test_load_txt_skips_blank_and_comments(tmp_path):
    tax = load_taxonomy(write(tmp_path, "t.txt", "# labels\nA > B\n\nA > C > D\n"))
    assert tax.labels == [("A", "B"), ("A", "C", "D")]


def test_txt_errors_name_line(tmp_path):
    with pytest.raises(UsageError, match=r"t.txt line 4: duplicate label path 'A > B' \(first on line 1\)"):
        load_taxonomy(write(tmp_path, "t.txt", "A > B\nA > C\n\nA >B\n"))
    with pytest.raises(UsageError, match="t.txt line 2: empty name at level 2 in 'A >  > B'"):
        load_taxonomy(write(tmp_path, "t.txt", "A > C\nA >  > B\n"))


def test_load_csv_first_column_without_header(tmp_path):
    tax = load_taxonomy(write(tmp_path, "t.csv", 'A > B,12\n"A > C, with comma",3\n'))
    assert tax.labels == [("A", "B"), ("A", "C, with comma")]


def test_load_csv_named_column_and_line_numbers(tmp_path):
    text = 'count,label\n1,A > B\n2,"A > \nC"\n3,A > B\n'  # a quoted cell spans lines 3-4
    with pytest.raises(UsageError, match=r"t.csv line 5: duplicate label path 'A > B' \(first on line 2\)"):
        load_taxonomy(write(tmp_path, "t.csv", text))
    with pytest.raises(UsageError, match="t.csv line 3: row has 1 column"):
        load_taxonomy(write(tmp_path, "t.csv", "n,path\n1,A\n2\n"))


def test_load_csv_level_columns_skip_empty_levels(tmp_path):
    text = "product,sub_product,issue,count\nA,B,C,1\nA,B,,2\nD,,E,3\n"
    tax = load_taxonomy(write(tmp_path, "t.csv", text), columns=["product", "sub_product", "issue"])
    assert tax.labels == [("A", "B"), ("A", "B", "C"), ("D", "E")]
    with pytest.raises(UsageError, match="header has no column"):
        load_taxonomy(write(tmp_path, "t.csv", text), columns=["product", "nope"])


def test_load_errors_for_file_and_format(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_taxonomy(tmp_path / "missing.yaml")
    with pytest.raises(UsageError, match="unknown format '.xml'"):
        load_taxonomy(write(tmp_path, "t.xml", "<a/>"))
    with pytest.raises(UsageError, match="contains no label paths"):
        load_taxonomy(write(tmp_path, "t.txt", "# nothing\n"))


def test_cfpb_taxonomy_counts(shared_data):
    path = shared_data / "voc" / "cfpb" / "taxonomy_counts.csv"
    if not path.exists():
        pytest.skip("CFPB taxonomy_counts.csv absent")
    tax = load_taxonomy(path, columns=["product", "sub_product", "issue", "sub_issue"])
    assert len(tax.labels) == 441  # PROVENANCE.md: 441 leaf paths
    assert tax.depth == 4
    assert len(tax.children()) == 13  # 13 products
