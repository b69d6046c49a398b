"""The debugger's records: breakpoints and paused executions (live and as snapshots). The
behaviour is in ``engine/_debug.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.expressions import Expression

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._run_base import RunBase
    from taskdaemon.pipeline.engine._stage_state import Execution, Instance, StageRun

__all__ = ["Breakpoint", "PausedExecution", "split_instance"]

START, FAILURE = "start", "failure"


def split_instance(stage: str) -> tuple[str, int | None]:
    """``stage`` as the debugger's commands name an execution: ``STAGE`` (any instance) or
    ``STAGE#N``, instance N of a fanned-out stage, numbered as the progress lines number them
    (a stage name never holds ``#``). ``("implementation", 2)`` for ``implementation#2``."""
    name, mark, number = stage.rpartition("#")
    if mark and ascii_digits(number) and len(number) <= 9:
        return name, int(number)
    return stage, None


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
        run: RunBase,
        srt: StageRun,
        inst: Instance,
        ex: Execution,
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
