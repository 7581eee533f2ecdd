"""Context length planned on every path, with a 1,024-position tiny chat model in-process and behind
`transformers serve` (which reports no context length).

Before: the served model got lm-eval's API default of 2,048 tokens, so the default VOC prompt (1,679
tokens) was planned to fit and the server answered HTTP 400; IFEval's 1,280 new tokens failed lm-eval's
assertion in-process (exit 3). Now the served model's local config gives the same 1,024 as in-process,
and a generation length that cannot fit is capped with a one-line note and recorded in the settings.
"""

from __future__ import annotations

import json
import logging

import pytest

import evalkit

pytestmark = pytest.mark.slow

# A long prompt (about 850 tokens) leaves a short answer, so the capped generation stays quick.
IFEVAL_ROWS = [{"key": 1, "prompt": "Describe a refund in lowercase letters only. " + "The parcel came late again. " * 48,
                "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]}]


@pytest.fixture(scope="module")
def model(served_model_dirs):
    """A chat model of 1,024 positions (the one the shared server may have loaded already)."""
    return served_model_dirs["plain"]


@pytest.fixture(scope="module")
def server(model, transformers_server):
    from tests.helpers.transformers_serve import served_models

    return served_models(transformers_server, model)


@pytest.fixture(scope="module")
def ifeval_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctx_ifeval") / "input_data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in IFEVAL_ROWS), encoding="utf-8")
    return str(path)


def _evaluate(spec, tasks, tmp_path, **kwargs):
    return evalkit.evaluate(spec, tasks, store=tmp_path / "store.sqlite", batch_size=1, num_concurrent=1,
                            max_retries=0, **kwargs)


def test_a_served_model_plans_the_default_voc_prompt_for_its_local_context(model, server, tmp_path):
    from evalkit.checkpoints import Checkpoint, LoadOptions

    served = f"{server}#{model}"
    # 1024 as in-process, less the one token lm-eval's API models keep for generation (not its default 2048 - 1)
    assert Checkpoint.from_string(served, LoadOptions())._load_lm().max_length == 1023
    small = {"voc_sample": {"limit": 2, "max_gen_toks": 8, "n_resamples": 0}}  # otherwise the shipped defaults
    remote = _evaluate(served, "voc_sample", tmp_path, overrides=small)
    local = _evaluate(str(model), "voc_sample", tmp_path, overrides=small)
    assert remote.tasks["voc_sample"].settings["label_options_used"] == \
        local.tasks["voc_sample"].settings["label_options_used"] != ["paths"]  # the same plan, a shorter prompt


@pytest.mark.parametrize("path", ["in-process", "served"])
def test_ifeval_default_generation_length_is_capped_with_a_note(model, ifeval_data, tmp_path, caplog, path, request):
    spec = str(model) if path == "in-process" else f"{request.getfixturevalue('server')}#{model}"
    with caplog.at_level(logging.WARNING, logger="evalkit"):
        result = _evaluate(spec, "ifeval", tmp_path, overrides={"ifeval": {"data": ifeval_data}})  # 1280 new tokens
    cap = result.tasks["ifeval"].settings["max_gen_toks_capped"]
    assert cap["requested"] == 1280 and cap["context"] == (1024 if path == "in-process" else 1023)
    assert cap["used"] + cap["longest_prompt"] <= cap["context"] and 0 < cap["used"] < 400
    notes = [r.getMessage() for r in caplog.records if "max_gen_toks 1280 does not fit" in r.getMessage()]
    assert len(notes) <= 1 and (notes or path == "served")  # one line (said once per process)
    assert result.tasks["ifeval"].n_samples == 1


def test_a_prompt_longer_than_the_context_exits_2_in_one_line_with_nothing_written(model, tmp_path):
    """What cannot fit at all is bad input (exit 2), not an evaluation failure (exit 3). It is known after the
    tokenizer has measured the task's prompts, not from the model's config alone, so it is said after loading."""
    from tests.helpers.cli import run_cli

    rows = [{**IFEVAL_ROWS[0], "prompt": "The parcel came late again. " * 100}]  # about 1,800 tokens > 1,024
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    code, _, err = run_cli(["--store", str(tmp_path / "store.sqlite"), "eval", str(model), "--tasks", "ifeval",
                            "--set", f"ifeval.data={data}", "--batch-size", "1", "--out", str(tmp_path / "out")])
    assert code == 2, err
    lines = [line for line in err.splitlines() if "leaves no room" in line]
    assert len(lines) == 1 and "1024-token context" in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()

