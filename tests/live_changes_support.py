"""Runs of made-up engine events for the live stream's tests and benchmark: a pipeline of
``n`` stages, a random but plausible order of its executions' events (queued, started, ended,
retried, fanned out, approvals, pauses, skips), and the stream's deltas applied in Python as
``static/deltas.js`` applies them in the page."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageSkipped,
    StageStarted,
)
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.state import RunStatus, StageStatus

RUN = "0123456789abcdef0123456789abcdef"


def pipeline(n: int) -> Pipeline:
    """A chain of ``n`` stages, every fifth one behind an approval."""
    stages = [Stage("s0", "python", (Manual(),))]
    for i in range(1, n):
        triggers: Any = (OnCompletion(f"s{i - 1}"),)
        if i % 5 == 0:
            triggers = (*triggers, Manual(approval_required=True))
        stages.append(Stage(f"s{i}", "python", triggers))
    return Pipeline("chain", tuple(stages))


def _ids(stage: str, instance: int, attempt: int) -> dict[str, Any]:
    return {
        "run_id": RUN,
        "pipeline": "chain",
        "stage": stage,
        "instance": instance,
        "attempt": attempt,
        "task_run_id": f"{stage}.{instance}.{attempt}",
    }


class Clock:
    """Event times, a tenth of a second apart."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def tick(self) -> float:
        self.now += 0.1
        return self.now


def started(definition: Pipeline, clock: Clock) -> RunStarted:
    return RunStarted(run_id=RUN, pipeline=definition, request={}, at=clock.tick())


def stage_start(stage: str, clock: Clock, instance: int = 0, attempt: int = 1) -> StageStarted:
    """The start of an execution queued a tenth of a second before."""
    at = clock.tick()
    return StageStarted(
        **_ids(stage, instance, attempt),
        loop="python",
        at=at,
        queued_at=at - 0.05,
        considered_at=at - 0.08,
        inputs={},
    )


def stage_end(
    stage: str, clock: Clock, status: StageStatus = StageStatus.SUCCESS, **fields: Any
) -> StageFinished:
    fields.setdefault("instance", 0)
    fields.setdefault("attempt", 1)
    names = _ids(stage, fields.pop("instance"), fields.pop("attempt"))
    return StageFinished(**names, status=status, at=clock.tick(), **fields)


def random_events(rng: random.Random, n: int, clock: Clock) -> Iterator[EngineEvent]:
    """Events of a run of ``pipeline(n)`` in a random plausible order, the run's end last."""
    pending = [f"s{i}" for i in range(n)]
    queued: list[tuple[str, int, int]] = []
    running: list[tuple[str, int, int]] = []
    asked: list[str] = []
    paused: list[tuple[str, int, int]] = []
    for _ in range(6 * n):
        choice = rng.random()
        if pending and choice < 0.3:
            stage = pending.pop(rng.randrange(len(pending)))
            if choice < 0.03:
                yield StageSkipped(
                    run_id=RUN, pipeline="chain", stage=stage, reason="not needed", at=clock.tick()
                )
                continue
            if choice < 0.07:
                yield ApprovalRequested(run_id=RUN, pipeline="chain", stage=stage, at=clock.tick())
                asked.append(stage)
                continue
            for instance in range(3 if choice > 0.27 else 1):  # a fan-out now and then
                yield StageQueued(**_ids(stage, instance, 1), at=clock.tick())
                queued.append((stage, instance, 1))
        elif asked and choice < 0.35:
            stage = asked.pop(rng.randrange(len(asked)))
            approved = rng.random() < 0.8
            yield ApprovalResolved(
                run_id=RUN, pipeline="chain", stage=stage, approved=approved, at=clock.tick()
            )
            if approved:
                yield StageQueued(**_ids(stage, 0, 1), at=clock.tick())
                queued.append((stage, 0, 1))
            else:
                yield StageSkipped(
                    run_id=RUN, pipeline="chain", stage=stage, reason="rejected", at=clock.tick()
                )
        elif queued and choice < 0.6:
            stage, instance, attempt = queued.pop(rng.randrange(len(queued)))
            if rng.random() < 0.1:  # held at a breakpoint before its start, then let go
                yield BreakpointHit(
                    **_ids(stage, instance, attempt), at=clock.tick(), kind="stage", reason="bp"
                )
                paused.append((stage, instance, attempt))
                continue
            yield stage_start(stage, clock, instance, attempt)
            running.append((stage, instance, attempt))
        elif paused and choice < 0.65:
            stage, instance, attempt = paused.pop(rng.randrange(len(paused)))
            yield BreakpointResumed(
                **_ids(stage, instance, attempt),
                at=clock.tick(),
                action="continue",
                by="alice",
                paused=0.2,
            )
            yield stage_start(stage, clock, instance, attempt)
            running.append((stage, instance, attempt))
        elif running:
            stage, instance, attempt = running.pop(rng.randrange(len(running)))
            if rng.random() < 0.2 and attempt < 3:
                yield stage_end(
                    stage,
                    clock,
                    StageStatus.FAILURE,
                    instance=instance,
                    attempt=attempt,
                    error="boom",
                    will_retry=True,
                )
                yield StageQueued(**_ids(stage, instance, attempt + 1), at=clock.tick())
                queued.append((stage, instance, attempt + 1))
            else:
                yield stage_end(stage, clock, instance=instance, attempt=attempt)
    yield RunFinished(run_id=RUN, pipeline="chain", status=RunStatus.SUCCESS, at=clock.tick())


