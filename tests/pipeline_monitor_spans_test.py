"""The run span, the skip spans and the span events as docs/architecture.md, "Telemetry schema"
states them: each written by ``monitor/_spans`` on real SDK spans (a redacting tracer over an
in-memory exporter, or a monitor fed engine records), read back attribute by attribute."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)

from pipeline_monitor_support import T0, Feed, Telemetry, chain_pipeline
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    EventPublished,
    RunFinished,
    RunStarted,
    StageRetrying,
    StageSkipped,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.monitor import _spans
from taskdaemon.pipeline.monitor._books import pipeline_info
from taskdaemon.pipeline.payloads import REDACTED, PayloadCapture
from taskdaemon.pipeline.span_redaction import RedactingTracer
from taskdaemon.pipeline.state import RunStatus, StageStatus

TOKEN = "ghp_" + "Sp4n" * 9  # a GitHub token's shape, not a real one
TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PARENT = 0xB7AD6B7169203331


class Spans:
    """A redacting tracer over a fresh SDK provider with an in-memory exporter."""

    def __init__(self) -> None:
        self.provider = TracerProvider()
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = RedactingTracer(self.provider.get_tracer("test"))

    def finished(self) -> list[ReadableSpan]:
        """The ended spans, in end order."""
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def spans() -> Iterator[Spans]:
    """A redacting tracer with in-memory export, shut down after the test."""
    made = Spans()
    yield made
    made.provider.shutdown()


def _events(span: ReadableSpan) -> list[tuple[str, int, dict[str, Any]]]:
    return [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events]


@pytest.mark.parametrize(
    "seconds",
    [0.0, 0.5, 2.0, 3.000000001, T0, T0 + 0.25, T0 + 0.123456789, 1_799_999_999.999999],
)
def test_ns_is_the_nearest_nanosecond(seconds: float) -> None:
    """``ns`` is the float's exact value in nanoseconds, rounded to the nearest: no digit lost
    to ``seconds * 1e9`` on an epoch time."""
    assert _spans.ns(seconds) == round(Fraction(seconds) * 10**9)
    assert type(_spans.ns(seconds)) is int


def test_traceparent_and_a_subprocess_s_environment() -> None:
    """The W3C ``traceparent`` of a context's span (None for no span), and the environment
    handed to a subprocess: ``TRACEPARENT``, and ``TRACESTATE`` only when there is one."""
    context = SpanContext(TRACE, PARENT, is_remote=False, trace_flags=TraceFlags(1))
    span = NonRecordingSpan(context)
    header = f"00-{TRACE:032x}-{PARENT:016x}-01"
    assert _spans.traceparent_of(trace.set_span_in_context(span)) == header
    assert _spans.traceparent_of(_spans.ROOT) is None
    assert _spans.subprocess_environment(span) == {"TRACEPARENT": header}
    stated = NonRecordingSpan(
        SpanContext(
            TRACE,
            PARENT,
            is_remote=False,
            trace_flags=TraceFlags(0),
            trace_state=TraceState([("vendor", "v1")]),
        )
    )
    assert _spans.subprocess_environment(stated) == {
        "TRACEPARENT": f"00-{TRACE:032x}-{PARENT:016x}-00",
        "TRACESTATE": "vendor=v1",
    }


def test_cancel_cause_only_when_given() -> None:
    """The cancel reason and cause are set each when given (not empty)."""
    for reason, cause, expected in [
        (
            "run cancelled",
            "build",
            {t.STAGE_CANCEL_REASON: "run cancelled", t.STAGE_CANCEL_CAUSE: "build"},
        ),
        ("run cancelled", None, {t.STAGE_CANCEL_REASON: "run cancelled"}),
        (None, "build", {t.STAGE_CANCEL_CAUSE: "build"}),
        ("", "", {}),
    ]:
        attributes: dict[str, Any] = {}
        _spans.set_cancel_cause(attributes, reason, cause)
        assert attributes == expected


def test_name_no_secret() -> None:
    """Keys that name no secret are clean; one that names a secret is not."""
    assert _spans.name_no_secret((t.CICD_TASK_NAME, t.STAGE_ATTEMPT)) is True
    assert _spans.name_no_secret((t.CICD_TASK_NAME, "api_token")) is False


def _run_started(pipeline: Pipeline, **fields: Any) -> RunStarted:
    return RunStarted(
        run_id="ab" * 16, pipeline=pipeline, request=fields.pop("request", {}), at=T0, **fields
    )


def test_the_run_span_from_start_to_end(spans: Spans) -> None:
    """The run span: a root SERVER span named ``RUN {pipeline}`` from the run's start to its
    end, with the definition's attributes, then the run id and who started it, and its result
    at the end (status UNSET on a success); no request attributes for an empty request."""
    pipeline = chain_pipeline(("a",))
    info = pipeline_info(pipeline)
    span = _spans.start_run_span(spans.tracer, pipeline.name, info.redacted_run_attributes, T0)
    _spans.describe_run_start(
        span, _run_started(pipeline, started_by="cli"), PayloadCapture(), None
    )
    finished = RunFinished(
        run_id="ab" * 16, pipeline="chain", status=RunStatus.SUCCESS, at=T0 + 2.5
    )
    _spans.end_run_span(span, finished, "success", None)
    [run] = spans.finished()
    assert run.name == t.run_span_name("chain")
    assert run.kind is SpanKind.SERVER
    assert run.parent is None
    assert (run.start_time, run.end_time) == (_spans.ns(T0), _spans.ns(T0 + 2.5))
    attributes = dict(run.attributes or {})
    assert list(attributes)[: len(info.redacted_run_attributes)] == list(
        info.redacted_run_attributes
    )
    assert list(attributes.items())[len(info.redacted_run_attributes) :] == [
        (t.CICD_PIPELINE_RUN_ID, "ab" * 16),
        (t.PIPELINE_STARTED_BY, "cli"),
        (t.CICD_PIPELINE_RESULT, "success"),
    ]
    assert run.status.status_code is StatusCode.UNSET
    assert list(run.links) == []


@pytest.mark.parametrize(
    ("error", "description"), [("stage 'a' failed", "stage 'a' failed"), (None, "RuntimeError")]
)
def test_a_failed_run_s_span(spans: Spans, error: str | None, description: str) -> None:
    """A failed run's span: its result, ``error.type``, status ERROR with the run's error (its
    type when it has none)."""
    span = _spans.start_run_span(spans.tracer, "p", {}, T0)
    finished = RunFinished(
        run_id="ab" * 16, pipeline="p", status=RunStatus.FAILURE, at=T0 + 1, error=error
    )
    _spans.end_run_span(span, finished, "failure", "RuntimeError")
    [run] = spans.finished()
    assert dict(run.attributes or {}) == {
        t.CICD_PIPELINE_RESULT: "failure",
        t.ERROR_TYPE: "RuntimeError",
    }
    assert (run.status.status_code, run.status.description) == (StatusCode.ERROR, description)
    assert run.end_time == _spans.ns(T0 + 1)


def test_the_request_and_a_replay_on_the_run_span(spans: Spans) -> None:
    """A run's request is recorded redacted, with its size, hash and flags; a replay's run
    names the original and links to it (the link's span id derived from the run id's low 64
    bits, and marked so)."""
    pipeline = chain_pipeline(("a",))
    original = "0123456789abcdef" * 2
    span = _spans.start_run_span(spans.tracer, "chain", {}, T0)
    event = _run_started(
        pipeline, request={"password": "hunter2"}, started_by="replay", replay_of=original
    )
    _spans.describe_run_start(span, event, PayloadCapture(), None)
    span.end()
    [run] = spans.finished()
    text = f'{{"password":"{REDACTED}"}}'
    assert dict(run.attributes or {}) == {
        t.CICD_PIPELINE_RUN_ID: "ab" * 16,
        t.PIPELINE_STARTED_BY: "replay",
        t.PIPELINE_REPLAY_OF: original,
        t.PIPELINE_REQUEST: text,
        t.PIPELINE_REQUEST_SIZE: len(text),
        t.PIPELINE_REQUEST_SHA256: hashlib.sha256(text.encode()).hexdigest(),
        t.PIPELINE_REQUEST_TRUNCATED: False,
        t.PIPELINE_REQUEST_REDACTED: True,
    }
    [link] = run.links
    assert (link.context.trace_id, link.context.span_id) == (
        int(original, 16),
        0x0123456789ABCDEF,
    )
    assert link.context.trace_flags.sampled
    assert link.context.is_remote is True
    assert dict(link.attributes or {}) == {
        t.LINK_RELATION: t.LINK_REPLAY_OF,
        t.LINK_SPAN_ID_DERIVED: True,
    }


@pytest.mark.parametrize(
    ("replay_of", "span_id"),
    [
        ("1" + "0" * 31, 1),  # low 64 bits all zero: span id 1
        ("0" * 31 + "1", 1),  # the smallest trace id
        ("f" * 32, 2**64 - 1),
        ("0" * 32, None),  # trace id 0 is invalid
        ("1" + "0" * 32, None),  # 2**128: too large
        ("not hex", None),
    ],
)
def test_a_replay_link_only_to_a_valid_trace(
    spans: Spans, replay_of: str, span_id: int | None
) -> None:
    """The link to a replayed run only for a run id that is a valid trace id (1 to 2**128 - 1),
    its span id never 0; the ``replay_of`` attribute either way."""
    span = _spans.start_run_span(spans.tracer, "p", {}, T0)
    event = _run_started(chain_pipeline(("a",)), replay_of=replay_of)
    _spans.describe_run_start(span, event, PayloadCapture(), None)
    span.end()
    [run] = spans.finished()
    assert dict(run.attributes or {})[t.PIPELINE_REPLAY_OF] == replay_of
    assert [(link.context.trace_id, link.context.span_id) for link in run.links] == (
        [] if span_id is None else [(int(replay_of, 16), span_id)]
    )


def test_a_run_links_to_its_outside_parent(spans: Spans) -> None:
    """A run started with a ``traceparent`` links to it (relation ``parent``); one started
    under a current span links to that; with neither, or a traceparent that does not parse, it
    has no link. Its own span is a root either way."""
    header = f"00-{TRACE:032x}-{PARENT:016x}-01"
    pipeline = chain_pipeline(("a",))
    for event in [
        _run_started(pipeline, parent_traceparent=header),
        _run_started(pipeline, parent_traceparent="garbage"),
        _run_started(pipeline),
    ]:
        span = _spans.start_run_span(spans.tracer, "p", {}, T0)
        _spans.describe_run_start(span, event, PayloadCapture(), None)
        span.end()
    current = NonRecordingSpan(
        SpanContext(TRACE + 1, PARENT + 1, is_remote=True, trace_flags=TraceFlags(1))
    )
    with trace.use_span(current):
        span = _spans.start_run_span(spans.tracer, "p", {}, T0)
        _spans.describe_run_start(span, _run_started(pipeline), PayloadCapture(), None)
        span.end()
    got = [
        [(lk.context.trace_id, lk.context.span_id, dict(lk.attributes or {})) for lk in s.links]
        for s in spans.finished()
    ]
    parent = {t.LINK_RELATION: t.LINK_PARENT}
    assert got == [[(TRACE, PARENT, parent)], [], [], [(TRACE + 1, PARENT + 1, parent)]]
    assert [s.parent for s in spans.finished()] == [None] * 4
    assert len({s.context.trace_id for s in spans.finished()} | {TRACE, TRACE + 1}) == 6


class RunHook:
    """A span hook that adds to the run span's start attributes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def run_started(self, event: RunStarted, attributes: dict[str, Any]) -> None:
        """Remember the run and the attributes, then add a definition of its own (a secret in
        it)."""
        self.seen.append((event.run_id, dict(attributes)))
        attributes[t.PIPELINE_DEFINITION] = f"token={TOKEN}"


