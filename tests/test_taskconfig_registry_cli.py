"""Task file resolution and validation, the evaluator registry and plug-ins, CLI basics."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.evaluators import base
from tests.helpers.plugins import install_plugin
from evalkit.taskconfig import (TaskConfig, load_task_file, parse_overrides, resolve_tasks, shipped_task_names,
                                validate_options)

ROOT = Path(__file__).resolve().parents[1]


def _evalkit(*args, env=None, **kw):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full_env, **kw)


# ----------------------------------------------------------------------------- task files

def test_task_file_loads_with_relative_paths(tmp_path):
    (tmp_path / "t.yaml").write_text("name: mine\nevaluator: voc\ndescription: x\ndata: data/test.csv\n")
    config = load_task_file(tmp_path / "t.yaml")
    assert (config.name, config.evaluator, config.options) == ("mine", "voc", {"data": "data/test.csv"})
    assert config.resolve_path("data/test.csv") == tmp_path / "data" / "test.csv"


@pytest.mark.parametrize("text, message", [
    ("name: [unclosed\n", r"line \d+ is not valid YAML"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("evaluator: voc\n", "key 'name' is required"),
    ("name: a.b\nevaluator: voc\n", "must not contain '.'"),
])
def test_task_file_errors_name_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        load_task_file(path)
    assert str(path) in str(info.value)


def test_unknown_names_become_lm_eval_tasks_and_overrides_apply():
    configs = resolve_tasks("hellaswag,arc_easy", parse_overrides(["hellaswag.limit=5", "hellaswag.num_fewshot=0"]))
    assert [c.evaluator for c in configs] == ["lm_eval", "lm_eval"]
    assert configs[0].options == {"lm_eval_task": "hellaswag", "limit": 5, "num_fewshot": 0}


@pytest.mark.parametrize("items, overrides, message", [
    ("", [], "give at least one task"),
    ("hellaswag,hellaswag", [], "given twice"),
    ("hellaswag", ["b.limit=1"], "no task named 'b'"),
    ("hellaswg", [], "unknown task 'hellaswg'.*Did you mean 'hellaswag'"),
])
def test_resolve_errors(items, overrides, message):
    with pytest.raises(UsageError, match=message):
        resolve_tasks(items, parse_overrides(overrides))


def test_override_syntax_error():
    with pytest.raises(UsageError, match=r"expected TASK.KEY=VALUE"):
        parse_overrides(["limit=5"])


@dataclass
class _Options:
    path: str
    limit: int | None = None
    ratio: float = 0.5
    flag: bool = False


def test_validate_options_types_and_unknown_keys():
    config = TaskConfig(name="t", evaluator="x", source="tasks/t.yaml")
    got = validate_options({"path": "p", "limit": 3, "ratio": 1}, _Options, config)
    assert (got.limit, got.ratio) == (3, 1.0)
    with pytest.raises(UsageError, match=r"tasks/t.yaml: unknown key 'lmit'; allowed keys: .*limit"):
        validate_options({"path": "p", "lmit": 3}, _Options, config)
    with pytest.raises(UsageError, match=r"key 'limit' must be an integer or null, got 'ten'"):
        validate_options({"path": "p", "limit": "ten"}, _Options, config)
    with pytest.raises(UsageError, match=r"key 'flag' must be true/false, got 1"):
        validate_options({"path": "p", "flag": 1}, _Options, config)
    with pytest.raises(UsageError, match=r"key 'path' is required"):
        validate_options({}, _Options, config)


def test_shipped_tasks_are_valid():
    names = shipped_task_names()
    for name in names:
        config = load_task_file(ROOT / "evalkit" / "tasks" / f"{name}.yaml")
        assert config.evaluator in base.evaluator_names(), f"tasks/{name}.yaml names an unknown evaluator"


# ----------------------------------------------------------------------------- registry

def test_unknown_evaluator_did_you_mean():
    with pytest.raises(UsageError, match=r"unknown evaluator 'vocc'. Did you mean 'voc'"):
        base.get_evaluator("vocc")


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "evalkit_plugin_demo",
                   "class MyEval:\n    name = 'my_eval'\n    version = '1'\n    needs = frozenset()\n",
                   "my_eval = evalkit_plugin_demo:MyEval")
    assert base.get_evaluator("my_eval").__name__ == "MyEval"


def test_register_rejects_nameless_and_conflicting():
    with pytest.raises(TypeError, match="needs a non-empty class attribute 'name'"):
        base.register_evaluator(type("NoName", (), {}))
    existing = base.get_evaluator("voc")
    with pytest.raises(ValueError, match="already registered"):
        base.register_evaluator(type("Other", (), {"name": existing.name}))


# ----------------------------------------------------------------------------- CLI

def test_help_is_fast_and_imports_nothing_heavy():
    """Fast by construction: no heavy package is imported at start-up (timing it would fail on a busy machine)."""
    code = ("import sys; from evalkit.cli import cli; "
            "print([m for m in ('torch','transformers','lm_eval','pandas','matplotlib','numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", f"evalkit.cli imported {out.stdout.strip()} at start-up"
    result = _evalkit("--help")
    assert result.returncode == 0 and "compare" in result.stdout and "gate" in result.stdout


def test_tasks_command_lists_shipped_tasks():
    result = _evalkit("tasks")
    assert result.returncode == 0, result.stderr
    for name in shipped_task_names():
        assert name in result.stdout


def test_bad_input_is_one_line_exit_2_and_debug_shows_traceback(tmp_path):
    result = _evalkit("eval", str(tmp_path / "nope"), "--tasks", "voc_sample")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalkit: error:") and "nope" in lines[0], result.stderr
    debug = _evalkit("--debug", "eval", str(tmp_path / "nope"), "--tasks", "voc_sample")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_bad_task_file_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nevaluator: nosuch\n")
    result = _evalkit("eval", "whatever", "--tasks", str(bad))
    assert result.returncode == 2
    assert "unknown evaluator 'nosuch'" in result.stderr or "whatever" in result.stderr


def _pretend_checkout(tmp_path, monkeypatch, *, shared: bool):
    """evalkit running from ``tmp_path/repo`` (a checkout), with or without ``tmp_path/shared/data`` beside it."""
    import evalkit._paths

    (tmp_path / "repo" / "evalkit").mkdir(parents=True)
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    if shared:
        (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.setattr(evalkit._paths, "__file__", str(tmp_path / "repo" / "evalkit" / "_paths.py"))
    monkeypatch.delenv("EVALKIT_DATA", raising=False)


def test_shipped_voc_cfpb_reads_under_the_data_root(tmp_path, monkeypatch):
    cfpb = resolve_tasks(["voc_cfpb"])[0]
    _pretend_checkout(tmp_path, monkeypatch, shared=True)  # a checkout beside ../shared/data finds it by default
    assert cfpb.resolve_path(cfpb.options["data"]) == tmp_path / "shared" / "data" / "voc/cfpb/cfpb_narratives_4level.csv"
    monkeypatch.setenv("EVALKIT_DATA", str(tmp_path / "elsewhere"))  # the variable wins (a wheel install needs it)
    assert cfpb.resolve_path(cfpb.options["data"]) == tmp_path / "elsewhere" / "voc/cfpb/cfpb_narratives_4level.csv"


def test_no_data_root_is_one_line_naming_the_variable_and_the_override(tmp_path, monkeypatch):
    cfpb = resolve_tasks(["voc_cfpb"])[0]
    _pretend_checkout(tmp_path, monkeypatch, shared=False)
    with pytest.raises(UsageError, match=r"set EVALKIT_DATA=DIR .*overrides='voc_cfpb\.data=PATH'"):
        cfpb.resolve_path(cfpb.options["data"])


def test_a_relative_override_path_is_relative_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (cfpb,) = resolve_tasks(["voc_cfpb"], {"voc_cfpb": {"data": "mine/complaints.csv"}})
    assert cfpb.resolve_path(cfpb.options["data"]) == tmp_path / "mine" / "complaints.csv"
