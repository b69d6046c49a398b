"""reconstruct_run: the status of a run, of its stages and of their attempts read from spans
alone, for runs that ended, still run, were interrupted, cancelled or paused."""

from __future__ import annotations

import pytest

from pipeline_tracking_support import T0, S, example_spans, plan_attempt, replaced, root_span
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import (
    SpanEventRecord,
    SpanRecord,
    reconstruct_run,
)
from taskdaemon.pipeline.tracking.reconstruct import stage_status_of


def test_open_root_reads_running_or_interrupted() -> None:
    """Without an ended run span the run is running, or interrupted when the caller says so."""
    spans = [s for s in example_spans() if s.parent_span_id is not None]
    assert (
        reconstruct_run(spans).status,
        reconstruct_run(spans, interrupted=True).status,
        reconstruct_run(spans).end,
    ) == ("running", "interrupted", None)


def test_open_stage_span_is_interrupted_with_the_run() -> None:
    """An open stage span is an interrupted attempt when the run is interrupted."""
    spans = example_spans()
    open_plan = next(s for s in spans if s.name == "plan")
    spans = [replace(open_plan, end_ns=None) if s is open_plan else s for s in spans]
    run = reconstruct_run(spans, interrupted=True)
    assert (
        run.stage("plan").status,
        run.stage("plan").attempts[0].status,
    ) == ("interrupted", "interrupted")


def _open_run_waiting_on(*approval_events: tuple[str, int]) -> list[SpanRecord]:
    """The example run with its run span open, the deploy stage not started, and the given
    (event name, time) approval events for deploy on the run span."""
    spans = example_spans()
    root = next(s for s in spans if s.parent_span_id is None)
    events = tuple(
        SpanEventRecord(name, T0 + at, {t.CICD_TASK_NAME: "deploy"}) for name, at in approval_events
    )
    open_root = replace(root, end_ns=None, events=events)
    return [open_root] + [s for s in spans if s is not root and s.name != "deploy"]


def test_stage_awaiting_approval_in_a_running_run_is_waiting() -> None:
    """A stage the run span has an unanswered approval request for reads as waiting; once the
    request is answered (and the stage not yet started) it is pending again."""
    waiting = reconstruct_run(_open_run_waiting_on((t.EVENT_APPROVAL_REQUESTED, 5 * S)))
    answered = reconstruct_run(
        _open_run_waiting_on(
            (t.EVENT_APPROVAL_RESOLVED, 6 * S), (t.EVENT_APPROVAL_REQUESTED, 5 * S)
        )
    )
    assert (waiting.status, waiting.stage("deploy").status, answered.stage("deploy").status) == (
        "running",
        "waiting",
        "pending",
    )


@pytest.mark.parametrize(
    ("result", "status_code", "expected"),
    [
        (t.RESULT_SUCCESS, "OK", "success"),
        (t.RESULT_FAILURE, "ERROR", "failure"),
        (t.RESULT_ERROR, "ERROR", "failure"),
        (t.RESULT_TIMEOUT, "ERROR", "failure"),
        (t.RESULT_CANCELLATION, "ERROR", "cancelled"),
        (t.RESULT_CANCELLATION, "UNSET", "cancelled"),
        (t.RESULT_SKIP, "UNSET", "cancelled"),
        (None, "ERROR", "failure"),
        (None, "UNSET", "success"),
        ("no-such-result", "ERROR", "failure"),
        ("no-such-result", "OK", "success"),
    ],
)
def test_ended_run_status_follows_the_run_result(
    result: str | None, status_code: str, expected: str
) -> None:
    """An ended run reads its ``cicd.pipeline.result`` (a cancelled run reads cancelled, never
    failure); without a known result, the run span's status code decides."""
    spans = example_spans()
    root = root_span(spans)
    attributes = {k: v for k, v in root.attributes.items() if k != t.CICD_PIPELINE_RESULT}
    if result is not None:
        attributes[t.CICD_PIPELINE_RESULT] = result
    ended = replace(root, attributes=attributes, status_code=status_code)
    run = reconstruct_run(replaced(spans, root, ended))
    assert (expected, (T0 + 7 * S) / 1e9) == (run.status, run.end)


