"""``SignalKeeper`` in this process, on a real event loop and real signal handling: what it
keeps, what it puts back and says, its timer, and what it leaves alone (``cli/signal_keeper.py``).
The run-level cases (``pipeline_cli_signal_keeper_test.py``) run ``taskdaemon`` in
subprocesses."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from taskdaemon.pipeline.cli import signal_keeper
from taskdaemon.pipeline.cli.signal_keeper import CHECK_SECONDS, SignalKeeper

LOGGER = "taskdaemon.pipeline.cli.signal_keeper"
KEPT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def taskdaemons(signum: int, frame: Any) -> None:
    """Stands for taskdaemon's own handling (never called: no signal is sent)."""


def stage_codes(signum: int, frame: Any) -> None:
    """Stands for a handler's own (never called)."""


@pytest.fixture(autouse=True)
def handling_put_back() -> Iterator[None]:
    """Each kept signal handled by ``taskdaemons`` during the case (mutmut's workers ignore
    SIGINT), and as it was after it."""
    saved = {signum: signal.getsignal(signum) for signum in KEPT}
    for signum in KEPT:
        signal.signal(signum, taskdaemons)
    try:
        yield
    finally:
        for signum, handling in saved.items():
            signal.signal(signum, handling)


def warnings_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def said(name: str, what: str) -> str:
    return (
        f"{name}'s handling was changed by stage code ({what}): taskdaemon's is put back, so "
        f"that {name} still stops the run"
    )


def test_put_back_restores_each_changed_signal_and_says_what_it_had_become(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        keeper = SignalKeeper()
        assert keeper.keep() is keeper
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, stage_codes)
            with caplog.at_level(logging.DEBUG, LOGGER):
                keeper.put_back()
        finally:
            keeper.close()

    asyncio.run(main())
    assert [signal.getsignal(signum) for signum in KEPT] == [taskdaemons] * 3
    assert warnings_said(caplog) == [
        said("SIGINT", "set to be ignored"),
        said("SIGTERM", "set to its default action"),
        said("SIGHUP", "given a handler of its own"),
    ]


def test_put_back_of_an_unchanged_handling_says_nothing_and_looks_at_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        keeper = SignalKeeper().keep()
        try:
            with caplog.at_level(logging.DEBUG, LOGGER):
                keeper.put_back()
                assert caplog.records == []
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the last: the others unchanged
                keeper.put_back()
        finally:
            keeper.close()

    asyncio.run(main())
    assert signal.getsignal(signal.SIGHUP) is taskdaemons
    assert warnings_said(caplog) == [said("SIGHUP", "set to be ignored")]


def test_a_handling_that_cannot_be_put_back_is_skipped_and_the_others_still_are(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``signal.signal`` refusing one signal (ValueError, TypeError, OSError) never raises
    into the run, says nothing of that signal, and leaves the next ones checked."""
    real = signal.signal

    def refusing(signum: int, handling: Any) -> Any:
        if signum == signal.SIGINT:
            raise ValueError("refused")
        return real(signum, handling)

    async def main() -> None:
        keeper = SignalKeeper().keep()
        try:
            real(signal.SIGINT, signal.SIG_IGN)
            real(signal.SIGTERM, signal.SIG_IGN)
            monkeypatch.setattr(signal, "signal", refusing)
            with caplog.at_level(logging.DEBUG, LOGGER):
                keeper.put_back()
            monkeypatch.undo()
        finally:
            keeper.close()

    asyncio.run(main())
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is taskdaemons
    assert warnings_said(caplog) == [said("SIGTERM", "set to be ignored")]


@pytest.mark.parametrize("error", [ValueError, TypeError, OSError])
def test_each_refusal_of_signal_signal_is_swallowed(
    error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refusing(signum: int, handling: Any) -> Any:
        raise error("refused")

    async def main() -> None:
        keeper = SignalKeeper().keep()
        try:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            monkeypatch.setattr(signal, "signal", refusing)
            keeper.put_back()
            monkeypatch.undo()
        finally:
            keeper.close()

    asyncio.run(main())


def test_a_handling_set_outside_python_is_named_so() -> None:
    assert signal_keeper._handling(None) == "set outside Python"


@pytest.mark.slow
def test_the_timer_puts_back_every_check_seconds_until_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first look is ``CHECK_SECONDS`` after ``keep``, and each look sets the next."""

    async def restored_by_the_timer(loop: asyncio.AbstractEventLoop) -> float:
        changed = loop.time()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while signal.getsignal(signal.SIGINT) is not taskdaemons:  # each turn a timer may run
            assert loop.time() - changed < 10 * CHECK_SECONDS, "never put back"
            await asyncio.sleep(CHECK_SECONDS / 10)
        return loop.time() - changed

    async def main() -> None:
        loop = asyncio.get_running_loop()
        keeper = SignalKeeper().keep()
        try:
            timer = keeper._timer
            assert timer is not None
            assert CHECK_SECONDS * 0.9 <= timer.when() - loop.time() <= CHECK_SECONDS
            with caplog.at_level(logging.DEBUG, LOGGER):
                await restored_by_the_timer(loop)
                await restored_by_the_timer(loop)  # the first look set the next one
            assert keeper._timer is not timer
            assert keeper._timer is not None
            timer = keeper._timer
        finally:
            keeper.close()
        assert timer.cancelled()
        assert keeper._timer is None
        keeper.close()  # twice: nothing to stop

    asyncio.run(main())
    assert warnings_said(caplog) == [said("SIGINT", "set to be ignored")] * 2


def test_keep_off_the_main_thread_keeps_nothing_and_needs_no_loop() -> None:
    """Only the main thread can change a signal's handling: elsewhere there is nothing to keep
    (nor a running loop to look on)."""
    kept: list[SignalKeeper] = []
    errors: list[BaseException] = []

    def keep() -> None:
        try:
            kept.append(SignalKeeper().keep())
        except BaseException as error:  # said in the assertion below
            errors.append(error)

    thread = threading.Thread(target=keep)
    thread.start()
    thread.join()
    assert errors == []
    keeper = kept[0]
    assert keeper._timer is None
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keeper.put_back()  # nothing kept: nothing put back
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
