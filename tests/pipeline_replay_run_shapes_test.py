"""A replay's fed stages end in the order the record ended them whatever shape brings their
stand-ins to the engine, in process: many waiting at once, a fan-out's instances, one fired by
a fed end, beside a stage run again that takes its time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver, after, fail, pipeline, stage
from pipeline_replay_support import Recording
from taskdaemon.pipeline.events import StageFinished
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import ErrorStrategy, OnEvent, TriggerMode

#: The order the record ends its executions in (``part#I``: instance I of the fan-out), not
#: the order they start in: all but ``late`` (fired by the end of ``s5``) and the fan-out's
#: instances (by ``fan``'s events) are ready at the run's start.
ORDER = ["s3", "part#2", "s5", "late", "s1", "part#0", "fan", "s0", "part#1", "s4", "s2"]

#: ``z`` is run again, and ``slow``, which failed in the record, beside the fed stages.
SHAPES = pipeline(
    *(stage(f"s{i}") for i in range(6)),
    stage("fan", emits=("part",)),
    stage("part", OnEvent("part"), parallel_instances=3),
    stage("late", *after("s5")),
    stage("slow", loop="slow"),
    stage(
        "z",
        *after(*(f"s{i}" for i in range(6)), "fan", "part", "late", success_only=False),
        trigger_mode=TriggerMode.ALL,
    ),
    name="shapes",
    concurrency=16,
    error_strategy=ErrorStrategy.CONTINUE,
)


def _in_order(order: list[str] = ORDER) -> Mapping[str, Any]:
    """Handlers that end each execution once the one before it in ``order`` has ended."""
    ended: dict[str, asyncio.Event] = {}

    async def ring(ctx: StageContext) -> Mapping[str, Any]:
        if ctx.stage == "fan":
            for index in range(3):
                ctx.publish("part", {"index": index})
        name = f"part#{ctx.instance}" if ctx.stage == "part" else ctx.stage
        at = order.index(name) if name in order else 0
        if at:
            await ended.setdefault(order[at - 1], asyncio.Event()).wait()
        ended.setdefault(name, asyncio.Event()).set()
        return {"at": at}

    return {"python": ring, "slow": fail}


async def _slow(ctx: StageContext) -> Mapping[str, Any]:
    """The stage run again beside the fed ones: many turns of the loop, then done."""
    await asyncio.sleep(0.05)
    return {}


@pytest.mark.slow
def test_fed_stages_end_in_the_record_s_order_in_every_shape(tmp_path: Path) -> None:
    """Replayed from ``z``, every stage but ``slow`` (run again) is fed: its stand-ins, ready
    at once, fired by a fed end or by a fed stage's events, end in the order the record ended
    them, not the order they came in, while ``slow`` runs."""
    rec = Recording(tmp_path / "spans.db")
    recorder = Recorder()
    try:
        original = rec.run(SHAPES, handlers=_in_order())
        outcome = rec.replay(
            original.run_id,
            from_stage="z",
            resolver=Resolver({"slow": _slow}),
            observers=[recorder],
        )
    finally:
        rec.close()
    fed = [
        f"part#{event.instance}" if event.stage == "part" else event.stage
        for event in recorder.events
        if isinstance(event, StageFinished) and event.stage not in ("slow", "z")
    ]
    assert ("failure", "success") == (str(original.status), str(outcome.result.status))
    assert ORDER == fed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("slots", "order"),
    [
        pytest.param(1, ["s0", "s1", "s2", "s3"], id="one-slot"),
        # s0 and s1 start, s1 ends first, then s2, started in its slot, then s0, then s3.
        pytest.param(2, ["s1", "s2", "s0", "s3"], id="two-slots"),
    ],
)
def test_fed_stages_queued_for_worker_slots_end_in_the_record_s_order(
    tmp_path: Path, slots: int, order: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """When the worker slots are all held, the fed stand-ins that hold them wait their turn
    while the others stay queued for a slot: the first is let go (only an end frees a slot),
    and the next waits for the one that end lets start when the record ended that one first.
    No observer fails on the stage run again (the engine would log it and go on)."""
    flow = pipeline(
        *(stage(f"s{i}") for i in range(4)),
        stage("z", *after("s0", "s1", "s2", "s3"), trigger_mode=TriggerMode.ALL),
        name="slots",
        concurrency=slots,
    )
    rec = Recording(tmp_path / "spans.db")
    recorded, replayed = Recorder(), Recorder()
    try:
        original = rec.run(flow, handlers=_in_order(order), recorder=recorded)
        outcome = rec.replay(original.run_id, from_stage="z", observers=[replayed])
    finally:
        rec.close()

    def ended(recorder: Recorder) -> list[str]:
        return [e.stage for e in recorder.events if isinstance(e, StageFinished)]

    assert [*order, "z"] == ended(recorded)
    assert ("success", ended(recorded)) == (str(outcome.result.status), ended(replayed))
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
