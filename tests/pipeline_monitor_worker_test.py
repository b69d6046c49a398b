"""The monitor's worker (``monitor._worker.Recorder``) as its hooks, spans and metrics show it:
the span each record belongs to, the record types a hook takes, stage times that never go
negative, and records of unknown runs or executions handled without a failure."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import SpanContext

from pipeline_monitor_support import Feed, Telemetry, chain_pipeline, relations
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.cli.telemetry import span_limits
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    EngineEvent,
    EventPublished,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.monitor import _spans
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.state import RunStatus, StageStatus

UNKNOWN_RUN = "f" * 32


@pytest.fixture
def failures(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The monitor's warnings so far (a record it failed on is logged, not raised)."""
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.monitor"):
        yield lambda: [r.getMessage() for r in caplog.records]


class _Hook:
    """Records what it is asked to take and what it is called with; declines ``declined``."""

    def __init__(self, *declined: type) -> None:
        self.declined = declined
        self.asked: set[Any] = set()
        self.calls: list[tuple[str, SpanContext | None]] = []

    def takes(self, kind: Any) -> bool:
        self.asked.add(kind)
        return kind not in self.declined

    def __call__(self, event: EngineEvent, span: SpanContext | None) -> None:
        self.calls.append((type(event).__name__, span))


def test_each_hook_call_gets_the_span_its_record_belongs_to(
    tel: Telemetry, failures: Callable[[], list[str]]
) -> None:
    """A record with an execution gets that execution's span, open or ended (a retry notice
    comes after its attempt ended); a record naming only a stage gets the stage's latest open
    execution, else the run's span; a record of an unknown run gets None. Record types the
    hook declines (``takes``) never reach it; records about an execution or run the monitor
    never saw are handled without a failure."""
    feed = Feed(tel, chain_pipeline(("a", "b", "c")))
    hook = _Hook(StageQueued, ApprovalRequested)
    feed.monitor.add_event_hook(hook)
    feed.start_run()
    feed.start("a", instance=0)
    feed.start("a", instance=1)
    feed.trigger("a", 0, "manual")  # a's latest open execution: instance 1
    feed.finish("a", instance=0)
    feed.retrying("a", 1, "boom", "RuntimeError")  # instance 0's attempt 1, ended
    feed.finish("a", instance=1)
    feed.finish("b", instance=0)  # never started: nothing to end
    feed.trigger("b", 0, "on_completion")  # no open execution of b: the run's span
    feed.emit(
        ApprovalRequested(run_id=feed.run_id, pipeline="chain", stage="b", at=feed.now)
    )  # declined
    feed.emit(
        StageSkipped(run_id=UNKNOWN_RUN, pipeline="chain", stage="b", reason="x", at=feed.now)
    )
    feed.publish("note", {"k": 1}, 1, None)  # no source: an event of the run's span
    feed.emit(
        RunFinished(run_id=feed.run_id, pipeline="chain", status=RunStatus.SUCCESS, at=feed.tick())
    )
    feed.monitor.flush()

    run_span = tel.by_name(t.run_span_name("chain"))[0]
    run = run_span.get_span_context()
    a0, a1 = (
        next(
            s.get_span_context()
            for s in tel.by_name(t.stage_span_name("a"))
            if s.attributes and s.attributes.get(t.STAGE_INSTANCE) == instance
        )
        for instance in (0, 1)
    )
    expected = (
        [
            ("RunStarted", run),
            ("StageStarted", a0),
            ("StageStarted", a1),
            ("TriggerEvaluated", a1),
            ("StageFinished", a0),
            ("StageRetrying", a0),
            ("StageFinished", a1),
            ("StageFinished", run),
            ("TriggerEvaluated", run),
            ("StageSkipped", None),
            ("EventPublished", run),
            ("RunFinished", run),
        ],
        {
            RunStarted,
            StageQueued,
            StageStarted,
            TriggerEvaluated,
            StageFinished,
            StageRetrying,
            ApprovalRequested,
            StageSkipped,
            EventPublished,
            RunFinished,
        },
        True,
        [],
    )
    actual = (
        hook.calls,
        hook.asked,
        any(e.name == t.EVENT_PUBLISHED for e in run_span.events),
        failures(),
    )
    assert expected == actual


