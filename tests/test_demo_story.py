"""The demo end to end: real training on this host, then the study's story and its bounds.

Alone in its module: it is the suite's longest test (~8 CPU minutes), and the two test workers take whole
modules, so the demo's other tests (``tests/test_demo.py``) run on the other worker meanwhile.
"""

from __future__ import annotations

import json

import pytest

from evalkit.demo.checkpoints import Recipe

def _metric_row(comparison: dict, task: str, metric: str, checkpoint: str) -> dict:
    rows = [r for r in comparison["metrics"] if (r["task"], r["metric"], r["checkpoint"]) == (task, metric, checkpoint)]
    assert len(rows) == 1, (task, metric, checkpoint)
    return rows[0]


def _metric(comparison: dict, task: str, metric: str, checkpoint: str) -> float:
    return _metric_row(comparison, task, metric, checkpoint)["value"]


def _gate_status(comparison: dict, checkpoint: str) -> str:
    """The checkpoint's overall gate status: the worst of its checks."""
    from evalkit.gate import checkpoint_statuses

    return checkpoint_statuses(comparison["verdict"]["checks"])[checkpoint]


#: Seeds of the end-to-end demo test: 0 (the shipped recipe) by default; EVALKIT_DEMO_SEEDS=0,1,2 checks
#: that the story does not hang on one seed (about 5 CPU-minutes each; bench/demo/README.md has figures).
DEMO_SEEDS = [int(s) for s in __import__("os").environ.get("EVALKIT_DEMO_SEEDS", "0").split(",") if s.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("seed", DEMO_SEEDS)
def test_full_demo_tells_the_studys_story(tmp_path, store_path, seed, monkeypatch):
    """Base knows the facts; domain-only forgets them significantly and fails its gate; the 75/25 mix keeps them
    and passes; both learn the domain; a later plain `evalkit compare` of the same checkpoints is answered from
    the store.

    The story's bounds, not one machine's figures: a training run's exact numbers follow the host's
    floating-point paths (the domain-only drop was 0.37-0.60 over 3 seeds x 2 kernel paths and another host;
    bench/demo/README.md), so the README table is checked against its recorded run elsewhere, never here."""
    from evalkit.checkpoints import kinds as loaders
    from evalkit.demo import run_demo

    out = tmp_path / "report"
    # Beside another xdist worker, two training processes per model measured slower (in wall and CPU) than one:
    # they wait on each other's gradients while the other worker holds a core. Same weights either way.
    processes = 1 if __import__("os").environ.get("PYTEST_XDIST_WORKER") else None
    code = run_demo(out=out, cache_dir=tmp_path / "cache", retrain=False, store_path=str(store_path),
                    recipe=Recipe(seed=seed), processes=processes)
    comparison = json.loads((out / "comparison.json").read_text())
    general = {cp: _metric_row(comparison, "demo_general", "acc", cp) for cp in ("base", "domain_only", "mixed_75_25")}
    domain = {cp: _metric(comparison, "demo_voc", "leaf_macro_f1", cp) for cp in ("base", "domain_only", "mixed_75_25")}
    assert general["base"]["value"] >= 0.9 and general["base"]["n"] >= 300, general["base"]
    assert general["domain_only"]["delta"] <= -0.3 and general["domain_only"]["p_value"] < 0.05, general["domain_only"]
    assert general["mixed_75_25"]["delta"] >= -0.05, general["mixed_75_25"]  # within the policy's 0.1 margin
    assert _gate_status(comparison, "domain_only") == "fail" and _gate_status(comparison, "mixed_75_25") == "pass"
    # issue 23: no delta interval past what the baseline value allows, no marker whose interval spans 0
    for row in comparison["metrics"]:
        if row["checkpoint"] != "base" and row["delta_ci_low"] is not None and row["metric"] in ("acc", "leaf_macro_f1"):
            assert -row["baseline_value"] - 1e-9 <= row["delta_ci_low"] <= row["delta_ci_high"] \
                <= 1 - row["baseline_value"] + 1e-9, row
        if row.get("significant"):
            assert row["delta_ci_low"] > 0 or row["delta_ci_high"] < 0, row
    # both fine-tunes learn the domain (the base is near 0; runs so far: 0.92-0.96)
    assert domain["base"] < 0.2 and domain["domain_only"] >= 0.85 and domain["mixed_75_25"] >= 0.85, domain
    assert code == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    # the demo's stored runs answer a plain compare of the same checkpoints: no model is loaded
    monkeypatch.setattr(loaders, "load_lm", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")))
    from evalkit.cli.commands import compare_pipeline
    from evalkit.checkpoints import LoadOptions

    specs = [f"{c['label']}={c['spec'].split('=', 1)[-1]}" for c in comparison["checkpoints"]]
    assert compare_pipeline(specs=specs, tasks="demo_voc,demo_general", out=tmp_path / "again", baseline="base",
                            baseline_results=[], policy=None, notes=[], overrides=[], rerun=False,
                            load_options=LoadOptions(), store_path=str(store_path)) == 0
