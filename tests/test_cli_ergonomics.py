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
