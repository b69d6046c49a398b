"""PipelineMonitor spans: the trace of a run, fed with engine event records by hand."""

from __future__ import annotations

import hashlib
import json
import logging
import types
from pathlib import PurePosixPath
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from pipeline_monitor_support import (
    T0,
    T0_NS,
    Feed,
    Telemetry,
    chain_pipeline,
    event_attributes,
    example_pipeline,
    play_example_run,
    relations,
)
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import StageStarted, TaskRunRef
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import REDACTED, CapturedPayload, PayloadCapture
from taskdaemon.pipeline.state import RunStatus, StageStatus


def _tree(spans: list[ReadableSpan]) -> list[tuple[str, str, str | None]]:
    """(name, kind, parent name) sorted: the shape of a trace."""
    names = {s.context.span_id: s.name for s in spans}
    return sorted(
        (s.name, s.kind.name, names.get(s.parent.span_id) if s.parent else None) for s in spans
    )


def test_example_run_tree(tel: Telemetry) -> None:
    """The example run is one trace: a SERVER run span over one INTERNAL span per execution."""
    play_example_run(Feed(tel, example_pipeline()))
    spans = tel.spans()
    assert 1 == len({s.context.trace_id for s in spans})
    assert [
        ("RUN feature-delivery", "SERVER", None),
        ("implementation", "INTERNAL", "RUN feature-delivery"),
        ("implementation", "INTERNAL", "RUN feature-delivery"),
        ("planning", "INTERNAL", "RUN feature-delivery"),
        ("release", "INTERNAL", "RUN feature-delivery"),
        ("specification", "INTERNAL", "RUN feature-delivery"),
    ] == _tree(spans)


def test_run_id_is_the_trace_id(tel: Telemetry) -> None:
    """The run id the monitor allocates is the run span's trace id, in 32 lowercase hex."""
    feed = Feed(tel, example_pipeline())
    play_example_run(feed)
    (run,) = tel.by_name("RUN feature-delivery")
    assert format_trace_id(run.context.trace_id) == feed.run_id
    assert feed.run_id == run.attributes[t.CICD_PIPELINE_RUN_ID]
    assert all(s.attributes[t.CICD_PIPELINE_RUN_ID] == feed.run_id for s in tel.spans())


def test_run_span_attributes(tel: Telemetry) -> None:
    """The run span carries the cicd attributes and the pipeline definition."""
    pipeline = example_pipeline()
    feed = Feed(tel, pipeline)
    play_example_run(feed)
    (run,) = tel.by_name("RUN feature-delivery")
    assert {
        t.CICD_PIPELINE_NAME: "feature-delivery",
        t.CICD_PIPELINE_RUN_ID: feed.run_id,
        t.CICD_PIPELINE_ACTION_NAME: "RUN",
        t.CICD_PIPELINE_RESULT: "success",
        t.PIPELINE_DEFINITION_HASH: pipeline.definition_hash,
        t.PIPELINE_STAGES: ("planning", "specification", "implementation", "release"),
        t.PIPELINE_STAGE_LOOPS: ("plan", "spec", "phase", "command"),
        t.PIPELINE_EDGE_SPECS: (
            '["planning","specification",["on_completion","planning",true]]',
            '["specification","implementation",'
            '["on_event","spec.ready","event.spec.dependencies_met == true"]]',
            '["implementation","release",["on_completion","implementation",true]]',
        ),
        t.PIPELINE_STARTED_BY: "api",
        t.PIPELINE_CONCURRENCY: 4,
        t.PIPELINE_ERROR_STRATEGY: "fail",
        t.PIPELINE_REQUEST: '{"api_token":"[REDACTED]","goal":"ship it"}',
        t.PIPELINE_REQUEST_SIZE: 43,
        t.PIPELINE_REQUEST_SHA256: hashlib.sha256(
            b'{"api_token":"[REDACTED]","goal":"ship it"}'
        ).hexdigest(),
        t.PIPELINE_REQUEST_TRUNCATED: False,
        t.PIPELINE_REQUEST_REDACTED: True,
        t.SCHEMA_VERSION: 3,
        t.PIPELINE_DEFINITION: pipeline.canonical_json,
        t.PIPELINE_DEFINITION_SIZE: len(pipeline.canonical_json.encode()),
        t.PIPELINE_DEFINITION_TRUNCATED: False,
    } == dict(run.attributes)
    assert StatusCode.UNSET == run.status.status_code
    assert (T0_NS, T0_NS + 12_250_000_000) == (run.start_time, run.end_time)


