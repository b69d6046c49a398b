"""The stage context: what a handler gets for one stage execution.

A module of its own so that ``loops`` (which ``validate`` imports to resolve handlers) need not
import ``dataclasses``; ``taskdaemon.pipeline.loops.StageContext`` is this class. It stays a
dataclass because handlers copy it with ``dataclasses.replace`` (``examples/loops.py`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageContext"]


@dataclass(frozen=True, slots=True)
class StageContext:
    """What a handler gets for one stage execution.

    ``publish(event_type, payload)`` publishes an event into the run (it must be one of the
    stage's ``emits``). ``environment`` holds extra variables for subprocesses (``TRACEPARENT``
    when monitored), asked of the observers on first read. ``report_process(pid)`` tells the
    engine (and so the monitor) which subprocess does the work, for resource sampling;
    ``report_usage(cpu_seconds, peak_bytes)`` reports what that process tree used in all, for
    the stage's span. ``report_cpu(seconds)`` is how the ``python`` loop type reports the CPU
    time of the thread that ran the handler (the span's ``cpu_time_s`` when no process tree's
    usage was reported; see the module docstring); callable from any thread, handlers need not
    call it. ``workspace`` is a directory the stage may write to, shared by the run.
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
    report_cpu: Callable[[float], None] = lambda seconds: None
    timeout: float | None = None
    event: Mapping[str, Any] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    workspace: str | None = None
    command: str | None = None
