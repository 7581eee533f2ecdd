"""The options every command accepts (``--store``, ``--debug``, ``--verbose``), shared by the command modules."""

from __future__ import annotations

import click

from ._flags import flag_words

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _State:
    debug = False


class ConsoleReporter:
    """The library's :class:`~evalkit.progress.Reporter` on the command line: notes on stderr, results on stdout."""

    def note(self, message: str) -> None:
        click.echo(flag_words(message), err=True)

    def result(self, text: str) -> None:
        click.echo(flag_words(text))

    def warning(self, message: str) -> None:
        from ..progress import warning_line

        click.echo(warning_line(flag_words(message)), err=True)


_STORE_HELP = (
    "Result store: a SQLite file PATH or postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or "
    "~/.pgpass). Default: $EVALKIT_STORE, else results.sqlite in the user cache dir."
)
_VERBOSE_HELP = "Show the libraries' own progress bars and warnings (lm-eval, transformers, datasets)."


def _set_global(ctx: click.Context, param: click.Parameter, value) -> None:
    """``--store``/``--debug``/``--verbose`` given after the subcommand: same effect as before it."""
    if value is None or value is False:
        return
    ctx.ensure_object(dict)[param.name] = value
    if param.name == "debug":
        _State.debug = True


def global_options(func):
    """The group's options, accepted after the subcommand too (``evalkit eval ... --store PATH``)."""
    options = [
        click.option(
            "--store",
            "store",
            default=None,
            metavar="PATH|URL",
            expose_value=False,
            callback=_set_global,
            is_eager=True,
            help=_STORE_HELP,
        ),
        click.option(
            "--debug",
            is_flag=True,
            default=None,
            expose_value=False,
            callback=_set_global,
            is_eager=True,
            help="Show tracebacks for errors.",
        ),
        click.option(
            "--verbose",
            "-v",
            is_flag=True,
            default=None,
            expose_value=False,
            callback=_set_global,
            is_eager=True,
            help=_VERBOSE_HELP,
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
