"""The engine's context callbacks from a sync handler's worker thread (no copy of the context,
calls marshalled onto the loop, usage stored from the thread); ended instances' tasks let go."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline._threads import LoopEnvironment, hop, thread_safe
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.engine._callbacks import LazyEnvironment
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import (
    EngineEvent,
    EventPublished,
    RunFinished,
    StageFinished,
    StageProcess,
    StageStarted,
)
from taskdaemon.pipeline.execution import current_execution
from taskdaemon.pipeline.loops import StageContext, python_handler
from taskdaemon.pipeline.model import Manual, OnCompletion, OnEvent, Pipeline, Stage
from taskdaemon.pipeline.state import RunStatus


class ThreadObserver:
    """Notes every record with the thread it was handed on."""

    def __init__(self) -> None:
        self.seen: list[tuple[EngineEvent, str]] = []

    def on_event(self, event: EngineEvent) -> None:
        self.seen.append((event, threading.current_thread().name))


class Resolver:
    """Resolves each stage to ``python_handler`` of its function in ``handlers``."""

    def __init__(self, handlers: Mapping[str, Any]) -> None:
        self.handlers = handlers

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return python_handler(self.handlers[stage.name])


async def test_sync_handler_gets_the_engine_context_and_its_calls_run_on_the_loop() -> None:
    """A sync handler gets the engine's own context (not a copy); its publish and
    report_process run on the loop's thread, a refused publish raises in the handler, and its
    report_usage reaches the stage's end record."""
    got: dict[str, Any] = {}

    def work(ctx: StageContext) -> None:
        got["thread"] = threading.current_thread().name
        got["same"] = ctx is current_execution()
        ctx.publish("x.done", {"n": 1})
        ctx.report_process(os.getpid())
        ctx.report_usage(1.5, 2048)
        try:
            ctx.publish("not.declared", {})
        except PipelineError as exc:
            got["refused"] = str(exc)

    observer = ThreadObserver()
    definition = Pipeline(
        name="demo",
        stages=(Stage(name="a", loop="python", emits=("x.done",), triggers=(Manual(),)),),
    )
    async with Engine(resolver=Resolver({"a": work}), observers=[observer]) as engine:
        result = await engine.run(definition)
    loop_thread = threading.current_thread().name
    assert RunStatus.SUCCESS == result.status
    assert loop_thread != got["thread"]
    assert got["same"] is True
    assert "stage 'a' cannot publish 'not.declared'" in got["refused"]
    marshalled = [
        (type(event), thread)
        for event, thread in observer.seen
        if isinstance(event, EventPublished | StageProcess)
    ]
    assert [(EventPublished, loop_thread), (StageProcess, loop_thread)] == marshalled
    finished = [event for event, _ in observer.seen if isinstance(event, StageFinished)]
    assert [(1.5, 2048)] == [(e.cpu_seconds, e.peak_memory_bytes) for e in finished]


