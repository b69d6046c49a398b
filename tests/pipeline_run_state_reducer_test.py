"""run_state's reducer fed by hand with engine events: each event's effect on the record, the
orders and gaps an observer can meet (attached mid-run, events after the end, repeats), the
timings it derives, and what it redacts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from run_state_support import (
    PIPE,
    RUN,
    SECRET,
    end,
    finished,
    fold,
    hit,
    ids,
    queued,
    resumed,
    run_started,
    skipped,
    started,
    statuses,
    waiting,
)
from taskdaemon.pipeline.events import (
    EngineEvent,
    EventPublished,
    StageRetrying,
)
from taskdaemon.pipeline.run_state import RunState, apply
from taskdaemon.pipeline.state import RunStatus, StageStatus


def test_run_started_records_the_definition() -> None:
    """The run's identity, origin, stages in definition order, their loops, triggers (text and
    fields), upstream and mode, the edges and the definition hash all come from ``RunStarted``."""
    record = fold([run_started(12.5, started_by="cli", replay_of="run-0")]).record()
    assert (record.run_id, record.pipeline, record.status) == (RUN, "p", "running")
    assert (record.start, record.end, record.started_by, record.replay_of) == (
        12.5,
        None,
        "cli",
        "run-0",
    )
    assert record.definition_hash == PIPE.definition_hash
    assert [(e.source, e.target, e.label) for e in record.edges] == [
        (e.source, e.target, e.label) for e in PIPE.edges
    ]
    assert len(record.edges) == 3
    a, b, c = record.stages
    assert (a.name, a.loop, a.triggers, a.upstream, a.status) == (
        "a",
        "python",
        ("on run start",),
        (),
        "pending",
    )
    assert (b.name, b.loop, b.upstream, b.trigger_mode) == ("b", "shell", ("a",), "all")
    assert b.triggers == ("on completion of a", "on event item")
    assert [(t.kind, t.stage, t.success_only, t.event_type) for t in b.trigger_specs] == [
        ("on_completion", "a", True, None),
        ("on_event", None, None, "item"),
    ]
    assert (c.name, c.triggers, c.trigger_mode) == (
        "c",
        ("on completion of b (any result)",),
        "any",
    )
    assert (record.error, record.error_type) == (None, None)


def test_an_observer_attached_mid_run_starts_at_the_first_event_it_sees() -> None:
    """Begun from a later event, the state takes that event's run, pipeline name and time, keeps
    the stages in the order it met them, and has no definition nor origin."""
    state = fold([queued("b", 20.0), started("a", 21.0)])
    record = state.record()
    assert (record.run_id, record.pipeline, record.start) == (RUN, "p", 20.0)
    assert [s.name for s in record.stages] == ["b", "a"]
    assert (record.edges, record.definition_hash) == ((), None)
    assert (record.started_by, record.replay_of) == (None, None)
    assert statuses(state) == {"b": "queued", "a": "running"}


def test_a_state_made_directly_knows_nothing_yet() -> None:
    """A new ``RunState`` is a running run without start time, origin, stages or edges."""
    record = RunState(RUN, "p").record()
    assert (record.run_id, record.pipeline, record.status, record.start, record.end) == (
        RUN,
        "p",
        "running",
        0.0,
        None,
    )
    assert (record.started_by, record.replay_of, record.stages, record.edges) == (
        None,
        None,
        (),
        (),
    )


def test_stages_outside_the_definition_come_after_it() -> None:
    """A stage an event names that the definition lacks is listed after the defined ones."""
    state = fold([run_started(), started("zz", 11.0), started("b", 12.0)])
    assert [s.name for s in state.record().stages] == ["a", "b", "c", "zz"]


def test_a_stage_moves_through_waiting_queued_running_and_success() -> None:
    """Each lifecycle event shows in the live record: waiting, queued, running, success."""
    state = fold([run_started()])
    seen = []
    for event in (
        waiting("a", 11.0),
        queued("a", 12.0),
        started("a", 13.0, queued_at=12.0, considered_at=10.0, loop="shell"),
        finished("a", StageStatus.SUCCESS, 15.0),
    ):
        state.apply(event)
        seen.append(statuses(state)["a"])
    assert seen == ["waiting", "queued", "running", "success"]
    (attempt,) = state.record().stage("a").attempts
    assert (attempt.start, attempt.end, attempt.queue_time, attempt.trigger_wait) == (
        13.0,
        15.0,
        1.0,
        2.0,
    )
    assert state.record().stage("a").loop == "shell"  # the loop the execution ran in
    assert (attempt.error, attempt.error_type, attempt.inputs, attempt.outputs) == (
        None,
        None,
        None,
        None,
    )


def test_waiting_does_not_undo_a_later_status() -> None:
    """A ``StageWaiting`` for a stage already skipped leaves it skipped."""
    state = fold([run_started(), skipped("b", "upstream failed", 11.0)])
    state.apply(waiting("b", 12.0))
    assert statuses(state)["b"] == "skipped"


def test_queue_time_excludes_the_time_paused_and_is_never_negative() -> None:
    """Queue time is the wait from queued to start minus the pause; trigger wait runs from
    considered to queued; clock skew never makes either negative."""
    state = fold(
        [
            run_started(),
            started("a", 20.0, queued_at=12.0, considered_at=11.0, paused=5.0),
            started("b", 20.0, queued_at=21.0, considered_at=22.0),
        ]
    )
    (a,) = state.record().stage("a").attempts
    (b,) = state.record().stage("b").attempts
    assert (a.queue_time, a.trigger_wait) == (3.0, 1.0)
    assert (b.queue_time, b.trigger_wait) == (0.0, 0.0)


def test_a_failed_attempt_records_its_error() -> None:
    """A failure keeps the engine's message (redacted) and the exception's class as its type; a
    failure without a message says its type; a timeout's type is ``timeout``."""
    state = fold(
        [
            run_started(),
            started("a", 11.0),
            finished("a", StageStatus.FAILURE, 12.0, error=f"bad {SECRET}", exception=KeyError()),
            started("b", 11.0),
            finished("b", StageStatus.FAILURE, 12.0, error_type="Boom"),
            started("c", 11.0),
            finished("c", StageStatus.TIMEOUT, 12.0, error="took too long"),
        ]
    )
    record = state.record()
    (a,) = record.stage("a").attempts
    assert a.error_type == "KeyError"
    assert a.error is not None
    assert a.error.startswith("bad ")
    assert "hunter2" not in a.error
    (b,) = record.stage("b").attempts
    assert (b.status, b.error, b.error_type) == ("failure", "Boom", "Boom")
    (c,) = record.stage("c").attempts
    assert (c.status, c.error, c.error_type) == ("timeout", "took too long", "timeout")


