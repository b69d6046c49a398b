"""What debugging leaves on the telemetry: breakpoint and override span events, paused time kept
out of the queue time and its metric, skip and retry spans, and a paused run read back from the
embedded store and drawn in every format (and in the watch table)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from rich.console import Console

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from pipeline_monitor_support import Telemetry
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.cli.run_tables import format_run_table
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import TriggerEvaluated
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import InputMapping, OnCondition
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import as_dict, replace
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore
from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor
from taskdaemon.pipeline.visualization import (
    DagWatcher,
    dag_snapshot,
    render_dot,
    render_json,
    render_mermaid,
    validate_dag,
)
from taskdaemon.pipeline.visualization._terminal import render_table, stage_rows
from taskdaemon.pipeline.web._views import timeline


def _events(span: Any, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes) for e in span.events if e.name == name]


async def test_paused_time_is_on_the_span_and_out_of_the_queue_time_and_its_metric() -> None:
    """A 100 s pause (engine clock): ``breakpoint.hit``/``resumed`` on the run span with who and
    how, ``paused_s`` = 100 on the execution span, its queue time ~0 in span and histogram."""
    now = [1000.0]
    telemetry = Telemetry()
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        clock=lambda: now[0],
        resource_sampling=False,
    )
    try:
        p = pipeline(stage("a"), stage("b", *after("a")))
        async with Engine(resolver=Resolver(), observers=[monitor], clock=lambda: now[0]) as engine:
            debug = engine.with_debug(True)
            debug.set_breakpoint("b")
            task = asyncio.create_task(debug.execute(p))
            paused = await debug.wait_paused()
            assert paused is not None
            now[0] += 100.0
            debug.continue_(paused.run_id, by="alice")
            assert (await task).succeeded
        monitor.close()
        (run_span,) = telemetry.by_name("RUN p")
        (hit,) = _events(run_span, t.EVENT_BREAKPOINT_HIT)
        (resumed,) = _events(run_span, t.EVENT_BREAKPOINT_RESUMED)
        assert hit[t.CICD_TASK_RUN_ID] == "b.0.1"
        assert hit[t.BREAKPOINT_KIND] == "start"
        assert hit[t.BREAKPOINT_REASON] == "#1 before b"
        assert resumed[t.BREAKPOINT_ACTION] == "continue"
        assert resumed[t.BREAKPOINT_BY] == "alice"
        assert resumed[t.BREAKPOINT_PAUSED] == 100.0
        (b_span,) = telemetry.by_name("b")
        assert b_span.attributes is not None
        assert b_span.attributes[t.STAGE_PAUSED_TIME] == 100.0
        assert b_span.attributes[t.STAGE_QUEUE_TIME] < 1.0
        queue = telemetry.histograms("pipeline.stage.queue.time")
        b_point = next(v for k, v in queue.items() if ("stage", "b") in k)
        assert b_point.count == 1
        assert b_point.sum < 1.0  # not the 100 s pause
    finally:
        monitor.close()
        telemetry.shutdown()


async def test_override_skip_and_retry_each_leave_their_mark_on_the_spans() -> None:
    """An override is an ``input.override`` event on the execution span (old and new hashes);
    a skip leaves a skip span saying who skipped it; a retry leaves attempt 1 ``will_retry``."""
    telemetry = Telemetry()
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        resource_sampling=False,
    )
    calls = [0]

    async def flaky(ctx: StageContext) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("flaky")

    p = pipeline(
        stage("a", inputs=(InputMapping("n", "request.n"),)),
        stage("b", *after("a")),
        stage("c", *after("a")),
    )
    try:
        async with Engine(resolver=Resolver({"c": flaky}), observers=[monitor]) as engine:
            debug = engine.with_debug(True)
            debug.set_breakpoint("a")
            debug.set_breakpoint("b")
            debug.set_breakpoint("c", on="failure")
            task = asyncio.create_task(debug.execute(p, {"n": 1}))
            first = await debug.wait_paused()
            assert first is not None
            run_id = first.run_id
            debug.override(run_id, "a", "n", 2, by="alice")
            debug.continue_(run_id, "a", by="alice")
            while {x.stage for x in debug.paused(run_id)} != {"b", "c"}:
                await debug.wait_paused(run_id)
                await asyncio.sleep(0)
            debug.skip(run_id, "b", by="bob")
            debug.retry(run_id, "c", by="carol")
            result = await task
        assert result.succeeded
        monitor.close()
        (a_span,) = telemetry.by_name("a")
        (override,) = _events(a_span, t.EVENT_INPUT_OVERRIDE)
        capture = PayloadCapture()
        assert override[t.OVERRIDE_INPUT] == "n"
        assert override[t.OVERRIDE_OLD_SHA256] == capture.capture({"n": 1}).sha256
        assert override[t.OVERRIDE_NEW_SHA256] == capture.capture({"n": 2}).sha256
        assert override[t.OVERRIDE_BY] == "alice"
        (stage_input,) = _events(a_span, t.EVENT_STAGE_INPUT)
        assert json.loads(str(stage_input[t.PAYLOAD_JSON])) == {"n": 2}
        (b_span,) = telemetry.by_name("b")
        assert b_span.attributes is not None
        assert b_span.attributes[t.CICD_TASK_RUN_RESULT] == t.RESULT_SKIP
        assert b_span.attributes[t.STAGE_SKIP_REASON] == "skipped at a breakpoint by bob"
        c_spans = sorted(telemetry.by_name("c"), key=lambda s: s.attributes[t.STAGE_ATTEMPT])
        assert [s.attributes[t.STAGE_ATTEMPT] for s in c_spans] == [1, 2]
        assert c_spans[0].attributes[t.STAGE_WILL_RETRY] is True
        (run_span,) = telemetry.by_name("RUN p")
        actions = {
            (e[t.CICD_TASK_NAME], e[t.BREAKPOINT_ACTION], e[t.BREAKPOINT_BY])
            for e in _events(run_span, t.EVENT_BREAKPOINT_RESUMED)
        }
        assert actions == {
            ("a", "continue", "alice"),
            ("b", "skip", "bob"),
            ("c", "retry", "carol"),
        }
    finally:
        monitor.close()
        telemetry.shutdown()


async def test_a_paused_run_reads_back_paused_from_the_store_and_draws_so(tmp_path: Path) -> None:
    """While a stage is paused, the embedded store's reader says run and stage are ``paused``,
    and DOT, Mermaid and JSON draw the state with its own colour and legend entry."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    monitor = PipelineMonitor(tracer_provider=provider, resource_sampling=False)
    p = pipeline(stage("a"), stage("b", *after("a")))
    try:
        async with Engine(resolver=Resolver(), observers=[monitor]) as engine:
            debug = engine.with_debug(True)
            debug.set_breakpoint("b")
            task = asyncio.create_task(debug.execute(p))
            paused = await debug.wait_paused()
            assert paused is not None
            monitor.flush()
            processor.force_flush()
            with SpanStore(db) as store:
                record = store.get_run(paused.run_id)
                listed = store.search(status="paused")
            assert record.status == "paused"
            assert {s.name: s.status for s in record.stages} == {"a": "success", "b": "paused"}
            assert [r.run_id for r in listed] == [paused.run_id]
            dot = render_dot(p, record)
            assert "orchid" in dot
            assert "paused" in dot
            assert "#da70d6" in render_mermaid(p, record)
            (held,) = next(s for s in record.stages if s.name == "b").paused_before_start
            document = json.loads(render_json(p, record))
            validate_dag(document)
            nodes = {n["name"]: n for n in document["nodes"]}
            assert nodes["b"]["state"] == "paused"
            # What no attempt shows yet; a node with none paused has no such field.
            assert ([as_dict(held)], [], None) == (
                nodes["b"].get("paused_before_start"),
                nodes["b"]["attempts"],
                nodes["a"].get("paused_before_start"),
            )
            snapshot = dag_snapshot(p, record)
            rows = {r.stage: r for r in stage_rows(snapshot, now=held.since + 65)}
            assert rows["b"].state == "paused"  # taskdaemon watch's table
            # Paused before its first attempt, its ELAPSED is the time since it paused.
            console = Console(width=120, record=True, force_terminal=False, file=io.StringIO())
            console.print(render_table(snapshot, held.since + 65))
            (row,) = [r.split() for r in console.export_text().splitlines() if r.startswith("b ")]
            assert ["b", "paused", "1m05s"] == row[:3]
            # The command to type, with the run's id (it said RUN)
            attach = f"the debugger (taskdaemon debug attach {paused.run_id[:8]})"
            assert rows["b"].waiting_for == attach
            debug.continue_()
            assert (await task).succeeded
        monitor.flush()
        processor.force_flush()
        with SpanStore(db) as store:
            assert store.get_run(paused.run_id).status == "success"
    finally:
        monitor.close()
        provider.shutdown()


