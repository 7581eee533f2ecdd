"""``evalkit store``: list, export, import and garbage-collect the result store (``--store`` or $EVALKIT_STORE)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ._options import CONTEXT_SETTINGS, global_options

T = TypeVar("T")


def _printable(text: str) -> str:
    """Untrusted text (a checkpoint label from the store) without characters that drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _when(timestamp: float) -> str:
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


@click.group("store", context_settings=CONTEXT_SETTINGS)
def store_group() -> None:
    """List, move and clean the result store (SQLite file or postgresql:// URL, from --store / $EVALKIT_STORE)."""


def _on_store(ctx: click.Context, action: Callable[[Any], T]) -> tuple[T, str]:
    """``action(store)`` on the store of ``--store`` / $EVALKIT_STORE, and the store's location for messages."""
    from ..store import ResultStore

    with ResultStore(ctx.obj["store"]) as store:
        return action(store), store.location


@store_group.command("ls")
@global_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run instead of a table.")
@click.pass_context
def ls_cmd(ctx: click.Context, as_json: bool) -> None:
    """Runs in the store, newest first: when, checkpoint, task, samples stored, status."""
    from ..store import list_runs

    runs, location = _on_store(ctx, list_runs)
    if as_json:
        for run in runs:
            click.echo(json.dumps(run, sort_keys=True))
        return
    click.echo(f"{location}: {len(runs)} run{'s' if len(runs) != 1 else ''}")
    if runs:
        click.echo(f"{'updated (UTC)':<17} {'checkpoint':<24} {'task':<28} {'samples':>8}  {'status':<8} fingerprint")
    for run in runs:
        click.echo(
            f"{_when(run['updated']):<17} {_printable(run['label']):<24} {_printable(run['task']):<28} "
            f"{run['samples']:>8}  {run['status']:<8} {run['fingerprint'][:12]}"
        )


@store_group.command("export")
@global_options
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_context
def export_cmd(ctx: click.Context, path: str) -> None:
    """Write every run and its samples to PATH (JSON Lines; the same runs give the same bytes)."""
    from ..store import export_store

    count, location = _on_store(ctx, lambda store: export_store(store, path))
    click.echo(f"exported {count} run{'s' if count != 1 else ''} from {location} to {path}")


@store_group.command("import")
@global_options
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_context
def import_cmd(ctx: click.Context, path: str) -> None:
    """Add the runs of an export file: what the store has is kept, a complete run replaces an unfinished one."""
    from ..store import import_store

    counts, location = _on_store(ctx, lambda store: import_store(store, path))
    click.echo(
        f"imported {path} into {location}: {counts['runs_added']} new run(s), {counts['runs_completed']} "
        f"more complete, {counts['samples_added']} new sample(s) ({counts['runs_in_file']} run(s) in the file)"
    )


@store_group.command("gc")
@global_options
@click.option("--dry-run", is_flag=True, help="Only list what would be dropped.")
@click.pass_context
def gc_cmd(ctx: click.Context, dry_run: bool) -> None:
    """Drop runs of lm-eval or evaluator versions other than the installed ones (never reusable here)."""
    from ..store import collect_garbage

    dropped, location = _on_store(ctx, lambda store: collect_garbage(store, dry_run=dry_run))
    verb = "would drop" if dry_run else "dropped"
    for run in dropped:
        click.echo(
            f"{verb} {_printable(run['label'])} / {_printable(run['task'])} ({run['samples']} samples): {run['reason']}"
        )
    click.echo(f"{location}: {verb} {len(dropped)} run{'s' if len(dropped) != 1 else ''}")