def test_a_hook_adds_to_the_run_span_and_no_capture_no_request(spans: Spans) -> None:
    """A span hook sees the run span's start attributes and may add its own (recorded
    redacted); with payload capture off the request is not recorded."""
    hook = RunHook()
    span = _spans.start_run_span(spans.tracer, "p", {}, T0)
    event = _run_started(chain_pipeline(("a",)), request={"goal": "x"})
    _spans.describe_run_start(span, event, PayloadCapture(enabled=False), hook)
    span.end()
    [run] = spans.finished()
    expected = {t.CICD_PIPELINE_RUN_ID: "ab" * 16, t.PIPELINE_STARTED_BY: "api"}
    assert hook.seen == [("ab" * 16, expected)]
    assert dict(run.attributes or {}) == {
        **expected,
        t.PIPELINE_DEFINITION: f"token={REDACTED}",
    }


def test_skip_spans_of_the_stages_that_never_ran(tel: Telemetry) -> None:
    """At the run's end, a zero-length skip span for each stage that never ran: at its
    ``StageSkipped`` with its reason (and the stop's cancel reason and cause), else at the
    run's end as not reached; with the definition's attributes and the run id, execution
    ``{stage}.0.0``, attempt and instance 0. A stage that ran has none."""
    feed = Feed(tel, chain_pipeline(("a", "b", "c")))
    feed.start_run()
    feed.start("a")
    feed.tick()
    feed.finish("a", status=StageStatus.FAILURE, error="boom", error_type="RuntimeError")
    feed.tick()
    skipped_at = feed.now
    feed.emit(
        StageSkipped(
            run_id=feed.run_id,
            pipeline="chain",
            stage="b",
            reason="upstream failed",
            at=skipped_at,
            cancel_reason="stage 'a' failed (error_strategy: fail)",
            cancel_cause="a",
        )
    )
    feed.tick(3)
    feed.finish_run(RunStatus.FAILURE, error="stage 'a' failed", error_type="RuntimeError")
    skips = [
        s for s in tel.spans() if (s.attributes or {}).get(t.CICD_TASK_RUN_RESULT) == t.RESULT_SKIP
    ]
    assert [s.name for s in skips] == ["b", "c"]
    [run] = tel.by_name(t.run_span_name("chain"))
    b, c = skips
    for span, at in [(b, skipped_at), (c, feed.now)]:
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None
        assert span.parent.span_id == run.context.span_id
        assert (span.start_time, span.end_time) == (_spans.ns(at), _spans.ns(at))

    def tail(span: ReadableSpan) -> list[tuple[str, Any]]:
        items = list((span.attributes or {}).items())
        keys = [key for key, _ in items]
        return items[keys.index(t.CICD_PIPELINE_RUN_ID) :]

    assert tail(b) == [
        (t.CICD_PIPELINE_RUN_ID, feed.run_id),
        (t.CICD_TASK_RUN_ID, "b.0.0"),
        (t.CICD_TASK_RUN_RESULT, "skip"),
        (t.STAGE_STATUS, "skipped"),
        (t.STAGE_SKIP_REASON, "upstream failed"),
        (t.STAGE_CANCEL_REASON, "stage 'a' failed (error_strategy: fail)"),
        (t.STAGE_CANCEL_CAUSE, "a"),
        (t.STAGE_ATTEMPT, 0),
        (t.STAGE_INSTANCE, 0),
    ]
    assert tail(c) == [
        (t.CICD_PIPELINE_RUN_ID, feed.run_id),
        (t.CICD_TASK_RUN_ID, "c.0.0"),
        (t.CICD_TASK_RUN_RESULT, "skip"),
        (t.STAGE_STATUS, "skipped"),
        (t.STAGE_SKIP_REASON, "not reached: the run ended (failure)"),
        (t.STAGE_ATTEMPT, 0),
        (t.STAGE_INSTANCE, 0),
    ]
    assert dict(c.attributes or {})[t.CICD_TASK_NAME] == "c"
    assert list(dict(c.attributes or {})[t.STAGE_UPSTREAM]) == ["b"]


