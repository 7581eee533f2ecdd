"""How the library reports to a person: progress lines and results through a :class:`Reporter`, progress
bars with ETA on stderr (tqdm), and quiet third-party libraries while evalkit shows its own.

The library never prints: it calls :func:`note` (a progress line: "evaluating base ...") and
:func:`result` (a command's output: a verdict, "wrote PATH"). The command line renders them on stderr
and stdout (``evalkit.cli`` installs its reporter with :func:`use_reporter`); a Python caller gets them
as ``INFO`` records of the ``evalkit`` logger, or installs a reporter of its own.

evalkit shows one bar per training phase and one per task. The libraries underneath have bars and
hints of their own (lm-eval's per-request-batch bars, its "Custom kwargs can be passed" hint,
transformers' "Loading weights" / "Writing model shards" bars, datasets' map bars) that repeat or
interrupt evalkit's; :func:`quiet_third_party` silences them for a block unless ``verbose``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, Protocol

from .parameter_words import python_words

__all__ = [
    "Reporter",
    "bar",
    "note",
    "result",
    "warning",
    "warning_line",
    "use_reporter",
    "quiet_third_party",
    "NOISY_LOGGERS",
]

#: Library loggers lowered to ERROR while quiet (their warnings are hints for their own CLIs).
NOISY_LOGGERS = ("lm_eval", "transformers", "datasets", "huggingface_hub", "accelerate", "evaluate", "absl")
_quiet = False


class Reporter(Protocol):
    """Where the library's words go: progress lines for the person watching, and a command's results.

    A parameter named in a text is marked with :func:`evalkit.errors.arg`: render it with
    :func:`evalkit.errors.python_words` (as the default reporter does) or a table of your own (the CLI's flags)."""

    def note(self, message: str) -> None:
        """A progress line (the command line writes it on stderr)."""

    def result(self, text: str) -> None:
        """A command's output (the command line writes it on stdout)."""

    def warning(self, message: str) -> None:
        """Something was done to the user's input or environment that they should know (one line)."""


def warning_line(message: str) -> str:
    """``evalkit: warning: MESSAGE`` on one line, whatever whitespace ``message`` holds."""
    return f"evalkit: warning: {' '.join(message.split())}"


class _LoggingReporter:
    """Without a command line: notes and results are ``INFO`` records of the ``evalkit`` logger (silent
    unless logging is configured); a warning is still one line on stderr, which a caller must not miss."""

    def note(self, message: str) -> None:
        logging.getLogger("evalkit").info(python_words(message))

    def result(self, text: str) -> None:
        logging.getLogger("evalkit").info(python_words(text))

    def warning(self, message: str) -> None:
        sys.stderr.write(warning_line(python_words(message)) + "\n")


_reporter: Reporter = _LoggingReporter()


def note(message: str) -> None:
    """Report a progress line through the current :class:`Reporter`."""
    _reporter.note(message)


def result(text: str) -> None:
    """Report a command's output through the current :class:`Reporter`."""
    _reporter.result(text)


def warning(message: str) -> None:
    """Report a warning through the current :class:`Reporter`."""
    _reporter.warning(message)


@contextlib.contextmanager
def use_reporter(reporter: Reporter) -> Iterator[Reporter]:
    """Send :func:`note` and :func:`result` to ``reporter`` inside the block."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield reporter
    finally:
        _reporter = previous


def bar(total: int | None, desc: str, unit: str = "sample", *, leave: bool = False, **kwargs: Any) -> Any:
    """A tqdm bar; ``EVALKIT_PROGRESS=1`` forces it on, ``=0`` off (default: on for a terminal)."""
    from tqdm.auto import tqdm

    if _quiet:  # lm-eval modules imported since the block began (the model loader) get silenced too
        _silence_lm_eval_bars()
    forced = os.environ.get("EVALKIT_PROGRESS")
    disable = (forced == "0") if forced in ("0", "1") else not sys.stderr.isatty()
    if _terminal_width() == 0:  # a terminal of no size (`script` without one, some CI ttys): tqdm would print nothing
        kwargs.setdefault("ncols", 100)
        kwargs.setdefault("nrows", 24)
    else:
        kwargs.setdefault("dynamic_ncols", True)
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=leave, **kwargs)


def _terminal_width() -> int | None:
    """Columns of the terminal on stderr: 0 for a terminal that reports no size, None for no terminal."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a terminal, or stderr replaced by an object without fileno
        return None


def _silent_tqdm_class() -> tuple[Any, Any]:
    from tqdm import tqdm

    class SilentTqdm(tqdm):
        """lm-eval's request bars: one per batch of requests, under evalkit's one bar per task."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return tqdm, SilentTqdm


_patched: list[Any] = []


def _silence_lm_eval_bars() -> None:
    """Point the ``tqdm`` name of every imported lm-eval module at a bar that never draws.

    Called when the quiet block begins (after importing the modules whose bars run before evalkit's:
    request building) and again whenever evalkit opens a bar (by then the model backend is imported).
    """
    import lm_eval.api.model  # noqa: F401 - imported here so their bars are silenced from the start
    import lm_eval.api.task  # noqa: F401

    original, silent = _SILENT
    for name, module in list(sys.modules.items()):
        if name.startswith("lm_eval") and getattr(module, "tqdm", None) is original:
            setattr(module, "tqdm", silent)  # noqa: B010 - a module attribute mypy cannot see
            _patched.append(module)


_SILENT: tuple[Any, Any] = (None, None)


@contextlib.contextmanager
def quiet_third_party(verbose: bool = False) -> Iterator[None]:
    """Silence other libraries' bars and warnings inside the block, unless ``verbose``; restore after.

    Errors still surface (loggers stay at ERROR), and evalkit's own bars are unaffected.
    """
    global _quiet, _SILENT
    if verbose or _quiet:
        yield
        return
    import transformers.utils.logging as hf_logging

    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    bars_were_on = hf_logging.is_progress_bar_enabled()
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    _SILENT = _silent_tqdm_class()
    _quiet = True
    _silence_lm_eval_bars()
    with _quiet_datasets_bars():
        try:
            yield
        finally:
            _quiet = False
            while _patched:
                _patched.pop().tqdm = _SILENT[0]
            if bars_were_on:
                hf_logging.enable_progress_bar()
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _quiet_datasets_bars() -> Iterator[None]:
    import datasets
    import huggingface_hub.utils as hub

    datasets_was_on, hub_was_on = datasets.is_progress_bar_enabled(), not hub.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    hub.disable_progress_bars()
    try:
        yield
    finally:
        if datasets_was_on:
            datasets.enable_progress_bars()
        if hub_was_on:
            hub.enable_progress_bars()
