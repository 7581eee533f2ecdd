"""``evalkit.__all__`` is the object API, and each of its names (and every older lazy name) resolves."""

from __future__ import annotations

import evalkit


def test_all_is_the_object_api_and_resolves():
    assert set(evalkit.__all__) - {"__version__"} <= set(evalkit._PUBLIC)
    assert {"evaluate", "compare", "Comparison", "Verdict", "EvalResult"} <= set(evalkit.__all__)
    assert not {"build_comparison", "write_reports", "evaluate_policy", "evaluate_checkpoint",
                "get_evaluator"} & set(evalkit.__all__)  # dict-level pieces live in their packages
    for name in evalkit.__all__:
        assert getattr(evalkit, name) is not None


def test_lower_level_names_stay_importable_from_evalkit():
    for name in set(evalkit._PUBLIC) - set(evalkit.__all__):
        assert callable(getattr(evalkit, name)), name