def _secretive() -> Pipeline:
    return Pipeline(
        name="secretive",
        stages=(
            Stage("first", "python", (Manual(approval_required=False),)),
            Stage(
                "second",
                "python",
                (OnCompletion("first"), OnCondition(f'request.key == "{TOKEN}"')),
            ),
        ),
    )


def _evaluated(index: int, description: str, **fields: Any) -> TriggerEvaluated:
    values: dict[str, Any] = {
        "run_id": "ab" * 16,
        "pipeline": "secretive",
        "stage": "second",
        "trigger_index": index,
        "trigger_type": "on_condition",
        "description": description,
        "satisfied": True,
        "stage_ready": False,
        "at": T0 + 1,
        "detail": "",
    }
    values.update(fields)
    return TriggerEvaluated(**values)


class _CountedSet(set[str]):
    """A set that counts the membership tests asked of it one name at a time."""

    asked = 0

    def __contains__(self, name: object) -> bool:
        self.asked += 1
        return super().__contains__(name)


def test_a_run_whose_every_stage_ran_is_not_walked_for_skip_spans(tel: Telemetry) -> None:
    """The run's end is handled on the event loop's thread: when every stage ran (the usual
    end) its stages are not looked up one by one for skip spans, and there are none."""
    feed = Feed(tel, chain_pipeline(("a", "b", "c")))
    feed.start_run()
    for stage in ("a", "b", "c"):
        feed.start(stage)
        feed.finish(stage)
    run = feed.monitor._recorder.runs[feed.run_id]
    ran = run.ran = _CountedSet(run.ran)
    feed.finish_run()
    skips = [
        s for s in tel.spans() if (s.attributes or {}).get(t.CICD_TASK_RUN_RESULT) == t.RESULT_SKIP
    ]
    assert ([], 0) == (skips, ran.asked)


