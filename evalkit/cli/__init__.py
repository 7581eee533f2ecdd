"""The ``evalkit`` command line: parse, call the API, map errors to exit codes.

Exit codes: 0 success (gates passed), 1 a gate failed, 2 usage or input error, 3 an evaluation
failed. Errors print one line; ``--debug`` adds the traceback. Heavy libraries are imported inside
commands, so ``evalkit --help`` stays instant.

That is what a function-local import in evalkit is for: start-up time (torch, transformers, lm_eval,
pandas, matplotlib, jinja2 and the modules that pull them in, loaded by the command that needs them).
It never hides a cycle: ``tests/test_import_cycles.py`` and ``tests/test_import_layers.py`` count
imports inside functions like any other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EvalkitError, printable
from ._flags import FLAGS as _FLAGS
from ._flags import flag_words
from ._options import _STORE_HELP, _VERBOSE_HELP, CONTEXT_SETTINGS, ConsoleReporter, _State, global_options


def _quiet(ctx: click.Context):
    """Other libraries' bars and hints off while evalkit shows its own, unless ``--verbose``."""
    from ..progress import quiet_third_party

    return quiet_third_party(verbose=bool(ctx.obj.get("verbose")))


def _batch_size(ctx, param, value: str) -> str:
    """``--batch-size``: a positive integer, ``auto`` or ``auto:N`` (lm-eval's forms), checked before any work."""
    import re

    if value is None or re.fullmatch(r"[1-9][0-9]{0,5}|auto(:[1-9][0-9]{0,3})?", str(value).strip()):
        return value if value is None else str(value).strip()
    raise click.BadParameter(f"expected a positive integer, 'auto' or 'auto:N', got {value!r}.")


def _seconds(ctx, param, value: float) -> float:
    """A finite number of seconds > 0 (0, negative, nan or inf would make every request fail or hang)."""
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a number of seconds > 0, got {value!r}.")
    return value


def _load_options(kw: dict):
    from ..checkpoints import LoadOptions

    from .._pairs import parse_pairs, split_commas

    model_args = parse_pairs(split_commas(kw.pop("model_args")), param="model_args")
    batch = kw.pop("batch_size")
    import os
    import re

    from ..errors import register_secret

    register_secret(os.environ.get(kw["api_key_env"]))  # redacted from everything printed or written
    for key, value in model_args.items():  # e.g. --model-args token=hf_...: it would reach results.json
        if re.search(r"key|token|secret|passw|auth|credential", str(key), re.IGNORECASE):
            register_secret(str(value))
    return LoadOptions(
        base=kw.pop("base"),
        config=kw.pop("config"),
        allow_pickle=kw.pop("allow_pickle"),
        trust_remote_code=kw.pop("trust_remote_code"),
        batch_size=int(batch) if batch.isdigit() else batch,
        device=kw.pop("device"),
        dtype=kw.pop("dtype"),
        max_length=kw.pop("max_length"),
        model_args=model_args,
        num_concurrent=kw.pop("num_concurrent"),
        max_retries=kw.pop("max_retries"),
        timeout=kw.pop("request_timeout"),
        api_key_env=kw.pop("api_key_env"),
        chat_template=kw.pop("chat_template"),
        endpoint=kw.pop("endpoint"),
        backend=kw.pop("backend"),
    )


