"""Runs held for the debugger's request tests (``pipeline_debug_ops*_test.py``): a run of a
small pipeline held at its first stage, with ``DebugOps`` for it (``debugged``,
``debugged_runs``), and an observer that says when breakpoints were hit (``Hits``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.debug_ops import DebugOps
from taskdaemon.pipeline.engine import DebugSession, Engine, RunHandle
from taskdaemon.pipeline.events import BreakpointHit
from taskdaemon.pipeline.model import InputMapping, Pipeline

OPS_PIPELINE = pipeline(
    stage("hold"),
    stage("a", *after("hold"), inputs=(InputMapping("n", "request.n"),)),
    stage("b", *after("a")),
)


#: ``a`` and ``c`` both after ``hold``: two stages that can be paused at once.
FORKED = pipeline(
    stage("hold"),
    stage("a", *after("hold"), inputs=(InputMapping("n", "request.n"),)),
    stage("c", *after("hold")),
)


class Debugged:
    """A run held at ``hold`` until :meth:`release`, and DebugOps for it."""

    def __init__(
        self, engine: Engine, handle: RunHandle, ops: DebugOps, gate: asyncio.Event
    ) -> None:
        self.engine, self.handle, self.ops, self.gate = engine, handle, ops, gate

    @property
    def run_id(self) -> str:
        return self.handle.run_id

    @property
    def session(self) -> DebugSession:
        return self.engine.with_debug(True)

    def release(self) -> None:
        self.gate.set()

    async def paused_at(self, *stage_names: str) -> None:
        """Set a breakpoint before each of ``stage_names``, let the run go, and wait until
        all of them are paused."""
        hits = Hits(self.run_id, len(stage_names))
        self.engine.add_observer(hits)
        for name in stage_names:
            assert (await self.ops({"action": "break", "stage": name}))["ok"]
        self.release()
        await hits.reached.wait()


class Hits:
    """An observer whose ``reached`` is set once run ``run_id`` hit ``count`` breakpoints."""

    def __init__(self, run_id: str, count: int) -> None:
        self.run_id, self.count = run_id, count
        self.reached = asyncio.Event()

    def on_event(self, event: object) -> None:
        if isinstance(event, BreakpointHit) and event.run_id == self.run_id:
            self.count -= 1
            if self.count == 0:
                self.reached.set()


@asynccontextmanager
async def debugged_runs(
    count: int,
    recorder: Recorder | None = None,
    handlers: Mapping[str, Any] | None = None,
    definition: Pipeline = OPS_PIPELINE,
    **ops: Any,
) -> AsyncIterator[list[Debugged]]:
    """``count`` runs of ``definition`` started with ``n`` = 1 on one engine, DebugOps on each,
    each held at ``hold`` by its own gate; at the end everything paused is resumed and the runs
    waited for."""
    gates: dict[str, asyncio.Event] = {}

    async def hold(ctx: Any) -> None:
        await gates.setdefault(ctx.run_id, asyncio.Event()).wait()

    observers = [recorder] if recorder is not None else []
    resolver = Resolver({"hold": hold, **(handlers or {})})
    async with Engine(resolver=resolver, observers=observers) as engine:
        runs = []
        for _ in range(count):
            handle = await engine.start_run(definition, {"n": 1})
            gate = gates.setdefault(handle.run_id, asyncio.Event())
            runs.append(Debugged(engine, handle, DebugOps(engine, handle.run_id, **ops), gate))
        try:
            yield runs
        finally:
            for gate in gates.values():
                gate.set()
            engine.with_debug(False)
            for run in runs:
                await run.handle.wait()


@asynccontextmanager
async def debugged(
    recorder: Recorder | None = None,
    handlers: Mapping[str, Any] | None = None,
    definition: Pipeline = OPS_PIPELINE,
    **ops: Any,
) -> AsyncIterator[Debugged]:
    """One run of ``definition``, as :func:`debugged_runs` makes them."""
    async with debugged_runs(1, recorder, handlers, definition, **ops) as runs:
        yield runs[0]
