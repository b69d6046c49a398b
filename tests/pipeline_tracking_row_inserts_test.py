"""The store's writers insert a batch's rows many to a statement (``tracking/_row_inserts.py``),
and store the rows one statement a row would store."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.tracking import SqliteSpanProcessor, log_writer, writer
from taskdaemon.pipeline.tracking import _run_rows as run_rows
from taskdaemon.pipeline.tracking import _span_batches as span_batches
from taskdaemon.pipeline.tracking._day_totals import DayTotals
from taskdaemon.pipeline.tracking._row_inserts import insert_rows
from taskdaemon.pipeline.tracking._row_inserts import statements as built_statements

TABLES = ("stage_keys", "run_aggregates", "stage_attempts", "critical_steps")


def _traced(module: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements run on the connections ``module`` opens from now on (each run of a
    statement is traced: ``executemany`` of one row a run is a run a row)."""
    traced: list[str] = []
    opened = module.connect

    def connect(path: Path) -> sqlite3.Connection:
        conn = opened(path)
        conn.set_trace_callback(traced.append)
        return conn

    monkeypatch.setattr(module, "connect", connect)
    return traced


def test_a_batch_of_151_spans_is_inserted_by_six_statement_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 151 spans (a run and its 150 stages) ended within one batch go in by 6 ``INSERT``
    runs (64, 64, 16, 4, 2 and 1 rows), not 151 (one a row, each a let-go of the GIL and
    back), and all are there."""
    traced = _traced(writer, monkeypatch)
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, flush_interval=60.0)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("run"):  # one trace: its number is looked up once
            for i in range(150):
                tracer.start_span(f"s{i}").end()
        assert processor.force_flush(10_000)
    finally:
        provider.shutdown()
    assert len([sql for sql in traced if "INTO spans " in sql]) == 6
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (151,)
    conn.close()


def test_a_batch_of_119_run_log_rows_is_inserted_by_seven_statement_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two statements of 40 rows, then the 39 left by statements of 20, 10, 5, 2 and 2 rows:
    7 runs, not 41 (the rest one a row)."""
    traced = _traced(log_writer, monkeypatch)
    run_log = log_writer.SqliteLogWriter(tmp_path / "spans.db", linger=60.0)
    rows = [
        LogRow("f" * 32, i, 9, "INFO", "chain", f"s{i}", None, 1, None, "test", f"row {i}", {})
        for i in range(119)
    ]
    try:
        run_log.write_rows(rows)
        assert run_log.flush(timeout=10.0)
        assert (119, 1) == (run_log.written, run_log.batches)
    finally:
        run_log.close()
    assert len([sql for sql in traced if sql.startswith("INSERT INTO logs")]) == 7


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 129, 200])
def test_the_stored_spans_are_those_of_one_statement_a_row(tmp_path: Path, size: int) -> None:
    """Both of the span writer's statements, a batch of ``size`` rows in which every fifth
    repeats an earlier row's key with other values: ``INSERT OR IGNORE`` keeps the first, ``OR
    REPLACE`` the last, and the rows and their order are the ones ``executemany`` of the
    one-row statement stores."""
    rows: list[list[Any]] = []
    for i in range(size):
        key = i // 2 if i % 5 == 4 else i
        rows.append([1, f"{key:016x}", 1_000 + i, None if i % 3 else 2_000 + i, 1, f"body {i}"])
    for name, statements in (("start", span_batches._START), ("end", span_batches._END)):
        stores = []
        for way in ("one", "many"):
            db = tmp_path / f"{name}-{way}.db"
            SqliteSpanProcessor(db).shutdown()  # the schema, as the store makes it
            stores.append(sqlite3.connect(db))
        one_by_one, many = stores
        try:
            with one_by_one, many:
                one_by_one.executemany(statements[1], rows)
                insert_rows(many, statements, rows)
            read = "SELECT rowid, * FROM spans ORDER BY rowid"
            assert many.execute(read).fetchall() == one_by_one.execute(read).fetchall()
        finally:
            one_by_one.close()
            many.close()