def model_options(func):
    """Options shared by every command that loads checkpoints."""
    options = [
        click.option("--base", help="Base model (dir or hub id) for a PEFT adapter; overrides adapter_config.json."),
        click.option("--config", help="Model dir whose config.json and tokenizer a single weights file is applied to."),
        click.option(
            "--allow-pickle",
            is_flag=True,
            help="Allow full unpickling of .bin/.pt/.ckpt files (runs code from the file!).",
        ),
        click.option(
            "--trust-remote-code", is_flag=True, help="Allow model code from the checkpoint (off by default)."
        ),
        click.option(
            "--batch-size",
            default="auto",
            show_default=True,
            callback=_batch_size,
            help="Batch size: an integer, 'auto' or 'auto:N'.",
        ),
        click.option("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)."),
        click.option("--dtype", default=None, help="Model dtype: auto, float32, bfloat16, float16."),
        click.option(
            "--max-length", type=click.IntRange(min=1), default=None, help="Maximum context length in tokens."
        ),
        click.option("--model-args", default=None, help="Extra lm-eval model arguments, KEY=VALUE,..."),
        click.option(
            "--num-concurrent",
            type=click.IntRange(1, 1024),
            default=8,
            show_default=True,
            help="Concurrent requests to a server.",
        ),
        click.option(
            "--max-retries",
            type=click.IntRange(0, 100),
            default=5,
            show_default=True,
            help="Retries on 429/5xx/timeouts.",
        ),
        click.option(
            "--request-timeout",
            type=float,
            default=300.0,
            show_default=True,
            callback=_seconds,
            help="Seconds per server request (> 0).",
        ),
        click.option(
            "--api-key-env",
            default="OPENAI_API_KEY",
            show_default=True,
            help="Environment variable holding the server's API key.",
        ),
        click.option(
            "--chat-template/--no-chat-template",
            default=None,
            help="Apply the model's chat template (default: when it has one).",
        ),
        click.option(
            "--endpoint",
            type=click.Choice(["auto", "completions", "chat"]),
            default="auto",
            show_default=True,
            help="Server endpoint. auto: /v1/completions with a local tokenizer (the chat template is rendered "
            "locally) or --no-chat-template, else /v1/chat/completions (the server applies it).",
        ),
        click.option(
            "--backend",
            type=click.Choice(["hf", "vllm"]),
            default="hf",
            show_default=True,
            help="Engine for local models: lm-eval's HFLM, or its in-process vLLM (needs vllm installed).",
        ),
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="TASK.KEY=VALUE",
            help="Override a task option, e.g. mmlu.num_fewshot=5.",
        ),
        click.option(
            "--limit",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="Evaluate N samples of each task (of each MMLU subject), drawn with --sample-seed.",
        ),
        click.option(
            "--sample-seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of the --limit samples: the same ones for every checkpoint and run.",
        ),
        click.option("--rerun", is_flag=True, help="Ignore stored results and evaluate again."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--verbose", "-v", is_flag=True, help=_VERBOSE_HELP)
@click.option("--store", "store_path", default=None, envvar="EVALKIT_STORE", metavar="PATH|URL", help=_STORE_HELP)
@click.version_option(package_name="evalkit")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool, store_path: str | None) -> None:
    """Evaluate fine-tuned LLM checkpoints on domain and general axes, compare them, gate releases.

    \b
    Checkpoint specs ([LABEL=]SPEC):
      path/to/hf_model_dir         Hugging Face model directory (or a hub id when online)
      path/to/lora_adapter_dir     PEFT adapter (base from adapter_config.json or --base)
      path/to/model.safetensors    one weights file (+ sibling config.json or --config DIR)
      http://HOST:PORT/v1#MODEL    OpenAI-compatible server (key from $OPENAI_API_KEY)
      predictions.jsonl            {"task","id","output"} rows, scored by generation tasks
    """
    from ..progress import use_reporter

    _State.debug = debug
    ctx.obj = {"store": store_path, "verbose": verbose, "debug": debug}
    ctx.with_resource(use_reporter(ConsoleReporter()))  # the library's notes and results, rendered here


