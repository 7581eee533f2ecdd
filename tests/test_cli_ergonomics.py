"""The CLI forgives and explains: global options after the subcommand, help texts, exit codes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from evalkit import cli as cli_module
from evalkit.cli import cli


@pytest.fixture
def captured(monkeypatch):
    """Run `evalkit report` with the pipeline replaced by a recorder of its keyword arguments."""
    import evalkit.cli.commands

    calls = []
    monkeypatch.setattr(evalkit.cli.commands, "report_pipeline", lambda **kw: calls.append(kw))
    monkeypatch.delenv("EVALKIT_STORE", raising=False)
    return calls


@pytest.mark.parametrize("argv", [
    ["--store", "s.sqlite", "report", "c.json", "--out", "o"],
    ["report", "c.json", "--out", "o", "--store", "s.sqlite"],
    ["report", "--store", "s.sqlite", "c.json", "--out", "o"],
])
def test_store_works_before_and_after_the_subcommand(captured, argv):
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert captured[-1]["store_path"] == "s.sqlite"


def test_store_after_the_subcommand_overrides_the_environment(captured, monkeypatch):
    monkeypatch.setenv("EVALKIT_STORE", "env.sqlite")
    CliRunner().invoke(cli, ["report", "c.json", "--out", "o"], catch_exceptions=False)
    assert captured[-1]["store_path"] == "env.sqlite"
    CliRunner().invoke(cli, ["report", "c.json", "--out", "o", "--store", "mine.sqlite"], catch_exceptions=False)
    assert captured[-1]["store_path"] == "mine.sqlite"


def test_debug_and_verbose_after_the_subcommand(captured, monkeypatch):
    import evalkit.cli.commands

    monkeypatch.setattr(cli_module._State, "debug", False)
    seen = []
    monkeypatch.setattr(evalkit.cli.commands, "compare_pipeline", lambda **kw: seen.append(kw["verbose"]) or 0)
    argv = ["compare", "a", "b", "--tasks", "demo_general", "--out", "o"]
    assert CliRunner().invoke(cli, argv).exit_code == 0
    assert CliRunner().invoke(cli, [*argv, "--verbose", "--debug"]).exit_code == 0
    assert cli_module._State.debug is True
    assert CliRunner().invoke(cli, ["-v", *argv]).exit_code == 0
    assert seen == [False, True, True]


def _all_commands():
    return [(name, command) for name, command in cli.commands.items()]


@pytest.mark.parametrize("name,command", _all_commands())
def test_every_option_has_a_help_text(name, command):
    missing = [p.name for p in command.params if isinstance(p, __import__("click").Option) and not p.help]
    assert not missing, f"evalkit {name}: options without help: {missing}"


def test_group_options_have_help():
    import click

    assert all(p.help for p in cli.params if isinstance(p, click.Option))


def test_compare_help_lists_exit_codes():
    text = CliRunner().invoke(cli, ["compare", "--help"]).output
    assert "Exit codes:" in text
    for line in ("0  done", "1  a gate", "2  bad input", "3  an evaluation failed"):
        assert line in text


@pytest.mark.parametrize("metric,expected", [
    ("demo_domain.acc", "task 'demo_domain' is not among the tasks (demo_voc, demo_general); the policy can only gate tasks "
                        "that are evaluated. "
                        "Did you mean 'demo_voc'?"),
    ("demo_voc.acc", "task 'demo_voc' does not report a metric 'acc'."),
    ("demo_general.accc", "task 'demo_general' does not report a metric 'accc'. Did you mean 'acc'?"),
])
def test_compare_policy_names_a_bad_gate_before_evaluating_anything(tmp_path, monkeypatch, capsys, metric, expected):
    import evalkit.compare_run
    from evalkit.cli import main

    def must_not_evaluate(*args, **kwargs):
        raise AssertionError("evaluated although the policy cannot be applied")

    monkeypatch.setattr(evalkit.compare_run, "evaluate_one", must_not_evaluate)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"gates:\n  - metric: {metric}\n    max_drop: 0.1\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "a=x", "b=y", "--tasks", "demo_voc,demo_general", "--policy", str(policy),
              "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"policy.yaml: gate 1 ({metric}): {expected}" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_shipped_demo_policy_fits_the_demo_tasks():
    from evalkit.demo import DEMO_TASKS
    from evalkit.demo.domain import demo_task_path
    from evalkit.gate import load_policy
    from evalkit.gate.preflight import check_policy_fits_tasks
    from evalkit.taskconfig import resolve_tasks

    check_policy_fits_tasks(load_policy(demo_task_path("policies/demo_policy")), resolve_tasks(DEMO_TASKS))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub (the switch evalkit honours) and an empty Hugging Face cache."""
    from evalkit.general import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_DATASETS_CACHE", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    hub.hub_reachable.cache_clear()
    yield tmp_path / "hf"
    hub.hub_reachable.cache_clear()