def test_stage_span_attribute_names_and_types(tel: Telemetry) -> None:
    """A stage span has exactly the documented attributes, each with its value type."""
    play_example_run(Feed(tel, example_pipeline()))
    (release,) = tel.by_name("release")
    assert {
        t.CICD_PIPELINE_NAME: str,
        t.CICD_PIPELINE_RUN_ID: str,
        t.CICD_TASK_NAME: str,
        t.CICD_TASK_RUN_ID: str,
        t.CICD_TASK_RUN_RESULT: str,
        t.STAGE_LOOP: str,
        t.STAGE_ATTEMPT: int,
        t.STAGE_INSTANCE: int,
        t.STAGE_UPSTREAM: tuple,
        t.STAGE_TRIGGERS: tuple,
        t.STAGE_TRIGGER_SPECS: tuple,
        t.STAGE_FIRED_TRIGGERS: tuple,
        t.STAGE_TRIGGER_MODE: str,
        t.STAGE_QUEUE_TIME: float,
        t.STAGE_TRIGGER_WAIT: float,
        t.STAGE_QUEUED_AT: int,
        t.STAGE_CONSIDERED_AT: int,
        t.STAGE_CPU_TIME: float,
        t.STAGE_PEAK_MEMORY: int,
        t.STAGE_STATUS: str,
    } == {key: type(value) for key, value in release.attributes.items()}
    assert {
        t.CICD_TASK_NAME: "release",
        t.CICD_TASK_RUN_ID: "release.0.1",
        t.CICD_TASK_RUN_RESULT: "success",
        t.STAGE_LOOP: "command",
        t.STAGE_UPSTREAM: ("implementation",),
        t.STAGE_TRIGGERS: (
            "on completion of implementation",
            "on condition size(stages.specification.outputs.specs) > 0",
            "manual approval (timeout 3600s)",
        ),
        t.STAGE_TRIGGER_SPECS: (
            '["on_completion","implementation",true]',
            '["on_condition","size(stages.specification.outputs.specs) > 0"]',
            '["manual",true,3600]',
        ),
        t.STAGE_TRIGGER_MODE: "all",
        t.STAGE_QUEUE_TIME: 0.25,
        t.STAGE_TRIGGER_WAIT: 0.5,
        t.STAGE_CPU_TIME: 0.02,
        t.STAGE_PEAK_MEMORY: 9_000_000,
        t.STAGE_STATUS: "success",
    }.items() <= dict(release.attributes).items()
    assert SpanKind.INTERNAL == release.kind
    assert release.attributes[t.STAGE_QUEUED_AT] == release.start_time - 250_000_000


def test_stage_span_times_follow_the_events(tel: Telemetry) -> None:
    """A stage span starts at StageStarted.at and ends at StageFinished.at."""
    play_example_run(Feed(tel, example_pipeline()))
    (planning,) = tel.by_name("planning")
    assert (T0_NS + 250_000_000, T0_NS + 2_250_000_000) == (
        planning.start_time,
        planning.end_time,
    )


def test_published_events_land_on_the_emitting_span(tel: Telemetry) -> None:
    """spec.ready events are span events of the specification span with their payload."""
    play_example_run(Feed(tel, example_pipeline()))
    (spec,) = tel.by_name("specification")
    published = [dict(e.attributes or {}) for e in spec.events if e.name == t.EVENT_PUBLISHED]
    assert [1, 2] == [p[t.PUBLISHED_EVENT_ID] for p in published]
    assert {
        t.PUBLISHED_EVENT_TYPE: "spec.ready",
        t.PUBLISHED_EVENT_ID: 1,
        t.PUBLISHED_EVENT_SOURCE: "specification.0.1",
        t.PAYLOAD_JSON: '{"spec":{"dependencies_met":true,"id":0}}',
        t.PAYLOAD_SIZE: 41,
        t.PAYLOAD_SHA256: hashlib.sha256(b'{"spec":{"dependencies_met":true,"id":0}}').hexdigest(),
        t.PAYLOAD_TRUNCATED: False,
        t.PAYLOAD_REDACTED: False,
    } == published[0]


