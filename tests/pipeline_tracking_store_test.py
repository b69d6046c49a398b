"""The SQLite span store: written at span start and end, safe under concurrency and crashes
(migrations from older schemas and retention have test files of their own)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.trace import Link

from cli_support import ended_at_exit, read_line
from pipeline_tracking_support import T0, S, make_provider, orphans_and_integrity, write_example_run
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.tracking import (
    RetentionPolicy,
    SpanStore,
    SqliteSpanProcessor,
    span_record_from_sdk,
    store_processor_for,
)
from taskdaemon.pipeline.tracking._bodies import parts
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking._trace_read import _TRACE_QUERY, _trace_rows, select_trace

TESTS = Path(__file__).resolve().parent


SRC = TESTS.parent / "src"


def test_finished_run_is_stored_with_its_summary(tmp_path: Path) -> None:
    """After the run span ends, the runs row holds its status and counts."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider, result="failure")
    provider.shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        (summary,) = store.search()
    assert (run_id, "demo", "failure", 4, T0 / 1e9, (T0 + 7 * S) / 1e9) == (
        summary.run_id,
        summary.pipeline,
        summary.status,
        summary.stage_count,
        summary.start,
        summary.end,
    )


def test_running_run_is_visible_before_it_ends(tmp_path: Path) -> None:
    """Spans are written when they start: an open run and its finished stages can be read."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider, end_run=False)
    processor.force_flush()
    with SpanStore(tmp_path / "spans.db") as store:
        run = store.get_run(run_id)
        (summary,) = store.search(status="running")
    provider.shutdown()
    assert ("running", None, "success", run_id) == (
        run.status,
        run.end,
        run.stage("plan").status,
        summary.run_id,
    )


def test_open_run_of_a_closed_writer_is_interrupted(tmp_path: Path) -> None:
    """When the writing processor shuts down with the run span open, the run is interrupted."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider, end_run=False)
    provider.shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        assert [s.status for s in store.search(status="interrupted")] == ["interrupted"]
        assert store.get_run(run_id).status == "interrupted"


def test_threads_write_many_runs_at_once(tmp_path: Path) -> None:
    """Eight threads writing runs through one processor lose nothing."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _ = make_provider(processor)
    run_ids: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        for n in range(5):
            run_id = write_example_run(provider, pipeline=f"p{index}", t0=T0 + n * S)
            with lock:
                run_ids.append(run_id)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        found = store.search(limit=1000)
        spans = sum(len(store.get_trace(r)) for r in run_ids)
    assert (sorted(run_ids), {"success"}, 40 * 7) == (
        sorted(s.run_id for s in found),
        {s.status for s in found},
        spans,
    )


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {src!r}]
    from pipeline_tracking_support import T0, S, make_provider, write_example_run
    from taskdaemon.pipeline.tracking import SqliteSpanProcessor
    processor = SqliteSpanProcessor(sys.argv[1])
    provider, _ = make_provider(processor)
    for n in range(int(sys.argv[2])):
        print(write_example_run(provider, pipeline=sys.argv[3], t0=T0 + n * S))
    provider.shutdown()
    """
)


