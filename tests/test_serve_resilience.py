"""Served evaluation: retries/backoff/fail-fast against a stub that fails on purpose, resume after a
server dies, and `evalkit compare` through a flaky proxy in front of `transformers serve` giving the same
records as in-process evaluation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evalkit.checkpoints import Checkpoint, LoadOptions
from evalkit.checkpoints.resilient_api import RetryPolicy, is_retryable_status, returns_prompt_logprobs
from evalkit.errors import EvaluationError, ServerError, UsageError
from tests.helpers.flaky_server import FlakyServer, answer_for
from tests.helpers.transformers_serve import served_models

VOC_DATA = Path(__file__).resolve().parents[1] / "evalkit" / "tasks" / "data" / "voc_sample"
FAST = {"retry_wait": 0.01}  # first backoff 10 ms so retry tests stay fast


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))


def _lm(server: FlakyServer, **options):
    model_args = {**FAST, **options.pop("model_args", {})}
    if "api" not in model_args:  # the stub's name is no local model dir: auto would pick the chat endpoint
        options.setdefault("endpoint", "completions")
    return Checkpoint.from_string(f"{server.url}#{server.model}", LoadOptions(model_args=model_args, **options)).lm


def _requests(n: int, until=("\n",)):
    from lm_eval.api.instance import Instance

    return [Instance("generate_until", {}, (f"prompt number {i}", {"until": list(until), "max_gen_toks": 8}), i)
            for i in range(n)]


# ------------------------------------------------------------------ policy


def test_retryable_statuses():
    assert [s for s in (200, 400, 401, 403, 404, 408, 422, 429, 500, 502, 503, 504) if is_retryable_status(s)] == [
        408, 429, 500, 502, 503, 504]


def test_backoff_doubles_with_jitter_and_is_capped():
    policy = RetryPolicy(max_retries=6, base_wait=0.5, max_wait=3.0)
    assert [policy.wait(n, jitter=1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    for n in range(1, 6):
        assert 0.5 * min(3.0, 0.5 * 2 ** (n - 1)) <= policy.wait(n) <= 3.0
    assert policy.wait(1, retry_after=10.0) == 3.0  # Retry-After is honoured, within the cap
    with pytest.raises(UsageError, match="retry_wait must be a number of seconds >= 0, got -1"):
        RetryPolicy(base_wait=-1)


# ------------------------------------------------------------------ retries against the stub


@pytest.mark.parametrize("status", [500, 429])
def test_flaky_server_gives_the_same_answers_as_a_clean_one(status):
    with FlakyServer() as clean, FlakyServer(fail_every=3, fail_status=status) as flaky:
        lm = _lm(flaky, num_concurrent=4, max_retries=3)
        outputs = lm.generate_until(_requests(30))
        assert outputs == _lm(clean, num_concurrent=4).generate_until(_requests(30))
    assert outputs == [answer_for(f"prompt number {i}", flaky.answers) for i in range(30)]
    assert flaky.statuses[status] >= 5 and flaky.answered == 30
    assert lm.request_stats.retries == flaky.statuses[status] and lm.request_stats.requests == 30


def test_one_request_at_a_time_also_retries():
    with FlakyServer(fail_every=2) as flaky:
        lm = _lm(flaky, num_concurrent=1, max_retries=2)
        assert lm.generate_until(_requests(5)) == [answer_for(f"prompt number {i}", flaky.answers) for i in range(5)]
    assert flaky.statuses[500] == 4


def test_timeouts_are_retried():
    with FlakyServer(hang_every=4, hang_seconds=4.0) as flaky:
        lm = _lm(flaky, num_concurrent=4, max_retries=2, timeout=1.0)
        started = time.monotonic()
        assert len(lm.generate_until(_requests(8))) == 8
    assert lm.request_stats.failures["timeout"] >= 2 and time.monotonic() - started < 8


@pytest.mark.parametrize("status, message", [
    (401, r"refused the API key \(HTTP 401\) on POST /completions; set the environment variable"),
    (404, r"answered HTTP 404 to POST /completions .*check the model name after '#'"),
    (400, r"rejected a request with HTTP 400 on POST /completions: .*failing on purpose"),
])
def test_client_errors_fail_fast_without_retries(status, message):
    with FlakyServer(always_status=status) as server:
        lm = _lm(server, num_concurrent=4, max_retries=5, model_args={"retry_wait": 1.0})
        started = time.monotonic()
        with pytest.raises(UsageError, match=message):
            lm.generate_until(_requests(20))
    assert server.posts <= 4 and time.monotonic() - started < 3.0  # no retry (each would wait >= 0.5 s)


def test_a_server_that_always_fails_gives_up_in_bounded_time():
    with FlakyServer(always_status=503) as server:
        lm = _lm(server, num_concurrent=2, max_retries=2)
        started = time.monotonic()
        with pytest.raises(ServerError, match=r"failed 3 times in a row on a generation request \(HTTP 503: .*lower num_concurrent=N"):
            lm.generate_until(_requests(50))
    assert server.posts <= 2 * 3 and time.monotonic() - started < 5.0


def test_retries_back_off_exponentially_and_honour_the_cap():
    with FlakyServer(always_status=500) as server:
        with pytest.raises(EvaluationError):
            _lm(server, num_concurrent=1, max_retries=3, model_args={"retry_wait": 0.1}).generate_until(_requests(1))
    gaps = [b - a for a, b in zip(server.post_times, server.post_times[1:])]
    assert len(gaps) == 3
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # 0.1 * 2**(n-1), times a jitter in [0.5, 1]
    with FlakyServer(always_status=500) as server:
        started = time.monotonic()
        with pytest.raises(EvaluationError):
            _lm(server, num_concurrent=1, max_retries=3,
                model_args={"retry_wait": 5.0, "retry_max_wait": 0.05}).generate_until(_requests(1))
    assert time.monotonic() - started < 2.5  # uncapped: >= 2.5 + 5 + 10 s


def test_retry_after_header_is_honoured():
    with FlakyServer(fail_every=2, fail_status=429, retry_after="0.3") as server:  # the 2nd POST is rate limited
        lm = _lm(server, num_concurrent=1, max_retries=2)
        lm.generate_until(_requests(2))
    assert server.post_times[2] - server.post_times[1] >= 0.3


def test_chat_endpoint_retries_too():
    with FlakyServer(fail_every=2) as server:
        lm = _lm(server, num_concurrent=3, max_retries=2, model_args={"api": "chat"})
        outputs = lm.generate_until(_requests(6))
    assert outputs == [answer_for(f"prompt number {i}", server.answers) for i in range(6)]
    assert server.statuses[500] >= 2


def test_stop_strings_left_in_by_the_server_are_cut():
    with FlakyServer(answers=[" Delivery > Late delivery\nmore"]) as server:
        outputs = _lm(server).generate_until(_requests(2, until=(">",)))
    assert outputs == [" Delivery ", " Delivery "]


def test_loglikelihood_needs_prompt_logprobs_and_says_so_before_any_request(tiny_model_dir):
    from lm_eval.api.instance import Instance

    request = Instance("loglikelihood", {}, ("The quick", " brown"), 0)
    with FlakyServer() as server:
        lm = _lm(server, model_args={"tokenizer": str(tiny_model_dir)})
        with pytest.raises(UsageError, match="returned no prompt logprobs to a probe .*serve the model with vLLM"):
            lm.loglikelihood([request] * 5)
    assert server.posts == 2  # the probes only: next-token log-probabilities (shared-prefix scoring), then echo
    with FlakyServer(prompt_logprobs=True) as vllm_like:
        assert returns_prompt_logprobs(f"{vllm_like.url}/completions", vllm_like.model, {})


# ------------------------------------------------------------------ resume through the store


def _voc_task(tmp_path: Path, *, name: str = "voc_served", **extra) -> Path:
    options = {"name": name, "evaluator": "voc", "data": str(VOC_DATA / "test.csv"),
               "train_data": str(VOC_DATA / "train.csv"), "taxonomy": str(VOC_DATA / "taxonomy.txt"),
               "id_field": "id", "text_field": "text", "label_field": "label", "label_options": "none",
               "n_resamples": 0, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(options), encoding="utf-8")  # JSON is YAML
    return path


def _labels() -> list[str]:
    return [" " + line.strip() for line in (VOC_DATA / "taxonomy.txt").read_text().splitlines() if line.strip()]


def _evaluate(server: FlakyServer, task_path: Path, store_file: Path):
    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore
    from evalkit.taskconfig import load_task_file

    checkpoint = Checkpoint.from_string(f"{server.url}#{server.model}",
                                        LoadOptions(num_concurrent=2, max_retries=1, model_args=dict(FAST)))
    return evaluate_checkpoint(checkpoint, [load_task_file(task_path)], ResultStore(store_file))


def test_a_served_run_interrupted_by_a_dying_server_resumes_with_only_the_missing_samples(tmp_path):
    task = _voc_task(tmp_path, limit=12, batch_docs=4)
    with FlakyServer(answers=_labels(), down_after=6) as server:
        with pytest.raises(EvaluationError, match="failed 2 times in a row .*evaluate again to resume"):
            _evaluate(server, task, tmp_path / "store.sqlite")
        answered_before = server.answered
        server.down_after = None  # the server is back
        result = _evaluate(server, task, tmp_path / "store.sqlite").tasks["voc_served"]
    assert result.timing["resumed_samples"] == 4  # one full batch of 4 was stored before the failure
    # Only the 8 missing samples were asked again; the stored batch never was. (Counted by distinct
    # prompts: a request of the dying run still retrying at the moment the server came back may land too.)
    stored_prompts, resumed_prompts = set(server.prompts[:4]), set(server.prompts[answered_before:])
    assert not stored_prompts & resumed_prompts
    assert len(resumed_prompts) == 12 - 4
    with FlakyServer(answers=_labels()) as healthy:
        clean = _evaluate(healthy, task, tmp_path / "clean.sqlite").tasks["voc_served"]
    assert [r.to_dict() for r in result.samples] == [r.to_dict() for r in clean.samples]
    assert result.metrics == clean.metrics
    assert all(r.prediction is not None for r in result.samples)  # the stub answers with valid label paths


# ------------------------------------------------------------------ a real server: transformers serve


@pytest.fixture(scope="module")
def served_tiny(served_model_dirs, transformers_server):
    """`transformers serve` on 127.0.0.1 with a tiny model without chat template loaded; (/v1 URL, model dir)."""
    return served_models(transformers_server, served_model_dirs["base"]), served_model_dirs["base"]


@pytest.mark.slow
def test_compare_through_a_flaky_proxy_equals_in_process(served_tiny, tmp_path, store_path, capsys):
    """`evalkit compare URL#MODEL DIR`: same records and metrics served (with failures) as in-process (greedy).

    The prompt ends mid-word (``text[:24]``) so the random tiny model's outputs differ per sample, and the
    stop string "e" cuts some of them: `transformers serve` leaves stop strings in its text, vLLM does not.
    ``--max-length 1024`` makes both sides plan prompts for the same context (the server does not report it).
    """
    from evalkit.cli import main

    upstream, tiny_model_dir = served_tiny
    task = _voc_task(tmp_path, name="voc_tiny", limit=10, batch_docs=5, prompt_template="{{ text[:24] }}",
                     max_gen_toks=12, until=["e", "\n"])
    with FlakyServer(upstream=upstream, model=str(tiny_model_dir), fail_every=2) as proxy:
        argv = ["compare", f"srv={proxy.url}#{tiny_model_dir}", f"local={tiny_model_dir}", "--tasks", str(task),
                "--batch-size", "1", "--device", "cpu", "--max-length", "1024", "--num-concurrent", "2",
                "-o", str(tmp_path / "out")]  # --model-args would reach the in-process model too
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert proxy.statuses[500] >= 2 and proxy.answered == 10  # how many depends on timing (never 2 in a row)
    served, local = (json.loads((tmp_path / "out" / "results" / f"{label}.json").read_text())["tasks"]["voc_tiny"]
                     for label in ("srv", "local"))
    outputs = [s["extra"]["raw_output"] for s in served["samples"]]
    assert outputs == [s["extra"]["raw_output"] for s in local["samples"]]
    assert len(set(outputs)) >= 5 and any(len(o) < 12 for o in outputs)  # varied, some cut at "e"
    assert served["metrics"] == local["metrics"] and served["settings"] == local["settings"]


def test_cli_reports_a_key_refused_mid_run_in_one_line(tmp_path, store_path, capsys):
    from evalkit.cli import main

    task = _voc_task(tmp_path, limit=6)
    with FlakyServer(always_status=401) as server:  # /v1/models answers, completions refuse the key
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", f"{server.url}#{server.model}", "--tasks", str(task), "--max-retries", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and server.posts <= 8
    assert err[-1].startswith("evalkit: error: server http://127.0.0.1:") and "refused the API key (HTTP 401)" in err[-1]
    assert not any("Traceback" in line for line in err)


# ------------------------------------------------------------------ log-likelihood through echo=true


def _in_process_continuation_ids(tokenizer, context: str, continuation: str) -> list[int]:
    """The continuation tokens in-process HFLM scores: whole minus context, with the tokenizer's BOS."""
    whole, ctx = tokenizer(context + continuation).input_ids, tokenizer(context).input_ids
    assert whole[:len(ctx)] == ctx
    return whole[len(ctx):]