def test_a_run_of_150_stages_has_its_aggregate_rows_inserted_by_sixteen_statement_runs(
    tmp_path: Path,
) -> None:
    """A run's end writes a row a stage to ``stage_keys``, ``stage_attempts`` and
    ``critical_steps``: 5 statement runs a table for 150 stages (64, 64, 16, 4, 2), and one for
    the run's ``run_aggregates`` row: 16, not 451."""
    db = tmp_path / "spans.db"
    SqliteSpanProcessor(db).shutdown()  # the schema, as the store makes it
    traced: list[str] = []
    conn = sqlite3.connect(db)
    conn.set_trace_callback(traced.append)
    try:
        with conn:
            keys: dict[Any, int] = {}
            run_rows._learn_keys(conn, "chain", [f"s{i}" for i in range(150)], keys)
            pending = run_rows.Pending()
            pending.runs.append((1, "chain", "success", 1_000, 9_000, 8_000))
            for i in range(150):
                key = keys["chain", f"s{i}"]
                pending.attempts.append(
                    (key, 1_000 + i, 1, f"{i:016x}", 1, 0, 50, None, None, None)
                )
                pending.steps.append((key, 1_000 + i, 1, 0, 50))
            pending.flush(conn)
        inserts = [sql for sql in traced if sql.startswith("INSERT")]
        counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES]
    finally:
        conn.close()
    assert len(inserts) == 16
    assert counts == [150, 1, 150, 150]


def test_a_run_of_150_stages_adds_its_day_totals_by_fourteen_statement_runs(
    tmp_path: Path,
) -> None:
    """A run's end adds a ``stage_days`` row a stage and two ``histogram_days`` rows (its
    duration, its queue wait), and a ``run_days`` row and one more histogram row for the run:
    14 upsert runs for 150 stages (stage_days 64, 64, 16, 4, 2; run_days 1; histogram_days 64
    four times, 32, 8, 4, 1), not 452. Added twice, every row holds twice the counts: the
    conflict clause applies to each row of a many-row statement."""
    db = tmp_path / "spans.db"
    SqliteSpanProcessor(db).shutdown()  # the schema, as the store makes it
    traced: list[str] = []
    conn = sqlite3.connect(db)
    conn.set_trace_callback(traced.append)
    day_tables = ("stage_days", "run_days", "histogram_days")
    try:
        for _ in range(2):
            totals = DayTotals()
            for key in range(1, 151):
                totals.attempt(key, 1_000, 0, 1, 1_000 * key, 10 * key, None, None)
            totals.run(1_000, 1_000, "success", 9_000)
            with conn:
                totals.flush(conn)
        upserts = [sql for sql in traced if sql.lstrip().startswith("INSERT")]
        rows = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in day_tables]
        sums = conn.execute(
            "SELECT (SELECT sum(executions) FROM stage_days), (SELECT sum(runs) FROM run_days),"
            " (SELECT sum(count) FROM histogram_days)"
        ).fetchone()
    finally:
        conn.close()
    assert len(upserts) == 2 * 14
    assert (rows, sums) == ([150, 1, 301], (300, 2, 602))


@pytest.mark.parametrize(("width", "most"), [(1, 1), (3, 16), (2, 5)])
def test_statements_of_any_width_store_what_one_statement_a_row_stores(
    width: int, most: int
) -> None:
    """The statements built for a table of ``width`` columns (the writers build theirs when
    their module loads) insert 31 rows by a run of ``most`` rows, then halves of it, each at
    most twice, and store them as ``executemany`` of a one-row statement does."""
    head = "INSERT INTO t VALUES"
    built = built_statements(head, width, most)
    assert sorted(built) == sorted({most >> shift for shift in range(most.bit_length())})
    assert built[1] == f"{head} ({','.join('?' * width)})"
    rows = [[i * width + column for column in range(width)] for i in range(31)]
    traced: list[str] = []
    stores = [sqlite3.connect(":memory:") for _ in range(2)]
    try:
        for conn in stores:
            conn.execute(f"CREATE TABLE t ({','.join(f'c{c}' for c in range(width))})")
        one_by_one, many = stores
        one_by_one.executemany(built[1], rows)
        many.set_trace_callback(traced.append)
        insert_rows(many, built, rows)
        read = "SELECT rowid, * FROM t ORDER BY rowid"
        assert many.execute(read).fetchall() == one_by_one.execute(read).fetchall()
    finally:
        for conn in stores:
            conn.close()
    expected = {1: 31, 16: 5, 5: 7}[most]  # 16+8+4+2+1; six of 5, then 1 (none of 2)
    assert len([sql for sql in traced if sql.startswith("INSERT")]) == expected
