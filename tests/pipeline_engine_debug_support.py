"""Helpers of the debug session tests: a chain of three stages, an engine in debug mode and
its session, and a run started until its first pause, or until two of its executions pause."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import DebugSession, Engine, PausedExecution, RunHandle
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import InputMapping, Pipeline


def chain() -> Pipeline:
    """a -> b -> c, b reading a's output ``x`` as its input ``x``."""
    return pipeline(
        stage("a"),
        stage("b", *after("a"), inputs=(InputMapping("x", "stages.a.outputs.x"),)),
        stage("c", *after("b")),
    )


async def gives_x(ctx: StageContext) -> dict[str, Any]:
    """a's handler: output ``x`` = 1."""
    return {"x": 1}


@asynccontextmanager
async def session(
    recorder: Recorder | None = None, handlers: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Engine, DebugSession]]:
    """An engine in debug mode (a's handler gives ``x``) and its session."""
    resolver = Resolver({"a": gives_x, **(handlers or {})})
    observers = [recorder] if recorder is not None else []
    async with Engine(resolver=resolver, observers=observers) as engine:
        yield engine, engine.with_debug(True)


async def paused_at(debug: DebugSession, p: Pipeline, **options: Any) -> PausedExecution:
    """Start ``p`` and return its first pause."""
    handle = await debug.start(p, **options)
    paused = await debug.wait_paused(handle.run_id)
    assert paused is not None
    return paused


async def two_paused(debug: DebugSession, p: Pipeline) -> RunHandle:
    """Start ``p`` and wait until two of its executions are paused; the run's handle.
    ``wait_paused`` returns at once while one is: the loop yields for the other to pause."""
    handle = await debug.start(p)
    while len(debug.paused()) < 2:
        await debug.wait_paused()
        await asyncio.sleep(0)
    return handle
