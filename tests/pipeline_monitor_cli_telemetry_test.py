"""Telemetry wiring: readers, exporters, a dead collector, bounded shutdown, deduplicated errors."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from cli_support import ONE_STAGE_PIPELINE, free_port, taskdaemon, write
from collector_support import answering_posts
from conftest import EXPORTER_THREADS
from pipeline_monitor_support import scope_labels
from taskdaemon.pipeline.cli.export_health import ExportHealth
from taskdaemon.pipeline.cli.telemetry import (
    RepeatedLogFilter,
    Telemetry,
    build_telemetry,
    install_repeated_log_filter,
)
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
TelemetryFor = Callable[[Settings], Telemetry]  # the telemetry_for fixture (conftest.py)
VENV_BIN = Path(sys.executable).parent

PIPELINE = """
name: wide
concurrency: 8
loops: {work: {handler: "unused:unused"}}
stages:
"""
PIPELINE += "".join(
    f"  - name: s{i}\n    loop: work\n    triggers: [{{manual: {{approval_required: false}}}}]\n"
    for i in range(20)
)


class Resolver:
    """Every stage returns at once."""

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            return {}

        return handler


@pytest.fixture
def dead_collector(monkeypatch: pytest.MonkeyPatch) -> str:
    """OTLP pointed at a closed port of 127.0.0.1."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    return endpoint


def test_prometheus_exporter_setting_means_our_single_reader(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, telemetry_for: TelemetryFor
) -> None:
    """OTEL_METRICS_EXPORTER=prometheus gives one reader on our registry (no duplicate series)
    and a note saying so."""
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    telemetry = telemetry_for(load_settings(home=tmp_path))
    counter = telemetry.meter_provider.get_meter("t").create_counter("pipeline.executions")
    counter.add(1, {"pipeline": "p", "status": "success"})
    lines = [
        line
        for line in generate_latest(telemetry.registry).decode().splitlines()
        if line.startswith("pipeline_executions_total")
    ]
    telemetry.shutdown()
    expected = (1, True)
    assert expected == (len(lines), "one reader per registry" in " ".join(telemetry.notes))


def test_the_prometheus_note_names_no_address_of_its_own(home: Path, tmp_path: Path) -> None:
    """With OTEL_METRICS_EXPORTER=prometheus, `run --serve` on a port of its own says that its
    /metrics serves the metrics and names no address: the note named the settings' default,
    127.0.0.1:9090, whatever `--serve` (or `serve --port`) bound."""
    path = str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    served = f"127.0.0.1:{free_port()}"
    done = taskdaemon(
        home, "run", path, "-q", "--serve", served, OTEL_METRICS_EXPORTER="prometheus"
    )
    notes = [
        line.split(": ", 1)[1]
        for line in done.stderr.splitlines()
        if "OTEL_METRICS_EXPORTER=prometheus" in line
    ]
    expected = [
        "OTEL_METRICS_EXPORTER=prometheus is served by taskdaemon's own /metrics, where it serves"
        " the API (one reader per registry; no second server on OTEL_EXPORTER_PROMETHEUS_PORT)"
    ]
    assert (0, expected) == (done.returncode, notes), done.stderr