def test_stage_times_are_never_negative(tel: Telemetry) -> None:
    """Queue time, trigger wait and duration come from the records' clocks: one that went
    back (another host's, a clock step) counts as zero, never as negative time, in the
    metrics and in ``get_metrics``; a positive time under a second counts as it is."""
    feed = Feed(tel, chain_pipeline(("a", "b")))
    feed.start_run()
    feed.start("a", queue=-1.0, wait=-2.0)  # started before it was queued, queued before due
    feed.tick(-3.0)
    feed.finish("a")  # ended before it started
    feed.start("b", queue=0.25, wait=0.0)
    feed.tick(0.5)
    feed.finish("b", status=StageStatus.FAILURE)
    feed.start("b", attempt=2, queue=0.25, wait=7.0)  # a retry: no trigger wait of its own
    feed.finish("b", attempt=2, status=StageStatus.FAILURE)
    feed.emit(
        RunFinished(run_id=feed.run_id, pipeline="chain", status=RunStatus.FAILURE, at=feed.tick())
    )
    snapshot = feed.monitor.get_metrics("chain")

    def sums(metric: str) -> dict[str, tuple[int, float]]:
        return {
            dict(key)[t.LABEL_STAGE]: (point.count, point.sum)
            for key, point in tel.histograms(metric).items()
            if dict(key)[t.LABEL_PIPELINE] == "chain"
        }

    expected = (
        {"a": (1, 0.0), "b": (2, 0.5)},
        {"a": (1, 0.0), "b": (1, 0.0)},
        {"a": (1, 0.0), "b": (2, 0.5)},
        {"a": (1, 0, 0.0, 0.0), "b": (0, 2, 0.25, 0.25)},
    )
    actual = (
        sums(t.METRIC_STAGE_QUEUE_TIME),
        sums(t.METRIC_TRIGGER_WAIT_TIME),
        sums(t.METRIC_STAGE_DURATION),
        {
            name: (s.success_count, s.failure_count, s.avg_duration, s.avg_queue_time)
            for name, s in snapshot.stages.items()
        },
    )
    assert expected == actual


def test_trigger_evaluations_are_counted_by_pipeline_stage_and_type(
    tel: Telemetry,
) -> None:
    feed = Feed(tel, chain_pipeline(("a", "b")))
    feed.start_run()
    feed.trigger("a", 0, "manual")
    feed.trigger("b", 0, "on_completion")
    feed.trigger("b", 0, "on_completion")
    feed.monitor.flush()
    counted = {
        (attrs[t.LABEL_PIPELINE], attrs[t.LABEL_STAGE], attrs[t.LABEL_TRIGGER_TYPE]): value
        for key, value in tel.values(t.METRIC_TRIGGER_EVALUATIONS).items()
        for attrs in [dict(key)]
    }
    assert {("chain", "a", "manual"): 1, ("chain", "b", "on_completion"): 2} == counted


def test_a_stage_environment_of_an_unknown_run_or_execution_is_empty(
    tel: Telemetry, failures: Callable[[], list[str]]
) -> None:
    """No span, no variables, and no failure logged: the engine asks for every stage."""
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run()
    started = feed.start("a")

    def asked(run_id: str, task_run_id: str) -> dict[str, str]:
        event = StageStarted(
            run_id=run_id,
            pipeline="chain",
            stage="a",
            instance=0,
            attempt=1,
            task_run_id=task_run_id,
            loop=started.loop,
            at=feed.now,
            queued_at=feed.now,
            considered_at=feed.now,
            inputs={},
        )
        return dict(feed.monitor.stage_environment(event))

    known = asked(feed.run_id, started.task_run_id)
    unknown = (asked(UNKNOWN_RUN, started.task_run_id), asked(feed.run_id, "a/0/9"))
    assert (True, ({}, {}), []) == ("TRACEPARENT" in known, unknown, failures())


@pytest.mark.slow
def test_a_stage_process_is_what_the_memory_gauge_measures(tel: Telemetry) -> None:
    """Once a stage reports its process, the sampler measures that process tree's memory,
    not the monitor's own process (a small child, a far larger test process)."""
    feed = Feed(tel, chain_pipeline(("a",)), resource_sampling=True)
    feed.start_run()
    feed.start("a")
    own = feed.monitor.sampler.memory()[("chain", "a")]
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        feed.process("a", child.pid)
        feed.monitor.flush()
        measured = feed.monitor.sampler.memory()[("chain", "a")]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    feed.finish("a")
    feed.monitor.flush()
    assert (True, 0) == (measured < own / 2, feed.monitor.sampler.active())


