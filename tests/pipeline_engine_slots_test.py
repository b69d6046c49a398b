"""The run's worker slots: a semaphore's order without its coroutines (engine/_slots.py)."""

from __future__ import annotations

import asyncio

import pytest

from taskdaemon.pipeline.engine._slots import WorkerSlots


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
