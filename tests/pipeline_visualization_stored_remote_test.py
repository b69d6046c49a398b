"""watch_stored_run over a remote source (Tempo here; Jaeger and OTLP-JSON files alike): a
backend receives each span once it ends, the run span at the run's end, so what a stage not
started waits for is known to it only once nothing waits any more."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider

from pipeline_engine_support import Resolver, after, pipeline, stage
from pipeline_replay_support import cut_like_tempo
from pipeline_tracking_support import Backend, make_provider, serve
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.model import Manual, TriggerMode
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.tracking import (
    SpanRecord,
    TempoSource,
    encode_traces,
    span_record_from_sdk,
)
from taskdaemon.pipeline.visualization import DagSnapshot, watch_stored_run
from taskdaemon.pipeline.visualization._terminal import stage_rows

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


async def _spans() -> tuple[str, list[SpanRecord], list[SpanRecord]]:
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


def _trace(spans: list[SpanRecord]) -> dict[str, Any]:
    return {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}


async def _watched(cut: bool) -> list[DagSnapshot]:
    """Every snapshot of HELD's run read from a Tempo that has the spans ended while deploy
    waits, then all of them (each string attribute cut at 2,048 bytes when ``cut``, Tempo's
    default)."""
    run_id, held, ended = await _spans()
    snapshots = []
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/v2/traces/{run_id}", _trace(held))
        async for snapshot in watch_stored_run(source, run_id, interval=0.01):
            snapshots.append(snapshot)
            tempo.route(f"/api/v2/traces/{run_id}", _trace(cut_like_tempo(ended) if cut else ended))
    return snapshots


def _rows(snapshot: DagSnapshot) -> dict[str, tuple[str, str]]:
    return {row.stage: (row.state, row.waiting_for) for row in stage_rows(snapshot, 0.0)}


async def test_a_running_run_shows_its_ended_stages_only() -> None:
    """While deploy waits, Tempo has build's span and nothing else: no run span, so no
    definition, and no span of deploy or notify. The run is drawn with build alone; no stage
    is listed as waiting for ``unknown``, none is listed at all. Its end brings every span."""
    first, *_, last = await _watched(cut=False)
    assert (_rows(first), [node.name for node in last.nodes]) == (
        {"build": ("success", "")},
        ["build", "deploy", "notify"],
    )


async def test_the_definition_a_backend_cut_is_not_used() -> None:
    """At the run's end the run span brings the definition: whole, it is drawn over; cut at
    Tempo's default limit, it no longer hashes to the run's definition hash and is not."""
    assert (HELD, None) == (
        (await _watched(cut=False))[-1].definition,
        (await _watched(cut=True))[-1].definition,
    )
