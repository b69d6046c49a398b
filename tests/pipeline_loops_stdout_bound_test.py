"""A command stage's stdout, its result, is kept up to a bound; past it the stage fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from taskdaemon.pipeline import output_sinks
from taskdaemon.pipeline.loops import StageContext, StdoutTooLargeError, command_handler
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.stage_output import CaptureLimits, OutputCapture

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def bound() -> Iterator[None]:
    """Captures started in the test keep 1,000 bytes of stdout at most."""
    previous = output_sinks.set_capture_limits(CaptureLimits(stdout_max_bytes=1000))
    yield
    output_sinks.set_capture_limits(previous)


def context() -> StageContext:
    """A command stage's context that reports nowhere."""
    return StageContext(
        run_id="0" * 31 + "1",
        pipeline="demo",
        stage="work",
        loop="command",
        instance=0,
        attempt=1,
        inputs={},
        publish=lambda kind, payload: None,
        report_process=lambda pid: None,
        report_usage=lambda cpu, memory: None,
    )


async def run(command: str) -> Any:
    """The result of ``command`` run as a command stage."""
    return await command_handler(command)(context())


@pytest.mark.usefixtures("bound")
async def test_a_stdout_past_the_bound_fails_the_stage_naming_both() -> None:
    """A command printing past the bound fails with the bound and every byte it printed, read
    to its end (two megabytes: far more than a pipe holds, so the command was never blocked)."""
    with pytest.raises(StdoutTooLargeError) as caught:
        await asyncio.wait_for(run("head -c 2000000 /dev/zero | tr '\\0' a"), 20)
    expected = (
        "stdout of 2000000 bytes is over the bound of 1000 bytes on a command's result "
        "(TASKDAEMON_STDOUT_MAX_BYTES)"
    )
    assert expected == str(caught.value)


@pytest.mark.usefixtures("bound")
async def test_a_stdout_of_the_bound_is_the_result() -> None:
    """A command printing exactly the bound's bytes has them as its result."""
    result = await run("head -c 1000 /dev/zero | tr '\\0' a")
    assert {"stdout": "a" * 1000, "exit_code": 0} == result


@contextlib.contextmanager
def _fed_past_the_bound() -> Iterator[OutputCapture]:
    """A capture fed three stdout lines (16 bytes) past its stdout bound of 10 bytes."""
    capture = OutputCapture(
        run_id="r", pipeline="p", stage="s", instance=0, attempt=1,
        limits=CaptureLimits(stdout_max_bytes=10),
    )  # fmt: skip
    try:
        for chunk in (b"12345\n", b"67890\n", b"abc\n"):
            capture.feed("stdout", chunk)
        yield capture
    finally:
        capture.abandon()


def test_stdout_past_the_bound_is_let_go() -> None:
    """Once stdout passes the bound the capture keeps none of it, only its count."""
    with _fed_past_the_bound() as capture:
        assert (b"", 16, True) == (bytes(capture.stdout), capture.stdout_bytes, capture.stdout_over)


def test_the_log_capture_ignores_the_stdout_bound() -> None:
    """Lines past the stdout bound are still captured as log records, up to their own bound."""
    with _fed_past_the_bound() as capture:
        assert (3, 0) == (capture.captured_lines, capture.dropped_lines)


def test_the_bound_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TASKDAEMON_STDOUT_MAX_BYTES`` sets the bound, 64 MiB when unset."""
    default = load_settings().stdout_max_bytes
    monkeypatch.setenv("TASKDAEMON_STDOUT_MAX_BYTES", "4096")
    assert (64 * 1024 * 1024, 4096) == (default, load_settings().stdout_max_bytes)
