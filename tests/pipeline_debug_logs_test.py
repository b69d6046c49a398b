"""Trace logging and stage logs: captured command output and its bound, run log levels, the
ids on every record (text and JSON), the ``logs`` table and its retention, OTLP log export and
the Loki stack config (``taskdaemon logs`` as a process: pipeline_debug_logs_cli_test.py)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline_debug_logs_support import IDS
from pipeline_engine_support import Resolver, after, pipeline, stage
from pipeline_stage_output_support import TRACEPARENT, Sink
from taskdaemon.pipeline import output_sinks, stage_output
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.log_export import OTelOutputSink
from taskdaemon.pipeline.log_levels import TRACE
from taskdaemon.pipeline.logs import ContextFilter, JsonFormatter, OTelLogHandler, TextFormatter
from taskdaemon.pipeline.loops import (
    CommandFailedError,
    LoopRegistry,
    StageContext,
    command_handler,
)
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.run_log import RunLog
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.stage_output import CaptureLimits, OutputBatch
from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking._schema import SCHEMA_VERSION, connect
from taskdaemon.pipeline.tracking.log_read import read_logs, run_log_records
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter
from taskdaemon.pipeline.tracking.otlp_logs import encode_logs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def limits() -> Iterator[None]:
    previous = output_sinks.capture_limits()
    try:
        yield
    finally:
        output_sinks.set_capture_limits(previous)


def _ctx(command: str) -> StageContext:
    return StageContext(
        run_id="r" * 32,
        pipeline="p",
        stage="build",
        loop="command",
        instance=2,
        attempt=3,
        inputs={},
        publish=lambda *a: None,
        report_process=lambda pid: None,
        environment={"TRACEPARENT": TRACEPARENT},
        command=command,
    )


async def test_command_output_is_captured_line_by_line_with_the_stage_ids(sink: Sink) -> None:
    """Each stdout and stderr line of a command becomes a record of its stage execution and
    span, and the stage's result (stdout) is what it was before capture existed."""
    result = await command_handler()(_ctx("echo hi; echo oops >&2; printf 'a\\r\\nb'"))
    assert {"stdout": "hi\na\r\nb", "exit_code": 0} == dict(result)
    assert (["hi", "a", "b"], ["oops"]) == (sink.lines("stdout"), sink.lines("stderr"))
    batch = sink.batches[0]
    assert ("r" * 32, "p", "build", 2, 3, TRACEPARENT[3:35], TRACEPARENT[36:52]) == (
        batch.run_id,
        batch.pipeline,
        batch.stage,
        batch.instance,
        batch.attempt,
        batch.trace_id,
        batch.span_id,
    )


async def test_capture_is_bounded_and_counts_what_it_drops(sink: Sink, limits: None) -> None:
    """Past the line bound lines are dropped, and one marker says how many lines and bytes."""
    output_sinks.set_capture_limits(CaptureLimits(max_lines=10, max_bytes=1_000_000))
    result = await command_handler()(_ctx("seq 1 1000"))
    assert [str(n) for n in range(1, 11)] == sink.lines()
    marker = sink.batches[-1]
    dropped_bytes = sum(len(str(n)) for n in range(11, 1001))
    assert (990, dropped_bytes) == (marker.dropped_lines, marker.dropped_bytes)
    assert "990 output lines" in marker.marker_text()
    assert 1000 == len(result["stdout"].split("\n"))  # the result keeps the whole stdout


async def test_byte_bound_and_a_line_without_newline_stay_bounded(sink: Sink, limits: None) -> None:
    """The byte bound applies too, and a line with no newline is cut into bounded pieces."""
    output_sinks.set_capture_limits(CaptureLimits(max_lines=1000, max_bytes=40_000))
    await command_handler()(_ctx("head -c 100000 /dev/zero | tr '\\0' x"))
    lines = sink.lines()
    assert [stage_output.MAX_LINE_BYTES] * 2 == [len(line) for line in lines]
    assert 100_000 - 2 * stage_output.MAX_LINE_BYTES == sink.batches[-1].dropped_bytes


