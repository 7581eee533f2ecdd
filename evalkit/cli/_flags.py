"""The command line's one table from API parameter to flag, and the rendering of library text with it.

Library errors and progress lines never say a flag: the parameter at fault is ``EvalkitError.param``, and
a parameter named inside a message (a hint, "pass config=DIR") is marked with :func:`evalkit.errors.arg`.
Here each becomes the flag the user typed.
"""

from __future__ import annotations

from ..errors import render_args

__all__ = ["FLAGS", "flag_words"]

#: The flag (or argument) behind each API parameter a library message may name.
FLAGS = {
    "notes": "--note",
    "baseline": "--baseline",
    "tasks": "--tasks",
    "overrides": "--set",
    "rerun": "--rerun",
    "model_args": "--model-args",
    "policy": "--policy",
    "results": "SPECS",
    "models": "specs",
    "baseline_results": "--baseline-results",
    "sequential": "--sequential",
    "dtype": "--dtype",
    "backend": "--backend",
    "endpoint": "--endpoint",
    "max_retries": "--max-retries",
    "chunk_size": "--sequential-chunk",
    "base": "--base",
    "config": "--config",
    "allow_pickle": "--allow-pickle",
    "trust_remote_code": "--trust-remote-code",
    "chat_template": "--chat-template",
    "api_key_env": "--api-key-env",
    "num_concurrent": "--num-concurrent",
    "timeout": "--request-timeout",
    "max_length": "--max-length",
    "store": "--store",
    "limit": "--limit",
    "sample_seed": "--sample-seed",
    "seed": "--sequential-seed",
    "log": "--log",
    "label": "--label",
    "checkpoint_dir": "CHECKPOINT_DIR",
}


def _flag(name: str, value: str | None) -> str:
    """``--flag VALUE`` for a marked ``name=value``: a True switch is the flag, a False one its ``--no-`` form."""
    flag = FLAGS.get(name)
    if flag is None:
        return name if value is None else f"{name}={value}"
    if value is None or value == "True":
        return flag
    if value == "False":
        return "--no-" + flag[2:]
    if len(value) > 1 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return f"{flag} {value}"


def flag_words(text: str) -> str:
    """Library text in command-line words: each parameter marked with :func:`~evalkit.errors.arg` as its flag.

    >>> from evalkit.errors import arg
    >>> flag_words(f"pass {arg('allow_pickle', True)}, or {arg('config', 'DIR')}; {arg('chat_template', False)} "
    ...            f"with {arg('endpoint', repr('chat'))}.")
    'pass --allow-pickle, or --config DIR; --no-chat-template with --endpoint chat.'
    >>> flag_words(f"needs the hub: {arg('overrides', repr('mmlu.data=PATH'))} (plain name=VALUE text stays)")
    'needs the hub: --set mmlu.data=PATH (plain name=VALUE text stays)'
    """
    return render_args(text, _flag)
