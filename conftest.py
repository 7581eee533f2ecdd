"""Collection rules for the whole checkout (the test fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent / "evalkit"


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Skip the package's modules that hold no doctest example.

    ``--doctest-modules`` imports every module to look for examples; a module without ``>>>`` has none, and
    importing it only to find that out cost each test worker seconds (``evalkit.integrations.transformers``
    imports transformers' Trainer stack, and with it peft: ~6 CPU s).
    """
    if collection_path.suffix != ".py" or PACKAGE not in collection_path.parents:
        return None
    return ">>>" not in collection_path.read_text(encoding="utf-8")