def test_cancelled_run_written_by_the_sdk_reads_cancelled() -> None:
    """A run whose run span ended with result ``cancellation`` is rebuilt as cancelled."""
    run = reconstruct_run(example_spans(result=t.RESULT_CANCELLATION))
    assert ("cancelled", "StageFailedError") == (run.status, run.error_type)


@pytest.mark.parametrize(
    ("result", "status_code", "expected"),
    [
        (t.RESULT_SUCCESS, "ERROR", "success"),
        (t.RESULT_FAILURE, "OK", "failure"),
        (t.RESULT_ERROR, "OK", "failure"),
        (t.RESULT_TIMEOUT, "OK", "timeout"),
        (t.RESULT_CANCELLATION, "OK", "cancelled"),
        (t.RESULT_SKIP, "OK", "skipped"),
        (None, "ERROR", "failure"),
        (None, "OK", "success"),
        ("no-such-result", "ERROR", "failure"),
    ],
)
def test_ended_attempt_status_follows_the_task_result(
    result: str | None, status_code: str, expected: str
) -> None:
    """An ended attempt without ``taskdaemon.stage.status`` reads its mapped task result, and
    without a known one its span status code."""
    spans = example_spans()
    build2 = next(s for s in spans if s.name == "build" and s.attributes[t.STAGE_ATTEMPT] == 2)
    attributes = {k: v for k, v in build2.attributes.items() if k != t.CICD_TASK_RUN_RESULT}
    if result is not None:
        attributes[t.CICD_TASK_RUN_RESULT] = result
    changed = replace(build2, attributes=attributes, status_code=status_code)
    build = reconstruct_run(replaced(spans, build2, changed)).stage("build")
    assert (expected, expected) == (build.attempts[-1].status, build.status)


def test_finer_stage_status_beats_the_task_result() -> None:
    """``taskdaemon.stage.status`` names the attempt's status even where the task result says
    otherwise; an empty one is ignored."""
    spans = example_spans()
    plan = next(s for s in spans if s.name == "plan")
    timed_out = replace(plan, attributes={**plan.attributes, t.STAGE_STATUS: "timeout"})
    empty = replace(plan, attributes={**plan.attributes, t.STAGE_STATUS: ""})
    assert ("timeout", "success") == (
        reconstruct_run(replaced(spans, plan, timed_out)).stage("plan").status,
        reconstruct_run(replaced(spans, plan, empty)).stage("plan").status,
    )


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        ([(0, "success"), (1, "running"), (2, "interrupted")], "running"),
        ([(0, "failure"), (1, "interrupted")], "interrupted"),
        ([(0, "timeout"), (1, "failure"), (2, "cancelled")], "failure"),
        ([(0, "cancelled"), (1, "timeout")], "timeout"),
        ([(0, "success"), (1, "cancelled")], "cancelled"),
        ([(0, "failure"), (0, "success")], "success"),
        ([(0, "success"), (1, "skipped")], "skipped"),
        ([], "skipped"),
    ],
)
def test_stage_status_precedence(attempts: list[tuple[int, str]], expected: str) -> None:
    """Each instance's last attempt counts; running > interrupted > failure > timeout >
    cancelled, else the last instance's status; no attempt at all is skipped."""
    assert expected == stage_status_of(attempts)


def test_open_stage_span_in_a_running_run_is_running() -> None:
    """An open stage span reads running while nobody says the writer is gone."""
    spans = example_spans()
    root = root_span(spans)
    spans = replaced(spans, root, replace(root, end_ns=None))
    attempt = plan_attempt(spans, end_ns=None)
    assert ("running", None) == (attempt.status, attempt.end)


