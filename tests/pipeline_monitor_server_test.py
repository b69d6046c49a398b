"""HTTP server: /metrics exposition, /healthz and /readyz verdicts, the run API, Uvicorn."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import pytest
import requests
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from server_support import serving, sockets_on_port
from taskdaemon.pipeline.cli.export_health import ExportHealth
from taskdaemon.pipeline.cli.telemetry import Telemetry
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent, StageStarted
from taskdaemon.pipeline.http_security import server_user
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.server import (
    HealthSources,
    LoopLagMonitor,
    LoopLagSnapshot,
    MonitorServer,
    create_app,
    liveness,
)
from taskdaemon.pipeline.settings import Settings, load_settings
from taskdaemon.pipeline.state import RunStatus

PIPELINE = """
name: api-demo
timeout: 30s
external_events: [note.posted]
loops: {work: {handler: "unused:unused"}}
stages:
  - name: build
    loop: work
    triggers: [{manual: {approval_required: false}}]
  - name: deploy
    loop: work
    trigger_mode: all
    triggers:
      - on_completion: {stage: build}
      - manual: {approval_required: true}
  - name: notify
    loop: work
    triggers:
      - on_event: {type: note.posted}
"""


class Resolver:
    """Every stage returns at once, except ``build`` while ``hold`` is set (until released)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            if stage.name == "build":
                await self.release.wait()
            return {"stage": stage.name}

        return handler


class Sync:
    """An observer that sets events when a stage asks for approval or starts running."""

    def __init__(self) -> None:
        self.approval = asyncio.Event()
        self.started = asyncio.Event()

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ApprovalRequested):
            self.approval.set()
        elif isinstance(event, StageStarted):
            self.started.set()


@pytest.fixture
def pipeline() -> Pipeline:
    """The three-stage API pipeline."""
    return parse_pipeline(PIPELINE)


def _client(app: Any) -> httpx.AsyncClient:
    """An in-process client holding the app's API token."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1",
        headers={"authorization": f"Bearer {app.state.auth.token}"},
    )


# --- /metrics ------------------------------------------------------------------------------------


async def test_metrics_renders_the_registry_byte_exactly() -> None:
    """/metrics serves the registry in Prometheus text format, exactly as the exporter renders."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(
        registry=registry, disable_target_info=True, scope_info_enabled=False
    )
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("t").create_counter("pipeline.executions", description="Runs.")
    counter.add(2, {"pipeline": "etl", "status": "success"})
    async with _client(create_app(registry=registry)) as client:
        response = await client.get("/metrics")
    provider.shutdown()
    expected = (
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        "# HELP pipeline_executions_total Runs.\n"
        "# TYPE pipeline_executions_total counter\n"
        'pipeline_executions_total{pipeline="etl",status="success"} 2.0\n',
    )
    assert expected == (response.status_code, response.headers["content-type"], response.text)


async def test_metrics_speaks_openmetrics_when_asked() -> None:
    """A scraper that accepts OpenMetrics gets it, ending with # EOF."""
    registry = CollectorRegistry()
    app = create_app(registry=registry)
    async with _client(app) as client:
        response = await client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
    expected = ("application/openmetrics-text", "# EOF\n")
    assert expected == (response.headers["content-type"].split(";")[0], response.text)


async def test_metrics_is_404_without_a_registry() -> None:
    """Without a Prometheus reader /metrics says so instead of serving nothing."""
    async with _client(create_app()) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404


