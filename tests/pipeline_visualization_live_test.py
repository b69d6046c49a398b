"""Live snapshots: DagWatcher fed by hand with engine records, then by the real engine."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from pipeline_engine_support import FakeSleep, Resolver
from pipeline_visualization_support import RUN_ID
from taskdaemon.pipeline import telemetry_codec
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import (
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    StageWaiting,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    Pipeline,
    RetryPolicy,
    Stage,
)
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.visualization import (
    DagSnapshot,
    DagWatcher,
    render_dot,
    visualize,
    watch_run,
)

PIPE = Pipeline(
    "p",
    (
        Stage("a", "python", (Manual(),)),
        Stage("b", "python", (OnCompletion("a"),)),
        Stage("c", "python", (OnCompletion("b"),)),
    ),
)


def queued(stage: str, attempt: int, at: float) -> StageQueued:
    return StageQueued(
        run_id=RUN_ID,
        pipeline="p",
        stage=stage,
        instance=0,
        attempt=attempt,
        at=at,
        task_run_id=f"{stage}.0.{attempt}",
    )


def started(stage: str, attempt: int, at: float) -> StageStarted:
    return StageStarted(
        run_id=RUN_ID,
        pipeline="p",
        stage=stage,
        instance=0,
        attempt=attempt,
        task_run_id=f"{stage}.0.{attempt}",
        loop="python",
        at=at,
        queued_at=at,
        considered_at=at,
        inputs={},
    )


def finished(stage: str, attempt: int, status: StageStatus, at: float, *, retry: bool = False):
    return StageFinished(
        run_id=RUN_ID,
        pipeline="p",
        stage=stage,
        instance=0,
        attempt=attempt,
        task_run_id=f"{stage}.0.{attempt}",
        status=status,
        at=at,
        will_retry=retry,
    )


EVENTS: list[EngineEvent] = [
    RunStarted(run_id=RUN_ID, pipeline=PIPE, request={}, at=0.0),
    StageWaiting(run_id=RUN_ID, pipeline="p", stage="a", at=0.0, considered_at=0.0),
    queued("a", 1, 0.0),
    started("a", 1, 0.1),
    finished("a", 1, StageStatus.SUCCESS, 0.5),
    queued("b", 1, 0.5),
    started("b", 1, 0.5),
    finished("b", 1, StageStatus.FAILURE, 0.7, retry=True),
    StageRetrying(
        run_id=RUN_ID,
        pipeline="p",
        stage="b",
        instance=0,
        attempt=1,
        task_run_id="b.0.1",
        delay=0.1,
        error="boom",
        error_type="RuntimeError",
        at=0.7,
    ),
    queued("b", 2, 0.8),
    started("b", 2, 0.8),
    finished("b", 2, StageStatus.FAILURE, 0.9),
    StageSkipped(run_id=RUN_ID, pipeline="p", stage="c", reason="upstream b failed", at=0.9),
    RunFinished(run_id=RUN_ID, pipeline="p", status=RunStatus.FAILURE, at=0.9),
]


def states(snapshot: DagSnapshot) -> tuple[str | None, ...]:
    """The node states of a snapshot, in node order."""
    return tuple(node.state for node in snapshot.nodes)


async def test_one_snapshot_per_event_when_the_consumer_keeps_up() -> None:
    """Fed one event per snapshot, the stream shows every state change and ends with the run."""
    watcher = DagWatcher()
    feed = iter(EVENTS)
    watcher.on_event(next(feed))
    seen = []
    async for snapshot in watcher.watch(RUN_ID):
        seen.append(states(snapshot))
        event = next(feed, None)
        if event is not None:
            watcher.on_event(event)
    assert seen == [
        ("pending", "pending", "pending"),
        ("waiting", "pending", "pending"),
        ("queued", "pending", "pending"),
        ("running", "pending", "pending"),
        ("success", "pending", "pending"),
        ("success", "queued", "pending"),
        ("success", "running", "pending"),
        ("success", "retrying", "pending"),
        ("success", "retrying", "pending"),
        ("success", "queued", "pending"),
        ("success", "running", "pending"),
        ("success", "failure", "pending"),
        ("success", "failure", "skipped"),
        ("success", "failure", "skipped"),
    ]


async def test_bursts_are_coalesced_into_the_latest_state() -> None:
    """Events that arrive while nobody reads become one snapshot of the final state."""
    watcher = DagWatcher()
    for event in EVENTS:
        watcher.on_event(event)
    snapshots = [snapshot async for snapshot in watcher.watch(RUN_ID)]
    assert [states(s) for s in snapshots] == [("success", "failure", "skipped")]


async def test_final_snapshot_counts_attempts_and_run_status() -> None:
    """The finished snapshot has the retried attempts, timings and the run's status."""
    watcher = DagWatcher()
    for event in EVENTS:
        watcher.on_event(event)
    snapshot = watcher.snapshot(RUN_ID)
    node = snapshot.node("b")
    assert (
        snapshot.run.status if snapshot.run else None,
        len(node.attempts),
        round(node.duration or 0, 6),
        snapshot.node("c").skip_reason,
    ) == ("failure", 2, 0.4, "upstream b failed")