async def test_a_run_paused_at_a_failure_reads_back_with_the_error(tmp_path: Path) -> None:
    """Paused at a failure breakpoint, the attempt's span stays open until it resumes: the
    store's reader said ``paused`` with no error (``runs show`` of it from another terminal
    gave no reason), though the ``breakpoint.hit`` event holds it. It says the error now."""

    async def broken(ctx: StageContext) -> None:
        raise RuntimeError("disk full")

    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    monitor = PipelineMonitor(tracer_provider=provider, resource_sampling=False)
    p = pipeline(stage("a"), stage("b", *after("a")))
    try:
        async with Engine(resolver=Resolver({"b": broken}), observers=[monitor]) as engine:
            debug = engine.with_debug(True)
            debug.set_breakpoint("b", on="failure")
            task = asyncio.create_task(debug.execute(p))
            paused = await debug.wait_paused()
            assert paused is not None
            monitor.flush()
            processor.force_flush()
            with SpanStore(db) as store:
                record = store.get_run(paused.run_id)
            debug.continue_()
            assert not (await task).succeeded
        (b,) = [s for s in record.stages if s.name == "b"]
        assert [("paused", "disk full")] == [(a.status, a.error) for a in b.attempts]
    finally:
        monitor.close()
        provider.shutdown()


