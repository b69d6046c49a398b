"""Approvals of ``manual {approval_required: true}`` triggers: request, resolve, time out,
withdraw.

``ApprovalRequested`` goes out when the stage becomes considered (mode ``any``) or once its
other triggers hold (mode ``all``). ``approve`` fires the trigger; ``reject``, or the trigger's
``timeout`` (counted with the injected ``sleep``), skips the stage and so what depends on it.
Approving a stage that is not waiting for an approval raises :class:`ApprovalError`. A request
no longer needed (the stage fired otherwise, was skipped, or the run stopped) is withdrawn with
``ApprovalResolved(approved=False, by="engine")``. An open request keeps the run active.
"""

from __future__ import annotations

import asyncio

from taskdaemon.pipeline.engine._run_base import RunBase
from taskdaemon.pipeline.engine._stage_state import SATISFIED, StageRun
from taskdaemon.pipeline.errors import ApprovalError
from taskdaemon.pipeline.events import ApprovalRequested, ApprovalResolved
from taskdaemon.pipeline.execution import outside_execution
from taskdaemon.pipeline.model import Manual
from taskdaemon.pipeline.triggers import ApprovalState


class Approvals(RunBase):
    """The run's part that handles approvals."""

    __slots__ = ()  # the run's fields: ``RunBase.__slots__``

    def maybe_request_approval(self, srt: StageRun) -> None:
        """Mode ``all``: ask for the approval once every other trigger holds."""
        index = srt.cs.approval_trigger
        if index is None or srt.approval is not ApprovalState.NOT_REQUESTED:
            return
        if srt.n_sat == len(srt.states) - 1 and srt.states[index] is not SATISFIED:
            self.request_approval(srt)

    def request_approval(self, srt: StageRun) -> None:
        """Ask for the stage's approval (once), and start its timeout if it has one."""
        if srt.approval is not ApprovalState.NOT_REQUESTED:
            return
        index = srt.cs.approval_trigger
        assert index is not None
        trigger = srt.cs.stage.triggers[index]
        assert isinstance(trigger, Manual)
        srt.approval = ApprovalState.REQUESTED
        self.active += 1
        ctx = self.ctx
        if ctx.observed:
            ctx.emit(
                ApprovalRequested(
                    run_id=self.run_id,
                    pipeline=self.name,
                    stage=srt.name,
                    at=ctx.clock(),
                    timeout=trigger.timeout,
                )
            )
        if trigger.timeout is not None:
            srt.approval_timer = asyncio.get_running_loop().create_task(
                self.approval_timeout(srt, trigger.timeout), context=outside_execution()
            )

    def withdraw_approval(self, srt: StageRun) -> None:
        """The stage no longer needs its approval (it fired otherwise, or was skipped): close the
        request with ``ApprovalResolved(approved=False, by="engine")``."""
        srt.approval = ApprovalState.REJECTED
        self.active -= 1
        if srt.approval_timer is not None:
            srt.approval_timer.cancel()
            srt.approval_timer = None
        ctx = self.ctx
        if ctx.observed:
            ctx.emit(
                ApprovalResolved(
                    run_id=self.run_id,
                    pipeline=self.name,
                    stage=srt.name,
                    approved=False,
                    at=ctx.clock(),
                    by="engine",
                )
            )

    async def approval_timeout(self, srt: StageRun, seconds: float) -> None:
        """Reject the request after ``seconds`` unless it was resolved before."""
        await self.ctx.sleep(seconds)
        srt.approval_timer = None
        if srt.approval is ApprovalState.REQUESTED:
            self.resolve_approval(srt, approved=False, by="", timed_out=True)

    def resolve_approval(self, srt: StageRun, *, approved: bool, by: str, timed_out: bool) -> None:
        """Grant or reject the request ``srt`` waits for; ApprovalError if it waits for none."""
        if srt.approval is not ApprovalState.REQUESTED:
            state = srt.approval.value.replace("_", " ")
            raise ApprovalError(
                f"stage {srt.name!r} of run {self.run_id} is not waiting for an approval "
                f"(approval {state})"
            )
        srt.approval = ApprovalState.APPROVED if approved else ApprovalState.REJECTED
        self.active -= 1
        if srt.approval_timer is not None:
            srt.approval_timer.cancel()
            srt.approval_timer = None
        ctx = self.ctx
        now = ctx.clock()
        if ctx.observed:
            ctx.emit(
                ApprovalResolved(
                    run_id=self.run_id,
                    pipeline=self.name,
                    stage=srt.name,
                    approved=approved,
                    at=now,
                    by=by,
                    timed_out=timed_out,
                )
            )
        index = srt.cs.approval_trigger
        assert index is not None
        self.evaluate(srt, index, srt.cs.stage.triggers[index])
        if approved:
            self.update(srt)
        elif not srt.final and not srt.instances:
            trigger = srt.cs.stage.triggers[index]
            assert isinstance(trigger, Manual)
            reason = (
                f"approval timed out after {trigger.timeout:g}s"
                if timed_out
                else "approval rejected" + (f" by {by}" if by else "")
            )
            srt.events.clear()
            self.skip(srt, reason, now)
        else:
            self.update(srt)
        self.process()