def test_fan_out_links_each_instance_to_the_emitter(tel: Telemetry) -> None:
    """Each implementation instance is its own span, linked to the specification execution."""
    play_example_run(Feed(tel, example_pipeline()), specs=3)
    spans = tel.spans()
    instances = sorted(tel.by_name("implementation"), key=lambda s: s.attributes[t.STAGE_INSTANCE])
    assert ["implementation.0.1", "implementation.1.1", "implementation.2.1"] == [
        s.attributes[t.CICD_TASK_RUN_ID] for s in instances
    ]
    assert [[("triggered_by", "specification.0.1")]] * 3 == [relations(s, spans) for s in instances]
    assert ["spec.ready"] * 3 == [s.attributes[t.STAGE_EVENT_TYPE] for s in instances]


def test_release_links_every_implementation_instance(tel: Telemetry) -> None:
    """An ALL-triggered stage links to every execution that fired it."""
    play_example_run(Feed(tel, example_pipeline()))
    spans = tel.spans()
    (release,) = tel.by_name("release")
    assert [
        ("triggered_by", "implementation.0.1"),
        ("triggered_by", "implementation.1.1"),
    ] == relations(release, spans)


def test_stage_input_and_output_events(tel: Telemetry) -> None:
    """stage.input at the start and stage.output at the end carry the payload JSON."""
    play_example_run(Feed(tel, example_pipeline()))
    (planning,) = tel.by_name("planning")
    assert [t.EVENT_STAGE_INPUT, t.EVENT_STAGE_OUTPUT] == [e.name for e in planning.events]
    assert '{"goal":"ship it"}' == event_attributes(planning, t.EVENT_STAGE_INPUT)[t.PAYLOAD_JSON]
    assert '{"plan":["a","b"]}' == event_attributes(planning, t.EVENT_STAGE_OUTPUT)[t.PAYLOAD_JSON]
    assert [planning.start_time, planning.end_time] == [e.timestamp for e in planning.events]


def test_approval_and_trigger_events_on_the_run_span(tel: Telemetry) -> None:
    """Approvals and trigger evaluations before a stage runs are events of the run span."""
    play_example_run(Feed(tel, example_pipeline()))
    (run,) = tel.by_name("RUN feature-delivery")
    release_events = [
        e.name for e in run.events if (e.attributes or {}).get(t.CICD_TASK_NAME) == "release"
    ]
    assert [
        t.EVENT_TRIGGER_EVALUATED,
        t.EVENT_TRIGGER_EVALUATED,
        t.EVENT_APPROVAL_REQUESTED,
        t.EVENT_APPROVAL_RESOLVED,
        t.EVENT_TRIGGER_EVALUATED,
    ] == release_events
    assert {
        t.CICD_TASK_NAME: "release",
        t.APPROVAL_APPROVED: True,
        t.APPROVAL_BY: "alice",
        t.APPROVAL_TIMED_OUT: False,
    } == event_attributes(run, t.EVENT_APPROVAL_RESOLVED)
    assert {t.CICD_TASK_NAME: "release", t.APPROVAL_TIMEOUT: 3600.0} == event_attributes(
        run, t.EVENT_APPROVAL_REQUESTED
    )
    assert {
        t.CICD_TASK_NAME: "planning",
        t.TRIGGER_INDEX: 0,
        t.TRIGGER_TYPE: "manual",
        t.TRIGGER_DESCRIPTION: "on run start",
        t.TRIGGER_SATISFIED: True,
        t.TRIGGER_STAGE_READY: True,
        t.TRIGGER_DETAIL: "",
    } == event_attributes(run, t.EVENT_TRIGGER_EVALUATED)


def test_trigger_event_goes_to_an_open_stage_span(tel: Telemetry) -> None:
    """A trigger evaluated while an execution of its stage is open lands on that span."""
    feed = Feed(tel, example_pipeline())
    feed.start_run()
    feed.start("planning")
    feed.trigger("planning", 0, "manual")
    feed.finish("planning")
    feed.finish_run()
    (planning,) = tel.by_name("planning")
    assert t.EVENT_TRIGGER_EVALUATED in [e.name for e in planning.events]