async def _run_wide(telemetry: Telemetry) -> None:
    """Run ``PIPELINE`` (21 spans: the run's and its 20 stages') monitored on ``telemetry``,
    and flush its span processors."""
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    async with Engine(resolver=Resolver(), observers=[monitor]) as engine:
        await engine.run(parse_pipeline(PIPELINE), {})
    monitor.close()
    await asyncio.to_thread(telemetry.tracer_provider.force_flush, 5000)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_spans_a_dead_collector_did_not_take_are_counted(
    dead_collector: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    protocol: str,
    telemetry_for: TelemetryFor,
) -> None:
    """Every span of a run whose export failed is counted, per exporter, on ``/metrics``."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=1.0))
    await _run_wide(telemetry)
    assert telemetry.registry is not None
    failed = telemetry.registry.get_sample_value(
        "taskdaemon_spans_export_failed_total", scope_labels(exporter="otlp")
    )
    assert 21.0 == failed


def test_an_exporter_that_has_not_failed_shows_0_spans_lost(
    dead_collector: str, tmp_path: Path, telemetry_for: TelemetryFor
) -> None:
    """The failed-export series of a configured exporter is there before any export, at 0: a
    Prometheus scraping it then sees the first loss as the series growing (an alert's
    ``increase()`` cannot see a series that first appears at its count)."""
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=1.0))
    assert telemetry.registry is not None
    assert 0.0 == telemetry.registry.get_sample_value(
        "taskdaemon_spans_export_failed_total", scope_labels(exporter="otlp")
    )


@pytest.fixture
def babbling_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """OTLP/HTTP pointed at a local server answering every export with a 64 MiB body, as fast
    as the client reads it; yields a one-item list: the body bytes it has sent so far, in all
    (counted as they are written, so it is current whenever it is read)."""
    sent = [0]

    def babble(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.end_headers()  # HTTP/1.0, no length: the body ends when the connection does
        count = 0
        while count < 64 * 2**20:  # until the client stops reading: what the bound is for
            handler.wfile.write(b"\0" * 65536)
            count += 65536
            sent[0] += 65536

    with answering_posts(babble) as url:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_METRICS_EXPORTER"):
            monkeypatch.delenv(name, raising=False)
        yield sent


async def test_a_collector_answering_without_end_is_read_no_further_than_a_bound(
    babbling_collector: list[int], tmp_path: Path, telemetry_for: TelemetryFor
) -> None:
    """A collector answering an OTLP/HTTP export with a 64 MiB body: the exporter stops
    reading it within a few MiB, and the run's spans are counted as not exported."""
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=5.0))
    await _run_wide(telemetry)
    assert telemetry.registry is not None
    failed = telemetry.registry.get_sample_value(
        "taskdaemon_spans_export_failed_total", scope_labels(exporter="otlp")
    )
    expected = (21.0, True)
    actual = (failed, 0 < babbling_collector[0] < 8 * 2**20)
    assert expected == actual, babbling_collector


async def test_the_sdks_own_export_metrics_reach_our_registry(
    dead_collector: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    telemetry_for: TelemetryFor,
) -> None:
    """With the SDK's self-observability switched on, the OTLP exporter's and the batch
    processor's metrics land on the registry ``/metrics`` serves (they are given its meter
    provider, not the global one, which is unset here)."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=1.0))
    await _run_wide(telemetry)
    assert telemetry.registry is not None
    exported = [
        (sample.labels["otel_component_type"], "error_type" in sample.labels, sample.value)
        for metric in telemetry.registry.collect()
        if metric.name == "otel_sdk_exporter_span_exported"
        for sample in metric.samples
        if sample.name.endswith("_total")
    ]
    assert [("otlp_grpc_span_exporter", True, 21.0)] == exported


async def test_the_sdks_export_durations_get_the_seconds_buckets(
    dead_collector: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    telemetry_for: TelemetryFor,
) -> None:
    """The SDK's export duration histogram (seconds) gets taskdaemon's seconds buckets, not
    the SDK's default edges of 0 to 10,000, which would hold every export in one bucket."""
    from taskdaemon.pipeline.telemetry import DURATION_BUCKETS

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=1.0))
    await _run_wide(telemetry)
    assert telemetry.registry is not None
    edges = [
        float(sample.labels["le"])
        for metric in telemetry.registry.collect()
        if metric.name == "otel_sdk_exporter_operation_duration_seconds"
        for sample in metric.samples
        if sample.name.endswith("_bucket") and sample.labels["le"] != "+Inf"
    ]
    assert list(DURATION_BUCKETS) == sorted(set(edges))


def test_failed_spans_are_summed_per_exporter_and_successes_add_none() -> None:
    """Each failed export adds its spans to its exporter's count; a success adds nothing."""
    health = ExportHealth()
    health.record("otlp", 3, "down")
    health.record("otlp", 0, None)
    health.record("otlp", 4, "down")
    health.record("console", 1, "closed")
    assert {"otlp": 7, "console": 1} == health.failures.failed()


def test_shutdown_is_safe_to_call_twice(tmp_path: Path, telemetry_for: TelemetryFor) -> None:
    """A second shutdown returns at once and reports success."""
    telemetry = telemetry_for(load_settings(home=tmp_path))
    assert (True, True) == (telemetry.shutdown(), telemetry.shutdown())


