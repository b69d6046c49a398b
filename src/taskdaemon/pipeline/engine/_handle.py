"""``RunHandle``: a run started by an engine, to wait for, steer and look at."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline.engine._results import RunResult
from taskdaemon.pipeline.engine._run import Run
from taskdaemon.pipeline.engine._stage_state import StageRun
from taskdaemon.pipeline.errors import PipelineError, StageNotFoundError
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.state import RunStatus


class RunHandle:
    """A run started by :meth:`Engine.start_run`: wait for it, steer it, look at it."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def __repr__(self) -> str:
        return f"<RunHandle {self._run.name} {self.run_id} {self.status}>"

    @property
    def run_id(self) -> str:
        """The run's id (32 lowercase hex, the trace id when monitored)."""
        return self._run.run_id

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline the run executes."""
        return self._run.pipeline

    @property
    def status(self) -> RunStatus:
        """The run's current status."""
        return self._run.status

    @property
    def scheduled_at(self) -> float | None:
        """The epoch seconds a schedule meant the run to start at, None for a run no schedule
        started (``Engine.start_run``'s ``scheduled_at``)."""
        return self._run.scheduled_at

    @property
    def done(self) -> bool:
        """True once the run has ended (with a result, or aborted by an internal error)."""
        return self._run.done.done()

    async def wait(self) -> RunResult:
        """Wait for the run to end and return its result (cancelling the wait leaves the run)."""
        return await asyncio.shield(self._run.done)

    def snapshot(self) -> RunResult:
        """The run as it is now (the final result once it ended)."""
        return self._run.result or self._run.snapshot()

    @property
    def backlog(self) -> int:
        """Events waiting for an instance slot plus event-stage instances not yet ended.

        O(stages): what a server checks before accepting one more event from outside.
        """
        return sum(
            len(srt.events) + srt.open_instances
            for srt in self._run.stages.values()
            if srt.cs.has_events
        )

    def _stage(self, stage: str) -> StageRun:
        run = self._run
        try:
            return run.stages[stage]
        except KeyError:
            raise StageNotFoundError(
                f"run {run.run_id} of pipeline {run.name!r} has no stage {quote(stage)}"
            ) from None

    def _open(self, action: str) -> None:
        if self._run.done.done():
            raise PipelineError(f"run {self.run_id} has finished; cannot {action}")

    def approve(self, stage: str, by: str = "") -> None:
        """Grant the approval ``stage`` waits for; ApprovalError if it waits for none."""
        srt = self._stage(stage)
        self._open(f"approve {stage!r}")
        self._run.resolve_approval(srt, approved=True, by=by, timed_out=False)

    def reject(self, stage: str, by: str = "") -> None:
        """Reject the approval ``stage`` waits for: the stage (and what needs it) is skipped."""
        srt = self._stage(stage)
        self._open(f"reject {stage!r}")
        self._run.resolve_approval(srt, approved=False, by=by, timed_out=False)

    def publish(self, event_type: str, payload: Mapping[str, Any] | None = None) -> None:
        """Publish an event from outside; its type must be listened to or declared external."""
        run = self._run
        self._open(f"publish {quote(event_type)}")
        if event_type not in run.plan.event_listeners and (
            event_type not in run.pipeline.external_events
        ):
            known = sorted(set(run.plan.event_listeners) | set(run.pipeline.external_events))
            raise PipelineError(
                f"pipeline {run.name!r} has no stage listening to {quote(event_type)} and does not "
                f"declare it in external_events (known: {', '.join(known) or 'none'})"
            )
        run.publish(event_type, payload or {}, None)

    def cancel(self, reason: str | None = None, by: str | None = None) -> None:
        """Cancel the run (running stages end ``cancelled``, the rest ``skipped``); idempotent.

        ``reason``: why, as the run's error, its cancelled attempts and its skipped stages say
        (SIGHUP's says the terminal hung up); else ``by``, who asked (a user, the API token's
        principal, a signal's name): ``run cancelled by <by>``; else "run cancelled". ``by`` is
        also who the run's pauses were resumed by."""
        self._run.cancel(reason, by)
