"""Model output -> label path: the exact / normalized / closest / invalid rules of evalkit.voc.parsing."""

from __future__ import annotations

import pytest

from evalkit.taxonomy import Taxonomy
from evalkit.voc.parsing import OutputParser, clean_output

PATHS = [
    "Delivery > Late delivery > Courier delay",
    "Delivery > Late delivery > Backorder",
    "Delivery > Other",
    "Billing > Other",
    "Billing > Charges > Charged twice",
    "Debt collection > Taking/threatening an illegal action > Threatened to sue",
    "Mortgage > FHA mortgage",               # a label that is also an inner node
    "Mortgage > FHA mortgage > Escrow",
]


@pytest.fixture(scope="module")
def parser() -> OutputParser:
    return OutputParser(Taxonomy.from_paths(PATHS))


@pytest.mark.parametrize("raw", [
    "Delivery > Late delivery > Courier delay",
    "  Delivery > Late delivery > Courier delay  \n",
])
def test_exact(parser, raw):
    result = parser.parse(raw)
    assert result.path == ("Delivery", "Late delivery", "Courier delay")
    assert result.rule == "exact"


@pytest.mark.parametrize("raw", [
    "delivery > late delivery > courier delay",             # case
    "DELIVERY  >   Late   delivery >Courier delay",         # whitespace
    "Delivery/Late delivery/Courier delay",                 # separators ...
    "Delivery / Late delivery / Courier delay",
    "Delivery | Late delivery | Courier delay",
    "Delivery -> Late delivery -> Courier delay",
    "Delivery » Late delivery » Courier delay",
    "Delivery>Late delivery>Courier delay",
    'Label: "Delivery > Late delivery > Courier delay".',   # wrappers and a prefix
    "- Delivery > Late delivery > Courier delay\nbecause the parcel was late",
    "**Category:** `Delivery > Late delivery > Courier delay`",
])
def test_normalized_case_whitespace_separators(parser, raw):
    result = parser.parse(raw)
    assert result.path == ("Delivery", "Late delivery", "Courier delay"), raw
    assert result.rule == "normalized"


def test_name_containing_a_separator_character(parser):
    for raw in ("debt collection / taking/threatening an illegal action / threatened to sue",
                "Debt collection>Taking/threatening an illegal action>Threatened to sue"):
        result = parser.parse(raw)
        assert result.path == ("Debt collection", "Taking/threatening an illegal action", "Threatened to sue")
        assert result.rule == "normalized"


def test_closest_level_by_level(parser):
    result = parser.parse("Delivry > Late delivry > Courier dealy")
    assert result.path == ("Delivery", "Late delivery", "Courier delay")
    assert result.rule == "closest"
    fuzzy_inner = parser.parse("Debt colection > Taking/threatning an illegal action > Threatened to sue")
    assert fuzzy_inner.path == ("Debt collection", "Taking/threatening an illegal action", "Threatened to sue")


def test_closest_recovers_skipped_level_and_bare_unique_leaf(parser):
    skipped = parser.parse("Delivery > Backorder")
    assert (skipped.path, skipped.rule) == (("Delivery", "Late delivery", "Backorder"), "closest")
    bare = parser.parse("charged twice")
    assert (bare.path, bare.rule) == (("Billing", "Charges", "Charged twice"), "closest")


def test_closest_respects_cutoff():
    tax = Taxonomy.from_paths(PATHS)
    assert OutputParser(tax, cutoff=0.8).parse("Delivry > Other").path == ("Delivery", "Other")
    assert OutputParser(tax, cutoff=0.99).parse("Delivry > Other").path is None
    with pytest.raises(ValueError, match="'cutoff'"):
        OutputParser(tax, cutoff=0)


@pytest.mark.parametrize("raw", [
    "",
    "   \n  ",
    "Other",                                          # ambiguous: "Other" under two parents
    "Delivery > Late delivery",                       # an inner node that is not a label
    "Delivery > Late delivery > Courier delay > Extra",  # deeper than the leaf
    "Completely unrelated text about weather",
    "Shipping > Late > Courier",                      # nothing close enough at level 1
])
def test_invalid(parser, raw):
    result = parser.parse(raw)
    assert result.path is None and result.invalid and result.rule == "invalid", raw


def test_labelled_inner_node_and_its_child(parser):
    assert parser.parse("Mortgage > FHA mortgage").path == ("Mortgage", "FHA mortgage")
    assert parser.parse("mortgage/fha mortgage/escrow").path == ("Mortgage", "FHA mortgage", "Escrow")


def test_repeated_names_are_told_apart_by_parent(parser):
    assert parser.parse("billing > other").path == ("Billing", "Other")
    assert parser.parse("delivery > other").path == ("Delivery", "Other")


def test_clean_output():
    assert clean_output("Answer: 'A > B'.") == "A > B"
    assert clean_output("\n\n1. A > B\nmore") == "A > B"
    assert clean_output(None) == ""
    assert clean_output("<think>\nmaybe X > Y\n</think>\n\nA > B") == "A > B"
    assert clean_output("<think>unfinished A > B") == ""