def test_a_long_line_read_whole_is_cut_like_one_read_in_pieces(sink: Sink) -> None:
    """A line longer than the bound is stored in pieces of at most ``MAX_LINE_BYTES`` whether
    it arrives in one read or across several."""
    size = 2 * stage_output.MAX_LINE_BYTES + 100
    stored = []
    for chunks in ([b"x" * size + b"\nend\n"], [b"x" * 100, b"x" * (size - 100), b"\nend\n"]):
        sink.batches.clear()
        capture = stage_output.OutputCapture(
            run_id="r", pipeline="p", stage="s", instance=0, attempt=1, limits=CaptureLimits()
        )
        for chunk in chunks:
            capture.feed("stdout", chunk)
        capture.abandon()
        stored.append([len(line) for line in sink.lines()])
    expected = [stage_output.MAX_LINE_BYTES, stage_output.MAX_LINE_BYTES, 100, 3]
    assert stored == [expected, expected]


def test_counting_past_the_bound_agrees_with_splitting_every_chunk(sink: Sink) -> None:
    """Past the bound, stdout is counted without being split into lines: for chunks cut
    anywhere (inside lines, between ``\\r`` and ``\\n``, inside over-long lines), the lines
    and bytes it says were dropped are those stderr, split line by line, says."""
    rng = random.Random(7)
    lines = []
    for _ in range(2000):
        kind = rng.random()
        if kind < 0.1:
            size = rng.randint(stage_output.MAX_LINE_BYTES - 5, 3 * stage_output.MAX_LINE_BYTES)
            lines.append(b"x" * size)
        elif kind < 0.2:
            lines.append(b"y\r")
        else:
            lines.append(b"z" * rng.randint(0, 40))
    data = b"\n".join(lines)
    cuts = sorted(rng.sample(range(1, len(data)), 400))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    for limits in (CaptureLimits(10, 1 << 30), CaptureLimits(1 << 30, 5000), CaptureLimits(0, 0)):
        counted = []
        for stream in ("stdout", "stderr"):
            capture = stage_output.OutputCapture(
                run_id="r", pipeline="p", stage="s", instance=0, attempt=1, limits=limits
            )
            for chunk in chunks:
                capture.feed(stream, chunk)
            capture.abandon()
            counted.append((capture.captured_lines, capture.dropped_lines, capture.dropped_bytes))
        assert counted[0] == counted[1]
        assert counted[0][1] > 1000


async def test_failed_command_keeps_its_stderr_tail(limits: None) -> None:
    """The failure still carries the last 20 stderr lines, whatever the capture bound."""
    output_sinks.set_capture_limits(CaptureLimits(max_lines=0, max_bytes=0))
    with pytest.raises(CommandFailedError) as caught:
        await command_handler()(_ctx("seq 1 50 >&2; exit 4"))
    assert "\n".join(str(n) for n in range(31, 51)) == caught.value.stderr_tail


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_captured_lines_carry_every_id_in_text_and_json(fmt: str) -> None:
    """With no sink, lines go to stdlib logging and both formats show the seven ids."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("taskdaemon.run.output")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        await command_handler()(_ctx("echo captured"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    line = next(line for line in stream.getvalue().splitlines() if "captured" in line)
    expected = {
        "run_id": "r" * 32,
        "pipeline": "p",
        "stage": "build",
        "instance": 2,
        "attempt": 3,
        "trace_id": TRACEPARENT[3:35],
        "span_id": TRACEPARENT[36:52],
    }
    if fmt == "json":
        entry = json.loads(line)
        assert expected == {name: entry[name] for name in IDS}
    else:
        for name, value in expected.items():
            assert f"{name}={value}" in line


LEVELS_PIPELINE = """
name: levels
concurrency: 1
stages:
  - name: first
    loop: python
    handler: "pipeline_debug_logs_support:flaky"
    retry: {max_attempts: 2, backoff: {initial: 10ms, factor: 1.0, max: 10ms}}
    triggers: [{manual: {approval_required: false}}]
  - name: gate
    loop: python
    handler: "pipeline_debug_logs_support:noop"
    triggers: [{manual: {approval_required: true}}]
  - name: second
    loop: python
    handler: "pipeline_debug_logs_support:noop"
    inputs:
      token: {from: "request.api_token"}
    triggers:
      - on_condition: {expression: "request.api_token != '' && stages.first.status == 'success'"}