class ExecutionObserver:
    """Notes, for each record, which stage's execution was current where it was handed over."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def on_event(self, event: EngineEvent) -> None:
        current = current_execution()
        name = type(event).__name__
        stage = getattr(event, "stage", None)
        self.seen.append((f"{name} {stage}" if stage else name, current and current.stage))


async def test_an_instance_started_by_a_published_event_runs_outside_the_publisher() -> None:
    """An instance fired by an event a handler publishes does not inherit the publisher's
    execution: outside its own handler call (its start and end records, the run's end) no
    execution is current, as for any other instance."""

    async def publish(ctx: StageContext) -> None:
        ctx.publish("x.done", {"n": 1})

    async def consume(ctx: StageContext) -> None:
        return None

    observer = ExecutionObserver()
    definition = Pipeline(
        name="demo",
        stages=(
            Stage(name="a", loop="python", emits=("x.done",), triggers=(Manual(),)),
            Stage(name="b", loop="python", triggers=(OnEvent(type="x.done"),)),
            Stage(name="c", loop="python", triggers=(OnCompletion(stage="b"),)),
        ),
    )
    resolver = Resolver({"a": publish, "b": consume, "c": consume})
    async with Engine(resolver=resolver, observers=[observer]) as engine:
        result = await engine.run(definition)
    assert RunStatus.SUCCESS == result.status
    kinds = (StageStarted.__name__, StageFinished.__name__, RunFinished.__name__)
    expected = [
        ("StageStarted b", None),
        ("StageFinished b", None),
        ("StageStarted c", None),
        ("StageFinished c", None),
        ("RunFinished", None),
    ]
    actual = [
        (name, current)
        for name, current in observer.seen
        if name.startswith(kinds) and not name.endswith(" a")
    ]
    assert expected == actual


async def _engine_context() -> StageContext:
    """The context the engine gave an async stage of a one-stage run on this loop."""
    contexts: list[StageContext] = []

    async def keep(ctx: StageContext) -> None:
        contexts.append(ctx)

    definition = Pipeline(
        name="demo", stages=(Stage(name="a", loop="python", triggers=(Manual(),)),)
    )
    async with Engine(resolver=Resolver({"a": keep})) as engine:
        await engine.run(definition)
    (ctx,) = contexts
    return ctx


async def test_a_context_bound_to_another_loop_is_still_wrapped() -> None:
    """thread_safe passes an engine context through only for the loop its callbacks are bound
    to: for another loop it returns a copy whose callbacks marshal onto that loop."""
    ctx = await _engine_context()
    assert ctx is thread_safe(ctx, asyncio.get_running_loop())
    other = asyncio.new_event_loop()
    try:
        copy = thread_safe(ctx, other)
    finally:
        other.close()
    assert copy is not ctx
    assert copy.publish is not ctx.publish
    assert ctx.run_id == copy.run_id


async def test_an_environment_of_another_loop_is_wrapped_for_this_one() -> None:
    """The hop's quick test of an engine context holds only for an environment of the loop
    asked for (or a plain mapping): one bound to another loop reaches the handler wrapped for
    this one; a callback that says itself loop-safe (not a bound method) passes as before, and
    the engine's own context goes through as it is."""
    ctx = await _engine_context()
    loop = asyncio.get_running_loop()

    def given(seen: StageContext) -> StageContext:
        return seen

    other = asyncio.new_event_loop()
    try:
        foreign = dataclasses.replace(ctx, environment=LoopEnvironment({"A": "1"}, other))
        wrapped = await hop(given, foreign)
    finally:
        other.close()
    assert wrapped is not foreign
    assert type(wrapped.environment) is LoopEnvironment
    assert wrapped.environment._loop is loop  # type: ignore[attr-defined]
    assert dict(wrapped.environment) == {"A": "1"}

    def publish(event_type: str, payload: Any) -> None:
        return None

    publish.loop_safe = loop  # type: ignore[attr-defined]
    plain = dataclasses.replace(ctx, publish=publish)
    assert await hop(given, plain) is plain
    assert await hop(given, ctx) is ctx


async def test_an_ended_instance_lets_its_task_go() -> None:
    """Once a stage's instance ended, the run keeps no reference to its task: the task of a
    finished stage is freed while its run (and the run's handle) still lives."""
    tasks: dict[str, weakref.ref[asyncio.Task[Any]]] = {}

    async def note(ctx: StageContext) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks[ctx.stage] = weakref.ref(task)

    definition = Pipeline(
        name="demo",
        stages=(
            Stage(name="a", loop="python", triggers=(Manual(),)),
            Stage(name="b", loop="python", triggers=(OnCompletion(stage="a"),)),
        ),
    )
    async with Engine(resolver=Resolver({"a": note, "b": note})) as engine:
        handle = await engine.start_run(definition)
        result = await handle.wait()
        assert RunStatus.SUCCESS == result.status
        assert ["a", "b"] == sorted(tasks)
        assert tasks["a"]() is None


class ReadingEnvObserver:
    """Answers ``stage_environment`` after reading the current execution's environment itself,
    as a log filter stamping the execution's ids does while the monitor settles."""

    def __init__(self) -> None:
        self.inner: list[str | None] = []
        self.reading = False

    def on_event(self, event: EngineEvent) -> None:
        return None

    def stage_environment(self, event: object) -> dict[str, str]:
        current = current_execution()
        if current is not None and not self.reading:
            self.reading = True  # the inner read asks again: answer that one plainly
            try:
                self.inner.append(current.environment.get("TRACEPARENT"))
            finally:
                self.reading = False
        return {"TRACEPARENT": "tp"}


async def test_an_environment_read_again_while_it_resolves_does_not_deadlock() -> None:
    """An observer that reads the stage's environment while answering for it (on the loop,
    for an async handler and for a sync one) gets an answer instead of deadlocking."""
    seen: list[str] = []

    async def reads_async(ctx: StageContext) -> None:
        seen.append(ctx.environment["TRACEPARENT"])

    def reads_sync(ctx: StageContext) -> None:
        seen.append(ctx.environment["TRACEPARENT"])

    observer = ReadingEnvObserver()
    definition = Pipeline(
        name="demo",
        stages=(
            Stage(name="a", loop="python", triggers=(Manual(),)),
            Stage(name="b", loop="python", triggers=(OnCompletion(stage="a"),)),
        ),
    )
    resolver = Resolver({"a": reads_async, "b": reads_sync})
    async with Engine(resolver=resolver, observers=[observer]) as engine:
        result = await asyncio.wait_for(engine.run(definition), 30)
    assert RunStatus.SUCCESS == result.status
    assert ["tp", "tp"] == seen
    assert ["tp", "tp"] == observer.inner


def test_a_lazy_environment_sets_every_field_its_base_sets() -> None:
    """``LazyEnvironment`` stores ``LoopEnvironment``'s fields itself (no ``super()`` call): each
    of them, with the values the base's ``__init__`` gives for an empty source."""
    loop = asyncio.new_event_loop()
    try:
        base = LoopEnvironment({}, loop)
        lazy = LazyEnvironment(object(), object(), loop)  # type: ignore[arg-type]
        for name in LoopEnvironment.__slots__:
            assert type(getattr(lazy, name)) is type(getattr(base, name)), name
        assert lazy._loop is loop
        assert lazy._resolved is None
        assert dict(lazy._source) == {}
    finally:
        loop.close()
