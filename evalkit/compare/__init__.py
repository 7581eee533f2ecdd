"""Compare checkpoints: paired deltas and significance tests, breakdowns, flips -> ``comparison.json``.

The dictionary layout is specified in ``docs/comparison-schema.md`` (schema version 1).

This package is also the public function ``evalkit.compare(*results, baseline=None, notes=None)``
(see :func:`evalkit.api.compare`): a package and a function cannot share the name ``evalkit.compare``
(importing the package rebinds it), so the package itself is made callable.
"""

import sys
import types

from ._build import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION, build_comparison
from ._files import comparison_from_results_files, load_comparison, load_results_files, split_label, write_comparison

__all__ = ["build_comparison", "load_comparison", "write_comparison", "comparison_from_results_files",
           "load_results_files", "split_label",
           "COMPARISON_KIND", "COMPARISON_SCHEMA_VERSION"]


class _CallableModule(types.ModuleType):
    def __call__(self, *results, baseline=None, notes=None, **settings):
        """``evalkit.compare(*results, baseline=None, notes=None, **settings) -> Comparison``."""
        from ..api import compare

        return compare(*results, baseline=baseline, notes=notes, **settings)


sys.modules[__name__].__class__ = _CallableModule
