"""reconstruct_run: a whole run, its stages, attempts and DAG rebuilt from spans alone."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline_tracking_support import T0, S, example_spans
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.records import AttemptRecord, EdgeRecord
from taskdaemon.pipeline.tracking import (
    SpanEventRecord,
    SpanRecord,
    reconstruct_run,
    summarize_run,
)


def test_run_fields_come_from_the_run_span() -> None:
    """Pipeline, status, times, hash and started-by are read from the root span."""
    run = reconstruct_run(example_spans())
    assert (
        run.pipeline,
        run.status,
        run.start,
        run.end,
        run.definition_hash,
        run.started_by,
    ) == ("demo", "success", T0 / 1e9, (T0 + 7 * S) / 1e9, "abc123", "cli")


def test_stages_follow_the_recorded_definition_order() -> None:
    """Stages are listed in the order of ``taskdaemon.pipeline.stages``, each with its status."""
    run = reconstruct_run(reversed(example_spans()))
    assert [(s.name, s.status) for s in run.stages] == [
        ("plan", "success"),
        ("build", "success"),
        ("test", "success"),
        ("deploy", "skipped"),
    ]


def test_a_retried_stage_keeps_every_attempt() -> None:
    """The failed first attempt and the successful retry are both recorded, in order."""
    build = reconstruct_run(example_spans()).stage("build")
    assert [(a.attempt, a.status, a.error, a.error_type) for a in build.attempts] == [
        (1, "failure", "exit 2", "RuntimeError"),
        (2, "success", None, None),
    ]


def test_attempt_carries_payloads_and_resources() -> None:
    """Inputs/outputs come from span events; cpu, memory, queue and trigger wait from attributes."""
    plan = reconstruct_run(example_spans()).stage("plan").attempts[0]
    expected = AttemptRecord(
        task_run_id=plan.task_run_id,
        instance=0,
        attempt=1,
        status="success",
        start=(T0 + S // 10) / 1e9,
        end=(T0 + S) / 1e9,
        queue_time=0.01,
        trigger_wait=0.0,
        cpu_seconds=0.25,
        peak_memory_bytes=12_345_678,
        inputs='{"goal": "ship"}',
        outputs='{"plan": ["a", "b"]}',
        span_id=plan.span_id,
    )
    assert expected == plan


def test_parallel_instances_are_separate_attempts() -> None:
    """Each instance of a fanned-out stage is its own attempt record."""
    test = reconstruct_run(example_spans()).stage("test")
    assert [(a.instance, a.queue_time) for a in test.attempts] == [(0, 0.5), (1, 1.5)]


def test_skip_span_marks_a_stage_that_never_ran() -> None:
    """A zero-length skip span yields a skipped stage with its reason and no attempt."""
    deploy = reconstruct_run(example_spans()).stage("deploy")
    assert (
        deploy.status,
        deploy.attempts,
        deploy.skip_reason,
    ) == ("skipped", (), "condition false")


def test_edges_and_labels_come_from_span_attributes() -> None:
    """DAG edges and their trigger labels are read from ``taskdaemon.pipeline.edges``."""
    assert (
        EdgeRecord("plan", "build", "on completion"),
        EdgeRecord("build", "test", "on event\nbuild.ready"),
        EdgeRecord("test", "deploy", "on completion"),
    ) == reconstruct_run(example_spans()).edges


def test_failed_run_keeps_error_type_and_message() -> None:
    """A run whose result is failure reads as failure with the root's error."""
    run = reconstruct_run(example_spans(result="failure"))
    assert (
        run.status,
        run.error_type,
        run.error,
    ) == ("failure", "StageFailedError", "build failed")


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
    spans = [dataclasses.replace(open_plan, end_ns=None) if s is open_plan else s for s in spans]
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
    open_root = dataclasses.replace(root, end_ns=None, events=events)
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


def test_duplicate_span_rows_prefer_the_ended_copy() -> None:
    """A span seen open and ended (store start row, then end row) counts once, ended."""
    spans = example_spans()
    plan = next(s for s in spans if s.name == "plan")
    run = reconstruct_run([dataclasses.replace(plan, end_ns=None), *spans])
    assert len(run.stage("plan").attempts) == 1
    assert run.stage("plan").status == "success"


def test_summary_counts_stages_and_failures() -> None:
    """The history row counts every stage and the stages that failed."""
    summary = summarize_run(reconstruct_run(example_spans()))
    assert (summary.stage_count, summary.failed_stages) == (4, 0)


def test_no_spans_is_an_error() -> None:
    """An empty trace cannot be reconstructed."""
    with pytest.raises(ValueError, match="no spans"):
        reconstruct_run([])
