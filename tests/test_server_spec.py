"""Server checkpoints: reachability/auth/model checks against a stub, generation through `transformers serve`."""

from __future__ import annotations

import json
import re
from pathlib import Path
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evalkit.checkpoints import Checkpoint, LoadOptions
from evalkit.errors import UsageError
from tests.helpers.transformers_serve import free_port as _free_port

SECRET = "sk-evalkit-test-secret"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))


class _StubHandler(BaseHTTPRequestHandler):
    """GET /v1/models: 401 without the right key; otherwise a list whose `created` changes every call."""

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.headers.get("Authorization") != f"Bearer {SECRET}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"object": "list", "data": [
            {"id": "tiny-a", "object": "model", "owned_by": "me", "created": time.time_ns(), "max_model_len": 512},
            {"id": "tiny-b", "object": "model", "owned_by": "me", "created": time.time_ns()},
        ]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stub_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_unreachable_server(monkeypatch):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    checkpoint = Checkpoint.from_string(f"{url}#m", LoadOptions(timeout=5))
    with pytest.raises(UsageError, match=rf"server {url} is unreachable \(.*\); start it or check the URL"):
        checkpoint.fingerprint
    with pytest.raises(UsageError, match="is unreachable"):
        checkpoint.lm


def test_auth_error_names_env_var_and_hides_key(stub_url, monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", "wrong-key")
    options = LoadOptions(api_key_env="MY_SERVER_KEY")
    with pytest.raises(UsageError, match="refused the API key .*set the environment variable MY_SERVER_KEY") as info:
        Checkpoint.from_string(f"{stub_url}#tiny-a", options).fingerprint
    assert "wrong-key" not in str(info.value)


def test_model_not_served_lists_models(stub_url, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(UsageError, match=r"does not serve model 'tiny-c'; it serves: tiny-a, tiny-b"):
        Checkpoint.from_string(f"{stub_url}#tiny-c").fingerprint


def test_server_fingerprint_ignores_volatile_fields_and_hides_credentials(stub_url, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    spec = stub_url.replace("http://", "http://user:pw-in-url@") + "#tiny-a"
    first = Checkpoint.from_string(spec)
    assert first.fingerprint == Checkpoint.from_string(f"{stub_url}#tiny-a").fingerprint  # `created` changed
    assert first.fingerprint != Checkpoint.from_string(f"{stub_url}#tiny-b").fingerprint
    shown = json.dumps(first.info.to_dict())
    assert "pw-in-url" not in shown and SECRET not in shown
    assert first.info.spec == f"{stub_url}#tiny-a" and first.label == "tiny-a"


def test_server_supports_depends_on_endpoint_and_tokenizer(tiny_model_dir):
    completions = Checkpoint.from_string("http://127.0.0.1:9/v1#m", LoadOptions(model_args={"tokenizer": "org/tok"}))
    no_tokenizer = Checkpoint.from_string("http://127.0.0.1:9/v1#m")
    served_dir = Checkpoint.from_string(f"http://127.0.0.1:9/v1#{tiny_model_dir}")
    chat = Checkpoint.from_string("http://127.0.0.1:9/v1#m", LoadOptions(chat_template=True))
    by_args = Checkpoint.from_string("http://127.0.0.1:9/v1#m", LoadOptions(model_args={"api": "chat"}))
    assert completions.supports("loglikelihood") and completions.supports("generate_until")
    assert not no_tokenizer.supports("loglikelihood") and no_tokenizer.supports("generate_until")
    assert served_dir.supports("loglikelihood")
    assert not chat.supports("loglikelihood") and chat.supports("generate_until")
    assert not by_args.supports("loglikelihood_rolling")
    with pytest.raises(UsageError, match="api must be 'chat' or 'completions'"):
        Checkpoint.from_string("http://127.0.0.1:9/v1#m", LoadOptions(model_args={"api": "rest"})).supports("generate_until")


# ---------------------------------------------------------------- a real server: transformers serve


@pytest.fixture(scope="module")
def served_model(served_model_dirs, transformers_server):
    """`transformers serve` on 127.0.0.1 with a tiny chat model loaded; (base URL, model name)."""
    from tests.helpers.transformers_serve import served_models

    return served_models(transformers_server, served_model_dirs["plain"]), str(served_model_dirs["plain"])


def _generate_requests(prompts):
    from lm_eval.api.instance import Instance

    return [Instance("generate_until", {}, (p, {"until": ["\n\n"], "max_gen_toks": 4}), i) for i, p in enumerate(prompts)]


@pytest.mark.slow
def test_completions_server_generates_like_the_local_model(served_model):
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    url, model = served_model
    options = LoadOptions(num_concurrent=2, max_retries=1, timeout=60)
    checkpoint = Checkpoint.from_string(f"srv={url}#{model}", options)
    lm = checkpoint.lm
    assert isinstance(lm, LocalCompletionsAPI)
    prompts = ["The quick brown", "Answer:", "Delivery >"]
    served = lm.generate_until(_generate_requests(prompts))
    local = Checkpoint.from_string(model, LoadOptions(batch_size=1, device="cpu")).lm
    assert served == local.generate_until(_generate_requests(prompts))
    assert len(checkpoint.fingerprint) == 64


@pytest.mark.slow
def test_loglikelihood_without_prompt_logprobs_is_explained(served_model):
    from lm_eval.api.instance import Instance

    url, model = served_model
    lm = Checkpoint.from_string(f"{url}#{model}", LoadOptions(num_concurrent=1, max_retries=1, timeout=60)).lm
    with pytest.raises(UsageError, match="returned no prompt logprobs"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("The quick", " brown"), 0)])


@pytest.mark.slow
def test_chat_server_generates(served_model):
    url, model = served_model
    lm = Checkpoint.from_string(f"{url}#{model}", LoadOptions(chat_template=True, max_retries=1, timeout=60)).lm
    outputs = lm.generate_until(_generate_requests(["Hello there", "Label: late delivery"]))
    assert len(outputs) == 2 and all(isinstance(text, str) for text in outputs)
    chat = lm.apply_chat_template([{"role": "user", "content": "Hello there"}])
    assert isinstance(lm.generate_until(_generate_requests([chat]))[0], str)


# ---------------------------------------------------------------- labels derived from served model names


@pytest.mark.parametrize("model, label", [
    ("tiny-a", "tiny-a"),
    ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama--Llama-3.1-8B-Instruct"),
    ("../../x", "x"),
    ("/abs/dir", "abs--dir"),
    ("/srv/models/../../etc/passwd", "srv--models--etc--passwd"),
    ("..", "server"),
    ("./.hidden", "hidden"),
    ("a/../b", "a--b"),
    ("C:\\models\\m", "C_--models--m"),
    ("weird name:v1?x=1", "weird_name_v1_x_1"),
    ("-rf", "rf"),
])
def test_default_server_label_is_a_safe_file_name(model, label):
    spec_label = Checkpoint.from_string(f"http://127.0.0.1:9/v1#{model}").label
    assert spec_label == label
    assert "/" not in spec_label and "\\" not in spec_label and ".." not in spec_label
    assert not spec_label.startswith((".", "-")) and spec_label == Checkpoint.from_string(f"http://h:1/v1#{model}").label


def test_long_served_names_keep_their_end_and_stay_apart():
    from evalkit.checkpoints.spec import server_label

    first, second = server_label("org/" + "x" * 200 + "-a"), server_label("org/" + "x" * 200 + "-b")
    assert first != second and len(first) <= 96 and len(second) <= 96
    assert first.split("--")[-2].endswith("-a")


def test_served_names_that_look_like_paths_write_inside_out(tmp_path, store_path, capsys, monkeypatch):
    """`#../../evil` and `#/abs/dir` used to write ../../evil.json and /abs/dir.json; now both stay in --out."""
    from evalkit.cli import main
    from tests.helpers.flaky_server import FlakyServer

    monkeypatch.chdir(tmp_path)
    voc = Path(__file__).resolve().parents[1] / "evalkit" / "tasks" / "data" / "voc_sample"
    task = tmp_path / "voc_small.yaml"
    task.write_text(json.dumps({"name": "voc_small", "evaluator": "voc", "data": str(voc / "test.csv"),
                                "taxonomy": str(voc / "taxonomy.txt"), "id_field": "id", "text_field": "text",
                                "label_field": "label", "label_options": "none", "n_resamples": 0, "limit": 3}))
    absolute = tmp_path / "abs" / "dir"
    with FlakyServer(model="../../evil") as evil, FlakyServer(model=str(absolute)) as abs_server:
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", f"{evil.url}#../../evil", f"{abs_server.url}#{absolute}", "--tasks", str(task),
                  "-o", "out/run"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    results = sorted(p.name for p in (tmp_path / "out" / "run" / "results").iterdir())
    assert results == sorted(["evil.json", absolute.as_posix().strip("/").replace("/", "--") + ".json"])
    scratch = (tmp_path / "cache", store_path)  # evalkit's own cache and result store
    written = {p for p in tmp_path.rglob("*") if p.is_file() and p != task
               and scratch[0] not in p.parents and not p.name.startswith(scratch[1].name)}
    assert all((tmp_path / "out" / "run") in p.parents for p in written), written
    assert not (tmp_path.parent / "evil.json").exists() and not absolute.with_suffix(".json").exists()


# ---------------------------------------------------------------- which endpoint


@pytest.mark.parametrize("options, local_tokenizer, endpoint", [
    ({}, True, "completions"),                        # the template is rendered locally
    ({}, False, "chat"),                              # only the server can apply it
    ({"chat_template": False}, False, "completions"),  # a base model: plain text
    ({"chat_template": True}, True, "completions"),
    ({"chat_template": True}, False, "chat"),
    ({"endpoint": "chat"}, True, "chat"),
    ({"endpoint": "completions"}, False, "completions"),
    ({"model_args": {"api": "chat"}}, True, "chat"),  # the older spelling
    ({"endpoint": "chat", "model_args": {"api": "chat"}}, False, "chat"),
])
def test_endpoint_choice(options, local_tokenizer, endpoint, tiny_chat_model_dir):
    model = str(tiny_chat_model_dir) if local_tokenizer else "org/remote-model"
    checkpoint = Checkpoint.from_string(f"http://127.0.0.1:9/v1#{model}", LoadOptions(**options))
    assert checkpoint.settings["endpoint"] == endpoint
    assert checkpoint.supports("loglikelihood") is (endpoint == "completions" and local_tokenizer)


@pytest.mark.parametrize("options, message", [
    ({"endpoint": "chat", "chat_template": False}, "endpoint='chat' always applies the model's chat template"),
    ({"endpoint": "completions", "chat_template": True}, "chat_template=True with endpoint='completions' needs a "
                                                         "local tokenizer .*pass model_args='tokenizer=DIR_OR_ID'"),
    ({"endpoint": "chat", "model_args": {"api": "completions"}}, "endpoint='chat' and model_args='api=completions' "
                                                                 "disagree"),
    ({"endpoint": "tgi"}, "endpoint must be one of auto, completions, chat"),
])
def test_contradictory_endpoint_options_are_refused(options, message):
    with pytest.raises(UsageError, match=message):
        Checkpoint.from_string("http://127.0.0.1:9/v1#org/remote-model", LoadOptions(**options)).settings


@pytest.mark.parametrize("options, reason", [
    ({}, r"log-likelihoods need a local tokenizer .*pass model_args='tokenizer=DIR'"),  # auto picked chat
    ({"endpoint": "completions"}, r"log-likelihoods need a local tokenizer .*pass model_args='tokenizer=DIR'"),
    ({"endpoint": "chat", "model_args": {"tokenizer": "/x"}}, r"chat endpoints return no prompt log-probabilities; "
                                                               r"pass endpoint='completions'"),
])
def test_loglikelihood_refusals_name_what_to_pass(options, reason):
    checkpoint = Checkpoint.from_string("http://127.0.0.1:9/v1#org/remote-model", LoadOptions(**options))
    assert re.search(reason, checkpoint.unsupported_reason("loglikelihood"))
    assert checkpoint.unsupported_reason("generate_until") is None


def test_eval_prints_the_endpoint_in_its_settings(tmp_path, store_path, capsys):
    from evalkit.cli import main
    from tests.helpers.flaky_server import FlakyServer

    voc = Path(__file__).resolve().parents[1] / "evalkit" / "tasks" / "data" / "voc_sample"
    task = tmp_path / "voc_small.yaml"
    task.write_text(json.dumps({"name": "voc_small", "evaluator": "voc", "data": str(voc / "test.csv"),
                                "taxonomy": str(voc / "taxonomy.txt"), "id_field": "id", "text_field": "text",
                                "label_field": "label", "label_options": "none", "n_resamples": 0, "limit": 2}))
    with FlakyServer(model="org/instruct") as server:
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", f"{server.url}#org/instruct", "--tasks", str(task), "-o", str(tmp_path / "out")])
        assert exit_info.value.code == 0
        assert [r.get("messages", [{}])[-1].get("role") for r in server.requests] == ["user", "user"]
    assert "  settings: endpoint=chat\n" in capsys.readouterr().out
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["checkpoint"]["settings"] == {"endpoint": "chat"} and written["checkpoint"]["label"] == "org--instruct"