def test_a_run_s_end_ends_its_open_stages_and_counts_the_run(
    tel: Telemetry, failures: Callable[[], list[str]]
) -> None:
    """A stage still open when its run ends is ended as cancelled, when the run ended;
    the run is counted with its status, result, error type and duration in the metrics and in
    ``get_metrics``. An end of a run the monitor never saw is no failure."""
    feed = Feed(tel, chain_pipeline(("a", "b")))
    feed.start_run()
    active = feed.monitor.get_metrics("chain").active_runs
    feed.start("a")
    feed.tick(0.5)
    feed.emit(
        RunFinished(run_id=feed.run_id, pipeline="chain", status=RunStatus.FAILURE, at=feed.now)
    )
    feed.emit(
        RunFinished(run_id=UNKNOWN_RUN, pipeline="chain", status=RunStatus.FAILURE, at=feed.now)
    )
    snapshot = feed.monitor.get_metrics("chain")
    (stage,) = tel.by_name(t.stage_span_name("a"))
    attrs = dict(stage.attributes or {})
    durations = {
        tuple(sorted(dict(key).items())): (point.count, point.sum)
        for key, point in tel.histograms(t.METRIC_CICD_RUN_DURATION).items()
    }
    expected = (
        1,
        ("cancelled", 0, 1, True),
        {
            (("pipeline", "chain"), ("status", "success")): 0,
            (("pipeline", "chain"), ("status", "failure")): 1,
            (("pipeline", "chain"), ("status", "cancelled")): 0,
        },
        {((t.CICD_PIPELINE_NAME, "chain"), (t.CICD_PIPELINE_RESULT, "failure")): (1, 0.75)},
        {((t.CICD_PIPELINE_NAME, "chain"), (t.ERROR_TYPE, "_OTHER")): 1},
        {(("pipeline", "chain"),): 0},
        (1, 1, 0, 0.75),
        {"a": (1, 0.5)},
        [],
    )
    actual = (
        active,
        (
            attrs.get(t.STAGE_STATUS),
            attrs.get(t.STAGE_INSTANCE),
            attrs.get(t.STAGE_ATTEMPT),
            stage.end_time == tel.by_name(t.run_span_name("chain"))[0].end_time,
        ),
        tel.values(t.METRIC_EXECUTIONS),
        durations,
        tel.values(t.METRIC_CICD_RUN_ERRORS),
        tel.values(t.METRIC_ACTIVE_EXECUTIONS),
        (
            snapshot.total_runs,
            snapshot.failed_runs,
            snapshot.active_runs,
            snapshot.avg_execution_time,
        ),
        {name: (s.count, s.avg_duration) for name, s in snapshot.stages.items()},
        failures(),
    )
    assert expected == actual


def test_runs_the_monitor_did_not_name_are_said_once(
    tel: Telemetry, failures: Callable[[], list[str]]
) -> None:
    """A run whose id is not its trace id (started by someone who did not ask the monitor for
    an id) is recorded under its own trace: one warning says so, for the first such run only."""
    pipeline = chain_pipeline(("a",))
    feed = Feed(tel, pipeline)
    feed.start_run()  # named by the monitor: no warning
    for run_id in ("1" * 32, "2" * 32):
        feed.emit(RunStarted(run_id=run_id, pipeline=pipeline, request={}, at=feed.now))
    expected = [
        "run " + "1" * 32 + " was not named by this monitor: its trace id differs from its run id"
    ]
    assert expected == failures()


def _run_with_a_failing_hook(tel: Telemetry) -> list[str]:
    """One run of stage ``a`` whose StageStarted a hook fails on; the names of its spans."""
    feed = Feed(tel, chain_pipeline(("a",)))

    def failing(event: EngineEvent, span: SpanContext | None) -> None:
        if isinstance(event, StageStarted):
            raise RuntimeError("hook broke")

    feed.monitor.add_event_hook(failing)
    feed.start_run()
    feed.start("a")
    feed.finish("a")
    feed.emit(
        RunFinished(run_id=feed.run_id, pipeline="chain", status=RunStatus.SUCCESS, at=feed.now)
    )
    feed.monitor.flush()
    return sorted(s.name for s in tel.spans())


