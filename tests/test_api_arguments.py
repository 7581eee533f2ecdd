"""The public API raises the library's own exceptions: every public function and method, given arbitrary
values for any one argument, either works or raises an EvalkitError naming the parameter — never a bare
TypeError from pathlib, a ValueError from a statistic or a file named ``123`` in the working directory."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.errors import EvalkitError, ParameterTypeError
from tests.helpers.cli import make_voc_task, run_cli, write_predictions

# Values a caller might pass by mistake. No free text for path parameters: a random string is a valid
# path and would be created; the safe strings below are file names inside the test's working folder.
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(),
                    st.sampled_from([b"bytes", object(), 1.5, -1, 2 ** 70, "", " ", "x", "\x00", "a\nb"]))
ANY = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner,
                                                                                       max_size=2), max_leaves=4)
FUZZ = settings(max_examples=int(os.environ.get("EVALKIT_FUZZ_EXAMPLES", "12")), deadline=None, database=None,
                derandomize="EVALKIT_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("api_args")
    task = make_voc_task(root, n=4)
    a, b = write_predictions(root / "a.jsonl", task, n=4), write_predictions(root / "b.jsonl", task, n=4)
    code, _, err = run_cli(["--store", str(root / "s.sqlite"), "compare", f"a={a}", f"b={b}", "-t", str(task),
                            "-o", str(root / "out")])
    assert code == 0, err
    policy = root / "policy.yaml"
    policy.write_text("gates:\n  - metric: tiny.leaf_macro_f1\n    min: 0.0\n")
    return {"root": root, "task": task, "a": a, "store": root / "s.sqlite", "policy": policy,
            "results": [root / "out" / "results" / "a.json", root / "out" / "results" / "b.json"],
            "comparison": root / "out" / "comparison.json"}


@pytest.fixture()
def in_scratch(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(folder)
    return folder


def _only_evalkit_errors(call, param: str) -> None:
    try:
        call()
    except EvalkitError as exc:
        assert str(exc), exc
        if isinstance(exc, ParameterTypeError):
            assert exc.param == param or exc.param in str(exc), (param, exc)


@FUZZ
@given(param=st.sampled_from(["tasks", "store", "rerun", "overrides", "note", "label", "limit", "sample_seed"]),
       value=ANY)
def test_evaluate_with_any_argument(made, in_scratch, param, value):
    import evalkit

    arguments = {"tasks": str(made["task"]), "store": made["store"], param: value}
    _only_evalkit_errors(lambda: evalkit.evaluate(str(made["a"]), **arguments), param)
    assert not [p for p in in_scratch.iterdir()], "nothing may be created in the working folder"


@FUZZ
@given(param=st.sampled_from(["baseline", "notes", "n_resamples", "random_state", "max_flips", "bogus"]), value=ANY)
def test_compare_with_any_argument(made, param, value):
    import evalkit

    _only_evalkit_errors(lambda: evalkit.compare(*made["results"], **{param: value}), param)


@FUZZ
@given(method=st.sampled_from(["write", "write_report", "gate", "load"]), value=ANY)
def test_comparison_methods_with_any_argument(made, in_scratch, method, value):
    from evalkit import Comparison

    comparison = Comparison.load(made["comparison"])
    call = (lambda: Comparison.load(value)) if method == "load" else (lambda: getattr(comparison, method)(value))
    _only_evalkit_errors(call, {"gate": "policy", "load": "path"}.get(method, "out_dir"))
    assert not [p for p in in_scratch.iterdir()]


@settings(FUZZ, max_examples=max(6, FUZZ.max_examples // 2))  # each call builds the task's evaluator
@given(param=st.sampled_from(["tasks", "every", "limit", "sample_seed", "out", "store", "verbose", "policy",
                              "batchsize"]), value=ANY)
def test_trainer_callback_with_any_argument(made, in_scratch, param, value):
    pytest.importorskip("transformers")
    from evalkit.integrations.transformers import EvalkitCallback

    arguments = {"tasks": str(made["task"]), param: value}
    _only_evalkit_errors(lambda: EvalkitCallback(**arguments), param)
    assert not [p for p in in_scratch.iterdir()]


@pytest.mark.parametrize("call, param", [
    (lambda m, evalkit: evalkit.evaluate(str(m["a"]), None), "tasks"),
    (lambda m, evalkit: evalkit.evaluate(str(m["a"]), str(m["task"]), store=123), "store"),
    (lambda m, evalkit: evalkit.Comparison.load(m["comparison"]).write(None), "out_dir"),
    (lambda m, evalkit: evalkit.evaluate(str(m["a"]), str(m["task"]), batchsize=2), "batchsize"),
    (lambda m, evalkit: evalkit.compare(*m["results"], n_resamples="x"), "n_resamples"),
])
def test_the_reported_calls_raise_evalkits_error_naming_the_parameter(made, in_scratch, call, param):
    import evalkit

    with pytest.raises(EvalkitError) as info:
        call(made, evalkit)
    assert info.value.param == param and param in str(info.value)
    assert not [p for p in in_scratch.iterdir()]  # store=123 had created a SQLite file named "123"
