"""PipelineMonitor spans of stages that do not simply succeed: failures under each strategy,
retries linked to the attempt before, timeouts, cancellations and skips, fed with engine event
records by hand."""

from __future__ import annotations

from opentelemetry.trace import StatusCode

from pipeline_monitor_support import (
    T0_NS,
    Feed,
    Telemetry,
    chain_pipeline,
    event_attributes,
    relations,
)
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import ErrorStrategy
from taskdaemon.pipeline.state import RunStatus, StageStatus


def test_failure_under_fail_strategy(tel: Telemetry) -> None:
    """A failed stage is an ERROR span with error.type and the exception; the run fails and the
    stages after it get skip spans."""
    feed = Feed(tel, chain_pipeline())
    feed.start_run()
    feed.start("a")
    feed.tick()
    error = KeyError("missing")
    feed.finish(
        "a", status=StageStatus.FAILURE, error="'missing'", error_type="KeyError", exception=error
    )
    feed.skip("b", "upstream a failed")
    feed.finish_run(RunStatus.FAILURE, error="stage a failed", error_type="stage_failed")
    (a,) = tel.by_name("a")
    assert (StatusCode.ERROR, "'missing'") == (a.status.status_code, a.status.description)
    assert ("failure", "KeyError", "failure") == (
        a.attributes[t.CICD_TASK_RUN_RESULT],
        a.attributes[t.ERROR_TYPE],
        a.attributes[t.STAGE_STATUS],
    )
    exception = event_attributes(a, "exception")
    assert ("KeyError", "'missing'") == (
        exception["exception.type"],
        exception["exception.message"],
    )
    (run,) = tel.by_name("RUN chain")
    assert ("failure", "stage_failed", StatusCode.ERROR, "stage a failed") == (
        run.attributes[t.CICD_PIPELINE_RESULT],
        run.attributes[t.ERROR_TYPE],
        run.status.status_code,
        run.status.description,
    )
    skips = {
        s.name: s.attributes[t.STAGE_SKIP_REASON]
        for s in tel.spans()
        if s.attributes.get(t.CICD_TASK_RUN_RESULT) == "skip"
    }
    assert {"b": "upstream a failed", "c": "not reached: the run ended (failure)"} == skips


def test_error_type_is_the_exception_qualname(tel: Telemetry) -> None:
    """error.type names the exception class by its qualified name."""

    class Inner:
        class BrokenError(Exception):
            pass

    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run()
    feed.start("a")
    feed.finish("a", status=StageStatus.FAILURE, error="x", exception=Inner.BrokenError("x"))
    feed.finish_run(RunStatus.FAILURE)
    (a,) = tel.by_name("a")
    assert Inner.BrokenError.__qualname__ == a.attributes[t.ERROR_TYPE]


def test_failure_under_continue_strategy(tel: Telemetry) -> None:
    """Under continue, a failed stage is an ERROR span while independent stages still succeed."""
    pipeline = chain_pipeline(("a", "b"), ErrorStrategy.CONTINUE)
    feed = Feed(tel, pipeline)
    feed.start_run()
    feed.start("a")
    feed.finish("a", status=StageStatus.FAILURE, error="bad", error_type="RuntimeError")
    feed.skip("b", "upstream a failed")
    feed.finish_run(RunStatus.FAILURE, error_type="stage_failed")
    results = {s.name: s.attributes.get(t.CICD_TASK_RUN_RESULT) for s in tel.spans()}
    assert {"a": "failure", "b": "skip", "RUN chain": None} == results
    (run,) = tel.by_name("RUN chain")
    assert "continue" == run.attributes[t.PIPELINE_ERROR_STRATEGY]


def test_retry_links_to_the_previous_attempt(tel: Telemetry) -> None:
    """Each attempt is a span; the retry links to the failed attempt, which says it will retry."""
    feed = Feed(tel, chain_pipeline(("a",), ErrorStrategy.RETRY))
    feed.start_run()
    feed.start("a")
    feed.finish(
        "a", status=StageStatus.FAILURE, error="flaky", error_type="OSError", will_retry=True
    )
    feed.retrying("a", 1, "flaky", "OSError")
    feed.tick()
    feed.start("a", attempt=2)
    feed.finish("a", attempt=2)
    feed.finish_run()
    spans = tel.spans()
    first, second = sorted(tel.by_name("a"), key=lambda s: s.attributes[t.STAGE_ATTEMPT])
    assert (True, "failure", StatusCode.ERROR) == (
        first.attributes[t.STAGE_WILL_RETRY],
        first.attributes[t.CICD_TASK_RUN_RESULT],
        first.status.status_code,
    )
    assert [("previous_attempt", "a.0.1")] == relations(second, spans)
    assert "success" == second.attributes[t.CICD_TASK_RUN_RESULT]
    (run,) = tel.by_name("RUN chain")
    assert {
        t.CICD_TASK_NAME: "a",
        t.CICD_TASK_RUN_ID: "a.0.1",
        t.RETRY_DELAY: 1.0,
        t.ERROR_TYPE: "OSError",
    } == event_attributes(run, t.EVENT_STAGE_RETRYING)
    assert "success" == run.attributes[t.CICD_PIPELINE_RESULT]


