"""The general-capability axis (lm-eval tasks: MMLU, IFEval, any lm-eval task).

- :mod:`evalkit.general.evaluator`: the ``lm_eval`` evaluator, with its parts in
  :mod:`evalkit.general.lmeval` (task loading, per-kind strategies, request scheduling, metric specs);
- :mod:`evalkit.general.punkt`: NLTK ``punkt_tab`` provisioned offline for IFEval;
- :mod:`evalkit.general.mmlu_data`: local MMLU folders (original CSV or ``cais/mmlu`` parquet layout);
- :mod:`evalkit.general.overrides`: lm-eval task YAMLs generated for local data and the generative
  (letter-answer) MMLU variant.

Nothing here imports lm-eval, torch or pandas at module level.
"""

from __future__ import annotations


from .._io import cache_dir

__all__ = ["cache_dir"]
