"""A live monitor's records from the engine's loop, without asking asyncio for the loop: its
``_get_running_loop()`` is a ``getpid`` system call in CPython 3.11, and ``on_event`` gets
about four records a stage."""

from __future__ import annotations

import asyncio
import os

import pytest

from loop_probe_support import probes_in_a_chain
from pipeline_engine_support import noop
from pipeline_monitor_support import Telemetry, started_record
from taskdaemon.pipeline.loops import Handler, python_handler

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize("handler", [noop, python_handler(lambda ctx: None)], ids=["async", "sync"])
async def test_a_monitored_stage_does_not_ask_asyncio_for_the_running_loop(
    handler: Handler,
) -> None:
    """With a monitor attached, a chain of 21 stages probes for the loop as often as a chain of
    1 (85 against 5 before: four records a stage asked): the monitor asks once a loop, then
    knows it by the loop's note of its thread."""
    telemetry = Telemetry()
    try:
        long = await probes_in_a_chain(21, handler, [telemetry.monitor()])
        short = await probes_in_a_chain(1, handler, [telemetry.monitor()])
        assert long == short
        # The records were recorded: a run span and a span a stage for each chain.
        names = [span.name for span in telemetry.spans()]
        assert len(names) == 2 + 21 + 1
        assert names.count("RUN p") == 2
    finally:
        telemetry.shutdown()


def test_a_forked_child_handles_its_records_at_once() -> None:
    """In a child forked on the loop's thread the loop is the parent's: the monitor asks
    asyncio (which says no loop runs there) and handles a record at once, rather than queueing
    it for a worker as it would on the loop it remembered."""
    telemetry = Telemetry()
    monitor = telemetry.monitor()
    record = started_record("s")
    read, write = os.pipe()

    async def fork() -> int:
        monitor.on_event(record)  # from the loop: queued, and the loop remembered
        monitor.close()  # handled, the worker stopped: no thread holds the queue at the fork
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, on the loop's thread
            before = monitor._queue.stats()["by_caller"]
            monitor.on_event(record)
            os.write(write, b"1" if monitor._queue.stats()["by_caller"] == before + 1 else b"0")
            os._exit(0)
        return pid

    try:
        pid = asyncio.run(fork())
        os.close(write)
        try:
            assert os.read(read, 1) == b"1"
        finally:
            os.close(read)
            os.waitpid(pid, 0)
    finally:
        telemetry.shutdown()
