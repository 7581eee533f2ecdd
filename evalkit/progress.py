"""Progress bars with ETA on stderr (tqdm), quiet when stderr is not a terminal unless forced."""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["bar"]


def bar(total: int | None, desc: str, unit: str = "sample", **kwargs: Any):
    """A tqdm bar; ``EVALKIT_PROGRESS=1`` forces it on, ``=0`` off (default: on for a terminal)."""
    from tqdm.auto import tqdm

    forced = os.environ.get("EVALKIT_PROGRESS")
    disable = (forced == "0") if forced in ("0", "1") else not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=False, **kwargs)