#: The OTLP span exporter class of each protocol, by module and name.
SPAN_EXPORTERS = {
    "grpc": ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    "http/protobuf": ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_a_dead_collector_blocks_no_stage(
    dead_collector: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    protocol: str,
    telemetry_for: TelemetryFor,
) -> None:
    """With the collector down the run still succeeds, and no export runs on the run's
    thread: the spans leave on the batch processor's, so no stage waits for the collector.
    (That the shutdown keeps to its bound: ``test_wait_closed_outlasts_an_abandoned_shutdown``
    and ``test_the_cli_exits_within_the_bound_with_a_dead_collector``.)"""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    module, name = SPAN_EXPORTERS[protocol]
    exporter = getattr(importlib.import_module(module), name)
    export = exporter.export
    exported_on: list[threading.Thread] = []

    def recorded(self: object, spans: object) -> object:
        exported_on.append(threading.current_thread())
        return export(self, spans)

    monkeypatch.setattr(exporter, "export", recorded)
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=1.0))
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    async with Engine(resolver=Resolver(), observers=[monitor]) as engine:
        result = await engine.run(parse_pipeline(PIPELINE), {})
    monitor.close()
    await asyncio.to_thread(telemetry.shutdown)
    assert telemetry.wait_closed(60), "the exporter still worked 60 s after the shutdown"
    run_thread = threading.current_thread()
    expected = ("success", True, False)
    actual = (str(result.status), bool(exported_on), run_thread in exported_on)
    assert expected == actual, [thread.name for thread in exported_on]


@pytest.fixture
def silent_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """OTLP pointed at a port of 127.0.0.1 that accepts connections and never answers: every
    export waits for its own timeout (a refused port can fail fast, and a shutdown then finishes
    within any bound)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # the kernel completes handshakes; nobody reads
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}"
    )
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.slow
def test_wait_closed_outlasts_an_abandoned_shutdown(silent_collector: str, tmp_path: Path) -> None:
    """A shutdown past its bound leaves its exporter working; wait_closed returns once that
    work has ended, so no exporter thread is left to log into later tests."""
    telemetry = build_telemetry(load_settings(home=tmp_path, export_timeout=1.0))
    telemetry.tracer_provider.get_tracer("t").start_span("s").end()
    in_time = telemetry.shutdown(timeout=0.01)
    closed = telemetry.wait_closed(60)
    left = [t.name for t in threading.enumerate() if t.name.startswith(EXPORTER_THREADS)]
    assert (False, True, []) == (in_time, closed, left)


def test_exporter_errors_are_logged_once(
    dead_collector: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    telemetry_for: TelemetryFor,
) -> None:
    """Five failed batches give at most one error line, not one per batch (at ``debug``: above
    it, no line of them passes, ``pipeline_monitor_cli_exporter_logs_test.py``)."""
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=0.3))
    dedupe = install_repeated_log_filter()  # the set-up's, its window started anew
    tracer = telemetry.tracer_provider.get_tracer("t")
    exporter_logger = "opentelemetry.exporter.otlp.proto.grpc.exporter"
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.WARNING, logger=exporter_logger):
        for _ in range(5):
            tracer.start_span("s").end()
            telemetry.tracer_provider.force_flush()
    telemetry.shutdown()
    errors = [r for r in caplog.records if r.name == exporter_logger and r.levelname == "ERROR"]
    template = "Failed to export %s to %s, error code: %s, error details: %s"
    key = (exporter_logger, template, "traces")
    # Our filter let the first error through and dropped the four repeats (the SDK's own
    # 20-second DuplicateFilter may drop the first too when an earlier test logged it).
    expected = (5, 4, True)
    actual = (
        telemetry.export_health.snapshot().failures,
        dedupe.suppressed().get(key),
        len(errors) <= 1,
    )
    assert expected == actual


def test_each_telemetry_set_up_says_its_first_exporter_error(
    dead_collector: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    telemetry_for: TelemetryFor,
) -> None:
    """Two set-ups of one process, one after the other, both exporting to a refused port
    (at ``debug``): each says the exporter's error once, the second not silenced by the
    first's line within the repeats' window (``RepeatedLogFilter``: a set-up's window)."""
    exporter_logger = "opentelemetry.exporter.otlp.proto.grpc.exporter"
    said = []
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.WARNING, logger=exporter_logger):
        for home in ("first", "second"):
            telemetry = telemetry_for(load_settings(home=tmp_path / home, export_timeout=0.3))
            for _ in range(2):
                telemetry.tracer_provider.get_tracer("t").start_span("s").end()
                telemetry.tracer_provider.force_flush()
            telemetry.shutdown()
            said.append(sum(r.name == exporter_logger for r in caplog.records))
            caplog.clear()
    assert [1, 1] == said