@contextlib.asynccontextmanager
async def _stored(
    tmp_path: Path, *observers: Any, resolver: Resolver | None = None
) -> AsyncIterator[tuple[Engine, Callable[[str], RunRecord]]]:
    """An engine whose monitor writes into a store under ``tmp_path``, with ``observers``
    besides, and what reads a run back from that store, the monitor's spans flushed first."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    monitor = PipelineMonitor(tracer_provider=provider, resource_sampling=False)

    def read(run_id: str) -> RunRecord:
        monitor.flush()
        processor.force_flush()
        with SpanStore(db) as store:
            return store.get_run(run_id)

    try:
        async with Engine(resolver=resolver or Resolver(), observers=[monitor, *observers]) as e:
            yield e, read
    finally:
        monitor.close()
        provider.shutdown()


def _row_of(record: RunRecord, stage: str, now: float) -> dict[str, Any]:
    """``stage``'s one row of the web page's timeline of ``record`` at ``now``."""
    rows = timeline(dag_snapshot(None, record), now=now)["rows"]
    (row,) = [row for row in rows if row["stage"] == stage]
    return row


async def test_a_stage_paused_before_its_start_has_a_row_live_and_read_back(
    tmp_path: Path,
) -> None:
    """A stage paused at a breakpoint before its first attempt has no attempt: the live record
    and the one read back from the store both carry its pause (since when, at which
    breakpoint), so the web page's timeline has a row for it, one open ``paused`` bar, and
    ``runs show`` says it; once it starts, neither carries it and that row is its attempt's.
    Neither view showed anything of it: the run looked stuck with nothing paused."""
    watcher = DagWatcher()
    p = pipeline(stage("a"), stage("b", *after("a")))
    async with _stored(tmp_path, watcher) as (engine, read):
        debug = engine.with_debug(True)
        debug.set_breakpoint("b")
        task = asyncio.create_task(debug.execute(p))
        paused = await debug.wait_paused()
        assert paused is not None
        live, stored = watcher.record(paused.run_id), read(paused.run_id)
        debug.continue_()
        assert (await task).succeeded
        ended_live, ended = watcher.record(paused.run_id), read(paused.run_id)
    (held,) = live.stage("b").paused_before_start
    (from_spans,) = stored.stage("b").paused_before_start
    assert ("b.0.1", 0, 1, "#1 before b") == (
        held.task_run_id,
        held.instance,
        held.attempt,
        held.reason,
    )
    assert replace(held, since=0.0) == replace(from_spans, since=0.0)
    assert from_spans.since == pytest.approx(held.since, abs=1e-6)
    for record in (live, stored):
        assert ("paused", ()) == (record.stage("b").status, record.stage("b").attempts)
        (pause,) = record.stage("b").paused_before_start
        since = round(pause.since, 6)
        assert {
            "stage": "b",
            "instance": 0,
            "attempt": 1,
            "status": "paused",
            "open": True,
            "segments": [{"kind": "paused", "start": since, "end": since + 5.0}],
            "since": since,
            "reason": "#1 before b",
        } == _row_of(record, "b", now=since + 5.0)
        (line,) = [line for line in format_run_table(record).splitlines() if line.startswith("b ")]
        assert line.endswith(" at #1 before b"), line
    for record in (ended_live, ended):
        assert () == record.stage("b").paused_before_start
        row = _row_of(record, "b", now=held.since + 5.0)
        kinds = [segment["kind"] for segment in row["segments"] if segment["kind"] != "queued"]
        assert ("success", ["paused", "running"]) == (row["status"], kinds)
        assert "reason" not in row


def test_flush_open_spans_writes_the_events_an_open_span_gained(tmp_path: Path) -> None:
    """An open span's new event (a breakpoint hit on the run span) is in the store right after
    ``flush_open_spans``, without waiting for the writer's heartbeat or its spacing of open-span
    rewrites (a dump reads the store next)."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    try:
        span = provider.get_tracer("t").start_span("RUN p")
        processor.force_flush()
        processor._refresh_due = float("inf")  # as if open-span rewrites were spaced out now
        span.add_event(t.EVENT_BREAKPOINT_HIT, {t.CICD_TASK_RUN_ID: "b.0.1"})
        assert processor.flush_open_spans()
        trace_id = format(span.get_span_context().trace_id, "032x")
        with SpanStore(db) as store:
            (stored,) = store.get_trace(trace_id)
        assert [e.name for e in stored.events] == [t.EVENT_BREAKPOINT_HIT]
        span.end()
    finally:
        provider.shutdown()


