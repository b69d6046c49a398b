"""One run's lifecycle and scheduling: start, fire, propagate finished stages, stop, finish.

The run's parts: attempts, timeouts and retries (``_attempt.py``), approvals
(``_approvals.py``), triggers (``_triggering.py``), data flow (``_dataflow.py``), its books
(``_stage_state.py``) and what it is given by its engine (``_run_base.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.engine._attempt import Attempts
from taskdaemon.pipeline.engine._dataflow import stage_outputs
from taskdaemon.pipeline.engine._results import ExecutionResult, RunResult
from taskdaemon.pipeline.engine._stage_state import (
    ALL,
    CANCELLED,
    FAILED,
    PENDING,
    QUEUED,
    RUNNING,
    SATISFIED,
    SKIPPED,
    TIMEOUT,
    ExecutionsView,
    Instance,
    StageRun,
    move,
    reached,
)
from taskdaemon.pipeline.engine._triggering import Triggers
from taskdaemon.pipeline.events import (
    RunFinished,
    RunStarted,
    StageSkipped,
    TaskRunRef,
)
from taskdaemon.pipeline.execution import outside_execution
from taskdaemon.pipeline.model import ErrorStrategy
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.status_rules import not_reached_reason, stage_status_of
from taskdaemon.pipeline.triggers import ApprovalState


class Run(Attempts, Triggers):
    """Everything about one run; all methods run on the event loop thread."""

    __slots__ = ()  # the run's fields: ``RunBase.__slots__``

    def start(
        self,
        started_by: str,
        parent: str | None,
        replay_of: str | None,
        scheduled_at: float | None = None,
    ) -> None:
        self.status = RunStatus.RUNNING
        self.scheduled_at = scheduled_at
        if self.ctx.observed:
            self.ctx.emit(
                RunStarted(
                    run_id=self.run_id,
                    pipeline=self.pipeline,
                    request=self.request,
                    at=self.started_at,
                    started_by=started_by,
                    parent_traceparent=parent,
                    replay_of=replay_of,
                    scheduled_at=scheduled_at,
                )
            )
        self.processing = True
        try:
            for name in self.plan.entry_stages:
                self.consider(self.stages[name], self.started_at)
            for name in self.plan.manual_entries:
                if self.stages[name].status is StageStatus.PENDING:
                    self.consider(self.stages[name], self.started_at)
        finally:
            self.processing = False
        self.process()

    def process(self) -> None:
        """Propagate every finished stage to what depends on it, then see if the run is idle."""
        if self.processing:
            return
        self.processing = True
        try:
            queue = self.finished_queue
            while queue:
                self.propagate(queue.popleft())
        finally:
            self.processing = False
        if self.active == 0 and self.result is None:
            self.idle()

    def idle(self) -> None:
        """Nothing can happen by itself any more: close what waits and end the run."""
        if self.stopping is None:
            # Event stages fed from outside close now; their completion may start others.
            for srt in self.stages.values():
                if not srt.final and srt.cs.has_events and srt.instances:
                    self.finalize(srt)
            if self.finished_queue:
                self.process()
                return
        now = self.ctx.clock()
        for srt in self.stages.values():
            if not srt.final:
                if srt.instances:
                    self.finalize(srt)
                else:
                    self.skip(srt, self.skip_reason_for(srt), now)
        self.finished_queue.clear()
        self.finish()

    def skip_reason_for(self, srt: StageRun) -> str:
        if self.stopping is RunStatus.CANCELLED:
            return self.cancel_reason or "run cancelled"  # who cancelled, as the run's error
        if self.stopping is RunStatus.FAILURE:
            return f"run failed: {self.first_failure}"
        if srt.cs.has_events and not srt.instances:
            return "no event arrived"
        errors = srt.condition_errors or {}
        waiting = [
            _failing(srt.cs.descriptions[i], errors.get(i))
            for i, state in srt.states.items()
            if state is PENDING
        ]
        return "triggers can no longer fire" + (f": {', '.join(waiting)}" if waiting else "")

    def finish(self) -> None:
        now = self.ctx.clock()
        # a stage can only end cancelled in a run that was not stopped if its handler raised
        # CancelledError by itself: that is no success either
        failed = [s for s in self.stages.values() if s.status in FAILED or s.status is CANCELLED]
        if self.stopping is not None:
            status = self.stopping
        elif failed:
            status = RunStatus.FAILURE
        else:
            status = RunStatus.SUCCESS
        if status is RunStatus.FAILURE and self.error is None:
            self.error = self.first_failure
        if self.error is not None:
            # Redacted when the failure came: a value learnt since (a later stage returned it
            # under ``token``) is masked now, in the event every observer prints and records.
            self.error = redact_text(self.error)
        # A cancelled run's error is the reason ``stop`` was given (``RunHandle.cancel`` always
        # gives one); it has no error type: ``error.type`` marks a failed run
        # (docs/architecture.md, the run span's attributes).
        self.status = status
        self.finished_at = now
        result = self.snapshot(final=True)
        self.result = result
        if self.ctx.observed:
            self.ctx.emit(
                RunFinished(
                    run_id=self.run_id,
                    pipeline=self.name,
                    status=status,
                    at=now,
                    error=self.error,
                    error_type=self.error_type,
                    outputs=result.outputs,
                )
            )
        self.ctx.run_finished(self.run_id)
        if not self.done.done():
            self.done.set_result(result)

    def snapshot(self, final: bool = False) -> RunResult:
        executions: Mapping[str, tuple[ExecutionResult, ...]] = ExecutionsView(
            self.started_at, self.stages
        )
        if not final:  # a live run changes: copy now
            executions = dict(executions)
        return RunResult(
            run_id=self.run_id,
            pipeline=self.name,
            status=self.status,
            started_at=self.started_at,
            finished_at=self.finished_at,
            # Redacted when the failure came: a value learnt since (a later stage returned it
            # under ``token``) is masked now, as in every view of the run. The final one is
            # made by ``finish``, which has just masked it so.
            error=self.error if final or self.error is None else redact_text(self.error),
            stage_status={name: srt.status for name, srt in self.stages.items()},
            executions=executions,
            outputs={name: ctx["outputs"] for name, ctx in self.stages_ctx.items()},
            skip_reasons={
                name: srt.skip_reason
                for name, srt in self.stages.items()
                if srt.skip_reason is not None
            },
        )

    def stop(self, status: RunStatus, reason: str | None = None, cause: str | None = None) -> None:
        """Stop the run: cancel what is queued or running; the run ends ``status``.

        ``cause`` names the stage whose failure stops the run (its error strategy is not
        ``continue``); cancelled attempts and skipped stages then say so.
        """
        if self.stopping is not None or self.result is not None or self.done.done():
            return
        self.stopping = status
        if cause is not None:
            failed = self.stages[cause].instances
            verb = "timed out" if any(i.status is TIMEOUT for i in failed) else "failed"
            self.cancel_reason = f"stage {cause!r} {verb} (error_strategy: {self.strategy.value})"
            self.cancel_cause = cause
        else:
            self.cancel_reason = reason or "run cancelled"
        ended: list[tuple[StageRun, Instance]] = []
        if reason is not None:
            self.error = reason
        for srt in self.stages.values():
            srt.events.clear()
            if srt.approval is ApprovalState.REQUESTED:
                self.withdraw_approval(srt)
            for inst in srt.instances:
                task = inst.task
                if task is None or task.done():
                    continue
                if inst.status is QUEUED:
                    # End it here: a task cancelled before its first step never runs its
                    # handler code, so it could not report its own end.
                    self.finished(
                        srt,
                        inst,
                        inst.executions[-1],
                        status=CANCELLED,
                        exception=None,
                        will_retry=False,
                        error=self.cancelled_error(),
                    )
                    move(srt, inst, CANCELLED)
                    ended.append((srt, inst))
                task.cancel()
        for srt, inst in ended:
            self.instance_ended(srt, inst)
        self.process()

    # ------------------------------------------------------------------ firing

    def fire(
        self,
        srt: StageRun,
        event: Mapping[str, Any] | None,
        fired_by: tuple[TaskRunRef, ...],
        event_trigger: int | None,
    ) -> None:
        """Start one instance of the stage (queued, waiting for a worker slot)."""
        if not srt.cs.has_events:
            srt.fired = True
            if srt.approval is ApprovalState.REQUESTED:
                self.withdraw_approval(srt)
        triggers: tuple[str, ...] = ()
        if self.ctx.observed:  # only StageStarted reads it: spare the allocations
            descriptions = srt.cs.descriptions
            if event_trigger is not None:
                triggers = (descriptions[event_trigger],)
            states = srt.states
            if srt.n_sat == len(states):  # all satisfied (the usual firing): made once a stage
                triggers += srt.cs.other_descriptions
            elif srt.n_sat:
                triggers += tuple(descriptions[i] for i, s in states.items() if s is SATISFIED)
        inst = Instance(len(srt.instances), event, fired_by, triggers)
        srt.instances.append(inst)
        srt.open_instances += 1
        self.active += 1
        self.queue(srt, inst, 1)
        # Not the execution of a handler that published the event firing it (``execution``).
        inst.task = self.loop.create_task(self.execute(srt, inst), context=outside_execution())

    def admit(self, srt: StageRun) -> None:
        """Start instances for waiting events, up to ``parallel_instances`` unfinished at once."""
        limit = srt.cs.stage.parallel_instances
        while srt.events and srt.open_instances < limit and self.stopping is None:
            payload, source = srt.events.popleft()
            self.fire(srt, payload, (source,) if source else (), srt.cs.event_triggers[0])

    def check_event_stage(self, srt: StageRun) -> None:
        """Finalize an event stage once nothing can start another instance of it."""
        if srt.final or srt.open_instances or srt.events or self.isolated.has_events(srt):
            return
        cs = srt.cs
        if not cs.event_emitters:
            return  # fed from outside: closes when the run is idle
        for emitter in cs.event_emitters:
            if not self.stages[emitter].final:
                return
        if srt.states:
            readiness = srt.ready
            if cs.stage.trigger_mode is ALL:
                if readiness is PENDING:
                    return
            elif not srt.fired and readiness is PENDING:
                return
        self.finalize(srt)

    # ------------------------------------------------------------------ ending stages

    def skip(self, srt: StageRun, reason: str, at: float) -> None:
        if srt.final:
            return
        # A reason quotes conditions (a token compared with its literal) and their errors (CEL
        # quotes the value it could not read): redacted once, as an execution's error is.
        reason = redact_text(reason)
        srt.skip_reason = reason
        srt.events.clear()
        if srt.approval is ApprovalState.REQUESTED:
            self.withdraw_approval(srt)
        srt.final = True
        srt.status = SKIPPED
        srt.ctx["status"] = "skipped"
        if self.ctx.observed:
            why, cause = (self.cancel_reason, self.cancel_cause) if self.stopping else (None, None)
            self.ctx.emit(
                StageSkipped(
                    run_id=self.run_id,
                    pipeline=self.name,
                    stage=srt.name,
                    reason=reason,
                    at=at,
                    cancel_reason=why,
                    cancel_cause=cause,
                )
            )
        self.finished_queue.append(srt)

    def finalize(self, srt: StageRun) -> None:
        """Every instance ended and none can start: the stage has its final status."""
        if srt.final:
            return
        if not srt.instances:
            self.skip(srt, self.skip_reason_for(srt), self.ctx.clock())
            return
        instances = srt.instances
        counted = instances  # the instances its status is of
        if self.stopping is not None:  # an instance the stop caught queued is not counted
            counted = [inst for inst in instances if reached(inst)]
            if not counted:
                self.not_reached(srt)
                return
        srt.final = True
        ctx = srt.ctx
        if len(instances) == 1:  # the status and stage_outputs() of one instance, inline
            only = instances[0]
            status = only.status
            ctx["status"] = status._value_  # ``.value`` is a Python property: the same, direct
            ctx["outputs"] = only.executions[-1].outputs
        else:
            status = StageStatus(stage_status_of((i.index, i.status) for i in counted))
            ctx["status"] = status._value_
            ctx["outputs"] = stage_outputs(instances)
        srt.status = status
        self.finished_queue.append(srt)

    def not_reached(self, srt: StageRun) -> None:
        """End a stage of a stopped run whose every execution was cancelled while queued for a
        worker slot: ``skipped``, ``not reached: the run ended (<status>)``.

        Such an execution never started, so it has no span, and no run-span event says it
        was queued (the monitor counts no execution for it either): the run's records can
        only know that the stage never ran (``status_rules.not_reached_reason``). The result
        says what they say; its ``executions`` still list the cancelled execution. No
        ``StageSkipped`` is emitted: the telemetry stays as it was. docs/run-state.md, "Rules".
        """
        srt.final = True
        srt.status = SKIPPED
        srt.skip_reason = not_reached_reason(str(self.stopping))
        srt.ctx["status"] = "skipped"
        self.finished_queue.append(srt)

    def propagate(self, srt: StageRun) -> None:
        """Re-evaluate what a final stage can affect (and nothing else)."""
        if self.stopping is not None:
            return
        plan = self.plan
        stages = self.stages
        touched: list[StageRun] = []
        for dependent, index in plan.completion_dependents.get(srt.name, ()):
            dep = stages[dependent]
            if dep.final or (dep.fired and not dep.cs.has_events):
                continue
            self.evaluate(dep, index, dep.cs.stage.triggers[index])
            touched.append(dep)
        for reader, index in plan.condition_readers.get(srt.name, ()):
            dep = stages[reader]
            if dep.final or dep.fired:
                continue
            self.evaluate(dep, index, dep.cs.stage.triggers[index])
            touched.append(dep)
        for reader, index in plan.opaque_conditions:
            dep = stages[reader]
            if dep.final or dep.fired:
                continue
            self.evaluate(dep, index, dep.cs.stage.triggers[index])
            touched.append(dep)
        for dep in touched:
            self.update(dep)
        for name in srt.cs.downstream:
            dep = stages[name]
            if dep.cs.has_events and srt.name in dep.cs.event_emitters:
                self.check_event_stage(dep)

    def instance_ended(self, srt: StageRun, inst: Instance) -> None:
        srt.open_instances -= 1
        self.active -= 1
        status = inst.status
        if status in FAILED and self.first_failure is None:
            last = inst.executions[-1]
            self.first_failure = f"stage {srt.name!r} {status.value}: {last.error}"
            self.error_type = last.error_type
        if self.stopping is None:
            if status in FAILED and self.strategy is not ErrorStrategy.CONTINUE:
                self.stop(RunStatus.FAILURE, self.first_failure, srt.name)
            elif srt.cs.has_events:
                self.admit(srt)
                self.check_event_stage(srt)
            else:
                self.finalize(srt)
        if self.stopping is not None and srt.open_instances == 0 and not srt.final:
            self.finalize(srt)
        self.process()

    def first_start(self, srt: StageRun, at: float) -> None:
        """A stage's first execution started: its downstream stages become considered."""
        srt.started = True
        srt.status = RUNNING
        srt.ctx["status"] = "running"
        stages = self.stages
        for name in srt.cs.downstream:
            dep = stages[name]
            if dep.status is StageStatus.PENDING:
                self.consider(dep, at)
        # ``process()`` only when considering them ended a stage: else it has nothing to do,
        # since this stage's own instance is active (counted in ``active`` until it ends), so
        # the run cannot be idle.
        if self.finished_queue:
            self.process()


#: The most characters of a condition's error a skip reason quotes (CEL's own can run to 400).
_ERROR_CHARS = 200


def _failing(description: str, error: str | None) -> str:
    """A waiting trigger's description, with the error of its condition's last evaluation if
    it failed (the quoted expression the error starts with left out: the description has it),
    cut to ``_ERROR_CHARS``."""
    if error is None:
        return description
    _quoted, sep, rest = error.partition("': ")
    reason = cut(rest if sep else error, _ERROR_CHARS)
    return f"{description} (its last evaluation failed: {reason})"