def test_cancelled_attempt_says_why() -> None:
    """A cancelled attempt without an error reads ``cancelled: <reason>`` and keeps the reason
    and the causing stage, and so does one a replay fed from a cancelled one (``replayed``);
    an error it has is kept; a reason on an attempt that was not cancelled is kept but makes
    no error."""
    spans = example_spans()
    cancel = {
        t.STAGE_STATUS: "cancelled",
        t.STAGE_CANCEL_REASON: "stage 'x' failed",
        t.STAGE_CANCEL_CAUSE: "x",
    }
    cancelled = plan_attempt(spans, attributes=cancel)
    with_error = plan_attempt(spans, attributes={**cancel, t.STAGE_ERROR_MESSAGE: "killed"})
    not_cancelled = plan_attempt(
        spans, attributes={**cancel, t.STAGE_STATUS: "success", t.STAGE_CANCEL_CAUSE: None}
    )
    fed = plan_attempt(
        spans,
        attributes={**cancel, t.STAGE_STATUS: "replayed", t.STAGE_REPLAYED_STATUS: "cancelled"},
    )
    assert [
        (cancelled.status, cancelled.error, cancelled.cancel_reason, cancelled.cancel_cause),
        (with_error.error, with_error.cancel_reason),
        (not_cancelled.error, not_cancelled.cancel_reason, not_cancelled.cancel_cause),
        (fed.status, fed.error, fed.cancel_reason, fed.cancel_cause),
    ] == [
        ("cancelled", "cancelled: stage 'x' failed", "stage 'x' failed", "x"),
        ("killed", "stage 'x' failed"),
        (None, "stage 'x' failed", None),
        ("replayed", "cancelled: stage 'x' failed", "stage 'x' failed", "x"),
    ]


def _without_deploy_spans(*, root_end: bool, loops: tuple[str, ...] = ()) -> list[SpanRecord]:
    """The example run without any deploy span; the run span ended or open, and declaring
    ``loops`` as the stages' loop types."""
    spans = [s for s in example_spans() if s.name != "deploy"]
    root = root_span(spans)
    attributes = {**root.attributes, t.PIPELINE_STAGE_LOOPS: loops}
    changed = replace(root, attributes=attributes, end_ns=root.end_ns if root_end else None)
    return replaced(spans, root, changed)


def test_stage_without_spans_reads_by_how_the_run_ended() -> None:
    """A declared stage without any span is skipped ("never ran") in an ended run, skipped
    ("run interrupted") in an interrupted one, pending in a running one; its loop type comes
    from the run span's list. A stage that ran has no skip reason."""
    loops = ("plan", "command", "phase", "command")
    ended = reconstruct_run(_without_deploy_spans(root_end=True, loops=loops))
    interrupted = reconstruct_run(_without_deploy_spans(root_end=False), interrupted=True)
    running = reconstruct_run(_without_deploy_spans(root_end=False))
    assert [
        (ended.stage("deploy").status, ended.stage("deploy").skip_reason),
        (interrupted.stage("deploy").status, interrupted.stage("deploy").skip_reason),
        (running.stage("deploy").status, running.stage("deploy").skip_reason),
        (ended.stage("deploy").loop, running.stage("deploy").loop),
        (ended.stage("plan").skip_reason, ended.stage("plan").status),
    ] == [
        ("skipped", "never ran"),
        ("skipped", "run interrupted"),
        ("pending", None),
        ("command", ""),
        (None, "success"),
    ]


def test_cancelled_stage_takes_the_reason_of_its_cancelled_attempt() -> None:
    """A stage whose attempt a stop cancelled carries that attempt's reason and cause."""
    stage_attrs = {
        t.STAGE_STATUS: "cancelled",
        t.STAGE_CANCEL_REASON: "stage 'x' failed",
        t.STAGE_CANCEL_CAUSE: "x",
    }
    spans = example_spans()
    plan = next(s for s in spans if s.name == "plan")
    changed = replace(plan, attributes={**plan.attributes, **stage_attrs})
    stage = reconstruct_run(replaced(spans, plan, changed)).stage("plan")
    assert ("cancelled", "stage 'x' failed", "x") == (
        stage.status,
        stage.cancel_reason,
        stage.cancel_cause,
    )


