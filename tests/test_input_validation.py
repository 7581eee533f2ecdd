"""One validation layer (evalkit/_validate.py, the JSON reader's number hooks, the schema's LABEL): option
values, labels, numbers in input files and chart text fail as one line with exit 2 before any work, never
as numpy's, the filesystem's or matplotlib's exception (exit 3), and are never silently accepted."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from tests.helpers.cli import make_voc_task, run_cli, write_predictions


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    task = make_voc_task(root, n=6)
    a, b = write_predictions(root / "a.jsonl", task), write_predictions(root / "b.jsonl", task, outputs={"1": "B > z"})
    policy = root / "policy.yaml"
    policy.write_text("gates:\n  - metric: tiny.leaf_macro_f1\n    min: 0.0\n")
    code, _, err = run_cli(["--store", str(root / "s.sqlite"), "compare", f"a={a}", f"b={b}", "-t", str(task),
                            "-o", str(root / "out")])
    assert code == 0, err
    return {"root": root, "task": task, "a": a, "b": b, "policy": policy,
            "comparison": (root / "out" / "comparison.json").read_text(encoding="utf-8")}


def _error_line(code: int, err: str, expected_code: int = 2) -> str:
    assert code == expected_code, err
    assert "Traceback" not in err and "internal error" not in err, err
    return err.strip().splitlines()[-1]


def _compare(setup, tmp_path, *args: str, specs=None):
    specs = specs or [f"a={setup['a']}", f"b={setup['b']}"]
    return run_cli(["--store", str(tmp_path / "s.sqlite"), "compare", *specs, "-t", str(setup["task"]),
                    "-o", str(tmp_path / "out"), *args])


# ------------------------------------------------------------------ option values


@pytest.mark.parametrize("args, message", [
    (["--sequential", "--sequential-seed", "-1"], "--sequential-seed must be an integer from 0 to 2**63 - 1, got -1."),
    (["--limit", "3", "--sample-seed", "-1"], "--sample-seed must be an integer from 0 to 2**63 - 1"),
    (["--sample-seed", "-1"], "--sample-seed must be an integer from 0 to 2**63 - 1"),  # wrong even without --limit
    (["--sample-seed", str(2 ** 64)], "--sample-seed must be an integer from 0 to 2**63 - 1"),
])
def test_bad_seeds_are_exit_2_before_any_work(setup, tmp_path, args, message):
    if "--sequential" in args:
        args = [*args, "--policy", str(setup["policy"])]
    line = _error_line(*_compare(setup, tmp_path, *args)[::2])
    assert message in line
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, param", [
    ({"sample_seed": 1.5}, "sample_seed"), ({"sample_seed": True}, "sample_seed"), ({"sample_seed": -3}, "sample_seed"),
    ({"limit": 0}, "limit"), ({"limit": 2.0}, "limit"), ({"label": ""}, "label"), ({"label": "x" * 256}, "label"),
    ({"label": "a\x1b[31mb"}, "label"),
])
def test_the_api_refuses_the_same_values_naming_the_parameter(setup, tmp_path, kwargs, param):
    import evalkit

    with pytest.raises(UsageError) as info:
        evalkit.evaluate(str(setup["a"]), str(setup["task"]), store=tmp_path / "s.sqlite", **kwargs)
    assert info.value.param == param and param in str(info.value)
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("command", ["eval", "compare"])
@pytest.mark.parametrize("override, message", [
    ("limit=abc", "key 'limit' must be an integer or null, got 'abc'"),
    ("no_such_key=1", "unknown key 'no_such_key'; allowed keys:"),
])
def test_bad_task_options_are_exit_2_before_the_store_is_created(setup, tmp_path, command, override, message):
    """Task options are checked when the evaluators are built, which comes before the store is opened: a
    bad option leaves neither a store file nor an output folder."""
    specs = [f"a={setup['a']}"] if command == "eval" else [f"a={setup['a']}", f"b={setup['b']}"]
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), command, *specs, "-t", str(setup["task"]),
                            "--set", f"tiny.{override}", "-o", str(tmp_path / "out")])
    assert message in _error_line(code, err)
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ labels


def test_a_300_character_label_is_exit_2_before_any_work(setup, tmp_path):
    line = _error_line(*_compare(setup, tmp_path, specs=[f"{'L' * 300}={setup['a']}", f"b={setup['b']}"])[::2])
    assert "is 300 characters long (at most 255)" in line and "LABEL=SPEC" in line
    assert not (tmp_path / "s.sqlite").exists()


def test_a_path_too_long_for_the_filesystem_is_exit_2(setup, tmp_path):
    line = _error_line(*_compare(setup, tmp_path, specs=[str(tmp_path / ("p" * 300)), f"b={setup['b']}"])[::2])
    assert "not a usable path (File name too long)" in line


def test_the_duplicate_label_hint_names_no_option_that_is_not_meant(setup, tmp_path):
    line = _error_line(*_compare(setup, tmp_path, specs=[f"a={setup['a']}", f"a={setup['b']}"])[::2])
    assert "is used twice" in line and "--base" not in line


# ------------------------------------------------------------------ comparison.json: numbers and labels


def _variant(setup, tmp_path, edit) -> Path:
    data = json.loads(setup["comparison"])
    text = edit(data) if callable(edit) else None
    path = tmp_path / "comparison.json"
    path.write_text(text if isinstance(text, str) else json.dumps(data), encoding="utf-8")
    return path


def _relabel(new: str):
    def edit(data):
        return json.dumps(data).replace('"b"', json.dumps(new))  # every mention of checkpoint b
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["metrics"][0].update(n=10 ** 400), r"the number 100000000000… \(401 digits\) is outside the range"),
    (lambda d: json.dumps(d).replace('"value": 0.325', '"value": 1e400', 1), "the number 1e400 is outside the range"),
    (_relabel(""), r"checkpoints\[1\].label: expected a checkpoint label"),
    (_relabel("x" * 300), r"checkpoints\[1\].label: expected a checkpoint label"),
    (_relabel("b\nc"), r"checkpoints\[1\].label: expected a checkpoint label"),
])
@pytest.mark.parametrize("command", ["report", "gate"])
def test_a_comparison_with_an_unusable_number_or_label_is_exit_2(setup, tmp_path, edit, message, command):
    import re

    path = _variant(setup, tmp_path, edit)
    argv = (["report", str(path), "-o", str(tmp_path / "r")] if command == "report"
            else ["gate", str(path), "--policy", str(setup["policy"]), "--out", str(tmp_path / "g")])
    assert re.search(message, _error_line(*run_cli(argv)[::2]))


def test_a_lone_surrogate_in_a_label_renders_in_the_charts_escaped_as_in_the_files(setup, tmp_path):
    path = _variant(setup, tmp_path, _relabel("b\udce9"))
    code, _, err = run_cli(["report", str(path), "-o", str(tmp_path / "r")])
    assert code == 0, err
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "b\\udce9" in html


def test_chart_text_escapes_surrogates_like_the_json_writer():
    from evalkit._io import dump_json
    from evalkit.report.charts import plain

    assert plain("x\ud800$") == "x\\ud800\\$"
    assert json.loads(dump_json("x\ud800")) == "x\ud800" and "\\ud800" in dump_json("x\ud800")


# ------------------------------------------------------------------ the output probe under contention


def test_sibling_output_folders_under_one_new_parent_probe_at_once(tmp_path):
    """Each probe creates the missing parent and removes it again: two at once must not trip each other."""
    from evalkit._io import OutputFolder

    def probe(folder: Path, barrier: threading.Barrier, errors: list[str]) -> None:
        barrier.wait()
        try:
            OutputFolder(folder, option="--out").check("report.html")
        except UsageError as exc:
            errors.append(str(exc))

    for round_ in range(12):
        parent = tmp_path / f"new{round_}" / "runs"
        barrier, errors = threading.Barrier(8), []
        threads = [threading.Thread(target=probe, args=(parent / f"out{i}", barrier, errors)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        # No probe file is left; an empty parent may stay when one probe's folder kept another from removing it.
        assert not [p for p in (tmp_path / f"new{round_}").rglob("*") if not p.is_dir()]


# ------------------------------------------------------------------ names users chose


def test_a_symlinked_trainer_save_is_named_after_the_folder_the_user_named(tiny_model_dir, tmp_path):
    from evalkit.api import as_checkpoint
    from evalkit.checkpoints import Checkpoint
    from evalkit.checkpoints.spec import parse_spec

    elsewhere = tmp_path / "storage" / "blob-7f3a" / "checkpoint-200"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.symlink_to(tiny_model_dir, target_is_directory=True)
    link = tmp_path / "myrun" / "checkpoint-200"
    link.parent.mkdir()
    link.symlink_to(elsewhere, target_is_directory=True)
    assert parse_spec(str(link)).label == "checkpoint-200"
    assert as_checkpoint(str(link)).label == "myrun.step200"  # not blob-7f3a.step200
    assert Checkpoint.from_string(str(link)).fingerprint == Checkpoint.from_string(str(tiny_model_dir)).fingerprint


@pytest.mark.parametrize("argv", [
    lambda s, t: ["eval", str(s["a"]), "-t", str(s["task"]), "-o", str(t / ("d" * 300))],
    lambda s, t: ["eval", str(s["a"]), "-t", "x" * 300],
    lambda s, t: ["eval", str(s["a"]), "-t", str(t / ("y" * 300 + ".yaml"))],
    lambda s, t: ["report", str(t / ("r" * 300 + ".json")), "-o", str(t / "r")],
    lambda s, t: ["gate", str(t / "c.json"), "--policy", str(t / ("p" * 300))],
])
def test_any_path_too_long_for_the_filesystem_is_exit_2(setup, tmp_path, argv):
    """Wherever a path the user named is first touched, the filesystem's refusal is input, not a bug."""
    (tmp_path / "c.json").write_text(setup["comparison"], encoding="utf-8")
    line = _error_line(*run_cli(["--store", str(tmp_path / "s.sqlite"), *argv(setup, tmp_path)])[::2])
    assert "cannot use this path (the name is longer than the filesystem allows)" in line


@pytest.mark.parametrize("override", ["tiny.seed=-1", "tiny.sample_seed=-2", f"tiny.seed={2 ** 64}"])
def test_seeds_in_task_files_are_checked_like_seed_options(setup, tmp_path, override):
    """numpy refuses a negative seed only once a bootstrap or a few-shot draw needs it: refuse it up front."""
    line = _error_line(*run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(setup["a"]), "-t",
                                 str(setup["task"]), "--set", override])[::2])
    assert "must be an integer from 0 to 2**63 - 1" in line