def apply_delta(state: Mapping[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` after ``delta`` (an event's ``state``), as ``static/deltas.js`` makes it."""
    new: dict[str, Any] = copy.deepcopy(dict(state))
    for field, value in delta.items():
        if field == "nodes":
            new["nodes"] = _keyed(new["nodes"], value, lambda node: node["name"])
        elif field != "timeline":
            new[field] = value
    for field, value in delta.get("timeline", {}).items():
        if field == "rows":
            new["timeline"]["rows"] = _keyed(
                new["timeline"]["rows"], value, lambda r: [r["stage"], r["instance"], r["attempt"]]
            )
        else:
            new["timeline"][field] = value
    for row in new["timeline"]["rows"]:
        if row["open"] and row["segments"]:
            row["segments"][-1]["end"] = new["now"]
    return new


def _keyed(items: list[Any], change: Mapping[str, Any], key: Any) -> list[Any]:
    def name(k: Any) -> str:
        return json.dumps(k)

    put = {name(key(item)): item for _after, item in change["put"]}
    after: dict[str, list[tuple[str, Any]]] = {}
    for previous, item in change["put"]:
        after.setdefault("" if previous is None else name(previous), []).append(
            (name(key(item)), item)
        )
    gone = {name(k) for k in change["drop"]}
    had = {name(key(item)) for item in items}
    out: list[Any] = []

    def follow(k: str) -> None:
        for following, item in after.get(k, []):
            if following not in had:
                out.append(item)
                follow(following)

    follow("")
    for item in items:
        k = name(key(item))
        if k not in gone:
            out.append(put.get(k, item))
        follow(k)
    return out


def live_stream(
    definition: Pipeline,
    before: Iterable[EngineEvent],
    changes: Iterable[Iterable[EngineEvent]],
) -> tuple[list[tuple[str | None, Any]], dict[str, Any]]:
    """The events a page on deltas gets for a run of this process, made by the server's own
    parts (``DagWatcher.changes``, ``LiveDocument``): the whole state after ``RunStarted`` (at
    ``Clock()``'s start, before any event of a ``Clock()``) and ``before``, then one event per
    batch of ``changes`` (``"delta"``, or None for a whole state), each at the time of its
    batch's last event; and the whole state at the end."""
    from taskdaemon.pipeline.visualization import DagWatcher
    from taskdaemon.pipeline.web._live_document import LiveDocument
    from taskdaemon.pipeline.web._views import run_state

    clock = Clock()
    watcher = DagWatcher()
    watcher.on_event(RunStarted(run_id=RUN, pipeline=definition, request={}, at=clock.now))

    def take(events: Iterable[EngineEvent]) -> None:
        for event in events:
            watcher.on_event(event)
            clock.now = max(clock.now, event.at)

    take(before)
    document = LiveDocument(
        lambda snapshot, quiet, rows: run_state(
            snapshot, now=clock.now, can_control=False, quiet_since=quiet, max_rows=rows
        )
    )
    stream = watcher.changes(RUN)
    loop = asyncio.new_event_loop()
    try:
        document.update(loop.run_until_complete(anext(stream)), 0)
        sent: list[tuple[str | None, Any]] = [(None, document.whole())]
        for batch in changes:
            take(batch)
            delta = document.update(loop.run_until_complete(anext(stream)), len(sent))
            sent.append((None, document.whole()) if delta is None else ("delta", delta))
        loop.run_until_complete(stream.aclose())  # type: ignore[attr-defined]
    finally:
        loop.close()
    return sent, document.whole()


def sse_body(events: list[tuple[str | None, Any]], retry_ms: int = 600_000) -> str:
    """``events`` as an event stream's text, ids from 1 (a delta's base is the one before)."""
    text = f"retry: {retry_ms}\n\n"
    for number, (name, data) in enumerate(events, start=1):
        text += f"id: {number}\n" + (f"event: {name}\n" if name else "")
        text += f"data: {json.dumps(data)}\n\n"
    return text
