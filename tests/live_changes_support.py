"""Runs of made-up engine events for the live stream's tests and benchmark: a pipeline of
``n`` stages, a random but plausible order of its executions' events (queued, started, ended,
retried, fanned out, approvals, pauses, skips), and the stream's deltas applied in Python as
``static/deltas.js`` applies them in the page."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator, Mapping
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
