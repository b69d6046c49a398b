"""The span store read as one commit left it, while its writer goes on committing: a run's
spans and its ``runs`` row, and a trace read in several queries, in one read transaction."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanKind, Tracer

from pipeline_tracking_support import GATED, approved_during_a_read, monitored_store, slow_build
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking import SpanRecord, SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking import _trace_read as trace_read
from taskdaemon.pipeline.tracking._rows import LARGE_BODY, decode_span
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.visualization import watch_stored_run


def _statuses(run: RunRecord) -> tuple[str, ...]:
    return (run.status, *(stage.status for stage in run.stages))


async def test_a_run_ending_during_get_run_reads_as_it_was_when_its_spans_were_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deploy waits for its approval; the run is approved, ends and is written between
    ``get_run``'s read of its spans (deploy has none) and its read of the run's row (ended).
    The run read as ``interrupted``, deploy ``skipped``, though it went on to succeed: what
    ``runs show``, the web page and ``watch`` read from the store (``watch`` ended on it).
    Now that read says what the store held when the spans were read, a run still waiting
    for deploy's approval, and the next read has its end."""
    db = tmp_path / "spans.db"
    tracer_provider, monitor = monitored_store(db)
    async with Engine(resolver=slow_build(0.0), observers=[monitor]) as engine:
        handle = await engine.start_run(GATED)
        arm = approved_during_a_read(monkeypatch, handle, tracer_provider)
        with SpanStore(db) as store:
            async with aclosing(watch_stored_run(store, handle.run_id, interval=0.01)) as stream:
                async for snapshot in stream:
                    if snapshot.node("deploy").state == "waiting":
                        break
            arm()
            during = await asyncio.to_thread(store.get_run, handle.run_id)
            after = store.get_run(handle.run_id)
    monitor.close()
    tracer_provider.shutdown()
    assert (_statuses(during), _statuses(after)) == (
        ("running", "success", "waiting"),
        ("success", "success", "success"),
    )


class _Ids(IdGenerator):
    """Span ids in the order given (a trace id at random): where each row sorts in the store."""

    def __init__(self, *span_ids: int) -> None:
        self._span_ids = iter(span_ids)
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        return next(self._span_ids)

    def generate_trace_id(self) -> int:
        return self._random.generate_trace_id()


def _stage(tracer: Tracer, root: Span, run_id: str, name: str, **extra: Any) -> Span:
    attrs = {
        t.CICD_PIPELINE_NAME: "p",
        t.CICD_PIPELINE_RUN_ID: run_id,
        t.CICD_TASK_NAME: name,
        t.STAGE_LOOP: "python",
        t.STAGE_ATTEMPT: 1,
        t.STAGE_INSTANCE: 0,
        t.CICD_TASK_RUN_RESULT: t.RESULT_SUCCESS,
        **extra,
    }
    return tracer.start_span(name, context=trace.set_span_in_context(root), attributes=attrs)


def test_a_run_ending_between_the_queries_of_a_large_span_reads_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span row longer than ``LARGE_BODY`` is read by a query of its own and the rows after
    it by the next (``tracking._trace_read``). Deploy's row sorts before build's large one,
    the run span's after it; the run ends, deploy run and written, between the two queries.
    The first query had no deploy and the next an ended run: a run read as a success whose
    deploy never ran. Now both queries read the store as the first found it."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider(id_generator=_Ids(0x3 << 60, 0x2 << 60, 0x1 << 60))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(t.SCOPE_NAME)
    root = tracer.start_span(
        t.run_span_name("p"),
        kind=SpanKind.SERVER,
        attributes={
            t.CICD_PIPELINE_NAME: "p",
            t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
            t.PIPELINE_STAGES: ["build", "deploy"],
        },
    )
    run_id = format(root.get_span_context().trace_id, "032x")
    _stage(tracer, root, run_id, "build", note="x" * (LARGE_BODY + 1)).end()
    processor.force_flush()

    def end() -> None:
        _stage(tracer, root, run_id, "deploy").end()
        root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_SUCCESS)
        root.end()
        processor.force_flush()

    ended: list[bool] = []

    def decode_then_end(trace_id: str, row: Sequence[Any], resource: Any) -> SpanRecord:
        if len(row[3]) > LARGE_BODY and not ended:  # its query is closed, the next not begun
            ended.append(True)
            end()
        return decode_span(trace_id, row, resource)

    monkeypatch.setattr(trace_read, "decode_span", decode_then_end)
    try:
        with SpanStore(db) as store:
            during, after = store.get_run(run_id), store.get_run(run_id)
    finally:
        provider.shutdown()
    assert (ended, _statuses(during), _statuses(after)) == (
        [True],
        ("running", "success", "pending"),
        ("success", "success", "success"),
    )


def test_runs_list_of_open_runs_reads_its_pages_as_one_commit_left_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runs list --status running`` reads the open runs in pages (some are dropped as
    ``interrupted``). The newest run, running, ends between two pages: read apart, the second
    page's offset then counted one open run fewer, and the running run below the first page
    was left out of the list. Read in one transaction, the list has both."""
    db = tmp_path / "spans.db"
    connect(db).close()  # as a writer does: readers never create a store
    now = time.time_ns()
    first, below = f"{1:032x}", f"{2:032x}"
    rows = [(first, 1, now), *((f"{n + 3:032x}", None, now - n - 1) for n in range(49))]
    rows.append((below, 1, now - 100))
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO writers (id, pid, host, started_ns, heartbeat_ns) VALUES (1, ?, ?, ?, ?)",
            (os.getpid(), socket.gethostname(), now, now),
        )
        conn.executemany(
            "INSERT INTO runs (trace_id, pipeline, status, start_ns, writer_id) "
            "VALUES (?, 'p', 'running', ?, ?)",
            [(run_id, start, writer) for run_id, writer, start in rows],
        )
    with SpanStore(db) as store:
        summary = store._summary
        read = []

        def then_end(conn: sqlite3.Connection, row: Sequence[Any]) -> Any:
            read.append(row[0])
            if len(read) == 50:  # the first page's last row: the newest run ends now
                with sqlite3.connect(db) as writer:
                    writer.execute(
                        "UPDATE runs SET status = 'success', end_ns = ? WHERE trace_id = ?",
                        (now + 1, first),
                    )
                writer.close()
            return summary(conn, row)

        monkeypatch.setattr(store, "_summary", then_end)
        listed = [found.run_id for found in store.search(status="running", limit=10)]
    assert listed == [first, below]
