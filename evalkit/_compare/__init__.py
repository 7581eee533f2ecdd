"""Compare checkpoints: paired deltas and significance tests, breakdowns, flips -> ``comparison.json``.

The dictionary layout is specified in ``docs/comparison-schema.md`` (schema version 1).

The public entry is :func:`evalkit.compare` (``evalkit.api.compare``), which returns a
:class:`~evalkit.comparison.Comparison`; :func:`build_comparison` (also ``evalkit.build_comparison``)
returns the plain dictionary. The package is private (``_compare``) so that ``evalkit.compare`` stays
the function: importing a package named ``evalkit.compare`` would rebind that name to the package.
"""

from ..comparison_format import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION
from ._build import build_comparison, pick_baseline
from ._common import json_safe
from ._files import comparison_from_results_files, load_comparison, load_results_files, split_label, write_comparison

__all__ = [
    "build_comparison",
    "load_comparison",
    "write_comparison",
    "comparison_from_results_files",
    "load_results_files",
    "split_label",
    "json_safe",
    "pick_baseline",
    "COMPARISON_KIND",
    "COMPARISON_SCHEMA_VERSION",
]