def test_traceparent_of_a_stage(tel: Telemetry) -> None:
    """stage_environment answers the W3C traceparent of the execution's span."""
    feed = Feed(tel, example_pipeline())
    feed.start_run()
    started = feed.start("planning")
    environment = feed.monitor.stage_environment(started)
    feed.finish("planning")
    feed.finish_run()
    (planning,) = tel.by_name("planning")
    expected = (
        f"00-{format_trace_id(planning.context.trace_id)}-"
        f"{format_span_id(planning.context.span_id)}-{planning.context.trace_flags:02x}"
    )
    assert {"TRACEPARENT": expected} == dict(environment)


def test_traceparent_of_an_unknown_execution_is_empty(tel: Telemetry) -> None:
    """stage_environment answers nothing for an execution the monitor does not know."""
    feed = Feed(tel, example_pipeline())
    feed.start_run()
    started = feed.start("planning")
    unknown = StageStarted(
        **{f: getattr(started, f) for f in started.__slots__} | {"run_id": "0" * 32}
    )
    assert {} == dict(feed.monitor.stage_environment(unknown))


def test_payload_capture_redacts_by_key_pattern() -> None:
    """Values under secret-looking keys are redacted at any depth, case-insensitively."""
    captured = PayloadCapture().capture(
        {"user": "bob", "Password": "x", "nested": [{"API_KEY": "k", "ok": 1}]}
    )
    assert (
        f'{{"Password":"{REDACTED}","nested":[{{"API_KEY":"{REDACTED}","ok":1}}],"user":"bob"}}'
        == (captured.json)
    )


def test_payload_capture_caps_and_hashes_the_full_json() -> None:
    """Capped JSON keeps max_bytes bytes; size and sha256 describe the full JSON."""
    payload = {"text": "é" * 100}
    full = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    captured = PayloadCapture(max_bytes=11).capture(payload)
    assert (
        CapturedPayload('{"text":"é', len(full), hashlib.sha256(full).hexdigest(), truncated=True)
        == captured
    )


def test_payload_capture_writes_what_json_has_no_form_for() -> None:
    """Sets become arrays, other mappings objects, a standard type its str, a type of the
    caller's its name (its ``__str__`` is never called: payloads.value_text); what cannot be
    written at all (a lone surrogate, an int past 64 bits) is captured as its repr, and a
    cycle, which redaction cannot walk, by its type alone."""
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    capture = PayloadCapture()
    assert '{"m":{"z":1},"n":"<pipeline_monitor_test._Named object>","s":[1,2],"t":"a/b"}' == (
        capture.capture(
            {
                "s": {2, 1},
                "m": types.MappingProxyType({"z": 1}),
                "t": PurePosixPath("a/b"),
                "n": _Named("Telemetry"),
            }
        ).json
    )
    assert '"<dict that cannot be serialised>"' == capture.capture(cycle).json
    assert "\\ud800" in capture.capture({"u": "\ud800"}).json
    assert "\"{'big': 1180591620717411303424}\"" == capture.capture({"big": 2**70}).json


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


def test_payload_capture_custom_patterns() -> None:
    """Redaction patterns are configurable."""
    captured = PayloadCapture(redact_patterns=("^ssn$",)).capture({"ssn": 1, "token": 2})
    assert '{"ssn":"[REDACTED]","token":2}' == captured.json


def test_payload_events_are_capped_on_the_span(tel: Telemetry) -> None:
    """stage.input on the span is capped and redacted, with the full size and hash."""
    feed = Feed(tel, chain_pipeline(("a",)), capture=PayloadCapture(max_bytes=20))
    feed.start_run()
    feed.start("a", inputs={"secret": "s3cr3t", "data": "x" * 50})
    feed.finish("a")
    feed.finish_run()
    (a,) = tel.by_name("a")
    full = json.dumps({"data": "x" * 50, "secret": REDACTED}, separators=(",", ":")).encode()
    assert {
        t.PAYLOAD_JSON: full[:20].decode(),
        t.PAYLOAD_SIZE: len(full),
        t.PAYLOAD_SHA256: hashlib.sha256(full).hexdigest(),
        t.PAYLOAD_TRUNCATED: True,
        t.PAYLOAD_REDACTED: True,
    } == event_attributes(a, t.EVENT_STAGE_INPUT)