"""


class Keep(logging.Handler):
    """Keeps the records of the run loggers."""

    def __init__(self) -> None:
        super().__init__(TRACE)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _play(level: int) -> tuple[list[logging.LogRecord], str, dict[str, str]]:
    """Run LEVELS_PIPELINE monitored with a RunLog at ``level``: the records, the run id and
    the span id of each stage's last span."""
    pipeline = parse_pipeline(LEVELS_PIPELINE)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monitor = PipelineMonitor(tracer_provider=provider, meter_provider=MeterProvider())
    monitor.add_event_hook(RunLog())
    keep = Keep()
    logger = logging.getLogger("taskdaemon.run")
    logger.addHandler(keep)
    logger.setLevel(level)
    sys.path.insert(0, str(Path(__file__).parent))

    async def play() -> str:
        async with Engine(resolver=LoopRegistry.default(), observers=[monitor]) as engine:
            handle = await engine.start_run(pipeline, {"api_token": "s3cret-value"})
            handle.approve("gate", by="test")
            result = await handle.wait()
            return str(result.run_id)

    try:
        run_id = asyncio.run(play())
    finally:
        monitor.close()
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)
        sys.path.remove(str(Path(__file__).parent))
        provider.shutdown()
    spans = {
        str(span.attributes.get("cicd.pipeline.task.name")): format(span.context.span_id, "016x")
        for span in exporter.get_finished_spans()
        if span.attributes and span.attributes.get("cicd.pipeline.task.name")
    }
    return keep.records, run_id, spans


def test_default_level_writes_lifecycle_records_only() -> None:
    """At INFO: run and stage started/finished, the retry with its delay, nothing else."""
    records, run_id, _ = _play(logging.INFO)
    events = [getattr(r, "event", None) for r in records]
    assert {"taskdaemon.run.lifecycle"} == {r.name for r in records}
    assert ("run.started", "run.finished") == (events[0], events[-1])
    retry = next(r for r in records if getattr(r, "event", None) == "stage.retrying")
    assert (0.01, logging.WARNING, "first") == (retry.delay_s, retry.levelno, retry.stage)  # type: ignore[attr-defined]
    assert all(r.run_id == run_id == r.trace_id for r in records)  # type: ignore[attr-defined]


def test_debug_level_logs_every_decision_tied_to_its_span() -> None:
    """At DEBUG: trigger evaluations with the CEL expression, redacted values and result; slot
    waits; resolved inputs; approvals; each carrying the stage span's ids."""
    records, run_id, spans = _play(logging.DEBUG)
    by_event: dict[str, list[logging.LogRecord]] = {}
    for record in records:
        by_event.setdefault(getattr(record, "event", ""), []).append(record)
    condition = [
        r
        for r in by_event["trigger.evaluated"]
        if r.stage == "second" and r.result  # type: ignore[attr-defined]
    ][-1]
    assert condition.expression.startswith("request.api_token != ''")  # type: ignore[attr-defined]
    assert "s3cret-value" not in condition.values  # type: ignore[attr-defined]
    assert "[REDACTED]" in condition.values  # type: ignore[attr-defined]
    assert {
        "slot.waiting",
        "slot.acquired",
        "inputs.resolved",
        "approval.requested",
        "approval.resolved",
        "outputs.mapped",
    } <= set(by_event)
    inputs = next(r for r in by_event["inputs.resolved"] if r.stage == "second")  # type: ignore[attr-defined]
    assert "s3cret-value" not in inputs.getMessage()
    assert (run_id, spans["second"]) == (inputs.trace_id, inputs.span_id)  # type: ignore[attr-defined]
    assert not any(r.name == "taskdaemon.run.event" for r in records)


