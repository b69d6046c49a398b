"""An async handler that swallows its cancellation still ends its stage: timeout or cancel."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline import cancel_grace
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import StageFinished
from taskdaemon.pipeline.loops import StageContext, python_handler
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)

GRACE = 0.05


class Swallower:
    """An async handler that ignores every cancellation; counts them and its closing."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.swallowed = 0
        self.closed = 0

    async def __call__(self, ctx: StageContext) -> None:
        self.started.set()
        try:
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    self.swallowed += 1
        finally:
            self.closed += 1


def swallowing(swallower: Swallower) -> object:
    """``swallower`` as the python loop type makes it, with the tests' short grace."""

    async def handler(ctx: StageContext) -> None:
        await swallower(ctx)

    return python_handler(handler, cancel_grace=GRACE)


async def test_a_swallowed_timeout_ends_the_stage_timed_out() -> None:
    """A handler that ignores its timeout's cancellation ends its stage timeout all the same."""
    swallower = Swallower()
    recorder = Recorder()
    p = pipeline(stage("slow", timeout=0.01), stage("next", *after("slow")))
    resolver = Resolver({"slow": swallowing(swallower)})  # type: ignore[dict-item]
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        result = await engine.run(p)
    (finished,) = recorder.of(StageFinished)
    assert (StageStatus.TIMEOUT, StageStatus.SKIPPED, "timed out after 0.01s", "TimeoutError") == (
        result.stage_status["slow"],
        result.stage_status["next"],
        finished.error,
        finished.error_type,
    )


async def test_a_swallowed_cancellation_ends_the_run_cancelled() -> None:
    """Cancelling a run whose handler ignores the cancellation ends the run cancelled."""
    swallower = Swallower()
    resolver = Resolver({"a": swallowing(swallower)})  # type: ignore[dict-item]
    async with Engine(resolver=resolver) as engine:
        handle = await engine.start_run(pipeline(stage("a")))
        await swallower.started.wait()
        handle.cancel()
        result = await handle.wait()
    assert (RunStatus.CANCELLED, StageStatus.CANCELLED) == (
        result.status,
        result.stage_status["a"],
    )


async def test_an_abandoned_handler_is_closed_not_resumed() -> None:
    """Past the grace the handler is closed (its finally runs) after one swallowed cancel."""
    swallower = Swallower()
    resolver = Resolver({"slow": swallowing(swallower)})  # type: ignore[dict-item]
    async with Engine(resolver=resolver) as engine:
        await engine.run(pipeline(stage("slow", timeout=0.01)))
    assert (1, 1) == (swallower.swallowed, swallower.closed)


async def test_abandoning_a_handler_warns_once_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each abandoned handler is one warning naming its stage and the process's count."""
    swallower = Swallower()
    resolver = Resolver({"slow": swallowing(swallower)})  # type: ignore[dict-item]
    before = cancel_grace.abandoned()
    with caplog.at_level(logging.WARNING, logger=cancel_grace.__name__):
        async with Engine(resolver=resolver) as engine:
            await engine.run(pipeline(stage("slow", timeout=0.01)))
    expected = [
        f"async handler of stage 'slow' (run {engine.runs[0].run_id}) ignored its "
        f"cancellation for {GRACE:g}s: abandoned, never resumed ({before + 1} abandoned in "
        "this process)"
    ]
    assert expected == [r.getMessage() for r in caplog.records if r.name == cancel_grace.__name__]


async def test_a_handler_cleaning_up_within_the_grace_is_not_abandoned() -> None:
    """A handler that awaits its cleanup after a cancellation, then raises, is let finish."""
    cleaned: list[str] = []

    async def tidy(ctx: StageContext) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # its cleanup awaits: not yet a swallowed cancellation
            cleaned.append(ctx.stage)
            raise

    resolver = Resolver({"slow": python_handler(tidy, cancel_grace=5.0)})  # type: ignore[dict-item]
    before = cancel_grace.abandoned()
    async with Engine(resolver=resolver) as engine:
        result = await engine.run(pipeline(stage("slow", timeout=0.01)))
    assert (StageStatus.TIMEOUT, ["slow"], before) == (
        result.stage_status["slow"],
        cleaned,
        cancel_grace.abandoned(),
    )


async def test_within_the_grace_the_handler_is_given_every_cancellation() -> None:
    """A handler that swallowed its timeout is still told of the run's cancel that comes
    within the grace: it cleans up and raises then, is not abandoned, and the run ends
    cancelled."""
    swallowed = asyncio.Event()
    cleaned: list[str] = []

    async def twice(ctx: StageContext) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.set()  # the timeout's: swallowed
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cleaned.append(ctx.stage)  # the run's cancel: cleans up and lets it through
            raise

    resolver = Resolver({"slow": python_handler(twice, cancel_grace=5.0)})  # type: ignore[dict-item]
    before = cancel_grace.abandoned()
    async with Engine(resolver=resolver) as engine:
        handle = await engine.start_run(pipeline(stage("slow", timeout=0.01)))
        await swallowed.wait()
        handle.cancel()
        result = await handle.wait()
    assert (RunStatus.CANCELLED, ["slow"], before) == (
        result.status,
        cleaned,
        cancel_grace.abandoned(),
    )


async def test_an_abandoned_handler_whose_finally_raises_is_let_go_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closing the abandoned handler runs its ``finally``; what that raises does not reach the
    engine (the stage ends timed out), and is a debug record naming the stage, with its
    traceback."""

    async def raising_finally(ctx: StageContext) -> None:
        try:
            while True:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(10)
        finally:
            raise RuntimeError("cleanup failed")

    resolver = Resolver({"slow": python_handler(raising_finally, cancel_grace=GRACE)})  # type: ignore[dict-item]
    with caplog.at_level(logging.DEBUG, logger=cancel_grace.__name__):
        async with Engine(resolver=resolver) as engine:
            result = await engine.run(pipeline(stage("slow", timeout=0.01)))
    (record,) = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert record.exc_info is not None
    assert (StageStatus.TIMEOUT, "closing the abandoned handler of stage 'slow' raised") == (
        result.stage_status["slow"],
        record.getMessage(),
    )
    assert (record.exc_info[0], str(record.exc_info[1])) == (RuntimeError, "cleanup failed")