def test_a_cancelled_attempt_says_why() -> None:
    """An attempt a stop cancelled says ``cancelled: <why>`` and carries the stop's reason and
    cause; the stage carries them too; an exception's message and type are kept otherwise."""
    state = fold(
        [
            run_started(),
            started("a", 11.0),
            finished(
                "a",
                StageStatus.CANCELLED,
                12.0,
                cancel_reason="stage b failed",
                cancel_cause="b",
                exception=RuntimeError("stopped"),
            ),
            started("b", 11.0),
            finished(
                "b", StageStatus.CANCELLED, 12.0, exception=RuntimeError(f"stopped by {SECRET}")
            ),
            started("c", 11.0),
            finished("c", StageStatus.CANCELLED, 12.0, cancel_reason="", cancel_cause=""),
        ]
    )
    record = state.record()
    (a,) = record.stage("a").attempts
    assert (a.error, a.error_type) == ("cancelled: stage b failed", "RuntimeError")
    assert (a.cancel_reason, a.cancel_cause) == ("stage b failed", "b")
    assert (record.stage("a").cancel_reason, record.stage("a").cancel_cause) == (
        "stage b failed",
        "b",
    )
    (b,) = record.stage("b").attempts
    assert b.error is not None
    assert b.error.startswith("stopped by password")
    assert "hunter2" not in b.error
    assert b.error_type == "RuntimeError"
    (c,) = record.stage("c").attempts
    assert (c.error, c.error_type, c.cancel_reason, c.cancel_cause) == (None, None, None, None)
    assert (record.stage("c").cancel_reason, record.stage("c").cancel_cause) == (None, None)


def test_a_finished_attempt_keeps_its_measurements() -> None:
    """CPU time and peak memory of the process tree reach the attempt."""
    state = fold(
        [
            run_started(),
            started("a", 11.0),
            finished("a", StageStatus.SUCCESS, 12.0, cpu_seconds=0.25, peak_memory_bytes=4096),
        ]
    )
    (a,) = state.record().stage("a").attempts
    assert (a.cpu_seconds, a.peak_memory_bytes) == (0.25, 4096)