async def test_metrics_of_a_real_run_pass_promtool(
    pipeline: Pipeline, tmp_path: Any, telemetry_for: Callable[[Settings], Telemetry]
) -> None:
    """The exposition after a monitored run names the pipeline metrics and passes promtool."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    telemetry = telemetry_for(load_settings(home=tmp_path))
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    sync = Sync()
    async with Engine(resolver=Resolver(), observers=[monitor, sync]) as engine:
        handle = await engine.start_run(pipeline, {})
        await sync.approval.wait()
        handle.approve("deploy", by="test")
        await handle.wait()
    monitor.close()
    async with _client(create_app(registry=telemetry.registry)) as client:
        text = (await client.get("/metrics")).text
    telemetry.shutdown()
    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate(text.encode())
    sample = 'pipeline_executions_total{otel_scope_name="taskdaemon.pipeline"'
    expected = (0, "", True, True)
    actual = (
        process.returncode,
        output.decode(),
        sample in text,
        'pipeline="api-demo",status="success"} 1.0' in text,
    )
    assert expected == actual


# --- /healthz ------------------------------------------------------------------------------------


async def test_healthz_is_200_while_the_loop_ticks() -> None:
    """With the ticker running and a responsive loop, /healthz answers 200 with the lag."""
    lag = LoopLagMonitor(interval=0.01)
    lag.start()
    await lag.next_tick()
    async with _client(create_app(health=HealthSources(lag=lag))) as client:
        response = await client.get("/healthz")
    await lag.aclose()
    body = response.json()
    expected = (200, "ok", True)
    assert expected == (
        response.status_code,
        body["status"],
        body["components"]["event_loop"]["ok"],
    )


async def test_healthz_is_503_when_the_ticker_stalled() -> None:
    """When the ticker has not ticked for longer than the bound, /healthz answers 503."""
    lag = LoopLagMonitor(interval=0.01)
    lag.start()
    await lag.next_tick()
    await lag.aclose()
    later = time.monotonic() + 60.0
    sources = HealthSources(lag=lag, monotonic=lambda: later)
    async with _client(create_app(health=sources)) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()["status"]) == (503, "unavailable")


def test_liveness_fails_when_the_loop_never_ticked_since_the_ticker_started() -> None:
    """A ticker started but never run (the loop was blocked from the start, by a handler that
    sleeps in an async function, say) is a failed liveness check once past the bound."""
    snapshot = LoopLagSnapshot(
        interval=0.25, lag=0.0, max_recent_lag=0.0, last_tick=None, ticks=0, started=10.0
    )
    report = liveness(snapshot, now=13.0, max_lag=1.0)
    expected = (False, "event loop has not ticked since the ticker started 3.00s ago")
    assert expected == (report.ok, report.components["event_loop"].detail)


def test_liveness_fails_on_a_large_lag() -> None:
    """A measured lag above the bound is a failed liveness check naming the lag."""
    snapshot = LoopLagSnapshot(interval=0.25, lag=2.5, max_recent_lag=2.5, last_tick=10.0, ticks=3)
    report = liveness(snapshot, now=10.1, max_lag=1.0)
    expected = (False, "event loop lag 2.500s > 1.0s")
    assert expected == (report.ok, report.components["event_loop"].detail)


# --- /readyz -------------------------------------------------------------------------------------


async def test_readyz_is_200_with_nothing_to_worry_about() -> None:
    """No exporter, no store, no engine: every component is ok and /readyz answers 200."""
    async with _client(create_app()) as client:
        response = await client.get("/readyz")
    body = response.json()
    expected = (
        200,
        {"span_export": True, "log_export": True, "span_store": True, "stages": True},
    )
    assert expected == (
        response.status_code,
        {name: c["ok"] for name, c in body["components"].items()},
    )


async def test_readyz_is_503_after_failed_span_exports() -> None:
    """A failed export with no success since makes span_export unready, with the error."""
    health = ExportHealth()
    health.exporters.append("otlp")
    health.record("otlp", 3, "export of 3 spans failed")
    async with _client(create_app(health=HealthSources(export=health.snapshot))) as client:
        response = await client.get("/readyz")
    component = response.json()["components"]["span_export"]
    expected = (503, False, "1 failed export in 60s: otlp: export of 3 spans failed")
    assert expected == (response.status_code, component["ok"], component["detail"])


def _refused_post_error(endpoint: str) -> str:
    """What an exporter that raises gives for a POST to ``endpoint`` (a URL of a port held
    bound, never listening, so refused): ``requests``' error, in the wrapper's form
    (``cli/telemetry.py``, ``_ObservedSpanExporter``), which quotes the URL's path and query."""
    with pytest.raises(requests.ConnectionError) as refused:
        requests.post(endpoint, data=b"", timeout=10)
    return f"{type(refused.value).__name__}: {refused.value}"


async def test_readyz_redacts_the_secrets_an_export_error_quotes() -> None:
    """/readyz answers anyone, without the token: the error of an export to an endpoint with a
    key in its query was shown whole. Its detail is redacted; the rest of the cause stays."""
    secret = "k3y-0f-th3-c0ll3ct0r"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        error = _refused_post_error(f"http://127.0.0.1:{port}/v1/traces?api_key={secret}")
    health = ExportHealth()
    health.exporters.append("otlp")
    health.record("otlp", 1, error)
    async with _client(create_app(health=HealthSources(export=health.snapshot))) as client:
        response = await client.get("/readyz")
    detail = response.json()["components"]["span_export"]["detail"]
    said = f"1 failed export in 60s: otlp: {error.replace(secret, '[REDACTED]')}"
    assert (True, False, said) == (secret in error, secret in response.text, detail)


async def test_readyz_recovers_after_a_successful_export() -> None:
    """A success after the last failure makes span_export ready again."""
    health = ExportHealth()
    health.exporters.append("otlp")
    health.record("otlp", 1, "boom")
    health.record("otlp", 0, None)
    async with _client(create_app(health=HealthSources(export=health.snapshot))) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200