@pytest.mark.slow
def test_two_processes_write_one_database(tmp_path: Path) -> None:
    """Two processes writing the same file at once both keep every run."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=str(TESTS), src=str(SRC)))
    db = tmp_path / "spans.db"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), "20", name], stdout=subprocess.PIPE, text=True
        )
        for name in ("left", "right")
    ]
    outputs = [proc.communicate(timeout=60)[0].split() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    with SpanStore(db) as store:
        found = {(s.pipeline, s.run_id) for s in store.search(limit=100)}
    expected = {("left", r) for r in outputs[0]} | {("right", r) for r in outputs[1]}
    assert (expected, (0, "ok")) == (found, orphans_and_integrity(db))


_CRASHER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {src!r}]
    from opentelemetry import trace
    from pipeline_tracking_support import make_provider
    from taskdaemon.pipeline import telemetry as t
    from taskdaemon.pipeline.tracking import SqliteSpanProcessor
    processor = SqliteSpanProcessor(sys.argv[1])
    provider, _ = make_provider(processor)
    tracer = provider.get_tracer("crash")
    root = tracer.start_span("RUN crashy", kind=trace.SpanKind.SERVER, attributes={{
        t.CICD_PIPELINE_NAME: "crashy", t.CICD_PIPELINE_ACTION_NAME: "RUN",
        t.PIPELINE_STAGES: ["first", "second", "third"]}})
    ctx = trace.set_span_in_context(root)
    first = tracer.start_span("first", context=ctx, attributes={{t.CICD_TASK_NAME: "first"}})
    first.set_attribute(t.CICD_TASK_RUN_RESULT, "success")
    first.end()
    tracer.start_span("second", context=ctx, attributes={{t.CICD_TASK_NAME: "second"}})
    processor.force_flush()
    print(format(root.get_span_context().trace_id, "032x"), flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


@pytest.mark.slow
def test_sigkilled_run_is_interrupted_with_finished_stages(tmp_path: Path) -> None:
    """A SIGKILLed writer leaves its ended stages readable and the run reads as interrupted."""
    script = tmp_path / "crasher.py"
    script.write_text(_CRASHER.format(tests=str(TESTS), src=str(SRC)))
    db = tmp_path / "spans.db"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with ended_at_exit(proc):
        run_id = read_line(proc.stdout).strip()
        proc.kill()
    with SpanStore(db) as store:
        run = store.get_run(run_id)
        (summary,) = store.search(pipeline="crashy")
    assert (
        run.status,
        summary.status,
        [(s.name, s.status) for s in run.stages],
        [a.status for a in run.stage("first").attempts],
        [a.status for a in run.stage("second").attempts],
    ) == (
        "interrupted",
        "interrupted",
        [("first", "success"), ("second", "interrupted"), ("third", "skipped")],
        ["success"],
        ["interrupted"],
    )


def test_unknown_run_is_not_found(tmp_path: Path) -> None:
    """Asking for a run the store never saw raises RunNotFoundError."""
    connect(tmp_path / "spans.db").close()
    with SpanStore(tmp_path / "spans.db") as store, pytest.raises(RunNotFoundError):
        store.get_trace("f" * 32)


def test_store_processor_for_picks_sqlite_only(tmp_path: Path) -> None:
    """The factory builds a processor for sqlite:// and nothing for a remote backend."""
    processor = store_processor_for(f"sqlite:///{tmp_path}/spans.db")
    assert processor is not None
    processor.shutdown()
    assert (tmp_path / "spans.db").exists()
    assert store_processor_for("tempo+http://127.0.0.1:3200") is None


def test_writer_reads_sdk_spans_without_copying_them(tmp_path: Path) -> None:
    """The writer's cheap path into SDK spans (their own attribute dict and event/link deques)
    still matches the installed SDK: if an upgrade moves them, this fails instead of ingest
    silently slowing down to the copying public properties."""
    provider, exporter = make_provider()
    write_example_run(provider)
    spans = exporter.get_finished_spans()
    with_events = next(s for s in spans if s.events)
    with_links = next(s for s in spans if s.links)
    assert (
        all(parts(s)[0] is s._attributes._dict for s in spans),  # type: ignore[attr-defined]
        type(parts(with_events)[1]),
        list(parts(with_events)[1]),
        list(parts(with_links)[2]),
    ) == (True, deque, list(with_events.events), list(with_links.links))


def test_spans_of_other_readable_span_types_are_stored_alike(tmp_path: Path) -> None:
    """A ReadableSpan built directly (plain attribute dict, event and link tuples) goes through
    the public properties and reads back exactly as it went in."""
    provider, exporter = make_provider()
    write_example_run(provider)
    copies = [
        ReadableSpan(
            name=s.name,
            context=s.context,
            parent=s.parent,
            resource=s.resource,
            attributes=dict(s.attributes or {}),
            events=tuple(s.events),
            links=tuple(s.links),
            kind=s.kind,
            status=s.status,
            start_time=s.start_time,
            end_time=s.end_time,
        )
        for s in exporter.get_finished_spans()
    ]
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    for span in copies:
        processor.on_end(span)
    processor.shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        stored = store.get_trace(format(copies[0].context.trace_id, "032x"))
    expected = sorted(
        (span_record_from_sdk(s) for s in copies), key=lambda r: (r.start_ns, r.span_id)
    )
    assert stored == expected