@cli.command("eval")
@global_options
@click.argument("spec")
@click.option("--tasks", "-t", required=True, help="Comma-separated task names or task YAML paths.")
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None, help="Write DIR/results.json.")
@model_options
@click.pass_context
def eval_cmd(
    ctx: click.Context, spec: str, tasks: str, out: str | None, overrides, rerun: bool, limit, sample_seed, **kw
) -> None:
    """Evaluate one checkpoint SPEC on --tasks and print its metrics."""
    from .. import api
    from .._io import MANIFEST_NAME, OutputFolder, dump_json
    from ..parallel import current_ranks

    task_configs = api.with_limit(api.resolve(tasks, overrides), limit, sample_seed)
    checkpoint = api.as_checkpoint(spec, options=_load_options(kw))
    # before any model loads; under torchrun only rank 0 writes, so only it checks (two ranks probing the same
    # new folder at once would race: one creates and removes it while the other probes it)
    checks_out = out and current_ranks().main
    folder = OutputFolder(out, option="--out").check("results.json", MANIFEST_NAME) if out and checks_out else None
    result = api.evaluate(
        checkpoint, task_configs, store=ctx.obj["store"], rerun=rerun, verbose=bool(ctx.obj.get("verbose"))
    )
    if not current_ranks().main:  # under torchrun/accelerate only rank 0 prints and writes
        return
    _print_result(result)
    if folder is not None:
        with folder:
            path = folder.write_text("results.json", text=dump_json(result.to_dict()))
        click.echo(f"wrote {path}")


def _print_result(result) -> None:
    click.echo(
        f"{result.checkpoint.label}  ({result.checkpoint.kind}, fingerprint {result.checkpoint.fingerprint[:12]})"
    )
    if result.checkpoint.settings:
        from ..checkpoints import format_settings

        click.echo(f"  settings: {format_settings(result.checkpoint.settings)}")
    for name, task in result.tasks.items():
        stored = task.timing.get("answered_from_store")
        click.echo(
            f"  {name}  n={task.n_samples}"
            + ("  (answered from the result store; --rerun evaluates again)" if stored else "")
        )
        for metric, value in task.metrics.items():
            stderr = task.stderr.get(metric)
            extra = f" ± {stderr:.4f}" if isinstance(stderr, float) else ""
            click.echo(
                f"    {metric:<32} {value:.4f}{extra}"
                if isinstance(value, (int, float))
                else f"    {metric:<32} {value}"
            )


@cli.command("tasks")
@global_options
def tasks_cmd() -> None:
    """List the task files shipped with evalkit and the registered evaluators."""
    from ..evaluators.base import evaluator_names
    from ..taskconfig import load_task_file, shipped_task_names, shipped_tasks_dir

    from ..general.hub import task_data_problem

    click.echo(f"Shipped tasks ({shipped_tasks_dir()}):")
    unavailable = 0
    for name in shipped_task_names():
        config = load_task_file(shipped_tasks_dir() / f"{name}.yaml")
        problem = task_data_problem(config)
        unavailable += problem is not None
        mark = "  " if problem is None else "✗ "
        click.echo(f"{mark}{name:<20} [{config.evaluator}] {config.description}")
        if problem:
            click.echo(f"    data not available here: {flag_words(problem)}")
    if unavailable:
        click.echo(f"✗ = data not available here ({unavailable} task{'s' if unavailable != 1 else ''}).")
    click.echo("Any lm-eval task or group name also works (e.g. hellaswag, arc_challenge, gsm8k).")
    click.echo(f"Evaluators: {', '.join(evaluator_names())}")


