"""Debugger records as span events: what the monitor writes for breakpoints and overrides.

docs/debugging.md, "Spans", is the contract:

* ``breakpoint.hit`` and ``breakpoint.resumed`` go on the **run span**, like the approval events
  and for the same reason: the run span is open for the whole run and the embedded store
  rewrites open spans as they gain events, so another process sees a run paused while it is
  (an execution paused before it starts has no span yet). Both carry the stage
  (``cicd.pipeline.task.name``) and the execution (``cicd.pipeline.task.run.id``); ``hit`` its
  kind and reason (and the error for a failure); ``resumed`` the action, who, and the seconds
  (and, at a stop of the run, why: ``taskdaemon.stage.cancel_reason`` and ``.cancel_cause``,
  the attributes a cancelled execution's span has, for an execution that may have none).
* ``input.override`` goes on the **execution's span** with the input's name and the sha256 of
  its old and new values (of their redacted JSON, as ``stage.input`` hashes): it happens while
  the execution is paused before it starts, so it is kept here and added, with its own time,
  when the span starts.
* The execution span's ``taskdaemon.stage.paused_s`` is the time paused before it started; the
  queue time (span attribute and metric) leaves it out.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import (
    BreakpointHit,
    BreakpointResumed,
    InputOverridden,
    StageStarted,
)
from taskdaemon.pipeline.monitor._spans import ns, set_cancel_cause
from taskdaemon.pipeline.payloads import PayloadCapture

__all__ = ["DebugSpans"]


class DebugSpans:
    """Turns debugger records into span events (the monitor calls it under its lock)."""

    def __init__(self, capture: PayloadCapture) -> None:
        self._capture = capture
        # (run id, task run id) -> overrides waiting for their execution's span
        self.pending: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}

    def record(
        self, run_span: Span, event: BreakpointHit | BreakpointResumed | InputOverridden
    ) -> None:
        """Record one debugger record of a run whose span is ``run_span``."""
        if isinstance(event, InputOverridden):
            old = self._capture.capture({event.name: event.old}).sha256
            new = self._capture.capture({event.name: event.new}).sha256
            overridden: dict[str, Any] = {
                t.CICD_TASK_NAME: event.stage,
                t.CICD_TASK_RUN_ID: event.task_run_id,
                t.OVERRIDE_INPUT: event.name,
                t.OVERRIDE_OLD_SHA256: old,
                t.OVERRIDE_NEW_SHA256: new,
                t.OVERRIDE_BY: event.by,
            }
            key = (event.run_id, event.task_run_id)
            self.pending.setdefault(key, []).append((ns(event.at), overridden))
            return
        if not run_span.is_recording():
            return
        attributes: dict[str, Any] = {
            t.CICD_TASK_NAME: event.stage,
            t.CICD_TASK_RUN_ID: event.task_run_id,
        }
        if isinstance(event, BreakpointHit):
            attributes[t.BREAKPOINT_KIND] = event.kind
            attributes[t.BREAKPOINT_REASON] = event.reason
            if event.error:
                attributes[t.STAGE_ERROR_MESSAGE] = event.error
            run_span.add_event(t.EVENT_BREAKPOINT_HIT, attributes, timestamp=ns(event.at))
        else:
            attributes[t.BREAKPOINT_ACTION] = event.action
            attributes[t.BREAKPOINT_BY] = event.by
            attributes[t.BREAKPOINT_PAUSED] = float(event.paused)
            set_cancel_cause(attributes, event.cancel_reason, event.cancel_cause)
            run_span.add_event(t.EVENT_BREAKPOINT_RESUMED, attributes, timestamp=ns(event.at))

    def stage_started(self, span: Span, event: StageStarted) -> None:
        """Add what waited for this execution's span: its overrides and its paused time."""
        if event.paused:
            span.set_attribute(t.STAGE_PAUSED_TIME, float(event.paused))
        for at, attributes in self.pending.pop((event.run_id, event.task_run_id), ()):
            span.add_event(t.EVENT_INPUT_OVERRIDE, attributes, timestamp=at)

    def run_finished(self, run_id: str) -> None:
        """Forget what a finished run left (an override of an execution that never started)."""
        for key in [k for k in self.pending if k[0] == run_id]:
            del self.pending[key]