@pytest.mark.parametrize("with_info", [True, False])
def test_trigger_evaluated_events(spans: Spans, with_info: bool) -> None:
    """``trigger.evaluated``: stage, index, type, description, the two flags and the detail,
    at the evaluation's time, redacted the same with the definition's info (the description
    then taken from it where it matches the trigger at that index) and without."""
    pipeline = _secretive()
    info = pipeline_info(pipeline).stages["second"] if with_info else None
    described = [trigger.describe() for trigger in pipeline.stage("second").triggers]
    span = spans.tracer.start_span("second", start_time=_spans.ns(T0))
    cases = [
        _evaluated(1, described[1], detail="false"),
        _evaluated(0, described[1], trigger_type="on_completion", stage_ready=True),
        _evaluated(2, "token=abc123", satisfied=False, detail=f"secret {TOKEN}"),
        _evaluated(-1, described[0], trigger_type="mystery type", detail="true"),
        _evaluated(0, described[0], stage="first"),
    ]
    for event in cases:
        _spans.add_trigger_evaluated(span, event, info)
    span.end()
    [recorded] = spans.finished()
    redacted_condition = described[1].replace(TOKEN, REDACTED)

    def expected(event: TriggerEvaluated, description: str, detail: str) -> dict[str, Any]:
        return {
            t.CICD_TASK_NAME: event.stage,
            t.TRIGGER_INDEX: event.trigger_index,
            t.TRIGGER_TYPE: event.trigger_type,
            t.TRIGGER_DESCRIPTION: description,
            t.TRIGGER_SATISFIED: event.satisfied,
            t.TRIGGER_STAGE_READY: event.stage_ready,
            t.TRIGGER_DETAIL: detail,
        }

    at = _spans.ns(T0 + 1)
    assert _events(recorded) == [
        (t.EVENT_TRIGGER_EVALUATED, at, expected(cases[0], redacted_condition, "false")),
        (t.EVENT_TRIGGER_EVALUATED, at, expected(cases[1], redacted_condition, "")),
        (
            t.EVENT_TRIGGER_EVALUATED,
            at,
            expected(cases[2], f"token={REDACTED}", "secret [REDACTED]"),
        ),
        (t.EVENT_TRIGGER_EVALUATED, at, expected(cases[3], described[0], "true")),
        (t.EVENT_TRIGGER_EVALUATED, at, expected(cases[4], described[0], "")),
    ]
    assert TOKEN not in repr(_events(recorded))


