"""A signal reaches a prompt that waits for a key (``cli/_prompt_signals.py``). The race it
closes (a Ctrl-C typed as readline's prompt shows) is met in
``pipeline_cli_debug_prompt_test.py``; here, what the kicks do, without a terminal."""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from taskdaemon.pipeline.cli import _prompt_signals
from taskdaemon.pipeline.cli._prompt_signals import KICK, PromptSignals

LIBC = ctypes.CDLL(None, use_errno=True)


class DeadlineError(Exception):
    """The test waited too long: nothing woke the main thread."""


@pytest.fixture
def quiet_signal() -> Iterator[signal.Signals]:
    """SIGUSR2 handled by doing nothing (as a handler that does not raise), and SIGALRM as
    the test's deadline; both restored after."""
    previous = signal.signal(signal.SIGUSR2, lambda *_: None)

    def deadline(*_: object) -> None:
        raise DeadlineError

    previous_alarm = signal.signal(signal.SIGALRM, deadline)
    try:
        yield signal.SIGUSR2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(signal.SIGUSR2, previous)


def _signal_soon(number: int) -> threading.Thread:
    main = threading.get_ident()
    sender = threading.Timer(0.05, signal.pthread_kill, (main, number))
    sender.start()
    return sender


def test_a_signal_during_a_wait_wakes_the_main_thread_until_the_wait_ends(
    quiet_signal: signal.Signals,
) -> None:
    """A signal that comes while the main thread waits in C code (``pause``, as readline
    waits in ``select``) is followed by kicks, each ending that wait, which is where a
    pending handler runs; without them the main thread would sleep until the deadline."""
    woken = 0
    with PromptSignals() as signals, signals.waiting():
        sender = _signal_soon(quiet_signal)
        signal.setitimer(signal.ITIMER_REAL, 10)
        while woken < 4:  # the signal itself, then three kicks
            LIBC.pause()
            woken += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
    sender.join()
    assert 4 == woken


def _pauses_until_the_deadline() -> int:
    """How many times ``pause`` returned before the one the deadline ended."""
    woken = 0
    try:
        while True:
            LIBC.pause()
            woken += 1
    except DeadlineError:  # raised after the pause the deadline ended
        return woken


def test_outside_a_wait_nothing_is_kicked_and_all_is_put_back(
    quiet_signal: signal.Signals,
) -> None:
    """A signal outside ``waiting`` (the main thread runs Python code, where handlers run)
    sends no kick; leaving restores the handler, the wakeup descriptor and ends the
    thread."""
    kick_before = signal.getsignal(KICK)
    with PromptSignals():
        _signal_soon(quiet_signal).join()
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        assert 0 == _pauses_until_the_deadline()  # no kick ended a pause
    assert kick_before == signal.getsignal(KICK)
    assert -1 == signal.set_wakeup_fd(-1)
    assert "taskdaemon-prompt-signals" not in {t.name for t in threading.enumerate()}


def test_outside_the_main_thread_it_does_nothing() -> None:
    """Only the main thread runs signal handlers: elsewhere the guard installs nothing."""
    kick_before, done = signal.getsignal(KICK), []

    def enter() -> None:
        with PromptSignals() as signals, signals.waiting():
            done.append(signal.getsignal(KICK) is kick_before)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert [True] == done


def test_the_kick_handler_is_put_back_only_once_nothing_can_kick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Leaving ends the kicking thread before it puts KICK's handler back: a kick sent after
    (its default action ends the process) killed a debug prompt a hang-up ended while the
    thread kicked (exit -34, not 129)."""
    kicking_when_put_back = []

    def put(number: int, handler: Any) -> Any:
        if number == KICK and handler is not _prompt_signals._nothing:
            threads = {t.name for t in threading.enumerate()}
            kicking_when_put_back.append("taskdaemon-prompt-signals" in threads)
        return signal.signal(number, handler)

    # What the module calls of ``signal``, its handler setting watched.
    proxy = SimpleNamespace(
        signal=put, set_wakeup_fd=signal.set_wakeup_fd, pthread_kill=signal.pthread_kill
    )
    monkeypatch.setattr(_prompt_signals, "signal", proxy)
    with PromptSignals():
        pass
    assert [False] == kicking_when_put_back
