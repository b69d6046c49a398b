"""``cli/stop_signals.py`` in this process, with real signals on a real loop: the first SIGINT,
SIGTERM or SIGHUP cancels the run once, with the reason and the who its record shows, says so
on stderr and sets the exit code; a signal before the run has an id is kept for it; a second
signal ends the process at once (in a forked child); SIGHUP ignored at start (``nohup``) stays
ignored, and a hung-up run keeps ignoring the shell's later SIGHUP. The commands around it
(``run``, ``replay``, ``debug``) are ``pipeline_cli_faults_test.py``'s and
``pipeline_cli_hangup_test.py``'s, in subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import IO

import pytest

from cli_faults_support import standard_streams_put_back
from taskdaemon.pipeline.cli.hangup import HANGUP_REASON
from taskdaemon.pipeline.cli.stop_signals import StopSignals

#: Seconds a signal sent to this process is given to reach its handler on the loop.
ARRIVAL = 30.0


@pytest.fixture(autouse=True)
def hangup_put_back() -> Iterator[None]:
    """A hung-up run leaves SIGHUP ignored for the rest of the process (the shell's late
    SIGHUP must not end it), and points the standard streams that are a terminal (``pytest
    -s`` on one) at ``/dev/null``: both put back for the next test. Each test starts with
    SIGHUP's default action, as a command started from a terminal has it, whatever the
    suite's own (ignored under ``nohup``, which the test of that case sets itself)."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    with standard_streams_put_back():
        yield
    signal.signal(signal.SIGHUP, previous)


def _bind(signals: StopSignals, run_id: str) -> list[tuple[str | None, str]]:
    """Bind ``signals`` to run ``run_id``: the cancels asked for it, as ``(reason, by)``."""
    cancels: list[tuple[str | None, str]] = []
    signals.bind(run_id, lambda reason, by: cancels.append((reason, by)))
    return cancels


async def _all_handled() -> None:
    """Until the loop has handled every signal sent so far: it handles them in the order they
    came, so a SIGUSR1 sent now is handled after them."""
    loop, done = asyncio.get_running_loop(), asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, done.set)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(done.wait(), ARRIVAL)
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