def test_trigger_evaluated_on_a_plain_span_and_a_span_not_recording(spans: Spans) -> None:
    """On a span of the SDK's own tracer the event is the same (walked by the SDK, unredacted
    keys and values of the event as given); a span not recording gets nothing and raises
    nothing."""
    info = pipeline_info(_secretive()).stages["second"]
    plain = spans.provider.get_tracer("plain").start_span("plain")
    _spans.add_trigger_evaluated(plain, _evaluated(0, "on completion of first"), info)
    plain.end()
    [recorded] = spans.finished()
    assert _events(recorded) == [
        (
            t.EVENT_TRIGGER_EVALUATED,
            _spans.ns(T0 + 1),
            {
                t.CICD_TASK_NAME: "second",
                t.TRIGGER_INDEX: 0,
                t.TRIGGER_TYPE: "on_condition",
                t.TRIGGER_DESCRIPTION: "on completion of first",
                t.TRIGGER_SATISFIED: True,
                t.TRIGGER_STAGE_READY: False,
                t.TRIGGER_DETAIL: "",
            },
        )
    ]
    silent = NonRecordingSpan(SpanContext(TRACE, PARENT, is_remote=False))
    _spans.add_trigger_evaluated(silent, _evaluated(0, "x"), info)
    _spans.add_approval_requested(
        silent, ApprovalRequested(run_id="r", pipeline="p", stage="s", at=T0)
    )
    _spans.describe_run_start(silent, _run_started(_secretive()), PayloadCapture(), RunHook())


