"""reconstruct_run: a whole run, its stages, attempts and DAG rebuilt from spans alone."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from pipeline_engine_support import Resolver, after, fail, pipeline, stage
from pipeline_tracking_support import (
    T0,
    S,
    example_spans,
    make_provider,
    plan_attempt,
    replaced,
    root_span,
)
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.model import OnCondition, TriggerMode
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import AttemptRecord, EdgeRecord
from taskdaemon.pipeline.tracking import (
    SpanEventRecord,
    reconstruct_run,
    span_record_from_sdk,
    summarize_run,
)
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.visualization import DagWatcher


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
    spans = example_spans()
    plan = reconstruct_run(spans).stage("plan").attempts[0]
    plan_span = next(s for s in spans if s.name == "plan")
    expected = AttemptRecord(
        task_run_id=f"{plan_span.trace_id}/plan/0/1",
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
        span_id=plan_span.span_id,
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


@pytest.mark.parametrize("ended_first", [False, True])
def test_duplicate_span_rows_prefer_the_ended_copy(ended_first: bool) -> None:
    """A span seen open and ended (store start row, then end row) counts once, ended, whichever
    copy comes first."""
    spans = example_spans()
    plan = next(s for s in spans if s.name == "plan")
    open_copy = replace(plan, end_ns=None)
    run = reconstruct_run([*spans, open_copy] if ended_first else [open_copy, *spans])
    assert [(a.status, a.end) for a in run.stage("plan").attempts] == [
        ("success", plan.end_ns / 1e9)
    ]
    assert run.stage("plan").status == "success"


def test_summary_counts_stages_and_failures() -> None:
    """The history row counts every stage and the stages that failed or timed out (not the
    cancelled or skipped ones)."""
    spans = example_spans(result="failure")
    ended_as = {("plan", 0, 1): "cancelled", ("build", 0, 2): "failure", ("test", 1, 1): "timeout"}
    for span in list(spans):
        key = (
            span.name,
            span.attributes.get(t.STAGE_INSTANCE),
            span.attributes.get(t.STAGE_ATTEMPT),
        )
        if key in ended_as:
            attributes = {**span.attributes, t.STAGE_STATUS: ended_as[key]}
            spans = replaced(spans, span, replace(span, attributes=attributes))
    run = reconstruct_run(spans)
    summary = summarize_run(run)
    assert [(s.name, s.status) for s in run.stages] == [
        ("plan", "cancelled"),
        ("build", "failure"),
        ("test", "timeout"),
        ("deploy", "skipped"),
    ]
    assert (
        summary.run_id,
        summary.pipeline,
        summary.status,
        summary.start,
        summary.end,
        summary.stage_count,
        summary.failed_stages,
    ) == (run.run_id, "demo", "failure", T0 / 1e9, (T0 + 7 * S) / 1e9, 4, 2)
    assert (4, 0) == (
        summarize_run(reconstruct_run(example_spans())).stage_count,
        summarize_run(reconstruct_run(example_spans())).failed_stages,
    )


def test_no_spans_is_an_error() -> None:
    """An empty trace cannot be reconstructed."""
    with pytest.raises(ValueError, match=r"^no spans to reconstruct a run from$"):
        reconstruct_run([])


def test_error_recorded_only_in_the_exception_event() -> None:
    """An attempt whose error is only in the OTel ``exception`` event (as other writers record
    it) takes its message and type from there; an empty message reads as none."""
    spans = example_spans()
    build1 = next(s for s in spans if s.name == "build" and s.attributes[t.STAGE_ATTEMPT] == 1)
    bare = {
        k: v
        for k, v in build1.attributes.items()
        if k not in (t.STAGE_ERROR_MESSAGE, t.ERROR_TYPE, t.STAGE_STATUS)
    }

    def attempt(*events: SpanEventRecord) -> tuple[str | None, str | None, str]:
        span = replace(build1, attributes=bare, status_message="", events=events)
        first = reconstruct_run(replaced(spans, build1, span)).stage("build").attempts[0]
        return first.error, first.error_type, first.status

    noise = SpanEventRecord(t.EVENT_STAGE_INPUT, T0 + S, {t.PAYLOAD_JSON: "{}"})
    exception = SpanEventRecord(
        "exception", T0 + 2 * S, {"exception.type": "OSError", "exception.message": "disk full"}
    )
    later = SpanEventRecord(
        "exception", T0 + 2 * S, {"exception.type": "KeyError", "exception.message": "late"}
    )
    no_message = SpanEventRecord("exception", T0 + 2 * S, {"exception.type": "ValueError"})
    empty = SpanEventRecord(
        "exception", T0 + 2 * S, {"exception.type": "", "exception.message": ""}
    )
    assert [
        attempt(noise, exception, later),
        attempt(no_message),
        attempt(empty),
        attempt(noise),
    ] == [
        ("disk full", "OSError", "failure"),
        (None, "ValueError", "failure"),
        (None, None, "failure"),
        (None, None, "failure"),
    ]


def test_edge_label_may_contain_the_separator() -> None:
    """Only the first two ``>`` separate source, target and label: a filter such as
    ``if event.n > 1`` survives whole; an entry without a target is dropped."""
    spans = example_spans()
    root = root_span(spans)
    edges = ("a>b>on event\nitem\nif event.n > 1 && event.m >= 2", "a>c", "lonely")
    changed = replace(root, attributes={**root.attributes, t.PIPELINE_EDGES: edges})
    assert (
        EdgeRecord("a", "b", "on event\nitem\nif event.n > 1 && event.m >= 2"),
        EdgeRecord("a", "c", ""),
    ) == reconstruct_run(replaced(spans, root, changed)).edges


def test_edges_fall_back_to_the_stage_spans_upstream() -> None:
    """Without the run span's edge list, each stage span's upstream gives the edges."""
    spans = example_spans()
    root = root_span(spans)
    attributes = {k: v for k, v in root.attributes.items() if k != t.PIPELINE_EDGES}
    changed = replace(root, attributes=attributes)
    assert (
        EdgeRecord("plan", "build", ""),
        EdgeRecord("build", "test", ""),
        EdgeRecord("test", "deploy", ""),
    ) == reconstruct_run(replaced(spans, root, changed)).edges


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, None), (False, None), ("abc", None), ("1.5", 1.5), (2, 2.0), ([1], None)],
)
def test_numeric_attributes_of_the_wrong_type_read_as_unknown(value: Any, expected: Any) -> None:
    """A number written as a bool, a list or a non-numeric string is unknown (None), never a
    1 or 0; a numeric string is read."""
    attempt = plan_attempt(
        example_spans(),
        attributes={t.STAGE_QUEUE_TIME: value, t.STAGE_PEAK_MEMORY: value},
    )
    memory = None if expected is None or value == "1.5" else int(expected)
    assert (expected, memory) == (attempt.queue_time, attempt.peak_memory_bytes)


def test_attempt_identity_defaults_when_unreadable() -> None:
    """An instance or attempt number that is a bool, missing or zero reads as instance 0,
    attempt 1 (attempts count from 1); without a task run id the span id stands in."""
    spans = example_spans()
    plan_span = next(s for s in spans if s.name == "plan")
    unreadable = plan_attempt(
        spans,
        attributes={t.STAGE_INSTANCE: True, t.STAGE_ATTEMPT: None, t.CICD_TASK_RUN_ID: None},
    )
    zero = plan_attempt(spans, attributes={t.STAGE_INSTANCE: 0, t.STAGE_ATTEMPT: 0})
    assert [(0, 1, plan_span.span_id), (0, 1)] == [
        (unreadable.instance, unreadable.attempt, unreadable.task_run_id),
        (zero.instance, zero.attempt),
    ]


def test_payload_event_without_json_is_no_payload() -> None:
    """A ``stage.input`` event without the JSON attribute gives no inputs; a non-string JSON
    value is read as text."""
    events = (
        SpanEventRecord(t.EVENT_STAGE_INPUT, T0, {}),
        SpanEventRecord(t.EVENT_STAGE_OUTPUT, T0, {t.PAYLOAD_JSON: 7}),
    )
    attempt = plan_attempt(example_spans(), events=events)
    assert (None, "7") == (attempt.inputs, attempt.outputs)


def test_attempt_error_prefers_the_stage_message_then_the_span_status() -> None:
    """The attempt's error is ``taskdaemon.stage.error.message``, else the span's status
    message, else none."""
    spans = example_spans()
    both = plan_attempt(
        spans, attributes={t.STAGE_ERROR_MESSAGE: "exit 3"}, status_message="status text"
    )
    status_only = plan_attempt(spans, status_message="status text")
    neither = plan_attempt(spans)
    assert ["exit 3", "status text", None] == [both.error, status_only.error, neither.error]


def test_pipeline_name_comes_from_the_run_span_else_a_stage_when_there_is_no_run_span() -> None:
    """The pipeline is the run span's ``cicd.pipeline.name``; a run span without it names none
    (empty, as the writer's ``runs`` row says), whatever its stages or its span name say; with
    no run span, a stage span's; with neither, empty. A legacy run span (named ``RUN …``,
    without the action, no row) gives its name after ``RUN ``."""
    spans = example_spans()
    root = root_span(spans)

    def named(root_name: str | None, stage_name: str | None, *, keep_root: bool = True) -> str:
        changed = []
        for span in spans:
            value = root_name if span is root else stage_name
            attributes = {k: v for k, v in span.attributes.items() if k != t.CICD_PIPELINE_NAME}
            if value is not None:
                attributes[t.CICD_PIPELINE_NAME] = value
            if keep_root or span is not root:
                changed.append(replace(span, attributes=attributes))
        return reconstruct_run(changed).pipeline

    assert [
        named("from-root", "from-stage"),
        named(None, "from-stage"),
        named(None, None),
        named(None, "from-stage", keep_root=False),
        named(None, None, keep_root=False),
        reconstruct_run([SpanRecord("t", "r", None, "RUN legacy", "INTERNAL", 1, 2)]).pipeline,
    ] == ["from-root", "", "", "from-stage", "", "legacy"]


def test_run_span_is_found_by_its_action_before_its_name() -> None:
    """Of two parentless spans, the one marked ``cicd.pipeline.action.name=RUN`` is the run
    span, even when an earlier one is merely named ``RUN …``."""
    spans = example_spans()
    root = root_span(spans)
    decoy = replace(
        root, trace_id="e" * 32, span_id="d" * 16, name="RUN decoy", start_ns=T0 - S, attributes={}
    )
    renamed = replace(root, name="custom")
    run = reconstruct_run([decoy, *replaced(spans, root, renamed)])
    assert ("demo", T0 / 1e9, root.trace_id) == (run.pipeline, run.start, run.run_id)


def test_run_keeps_the_run_span_attributes_and_replay_origin() -> None:
    """The record carries every attribute of the run span and the run it replays."""
    spans = example_spans()
    root = root_span(spans)
    attributes = {**root.attributes, t.PIPELINE_REPLAY_OF: "f" * 32}
    run = reconstruct_run(replaced(spans, root, replace(root, attributes=attributes)))
    assert ("f" * 32, attributes) == (run.replay_of, run.attributes)


def test_only_spans_with_a_stage_name_are_stages() -> None:
    """A span whose stage name is empty or not a string is no stage; a single non-list value of
    a list attribute reads as a one-item list."""
    spans = example_spans()
    plan = next(s for s in spans if s.name == "plan")
    odd = [
        replace(plan, span_id=f"{n:016x}", attributes={**plan.attributes, t.CICD_TASK_NAME: name})
        for n, name in ((1, ""), (2, 5))
    ]
    spans = replaced(
        spans, plan, replace(plan, attributes={**plan.attributes, t.STAGE_TRIGGERS: 7})
    )
    run = reconstruct_run([*spans, *odd])
    assert (["plan", "build", "test", "deploy"], ("7",)) == (
        [s.name for s in run.stages],
        run.stage("plan").triggers,
    )


class _Compared(str):
    """A stage name that counts how often it is compared with another text."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _Compared.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_stage_names_are_looked_up_not_searched() -> None:
    """Each stage with spans is found among the declared stages by its name's hash, not by a
    pass over all of them: 2,000 stages cost thousands of comparisons, not two million, so a
    run of thousands of stages is rebuilt in time linear in them (``runs show``, the web
    page, ``report``)."""
    spans = example_spans()
    root, plan = root_span(spans), next(s for s in spans if s.name == "plan")
    names = [f"stage_{n}" for n in range(2000)]
    root = replace(root, attributes={**root.attributes, t.PIPELINE_STAGES: tuple(names)})
    stages = [
        replace(
            plan,
            span_id=f"{n:016x}",
            attributes={**plan.attributes, t.CICD_TASK_NAME: _Compared(name)},
        )
        for n, name in enumerate(names, 1)
    ]
    _Compared.comparisons = 0
    run = reconstruct_run([root, *stages])
    comparisons = _Compared.comparisons
    assert [s.name for s in run.stages] == names
    assert comparisons <= 4 * len(names)