async def test_snapshots_are_frozen_and_render() -> None:
    """A live snapshot is immutable and renders like a reconstructed one."""
    watcher = DagWatcher()
    for event in EVENTS[:7]:
        watcher.on_event(event)
    snapshot = watcher.snapshot(RUN_ID)
    assert "fillcolor=green" in render_dot(snapshot).split('"b" [', 1)[1].split("\n", 1)[0]


async def test_following_the_next_run() -> None:
    """watch(None) follows the first run to start after the call, though it subscribes at its
    first iteration: not a run the watcher held before, which goes on emitting events."""
    older = StageWaiting(run_id="older", pipeline="p", stage="a", at=0.0, considered_at=0.0)
    watcher = DagWatcher()
    watcher.on_event(RunStarted(run_id="older", pipeline=PIPE, request={}, at=0.0))
    stream = watcher.watch()
    for event in EVENTS:
        watcher.on_event(older)
        watcher.on_event(event)
    watcher.on_event(RunFinished(run_id="older", pipeline="p", status=RunStatus.SUCCESS, at=1))
    snapshots = [snapshot async for snapshot in stream]
    assert [s.run.run_id if s.run else None for s in snapshots] == [RUN_ID]


async def test_a_watch_not_iterated_holds_no_subscription() -> None:
    """A watch created and dropped, or closed before its first snapshot, does not keep its run:
    the run is pruned as it finishes (``keep_finished=0``), as one nobody watches is. A watch
    that has given a snapshot keeps it."""
    idle = DagWatcher(keep_finished=0)
    dropped = idle.watch(RUN_ID)
    del dropped
    closed = idle.watch(RUN_ID)
    await closed.aclose()  # type: ignore[attr-defined]
    for event in EVENTS:
        idle.on_event(event)
    under_way = DagWatcher(keep_finished=0)
    under_way.on_event(EVENTS[0])
    stream = under_way.watch(RUN_ID)
    await anext(stream)
    for event in EVENTS[1:]:
        under_way.on_event(event)
    await stream.aclose()  # type: ignore[attr-defined]
    assert ((), (RUN_ID,)) == (idle.runs(), under_way.runs())


def test_a_watch_whose_loop_was_closed_under_it_is_let_go() -> None:
    """A consumer on a hand-run loop closed without finishing its async generators can never
    be woken: the engine's next event lets it go instead of raising (``on_event`` never
    raises: monitoring never stops a pipeline), so it no longer keeps its finished run from
    being pruned (``keep_finished=0``)."""
    watcher = DagWatcher(keep_finished=0)
    watcher.on_event(EVENTS[0])
    loop = asyncio.new_event_loop()
    stream = watcher.watch(RUN_ID)
    loop.run_until_complete(anext(stream))  # subscribed, waiting for the next change
    loop.close()
    for event in EVENTS[1:]:
        watcher.on_event(event)
    assert () == watcher.runs()


def fan_out_pipeline() -> Pipeline:
    """plan publishes three specs; implement fans out on them (instance 1 fails once);
    release follows implement."""
    return Pipeline(
        "fan",
        (
            Stage("plan", "python", (Manual(),), emits=("spec.ready",)),
            Stage("implement", "python", (OnEvent("spec.ready"),), parallel_instances=3),
            Stage("release", "python", (OnCompletion("implement"),)),
        ),
        error_strategy=ErrorStrategy.RETRY,
        retry=RetryPolicy(max_attempts=2),
    )


async def test_real_engine_run_streams_to_its_final_state() -> None:
    """A real engine run with fan-out and a retry streams snapshots ending in its final DAG."""
    gate = asyncio.Event()

    async def plan(ctx: StageContext) -> Mapping[str, Any]:
        await gate.wait()
        for n in range(3):
            ctx.publish("spec.ready", {"n": n})
        return {}

    async def implement(ctx: StageContext) -> Mapping[str, Any]:
        if ctx.event and ctx.event.get("n") == 1 and ctx.attempt == 1:
            raise RuntimeError("flaky")
        return {}

    resolver = Resolver({"plan": plan, "implement": implement})
    async with Engine(resolver=resolver, sleep=FakeSleep()) as engine:
        stream = watch_run(engine, RUN_ID)
        await engine.start_run(fan_out_pipeline(), run_id=RUN_ID)
        snapshots = []
        async for snapshot in stream:
            snapshots.append(snapshot)
            gate.set()
    last = snapshots[-1]
    implement_node = last.node("implement")
    assert (
        states(snapshots[0])[0],
        states(last),
        last.run.status if last.run else None,
        (implement_node.instances, len(implement_node.attempts)),
    ) == (
        "queued",
        ("success", "success", "success"),
        "success",
        (3, 4),
    )