def test_a_failing_hook_is_logged_with_its_traceback_and_the_run_goes_on(
    tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.monitor"):
        spans = _run_with_a_failing_hook(tel)
    logged = [
        (r.getMessage(), r.exc_info is not None and str(r.exc_info[1])) for r in caplog.records
    ]
    assert (
        [("monitor failed on StageStarted", "hook broke")],
        sorted([t.run_span_name("chain"), t.stage_span_name("a")]),
    ) == (logged, spans)


class _RaisingHandler(logging.Handler):
    """A logging handler whose ``emit`` raises, as stage code's may."""

    def emit(self, record: logging.LogRecord) -> None:
        raise ValueError("the handler broke")


def test_a_failing_hook_whose_failure_line_raises_leaves_the_run_recorded(tel: Telemetry) -> None:
    """The monitor's line about a failing hook goes through a logging handler that raises: the
    line is lost, not the run's spans, and nothing raises out of the monitor (it ended the
    thread that forwards ``run``'s records, and the run hung)."""
    monitor_logger = logging.getLogger("taskdaemon.pipeline.monitor")
    raising = _RaisingHandler()
    monitor_logger.addHandler(raising)
    try:
        spans = _run_with_a_failing_hook(tel)
    finally:
        monitor_logger.removeHandler(raising)
    assert sorted([t.run_span_name("chain"), t.stage_span_name("a")]) == spans


def test_a_hook_is_asked_again_for_each_record_handled_outside_a_turn(
    tel: Telemetry,
) -> None:
    """Records fed by hand (no record queue turn) ask a hook's ``takes`` for each record, so a
    hook that starts taking a type (its logger's level lowered) gets the very next one."""
    feed = Feed(tel, chain_pipeline(("a", "b")))
    hook = _Hook(StageStarted)
    feed.monitor.add_event_hook(hook)
    feed.start_run()
    feed.start("a")  # declined
    hook.declined = ()
    feed.start("b")
    started = [name for name, _ in hook.calls if name == "StageStarted"]
    assert ["StageStarted"] == started


def test_a_span_keeps_a_budget_of_published_payload_then_cuts_and_says_so(
    failures: Callable[[], list[str]],
) -> None:
    """``SPAN_PAYLOAD_BYTES`` of published payload a span, each span its own: the stage's
    events past it keep their type, id and source, and their payload's size and sha256, but
    not its JSON (cut, ``truncated`` true); the event straddling the budget keeps what is left;
    the run span, with its own budget, keeps its event as the capture's cap cuts it. One
    warning names the span. The tracer provider's span limits are ``taskdaemon run``'s."""
    telemetry = Telemetry(tracer_provider=TracerProvider(span_limits=span_limits()))
    cap = 64 * 2**10
    whole = _spans.SPAN_PAYLOAD_BYTES // cap  # payloads at the cap that fill the budget
    big = {"x": "y" * cap}  # its JSON is over the cap: each is cut to ``cap``
    try:
        feed = Feed(telemetry, chain_pipeline(["a"]), capture=PayloadCapture(max_bytes=cap))
        run_id = feed.start_run()
        feed.start("a")
        source = TaskRunRef("a", 0, 1)
        feed.publish("small", {"n": 0}, 0, source)
        for n in range(1, whole + 2):
            feed.publish("big", big, n, source)
        feed.publish("poke", big, whole + 2, None)
        feed.finish("a")
        feed.finish_run()
        (stage,) = telemetry.by_name("a")
        (run,) = telemetry.by_name("RUN chain")
    finally:
        telemetry.shutdown()

    def published(span: Any) -> list[tuple[Any, ...]]:
        return [
            (
                a[t.PUBLISHED_EVENT_ID],
                a.get(t.PUBLISHED_EVENT_SOURCE),
                len(a[t.PAYLOAD_JSON]),
                a[t.PAYLOAD_SIZE],
                a[t.PAYLOAD_SHA256],
                a[t.PAYLOAD_TRUNCATED],
            )
            for e in span.events
            if e.name == t.EVENT_PUBLISHED and (a := e.attributes) is not None
        ]

    def sha256(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    data = json.dumps(big, separators=(",", ":")).encode()
    small = ("a.0.1", 7, 7, sha256(b'{"n":0}'), False)
    kept = [(n, "a.0.1", cap, len(data), sha256(data), True) for n in range(1, whole)]
    assert (published(stage), published(run)) == (
        [
            (0, *small),
            *kept,
            (whole, "a.0.1", cap - 7, len(data), sha256(data), True),
            (whole + 1, "a.0.1", 0, len(data), sha256(data), True),
        ],
        [(whole + 2, None, cap, len(data), sha256(data), True)],
    )
    assert failures() == [
        f"run {run_id}: published events on the span of a.0.1 hold 16 MiB of payload: later "
        "ones are recorded with their payload cut (its size and sha256 kept)"
    ]


def test_a_full_stage_span_counts_later_published_events_and_keeps_its_own(
    failures: Callable[[], list[str]],
) -> None:
    """A stage span at its event limit, less the room of its closing event, records no more
    published events nor trigger evaluations: it counts them among its dropped events, keeps
    its ``stage.input`` and gets its ``stage.output``; one warning names the span. The run
    span's events are the SDK's to drop, oldest first, as before."""
    provider = TracerProvider(span_limits=SpanLimits(max_events=5))
    telemetry = Telemetry(tracer_provider=provider)
    try:
        feed = Feed(telemetry, chain_pipeline(["a"]), capture=PayloadCapture())
        run_id = feed.start_run()
        feed.start("a", inputs={"x": 1})
        source = TaskRunRef("a", 0, 1)
        for n in range(1, 5):
            feed.publish("tick", {"n": n}, n, source)
        feed.trigger("a", 0, "manual")
        for n in range(5, 11):
            feed.publish("tick", {"n": n}, n, None)
        feed.finish("a", outputs={"y": 2})
        feed.finish_run()
        (stage,) = telemetry.by_name("a")
        (run,) = telemetry.by_name("RUN chain")
    finally:
        telemetry.shutdown()

    def ids(span: Any) -> list[tuple[str, Any]]:
        return [(e.name, (e.attributes or {}).get(t.PUBLISHED_EVENT_ID)) for e in span.events]

    assert (ids(stage), stage.dropped_events) == (
        [
            (t.EVENT_STAGE_INPUT, None),
            (t.EVENT_PUBLISHED, 1),
            (t.EVENT_PUBLISHED, 2),
            (t.EVENT_PUBLISHED, 3),
            (t.EVENT_STAGE_OUTPUT, None),
        ],
        2,
    )
    assert (ids(run), run.dropped_events) == ([(t.EVENT_PUBLISHED, n) for n in range(6, 11)], 1)
    assert failures() == [
        f"run {run_id}: the span of a.0.1 holds all the events its limit keeps: later "
        "published events and trigger evaluations on it are counted as dropped, not recorded"
    ]


def test_past_the_link_limit_a_stage_span_keeps_its_own_link() -> None:
    """A retried fan-in stage with more upstream executions than its link limit keeps its
    ``previous_attempt`` link, its last; the SDK drops its first ``triggered_by`` links and
    counts them (docs/span-store.md, "A stage that publishes more events than its span
    holds")."""
    telemetry = Telemetry(tracer_provider=TracerProvider(span_limits=SpanLimits(max_links=3)))
    try:
        feed = Feed(telemetry, chain_pipeline(["a", "b"]))
        feed.start_run()
        upstream = [TaskRunRef("a", i, 1) for i in range(4)]
        for ref in upstream:
            feed.start("a", ref.instance)
            feed.finish("a", ref.instance)
        feed.start("b", fired_by=upstream)
        feed.finish("b", status=StageStatus.FAILURE, will_retry=True)
        feed.start("b", attempt=2, fired_by=upstream)
        feed.finish("b", attempt=2)
        feed.finish_run()
        retried = next(s for s in telemetry.by_name("b") if s.attributes[t.STAGE_ATTEMPT] == 2)
        links = relations(retried, telemetry.spans())
    finally:
        telemetry.shutdown()
    assert (links, retried.dropped_links) == (
        [("triggered_by", "a.2.1"), ("triggered_by", "a.3.1"), ("previous_attempt", "b.0.1")],
        2,
    )