def test_repeated_log_filter_counts_what_it_suppressed() -> None:
    """Within the window repeats are dropped; the next one through says how many were."""
    now = [0.0]
    dedupe = RepeatedLogFilter(window=10.0, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        return logging.LogRecord("x", logging.ERROR, "f", 1, "failed %s", ("a",), None)

    passed = [dedupe.filter(record()) for _ in range(3)]
    now[0] = 11.0
    last = record()
    expected = ([True, False, False], True, "failed a (and 2 similar messages suppressed)")
    assert expected == (passed, dedupe.filter(last), last.getMessage())


def test_repeated_log_filter_keeps_one_line_per_signal() -> None:
    """The gRPC exporters of traces and of logs share one logger and one message template, the
    signal an argument: the first failure of each passes, so a dead collector's traces are not
    hidden behind its logs (nor the other way round)."""
    dedupe = RepeatedLogFilter(window=10.0, clock=lambda: 0.0)

    def record(signal: str) -> logging.LogRecord:
        template = "Failed to export %s to %s, error code: %s"
        args = (signal, "127.0.0.1:4317", "StatusCode.UNAVAILABLE")
        return logging.LogRecord("x", logging.ERROR, "f", 1, template, args, None)

    passed = [dedupe.filter(record(signal)) for signal in ("logs", "traces", "logs", "traces")]
    assert [True, True, False, False] == passed


@pytest.mark.slow
def test_a_dead_grpc_collector_is_said_for_traces_and_for_logs(
    dead_collector: str, home: Path, tmp_path: Path
) -> None:
    """`taskdaemon run --log-level debug` whose traces and logs both go to a dead collector
    over gRPC says that each failed, in the exporter's own line: the lines differ only in
    their arguments (above ``debug`` taskdaemon's lines at exit say it instead)."""
    env = {**os.environ, "TASKDAEMON_HOME": str(home), "TASKDAEMON_LOG_LEVEL": "debug"}
    env.update(TASKDAEMON_EXPORT_TIMEOUT="1", TASKDAEMON_LOG_FORMAT="text")
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        env.pop(name, None)
    done = _run_one_stage(tmp_path, env)
    said = {
        signal
        for signal in ("traces", "logs")
        for line in done.stderr.splitlines()
        if "opentelemetry.exporter.otlp.proto.grpc" in line
        and any(f"{verb} {signal} " in line for verb in ("exporting", "export"))
    }
    assert (0, {"traces", "logs"}) == (done.returncode, said), done.stderr


@pytest.mark.slow
def test_run_says_how_many_spans_were_not_exported(
    dead_collector: str, home: Path, tmp_path: Path
) -> None:
    """`taskdaemon run` whose spans a dead collector did not take ends with one line saying how
    many, as it says the log records it lost: without `--serve` there is no /metrics or
    /readyz to count them, and the exporter's own line says that a batch failed, not how many
    spans the run lost in all.

    The exporter gives up at once (its own 1 s timeout is shorter than its first retry's
    back-off) while the shutdown has 30 s to see it fail: with one bound for both, a loaded
    machine could end the shutdown first, and the spans were then dropped with the
    shutdown's own line instead of counted as failed."""
    env = {**os.environ, "TASKDAEMON_HOME": str(home), "TASKDAEMON_EXPORT_TIMEOUT": "30"}
    env.update(
        OTEL_TRACES_EXPORTER="otlp", OTEL_LOGS_EXPORTER="none", OTEL_EXPORTER_OTLP_TIMEOUT="1"
    )
    done = _run_one_stage(tmp_path, env)
    said = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if "not exported" in line]
    # The run span and its one stage span.
    assert (0, ["2 spans were not exported (otlp: export failed)"]) == (
        done.returncode,
        said,
    ), done.stderr