def test_error_type_attribute_beats_the_exception_event() -> None:
    """``error.type`` on the span names the attempt's error type; the exception event's type and
    message fill in only what the attributes lack."""
    exception = SpanEventRecord(
        "exception", T0, {"exception.type": "OSError", "exception.message": "disk full"}
    )
    attempt = plan_attempt(
        example_spans(), attributes={t.ERROR_TYPE: "StageError"}, events=(exception,)
    )
    assert ("StageError", "disk full") == (attempt.error_type, attempt.error)


def test_skip_span_carries_the_cancel_reason_and_cause() -> None:
    """A stage a stop kept from starting (a skip span with cancel attributes) keeps the reason
    and the stage whose failure caused it."""
    spans = example_spans()
    deploy = next(s for s in spans if s.name == "deploy")
    attributes = {
        **deploy.attributes,
        t.STAGE_CANCEL_REASON: "stage 'test' failed",
        t.STAGE_CANCEL_CAUSE: "test",
    }
    stage = reconstruct_run(replaced(spans, deploy, replace(deploy, attributes=attributes))).stage(
        "deploy"
    )
    assert ("skipped", "condition false", "stage 'test' failed", "test") == (
        stage.status,
        stage.skip_reason,
        stage.cancel_reason,
        stage.cancel_cause,
    )