async def test_readyz_is_503_when_a_stage_overran_its_timeout(pipeline: Pipeline) -> None:
    """A stage still running long after its timeout makes the stages component unready."""
    resolver, sync = Resolver(hold=True), Sync()
    async with Engine(resolver=resolver, observers=[sync]) as engine:
        handle = await engine.start_run(pipeline, {})
        await sync.started.wait()
        future = time.time() + 3600.0
        app = create_app(engine=engine, health=HealthSources(wall_clock=lambda: future))
        async with _client(app) as client:
            response = await client.get("/readyz")
        handle.cancel()
    component = response.json()["components"]["stages"]
    expected = (503, [f"api-demo/{handle.run_id}/build[0]"])
    assert expected == (response.status_code, component["overdue"])


# --- the run API ---------------------------------------------------------------------------------


async def test_api_lists_runs_and_approves_a_waiting_stage(pipeline: Pipeline) -> None:
    """GET /api/runs shows the stage waiting for approval; POST approve lets the run finish."""
    sync = Sync()
    async with Engine(resolver=Resolver(), observers=[sync]) as engine:
        app = create_app(engine=engine)  # before the run: it observes approval requests
        handle = await engine.start_run(pipeline, {})
        await sync.approval.wait()
        async with _client(app) as client:
            listed = (await client.get("/api/runs")).json()
            approved = await client.post(
                f"/api/runs/{handle.run_id}/approve/deploy", json={"comment": "looks good"}
            )
        result = await handle.wait()
    (run,) = listed["runs"]
    waiting = [s["stage"] for s in run["stages"] if s["waiting_approval"]]
    expected = (handle.run_id, ["deploy"], 202, "success")
    assert expected == (run["run_id"], waiting, approved.status_code, str(result.status))


async def test_api_reject_skips_the_stage(pipeline: Pipeline) -> None:
    """POST reject skips the waiting stage."""
    sync = Sync()
    async with Engine(resolver=Resolver(), observers=[sync]) as engine:
        handle = await engine.start_run(pipeline, {})
        await sync.approval.wait()
        async with _client(create_app(engine=engine)) as client:
            response = await client.post(
                f"/api/runs/{handle.run_id}/reject/deploy", json={"reason": "not today"}
            )
        result = await handle.wait()
    assert (response.status_code, str(result.stage_status["deploy"])) == (202, "skipped")


async def test_api_publishes_events_and_cancels(pipeline: Pipeline) -> None:
    """POST events starts an event stage instance; POST cancel ends the run cancelled, for the
    token's principal (the server's user by default), named as its approvals name it."""
    resolver, sync = Resolver(hold=True), Sync()
    async with Engine(resolver=resolver, observers=[sync]) as engine:
        handle = await engine.start_run(pipeline, {})
        await sync.started.wait()
        async with _client(create_app(engine=engine)) as client:
            published = await client.post(
                f"/api/runs/{handle.run_id}/events",
                json={"type": "note.posted", "payload": {"text": "hi"}},
            )
            cancelled = await client.post(f"/api/runs/{handle.run_id}/cancel", json={})
        result = await handle.wait()
    expected = (202, 202, RunStatus.CANCELLED, f"run cancelled by {server_user()}")
    assert expected == (
        published.status_code,
        cancelled.status_code,
        result.status,
        result.error,
    )


async def test_api_refuses_to_cancel_a_run_that_has_ended(pipeline: Pipeline) -> None:
    """POST cancel on a run that has already ended is 409 naming its status, not an
    "accepted" that does nothing."""
    resolver, sync = Resolver(hold=True), Sync()
    async with Engine(resolver=resolver, observers=[sync]) as engine:
        handle = await engine.start_run(pipeline, {})
        await sync.started.wait()
        handle.cancel()
        await handle.wait()
        async with _client(create_app(engine=engine)) as client:
            again = await client.post(f"/api/runs/{handle.run_id}/cancel", json={})
    expected = (409, f"run {handle.run_id} has already ended (cancelled)")
    assert expected == (again.status_code, again.json()["error"])


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/runs/{unknown}/approve/deploy", None, 404),
        ("/api/runs/{run}/approve/build", None, 409),
        ("/api/runs/{run}/approve/nosuchstage", None, 404),
        ("/api/runs/{run}/events", b"not json", 400),
        ("/api/runs/{run}/events", b'{"payload": {}}', 400),
        ("/api/runs/{run}/events", b'{"type": "never.listened"}', 409),
    ],
)
async def test_api_errors_have_precise_statuses(
    pipeline: Pipeline, path: str, body: bytes | None, status: int
) -> None:
    """Unknown runs are 404, impossible commands 409, malformed bodies 400, with an error."""
    resolver, sync = Resolver(hold=True), Sync()
    async with Engine(resolver=resolver, observers=[sync]) as engine:
        handle = await engine.start_run(pipeline, {})
        await sync.started.wait()
        url = path.format(unknown="0" * 32, run=handle.run_id)
        async with _client(create_app(engine=engine)) as client:
            response = await client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
        handle.cancel()
    assert (status, True) == (response.status_code, "error" in response.json())