def test_a_repeated_finish_changes_nothing() -> None:
    """The first ``StageFinished`` of an execution wins; a repeat of it is ignored."""
    state = fold(
        [
            run_started(),
            started("a", 11.0),
            finished("a", StageStatus.SUCCESS, 12.0),
            finished("a", StageStatus.FAILURE, 13.0, error="late"),
        ]
    )
    (a,) = state.record().stage("a").attempts
    assert (a.status, a.end, a.error) == ("success", 12.0, None)


def test_an_execution_cancelled_while_queued_never_ran() -> None:
    """Finished before it started, a queued execution leaves no attempt; the stage is skipped
    as not reached when the run ends."""
    state = fold([run_started(), queued("a", 11.0), finished("a", StageStatus.CANCELLED, 12.0)])
    assert state.record().stage("a").attempts == ()
    assert statuses(state)["a"] == "pending"
    state.apply(end(RunStatus.CANCELLED, 13.0))
    stage = state.record().stage("a")
    assert (stage.status, stage.skip_reason) == (
        "skipped",
        "not reached: the run ended (cancelled)",
    )


def test_an_execution_a_stop_cancelled_while_paused_before_its_start_is_cancelled() -> None:
    """Paused before its start, then cancelled by a stop: the stage was reached and reads
    ``cancelled`` at once and after the run's end, with no attempt and no skip reason."""
    state = fold(
        [
            run_started(),
            queued("a", 11.0),
            hit("a", 11.0),
            resumed("a", 12.0, 1.0, action="cancel"),
            finished("a", StageStatus.CANCELLED, 12.0),
        ]
    )
    assert statuses(state)["a"] == "cancelled"
    state.apply(end(RunStatus.CANCELLED, 13.0))
    stage = state.record().stage("a")
    assert ("cancelled", (), None) == (stage.status, stage.attempts, stage.skip_reason)


def test_an_execution_started_before_the_observer_is_kept() -> None:
    """A finish whose start the state never saw becomes an attempt with what is known."""
    state = fold([finished("b", StageStatus.FAILURE, 30.0, instance=2, attempt=3)])
    (b,) = state.record().stage("b").attempts
    assert (b.task_run_id, b.instance, b.attempt, b.status) == ("b.2.3", 2, 3, "failure")
    assert (b.start, b.end, b.error_type) == (30.0, 30.0, "_OTHER")


def test_a_retry_shows_until_the_next_attempt_is_queued() -> None:
    """A failed attempt that will be retried reads ``retrying`` until the next one is queued,
    then ``queued``; both attempts are kept in order."""
    state = fold(
        [
            run_started(),
            started("a", 11.0),
            finished("a", StageStatus.FAILURE, 12.0, will_retry=True),
        ]
    )
    assert statuses(state)["a"] == "retrying"
    state.apply(queued("a", 13.0, attempt=2))
    assert statuses(state)["a"] == "queued"
    state.apply(started("a", 14.0, attempt=2))
    state.apply(finished("a", StageStatus.SUCCESS, 15.0, attempt=2))
    record = state.record().stage("a")
    assert record.status == "success"
    assert [(x.attempt, x.status) for x in record.attempts] == [(1, "failure"), (2, "success")]


def test_stage_retrying_marks_the_stage_retrying() -> None:
    """``StageRetrying`` alone (no ``will_retry`` on the finish) also reads ``retrying``."""
    state = fold(
        [
            run_started(),
            started("a", 11.0),
            finished("a", StageStatus.FAILURE, 12.0),
        ]
    )
    assert statuses(state)["a"] == "failure"
    state.apply(
        StageRetrying(**ids("a", 0, 1), delay=1.0, error="bad", error_type="RuntimeError", at=12.0)
    )
    assert statuses(state)["a"] == "retrying"


def test_a_retry_of_another_instance_is_not_ended_by_this_ones_queue() -> None:
    """Queueing instance 1's next attempt ends instance 1's retry only, not instance 0's."""
    state = fold(
        [
            run_started(),
            started("a", 11.0, instance=0),
            started("a", 11.0, instance=1),
            finished("a", StageStatus.FAILURE, 12.0, instance=0, will_retry=True),
            finished("a", StageStatus.FAILURE, 12.0, instance=1, will_retry=True),
            queued("a", 13.0, instance=1, attempt=2),
            started("a", 14.0, instance=1, attempt=2),
            finished("a", StageStatus.SUCCESS, 15.0, instance=1, attempt=2),
        ]
    )
    assert statuses(state)["a"] == "retrying"