def test_stage_fields_come_from_its_first_span_then_the_run_span() -> None:
    """Loop type, triggers, upstream and trigger mode are read from the stage's first span; a
    span without a loop type takes the run span's declared one, and with neither it is empty."""
    spans = example_spans()
    root = root_span(spans)
    build1 = next(s for s in spans if s.name == "build" and s.attributes[t.STAGE_ATTEMPT] == 1)
    plan = next(s for s in spans if s.name == "plan")
    spans = replaced(
        spans,
        build1,
        replace(build1, attributes={**build1.attributes, t.STAGE_TRIGGER_MODE: "all"}),
    )
    no_loop = {k: v for k, v in plan.attributes.items() if k != t.STAGE_LOOP}
    spans = replaced(spans, plan, replace(plan, attributes=no_loop))
    declared = {**root.attributes, t.PIPELINE_STAGE_LOOPS: ("declared-plan",)}
    with_loops = replaced(spans, root, replace(root, attributes=declared))
    build = reconstruct_run(spans).stage("build")
    assert [
        (build.loop, build.triggers, build.upstream, build.trigger_mode),
        reconstruct_run(spans).stage("plan").loop,
        reconstruct_run(with_loops).stage("plan").loop,
        reconstruct_run(spans).stage("test").trigger_mode,
    ] == [
        ("command", ("on completion of plan",), ("plan",), "all"),
        "",
        "declared-plan",
        None,
    ]