async def test_cel_s_errors_quoting_a_secret_are_redacted_where_they_are_made(
    tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """CEL's error can quote the value it could not read (``duration``'s quotes the request's
    password). A condition's error and a breakpoint's ``last_error`` are redacted as the
    expression makes them: the records observers get, the breakpoint (``/api``'s and the
    prompt's), the live record and its table, the spans and the logs never hold it."""
    secret = "Pa55-Given-4411"
    texts = ("detail", "reason", "error", "description")
    reads = "duration(request.password) > duration('1s')"
    p = pipeline(stage("a"), stage("b", *after("a")), stage("c", OnCondition(reads)))
    recorder, watcher = Recorder(), DagWatcher()
    caplog.set_level(logging.DEBUG)
    observers = [recorder, watcher, tel.monitor(resource_sampling=False)]
    async with Engine(resolver=Resolver(), observers=observers) as engine:
        debug = engine.with_debug(True)
        bp = debug.set_breakpoint("b", when=reads)
        result = await debug.execute(p, {"password": secret})
    tel.monitors[0].close()
    details = [e.detail for e in recorder.of(TriggerEvaluated) if e.stage == "c"]
    shown = {
        # The texts of the records: not the request, nor the values a condition read, which
        # they carry as they are (observers redact what they keep of them).
        "records": repr([getattr(e, k, "") for e in recorder.events for k in texts]),
        "breakpoint": repr(bp.as_dict()),
        "record": repr(watcher.record(result.run_id)),
        "table": format_run_table(watcher.record(result.run_id)),
        "result": repr(result),
        "spans": repr([(s.attributes, [e.attributes for e in s.events]) for s in tel.spans()]),
        "logs": caplog.text,
    }
    assert ([], True, True) == (
        [name for name, text in shown.items() if secret in text],
        all("[REDACTED]" in detail for detail in details),
        "[REDACTED]" in (bp.last_error or ""),
    ), shown