def test_offline_mmlu_fails_before_loading_a_model_with_the_set_line(offline, monkeypatch, capsys, tmp_path,
                                                                    tiny_model_dir):
    from evalkit.checkpoints import kinds as loaders  # load_lm: the one entry that loads any kind
    from evalkit.cli import main

    monkeypatch.setattr(loaders, "load_lm", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")))
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(tiny_model_dir), "--tasks", "mmlu", "--store", str(tmp_path / "s.sqlite")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "task 'mmlu' reads cais/mmlu from the hub, but offline (HF_HUB_OFFLINE is set)" in err
    assert "--set mmlu.data=PATH" in err and "Traceback" not in err


def test_a_cached_hub_dataset_counts_as_available(offline):
    from evalkit.errors import python_words
    from evalkit.general.hub import hub_data_problem

    assert "overrides='mmlu.data=PATH'" in python_words(hub_data_problem("mmlu", "mmlu"))
    (offline / "datasets" / "cais___mmlu").mkdir(parents=True)
    assert hub_data_problem("mmlu", "mmlu") is None
    assert "overrides='ifeval.data=PATH'" in python_words(hub_data_problem("ifeval", "ifeval"))
    assert hub_data_problem("hellaswag", "generic") is None


def test_tasks_marks_the_tasks_whose_data_is_not_here(offline):
    out = CliRunner().invoke(cli, ["tasks"]).output
    lines = out.splitlines()
    marked = {line.split()[1] for line in lines if line.startswith("✗ ") and "[" in line}
    assert {"mmlu", "ifeval", "mmlu_generative"} <= marked
    assert "demo_general" not in marked and "voc_sample" not in marked
    assert "    data not available here: needs the hub (not reachable here): --set mmlu.data=PATH" in lines


def test_a_misspelt_task_gets_did_you_mean_from_shipped_and_lm_eval_names_without_a_dump():
    from evalkit.errors import UsageError
    from evalkit.taskconfig import resolve_tasks

    with pytest.raises(UsageError) as info:
        resolve_tasks("demo_voc,mmlo")
    message = str(info.value)
    assert "unknown task 'mmlo'" in message and "Did you mean 'mmlu'" in message
    assert "Shipped tasks: demo_general, demo_voc," in message and len(message) < 600
    with pytest.raises(UsageError, match="Did you mean 'hellaswag'"):
        resolve_tasks("hellaswg")


def test_the_name_scan_knows_lm_evals_names_and_defers_what_it_misses():
    from evalkit.lm_eval_tasks import check_task_name, lm_eval_task_names

    names = set(lm_eval_task_names())
    assert len(names) > 14000 and {"mmlu", "hellaswag", "arc_easy", "ifeval", "gsm8k"} <= names
    for valid in ("hellaswag", "arc_challenge", "afrixnli_tasks"):  # the last is built by a template
        check_task_name(valid, [])


# ------------------------------------------------------------------------------ one convention: parameters, flags

def test_a_library_error_names_parameters_and_the_command_line_names_their_flags(capsys):
    from evalkit.errors import UsageError, arg

    error = UsageError(f"folder x: no tokenizer files; pass another {arg('config', 'DIR')} or "
                       f"{arg('allow_pickle', True)} with {arg('chat_template', False)}.", param="config")
    assert str(error) == "folder x: no tokenizer files; pass another config=DIR or allow_pickle=True with " \
                         "chat_template=False."
    with pytest.raises(SystemExit) as exit_info:
        cli_module._report(error, error.exit_code)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("evalkit: error: folder x: no tokenizer files; pass another --config DIR "
                                       "or --allow-pickle with --no-chat-template.\n")


def test_every_marked_parameter_has_a_flag():
    """A parameter a library message marks (errors.arg) and the CLI cannot name would reach the terminal
    in Python words: every marked name in evalkit/ is in the CLI's one table."""
    import ast
    from pathlib import Path

    from evalkit.cli._flags import FLAGS

    root = Path(cli_module.__file__).resolve().parents[1]
    marked = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "arg"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                marked.add(node.args[0].value)
    assert len(marked) > 10 and sorted(marked - FLAGS.keys()) == []


def test_library_messages_speak_no_flags():
    """Outside evalkit/cli, no string that becomes an error or a progress line spells a flag ("--name"); a
    whole command in backticks (`evalkit eval --out`, the command that writes a file) is a name, not a flag."""
    import ast
    import re
    from pathlib import Path

    root = Path(cli_module.__file__).resolve().parents[1]
    flag = re.compile(r"(^|[\s(])--[a-z][a-z-]+")
    spoken = []
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
                    "UsageError", "EvaluationError", "ServerError", "ParameterTypeError", "EvalkitError", "note",
                    "warn", "warning", "result"}:
                texts = [n.value for a in node.args for n in ast.walk(a)
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                spoken += [f"{path.name}:{node.lineno}: {t}" for t in texts if flag.search(re.sub("`[^`]*`", "", t))]
    assert spoken == []
