"""One set of numbers: tiny instruct models in-process and behind `transformers serve`, task kind by task kind.

Models (built in fixtures): ``plain`` has a chat template and a tokenizer that adds no BOS; ``bos`` is
Llama-like (the tokenizer prepends ``<s>`` and the template starts with ``{{ bos_token }}``); ``base`` has
no chat template. Paths: in-process ``HFLM``, the completions endpoint (chat template rendered locally
from the served model directory's tokenizer) and the chat endpoint (the server renders it). Tasks: VOC
generate, VOC constrained, IFEval, MMLU (log-likelihood) and MMLU generative, a few samples each.

Where the endpoint answers the request type, every per-sample output and every metric equals in-process
evaluation (greedy); where it cannot, the error is clear and comes before any evaluation request:
log-likelihood through the chat endpoint is refused before the model loads, and `transformers serve`'s
completions endpoint, which returns no prompt log-probabilities, is found out by one probe request.
One server (started without a model, so it serves all three) per module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.checkpoints import Checkpoint, LoadOptions
from evalkit.errors import UsageError
from tests.helpers.mmlu import write_mmlu

VOC_DATA = Path(__file__).resolve().parents[1] / "evalkit" / "tasks" / "data" / "voc_sample"
MODELS = ("plain", "bos", "base")
GENERATION_TASKS = ("voc_generate", "ifeval", "mmlu_generative")
LOGLIKELIHOOD_TASKS = ("voc_constrained", "mmlu")
IFEVAL_ROWS = [
    {"key": 1, "prompt": "Write a short note about a late delivery without any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Describe a refund in lowercase letters only.",
     "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
    {"key": 3, "prompt": "Answer with at least 3 words: is the screen cracked?",
     "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"relation": "at least", "num_words": 3}]},
]


@pytest.fixture(scope="module")
def models(served_model_dirs) -> dict[str, Path]:
    return served_model_dirs


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    from evalkit.taskconfig import load_task_file

    root = tmp_path_factory.mktemp("matrix_tasks")
    mmlu = write_mmlu(root / "mmlu", {"anatomy": "AB", "astronomy": "CD"})
    ifeval = root / "ifeval.jsonl"
    ifeval.write_text("".join(json.dumps(row) + "\n" for row in IFEVAL_ROWS), encoding="utf-8")
    voc = {"evaluator": "voc", "data": str(VOC_DATA / "test.csv"), "taxonomy": str(VOC_DATA / "taxonomy.txt"),
           "id_field": "id", "text_field": "text", "label_field": "label", "label_options": "none",
           "n_resamples": 0, "limit": 4}
    options = {
        "voc_generate": {**voc, "max_gen_toks": 8},
        "voc_constrained": {**voc, "mode": "constrained", "limit": 2},
        "ifeval": {"evaluator": "lm_eval", "lm_eval_task": "ifeval", "data": str(ifeval),
                   "generation": {"max_gen_toks": 12}},
        "mmlu": {"evaluator": "lm_eval", "lm_eval_task": "mmlu", "data": str(mmlu), "limit": 2},
        "mmlu_generative": {"evaluator": "lm_eval", "lm_eval_task": "mmlu_letter", "data": str(mmlu), "limit": 2,
                            "generation": {"max_gen_toks": 6}},
    }
    configs = {}
    for name, body in options.items():
        path = root / f"{name}.yaml"
        path.write_text(json.dumps({"name": name, **body}), encoding="utf-8")  # JSON is YAML
        configs[name] = load_task_file(path)
    return configs


@pytest.fixture(scope="module")
def server(models, transformers_server):
    from tests.helpers.transformers_serve import served_models

    return served_models(transformers_server, *models.values())


def _evaluate(spec: str, task_configs: list, store_dir: Path, **options):
    from evalkit.run import evaluate_checkpoint
    from evalkit.store import ResultStore

    # One max length for every path: the server does not report one, so VOC plans prompts alike.
    options = {"max_length": 1024, "batch_size": 1, "device": "cpu", "num_concurrent": 2, "max_retries": 1,
               "timeout": 120, **options}
    checkpoint = Checkpoint.from_string(spec, LoadOptions(**options))
    with ResultStore(store_dir / "store.sqlite") as store:
        return checkpoint, evaluate_checkpoint(checkpoint, task_configs, store)


@pytest.fixture(scope="module")
def in_process(models, tasks, tmp_path_factory) -> dict:
    """Reference results: every model on every task in-process."""
    results = {}
    for name, model_dir in models.items():
        _, result = _evaluate(str(model_dir), list(tasks.values()), tmp_path_factory.mktemp(f"ref_{name}"))
        results[name] = result
    return results


def _without_routing(metrics: dict) -> dict:
    """Metrics without the calibration / routing ones, which need log-probabilities (voc/routing.py)."""
    from evalkit.voc.routing import is_routing_metric

    return {name: value for name, value in metrics.items() if not is_routing_metric(name)}


def _outputs(task_result) -> list[dict]:
    """What must be equal per sample: outputs, predictions, scores (settings such as token counting may differ)."""
    return [{"id": r.sample_id, "prediction": r.prediction, "target": r.target, "correct": r.correct,
             "scores": r.scores, "raw": r.extra.get("raw_output"), "chat": r.extra.get("chat_template"),
             "loglikelihoods": r.extra.get("loglikelihoods")} for r in task_result.samples]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_served_generation_equals_in_process(model, endpoint, models, tasks, server, in_process, tmp_path):
    if endpoint == "chat" and model == "base":
        pytest.skip("a model without a chat template has no chat endpoint: test_chat_endpoint_needs_a_template")
    checkpoint, served = _evaluate(f"{server}#{models[model]}", [tasks[t] for t in GENERATION_TASKS], tmp_path,
                                   endpoint=endpoint)
    assert served.checkpoint.settings["endpoint"] == endpoint
    reference = in_process[model]
    for task in GENERATION_TASKS:
        assert _outputs(served.tasks[task]) == _outputs(reference.tasks[task]), (model, endpoint, task)
        assert _without_routing(served.tasks[task].metrics) == _without_routing(reference.tasks[task].metrics), (model, endpoint, task)
    # VOC generate's confidence pass: in-process it scores every parsed path (unparsed outputs get 0 unscored);
    # `transformers serve` returns no prompt log-probabilities, so served confidences exist only where nothing
    # had to be scored (test_served_voc_generate_without_prompt_logprobs_keeps_outputs_and_says_why)
    voc_reference = reference.tasks["voc_generate"]
    assert {s.extra["confidence"]["method"] for s in voc_reference.samples} == {"continuation_logprob"}
    templated = model != "base"
    assert served.tasks["ifeval"].settings["chat_template"] is templated
    assert reference.tasks["ifeval"].settings["chat_template"] is templated
    assert {s.extra["chat_template"] for s in served.tasks["voc_generate"].samples} == {templated}
    raw = [s.extra.get("raw_output", s.prediction) for t in GENERATION_TASKS for s in served.tasks[t].samples]
    assert len(set(map(str, raw))) >= 6  # the outputs differ per prompt: equality means something
    assert checkpoint.lm.request_stats.requests == sum(len(served.tasks[t].samples) for t in GENERATION_TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("task", LOGLIKELIHOOD_TASKS)
def test_loglikelihood_through_the_chat_endpoint_is_refused_before_loading(task, models, tasks, server, tmp_path):
    with pytest.raises(UsageError, match=rf"task '{task}' needs loglikelihood requests.*chat endpoints return no "
                                         r"prompt log-probabilities; pass endpoint='completions'"):
        _evaluate(f"{server}#{models['plain']}", [tasks[task]], tmp_path, endpoint="chat")


@pytest.mark.slow
@pytest.mark.parametrize("task", LOGLIKELIHOOD_TASKS)
def test_loglikelihood_through_transformers_serve_is_refused_after_one_probe(task, models, tasks, server, tmp_path):
    from tests.helpers.flaky_server import FlakyServer

    with FlakyServer(upstream=server, model=str(models["bos"])) as proxy:  # counts what reaches the server
        with pytest.raises(UsageError, match="returned no prompt logprobs to a probe .*serve the model with vLLM"):
            _evaluate(f"{proxy.url}#{models['bos']}", [tasks[task]], tmp_path, endpoint="completions")
    # the probes only (next-token top-k for shared-prefix scoring, then echoed prompt log-probs, asked with
    # vLLM's own prompt_logprobs fields, which transformers serve refuses (4xx), and again without); no evaluation
    assert proxy.posts == 3 and all(r.get("max_tokens") in (0, 1) for r in proxy.requests), proxy.requests
    # (proxy.requests holds the answered ones: the plain echo probe; the other two were refused)
    assert [r.get("prompt_logprobs") for r in proxy.requests] == [None] and proxy.requests[0]["echo"], proxy.requests


@pytest.mark.slow
def test_served_voc_generate_without_prompt_logprobs_keeps_outputs_and_says_why(models, tasks, server, tmp_path):
    """Outputs that parse (fixed label lines) must be scored; `transformers serve` cannot: the run completes
    with its outputs and metrics, without confidences, and its settings say why."""
    from evalkit.evaluators.base import get_evaluator

    checkpoint = Checkpoint.from_string(f"{server}#{models['plain']}", LoadOptions(endpoint="completions", max_length=1024))
    served = checkpoint.lm
    evaluator = get_evaluator("voc")(tasks["voc_generate"])
    evaluator.check_ready()
    label = evaluator.data.taxonomy.format(evaluator.examples[0].path)

    class ParsedOutputs:  # generation answered with a label; log-likelihoods go to the server
        def __getattr__(self, name):
            return getattr(served, name)

        def generate_until(self, requests, disable_tqdm=False):
            return [label for _ in requests]

    records = evaluator.run(ParsedOutputs(), done={}, save=lambda batch: None)
    assert all(r.prediction == label for r in records)
    assert not any("confidence" in r.extra for r in records)
    result = evaluator.aggregate(records)
    assert "leaf_ece" not in result.metrics and result.metrics["path_accuracy"] is not None
    assert "returned no prompt logprobs" in result.settings["confidence_unavailable"]


@pytest.mark.slow
def test_in_process_reference_is_not_trivial(in_process):
    """The reference itself: templates applied where the model has one, answers that vary."""
    for model in MODELS:
        result = in_process[model]
        assert set(result.tasks) == set(GENERATION_TASKS + LOGLIKELIHOOD_TASKS)
        lls = [ll for s in result.tasks["mmlu"].samples for ll in s.extra["loglikelihoods"]]
        assert len(set(lls)) == len(lls)
        assert result.tasks["ifeval"].settings["chat_template"] is (model != "base")


def test_chat_endpoint_needs_a_template(models, tasks, tmp_path):
    """A model whose local tokenizer has no chat template is refused on the chat endpoint before any request."""
    checkpoint = Checkpoint.from_string(f"http://127.0.0.1:9/v1#{models['base']}", LoadOptions(endpoint="chat"))
    with pytest.raises(UsageError, match=r"task 'ifeval' needs generate_until requests.*the chat endpoint applies the "
                                         r"model's chat template, and its tokenizer \(.*base\) has none; use "
                                         r"endpoint='completions'"):
        from evalkit.run import evaluate_checkpoint
        from evalkit.store import ResultStore

        checkpoint._fingerprint = "0" * 64  # nothing listens on port 9: the refusal must come first
        with ResultStore(tmp_path / "store.sqlite") as store:
            evaluate_checkpoint(checkpoint, [tasks["ifeval"]], store)
    assert Checkpoint.from_string(f"http://127.0.0.1:9/v1#{models['plain']}",
                                  LoadOptions(endpoint="chat")).supports("generate_until")


@pytest.mark.parametrize("model, tokenized", [("bos", False), ("bos", True), ("plain", False)])
def test_completions_send_the_tokens_in_process_feeds_the_model(model, tokenized, models):
    """The chat-templated prompt reaches the server as the tokens HFLM feeds the model: one BOS, never two."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from tests.helpers.flaky_server import FlakyServer

    tokenizer = AutoTokenizer.from_pretrained(models[model])
    hflm = HFLM(pretrained=str(models[model]), batch_size=1, device="cpu")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Label: the box was damaged"}]
    rendered = hflm.apply_chat_template(chat)
    in_process = hflm.tok_batch_encode([rendered])[0][0].tolist()
    assert in_process.count(tokenizer.bos_token_id) == (1 if model == "bos" else 0)
    args = {"tokenized_requests": "true"} if tokenized else {}
    with FlakyServer(model=str(models[model])) as server:
        lm = Checkpoint.from_string(f"{server.url}#{models[model]}", LoadOptions(model_args=args)).lm
        assert lm.evalkit_chat_template is None  # the evaluators decide: the model has a template
        prompt = lm.apply_chat_template(chat)
        lm.generate_until([Instance("generate_until", {}, (prompt, {"until": ["\n"], "max_gen_toks": 4}), 0)])
        sent = server.requests[-1]["prompt"]
    # the server tokenizes text prompts with the tokenizer's defaults (vLLM, transformers serve); token ids as sent
    served = sent[0] if tokenized else tokenizer(sent).input_ids
    assert served == in_process