def test_retries_exhausted_fail_the_run(tel: Telemetry) -> None:
    """Under retry, the last failed attempt ends the run as a failure."""
    feed = Feed(tel, chain_pipeline(("a",), ErrorStrategy.RETRY))
    feed.start_run()
    for attempt in (1, 2):
        feed.start("a", attempt=attempt)
        feed.finish(
            "a",
            attempt=attempt,
            status=StageStatus.FAILURE,
            error="no",
            error_type="OSError",
            will_retry=attempt == 1,
        )
    feed.finish_run(RunStatus.FAILURE, error_type="stage_failed")
    assert [("a.0.1", "failure"), ("a.0.2", "failure")] == sorted(
        (s.attributes[t.CICD_TASK_RUN_ID], s.attributes[t.CICD_TASK_RUN_RESULT])
        for s in tel.by_name("a")
    )
    (run,) = tel.by_name("RUN chain")
    assert "failure" == run.attributes[t.CICD_PIPELINE_RESULT]


def test_timeout(tel: Telemetry) -> None:
    """A timed-out stage has result timeout, error.type timeout and status ERROR."""
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run()
    feed.start("a")
    feed.finish(
        "a",
        status=StageStatus.TIMEOUT,
        error="stage a timed out after 2s",
        error_type="StageTimeoutError",
    )
    feed.finish_run(RunStatus.FAILURE, error_type="timeout")
    (a,) = tel.by_name("a")
    assert ("timeout", "timeout", "timeout", StatusCode.ERROR) == (
        a.attributes[t.CICD_TASK_RUN_RESULT],
        a.attributes[t.ERROR_TYPE],
        a.attributes[t.STAGE_STATUS],
        a.status.status_code,
    )


def test_cancellation_is_not_an_error(tel: Telemetry) -> None:
    """A cancelled stage and run have result cancellation and status UNSET."""
    feed = Feed(tel, chain_pipeline(("a", "b")))
    feed.start_run()
    feed.start("a")
    feed.finish("a", status=StageStatus.CANCELLED, error="cancelled")
    feed.finish_run(RunStatus.CANCELLED)
    (a,) = tel.by_name("a")
    (run,) = tel.by_name("RUN chain")
    assert ("cancellation", StatusCode.UNSET, False) == (
        a.attributes[t.CICD_TASK_RUN_RESULT],
        a.status.status_code,
        t.ERROR_TYPE in a.attributes,
    )
    assert ("cancellation", StatusCode.UNSET, False) == (
        run.attributes[t.CICD_PIPELINE_RESULT],
        run.status.status_code,
        t.ERROR_TYPE in run.attributes,
    )


def test_open_execution_is_cancelled_when_the_run_ends(tel: Telemetry) -> None:
    """An execution still open at RunFinished is ended at the run's end as a cancellation."""
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run()
    feed.start("a")
    feed.tick(5)
    feed.finish_run(RunStatus.CANCELLED)
    (a,) = tel.by_name("a")
    (run,) = tel.by_name("RUN chain")
    assert ("cancellation", run.end_time) == (a.attributes[t.CICD_TASK_RUN_RESULT], a.end_time)


def test_skip_spans_are_zero_length_children(tel: Telemetry) -> None:
    """Stages that never ran get zero-length skip spans under the run span."""
    feed = Feed(tel, chain_pipeline())
    feed.start_run()
    feed.tick()
    feed.skip("b", "no event arrived")
    feed.tick()
    feed.finish_run(RunStatus.CANCELLED)
    (run,) = tel.by_name("RUN chain")
    skips = sorted((s for s in tel.spans() if s is not run), key=lambda s: s.name)
    assert [
        ("a", "not reached: the run ended (cancelled)", run.end_time),
        ("b", "no event arrived", T0_NS + 1_000_000_000),
        ("c", "not reached: the run ended (cancelled)", run.end_time),
    ] == [(s.name, s.attributes[t.STAGE_SKIP_REASON], s.start_time) for s in skips]
    assert all(s.start_time == s.end_time for s in skips)
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in skips)
    assert all(
        ("skip", "skipped") == (s.attributes[t.CICD_TASK_RUN_RESULT], s.attributes[t.STAGE_STATUS])
        for s in skips
    )
