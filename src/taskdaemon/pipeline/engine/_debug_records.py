"""The debugger's records: breakpoints, paused executions (live and as snapshots), and a
live run's engine state for debug dumps. The behaviour is in ``engine/_debug.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.expressions import Expression

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._api import Engine
    from taskdaemon.pipeline.engine._run import _Exec, _Instance, _Run, _StageRun

__all__ = ["Breakpoint", "PausedExecution", "engine_state"]

START, FAILURE = "start", "failure"


@dataclass
class Breakpoint:
    """One breakpoint. ``on`` is ``start``, ``failure`` or ``event:TYPE``; see the module doc."""

    id: int
    stage: str | None
    on: str = START
    when: str | None = None
    pipeline: str | None = None
    run_id: str | None = None
    hits: int = 0
    last_error: str | None = None
    _expression: Expression | None = field(default=None, repr=False, compare=False)

    @property
    def event_type(self) -> str | None:
        """The event type of an ``event:TYPE`` breakpoint."""
        return self.on[6:] if self.on.startswith("event:") else None

    def describe(self) -> str:
        """One line: ``#2 before build if inputs.n > 1 (run 3f2a…)``."""
        where = self.stage or "any stage"
        if self.on == FAILURE:
            text = f"on failure of {where}"
        elif self.event_type is not None:
            text = f"on event {self.event_type} ({where})"
        else:
            text = f"before {where}"
        if self.when:
            text += f" if {self.when}"
        if self.run_id:
            text += f" (run {self.run_id[:8]})"
        elif self.pipeline:
            text += f" (pipeline {self.pipeline})"
        return f"#{self.id} {text}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (HTTP, control socket)."""
        return {
            "id": self.id,
            "stage": self.stage,
            "on": self.on,
            "when": self.when,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "hits": self.hits,
            "last_error": self.last_error,
            "description": self.describe(),
        }


@dataclass(frozen=True)
class PausedExecution:
    """A paused execution as it is now (a snapshot)."""

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    kind: str  # start | failure
    reason: str
    since: float
    inputs: Mapping[str, Any]
    error: str | None = None
    overridden: tuple[str, ...] = ()

    @property
    def task_run_id(self) -> str:
        """``{stage}.{instance}.{attempt}``."""
        return f"{self.stage}.{self.instance}.{self.attempt}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "stage": self.stage,
            "instance": self.instance,
            "attempt": self.attempt,
            "task_run_id": self.task_run_id,
            "kind": self.kind,
            "reason": self.reason,
            "since": self.since,
            "inputs": dict(self.inputs),
            "error": self.error,
            "overridden": list(self.overridden),
        }


class _Pause:
    """A paused execution, live: the future its coroutine awaits holds (action, by)."""

    __slots__ = (
        "ex",
        "future",
        "inputs",
        "inst",
        "kind",
        "overridden",
        "reason",
        "run",
        "seq",
        "since",
        "srt",
    )

    def __init__(  # noqa: PLR0917 - internal, built in one place
        self,
        run: _Run,
        srt: _StageRun,
        inst: _Instance,
        ex: _Exec,
        kind: str,
        reason: str,
        inputs: dict[str, Any],
        seq: int,
        since: float,
    ) -> None:
        self.run, self.srt, self.inst, self.ex = run, srt, inst, ex
        self.kind, self.reason, self.inputs, self.seq, self.since = kind, reason, inputs, seq, since
        self.overridden: list[str] = []
        self.future: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()

    @property
    def task_run_id(self) -> str:
        return f"{self.srt.name}.{self.inst.index}.{self.ex.attempt}"

    def snapshot(self) -> PausedExecution:
        return PausedExecution(
            self.run.run_id,
            self.run.name,
            self.srt.name,
            self.inst.index,
            self.ex.attempt,
            self.kind,
            self.reason,
            self.since,
            dict(self.inputs),
            self.ex.error,
            tuple(self.overridden),
        )


def engine_state(engine: Engine, run_id: str) -> dict[str, Any]:
    """A live run's engine state, for debug dumps: status, worker slots, and per stage its
    status, instances (status, attempts), trigger states, approval and the events waiting for
    an instance (payloads as published: redact before writing them anywhere); plus what is
    paused and the breakpoints when debug mode is on. Never turns debug mode on. JSON-able."""
    handle = engine.get_run(run_id)
    run = handle._run
    stages: dict[str, Any] = {}
    for name, srt in run.stages.items():
        stages[name] = {
            "status": str(srt.status),
            "fired": srt.fired,
            "approval": srt.approval.value,
            "instances": [
                {
                    "instance": inst.index,
                    "status": str(inst.status),
                    "attempts": [str(ex.status) for ex in inst.executions],
                }
                for inst in srt.instances
            ],
            "triggers": [
                {
                    "description": srt.cs.descriptions[i],
                    "state": srt.states[i].value if i in srt.states else "by event",
                }
                for i in range(len(srt.cs.stage.triggers))
            ],
            "pending_events": [dict(payload) for payload, _source in srt.events],
        }
    session = engine._debugger
    return {
        "run_id": run.run_id,
        "pipeline": run.name,
        "status": str(run.status),
        "done": handle.done,
        "slots": {"size": max(1, run.pipeline.concurrency), "free": run.slots._value},
        "active": run.active,
        "stages": stages,
        "debug": session is not None,
        "paused": [] if session is None else [p.as_dict() for p in session.paused(run.run_id)],
        "breakpoints": (
            [] if session is None else [bp.as_dict() for bp in session.breakpoints(run.run_id)]
        ),
        "stepping": session is not None and session.is_stepping(run.run_id),
    }
