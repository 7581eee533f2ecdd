"""Progress and quiet: evalkit's own bars stay, other libraries' bars and hints are silenced unless --verbose."""

from __future__ import annotations

import logging

import pytest

from evalkit.progress import NOISY_LOGGERS, bar, quiet_third_party


def _lm_eval_state():
    import lm_eval.api.model
    import lm_eval.api.task
    import transformers.utils.logging as hf_logging

    return (lm_eval.api.model.tqdm, lm_eval.api.task.tqdm, hf_logging.is_progress_bar_enabled(),
            [logging.getLogger(name).level for name in NOISY_LOGGERS])


def test_quiet_silences_lm_eval_hints_and_request_bars_then_restores_everything(capsys):
    import lm_eval.api.model
    import transformers.utils.logging as hf_logging

    before = _lm_eval_state()
    with quiet_third_party():
        assert not logging.getLogger("lm_eval.api.task").isEnabledFor(logging.WARNING)  # the "Custom kwargs" hint
        assert logging.getLogger("lm_eval.api.task").isEnabledFor(logging.ERROR)        # errors still surface
        assert not hf_logging.is_progress_bar_enabled()                                  # "Loading weights", shards
        request_bar = lm_eval.api.model.tqdm(range(3), desc="Running loglikelihood requests", disable=False)
        assert request_bar.disable
        list(request_bar)
    assert "Running loglikelihood requests" not in capsys.readouterr().err
    assert _lm_eval_state() == before


def test_verbose_changes_nothing():
    before = _lm_eval_state()
    with quiet_third_party(verbose=True):
        assert _lm_eval_state() == before


def test_quiet_restores_after_an_error():
    before = _lm_eval_state()
    with pytest.raises(RuntimeError), quiet_third_party():
        raise RuntimeError("boom")
    assert _lm_eval_state() == before


def test_evalkit_bars_show_with_eta_when_forced(monkeypatch, capsys):
    monkeypatch.setenv("EVALKIT_PROGRESS", "1")
    with quiet_third_party(), bar(4, "demo_general", unit="doc", mininterval=0) as progress:
        for _ in range(4):
            progress.update(1)
    err = capsys.readouterr().err
    assert "demo_general" in err and "3/4" in err and "<00:" in err  # count and ETA



@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs a POSIX pseudo-terminal")
def test_bars_show_on_a_terminal_that_reports_no_size():
    """`script` without a terminal of its own gives a pty of 0 x 0; tqdm then drew nothing at all."""
    import os
    import pty
    import sys

    code = ("import os, sys; assert os.get_terminal_size(2).columns == 0\n"
            "from evalkit.progress import bar\n"
            "with bar(4, 'demo_general', unit='doc', mininterval=0, leave=True) as b:\n"
            "    [b.update(1) for _ in range(4)]\n")
    pid, fd = pty.fork()  # a new pseudo-terminal: 0 columns, 0 rows
    if pid == 0:
        os.environ.pop("EVALKIT_PROGRESS", None)  # the default: bars on for a terminal
        os.execv(sys.executable, [sys.executable, "-c", code])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "demo_general" in text and "4/4" in text, text