def _plan_left_to_retry(*, run_ended: bool, interrupted: bool = False) -> str:
    """The plan stage's status once its one attempt failed with ``will_retry`` and no attempt
    followed, in the example run (its run span ended cancelled, or left open)."""
    spans = example_spans(result="cancellation")
    plan = next(s for s in spans if s.name == "plan")
    failed = {**plan.attributes, t.STAGE_STATUS: "failure", t.STAGE_WILL_RETRY: True}
    spans = replaced(spans, plan, replace(plan, attributes=failed, status_code="ERROR"))
    if not run_ended:
        root = root_span(spans)
        spans = replaced(spans, root, replace(root, end_ns=None))
    return reconstruct_run(spans, interrupted=interrupted).stage("plan").status


def test_a_stage_stopped_while_waiting_to_retry_reads_cancelled() -> None:
    """A stage whose last attempt failed and was to be retried, in a run that ended, was
    stopped in its backoff: it reads ``cancelled``, as the engine ends it (its attempt stays a
    failure). It read ``failure``, while ``taskdaemon run`` said ``cancelled``."""
    assert "cancelled" == _plan_left_to_retry(run_ended=True)


def test_a_stage_waiting_to_retry_in_a_running_run_reads_retrying() -> None:
    """The same stage in a run still going is waiting for its next attempt: ``retrying``."""
    assert "retrying" == _plan_left_to_retry(run_ended=False)


def test_a_stage_waiting_to_retry_in_an_interrupted_run_reads_interrupted() -> None:
    """The same stage in a run whose writer is gone reads ``interrupted``, as the run does."""
    assert "interrupted" == _plan_left_to_retry(run_ended=False, interrupted=True)


def _deploy_resumed(action: str, task_run_id: str = "deploy.0.1") -> list[SpanRecord]:
    """The example run (deploy skipped, never started) with a ``breakpoint.resumed`` event for
    deploy's execution ``task_run_id`` on the run span, whose action is ``action``."""
    spans = example_spans()
    root = root_span(spans)
    event = SpanEventRecord(
        t.EVENT_BREAKPOINT_RESUMED,
        T0 + 5 * S,
        {
            t.CICD_TASK_NAME: "deploy",
            t.CICD_TASK_RUN_ID: task_run_id,
            t.BREAKPOINT_ACTION: action,
            t.BREAKPOINT_BY: "engine",
            t.BREAKPOINT_PAUSED: 1.0,
        },
    )
    return replaced(spans, root, replace(root, events=(*root.events, event)))


def test_a_stage_a_stop_cancelled_while_paused_before_its_start_is_cancelled() -> None:
    """An execution without a span whose pause a stop ended (``breakpoint.resumed``, action
    ``cancel``) was reached: its stage reads ``cancelled``, with no attempt or skip reason."""
    deploy = reconstruct_run(_deploy_resumed("cancel")).stage("deploy")
    assert ("cancelled", (), None) == (deploy.status, deploy.attempts, deploy.skip_reason)


@pytest.mark.parametrize(
    ("action", "task_run_id"), [("continue", "deploy.0.1"), ("cancel", "deploy.x.1")]
)
def test_a_pause_resumed_otherwise_leaves_a_stage_without_spans_skipped(
    action: str, task_run_id: str
) -> None:
    """A pause ended by anything but a stop, or naming no execution of the stage, changes
    nothing: the stage keeps its skip span's status and reason."""
    deploy = reconstruct_run(_deploy_resumed(action, task_run_id)).stage("deploy")
    assert ("skipped", "condition false") == (deploy.status, deploy.skip_reason)
