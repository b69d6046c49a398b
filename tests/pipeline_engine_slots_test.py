"""The run's worker slots: a semaphore's order without its coroutines (engine/_slots.py), and
the engine's attempt loop, which does their usual case inline, held to the same order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.engine._slots import WorkerSlots
from taskdaemon.pipeline.events import StageQueued, StageStarted
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.state import RunStatus


async def _holder(slots: WorkerSlots, name: str, log: list[str], go: asyncio.Event) -> None:
    if not slots.take():
        await slots.wait()
    log.append(name)
    try:
        await go.wait()
    finally:
        slots.release()


async def test_free_slots_are_taken_at_once_then_none() -> None:
    slots = WorkerSlots(2)
    assert slots.take()
    assert slots.take()
    assert not slots.take()
    assert slots.free == 0
    slots.release()
    assert slots.free == 1


async def test_waiters_get_released_slots_first_come_first_served() -> None:
    slots = WorkerSlots(1)
    log: list[str] = []
    go = asyncio.Event()
    tasks = [asyncio.create_task(_holder(slots, n, log, go)) for n in ("a", "b", "c", "d")]
    await asyncio.sleep(0)
    assert log == ["a"]
    go.set()
    await asyncio.gather(*tasks)
    assert log == ["a", "b", "c", "d"]
    assert slots.free == 1
    assert not slots.waiters


async def test_a_released_slot_is_not_taken_past_a_waiter() -> None:
    slots = WorkerSlots(1)
    assert slots.take()
    waiting = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    slots.release()  # handed to the waiter, whose task has not run yet
    assert not slots.take()
    await waiting
    assert slots.free == 0


async def test_a_waiter_cancelled_as_it_was_handed_a_slot_passes_it_on() -> None:
    slots = WorkerSlots(1)
    assert slots.take()
    first = asyncio.create_task(slots.wait())
    second = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    slots.release()  # to ``first``
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # got the slot ``first`` could not use
    assert slots.free == 0
    assert not slots.waiters
    slots.release()
    assert slots.free == 1


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    slots = WorkerSlots(1)
    assert slots.take()
    waiting = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not slots.waiters
    slots.release()
    assert slots.free == 1


async def test_the_engine_takes_and_gives_back_slots_as_the_methods_do() -> None:
    """The attempt loop takes a free slot and gives it back inline when nobody waits, and
    calls ``wait``/``release`` otherwise: attempts start in the order they queued, never more
    than ``concurrency`` at once, and every slot is free again once they ended."""
    release = asyncio.Event()
    running: list[str] = []
    peak = 0

    async def held(ctx: StageContext) -> dict[str, Any]:
        nonlocal peak
        running.append(ctx.stage)
        peak = max(peak, len(running))
        try:
            await release.wait()
        finally:
            running.remove(ctx.stage)
        return {}

    recorder = Recorder()
    names = [f"s{i}" for i in range(6)]
    p = pipeline(*(stage(name) for name in names), stage("last", *after(*names)), concurrency=2)
    async with Engine(resolver=Resolver({"python": held}), observers=[recorder]) as engine:
        handle = await engine.start_run(p)
        for _ in range(10):
            await asyncio.sleep(0)
        assert ["s0", "s1"] == running  # two took a free slot at once, four wait
        slots = handle._run.slots
        assert (0, 4) == (slots.free, len(slots.waiters))
        release.set()
        result = await handle.wait()
    assert RunStatus.SUCCESS == result.status
    assert 2 == peak
    queued = [e.stage for e in recorder.of(StageQueued)]
    assert queued == [e.stage for e in recorder.of(StageStarted)]  # first come, first served
    assert [*names, "last"] == queued
    assert (2, 0) == (slots.free, len(slots.waiters))  # "last" took one and gave it back
