"""Sync handlers in worker threads: the lazy environment across the hop, results, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from taskdaemon.pipeline._threads import LoopEnvironment, call_in_thread, in_thread
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, StageStarted
from taskdaemon.pipeline.loops import StageContext, python_handler
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.state import RunStatus


class EnvObserver:
    """An observer answering ``stage_environment`` and noting the thread it was asked on."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def on_event(self, event: EngineEvent) -> None:
        return None

    def stage_environment(self, event: StageStarted) -> dict[str, str]:
        self.asked.append((event.stage, threading.current_thread().name))
        return {"TRACEPARENT": f"tp-{event.stage}"}


class Resolver:
    """Resolves each stage to its handler in ``handlers``."""

    def __init__(self, handlers: Mapping[str, Any]) -> None:
        self.handlers = handlers

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return python_handler(self.handlers[stage.name])


def _context(**overrides: Any) -> StageContext:
    values: dict[str, Any] = {
        "run_id": "0" * 31 + "1",
        "pipeline": "demo",
        "stage": "work",
        "loop": "python",
        "instance": 0,
        "attempt": 1,
        "inputs": {},
        "publish": lambda kind, payload: None,
        "report_process": lambda pid: None,
    }
    values.update(overrides)
    return StageContext(**values)


async def test_sync_handler_that_ignores_the_environment_never_resolves_it() -> None:
    """A sync handler that never reads ctx.environment makes no observer answer it (the hop to
    its thread no longer resolves it eagerly), while one that reads it gets the answer,
    resolved on the event loop's thread."""
    seen: list[dict[str, str]] = []

    def ignores(ctx: StageContext) -> None:
        return None

    def reads(ctx: StageContext) -> None:
        seen.append(dict(ctx.environment))
        seen.append({"TRACEPARENT": ctx.environment["TRACEPARENT"]})

    observer = EnvObserver()
    definition = Pipeline(
        name="demo",
        stages=(
            Stage(name="a", loop="python", triggers=(Manual(),)),
            Stage(name="b", loop="python", triggers=(OnCompletion(stage="a"),)),
        ),
    )
    engine = Engine(resolver=Resolver({"a": ignores, "b": reads}), observers=[observer])
    async with engine:
        result = await engine.run(definition)
    assert RunStatus.SUCCESS == result.status
    assert [("b", threading.current_thread().name)] == observer.asked
    assert [{"TRACEPARENT": "tp-b"}, {"TRACEPARENT": "tp-b"}] == seen


class CountingEnvironment(Mapping[str, str]):
    """A mapping that records the thread of every read (``dict()`` of it reads twice: the keys,
    then each value)."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def _values(self) -> dict[str, str]:
        self.threads.append(threading.current_thread().name)
        return {"K": "v"}

    def __getitem__(self, key: str) -> str:
        return self._values()[key]

    def __iter__(self) -> Any:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


async def test_loop_environment_resolves_once_on_the_loop() -> None:
    """Read from a worker thread, a LoopEnvironment resolves its source once, on the loop's
    thread, and serves every later read from that answer."""
    source = CountingEnvironment()
    environment = LoopEnvironment(source, asyncio.get_running_loop())

    def read_twice() -> list[dict[str, str]]:
        return [dict(environment), dict(environment)]

    reads = await asyncio.to_thread(read_twice)
    assert [{"K": "v"}, {"K": "v"}] == reads
    # One dict() of the source (its keys, then its value), on the loop, for both reads.
    assert [threading.current_thread().name] * 2 == source.threads


def test_loop_environment_read_after_the_loop_closed_resolves_in_place() -> None:
    """A background thread reading the environment after the run's loop closed gets an answer
    instead of waiting forever for a loop that will never run the call."""
    loop = asyncio.new_event_loop()
    loop.close()
    source = CountingEnvironment()
    assert {"K": "v"} == dict(LoopEnvironment(source, loop))
    assert [threading.current_thread().name] * 2 == source.threads


async def test_in_thread_returns_results_and_raises_errors() -> None:
    """in_thread runs the function off the loop's thread, in the caller's context variables,
    and hands back its result or its exception."""

    def where(ctx: StageContext) -> str:
        return threading.current_thread().name

    def boom(ctx: StageContext) -> None:
        raise ValueError("boom")

    assert threading.current_thread().name != await in_thread(where, _context())
    with pytest.raises(ValueError, match="boom"):
        await in_thread(boom, _context())


async def test_in_thread_cancelled_caller_leaves_the_thread_to_finish() -> None:
    """Cancelling the awaiting task ends the wait at once; the call finishes in the background
    and its late result is dropped without an error."""
    release = threading.Event()
    finished = threading.Event()

    def slow(ctx: StageContext) -> str:
        release.wait(10)
        finished.set()
        return "late"

    task = asyncio.create_task(in_thread(slow, _context()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await asyncio.to_thread(finished.wait, 10)


def test_a_loop_that_makes_its_own_futures_makes_each_call_in_threads() -> None:
    """``call_in_thread`` asks a loop class that overrides ``create_future`` (as uvloop's
    does) for every future it answers."""
    made: list[asyncio.Future[Any]] = []

    class OwnFutures(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            future = super().create_future()
            made.append(future)
            return future

    async def main() -> list[int]:
        return [await call_in_thread(lambda n=n: n + 1) for n in range(2)]

    loop = OwnFutures()
    try:
        assert loop.run_until_complete(main()) == [1, 2]
        assert [future.result() for future in made] == [1, 2]
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