async def test_api_is_503_without_an_engine() -> None:
    """A server started without an engine answers the API with 503."""
    async with _client(create_app()) as client:
        response = await client.get("/api/runs")
    assert response.status_code == 503


# --- the Uvicorn task ----------------------------------------------------------------------------


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


@pytest.fixture
async def served() -> AsyncIterator[MonitorServer]:
    """A real server on a free port of 127.0.0.1 with an empty registry and a lag ticker.

    Its lag bound is a minute: these tests are about serving over TCP, and the verdicts on
    lag have their own tests, on a clock of their own."""
    lag = LoopLagMonitor(interval=0.05)
    async with serving(registry=CollectorRegistry(), lag=lag, max_lag=60.0) as server:
        yield server


@pytest.mark.slow
async def test_server_serves_over_real_tcp(served: MonitorServer) -> None:
    """The Uvicorn task answers on the bound port in the same event loop."""
    response = await _get(f"{served.url}/healthz")
    expected = (200, "ok", "127.0.0.1")
    assert expected == (response.status_code, json.loads(response.text)["status"], served.host)


@pytest.mark.slow
async def test_aclose_stops_serving_and_is_idempotent(served: MonitorServer) -> None:
    """After aclose (twice) the port refuses connections."""
    url = served.url
    await served.aclose()
    await served.aclose()
    with pytest.raises(httpx.ConnectError):
        await _get(f"{url}/healthz")


def _slow_app(entered: threading.Event, release: Callable[[], Awaitable[object]]) -> Starlette:
    """An app whose ``/slow`` sets ``entered``, then answers ``done`` once ``release()``
    returned."""

    async def slow(request: Request) -> PlainTextResponse:
        entered.set()
        await release()
        return PlainTextResponse("done")

    return Starlette(routes=[Route("/slow", slow)])


def _refused(port: int) -> None:
    """Return once the port refuses connections, or resets one it queued before its listener
    closed: the server has begun to stop."""
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except (ConnectionRefusedError, ConnectionResetError):
            return
        time.sleep(0.01)


@pytest.mark.slow
async def test_aclose_lets_a_request_in_flight_finish_its_answer() -> None:
    """A request still being answered once the server stopped listening gets its whole
    answer before aclose returns."""
    entered = threading.Event()
    server = MonitorServer(
        _slow_app(entered, lambda: asyncio.to_thread(_refused, server.port)), port=0
    )
    await server.start()
    async with httpx.AsyncClient() as client:
        answer = asyncio.ensure_future(client.get(f"{server.url}/slow"))
        await asyncio.to_thread(entered.wait, 30)
        await server.aclose()
        response = await answer
    assert (200, "done") == (response.status_code, response.text)


@pytest.mark.slow
async def test_aclose_cancels_a_request_still_running_after_the_grace() -> None:
    """A request that outlives the shutdown grace is cancelled, and answered 500 (Uvicorn's
    answer to a request whose handler failed); aclose returns."""
    entered = threading.Event()
    server = MonitorServer(_slow_app(entered, lambda: asyncio.sleep(3600)), port=0, grace=1.0)
    await server.start()
    async with httpx.AsyncClient() as client:
        answer = asyncio.ensure_future(client.get(f"{server.url}/slow"))
        await asyncio.to_thread(entered.wait, 30)
        await server.aclose()
        response = await answer
    assert 500 == response.status_code


def _endless_app(entered: threading.Event) -> Starlette:
    """An app whose ``/endless`` streams an answer that never ends, and sets ``entered`` once
    the first chunk is out."""

    async def chunks() -> AsyncIterator[bytes]:
        entered.set()
        while True:
            yield b"x" * 65536

    async def endless(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks())

    return Starlette(routes=[Route("/endless", endless)])


@pytest.mark.slow
async def test_aclose_closes_the_connection_of_an_answer_cancelled_after_the_grace() -> None:
    """A connection whose answer was cancelled after the grace while its client read nothing
    (the rest of the answer still buffered) is closed once aclose returns: a stopped server
    leaves no descriptor open."""
    entered = threading.Event()
    server = MonitorServer(_endless_app(entered), port=0, grace=1.0)
    await server.start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(b"GET /endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await asyncio.to_thread(entered.wait, 30)
        await server.aclose()
    assert [] == sockets_on_port(server.port)