def test_trace_level_adds_every_engine_event() -> None:
    """At TRACE every engine event is a record too (StageQueued, EventPublished...)."""
    records, _, _ = _play(TRACE)
    names = {r.event for r in records if r.name == "taskdaemon.run.event"}  # type: ignore[attr-defined]
    assert {
        "engine.RunStarted",
        "engine.StageQueued",
        "engine.StageWaiting",
        "engine.StageStarted",
        "engine.TriggerEvaluated",
        "engine.RunFinished",
    } <= names


def test_log_level_setting_accepts_trace_and_rejects_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TASKDAEMON_LOG_LEVEL takes trace (number 5) and gives a one-line reason otherwise."""
    monkeypatch.setenv("TASKDAEMON_LOG_LEVEL", "trace")
    assert ("TRACE", TRACE) == (load_settings().log_level, load_settings().log_level_number)
    monkeypatch.setenv("TASKDAEMON_LOG_LEVEL", "loud")
    with pytest.raises(Exception, match=r"TASKDAEMON_LOG_LEVEL.*must be one of trace"):
        load_settings()


def test_an_otlp_endpoint_turns_log_export_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an OTLP endpoint and no OTEL_LOGS_EXPORTER, logs are exported like traces."""
    monkeypatch.delenv("OTEL_LOGS_EXPORTER", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    assert ("otlp",) == load_settings().logs_exporters


def _batch(run_id: str, text: str, stage: str = "build") -> OutputBatch:
    return OutputBatch(
        run_id, "p", stage, 0, 1, run_id, "b7ad6b7169203331", "stdout", (text,), time.time_ns()
    )


def test_store_keeps_log_records_and_retention_deletes_them_with_the_run(tmp_path: Path) -> None:
    """Records written beside a run's spans are read back in order, filtered, redacted; the
    retention that deletes the run deletes its records."""
    db = tmp_path / "spans.db"
    provider = TracerProvider()
    provider.add_span_processor(SqliteSpanProcessor(db))
    monitor = PipelineMonitor(tracer_provider=provider, meter_provider=MeterProvider())
    pipeline = parse_pipeline(
        "name: kept\nstages:\n  - {name: a, loop: python, handler: 'x:y',"
        " triggers: [{manual: {approval_required: false}}]}\n"
    )
    run_ids = []
    for _ in range(2):
        run_id = monitor.start_run(pipeline, {})
        monitor.finish_run(run_id)
        run_ids.append(run_id)
    monitor.close()
    provider.shutdown()
    writer = SqliteLogWriter(db)
    try:
        for run_id in run_ids:
            writer.write_output(_batch(run_id, "line one"))
            writer.write_output(_batch(run_id, "token ghp_" + "a" * 36, stage="other"))
        assert writer.flush()
    finally:
        writer.close()
    rows = run_log_records(db, run_ids[1])
    assert ["line one", "token [REDACTED]"] == [row.body for row in rows]
    assert ["build"] == [row.stage for row in read_logs(db, run_ids[1], stage="build")]
    assert [] == read_logs(db, run_ids[1], level="warning")
    with SpanStore(db, retention=RetentionPolicy()) as store:
        store.apply_retention(RetentionPolicy(keep=1))
    assert ([], 2) == (run_log_records(db, run_ids[0]), len(run_log_records(db, run_ids[1])))


def test_a_version_5_store_gains_the_logs_table(tmp_path: Path) -> None:
    """Opening a store written by the previous version migrates it: the logs table appears."""
    db = tmp_path / "old.db"
    conn = connect(db)
    conn.execute("DROP TABLE logs")
    conn.execute("PRAGMA user_version = 5")
    conn.close()
    conn = connect(db)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    assert ("logs" in tables, SCHEMA_VERSION, 13) == (True, version, version)


def test_log_writer_bound_drops_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows past the writer's queue bound are dropped and counted, never queued without end."""
    from taskdaemon.pipeline.tracking import log_writer

    monkeypatch.setattr(log_writer, "MAX_PENDING", 0)
    writer = SqliteLogWriter(tmp_path / "spans.db")
    try:
        writer.write_output(_batch("f" * 32, "lost"))
    finally:
        writer.close()
    assert (1, []) == (writer.dropped, run_log_records(tmp_path / "spans.db", "f" * 32))


def test_otlp_json_logs_are_the_file_exporter_shape(tmp_path: Path) -> None:
    """The dump form: resourceLogs > scopeLogs (per logger) > logRecords with hex ids."""
    writer = SqliteLogWriter(tmp_path / "spans.db")
    try:
        writer.write_output(_batch("c" * 32, "hello"))
    finally:
        writer.close()
    body = encode_logs(run_log_records(tmp_path / "spans.db", "c" * 32))
    scope = body["resourceLogs"][0]["scopeLogs"][0]
    record = scope["logRecords"][0]
    attributes = {a["key"]: a["value"] for a in record["attributes"]}
    assert ("taskdaemon.run.output", "c" * 32, "b7ad6b7169203331", {"stringValue": "hello"}) == (
        scope["scope"]["name"],
        record["traceId"],
        record["spanId"],
        record["body"],
    )
    assert {"stringValue": "stdout"} == attributes["log.iostream"]


def test_output_and_run_records_are_exported_as_otel_log_records() -> None:
    """Captured lines and stdlib run records reach the LoggerProvider with the stage span."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    try:
        OTelOutputSink(provider).write_output(_batch("d" * 32, "exported line"))
        handler = OTelLogHandler(provider)
        handler.addFilter(ContextFilter())
        logger = logging.getLogger("taskdaemon.run.lifecycle")
        logger.addHandler(handler)
        try:
            logger.warning(
                "stage x failed",
                extra={"run_id": "d" * 32, "stage": "x", "trace_id": "d" * 32, "span_id": "1" * 16},
            )
        finally:
            logger.removeHandler(handler)
        logs = [data.log_record for data in exporter.get_finished_logs()]
    finally:
        provider.shutdown()
    assert ["exported line", "stage x failed"] == [log.body for log in logs]
    assert [int("d" * 32, 16)] * 2 == [log.trace_id for log in logs]
    assert ("build", "x") == (
        logs[0].attributes["taskdaemon.stage"],
        logs[1].attributes["taskdaemon.stage"],
    )


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_loki_receives_the_collector_logs_pipeline_over_otlp() -> None:
    """The compose file (Compose spec valid) runs Loki >= 3.0; the collector's logs pipeline
    exports with otlphttp to Loki's /otlp base on the port Loki listens on; taskdaemon exports
    logs; Loki accepts structured metadata (needed for OTLP)."""
    PyCompose(str(ROOT / "docker-compose.yml"))  # raises on a schema violation
    compose = _yaml(ROOT / "docker-compose.yml")
    loki = compose["services"]["loki"]
    major = int(loki["image"].rpartition(":")[2].split(".")[0])
    config = _yaml(ROOT / "loki" / "loki.yaml")
    collector = _yaml(ROOT / "collector" / "otel-collector.yaml")
    logs = collector["service"]["pipelines"]["logs"]
    exporter = collector["exporters"][logs["exporters"][0]]
    assert (True, "http://loki:3100/otlp", ["otlp"], True) == (
        major >= 3,
        exporter["endpoint"],
        logs["receivers"],
        config["limits_config"]["allow_structured_metadata"],
    )
    assert logs["exporters"][0].startswith("otlphttp")
    assert str(config["server"]["http_listen_port"]) == "3100"
    assert "otlp" == compose["services"]["taskdaemon"]["environment"]["OTEL_LOGS_EXPORTER"]
    mount = next(v for v in loki["volumes"] if v.startswith("./loki/loki.yaml:"))
    assert f"-config.file={mount.split(':')[1]}" in loki["command"]
    assert all(port.startswith("127.0.0.1:") for port in loki["ports"])


def test_grafana_links_traces_to_logs_and_logs_to_traces() -> None:
    """Tempo's tracesToLogsV2 points at the Loki datasource; Loki's derivedFields turn the
    trace_id structured-metadata label into a link to the Tempo datasource."""
    datasources = _yaml(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    by_type = {source["type"]: source for source in datasources}
    tempo = by_type["tempo"]["jsonData"]["tracesToLogsV2"]
    derived = by_type["loki"]["jsonData"]["derivedFields"][0]
    assert (by_type["loki"]["uid"], True, "http://loki:3100") == (
        tempo["datasourceUid"],
        tempo["filterByTraceID"],
        by_type["loki"]["url"],
    )
    assert ("label", "trace_id", by_type["tempo"]["uid"]) == (
        derived["matcherType"],
        derived["matcherRegex"],
        derived["datasourceUid"],
    )


def test_log_rows_for_a_store_deleted_under_the_writer_are_counted(tmp_path: Path) -> None:
    """Rows written after the store file was deleted (``rm spans.db`` during a run) are
    counted as dropped, not written into the unlinked file no reader sees."""
    writer = SqliteLogWriter(tmp_path / "spans.db")
    try:
        writer.write_output(_batch("e" * 32, "kept"))
        writer.flush()
        for path in tmp_path.glob("spans.db*"):
            path.unlink()
        writer.write_output(_batch("e" * 32, "lost"))
        writer.flush()
    finally:
        writer.close()
    assert (1, 1) == (writer.written, writer.dropped)


def test_records_flushed_from_inside_a_stage_keep_their_order_and_ids() -> None:
    """A stage reading its environment (its ``TRACEPARENT``) flushes the monitor's queue from
    inside its handler call. Handled there, the run log's records of others took that stage's
    ids from ``ContextFilter`` (a trigger evaluation got its instance and attempt), and the
    filter, reading the same unresolved environment for them, flushed again from within the
    first record: the records queued behind it were written before it (in a replay, a fed
    stage's trigger evaluation after the next stage had started)."""

    async def reads_its_environment(ctx: StageContext) -> dict[str, Any]:
        return {"traceparent": ctx.environment.get("TRACEPARENT")}

    flow = pipeline(
        stage("first"),
        stage("reader", *after("first")),
        name="flushed",
    )
    provider = TracerProvider()
    monitor = PipelineMonitor(tracer_provider=provider, meter_provider=MeterProvider())
    monitor.add_event_hook(RunLog())
    keep = Keep()
    keep.addFilter(ContextFilter())
    logger = logging.getLogger("taskdaemon.run")
    logger.addHandler(keep)
    logger.setLevel(logging.DEBUG)

    async def play() -> Any:
        resolver = Resolver({"reader": reads_its_environment})
        async with Engine(resolver=resolver, observers=[monitor]) as engine:
            return await engine.run(flow)

    try:
        result = asyncio.run(play())
    finally:
        monitor.close()
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)
        provider.shutdown()
    times = [record.created for record in keep.records]
    evaluated = [r for r in keep.records if getattr(r, "event", None) == "trigger.evaluated"]
    assert result.outputs["reader"]["traceparent"], result.outputs
    assert (sorted(times), [(None, None)] * len(evaluated)) == (
        times,
        [(r.instance, r.attempt) for r in evaluated],  # type: ignore[attr-defined]
    )
    assert len(evaluated) >= 2  # first's and reader's