async def test_watch_run_detaches_from_the_engine_closed_unstarted_dropped_or_at_its_end() -> None:
    """watch_run attaches a watcher to the engine when called: closed before its first
    snapshot (where an async generator runs no ``finally``), dropped under way (asyncio closes
    it), or once its run ended, it leaves the engine with no observer."""
    gate = asyncio.Event()

    async def a(ctx: StageContext) -> Mapping[str, Any]:
        await gate.wait()
        return {}

    async with Engine(resolver=Resolver({"a": a}), sleep=FakeSleep()) as engine:
        closed = watch_run(engine)
        attached = len(engine._observers.entries)
        await closed.aclose()  # type: ignore[attr-defined]
        after_close = len(engine._observers.entries)
        dropped = watch_run(engine, RUN_ID)
        ended = watch_run(engine, RUN_ID)
        await engine.start_run(PIPE, run_id=RUN_ID)
        await anext(dropped)
        del dropped
        for _ in range(100):  # asyncio closes it in a task of its own
            await asyncio.sleep(0)
            if len(engine._observers.entries) == 1:
                break
        after_drop = len(engine._observers.entries)
        gate.set()
        last = [snapshot async for snapshot in ended][-1]
        after_end = len(engine._observers.entries)
    assert (1, 0, 1, "success", 0) == (
        attached,
        after_close,
        after_drop,
        last.run.status if last.run else None,
        after_end,
    )


#: What a condition and an event filter of :func:`_comparing_secrets` compare with.
_SECRET = "Lit3ralSecret-99"


async def _comparing_secrets() -> DagWatcher:
    """A watcher that saw a run of a pipeline whose condition and filter compare a token with
    its literal (:data:`_SECRET`) to its end."""
    graph = Pipeline(
        "p",
        (
            Stage("a", "python", (Manual(),)),
            Stage("b", "python", (OnCondition(f"request.api_key == '{_SECRET}'"),)),
            Stage("c", "python", (OnEvent("x.y", f"event.token == '{_SECRET}'"),)),
        ),
        external_events=("x.y",),
    )
    watcher = DagWatcher()
    async with Engine(resolver=Resolver(), observers=[watcher]) as engine:
        await engine.run(graph, {"api_key": "other"}, run_id=RUN_ID)
    return watcher


async def test_a_live_run_s_triggers_show_a_compared_secret_redacted() -> None:
    """A condition and a filter comparing a token with its literal are secrets by their shape:
    the stored run holds them redacted, and so do the live run's record (its triggers and their
    specs, which ``/api`` serves) and each drawing of its snapshot."""
    secret = _SECRET
    watcher = await _comparing_secrets()
    record = watcher.record(RUN_ID)
    shown = [repr(record.stages)] + [
        visualize(watcher.snapshot(RUN_ID), fmt) for fmt in ("dot", "json", "mermaid")
    ]
    assert [] == [text for text in shown if secret in text]
    assert all("REDACTED" in text for text in shown)


async def test_a_served_run_s_updates_redact_its_triggers_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each snapshot of a served run (each update of its page) redacted the definition's
    triggers again, though they never change while it runs: the first snapshot redacts them,
    the next ones draw the same text and redact nothing."""
    watcher = await _comparing_secrets()
    redacted: list[str] = []
    redact = telemetry_codec.redact_text
    monkeypatch.setattr(
        telemetry_codec, "redact_text", lambda text: redacted.append(text) or redact(text)
    )
    drawn, counts = [], []
    for _ in range(3):
        drawn.append(visualize(watcher.snapshot(RUN_ID), "json"))
        counts.append(len(redacted))
    assert [counts[0]] * 3 == counts
    assert [drawn[0]] * 3 == drawn
    assert (True, False, True) == (counts[0] > 0, _SECRET in drawn[0], "REDACTED" in drawn[0])


def test_a_value_known_as_a_secret_after_a_drawing_is_masked_in_the_next() -> None:
    """A definition's texts are kept redacted between drawings, yet a value known as a secret
    since (a stage returned it under ``token``) is masked in the next drawing of the same
    definition: they are redacted again, not kept stale."""
    value = "Learnt-Later-77"
    graph = Pipeline(
        "p",
        (Stage("a", "python", (OnCondition(f"request.flag == '{value}'"),), description=value),),
        description=f"ships {value}",
    )
    before = visualize(graph, "json")
    remember_secrets({"token": value})
    after = visualize(graph, "json")
    assert (True, 0) == (value in before, after.count(value))
