"""The CLI forgives and explains: global options after the subcommand, help texts, exit codes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from evalkit import cli as cli_module
from evalkit.cli import cli


@pytest.fixture
def captured(monkeypatch):
    """Run `evalkit report` with the pipeline replaced by a recorder of its keyword arguments."""
    import evalkit.pipeline

    calls = []
    monkeypatch.setattr(evalkit.pipeline, "report_pipeline", lambda **kw: calls.append(kw))
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
    import evalkit.pipeline

    monkeypatch.setattr(cli_module._State, "debug", False)
    seen = []
    monkeypatch.setattr(evalkit.pipeline, "compare_pipeline", lambda **kw: 0)
    real_quiet = cli_module._quiet
    monkeypatch.setattr(cli_module, "_quiet", lambda ctx: seen.append(ctx.obj["verbose"]) or real_quiet(ctx))
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
    ("demo_domain.acc", "task 'demo_domain' is not among --tasks; the policy can only gate tasks that are evaluated. "
                        "Did you mean 'demo_voc'?"),
    ("demo_voc.acc", "task 'demo_voc' does not report a metric 'acc'."),
    ("demo_general.accc", "task 'demo_general' does not report a metric 'accc'. Did you mean 'acc'?"),
])
def test_compare_policy_names_a_bad_gate_before_evaluating_anything(tmp_path, monkeypatch, capsys, metric, expected):
    import evalkit.pipeline
    from evalkit.cli import main

    def must_not_evaluate(*args, **kwargs):
        raise AssertionError("evaluated although the policy cannot be applied")

    monkeypatch.setattr(evalkit.pipeline, "collect_results", must_not_evaluate)
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
    from evalkit.gate._preflight import check_policy_fits_tasks
    from evalkit.taskconfig import resolve_tasks

    check_policy_fits_tasks(load_policy(demo_task_path("policies/demo_policy")), resolve_tasks(DEMO_TASKS))
