"""The one registry pattern (evalkit.registry.Registry): evaluators, checkpoint kinds and lm-eval task kinds,
with did-you-mean errors and entry-point plug-ins (a tiny dist-info on sys.path)."""

from __future__ import annotations

import pytest

from evalkit.checkpoints.kinds import fingerprint, kind_of
from evalkit.checkpoints.registry import CHECKPOINT_KINDS
from evalkit.checkpoints.spec import parse_spec
from evalkit.errors import UsageError
from evalkit.evaluators import EVALUATORS
from evalkit.general.lmeval.kinds import TASK_KINDS, GenericKind, IfevalKind, kind_for
from evalkit.registry import Registry
from tests.helpers.plugins import install_plugin

_KIND_SOURCE = '''
from evalkit.checkpoints.kinds import CheckpointKind


class EchoKind(CheckpointKind):
    name = "echo"

    def fingerprint(self, spec, options):
        return "echo:" + str(spec.location)

    def load(self, spec, options):
        return ("an LM for", spec.location)
'''


def test_the_three_registries_are_one_pattern():
    assert all(isinstance(r, Registry) for r in (EVALUATORS, CHECKPOINT_KINDS, TASK_KINDS))
    assert {"lm_eval", "voc"} <= set(EVALUATORS.names())
    assert set(CHECKPOINT_KINDS.names()) == {"hf", "hub", "peft", "weights", "server", "predictions"}
    assert set(TASK_KINDS.names()) == {"mmlu", "mmlu_letter", "ifeval"}


def test_unknown_names_get_a_did_you_mean_naming_what_was_asked():
    with pytest.raises(UsageError, match=r"unknown checkpoint kind 'severs'. Did you mean 'server'"):
        CHECKPOINT_KINDS.get("severs")
    assert CHECKPOINT_KINDS.find("severs") is None and "severs" not in CHECKPOINT_KINDS


def test_a_second_entry_of_one_name_is_refused_and_the_same_one_is_not():
    registry: Registry[type] = Registry("widget")
    first = registry.register(type("A", (), {"name": "a"}))
    assert registry.register(first) is first
    with pytest.raises(ValueError, match="a widget named 'a' is already registered"):
        registry.register(type("B", (), {"name": "a"}))


def test_task_kinds_fall_back_to_the_generic_kind():
    assert type(kind_for("ifeval", False, None, "t.yaml")) is IfevalKind
    assert type(kind_for("hellaswag", False, None, "t.yaml")) is GenericKind
    assert type(kind_for("ifeval", True, None, "t.yaml")) is GenericKind  # a custom lm_eval_config


def test_a_checkpoint_kind_plugin_is_found_through_its_entry_point(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "evalkit_echo_kind", _KIND_SOURCE, "echo = evalkit_echo_kind:EchoKind",
                   group="evalkit.checkpoint_kinds")
    spec = parse_spec("mine=echo:some/where")
    assert (spec.label, spec.kind, spec.location) == ("mine", "echo", "some/where")
    assert type(kind_of(spec)).__name__ == "EchoKind"
    assert fingerprint(spec) == "echo:some/where"
    assert parse_spec("echo:x").label == "x"


def test_without_the_plugin_a_kind_prefix_is_not_a_kind(tmp_path):
    with pytest.raises(UsageError, match="expected a model dir"):
        parse_spec("echo:some/where")


def test_a_broken_checkpoint_kind_plugin_warns_and_names_itself(tmp_path, monkeypatch, capsys):
    install_plugin(tmp_path, monkeypatch, "evalkit_broken_kind", "raise ImportError('no module named vllm9')\n",
                   "broken = evalkit_broken_kind:Kind", group="evalkit.checkpoint_kinds")
    assert CHECKPOINT_KINDS.get("hf").name == "hf"
    err = capsys.readouterr().err
    assert "checkpoint kind plug-in 'broken'" in err and "vllm9" in err
    with pytest.raises(UsageError, match="checkpoint kind plug-in 'broken' .* failed to load: ImportError"):
        CHECKPOINT_KINDS.get("broken")
