"""The throughput READMEs' tables are the recorded runs' tables (bench/general_overhead/runs/*.json)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "general_overhead"


def _marked_block(readme: Path, marker: str) -> list[str]:
    """The lines between ``<!-- marker: ... -->`` and ``<!-- /marker -->`` in ``readme``."""
    text = readme.read_text(encoding="utf-8")
    start = text.index("\n", text.index(f"<!-- {marker}:")) + 1
    return text[start : text.index(f"<!-- /{marker} -->")].strip().splitlines()


def _table(*names: str) -> list[str]:
    spec = importlib.util.spec_from_file_location("general_overhead_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.from_json([str(BENCH / "runs" / name) for name in names])
    return out.getvalue().strip().splitlines()


@pytest.mark.parametrize("runs", [
    ("mmlu_0shot_limits_5_20_100_full.json", "mmlu_0shot_full_2.json"),
    ("mmlu_5shot_limits_5_20_100.json", "mmlu_5shot_full_1.json", "mmlu_5shot_full_2.json"),
], ids=["0-shot", "5-shot"])
def test_general_overhead_readme_tables_are_the_recorded_runs(runs):
    readme = (BENCH / "README.md").read_text(encoding="utf-8").splitlines()
    table = _table(*runs)
    assert len(table) == 6  # header, rule, --limit 5, 20, 100, full
    for row in table:
        assert row in readme, f"bench/general_overhead/README.md is stale; paste `run.py --from-json` output: {row}"
    for row in table[2:]:  # every size: evalkit's wall at or below lm-eval's (median of the pair ratios)
        assert float(row.split("|")[6]) <= 1.0


def test_gating_operating_characteristic_readme_is_the_recorded_run_and_meets_the_targets():
    """bench/gating: the README's table is oc.json's, and the recorded run meets issue 23's targets."""
    import json

    gating = REPO / "bench" / "gating"
    if not (gating / "oc.json").exists():
        pytest.skip("bench/gating/oc.json not recorded yet")
    spec = importlib.util.spec_from_file_location("gating_oc", gating / "oc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = json.loads((gating / "oc.json").read_text(encoding="utf-8"))
    readme = (gating / "README.md").read_text(encoding="utf-8").splitlines()
    for row in module.table(data):
        assert row in readme, f"bench/gating/README.md is stale; paste `oc.py --table` output: {row}"
    alpha, runs = data["settings"]["alpha"], data["settings"]["runs"]
    slack = 2 * (alpha * (1 - alpha) / runs) ** 0.5  # Monte Carlo error of a rate near alpha
    for cell in data["cells"]:
        if cell["multiple"] == 1.0:
            assert cell["pass"] <= alpha + slack and cell["fail"] <= alpha + slack, cell
        if cell["multiple"] == 2.0:
            assert cell["pass"] <= alpha, cell
    assert data["seed_case"]["fixed_pass"] >= 0.95 and data["seed_case"]["sequential_pass"] >= 0.95
    assert data["collapse"]["fail"] == 1.0 and data["collapse"]["max_fraction_used"] <= 0.02


def test_pure_forward_figure_is_the_recorded_run():
    import json

    run = json.loads((BENCH / "runs" / "evalkit_pure_forward_full_0shot.json").read_text(encoding="utf-8"))
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    cells = [f"| {run['wall_in_process']:.1f} | {run['cpu_in_process']:.1f} |",
             f"| {run['model_seconds']:.1f} | {run['model_cpu']:.1f} |",
             f"| {run['pure_forward_seconds']:.1f} | {run['pure_forward_cpu']:.1f} |",
             f"| **{run['wall_in_process'] / run['pure_forward_seconds']:.2f}** | "
             f"**{run['cpu_in_process'] / run['pure_forward_cpu']:.2f}** |"]
    for cell in cells:
        assert cell in readme, f"bench/general_overhead/README.md is stale: {cell}"


def _printed(script: str, *args: str) -> list[str]:
    spec = importlib.util.spec_from_file_location(f"general_overhead_{script}", BENCH / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        (module.table if script == "startup" else module.from_json)(*args)
    return [line for line in out.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("script, runs", [
    ("startup", "issue26_startup_phases.json"),
    ("run", "issue26_startup_0shot_full.json"),
    ("run", "issue26_startup_5shot_full.json"),
])
def test_issue26_third_round_tables_are_the_recorded_runs(script, runs):
    """The start-up phases and the full-size whole / pure forward tables are printed from their runs."""
    readme = (BENCH / "README.md").read_text(encoding="utf-8").splitlines()
    path = str(BENCH / "runs" / runs)
    for row in _printed(script, path if script == "startup" else [path]):
        assert row in readme, f"bench/general_overhead/README.md is stale; paste the {script}.py --from-json output: {row}"


@pytest.mark.parametrize("runs", ["issue26_idle_0shot.json", "issue26_idle_5shot.json", "issue26_idle_0shot_2.json"])
def test_pair_tables_of_pure_forward_runs_leave_the_loop_out(runs):
    """With ``--pure-forward`` the parent's wall and CPU of the evalkit side include the bare forward loop run
    after the evaluation; the pair table takes it out, so its ratios are evalkit's run against lm-eval's (the
    processes' own in-process figures, up to the end of each run, agree to within interpreter start and exit)."""
    import json
    import statistics

    readme = (BENCH / "README.md").read_text(encoding="utf-8").splitlines()
    printed = _printed("run", [str(BENCH / "runs" / runs)])
    for row in printed:
        assert row in readme, f"bench/general_overhead/README.md is stale; paste the run.py --from-json output: {row}"
    recorded = json.loads((BENCH / "runs" / runs).read_text(encoding="utf-8"))["runs"]
    mine = [r for r in recorded if r["side"] == "evalkit"]
    theirs = [r for r in recorded if r["side"] == "lm_eval"]
    assert all(r["pure_forward_seconds"] for r in mine)  # these runs did run the loop
    cells = printed[2].split("|")
    for column, key in ((6, "wall"), (7, "cpu")):
        in_process = statistics.median(a[f"{key}_in_process"] / b[f"{key}_in_process"] for a, b in zip(mine, theirs))
        with_loop = statistics.median(a[key] / b[key] for a, b in zip(mine, theirs))
        assert abs(float(cells[column]) - in_process) <= 0.01
        assert float(cells[column]) < with_loop - 0.1  # the loop (82-282 s) is not counted as evalkit's


@pytest.mark.parametrize("runs", ["issue26_round5_0shot.json", "issue26_round5_0shot_2.json", "issue26_round5_5shot.json"])
def test_fifth_round_tables_are_the_recorded_runs(runs):
    """Issue 26's fifth round: the README shows these runs' tables, and every whole / pure forward ratio is the
    run's process CPU over its bare loop's CPU, with the same accuracy as lm-eval's on full MMLU."""
    import json

    readme = (BENCH / "README.md").read_text(encoding="utf-8").splitlines()
    printed = _printed("run", [str(BENCH / "runs" / runs)])
    for row in printed:
        assert row in readme, f"bench/general_overhead/README.md is stale; paste the run.py --from-json output: {row}"
    evalkit = [r for r in json.loads((BENCH / "runs" / runs).read_text(encoding="utf-8"))["runs"] if r["side"] == "evalkit"]
    ratios = [float(row.split("|")[6].strip(" *")) for row in printed if row.startswith("| all |") and row.count("|") == 9]
    assert ratios == [round(r["cpu_in_process"] / r["pure_forward_cpu"], 2) for r in evalkit]
    assert {r["acc"] for r in evalkit} == {0.25509186725537675}


def test_served_mc_full_mmlu_table_is_the_recorded_runs():
    """bench/served_mc: the empty-cache table is run.py's table of the recorded runs, and its shares are
    prefilled tokens over lm-eval's at the same limit."""
    served = REPO / "bench" / "served_mc"
    spec = importlib.util.spec_from_file_location("served_mc_run", served / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = ("runs_full_block128.json", "runs_full_block32.json", "runs_limit10_cold.json")
    table = module.table([str(served / name) for name in names])
    assert _marked_block(served / "README.md", "served-mc-table") == table, "bench/served_mc/README.md is stale; paste `run.py --from-json ...` output"
    shares = {(row.split("|")[1].strip(), row.split("|")[2].strip(), row.split("|")[4].strip()): row.split("|")[10]
              for row in table[2:]}
    assert float(shares[("all", "128", "auto")]) == pytest.approx(8_303_830 / 21_075_012, abs=5e-4)
    assert float(shares[("all", "32", "auto")]) < 0.35 < float(shares[("all", "128", "auto")])


def test_warm_process_table_is_the_recorded_runs():
    """bench/general_overhead: the sixth round's table is warm.py's table of the recorded warm runs."""
    spec = importlib.util.spec_from_file_location("general_overhead_warm", BENCH / "warm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.table([str(BENCH / "runs" / name) for name in ("issue26_warm_0shot.json", "issue26_warm_5shot.json")])
    assert _marked_block(BENCH / "README.md", "warm-table") == table, "bench/general_overhead/README.md is stale; paste `warm.py --from-json ...` output"
    own = [float(row.split("|")[7].strip(" *")) for row in table[2:]]
    assert len(own) == 4 and max(own[2:]) < 0.10 < min(own[:2])  # 5 shots inside 0.10x, 0 shots not