@pytest.mark.parametrize(
    ("signum", "reason", "code"),
    [
        (signal.SIGINT, None, 130),
        (signal.SIGTERM, None, 143),
        (signal.SIGHUP, HANGUP_REASON, 129),
    ],
    ids=["int", "term", "hup"],
)
async def test_the_first_signal_cancels_the_run_once_and_says_so(
    signum: int, reason: str | None, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run is cancelled for the signal (SIGHUP with its own reason), the line names the
    signal and the run, and the exit code is 128 + the signal. A SIGHUP after it (the shell's,
    as it exits) cancels nothing more and does not end the process."""
    signals = StopSignals()
    signals.install()
    try:
        cancels = _bind(signals, "run-7")
        os.kill(os.getpid(), signum)
        os.kill(os.getpid(), signal.SIGHUP)
        await _all_handled()
    finally:
        signals.remove()
    name = signal.Signals(signum).name
    assert cancels == [(reason, name)]
    assert signals.received == [signum]
    assert signals.exit_code() == code
    assert capsys.readouterr().err == f"\n{name}: cancelling run run-7...\n"


async def test_a_signal_before_the_run_has_an_id_cancels_it_once_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A SIGTERM that comes while the run is being set up is kept: nothing is said until the
    run has an id, then the run is cancelled for it at once."""
    signals = StopSignals()
    signals.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await _all_handled()
        said_before = capsys.readouterr().err
        cancels = _bind(signals, "run-8")
    finally:
        signals.remove()
    assert (said_before, cancels) == ("", [(None, "SIGTERM")])
    assert capsys.readouterr().err == "\nSIGTERM: cancelling run run-8...\n"
    assert signals.exit_code() == 143


def _closed() -> IO[str]:
    stream = io.StringIO()
    stream.close()
    return stream


def _broken_pipe() -> IO[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)
    return open(write_end, "w", encoding="utf-8")


@pytest.mark.parametrize("gone", [_closed, _broken_pipe], ids=["closed", "reader-ended"])
async def test_a_run_whose_stderr_is_gone_is_cancelled_all_the_same(
    gone: Callable[[], IO[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line cannot be written (stderr closed, or its reader ended: EPIPE), and must not
    stop the cancel."""
    stderr = gone()
    monkeypatch.setattr(sys, "stderr", stderr)
    signals = StopSignals()
    signals.install()
    try:
        cancels = _bind(signals, "run-12")
        os.kill(os.getpid(), signal.SIGTERM)
        await _all_handled()
    finally:
        signals.remove()
        with contextlib.suppress(OSError):
            stderr.close()
    assert cancels == [(None, "SIGTERM")]


def test_without_a_signal_there_is_no_exit_code() -> None:
    """A run that ended by itself keeps its own exit code."""
    assert StopSignals().exit_code() is None


async def test_under_nohup_sighup_stays_ignored() -> None:
    """With SIGHUP ignored at start, a SIGHUP cancels nothing: the SIGTERM sent after it is the
    first signal handled."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signals = StopSignals()
    signals.install()
    try:
        cancels = _bind(signals, "run-9")
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        await _all_handled()
    finally:
        signals.remove()
    assert (signals.received, cancels) == ([signal.SIGTERM], [(None, "SIGTERM")])


@pytest.mark.parametrize(
    ("hang_up", "after"), [(False, signal.SIG_DFL), (True, signal.SIG_IGN)], ids=["term", "hup"]
)
async def test_removed_the_signals_are_given_back(hang_up: bool, after: object) -> None:
    """Once removed, SIGTERM and SIGINT are handled as before it; after a hang-up SIGHUP is
    ignored from then on (the shell's, as it exits, must not end a process returning its exit
    code), otherwise given back too."""
    signals = StopSignals()
    signals.install()
    try:
        _bind(signals, "run-10")
        os.kill(os.getpid(), signal.SIGHUP if hang_up else signal.SIGTERM)
        await _all_handled()
    finally:
        signals.remove()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGHUP) == after


async def test_removing_twice_leaves_the_signals_to_their_new_owner() -> None:
    """A second ``remove`` does nothing: the signals a later owner took on the same loop stay
    its own (SIGTERM still cancels its run), and SIGHUP, which a hang-up left ignored and the
    later owner does not handle (as under ``nohup``), stays ignored. A second call that
    removed the handlers again would give SIGTERM its default action, which ends the process
    and leaves its run ``interrupted``."""
    first = StopSignals()
    first.install()
    try:
        _bind(first, "run-13")
        os.kill(os.getpid(), signal.SIGHUP)
        await _all_handled()
    finally:
        first.remove()
    later = StopSignals()
    later.install()
    try:
        cancels = _bind(later, "run-14")
        first.remove()
        assert signal.SIG_DFL != signal.getsignal(signal.SIGTERM), "SIGTERM would end pytest"
        assert signal.SIG_IGN == signal.getsignal(signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        await _all_handled()
    finally:
        later.remove()
    assert [(None, "SIGTERM")] == cancels


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
@pytest.mark.parametrize(
    ("second", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["int", "term"]
)
def test_a_second_signal_ends_the_process_at_once(second: int, code: int) -> None:
    """The user does not want to wait: a second SIGINT or SIGTERM while the run stops ends the
    process with 128 + that signal (a forked child, whose cancel never ends its run), where
    the first alone only cancels (this process goes on)."""
    first_only = asyncio.run(_stopping(None))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            asyncio.run(_stopping(second))
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert (first_only, os.waitstatus_to_exitcode(status)) == ([(None, "SIGTERM")], code)


async def _stopping(second: int | None) -> list[tuple[str | None, str]]:
    """A run's cancels after SIGTERM, and then ``second`` (if any), were handled."""
    signals = StopSignals()
    signals.install()
    try:
        cancels = _bind(signals, "run-11")
        os.kill(os.getpid(), signal.SIGTERM)
        if second is not None:
            os.kill(os.getpid(), second)
        await _all_handled()
    finally:
        signals.remove()
    return cancels