def test_disabled_capture_records_no_payload_events(tel: Telemetry) -> None:
    """PayloadCapture(enabled=False) leaves stage.input and stage.output out."""
    feed = Feed(tel, chain_pipeline(("a",)), capture=PayloadCapture(enabled=False))
    feed.start_run({"password": "x"})
    feed.start("a", inputs={"x": 1})
    feed.finish("a", outputs={"y": 2})
    feed.finish_run()
    (a,) = tel.by_name("a")
    (run,) = tel.by_name("RUN chain")
    assert ([], False) == ([e.name for e in a.events], t.PIPELINE_REQUEST in run.attributes)


def test_external_parent_is_linked_not_adopted(tel: Telemetry) -> None:
    """A run started under an external traceparent is a new trace linked to that parent."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run(parent_traceparent=parent)
    feed.finish_run(RunStatus.CANCELLED)
    (run,) = tel.by_name("RUN chain")
    (link,) = run.links
    assert run.parent is None
    assert run.context.trace_id != 0x0AF7651916CD43DD8448EB211C80319C
    assert (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        {t.LINK_RELATION: "parent"},
    ) == (
        link.context.trace_id,
        link.context.span_id,
        dict(link.attributes or {}),
    )


def test_manual_api_context_is_linked(tel: Telemetry) -> None:
    """start_run(context=...) links the run span to the span of that context."""
    monitor = PipelineMonitor(
        tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider
    )
    outer = tel.tracer_provider.get_tracer("test").start_span("outer")
    run_id = monitor.start_run(chain_pipeline(("a",)), context=trace.set_span_in_context(outer))
    monitor.finish_run(run_id, "cancelled")
    outer.end()
    (run,) = tel.by_name("RUN chain")
    assert [(outer.get_span_context().span_id, "parent")] == [
        (link.context.span_id, link.attributes[t.LINK_RELATION]) for link in run.links
    ]
    assert run.parent is None


def test_replay_links_to_the_original_trace(tel: Telemetry) -> None:
    """A replay's run span links to the original trace (derived span id) and names its run id."""
    original = "4bf92f3577b34da6a3ce929d0e0e4736"
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run(started_by="replay", replay_of=original)
    feed.finish_run(RunStatus.CANCELLED)
    (run,) = tel.by_name("RUN chain")
    (link,) = run.links
    assert (int(original, 16), int(original[16:], 16)) == (
        link.context.trace_id,
        link.context.span_id,
    )
    assert {t.LINK_RELATION: "replay_of", t.LINK_SPAN_ID_DERIVED: True} == dict(
        link.attributes or {}
    )
    assert (original, "replay") == (
        run.attributes[t.PIPELINE_REPLAY_OF],
        run.attributes[t.PIPELINE_STARTED_BY],
    )