@pytest.mark.parametrize("model_args", [{}, {"tokenized_requests": "true", "add_bos_token": "true"},
                                        {"tokenized_requests": "true"}])
def test_loglikelihood_scores_the_continuation_when_the_server_prepends_bos(tmp_path, model_args):
    # vLLM tokenizes text prompts with the tokenizer's special tokens (a BOS first for Llama-style
    # tokenizers); lm-eval 0.4.13 counted the continuation from the start of the echo and so added the last
    # context token's log-prob. Counted from the end, every way of sending prompts scores the same tokens.
    from lm_eval.api.instance import Instance
    from transformers import AutoTokenizer

    from evalkit.testing import build_tiny_model
    from tests.helpers.flaky_server import token_logprob

    model_dir = build_tiny_model(tmp_path / "bos_model")
    _add_bos_post_processor(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer("Answer").input_ids[0] == tokenizer.bos_token_id
    pairs = [("Question: What is the capital of France? Answer:", " A"), ("The quick brown", " fox jumps")]
    with FlakyServer(prompt_logprobs=True, echo_tokenizer=tokenizer) as server:
        lm = _lm(server, model_args={"tokenizer": str(model_dir), **model_args})
        scores = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)])
    expected = [sum(token_logprob(t) for t in _in_process_continuation_ids(tokenizer, *pair)) for pair in pairs]
    assert [score for score, _ in scores] == pytest.approx(expected)


def _add_bos_post_processor(model_dir: Path) -> None:
    """Make the tiny tokenizer prepend <s> like Llama's (the default tiny tokenizer adds nothing)."""
    from tokenizers import Tokenizer, processors

    path = model_dir / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    bos_id = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                             special_tokens=[("<s>", bos_id)])
    tokenizer.save(str(path))


def test_short_echo_is_a_clear_error():
    from evalkit.checkpoints.answers import MalformedAnswer, echo_logprobs

    answer = {"choices": [{"index": 0, "logprobs": {"token_logprobs": [None, -1.0], "top_logprobs": [None, {}]}}]}
    with pytest.raises(MalformedAnswer, match="2 token log-probs and 2 top log-probs for a prompt whose "
                                              "continuation has 3 tokens .*another tokenizer"):
        echo_logprobs(answer, [[1, 2, 3, 4]], [1])


def test_add_bos_token_with_text_prompts_is_refused(tiny_model_dir):
    with FlakyServer() as server:
        with pytest.raises(UsageError, match="add_bos_token=true needs tokenized_requests=true"):
            _lm(server, model_args={"tokenizer": str(tiny_model_dir), "add_bos_token": "true"})