def test_the_run_span_s_events(spans: Spans) -> None:
    """``approval.requested`` (its timeout as a float, none without one), ``approval.resolved``,
    ``stage.retrying`` and ``pipeline.event.published`` (its source execution, when it has
    one, and its payload like ``stage.input``), each at its own time."""
    span = spans.tracer.start_span("RUN p", start_time=_spans.ns(T0))
    ids = {"run_id": "r", "pipeline": "p"}
    _spans.add_approval_requested(
        span, ApprovalRequested(**ids, stage="deploy", at=T0 + 1, timeout=60)
    )
    _spans.add_approval_requested(span, ApprovalRequested(**ids, stage="deploy", at=T0 + 2))
    _spans.add_approval_resolved(
        span, ApprovalResolved(**ids, stage="deploy", approved=True, at=T0 + 3, by="alice")
    )
    _spans.add_approval_resolved(
        span,
        ApprovalResolved(**ids, stage="deploy", approved=False, at=T0 + 4, timed_out=True),
    )
    retrying = StageRetrying(
        **ids,
        stage="build",
        instance=0,
        attempt=1,
        task_run_id="build.0.1",
        delay=2,
        error="boom",
        error_type="OSError",
        at=T0 + 5,
    )
    _spans.add_stage_retrying(span, retrying)
    capture = PayloadCapture()

    def published(n: int, payload: dict[str, Any], source: TaskRunRef | None) -> EventPublished:
        kind = "built" if source else "poke"
        return EventPublished(
            **ids, event_type=kind, payload=payload, event_id=n, at=T0 + 3 + n, source=source
        )

    _spans.add_event_published(span, published(3, {"n": 1}, TaskRunRef("build", 1, 2)), capture)
    _spans.add_event_published(span, published(4, {}, None), capture)
    _spans.add_event_published(span, published(5, {"n": 2}, None), PayloadCapture(enabled=False))
    span.end()
    [run] = spans.finished()

    def payload(text: str) -> dict[str, Any]:
        return {
            t.PAYLOAD_JSON: text,
            t.PAYLOAD_SIZE: len(text),
            t.PAYLOAD_SHA256: hashlib.sha256(text.encode()).hexdigest(),
            t.PAYLOAD_TRUNCATED: False,
            t.PAYLOAD_REDACTED: False,
        }

    ns = _spans.ns
    assert _events(run) == [
        (
            t.EVENT_APPROVAL_REQUESTED,
            ns(T0 + 1),
            {t.CICD_TASK_NAME: "deploy", t.APPROVAL_TIMEOUT: 60.0},
        ),
        (t.EVENT_APPROVAL_REQUESTED, ns(T0 + 2), {t.CICD_TASK_NAME: "deploy"}),
        (
            t.EVENT_APPROVAL_RESOLVED,
            ns(T0 + 3),
            {
                t.CICD_TASK_NAME: "deploy",
                t.APPROVAL_APPROVED: True,
                t.APPROVAL_BY: "alice",
                t.APPROVAL_TIMED_OUT: False,
            },
        ),
        (
            t.EVENT_APPROVAL_RESOLVED,
            ns(T0 + 4),
            {
                t.CICD_TASK_NAME: "deploy",
                t.APPROVAL_APPROVED: False,
                t.APPROVAL_BY: "",
                t.APPROVAL_TIMED_OUT: True,
            },
        ),
        (
            t.EVENT_STAGE_RETRYING,
            ns(T0 + 5),
            {
                t.CICD_TASK_NAME: "build",
                t.CICD_TASK_RUN_ID: "build.0.1",
                t.RETRY_DELAY: 2.0,
                t.ERROR_TYPE: "OSError",
            },
        ),
        (
            t.EVENT_PUBLISHED,
            ns(T0 + 6),
            {
                t.PUBLISHED_EVENT_TYPE: "built",
                t.PUBLISHED_EVENT_ID: 3,
                t.PUBLISHED_EVENT_SOURCE: "build.1.2",
                **payload('{"n":1}'),
            },
        ),
        (
            t.EVENT_PUBLISHED,
            ns(T0 + 7),
            {t.PUBLISHED_EVENT_TYPE: "poke", t.PUBLISHED_EVENT_ID: 4, **payload("{}")},
        ),
        (
            t.EVENT_PUBLISHED,
            ns(T0 + 8),
            {t.PUBLISHED_EVENT_TYPE: "poke", t.PUBLISHED_EVENT_ID: 5},
        ),
    ]
    types = [type(v) for _, _, a in _events(run)[:1] for v in a.values()]
    assert types == [str, float]
    assert type(_events(run)[4][2][t.RETRY_DELAY]) is float
