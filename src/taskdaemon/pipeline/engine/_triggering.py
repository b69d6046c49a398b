"""Triggers of a run: considering a stage, evaluating its triggers, acting on their states.

Re-evaluation is incremental: a finished stage re-evaluates only its ``on_completion``
dependents, the conditions that name it and the event stages it emits for (``_run.py``); a
published event only its listeners and the waiting ``on_condition`` stages. A stage fires at
most once; only ``on_event`` instances and retries run a stage again. A CEL evaluation error
is false (reported in ``TriggerEvaluated.detail``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline.engine._approvals import Approvals
from taskdaemon.pipeline.engine._makers import stage_waiting, task_run_ref, trigger_evaluated
from taskdaemon.pipeline.engine._stage_state import (
    ALL,
    IMPOSSIBLE,
    PENDING,
    SATISFIED,
    WAITING,
    StageRun,
    note_condition,
)
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import (
    EventPublished,
    StageWaiting,
    TaskRunRef,
)
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.triggers import (
    ApprovalState,
    TriggerState,
    evaluate_completion,
    evaluate_condition,
    evaluate_filter,
    evaluate_manual,
    expression_context,
)


class Triggers(Approvals):
    """The run's part that evaluates triggers and decides to fire, skip or ask for approval."""

    __slots__ = ()  # the run's fields: ``RunBase.__slots__``

    def evaluated(
        self,
        srt: StageRun,
        index: int,
        state: TriggerState,
        detail: str,
        ready: bool,
        *,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        if self.ctx.observed:
            trigger = srt.cs.stage.triggers[index]
            self.ctx.emit(
                trigger_evaluated(  # every field by position, in its order (``_makers``)
                    self.run_id,
                    self.name,  # pipeline
                    srt.name,  # stage
                    index,  # trigger_index
                    trigger.kind,  # trigger_type
                    srt.cs.descriptions[index],  # description
                    state is SATISFIED,  # satisfied
                    ready,  # stage_ready
                    self.ctx.clock(),  # at
                    detail,
                    values,
                )
            )

    def consider(self, srt: StageRun, at: float) -> None:
        """The stage can be looked at from now on: emit StageWaiting and evaluate its triggers."""
        if srt.status is not StageStatus.PENDING:
            return
        now = self.ctx.clock()
        srt.status = WAITING
        srt.considered_at = at
        srt.waiting_at = now
        srt.ctx["status"] = "waiting"
        if self.ctx.observed and self.ctx.wants_record(StageWaiting):
            # Every field by position, in its order (``_makers``): run_id, pipeline, stage, at,
            # considered_at.
            self.ctx.emit(stage_waiting(self.run_id, self.name, srt.name, now, at))
        cs = srt.cs
        if cs.approval_trigger is not None and cs.stage.trigger_mode is not ALL:
            self.request_approval(srt)
        triggers = cs.stage.triggers
        for index in cs.other_triggers:
            if srt.final:
                return
            self.evaluate(srt, index, triggers[index])
        if not srt.final:
            self.update(srt)

    def evaluate(self, srt: StageRun, index: int, trigger: Any) -> None:
        """Re-evaluate one non-event trigger, update the counters, report it."""
        values = None
        if isinstance(trigger, OnCompletion):
            upstream = self.stages[trigger.stage]
            state, detail = evaluate_completion(
                trigger, upstream.status if upstream.final else None
            )
            if state is SATISFIED and self.ctx.observed:  # only StageStarted reads it
                if srt.fired_by is None:
                    srt.fired_by = {}
                instances = upstream.instances
                if len(instances) == 1:  # the comprehension below, without its frame
                    only = instances[0]
                    srt.fired_by[index] = (
                        (task_run_ref(upstream.name, only.index, only.executions[-1].attempt),)
                        if only.executions
                        else ()
                    )
                else:
                    # A list comprehension, not a generator: no generator resumed per instance.
                    srt.fired_by[index] = tuple(
                        [
                            task_run_ref(upstream.name, inst.index, inst.executions[-1].attempt)
                            for inst in instances
                            if inst.executions
                        ]
                    )
        elif isinstance(trigger, OnCondition):
            compiled = srt.cs.conditions[index]
            if compiled.expression.isolated:
                self.isolated.condition(srt, index)  # its verdict is recorded when it comes
                return
            values = expression_context(
                compiled.expression, compiled.refs, self.request, self.stages_ctx
            )
            state, detail = evaluate_condition(compiled.expression, values)
            note_condition(srt, index, detail)
        elif isinstance(trigger, Manual):
            state, detail = evaluate_manual(trigger, srt.approval)
        else:  # pragma: no cover - on_event triggers are not evaluated here
            return
        self.record(srt, index, state, detail, values)

    def record(
        self,
        srt: StageRun,
        index: int,
        state: TriggerState,
        detail: str,
        values: Mapping[str, Any] | None,
    ) -> None:
        """Set a trigger's new state, update the counters, report it.

        The report is :meth:`evaluated`'s record, built here rather than through that call (a
        frame and a keyword call, twice a stage of a chain): the same fields from the same
        values, in the same order, when the run is observed."""
        old = srt.states[index]
        if old is not state:
            if old is SATISFIED:
                srt.n_sat -= 1
            elif old is IMPOSSIBLE:
                srt.n_imp -= 1
            if state is SATISFIED:
                srt.n_sat += 1
            elif state is IMPOSSIBLE:
                srt.n_imp += 1
            srt.states[index] = state
            srt.ready = srt.readiness()  # the counters changed: so may the stage's readiness
        ctx = self.ctx
        if ctx.observed:
            # ``evaluated(...)``, inline: a frame and a keyword call less, twice a stage.
            cs = srt.cs
            ready = (srt.gate() if cs.has_events else srt.ready) is SATISFIED
            ctx.emit(
                trigger_evaluated(  # every field by position, in its order (``_makers``)
                    self.run_id,
                    self.name,  # pipeline
                    srt.name,  # stage
                    index,  # trigger_index
                    cs.stage.triggers[index].kind,  # trigger_type
                    cs.descriptions[index],  # description
                    state is SATISFIED,  # satisfied
                    ready,  # stage_ready
                    ctx.clock(),  # at
                    detail,
                    values,
                )
            )

    def update(self, srt: StageRun) -> None:
        """Act on a stage's trigger states: fire it, skip it, or ask for its approval."""
        if srt.final or self.stopping is not None:
            return
        cs = srt.cs
        if not cs.has_events:
            if srt.fired:
                return
            readiness = srt.ready
            if readiness is SATISFIED:
                if srt.status is StageStatus.PENDING:
                    self.consider(srt, self.ctx.clock())  # evaluates again, then fires
                else:
                    # Only StageStarted reads it: none for an unobserved run (its answer ()).
                    fired_by: tuple[TaskRunRef, ...] = ()
                    if self.ctx.observed:
                        refs = srt.fired_by
                        if len(srt.states) != 1:
                            fired_by = self.collect_fired_by(srt)
                        elif refs is not None:
                            # ``collect_fired_by``'s answer for the usual one-trigger stage,
                            # without its frame and list: ready, so its one trigger is satisfied.
                            fired_by = refs.get(cs.other_triggers[0], ())
                    self.fire(srt, None, fired_by, None)
            elif readiness is IMPOSSIBLE:
                self.skip(srt, self.impossible_reason(srt), self.ctx.clock())
            elif cs.stage.trigger_mode is ALL:
                self.maybe_request_approval(srt)
            return
        if cs.stage.trigger_mode is ALL:
            gate = srt.gate()
            if gate is IMPOSSIBLE:
                srt.events.clear()
                if not srt.instances:
                    self.skip(srt, self.impossible_reason(srt), self.ctx.clock())
                    return
            elif gate is SATISFIED:
                self.admit(srt)
            else:
                self.maybe_request_approval(srt)
        elif srt.states and not srt.fired and srt.ready is SATISFIED:
            if srt.status is StageStatus.PENDING:
                self.consider(srt, self.ctx.clock())  # evaluates again, then fires
                return
            srt.fired = True
            self.fire(srt, None, self.collect_fired_by(srt), None)
        self.check_event_stage(srt)

    def collect_fired_by(self, srt: StageRun) -> tuple[TaskRunRef, ...]:
        refs: list[TaskRunRef] = []
        fired_by = srt.fired_by
        if fired_by is None or not self.ctx.observed:
            return ()
        for index, state in srt.states.items():
            if state is SATISFIED:
                refs.extend(fired_by.get(index, ()))
        return tuple(refs)

    def impossible_reason(self, srt: StageRun) -> str:
        if srt.approval is ApprovalState.REJECTED:
            return "approval rejected"
        blocked = [srt.cs.descriptions[i] for i, s in srt.states.items() if s is IMPOSSIBLE]
        return "triggers can no longer fire: " + ", ".join(blocked)

    def publish(
        self, event_type: str, payload: Mapping[str, Any], source: TaskRunRef | None
    ) -> None:
        """Publish an event into the run and start the instances it fires."""
        if self.result is not None or self.stopping is not None:
            raise PipelineError(
                f"run {self.run_id} has finished; cannot publish {quote(event_type)}"
            )
        self.event_seq += 1
        now = self.ctx.clock()
        payload = dict(payload)
        if payload:  # before a listener or a record can carry a secret of it elsewhere
            remember_secrets(payload, self.run_id)
        if self.ctx.debugger is not None:  # event breakpoints mark this very payload
            self.ctx.debugger.published(self, event_type, payload)
        if self.ctx.observed:
            self.ctx.emit(
                EventPublished(
                    run_id=self.run_id,
                    pipeline=self.name,
                    event_type=event_type,
                    payload=payload,
                    event_id=self.event_seq,
                    at=now,
                    source=source,
                )
            )
        for stage_name, index in self.plan.event_listeners.get(event_type, ()):
            srt = self.stages[stage_name]
            if srt.final:
                continue
            if srt.status is StageStatus.PENDING:
                self.consider(srt, now)
                if srt.final:
                    continue
            compiled = srt.cs.filters[index]
            if self.isolated.has_events(srt) or (
                compiled is not None and compiled.expression.isolated
            ):
                self.isolated.event(srt, index, self.event_seq, payload, source)
                continue
            values = None
            if compiled is None:
                accepted, detail = True, "no filter"
            else:
                values = expression_context(
                    compiled.expression,
                    compiled.refs,
                    self.request,
                    self.stages_ctx,
                    {"event": payload},
                )
                accepted, detail = evaluate_filter(compiled.expression, values)
            self.filtered(
                srt,
                index,
                self.event_seq,
                payload,
                source=source,
                accepted=accepted,
                detail=detail,
                values=values,
            )
        for stage_name in self.plan.condition_stages:
            self.reevaluate_conditions(self.stages[stage_name])
        self.process()

    def filtered(
        self,
        srt: StageRun,
        index: int,
        seq: int,
        payload: Mapping[str, Any],
        *,
        source: TaskRunRef | None,
        accepted: bool,
        detail: str,
        values: Mapping[str, Any] | None,
    ) -> None:
        """Report event ``seq``'s filter verdict; an accepted event may start an instance."""
        if self.ctx.observed:
            ready = accepted and srt.gate() is SATISFIED
            self.evaluated(
                srt,
                index,
                SATISFIED if accepted else PENDING,
                f"event {seq}: {detail}",
                ready,
                values=values,
            )
        if accepted:
            srt.events.append((payload, source))
            if srt.cs.stage.trigger_mode is not ALL or srt.gate() is SATISFIED:
                self.admit(srt)

    def reevaluate_conditions(self, srt: StageRun) -> None:
        if srt.final or srt.fired or srt.status is StageStatus.PENDING:
            return
        triggers = srt.cs.stage.triggers
        for index in srt.cs.conditions:
            self.evaluate(srt, index, triggers[index])
        self.update(srt)
