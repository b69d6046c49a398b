"""The books of one run's stages that ``run_state.RunState`` keeps as events arrive: each
execution's (:class:`AttemptBook`) and each stage's (:class:`StageBook`), with the frozen
records they give and their payloads masked again when a secret is learnt late. Split from
``run_state`` so that the reducer reads as the events it folds and this module as what a stage
is made of; the rules are docs/run-state.md's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import stage_status_of

if TYPE_CHECKING:  # readers of stored runs import this module: it must not load the engine's model
    # The engine imports this module for its status rules before its first stage starts; the
    # record classes are built only when a run is read (``frozen``, ``record``): imported there.
    from taskdaemon.pipeline.records import AttemptRecord, StageRecord, TriggerRecord

__all__ = ["AttemptBook", "StageBook", "again"]


class AttemptBook:
    """One execution's book, updated as its events arrive (``frozen`` gives its record).

    A plain slotted class, not a dataclass: ``runs list`` and ``runs show`` import this module,
    and ``dataclasses`` (with ``inspect``) would be its largest import."""

    # fmt: off
    __slots__ = ("attempt", "cancel_cause", "cancel_reason", "cpu_seconds", "end", "error",
        "error_type", "inputs", "instance", "outputs", "paused_since", "paused_time",
        "peak_memory_bytes", "queue_time", "start", "status", "task_run_id", "trigger_wait")
    # fmt: on

    def __init__(
        self,
        task_run_id: str,
        instance: int,
        attempt: int,
        start: float,
        *,
        queue_time: float | None = None,
        trigger_wait: float | None = None,
        inputs: str | None = None,
        paused_time: float | None = None,
    ) -> None:
        self.task_run_id, self.instance = task_run_id, instance
        self.attempt, self.start = attempt, start
        self.queue_time, self.trigger_wait = queue_time, trigger_wait
        self.inputs, self.paused_time = inputs, paused_time
        self.status: str = StageStatus.RUNNING.value
        self.end: float | None = None
        self.cpu_seconds: float | None = None
        self.peak_memory_bytes: int | None = None
        self.outputs: str | None = None
        self.error: str | None = None
        self.error_type: str | None = None
        self.cancel_reason: str | None = None
        self.cancel_cause: str | None = None
        self.paused_since: float | None = None  # paused at its failure since (a hit's time)

    def mask_again(self) -> None:
        """Redact the texts kept again, with the values known as secrets now."""
        self.inputs, self.outputs = again(self.inputs), again(self.outputs)
        self.error = again(self.error)

    def frozen(self, paused: bool) -> AttemptRecord:
        from taskdaemon.pipeline.records import AttemptRecord  # noqa: PLC0415 - see the top

        held = paused and self.end is None
        status = StageStatus.PAUSED.value if held else self.status
        return AttemptRecord(
            task_run_id=self.task_run_id,
            instance=self.instance,
            attempt=self.attempt,
            status=status,
            start=self.start,
            end=self.end,
            queue_time=self.queue_time,
            trigger_wait=self.trigger_wait,
            cpu_seconds=self.cpu_seconds,
            peak_memory_bytes=self.peak_memory_bytes,
            inputs=self.inputs,
            outputs=self.outputs,
            error=self.error,
            error_type=self.error_type,
            cancel_reason=self.cancel_reason,
            cancel_cause=self.cancel_cause,
            paused_time=self.paused_time,
            paused_since=self.paused_since if held else None,
        )


class StageBook:
    """One stage's book, updated as its events arrive (a plain class, as ``AttemptBook``)."""

    # fmt: off
    __slots__ = ("attempts", "halted", "halted_cause", "held", "loop", "paused", "paused_time",
        "queued", "retrying", "seen_queued", "skip_cause", "skip_reason", "status", "stopped",
        "trigger_mode", "trigger_specs", "triggers", "upstream")
    # fmt: on

    def __init__(self) -> None:
        self.loop = ""
        self.status: str = (
            StageStatus.PENDING.value
        )  # before any attempt: pending, waiting, skipped
        self.attempts: dict[str, AttemptBook] = {}
        self.queued: set[str] = set()  # task run ids queued, not started
        self.seen_queued: set[str] = set()  # every task run id seen queued
        self.retrying: set[tuple[int, int]] = set()  # (instance, failed attempt)
        self.stopped: set[int] = set()  # instances the run's end caught waiting for a retry
        # task run id paused at a breakpoint -> (instance, attempt, since, reason) when paused
        # before its start (it has no attempt to show it: ``PausedBeforeStart``), else None
        self.paused: dict[str, tuple[int, int, float, str] | None] = {}
        # task run id -> (instance, status): ended while paused before its start
        self.halted: dict[str, tuple[int, str]] = {}
        # why a stop cancelled one of them (reason, cause): it has no attempt to say so
        self.halted_cause: tuple[str | None, str | None] = (None, None)
        self.paused_time: dict[str, float] = {}  # task run id -> seconds
        self.triggers: tuple[str, ...] = ()
        self.trigger_specs: tuple[TriggerRecord, ...] = ()  # as StageRecord.trigger_specs
        self.upstream: tuple[str, ...] = ()
        self.trigger_mode: str | None = None
        self.skip_reason: str | None = None
        self.skip_cause: tuple[str | None, str | None] = (None, None)  # a stop's reason, cause
        self.held: dict[int, bool] = {}  # trigger index -> whether its latest evaluation held

    def status_now(self, ordered: list[AttemptBook]) -> str:
        """The stage's status from its executions (fan-out stages have several); ``ordered``:
        its attempts in start order. A paused execution counts through ``paused``."""
        if not self.attempts and not self.halted:
            if self.status == StageStatus.SKIPPED:
                return self.status
            if self.paused:
                return StageStatus.PAUSED.value
            return StageStatus.QUEUED.value if self.queued else self.status
        pairs = [(a.instance, a.status) for a in ordered]
        if self.stopped:  # stopped in their backoff: cancelled, as the engine ends them
            last = {a.instance: a for a in ordered}
            pairs = [
                (a.instance, StageStatus.CANCELLED.value)
                if a.instance in self.stopped and last[a.instance] is a
                else (a.instance, a.status)
                for a in ordered
            ]
        # Reached (held at a breakpoint), then cancelled by a stop or skipped before it
        # started: the latest execution of its instance (``halted_executions``).
        pairs += self.halted.values()
        if self.paused:
            pairs.append((-1, StageStatus.PAUSED.value))  # an instance paused before it started
        if self.retrying:
            pairs.append((-2, StageStatus.RETRYING.value))
        if self.queued:
            pairs.append((-3, StageStatus.QUEUED.value))
        return stage_status_of(pairs)

    def mask_again(self) -> None:
        """Redact the texts kept again, with the values known as secrets now: the triggers
        (redacted at the run's start), a skip's and a pause's reason, the attempts' texts."""
        from taskdaemon.pipeline.record_fields import replace  # noqa: PLC0415 - rarely needed

        self.triggers = tuple(map(redact_text, self.triggers))
        self.trigger_specs = tuple(
            replace(
                spec,
                description=redact_text(spec.description),
                filter=again(spec.filter),
                expression=again(spec.expression),
            )
            for spec in self.trigger_specs
        )
        self.skip_reason = again(self.skip_reason)
        for task_run_id, held in self.paused.items():
            if held is not None:
                self.paused[task_run_id] = (*held[:3], redact_text(held[3]))
        for attempt in self.attempts.values():
            attempt.mask_again()

    def _ordered(self) -> list[AttemptBook]:
        # The order span reconstruction gives (start order); (instance, attempt) breaks ties.
        if len(self.attempts) < 2:
            return list(self.attempts.values())
        return sorted(self.attempts.values(), key=lambda a: (a.start, a.instance, a.attempt))

    def frozen(self, name: str) -> StageRecord:
        from taskdaemon.pipeline.records import (  # noqa: PLC0415
            StageRecord,
            paused_before_start,
            stage_cancel_cause,
            triggers_held,
        )

        ordered = self._ordered()
        attempts = tuple(a.frozen(a.task_run_id in self.paused) for a in ordered)
        cancel_reason, cancel_cause = stage_cancel_cause(attempts) if attempts else self.skip_cause
        if not (cancel_reason or cancel_cause):  # cancelled by a stop while paused, if it was
            cancel_reason, cancel_cause = self.halted_cause
        return StageRecord(
            name=name,
            loop=self.loop,
            status=self.status_now(ordered),
            attempts=attempts,
            triggers=self.triggers,
            trigger_specs=self.trigger_specs,
            triggers_held=() if attempts else triggers_held(self.held),
            upstream=self.upstream,
            skip_reason=None if attempts else self.skip_reason,
            trigger_mode=self.trigger_mode,
            cancel_reason=cancel_reason,
            cancel_cause=cancel_cause,
            paused_before_start=paused_before_start(self.paused) if self.paused else (),
        )


def again(text: str | None) -> str | None:
    """``text`` redacted once more (a secret may have been learnt since it was kept)."""
    return None if text is None else redact_text(text)
