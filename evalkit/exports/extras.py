"""Optional integrations import their library only when used; a missing one is one line naming the extra."""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from ..errors import UsageError

__all__ = ["require", "EXTRAS"]

#: Library module -> the evalkit extra that installs it.
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb", "huggingface_hub": "hub"}


def require(module: str, purpose: str, *, param: str | None = None) -> ModuleType:
    """Import ``module`` or raise a :class:`UsageError` naming the extra that provides it.

    >>> require("json", "reading JSON").__name__
    'json'
    >>> require("wandb_missing_for_the_doctest", "logging")
    Traceback (most recent call last):
    ...
    evalkit.errors.UsageError: logging needs the wandb_missing_for_the_doctest package: pip install 'evalkit[wandb_missing_for_the_doctest]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and not (exc.name == module or module.startswith(exc.name + ".")):
            raise  # the library is there but broken: its own error says more
        extra = EXTRAS.get(module, re.split(r"\W", module)[0])
        raise UsageError(f"{purpose} needs the {module} package: pip install 'evalkit[{extra}]'", param=param) from None