@cli.command("compare")
@global_options
@click.argument("specs", nargs=-1, required=True)
@click.option("--tasks", "-t", required=True, help="Comma-separated task names or task YAML paths.")
@click.option("--out", "-o", type=click.Path(file_okay=False), required=True, help="Output folder for the report.")
@click.option("--baseline", default=None, help="Label of the baseline checkpoint (default: the first).")
@click.option(
    "--baseline-results",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Take a checkpoint's results from an earlier results.json / comparison.json instead of evaluating it.",
)
@click.option("--policy", type=click.Path(dir_okay=False), default=None, help="Gate policy YAML; sets the exit code.")
@click.option(
    "--note", "notes", multiple=True, metavar="LABEL=TEXT", help="A note shown beside a checkpoint in the report."
)
@click.option(
    "--sequential",
    is_flag=True,
    help="Evaluate gated tasks in random chunks and stop each once --policy's gates are decided "
    "(anytime-valid confidence sequences; see docs/gating.md).",
)
@click.option("--sequential-seed", type=int, default=0, show_default=True, help="Seed of the random sample order.")
@click.option(
    "--sequential-chunk",
    type=click.IntRange(1),
    default=None,
    help="Samples between two looks at the confidence sequences (default 100).",
)
@click.option(
    "--log",
    "trackers",
    multiple=True,
    type=click.Choice(["mlflow", "wandb"]),
    help="Also record the comparison in MLflow or Weights & Biases (repeatable; where it goes follows "
    "their settings, e.g. MLFLOW_TRACKING_URI, WANDB_PROJECT; see docs/integrations.md).",
)
@model_options
@click.pass_context
def compare_cmd(
    ctx: click.Context,
    specs,
    tasks,
    out,
    baseline,
    baseline_results,
    policy,
    notes,
    sequential,
    sequential_seed,
    sequential_chunk,
    trackers,
    overrides,
    rerun,
    limit,
    sample_seed,
    **kw,
) -> None:
    """Evaluate checkpoints (reusing stored results), compare them and write a report to --out.

    \b
    Exit codes:
      0  done; every gate passed (warnings allowed), or no --policy
      1  a gate of --policy failed for at least one checkpoint
      2  bad input: options, specs, task files or policy (nothing is evaluated)
      3  an evaluation failed, or a bug in evalkit
    """
    from .commands import compare_pipeline

    # the pipeline checks every input before it quiets (and so imports) the heavy libraries
    code = compare_pipeline(
        specs=list(specs),
        tasks=tasks,
        out=Path(out),
        baseline=baseline,
        baseline_results=list(baseline_results),
        policy=policy,
        notes=list(notes),
        overrides=list(overrides),
        limit=limit,
        sample_seed=sample_seed,
        rerun=rerun,
        load_options=_load_options(kw),
        store_path=ctx.obj["store"],
        sequential=sequential,
        sequential_seed=sequential_seed,
        sequential_chunk=sequential_chunk,
        verbose=bool(ctx.obj.get("verbose")),
        trackers=list(trackers),
    )
    sys.exit(code)


@cli.command("report")
@global_options
@click.argument("source", nargs=-1, required=True)
@click.option("--out", "-o", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--baseline", default=None, help="Baseline label when SOURCE are results files.")
@click.pass_context
def report_cmd(ctx: click.Context, source, out, baseline) -> None:
    """Re-render a report from a comparison.json, or from results.json files, with no model."""
    from .commands import report_pipeline

    report_pipeline(sources=list(source), out=Path(out), baseline=baseline, store_path=ctx.obj["store"])


@cli.command("gate")
@global_options
@click.argument("comparison", type=click.Path(dir_okay=False))
@click.option("--policy", required=True, type=click.Path(dir_okay=False), help="Gate policy YAML.")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False),
    default=None,
    help="Where junit.xml and the verdict go (default: beside COMPARISON).",
)
def gate_cmd(comparison, policy, out) -> None:
    """Apply a gate policy to a comparison.json; write junit.xml and verdict.json.

    \b
    Exit codes:
      0  every gate passed (warnings allowed)
      1  a gate failed for at least one checkpoint
      2  bad input: the policy or the comparison
    """
    from .commands import gate_pipeline

    sys.exit(gate_pipeline(comparison=Path(comparison), policy=Path(policy), out=Path(out) if out else None))


