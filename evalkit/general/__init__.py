"""Helpers for the general-capability axis (lm-eval tasks: MMLU, IFEval, any lm-eval task).

- :mod:`evalkit.general.punkt`: NLTK ``punkt_tab`` provisioned offline for IFEval;
- :mod:`evalkit.general.mmlu_data`: local MMLU folders (original CSV or ``cais/mmlu`` parquet layout);
- :mod:`evalkit.general.overrides`: lm-eval task YAMLs generated for local data and the generative
  (letter-answer) MMLU variant.

Nothing here imports lm-eval, torch or pandas at module level.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """evalkit's cache folder (``EVALKIT_CACHE_DIR`` or the user cache dir), created on demand."""
    env = os.environ.get("EVALKIT_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("evalkit"))
    path.mkdir(parents=True, exist_ok=True)
    return path