def test_attempts_are_listed_in_start_order() -> None:
    """Attempts are ordered by start time, then instance, then attempt, whatever the order of
    their events."""
    state = fold(
        [
            run_started(),
            started("a", 13.0, instance=0, attempt=2),
            started("a", 12.0, instance=2),
            started("a", 12.0, instance=1, attempt=3),
            started("a", 12.0, instance=1, attempt=2),
        ]
    )
    assert [(x.instance, x.attempt) for x in state.record().stage("a").attempts] == [
        (1, 2),
        (1, 3),
        (2, 1),
        (0, 2),
    ]


def test_two_attempts_are_listed_in_start_order() -> None:
    """Two attempts whose starts arrive out of order are still listed by start time."""
    state = fold([run_started(), started("a", 12.0, instance=1), started("a", 11.0, instance=0)])
    assert [x.instance for x in state.record().stage("a").attempts] == [0, 1]


def fan_out_status(events: Iterable[EngineEvent]) -> str:
    return statuses(fold([run_started(), *events]))["a"]


def test_a_fan_out_stage_reads_as_its_most_pressing_instance() -> None:
    """Instances in different states (one retrying, one held at a breakpoint before it starts,
    one queued, one running) give the stage the status that comes first in the precedence."""
    retry_0 = [started("a", 11.0), finished("a", StageStatus.FAILURE, 12.0, will_retry=True)]
    held_1 = [queued("a", 12.0, instance=1), hit("a", 12.5, instance=1)]
    assert fan_out_status([*retry_0, *held_1]) == "paused"
    assert fan_out_status([*retry_0, queued("a", 12.0, instance=1)]) == "retrying"
    assert fan_out_status([*retry_0, started("a", 12.0, instance=2)]) == "running"
    assert fan_out_status([started("a", 11.0, instance=3), queued("a", 11.0, instance=4)]) == (
        "running"
    )
    assert fan_out_status([queued("a", 11.0, instance=3), queued("a", 11.0, instance=4)]) == (
        "queued"
    )


def test_a_stage_that_runs_after_a_skip_has_no_skip_reason() -> None:
    """A stage skipped first (e.g. one instance skipped at a breakpoint) and then run reads as
    its attempts say, with no skip reason."""
    state = fold([run_started(), skipped("a", "skipped by alice", 11.0)])
    state.apply(started("a", 12.0, instance=1))
    stage = state.record().stage("a")
    assert (stage.status, stage.skip_reason) == ("running", None)


def test_the_first_skip_reason_wins_and_a_stage_that_ran_is_not_skipped() -> None:
    """A skipped stage keeps its first reason and the stop that caused it; a skip of a stage
    with attempts changes nothing."""
    state = fold(
        [
            run_started(),
            skipped(
                "b", "upstream a failed", 11.0, cancel_reason="stage a failed", cancel_cause="a"
            ),
            skipped("b", "second reason", 12.0),
            started("c", 11.0),
            finished("c", StageStatus.SUCCESS, 12.0),
            skipped("c", "too late", 13.0),
            skipped("a", "no cause", 13.0, cancel_reason="", cancel_cause=""),
        ]
    )
    record = state.record()
    b = record.stage("b")
    assert (b.status, b.skip_reason, b.cancel_reason, b.cancel_cause) == (
        "skipped",
        "upstream a failed",
        "stage a failed",
        "a",
    )
    c = record.stage("c")
    assert (c.status, c.skip_reason) == ("success", None)
    a = record.stage("a")
    assert (a.status, a.skip_reason, a.cancel_reason, a.cancel_cause) == (
        "skipped",
        "no cause",
        None,
        None,
    )
    state.apply(end(RunStatus.SUCCESS))
    assert state.record().stage("b").skip_reason == "upstream a failed"


