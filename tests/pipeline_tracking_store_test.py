"""The SQLite span store: written at span start and end, safe under concurrency and crashes,
migrated from older schemas, trimmed by retention."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from pipeline_tracking_support import T0, S, make_provider, write_example_run
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.tracking import (
    SCHEMA_VERSION,
    RetentionPolicy,
    SpanStore,
    SqliteSpanProcessor,
    store_processor_for,
)

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def _orphans_and_integrity(path: Path) -> tuple[int, str]:
    with sqlite3.connect(path) as conn:
        orphans = conn.execute(
            "SELECT COUNT(*) FROM spans WHERE trace_id NOT IN (SELECT trace_id FROM runs)"
        ).fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return orphans, integrity


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
    assert (expected, (0, "ok")) == (found, _orphans_and_integrity(db))


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
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.stdin is not None
    proc.stdin.close()
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


def _fill(path: Path, per_pipeline: int, pipelines: tuple[str, ...] = ("a", "b")) -> None:
    processor = SqliteSpanProcessor(path, retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    for name in pipelines:
        for n in range(per_pipeline):
            write_example_run(provider, pipeline=name, t0=T0 + n * 3600 * S)
    provider.shutdown()


def test_retention_keeps_the_newest_runs_per_pipeline(tmp_path: Path) -> None:
    """--keep 2 leaves each pipeline's two newest runs, no orphan spans, an intact file."""
    db = tmp_path / "spans.db"
    _fill(db, 5)
    with SpanStore(db, retention=RetentionPolicy()) as store:
        result = store.apply_retention(RetentionPolicy(keep=2))
        left = sorted((s.pipeline, s.start) for s in store.search(limit=100))
    expected = sorted((name, (T0 + n * 3600 * S) / 1e9) for name in ("a", "b") for n in (3, 4))
    assert ((6, 6 * 7), expected, (0, "ok")) == (
        (result.deleted_runs, result.deleted_spans),
        left,
        _orphans_and_integrity(db),
    )


def test_retention_by_age(tmp_path: Path) -> None:
    """--max-age removes runs that started before now minus the age."""
    db = tmp_path / "spans.db"
    _fill(db, 4, ("a",))
    now = (T0 + 3 * 3600 * S) / 1e9 + 60  # the newest run started a minute ago
    with SpanStore(db, retention=RetentionPolicy()) as store:
        store.apply_retention(RetentionPolicy(max_age=2 * 3600 + 120), now=now)
        left = [s.start for s in store.search()]
    assert ([(T0 + n * 3600 * S) / 1e9 for n in (3, 2, 1)], (0, "ok")) == (
        left,
        _orphans_and_integrity(db),
    )


def test_retention_spares_runs_still_being_written(tmp_path: Path) -> None:
    """A run whose writer is alive is never deleted, however old."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider, end_run=False)
    processor.force_flush()
    with SpanStore(db, retention=RetentionPolicy()) as store:
        result = store.apply_retention(RetentionPolicy(keep=0))
        remaining = [s.run_id for s in store.search()]
    provider.shutdown()
    assert (0, [run_id]) == (result.deleted_runs, remaining)


def test_retention_from_environment_applies_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TASKDAEMON_RETENTION_KEEP trims the store when it is opened."""
    db = tmp_path / "spans.db"
    _fill(db, 3, ("a",))
    monkeypatch.setenv("TASKDAEMON_RETENTION_KEEP", "1")
    with SpanStore(db) as store:
        assert len(store.search()) == 1


_V1_SCHEMA = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER, status_code TEXT NOT NULL,
    status_message TEXT NOT NULL, attributes TEXT NOT NULL, events TEXT NOT NULL,
    links TEXT NOT NULL, resource TEXT NOT NULL, PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX spans_start ON spans (start_ns);