def _shape(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """Everything about a trace but ids and times: names, kinds, parents, attributes with the
    run id blanked, link relations, event names, statuses."""
    names = {s.context.span_id: s.name for s in spans}
    task_ids = {s.context.span_id: s.attributes.get(t.CICD_TASK_RUN_ID) for s in spans}
    shape = []
    for s in spans:
        attributes = {
            k: v
            for k, v in s.attributes.items()
            if k not in (t.CICD_PIPELINE_RUN_ID, t.STAGE_CPU_TIME)
        }
        shape.append(
            (
                s.name,
                s.kind,
                names.get(s.parent.span_id) if s.parent else None,
                sorted(attributes.items()),
                sorted(
                    (str(link.attributes[t.LINK_RELATION]), task_ids[link.context.span_id])
                    for link in s.links
                ),
                [e.name for e in s.events],
                s.status.status_code,
            )
        )
    return sorted(shape, key=repr)


def test_manual_api_produces_the_observer_tree(tel: Telemetry) -> None:
    """The manual API and hand-fed events with the same story give the same trace."""
    pipeline = chain_pipeline(("a", "b", "c"))
    feed = Feed(tel, pipeline)
    feed.start_run({"goal": "g"})
    feed.start("a", inputs={"x": 1}, queue=0, wait=0)
    feed.finish("a", outputs={"y": 1})
    feed.start("b", fired_by=[TaskRunRef("a", 0, 1)], queue=0, wait=0)
    feed.finish(
        "b", status=StageStatus.FAILURE, error="boom", exception=ValueError("boom"), will_retry=True
    )
    feed.start("b", attempt=2, fired_by=[TaskRunRef("a", 0, 1)], queue=0, wait=0)
    feed.finish(
        "b", attempt=2, status=StageStatus.FAILURE, error="boom", exception=ValueError("boom")
    )
    feed.finish_run(RunStatus.FAILURE, error_type="stage_failed")
    observed = _shape(tel.spans())

    manual_tel = Telemetry()
    monitor = PipelineMonitor(
        tracer_provider=manual_tel.tracer_provider,
        meter_provider=manual_tel.meter_provider,
        clock=lambda: T0,
    )
    run_id = monitor.start_run(pipeline, {"goal": "g"})
    monitor.stage_started(run_id, "a", inputs={"x": 1})
    monitor.stage_completed(run_id, "a", {"y": 1})
    monitor.stage_started(run_id, "b")
    monitor.stage_failed(run_id, "b", ValueError("boom"), will_retry=True)
    monitor.stage_started(run_id, "b")
    monitor.stage_failed(run_id, "b", ValueError("boom"))
    monitor.finish_run(run_id)
    manual = _shape(manual_tel.spans())
    manual_tel.shutdown()
    # Only the fired triggers differ: the engine reports them, the manual API cannot know them.
    strip = t.STAGE_FIRED_TRIGGERS
    assert [
        (*row[:3], [kv for kv in row[3] if kv[0] != strip], *row[4:]) for row in observed
    ] == manual


def test_manual_api_unknown_run_raises() -> None:
    """The manual API refuses a run id it did not start."""
    from taskdaemon.pipeline.errors import RunNotFoundError

    monitor = PipelineMonitor(tracer_provider=TracerProvider())
    with pytest.raises(RunNotFoundError):
        monitor.stage_started("f" * 32, "a")


def test_noop_provider_allocates_no_run_id() -> None:
    """With the no-op tracer provider the monitor names no run and still counts it."""
    monitor = PipelineMonitor(tracer_provider=trace.NoOpTracerProvider())
    pipeline = chain_pipeline(("a",))
    assert monitor.allocate_run_id(pipeline, {}) is None
    run_id = monitor.start_run(pipeline)
    monitor.stage_started(run_id, "a")
    monitor.stage_completed(run_id, "a", {})
    monitor.finish_run(run_id)
    assert (1, 1.0) == (monitor.get_metrics().total_runs, monitor.get_metrics().success_rate)


class _CountingCapture(PayloadCapture):
    calls = 0

    def capture(self, payload: Any) -> CapturedPayload:
        type(self).calls += 1
        return super().capture(payload)


def test_unsampled_runs_skip_payload_work() -> None:
    """When spans are not recorded, payloads are never serialised."""
    telemetry = Telemetry(tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    _CountingCapture.calls = 0
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        capture=_CountingCapture(),
    )
    run_id = monitor.start_run(chain_pipeline(("a",)), {"goal": "x"})
    monitor.stage_started(run_id, "a", {"x": 1})
    monitor.stage_completed(run_id, "a", {"y": 1})
    monitor.finish_run(run_id)
    assert (0, [], 1) == (
        _CountingCapture.calls,
        telemetry.spans(),
        monitor.get_metrics().total_runs,
    )
    telemetry.shutdown()


class _BrokenCapture(PayloadCapture):
    def capture(self, payload: Any) -> CapturedPayload:
        raise RuntimeError("capture broke")


def test_observer_never_raises(tel: Telemetry, caplog: pytest.LogCaptureFixture) -> None:
    """A failure inside the monitor is logged and swallowed."""
    feed = Feed(tel, chain_pipeline(("a",)), capture=_BrokenCapture())
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.monitor"):
        feed.start_run({"goal": "x"})
    assert ["monitor failed on RunStarted"] == [r.getMessage() for r in caplog.records]


def test_events_of_unknown_runs_are_ignored(tel: Telemetry) -> None:
    """Records of a run the monitor never saw start produce nothing."""
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.run_id = "1" * 32
    feed.start("a")
    feed.finish("a")
    feed.finish_run()
    assert [] == tel.spans()