def test_the_end_of_a_run_closes_what_is_open() -> None:
    """At the run's end open attempts are cancelled at its time, queued and paused marks go,
    a stage caught waiting for its retry is cancelled (as the engine ends it; its failed
    attempt stays a failure), and stages never reached are skipped with the run's status as
    the reason."""
    state = fold(
        [
            run_started(),
            started("a", 11.0, instance=0),
            queued("a", 11.0, instance=1),
            started("b", 11.0),
            finished("b", StageStatus.FAILURE, 12.0, will_retry=True),
            hit("c", 12.0),
        ]
    )
    assert statuses(state) == {"a": "running", "b": "retrying", "c": "paused"}
    state.apply(end(RunStatus.CANCELLED, 40.0))
    record = state.record()
    assert (record.status, record.end, record.error, record.error_type) == (
        "cancelled",
        40.0,
        None,
        None,
    )
    (a,) = record.stage("a").attempts
    assert (a.status, a.end, a.error) == ("cancelled", 40.0, None)
    assert record.stage("a").status == "cancelled"
    assert record.stage("b").status == "cancelled"
    assert [a.status for a in record.stage("b").attempts] == ["failure"]
    c = record.stage("c")
    assert (c.status, c.skip_reason) == ("skipped", "not reached: the run ended (cancelled)")
    assert state.finished


def test_a_failed_run_records_its_error_redacted() -> None:
    """A failed run keeps the engine's message, redacted, and its type; without them it says
    ``_OTHER``."""
    state = fold([run_started(), end(RunStatus.FAILURE, error=f"a: {SECRET}", error_type="E")])
    record = state.record()
    assert record.error_type == "E"
    assert record.error is not None
    assert record.error.startswith("a: ")
    assert "hunter2" not in record.error
    bare = fold([run_started(), end(RunStatus.FAILURE)]).record()
    assert (bare.status, bare.error, bare.error_type) == ("failure", "_OTHER", "_OTHER")


def test_a_successful_run_has_no_error() -> None:
    """The end of a run that did not fail records no error, whatever the event carries."""
    record = fold([run_started(), end(RunStatus.SUCCESS, error="x", error_type="E")]).record()
    assert (record.status, record.error, record.error_type) == ("success", None, None)


def test_payloads_are_encoded_and_redacted_when_an_encoder_is_given() -> None:
    """With an encoder, inputs and a success's outputs are its text, redacted; a failure keeps
    no outputs; without an encoder no payload is kept."""
    seen: list[Mapping[str, Any]] = []

    def encode(value: Mapping[str, Any]) -> str | None:
        seen.append(value)
        return None if "none" in value else f"{dict(value)} {SECRET}"

    events = [
        run_started(),
        started("a", 11.0, inputs={"x": 1}),
        finished("a", StageStatus.SUCCESS, 12.0, outputs={"y": 2}),
        started("b", 11.0, inputs={"none": 1}),
        finished("b", StageStatus.FAILURE, 12.0, outputs={"z": 3}),
    ]
    record = fold(events, payloads=encode).record()
    (a,) = record.stage("a").attempts
    assert a.inputs is not None
    assert a.inputs.startswith("{'x': 1} password")
    assert a.outputs is not None
    assert a.outputs.startswith("{'y': 2} password")
    assert "hunter2" not in a.inputs + a.outputs
    (b,) = record.stage("b").attempts
    assert (b.inputs, b.outputs) == (None, None)
    assert {"z": 3} not in seen
    plain = fold(events).record()
    assert [(x.inputs, x.outputs) for s in plain.stages for x in s.attempts] == [(None, None)] * 2


def test_events_the_reducer_does_not_use_change_nothing() -> None:
    """An event of another kind (a published event) leaves the record as it was."""
    state = fold([run_started(), started("a", 11.0)])
    before = state.record()
    assert (
        state.apply(
            EventPublished(
                run_id=RUN, pipeline="p", event_type="item", payload={}, event_id=1, at=12.0
            )
        )
        is state
    )
    assert state.record() == before


def test_apply_folds_into_the_state_it_is_given() -> None:
    """``apply`` returns the state it was given, changed, and records are frozen snapshots."""
    state = fold([run_started()])
    snapshot = state.record()
    assert apply(state, started("a", 11.0)) is state
    assert snapshot.stage("a").status == "pending"
    assert state.record().stage("a").status == "running"
    assert not state.finished


def test_a_retry_has_no_trigger_wait() -> None:
    """A retry's start carries the first attempt's ``considered_at``: its trigger wait is
    absent (it waited for a backoff), as on its span, not the time since the first attempt."""
    state = fold(
        [
            run_started(),
            started("a", 12.0, queued_at=12.0, considered_at=11.0),
            started("a", 30.0, attempt=2, queued_at=29.0, considered_at=11.0),
        ]
    )
    first, retry = state.record().stage("a").attempts
    assert ((1, 1.0), (2, None)) == (
        (first.attempt, first.trigger_wait),
        (retry.attempt, retry.trigger_wait),
    )