def _file_size_reaches(path: Path, size: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_size >= size:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_log_is_checkpointed_into_the_file_while_the_writer_runs(tmp_path: Path) -> None:
    """The writer's connection never checkpoints in its own commits; its checkpoint thread
    moves the log into the database file while the processor is open, after a few rows (once
    the writer idles) and after many (without it the file would keep its empty size until the
    processor closed)."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    empty = db.stat().st_size
    provider, _ = make_provider(processor)
    write_example_run(provider)  # a handful of rows: checkpointed when the writer idles
    processor.force_flush()
    idle = _file_size_reaches(db, empty + 4096)
    for n in range(1500):  # 10,500 rows: past the row threshold while writing
        write_example_run(provider, t0=T0 + n * S)
    processor.force_flush()
    busy = _file_size_reaches(db, 2_000_000)
    provider.shutdown()
    assert (idle, busy) == (True, True)


def test_events_and_links_without_attributes_read_back_empty(tmp_path: Path) -> None:
    """An event or link built with no attributes at all (None) is stored with empty ones."""
    provider, exporter = make_provider()
    write_example_run(provider)
    original = next(s for s in exporter.get_finished_spans() if s.events and s.links)
    bare = ReadableSpan(
        name=original.name,
        context=original.context,
        parent=original.parent,
        resource=original.resource,
        events=(Event("bare", timestamp=T0),),
        links=(Link(original.links[0].context),),
        start_time=original.start_time,
        end_time=original.end_time,
    )
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    processor.on_end(bare)
    processor.shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        (stored,) = store.get_trace(format(bare.context.trace_id, "032x"))
    assert (
        [dict(e.attributes) for e in stored.events],
        [dict(lk.attributes) for lk in stored.links],
    ) == (
        [{}],
        [{}],
    )


def test_two_writers_share_one_trace(tmp_path: Path) -> None:
    """Spans of one trace written by two processors (as a command stage's own instrumented
    process would, under TRACEPARENT) land under one trace number and read back together."""
    db = tmp_path / "spans.db"
    first = SqliteSpanProcessor(db)
    second = SqliteSpanProcessor(db)
    provider, _ = make_provider(first)
    run_id = write_example_run(provider)
    first.force_flush()
    with SpanStore(db) as store:
        run_spans = len(store.get_trace(run_id))
    child_provider = TracerProvider(resource=Resource.create({"service.name": "child"}))
    child_provider.add_span_processor(second)
    parent = trace.SpanContext(
        int(run_id, 16),
        0x1234,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    child = child_provider.get_tracer("child").start_span(
        "child work", context=trace.set_span_in_context(trace.NonRecordingSpan(parent))
    )
    child.end()
    provider.shutdown()
    child_provider.shutdown()
    with SpanStore(db) as store:
        spans = store.get_trace(run_id)
    with sqlite3.connect(db) as conn:
        traces = conn.execute("SELECT count(*) FROM traces").fetchone()[0]
    assert (len(spans), traces, {s.resource["service.name"] for s in spans}) == (
        run_spans + 1,
        1,
        {"taskdaemon", "child"},
    )


@pytest.mark.slow
# Python 3.12+ warns when a process with threads forks; forking one is what this test is about.
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forked_child_writes_its_spans_with_its_own_writer(tmp_path: Path) -> None:
    """After fork() the processor restarts its writer in the child: a span the child makes is
    stored, under a writers row with the child's pid, and the parent keeps writing its own."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider, _ = make_provider(processor)
    tracer = provider.get_tracer("test")
    pid = os.fork()
    if pid == 0:  # the child: make one span, flush it, leave without any cleanup
        code = 1
        try:
            tracer.start_span("in the child").end()
            code = 0 if processor.force_flush(10_000) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    tracer.start_span("in the parent").end()
    provider.shutdown()
    with sqlite3.connect(db) as conn:
        names = sorted(row[0] for row in conn.execute("SELECT name FROM spans_readable"))
        pids = {row[0] for row in conn.execute("SELECT pid FROM writers")}
    assert (os.waitstatus_to_exitcode(status), names, {os.getpid(), pid} <= pids) == (
        0,
        ["in the child", "in the parent"],
        True,
    )


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_flush_says_false_when_the_writer_thread_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the writer thread dies (here: a BaseException out of a write), force_flush stops
    claiming success, health() says the writer died, and its checkpoint thread is gone too."""
    before = set(threading.enumerate())
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    started = set(threading.enumerate()) - before
    checkpoint_threads = [t for t in started if t.name.endswith("-checkpoint")]

    def die(*args: object, **kwargs: object) -> None:
        raise SystemExit("writer killed by the test")

    monkeypatch.setattr(processor, "_write", die)
    provider, _ = make_provider(processor)
    provider.get_tracer("test").start_span("lost").end()
    processor._thread.join(10)
    health = processor.health()
    left = [t for t in checkpoint_threads if t.is_alive()]
    assert (processor.force_flush(), health.ok, "died" in health.detail, left) == (
        False,
        False,
        True,
        [],
    )


def _sqlite_memory_used() -> Callable[[], int]:
    """``sqlite3_memory_used`` of the SQLite library the ``sqlite3`` module runs on (what it
    allocates, which ``tracemalloc`` does not see)."""
    import _sqlite3

    name = ctypes.util.find_library("sqlite3")
    assert name is not None, f"no SQLite library beside {_sqlite3.__file__}"
    function = ctypes.CDLL(name).sqlite3_memory_used
    function.restype = ctypes.c_int64
    return lambda: int(function())


def test_a_large_body_is_read_without_sqlite_still_holding_it(tmp_path: Path) -> None:
    """A span row whose body is over ``LARGE_BODY`` (an 8 MiB attribute, crafted: here on the
    trace's first row, so rows follow it) is handed to the decoder after its query is done:
    SQLite keeps the buffer it read the body into for as long as its query runs, which had a
    100 MB stored attribute held twice while decoded. The rows after it are read by a query of
    their own, and the trace reads back whole. SQLite's own count of what it holds (which
    ``tracemalloc`` does not see) says so, and shows it would hold the body otherwise."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider)
    provider.shutdown()
    size = 8 * 2**20
    conn = sqlite3.connect(tmp_path / "spans.db")
    try:
        with SpanStore(tmp_path / "spans.db") as store:
            plain = [(s.span_id, s.attributes) for s in store.get_trace(run_id)]
        (span_id, body), *after = conn.execute(
            "SELECT span_id, body FROM spans ORDER BY trace_no, span_id"
        ).fetchall()
        fields = json.loads(body)
        fields[5]["big"] = "x" * size
        conn.execute(
            "UPDATE spans SET body = ? WHERE span_id = ?",
            (json.dumps(fields, separators=(",", ":")), span_id),
        )
        conn.commit()
        used = _sqlite_memory_used()
        before = used()
        cursor = conn.execute(_TRACE_QUERY, (run_id,))
        while len(next(cursor)[3]) < size:
            pass
        held_by_a_query = used() - before
        cursor.close()
        held = {row[0]: used() - before for row in _trace_rows(conn, run_id) if len(row[3]) > size}
        spans = select_trace(conn, run_id)
    finally:
        conn.close()
    assert after
    assert held_by_a_query > size > 4 * held[span_id], (held_by_a_query, held)
    big = dict(plain)[span_id] | {"big": "x" * size}
    assert [(s.span_id, s.attributes) for s in spans] == [
        (s, big if s == span_id else a) for s, a in plain
    ]
