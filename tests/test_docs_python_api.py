"""docs/python-api.md is run as a doctest: its examples are what a new user types, on a tiny chat model."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


@pytest.mark.slow
def test_python_api_doc_examples_run(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_PROGRESS", "0")
    failures, tried = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS,
                                       raise_on_error=False, verbose=False)
    assert tried > 10
    assert failures == 0, f"{failures} of {tried} examples in {DOC.name} failed (see the output above)"
