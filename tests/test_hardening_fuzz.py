"""Property-based fuzzing of every file kind evalkit reads back: exit 0/1/2, never 3, never a traceback.

Valid files (a comparison.json, a results.json, a policy and a task file) come from one real run on
a tiny VOC task answered by a predictions file; hypothesis then mutates them (replace a value anywhere
in the tree by another JSON value, delete a key, turn an object into a list, ... or damage the raw
text) and runs the CLI in-process on the result. Exit 1 is a failed gate, a legitimate outcome.
Examples are bounded so the whole file runs in well under half a minute.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.helpers.cli import make_voc_task, run_cli, write_predictions  # noqa: E402

# EVALKIT_FUZZ_EXAMPLES=500 for a long adversarial run; the default keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("EVALKIT_FUZZ_EXAMPLES", "15")), deadline=None, database=None,
                derandomize="EVALKIT_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.sampled_from([float("nan"), float("inf"), -1.0, 0, 1e308, 10**30, 10**400, -(10**400), 1.5]),
                    st.text(max_size=12), st.sampled_from(["", "../../x", "=cmd()", "a > b", "<b>x</b>", "x\ud800",
                                                           "L" * 300, "a\x1b[2Jb", " "]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    task = make_voc_task(root, n=6)
    preds = write_predictions(root / "p.jsonl", task, n=6)
    policy = root / "policy.yaml"
    policy.write_text("baseline: a\ngates:\n  - metric: tiny.path_accuracy\n    max_drop: 0.5\n    significance: 0.05\n"
                      "  - metric: tiny.leaf_macro_f1\n    min: 0.0\n    severity: warn\n")
    code, _, err = run_cli(["--store", str(root / "s.sqlite"), "compare", f"a={preds}", f"b={preds}", "-t", str(task),
                            "--out", str(root / "out"), "--policy", str(policy)])
    assert code == 0, err
    return {"root": root, "task": task, "preds": preds, "policy": policy, "store": root / "s.sqlite",
            "comparison": json.loads((root / "out" / "comparison.json").read_text()),
            "results": json.loads((root / "out" / "results" / "a.json").read_text()),
            "results_b": root / "out" / "results" / "b.json"}


def _paths(tree, prefix=()):
    """Every (path, value) of a JSON tree, containers included."""
    yield prefix, tree
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree[:4]):  # a few items of long lists (samples) are enough
            yield from _paths(value, prefix + (i,))


@st.composite
def mutated(draw, original):
    """``original`` with 1-3 random structural mutations."""
    tree = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p, _ in _paths(tree) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "replace", "delete", "listify", "empty"]))
        if action == "delete":
            del parent[key]
        elif action == "listify":
            parent[key] = [parent[key]]
        elif action == "empty":
            parent[key] = {} if isinstance(parent[key], list) else []
        else:
            parent[key] = draw(VALUES)
    return tree


def _dump(tree) -> str:
    return json.dumps(tree, allow_nan=True, ensure_ascii=True)


def _assert_clean(code: int, err: str, *, allowed=(0, 2)) -> None:
    assert code in allowed, err
    assert "Traceback" not in err and "internal error" not in err, err


@pytest.fixture()
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("case")


@FUZZ
@given(data=st.data())
def test_fuzz_comparison_json(valid, scratch, data):
    comparison = data.draw(mutated(valid["comparison"]))
    path = scratch / "comparison.json"
    path.write_text(_dump(comparison))
    out = scratch / "report"
    shutil.rmtree(out, ignore_errors=True)
    _assert_clean(*run_cli(["report", str(path), "--out", str(out)])[::2])
    code, _, err = run_cli(["gate", str(path), "--policy", str(valid["policy"]), "--out", str(scratch / "gate")])
    _assert_clean(code, err, allowed=(0, 1, 2))


@FUZZ
@given(data=st.data())
def test_fuzz_results_json(valid, scratch, data):
    results = data.draw(mutated(valid["results"]))
    path = scratch / "results.json"
    path.write_text(_dump(results))
    out = scratch / "report"
    shutil.rmtree(out, ignore_errors=True)
    _assert_clean(*run_cli(["report", str(path), str(valid["results_b"]), "--out", str(out)])[::2])


@FUZZ
@given(data=st.data())
def test_fuzz_policy(valid, scratch, data):
    policy = yaml.safe_load(valid["policy"].read_text())
    path = scratch / "policy.yaml"
    if data.draw(st.booleans()):
        path.write_text(yaml.safe_dump(data.draw(mutated(policy)), allow_unicode=False))
    else:  # damaged text: a random slice replaced by random characters
        text = valid["policy"].read_text()
        start = data.draw(st.integers(0, len(text)))
        path.write_text(text[:start] + data.draw(st.text(max_size=8)) + text[start + data.draw(st.integers(0, 5)):],
                        encoding="utf-8", errors="surrogateescape")
    comparison = valid["root"] / "out" / "comparison.json"
    code, _, err = run_cli(["gate", str(comparison), "--policy", str(path), "--out", str(scratch / "gate")])
    _assert_clean(code, err, allowed=(0, 1, 2))


@FUZZ
@given(data=st.data())
def test_fuzz_task_file(valid, scratch, data):
    task = yaml.safe_load(valid["task"].read_text())
    task = data.draw(mutated(task))
    path = scratch / "tiny.yaml"
    shutil.copy(valid["root"] / "tiny.csv", scratch / "tiny.csv")
    path.write_text(yaml.safe_dump(task, allow_unicode=False) if isinstance(task, dict) else json.dumps(task))
    code, _, err = run_cli(["--store", str(scratch / "s.sqlite"), "eval", str(valid["preds"]), "-t", str(path)])
    _assert_clean(code, err)


@FUZZ
@given(lines=st.lists(st.one_of(VALUES.map(lambda v: json.dumps(v, allow_nan=True)),
                                st.text(max_size=20)), min_size=1, max_size=4))
def test_fuzz_predictions_file(valid, scratch, lines):
    path = scratch / "p.jsonl"
    good = valid["preds"].read_text().splitlines()
    path.write_text("\n".join(good[:3] + lines + good[3:]) + "\n", encoding="utf-8", errors="surrogateescape")
    code, _, err = run_cli(["--store", str(scratch / "s.sqlite"), "eval", str(path), "-t", str(valid["task"])])
    _assert_clean(code, err)



@FUZZ
@given(label=st.one_of(st.text(max_size=12), st.sampled_from(["L" * 300, "", " ", "a\x1b[2Jb", "x\ud800", "../x"])),
       seed=st.one_of(st.integers(-5, 5), st.sampled_from([-(2 ** 63), 2 ** 63 - 1, 2 ** 63, 2 ** 70])),
       limit=st.one_of(st.integers(-2, 8), st.sampled_from([2 ** 63])))
def test_fuzz_labels_seeds_and_limits_on_the_command_line(valid, scratch, label, seed, limit):
    code, _, err = run_cli(["--store", str(scratch / "s.sqlite"), "eval", f"{label}={valid['preds']}", "-t",
                            str(valid["task"]), "--limit", str(limit), "--sample-seed", str(seed),
                            "--out", str(scratch / "out")])
    _assert_clean(code, err)