CREATE TABLE runs (
    trace_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER, stage_count INTEGER NOT NULL DEFAULT 0,
    failed_stages INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_pipeline_start ON runs (pipeline, start_ns);
CREATE INDEX runs_start ON runs (start_ns);
INSERT INTO runs VALUES ('11111111111111111111111111111111', 'old', 'success', 1000, 2000, 1, 0);
INSERT INTO runs VALUES ('22222222222222222222222222222222', 'old', 'running', 3000, NULL, 1, 0);
INSERT INTO spans VALUES ('11111111111111111111111111111111', '1111111111111111', NULL, 'RUN old',
    'SERVER', 1000, 2000, 'UNSET', '',
    '{"cicd.pipeline.name":"old","cicd.pipeline.action.name":"RUN","cicd.pipeline.result":"success"}',
    '[]', '[]', '{}');
INSERT INTO spans VALUES ('22222222222222222222222222222222', '2222222222222222', NULL, 'RUN old',
    'SERVER', 3000, NULL, 'UNSET', '',
    '{"cicd.pipeline.name":"old","cicd.pipeline.action.name":"RUN"}', '[]', '[]', '{}');
PRAGMA user_version = 1;
"""


def test_version_1_database_is_migrated(tmp_path: Path) -> None:
    """A v1 file gains the writers table and writer column; its runs stay readable, and its open
    run, which no known writer can finish, reads as interrupted."""
    db = tmp_path / "v1.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(_V1_SCHEMA)
    with SpanStore(db, retention=RetentionPolicy()) as store:
        statuses = [(s.run_id[0], s.status) for s in store.search()]
        finished = store.get_run("1" * 32).status
    with sqlite3.connect(db) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert (
        version,
        "writer_id" in columns,
        "writers" in tables,
        statuses,
        finished,
    ) == (SCHEMA_VERSION, True, True, [("2", "interrupted"), ("1", "success")], "success")


def test_version_2_database_is_migrated(tmp_path: Path) -> None:
    """A v2 file (span rows in a WITHOUT ROWID tree) has its spans moved into the v3 rowid table
    with the unique (trace id, span id) index; every span and run reads back the same."""
    db = tmp_path / "v2.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(_V1_SCHEMA)
    with SpanStore(db, retention=RetentionPolicy()) as store:
        before = store.get_trace("1" * 32)
    with sqlite3.connect(db) as conn:  # take the file back to exactly version 2
        conn.executescript(_V2_SPANS)
    with SpanStore(db, retention=RetentionPolicy()) as store:
        after = store.get_trace("1" * 32)
        status = store.get_run("1" * 32).status
    with sqlite3.connect(db) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        table_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'spans'").fetchone()
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(spans)")}
        count = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    assert (3, False, {"spans_id", "spans_start"}, 2, "success") == (
        version,
        "WITHOUT ROWID" in table_sql[0],
        indexes,
        count,
        status,
    )
    assert before == after


# Turns a v3 file back into v2: the spans table as v2 had it, with the same rows.
_V2_SPANS = """
CREATE TABLE spans_v2 (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER, status_code TEXT NOT NULL,
    status_message TEXT NOT NULL, attributes TEXT NOT NULL, events TEXT NOT NULL,
    links TEXT NOT NULL, resource TEXT NOT NULL, PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
INSERT INTO spans_v2 SELECT * FROM spans;
DROP TABLE spans;
ALTER TABLE spans_v2 RENAME TO spans;
CREATE INDEX spans_start ON spans (start_ns);
PRAGMA user_version = 2;
"""


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer taskdaemon is refused with a clear error."""
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SpanSourceError, match="newer"):
        SpanStore(db)


def test_unknown_run_is_not_found(tmp_path: Path) -> None:
    """Asking for a run the store never saw raises RunNotFoundError."""
    with SpanStore(tmp_path / "spans.db") as store, pytest.raises(RunNotFoundError):
        store.get_trace("f" * 32)


def test_store_processor_for_picks_sqlite_only(tmp_path: Path) -> None:
    """The factory builds a processor for sqlite:// and nothing for a remote backend."""
    processor = store_processor_for(f"sqlite:///{tmp_path}/spans.db")
    assert processor is not None
    processor.shutdown()
    assert (tmp_path / "spans.db").exists()
    assert store_processor_for("tempo+http://127.0.0.1:3200") is None