@cli.command("card")
@global_options
@click.argument("checkpoint_dir", type=click.Path(file_okay=False))
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(dir_okay=False),
    help="The comparison.json (from `evalkit compare --out`) whose results go into the card.",
)
@click.option(
    "--label",
    default=None,
    help="The checkpoint's label in the comparison (default: the one whose spec "
    "is CHECKPOINT_DIR, else the only non-baseline one).",
)
def card_cmd(checkpoint_dir, source, label) -> None:
    """Write (or update) the model-index results and verdict in CHECKPOINT_DIR/README.md.

    Through huggingface_hub's ModelCard (pip install 'evalkit[hub]'); push the card yourself,
    e.g. `hf upload ORG/MODEL CHECKPOINT_DIR/README.md README.md`.

    \b
    Exit codes:
      0  the card is written
      2  bad input: the comparison, the folder or the label
    """
    from ..comparison import Comparison
    from ..exports.hub import write_model_card

    click.echo(f"wrote {write_model_card(checkpoint_dir, Comparison.load(source), label=label)}")


@cli.command("demo")
@global_options
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False),
    default="reports/demo",
    show_default=True,
    help="Output folder for the report (report.html, report.md, comparison.json, metrics.csv, junit.xml).",
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), default=None, help="Where trained demo checkpoints are cached."
)
@click.option("--retrain", is_flag=True, help="Train the demo checkpoints again even if cached.")
@click.pass_context
def demo_cmd(ctx: click.Context, out, cache_dir, retrain) -> None:
    """Train three tiny checkpoints (base, domain-only, 75/25 mix) and compare them offline.

    \b
    Exit codes:
      0  the expected outcome: domain_only fails the forgetting gate, mixed_75_25 passes
      1  another outcome (e.g. other library versions trained differently)
    """
    from ..demo import run_demo

    with _quiet(ctx):
        code = run_demo(
            out=Path(out),
            cache_dir=Path(cache_dir) if cache_dir else None,
            retrain=retrain,
            store_path=ctx.obj["store"],
        )
    sys.exit(code)


def _add_store_commands() -> None:
    from .store import store_group

    cli.add_command(store_group)


_add_store_commands()


class _RedactingStream:
    """stdout/stderr as evalkit prints them: secrets redacted, unencodable characters escaped.

    Everything printed (errors, warnings, third-party log lines echoing a server's answer) passes
    through here, so an API key or Authorization value never reaches a terminal or CI log.
    """

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        from ..errors import redact

        text = redact(text)
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:  # a lone surrogate or a non-UTF-8 console
            encoding = getattr(self._stream, "encoding", None) or "utf-8"
            return self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into one line and an exit code."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactingStream(sys.stdout), _RedactingStream(sys.stderr)
    try:
        _main(argv)
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="evalkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("evalkit: interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except EvalkitError as exc:
        _report(exc, exc.exit_code)
    except KeyboardInterrupt:
        click.echo("evalkit: interrupted; finished samples are stored, rerun to resume.", err=True)
        sys.exit(130)
    except OSError as exc:  # a path the user named that the filesystem refuses is input, not a bug
        from ..errors import path_name_error

        usage = path_name_error(exc)
        _report(usage or exc, 2 if usage else 3, prefix="" if usage else f"internal error ({type(exc).__name__}): ")
    except Exception as exc:  # an unexpected failure: still one line unless --debug
        _report(exc, 3, prefix=f"internal error ({type(exc).__name__}): ")
    sys.exit(0)


def _report(exc: BaseException, code: int, prefix: str = "") -> None:
    if _State.debug:
        import traceback

        traceback.print_exception(exc)
    text = exc.marked if isinstance(exc, EvalkitError) else str(exc)
    message = flag_words(" ".join(text.split())) or type(exc).__name__
    # Untrusted text in a message (a label, a server's answer) must not drive the terminal.
    message = printable(message)
    param = getattr(exc, "param", None) or ""
    flag = _FLAGS.get(param)
    if flag and message.startswith(param + " "):  # "dtype must be ..." -> "--dtype must be ..."
        message = flag + message[len(param) :]
    elif flag and flag not in message:  # a message naming the flag already (a hint) needs no prefix
        prefix = f"{prefix}{flag}: "
    if code == 3 and exc.__cause__ is not None and not _State.debug and "--debug" not in message:
        message += " (--debug for the traceback)"
    click.echo(f"evalkit: error: {prefix}{message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
