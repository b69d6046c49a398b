"""Loop types: the registry of stage handlers.

A handler is an async callable ``handler(ctx: StageContext) -> Mapping[str, Any]`` that does one
stage execution's work and returns its result (the stage's outputs unless the stage declares an
``outputs:`` mapping over ``result``). Raising fails the attempt; the exception is recorded by the
monitor and reaches the engine's error strategy unchanged.

Built-in loop types: ``python`` (the stage's ``handler: module:function``) and ``command`` (the
stage's ``command:``, run as a subprocess). Pipeline files declare more under ``loops:``; packages
register more through the entry point group ``taskdaemon.loops`` (name = loop type, value =
``module:function``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["Handler", "StageContext"]


@dataclass(frozen=True, slots=True)
class StageContext:
    """What a handler gets for one stage execution.

    ``publish(event_type, payload)`` publishes an event into the run (it must be one of the
    stage's ``emits``). ``environment`` holds extra variables for subprocesses (``TRACEPARENT``
    when monitored). ``report_process(pid)`` tells the engine (and so the monitor) which
    subprocess does the work, for resource sampling; ``report_usage(cpu_seconds, peak_bytes)``
    reports what that process tree used in all, for the stage's span. ``workspace`` is a
    directory the stage may write to, shared by the run.
    """

    run_id: str
    pipeline: str
    stage: str
    loop: str
    instance: int
    attempt: int
    inputs: Mapping[str, Any]
    publish: Callable[[str, Mapping[str, Any]], None]
    report_process: Callable[[int], None]
    report_usage: Callable[[float | None, int | None], None] = lambda cpu, mem: None
    timeout: float | None = None
    event: Mapping[str, Any] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    workspace: str | None = None
    command: str | None = None


Handler: TypeAlias = Callable[[StageContext], Awaitable[Mapping[str, Any]]]