def _run_one_stage(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`taskdaemon run -q` of a one-stage command pipeline written to ``tmp_path``, in ``env``."""
    pipeline = tmp_path / "one.yaml"
    pipeline.write_text(
        "name: one\nstages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n"
    )
    return subprocess.run(
        [str(VENV_BIN / "taskdaemon"), "run", "-q", str(pipeline)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)  # over the liveness deadline below
def test_the_cli_exits_within_the_bound_with_a_dead_collector(
    dead_collector: str, home: Path
) -> None:
    """`taskdaemon run` with OTLP at a closed port, its exporter set to retry for five minutes,
    succeeds and cuts the exporters' shutdown at TASKDAEMON_EXPORT_TIMEOUT, saying so (without
    the bound, the exporters' retries end after a minute, in their own failure lines)."""
    env = {**os.environ, "TASKDAEMON_HOME": str(home), "TASKDAEMON_EXPORT_TIMEOUT": "2"}
    env.update(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TIMEOUT="300")
    command = [str(VENV_BIN / "taskdaemon"), "run", "examples/feature_delivery.yaml"]
    try:
        done = subprocess.run(
            [*command, "--auto-approve", "-q"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            # A liveness deadline, not a measure: the run ends in seconds.
            timeout=240,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("taskdaemon run did not exit within 240 s: its shutdown waited for OTLP")
    cut = "telemetry shutdown did not finish within 2.0s (TASKDAEMON_EXPORT_TIMEOUT)"
    assert (0, True) == (done.returncode, cut in done.stderr), done.stderr[-2000:]


@pytest.mark.slow
async def test_invalid_settings_exit_2_naming_the_variable(tmp_path: Path) -> None:
    """An invalid variable stops `taskdaemon run` before it starts, with exit status 2."""
    env = {**os.environ, "TASKDAEMON_HOME": str(tmp_path), "TASKDAEMON_METRICS_PORT": "nine"}
    process = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "taskdaemon"),
        "run",
        "examples/feature_delivery.yaml",
        "--auto-approve",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert (2, True) == (process.returncode, "TASKDAEMON_METRICS_PORT" in stderr.decode())


@pytest.mark.parametrize("sampler", ["always_off", "traceidratio"])
def test_a_sampler_in_the_environment_never_loses_a_run(tmp_path: Path, sampler: str) -> None:
    """``OTEL_TRACES_SAMPLER=always_off`` (or a ratio, 0 here) dropped the run's spans before
    the store saw them: ``run -q`` printed a run id that ``runs show`` did not find."""
    home = tmp_path / "home"
    path = str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    done = taskdaemon(
        home, "run", "-q", path, OTEL_TRACES_SAMPLER=sampler, OTEL_TRACES_SAMPLER_ARG="0"
    )
    shown = taskdaemon(home, "runs", "show", done.stdout.strip())
    assert (0, 0, "success") == (done.returncode, shown.returncode, shown.stdout.split()[5]), (
        done.stderr + shown.stderr
    )


def test_ctrl_c_while_shutdown_waits_stops_the_wait_without_raising(tmp_path: Path) -> None:
    """Ctrl-C during a shutdown that waits for a slow exporter ends the wait as the bound does."""
    import signal

    from opentelemetry.sdk.trace import SpanProcessor

    began, release = threading.Event(), threading.Event()

    class Stuck(SpanProcessor):
        def shutdown(self) -> None:
            began.set()
            release.wait(30)

    telemetry = build_telemetry(
        load_settings(home=tmp_path, export_timeout=30.0), extra_span_processors=(Stuck(),)
    )

    def interrupt() -> None:
        began.wait(30)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    # Said if this fails: a SIGINT handler left by an earlier test (an event loop never
    # closed keeps asyncio's no-op one) would make the signal do nothing, and the wait finish.
    handler = signal.getsignal(signal.SIGINT)
    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        try:
            outcome = "finished" if telemetry.shutdown() else "stopped waiting"
        except KeyboardInterrupt:
            outcome = "KeyboardInterrupt"
    finally:
        release.set()
        sender.join()
        telemetry.wait_closed(30)
    assert "stopped waiting" == outcome, f"SIGINT handler at the start: {handler!r}"