def test_paused_time_sums_the_run_spans_resume_events_per_execution() -> None:
    """An execution's paused time is the sum of the run span's ``breakpoint.resumed`` events
    naming it; other events, other executions and unreadable values add nothing."""
    spans = example_spans()
    root = root_span(spans)
    plan = reconstruct_run(spans).stage("plan").attempts[0].task_run_id

    def resumed(trid: Any, seconds: Any, name: str = t.EVENT_BREAKPOINT_RESUMED) -> Any:
        return SpanEventRecord(
            name, T0 + S, {t.CICD_TASK_RUN_ID: trid, t.BREAKPOINT_PAUSED: seconds}
        )

    events = (
        *root.events,
        resumed(plan, 2.5),
        resumed(plan, 1.5),
        resumed(plan, "soon"),  # not a number
        resumed(7, 9.0),  # not a task run id
        resumed(plan, 8.0, name=t.EVENT_BREAKPOINT_HIT),
        resumed("someone-else", 3.0),
    )
    run = reconstruct_run(replaced(spans, root, replace(root, events=events)))
    paused = {a.task_run_id: a.paused_time for s in run.stages for a in s.attempts}
    assert paused == {trid: (4.0 if trid == plan else None) for trid in paused}


async def test_the_triggers_a_stage_never_started_found_holding_read_as_live() -> None:
    """A stage (mode all) whose condition held but whose upstream failed: rebuilt from the
    run span's ``trigger.evaluated`` events, its triggers held are the live record's, the
    condition's position only."""
    flow = pipeline(
        stage("build"),
        stage("deploy", *after("build"), OnCondition("1 == 1"), trigger_mode=TriggerMode.ALL),
    )
    provider, exporter = make_provider()
    monitor = PipelineMonitor(tracer_provider=provider, meter_provider=MeterProvider())
    watcher = DagWatcher()
    try:
        async with Engine(resolver=Resolver({"build": fail}), observers=[monitor, watcher]) as e:
            run_id = (await (await e.start_run(flow)).wait()).run_id
    finally:
        monitor.close()
        provider.shutdown()
    stored = reconstruct_run(span_record_from_sdk(s) for s in exporter.get_finished_spans())
    live, rebuilt = watcher.record(run_id).stage("deploy"), stored.stage("deploy")
    assert ((1,), (1,), "skipped") == (live.triggers_held, rebuilt.triggers_held, rebuilt.status)
