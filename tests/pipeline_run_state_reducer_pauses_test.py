"""run_state's reducer fed by hand with the events of a run that waits: approvals awaited until
answered, and breakpoints that pause an execution, its stage and the run until resumed."""

from __future__ import annotations

from run_state_support import (
    RUN,
    end,
    finished,
    fold,
    hit,
    queued,
    resumed,
    run_started,
    started,
    statuses,
)
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
)
from taskdaemon.pipeline.records import PausedBeforeStart
from taskdaemon.pipeline.state import RunStatus, StageStatus


def test_approvals_are_awaited_until_answered_and_never_after_the_end() -> None:
    """A requested approval is awaited and the stage waits; an answer ends the wait; a run that
    ended awaits nothing."""
    state = fold(
        [
            run_started(),
            ApprovalRequested(run_id=RUN, pipeline="p", stage="a", at=11.0, timeout=5.0),
        ]
    )
    state.apply(ApprovalRequested(run_id=RUN, pipeline="p", stage="c", at=11.0))
    assert state.awaiting_approval == {"a", "c"}
    assert statuses(state)["a"] == "waiting"
    state.apply(
        ApprovalResolved(run_id=RUN, pipeline="p", stage="a", approved=True, at=12.0, by="alice")
    )
    assert state.awaiting_approval == {"c"}
    state.apply(end(RunStatus.CANCELLED))
    assert state.awaiting_approval == frozenset()


def test_a_breakpoint_pauses_the_execution_and_the_run_until_resumed() -> None:
    """Paused at a breakpoint, the attempt, stage and run read ``paused``; resumed, they run on
    and the attempt carries the seconds paused, summed over its pauses."""
    state = fold([run_started(), started("a", 11.0), hit("a", 12.0)])
    record = state.record()
    assert (record.status, record.stage("a").status) == ("paused", "paused")
    assert record.stage("a").attempts[0].status == "paused"
    state.apply(resumed("a", 14.0, 2.0))
    record = state.record()
    assert (record.status, record.stage("a").status) == ("running", "running")
    assert record.stage("a").attempts[0].paused_time == 2.0
    state.apply(hit("a", 15.0))
    state.apply(resumed("a", 16.5, 1.5))
    state.apply(finished("a", StageStatus.SUCCESS, 17.0))
    (a,) = state.record().stage("a").attempts
    assert (a.status, a.paused_time) == ("success", 3.5)


def test_a_run_stays_paused_while_any_execution_is() -> None:
    """With two executions paused, resuming one leaves the run paused; resuming both runs it."""
    state = fold([run_started(), started("a", 11.0), started("b", 11.0), hit("a", 12.0)])
    state.apply(hit("b", 12.0))
    state.apply(resumed("a", 13.0, 1.0))
    assert (state.record().status, statuses(state)["a"], statuses(state)["b"]) == (
        "paused",
        "running",
        "paused",
    )
    state.apply(resumed("b", 14.0, 2.0))
    assert state.record().status == "running"


def test_a_pause_before_the_start_is_carried_to_the_attempt() -> None:
    """An execution held at a breakpoint before it starts makes its stage ``paused``; the time
    it spent there is the attempt's paused time once it starts."""
    state = fold([run_started(), queued("a", 11.0), hit("a", 11.0)])
    assert statuses(state)["a"] == "paused"
    state.apply(resumed("a", 15.0, 4.0))
    assert statuses(state)["a"] == "queued"
    state.apply(started("a", 16.0, queued_at=11.0, paused=4.0))
    (a,) = state.record().stage("a").attempts
    assert (a.paused_time, a.queue_time) == (4.0, 1.0)


def test_a_pause_before_the_start_says_since_when_and_where_until_it_ends() -> None:
    """An execution held before it starts has no attempt to show it: its stage record carries
    the pause, since when and the breakpoint's reason, until it is resumed or the run ends. A
    pause after a start (at a failure) is its open attempt's, not carried again."""
    state = fold([run_started(), queued("a", 11.0), hit("a", 11.5), started("b", 11.0)])
    state.apply(hit("b", 12.0))
    held = (PausedBeforeStart("a.0.1", 0, 1, 11.5, "step"),)
    assert (held, ()) == tuple(state.record().stage(s).paused_before_start for s in "ab")
    state.apply(resumed("a", 15.0, 3.5))
    assert () == state.record().stage("a").paused_before_start
    state.apply(hit("a", 16.0, attempt=2))
    assert ("a.0.2",) == tuple(p.task_run_id for p in state.record().stage("a").paused_before_start)
    state.apply(end(RunStatus.CANCELLED, 17.0))
    assert () == state.record().stage("a").paused_before_start


def test_a_paused_stage_with_an_ended_attempt_is_paused() -> None:
    """A stage whose first instance succeeded and whose next one is held before it starts
    reads ``paused``; the ended attempt keeps its own status."""
    state = fold(
        [
            run_started(),
            started("a", 11.0, instance=0),
            finished("a", StageStatus.SUCCESS, 12.0, instance=0),
            hit("a", 12.0, attempt=1),  # a.0.1 ended: the pause is of a later execution
        ]
    )
    assert statuses(state)["a"] == "paused"
    assert state.record().stage("a").attempts[0].status == "success"


def test_a_breakpoint_after_the_end_does_not_reopen_the_run() -> None:
    """A late ``BreakpointHit`` after ``RunFinished`` leaves the run's final status."""
    state = fold([run_started(), end(RunStatus.SUCCESS), hit("a", 60.0)])
    assert state.record().status == "success"


def test_a_resume_without_a_pause_leaves_the_run_status() -> None:
    """A resume while the run is not paused leaves its status as it is."""
    state = fold([run_started(), started("a", 11.0), resumed("a", 12.0, 0.5)])
    assert state.record().status == "running"
    state.apply(end(RunStatus.SUCCESS, 13.0))
    state.apply(resumed("a", 14.0, 0.5))
    assert state.record().status == "success"
