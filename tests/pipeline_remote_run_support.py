"""A run as a remote backend (Tempo, Jaeger) has it while its process waits, and once it ended:
HELD waits for an approval between its first stage and the rest, so the spans ended by then
are what Tempo would hold for ever had the run's process died there."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider

from pipeline_engine_support import Resolver, after, pipeline, stage
from pipeline_tracking_support import make_provider
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.model import Manual, TriggerMode
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import SpanRecord, encode_traces, span_record_from_sdk

# Descriptions long enough that the recorded definition is over Tempo's default attribute
# limit (2,048 bytes), as any pipeline of a dozen stages is.
ABOUT = "a stage described at length, " * 30
HELD = pipeline(
    stage("build", description=ABOUT),
    stage(
        "deploy",
        *after("build"),
        Manual(approval_required=True),
        trigger_mode=TriggerMode.ALL,
        description=ABOUT,
    ),
    stage("notify", *after("deploy"), description=ABOUT),
    name="held",
)


async def held_run_spans() -> tuple[str, list[SpanRecord], list[SpanRecord]]:
    """HELD run by the real engine and monitor: its id, the spans ended while deploy waited
    for its approval (what a backend has then), and all of them once the run ended."""
    provider, exporter = make_provider()
    monitor = PipelineMonitor(tracer_provider=provider, meter_provider=MeterProvider())
    try:
        async with Engine(resolver=Resolver({}), observers=[monitor]) as engine:
            handle = await engine.start_run(HELD)
            while not exporter.get_finished_spans():
                await asyncio.sleep(0.01)
                monitor.flush()
            held = [span_record_from_sdk(s) for s in exporter.get_finished_spans()]
            handle.approve("deploy", by="test")
            await handle.wait()
        monitor.flush()
        ended = [span_record_from_sdk(s) for s in exporter.get_finished_spans()]
    finally:
        monitor.close()
        provider.shutdown()
    return handle.run_id, held, ended


def tempo_trace(spans: list[SpanRecord]) -> dict[str, Any]:
    """Tempo's answer to ``GET /api/v2/traces/<id>`` holding ``spans``."""
    return {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}


def jaeger_trace(spans: list[SpanRecord]) -> dict[str, Any]:
    """Jaeger's answer to ``GET /api/v3/traces/<id>`` holding ``spans``, in the shape of
    ``tests/fixtures/jaeger`` (its README): ``{"result": <OTLP JSON>}`` with hex ids, enums as
    integers, ``flags`` as the Python SDK sets them, each attribute list sorted by key and each
    span's events by name (Jaeger's adjusters)."""
    traces = encode_traces(spans, ids="hex", enums="int")
    for resource in traces["resourceSpans"]:
        resource["resource"]["attributes"].sort(key=lambda item: item["key"])
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                span["flags"] = 257
                span["attributes"].sort(key=lambda item: item["key"])
                for event in span.get("events", ()):
                    event["attributes"].sort(key=lambda item: item["key"])
                span.get("events", []).sort(key=lambda event: event["name"])
    return {"result": traces}


def earlier(span: SpanRecord, ns: int) -> SpanRecord:
    """``span`` and its events as they were had it run ``ns`` nanoseconds earlier."""
    return replace(
        span,
        start_ns=span.start_ns - ns,
        end_ns=None if span.end_ns is None else span.end_ns - ns,
        events=tuple(replace(event, time_ns=event.time_ns - ns) for event in span.events),
    )
