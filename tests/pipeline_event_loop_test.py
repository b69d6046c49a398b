"""The pipeline commands' event loop (``event_loop.py``): a busy loop polls its selector at most
once a spacing, an idle one as before, and ``run`` runs its stages on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write
from taskdaemon.pipeline.event_loop import POLL_SPACING, SpacedSelector, new_event_loop, run


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_zero_timeout_poll_within_the_spacing_is_skipped() -> None:
    clock = Clock()
    selector = SpacedSelector(spacing=0.001, clock=clock)
    reader, writer = socket.socketpair()
    try:
        selector.register(reader, 1)  # EVENT_READ
        writer.send(b"x")
        assert [key.fileobj for key, _ in selector.select(0)] == [reader]  # the first poll
        clock.now += 0.0009
        assert selector.select(0) == []  # ready, but polled 0.9 ms ago: not asked
        assert selector.select(-1) == []  # a negative timeout is a zero one
        clock.now += 0.0002  # 1.1 ms after the last poll
        assert [key.fileobj for key, _ in selector.select(0)] == [reader]
        # A poll that may block always asks the kernel, however soon.
        assert [key.fileobj for key, _ in selector.select(0.01)] == [reader]
        clock.now += 0.0005
        assert selector.select(0) == []  # spaced from that poll, the latest
    finally:
        selector.close()
        reader.close()
        writer.close()


def test_the_spacing_counts_from_the_end_of_a_blocking_poll() -> None:
    clock = Clock()
    selector = SpacedSelector(spacing=0.001, clock=clock)
    reader, writer = socket.socketpair()
    try:
        selector.register(reader, 1)
        assert selector.select(0.001) == []  # nothing ready: waited, then returned
        writer.send(b"x")
        assert selector.select(0) == []  # the clock has not moved since that poll
        clock.now += POLL_SPACING
        assert [key.fileobj for key, _ in selector.select(0)] == [reader]
    finally:
        selector.close()
        reader.close()
        writer.close()


def test_a_busy_loop_still_sees_ready_io() -> None:
    """Callbacks keep the loop busy for 400 turns, each moving the selector's clock by a tenth
    of the spacing; a byte sent in turn 55 is read within the next spacing (ten turns, one
    more for the clock's rounding) while the loop is still busy, not after. Turns are
    counted, not timed: a loaded machine changes nothing."""
    clock = Clock()

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        turn = 0
        read_in: list[int] = []
        loop.add_reader(reader, lambda: read_in.append(turn) or reader.recv(1))
        done = loop.create_future()

        def busy() -> None:  # one turn's callback: the loop never waits
            nonlocal turn
            turn += 1
            clock.now += POLL_SPACING / 10
            if turn == 55:
                writer.send(b"x")
            if turn < 400:
                loop.call_soon(busy)
            else:
                done.set_result(None)

        loop.call_soon(busy)
        await done
        loop.remove_reader(reader)
        reader.close()
        writer.close()
        return read_in

    spaced = SpacedSelector(clock=clock)
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(spaced)) as runner:
        read_in = runner.run(main())
    assert read_in, "the reader never ran while the loop was busy"
    assert 55 < read_in[0] <= 55 + 10 + 1, read_in


def test_new_event_loop_polls_through_a_spaced_selector() -> None:
    loop = new_event_loop()
    try:
        assert isinstance(loop._selector, SpacedSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_run_runs_its_stages_on_the_spaced_loop(home: Path, tmp_path: Path) -> None:
    """``taskdaemon run``'s stages run on ``new_event_loop``'s loop."""
    (tmp_path / "probe.py").write_text(
        textwrap.dedent(
            """\
            import asyncio
            from pathlib import Path


            async def record(ctx):
                selector = asyncio.get_running_loop()._selector
                Path("selector.txt").write_text(type(selector).__name__)
            """
        )
    )
    path = write(
        tmp_path / "probe.yaml",
        """\
        name: probe
        stages:
          - name: look
            handler: probe:record
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    done = taskdaemon(
        home, "run", "-q", str(path), cwd=tmp_path, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == done.returncode, done.stderr
    assert "SpacedSelector" == (tmp_path / "selector.txt").read_text()


def test_run_does_not_wait_for_a_sync_call_its_caller_gave_up_on() -> None:
    """``run`` returns once its coroutine has, while a sync call it cancelled still blocks."""
    from taskdaemon.pipeline._threads import call_in_thread

    release = threading.Event()
    finished = threading.Event()

    def stuck() -> None:
        release.wait()
        finished.set()

    async def main() -> str:
        call = call_in_thread(stuck)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call, 0.01)  # a stage's timeout: the call goes on
        return "ended"

    guard = threading.Timer(10.0, release.set)  # never hangs the suite, even unfixed
    guard.start()
    try:
        assert ("ended", False) == (run(main()), finished.is_set())
    finally:
        release.set()
        guard.cancel()


def test_run_says_how_many_sync_calls_it_left_running(caplog: pytest.LogCaptureFixture) -> None:
    """``run`` logs one warning naming the sync calls still running when its coroutine ended
    (handlers whose stage timed out or was cancelled), which end only with the process."""
    from taskdaemon.pipeline._threads import call_in_thread

    release = threading.Event()

    async def main() -> None:
        for _ in range(2):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call_in_thread(release.wait), 0.01)

    guard = threading.Timer(10.0, release.set)  # never hangs the suite, even unfixed
    guard.start()
    try:
        with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.event_loop"):
            run(main())
    finally:
        release.set()
        guard.cancel()
    expected = [
        "sync handlers still running after their stages ended (timed out or cancelled): 2, "
        "left to end with the process"
    ]
    assert expected == [r.getMessage() for r in caplog.records if r.name.endswith("event_loop")]


def test_run_carries_on_after_a_stray_stop(caplog: pytest.LogCaptureFixture) -> None:
    """Code on the loop that stops it (a handler's ``get_event_loop().stop()``) made ``run``'s
    wait end with its coroutine pending, and closing the loop then waited for ever."""

    async def main() -> int:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0)
        return 5

    with caplog.at_level(logging.WARNING, "taskdaemon.pipeline.event_loop"):
        assert 5 == run(main())
    assert [
        "the event loop was stopped (loop.stop()) by code running on it, such as a stage's "
        "handler: ignored, the run goes on"
    ] == [r.getMessage() for r in caplog.records]
