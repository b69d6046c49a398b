"""The per-day rows of the report aggregates, written and rebuilt directly: what
``DayTotals`` adds to ``stage_days``, ``run_days`` and ``histogram_days``, and what
``refresh_stale_days`` rebuilds from the attempts, critical steps and runs of a stale day (the
report-level checks are in ``pipeline_tracking_day_totals_test.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskdaemon.pipeline.tracking._day_totals import (
    DAY_NS,
    SERIES_DURATION,
    SERIES_QUEUE,
    SERIES_RUN,
    DayTotals,
    bucket,
    day_of,
    mark_stale,
    pipeline_key,
    refresh_stale_days,
)
from taskdaemon.pipeline.tracking._schema import connect

DAY = 20_000  # a UTC day number
AT = DAY * DAY_NS + 5  # a time inside it


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh span store's connection (autocommit: each statement is its own transaction)."""
    connection = connect(tmp_path / "spans.db")
    yield connection
    connection.close()


def stage_days(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Every ``stage_days`` row, in key and day order."""
    return conn.execute("SELECT * FROM stage_days ORDER BY key_no, day").fetchall()


def run_days(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Every ``run_days`` row, in key, day and status order."""
    return conn.execute("SELECT * FROM run_days ORDER BY key_no, day, status").fetchall()


def histogram(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Every ``histogram_days`` row, in key, series, day and bucket order."""
    return conn.execute(
        "SELECT * FROM histogram_days ORDER BY key_no, series, day, bucket"
    ).fetchall()


def test_the_day_of_a_time_before_1970_is_the_day_before() -> None:
    """``day_of`` floors: a nanosecond before the epoch is day -1, the epoch day 0."""
    assert (-1, 0, 1) == (day_of(-1), day_of(0), day_of(DAY_NS))


def test_empty_totals_are_false_and_any_attempt_or_run_makes_them_true() -> None:
    """``DayTotals`` is false until an attempt or a run was added."""
    with_attempt, with_run = DayTotals(), DayTotals()
    with_attempt.attempt(1, AT, 0, 1, 10, None, None, None)
    with_run.run(1, AT, "success", 10)
    assert (False, True, True) == (bool(DayTotals()), bool(with_attempt), bool(with_run))


def test_attempts_of_a_day_are_summed_into_one_stage_row(conn: sqlite3.Connection) -> None:
    """Executions, failures, retries (attempts after the first), CPU sum and count, the
    highest peak memory and the queue waits recorded are summed per stage key and day."""
    totals = DayTotals()
    totals.attempt(7, AT, 0, 1, 10, 100, 1.5, 300)
    totals.attempt(7, AT + 1, 1, 2, 20, None, None, 900)
    totals.attempt(7, AT + 2, 1, 3, 30, 5, 0.5, 200)
    totals.flush(conn)
    assert [(7, DAY, 3, 2, 2, 2.0, 2, 900, 2, 0)] == stage_days(conn)


def test_a_stage_without_cpu_or_memory_readings_has_none(conn: sqlite3.Connection) -> None:
    """No CPU time and no peak memory recorded leave both None and the CPU count 0."""
    totals = DayTotals()
    totals.attempt(7, AT, 0, 1, 10, None, None, None)
    totals.flush(conn)
    assert [(7, DAY, 1, 0, 0, None, 0, None, 0, 0)] == stage_days(conn)


def test_attempts_of_two_days_or_two_keys_are_kept_apart(conn: sqlite3.Connection) -> None:
    """Each (stage key, day) has its own row."""
    totals = DayTotals()
    totals.attempt(7, AT, 0, 1, 10, None, None, None)
    totals.attempt(7, AT + DAY_NS, 0, 1, 10, None, None, None)
    totals.attempt(8, AT, 0, 1, 10, None, None, None)
    totals.flush(conn)
    assert [(7, DAY), (7, DAY + 1), (8, DAY)] == [row[:2] for row in stage_days(conn)]


def test_a_second_flush_adds_to_the_rows_of_the_first(conn: sqlite3.Connection) -> None:
    """Flushed twice, the rows hold both batches: counts added, CPU summed (a None side
    keeps the other), the higher peak memory kept."""
    first, second, third = DayTotals(), DayTotals(), DayTotals()
    first.attempt(7, AT, 1, 1, 10, 100, None, 500)
    first.critical(7, AT, 40)
    first.flush(conn)
    second.attempt(7, AT, 0, 2, 10, None, 2.0, None)
    second.critical(7, AT, 2)
    second.flush(conn)
    third.attempt(7, AT, 0, 1, 10, 1, 1.0, 700)
    third.flush(conn)
    assert [(7, DAY, 3, 1, 1, 3.0, 2, 700, 2, 42)] == stage_days(conn)


def test_a_lower_peak_flushed_later_keeps_the_higher_one(conn: sqlite3.Connection) -> None:
    """A later batch with a lower peak memory, or none, leaves the higher one."""
    for peak in (900, 300, None):
        totals = DayTotals()
        totals.attempt(7, AT, 0, 1, 10, None, None, peak)
        totals.flush(conn)
    assert 900 == stage_days(conn)[0][7]


def test_a_flush_starts_over_empty(conn: sqlite3.Connection) -> None:
    """After ``flush`` the totals are empty: a second flush adds nothing."""
    totals = DayTotals()
    totals.attempt(7, AT, 0, 1, 10, 5, 1.0, 1)
    totals.run(1, AT, "success", 10)
    totals.flush(conn)
    totals.flush(conn)
    assert (False, 1, 1, 3) == (
        bool(totals),
        len(stage_days(conn)),
        len(run_days(conn)),
        len(histogram(conn)),
    )


def test_durations_and_queue_waits_fall_in_their_histogram_buckets(
    conn: sqlite3.Connection,
) -> None:
    """Each attempt's duration counts in series 0 and its queue wait, when recorded, in
    series 1, in the bucket of the value."""
    totals = DayTotals()
    totals.attempt(7, AT, 0, 1, 1000, 50, None, None)
    totals.attempt(7, AT, 0, 1, 1000, None, None, None)
    totals.attempt(7, AT, 0, 1, 3, 50, None, None)
    totals.flush(conn)
    expected = [
        (7, SERIES_DURATION, DAY, bucket(3), 1),
        (7, SERIES_DURATION, DAY, bucket(1000), 2),
        (7, SERIES_QUEUE, DAY, bucket(50), 2),
    ]
    assert expected == histogram(conn)


def test_runs_are_summed_per_status_with_their_durations_in_series_2(
    conn: sqlite3.Connection,
) -> None:
    """Runs count per (pipeline key, day, status) with their summed durations, and each run's
    duration counts in the run series of the histogram."""
    totals = DayTotals()
    totals.run(1, AT, "success", 100)
    totals.run(1, AT, "success", 300)
    totals.run(1, AT, "failure", 100)
    totals.flush(conn)
    more = DayTotals()
    more.run(1, AT, "success", 1)
    more.flush(conn)
    expected_runs = [(1, DAY, "failure", 1, 100), (1, DAY, "success", 3, 401)]
    expected_histogram = [
        (1, SERIES_RUN, DAY, bucket(1), 1),
        (1, SERIES_RUN, DAY, bucket(100), 2),
        (1, SERIES_RUN, DAY, bucket(300), 1),
    ]
    assert (expected_runs, expected_histogram) == (run_days(conn), histogram(conn))


def test_a_whole_run_adds_what_its_rows_one_by_one_add(tmp_path: Path) -> None:
    """``add_run`` with the run's attempt and critical-step rows writes the same day rows as
    ``attempt``, ``critical`` and ``run`` called row by row."""
    attempts = [
        (7, AT, 1, "s1", 1, 1, 40, 5, 0.25, 100),
        (7, AT, 1, "s2", 2, 0, 60, None, None, None),
        (8, AT, 1, "s3", 1, 0, 9, 1, 1.0, 50),
    ]
    steps = [(7, AT, 1, 3, 100), (8, AT, 1, 0, 9)]
    whole, by_row = DayTotals(), DayTotals()
    whole.add_run(1, AT, "failure", 200, attempts, steps)
    for key_no, start, _, _, attempt, failed, took, queue, cpu, peak in attempts:
        by_row.attempt(key_no, start, failed, attempt, took, queue, cpu, peak)
    for key_no, start, _, _, run_ns in steps:
        by_row.critical(key_no, start, run_ns)
    by_row.run(1, AT, "failure", 200)
    tables = []
    for name, totals in (("whole", whole), ("by_row", by_row)):
        conn = connect(tmp_path / f"{name}.db")
        totals.flush(conn)
        tables.append((stage_days(conn), run_days(conn), histogram(conn)))
        conn.close()
    assert tables[1] == tables[0]


def test_a_pipeline_has_one_key_created_on_first_use(conn: sqlite3.Connection) -> None:
    """``pipeline_key`` creates the pipeline's own key once and then returns the same one;
    another pipeline gets another."""
    first = pipeline_key(conn, "p")
    again = pipeline_key(conn, "p")
    other = pipeline_key(conn, "q")
    rows = conn.execute("SELECT pipeline, stage FROM stage_keys ORDER BY key_no").fetchall()
    assert (first, [("p", ""), ("q", "")]) == (again, rows)
    assert first != other


# ---------------------------------------------------------------------- stale days


def stage_key(conn: sqlite3.Connection, pipeline: str, stage: str) -> int:
    """The key of ``pipeline``'s ``stage``, created if needed."""
    conn.execute(
        "INSERT OR IGNORE INTO stage_keys (pipeline, stage) VALUES (?, ?)", (pipeline, stage)
    )
    number: int = conn.execute(
        "SELECT key_no FROM stage_keys WHERE pipeline = ? AND stage = ?", (pipeline, stage)
    ).fetchone()[0]
    return number


def recorded_run(
    conn: sqlite3.Connection,
    trace_no: int,
    pipeline: str,
    start_ns: int,
    status: str = "success",
    *,
    key_no: int,
) -> None:
    """A run's aggregate rows: the run, one attempt of ``key_no`` (40 ns, queued 5 ns, failed
    unless a success) and one critical step (30 ns)."""
    conn.execute(
        "INSERT INTO run_aggregates VALUES (?, ?, ?, ?, ?, ?)",
        (trace_no, pipeline, status, start_ns, 100, 30),
    )
    conn.execute(
        "INSERT INTO stage_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (key_no, start_ns, trace_no, "s", 1, int(status != "success"), 40, 5, 0.5, 64),
    )
    conn.execute(
        "INSERT INTO critical_steps VALUES (?, ?, ?, ?, ?)", (key_no, start_ns, trace_no, 0, 30)
    )


def test_a_stale_day_is_rebuilt_from_its_runs(conn: sqlite3.Connection) -> None:
    """A stale day's rows are rebuilt from its attempts, critical steps and runs, and the day
    is no longer stale."""
    key = stage_key(conn, "p", "build")
    recorded_run(conn, 1, "p", AT, key_no=key)
    recorded_run(conn, 2, "p", AT + 10, "failure", key_no=key)
    mark_stale(conn, "p", [DAY])
    rebuilt = refresh_stale_days(conn)
    own = pipeline_key(conn, "p")
    expected_stage = [(key, DAY, 2, 1, 0, 1.0, 2, 64, 2, 60)]
    expected_runs = [(own, DAY, "failure", 1, 100), (own, DAY, "success", 1, 100)]
    stale = conn.execute("SELECT * FROM stale_days").fetchall()
    assert (1, expected_stage, expected_runs, []) == (
        rebuilt,
        stage_days(conn),
        run_days(conn),
        stale,
    )


def test_a_rebuilt_day_has_its_histograms_of_every_series(conn: sqlite3.Connection) -> None:
    """The rebuilt day counts its attempts' durations and queue waits and its runs'
    durations."""
    key = stage_key(conn, "p", "build")
    recorded_run(conn, 1, "p", AT, key_no=key)
    mark_stale(conn, "p", [DAY])
    refresh_stale_days(conn)
    own = pipeline_key(conn, "p")
    expected = [
        (key, SERIES_DURATION, DAY, bucket(40), 1),
        (key, SERIES_QUEUE, DAY, bucket(5), 1),
        (own, SERIES_RUN, DAY, bucket(100), 1),
    ]
    assert expected == histogram(conn)


def test_a_rebuild_replaces_the_days_old_rows(conn: sqlite3.Connection) -> None:
    """Rows the day had before the rebuild (counted twice, say) are replaced, not added to."""
    key = stage_key(conn, "p", "build")
    recorded_run(conn, 1, "p", AT, key_no=key)
    own = pipeline_key(conn, "p")
    wrong = DayTotals()
    for _ in range(3):
        wrong.attempt(key, AT, 1, 2, 7, 7, 9.0, 1)
        wrong.run(own, AT, "success", 7)
    wrong.flush(conn)
    mark_stale(conn, "p", [DAY])
    refresh_stale_days(conn)
    assert [(key, DAY, 1, 0, 0, 0.5, 1, 64, 1, 30)] == stage_days(conn)


def test_a_rebuild_reads_only_its_own_day_and_pipeline(conn: sqlite3.Connection) -> None:
    """Runs of the days before and after, of another pipeline, and of status ``unknown`` are
    left out of the rebuilt day; other days' rows are kept."""
    key = stage_key(conn, "p", "build")
    other = stage_key(conn, "q", "build")
    recorded_run(conn, 1, "p", AT, key_no=key)
    recorded_run(conn, 2, "p", DAY * DAY_NS - 1, key_no=key)
    recorded_run(conn, 3, "p", (DAY + 1) * DAY_NS, key_no=key)
    recorded_run(conn, 4, "q", AT + 1, key_no=other)
    conn.execute("INSERT INTO run_aggregates VALUES (5, 'p', 'unknown', ?, 999, 0)", (AT + 2,))
    kept = DayTotals()
    kept.attempt(key, AT - DAY_NS, 0, 1, 1, None, None, None)
    kept.flush(conn)
    mark_stale(conn, "p", [DAY])
    refresh_stale_days(conn)
    own = pipeline_key(conn, "p")
    expected_stage = [
        (key, DAY - 1, 1, 0, 0, None, 0, None, 0, 0),
        (key, DAY, 1, 0, 0, 0.5, 1, 64, 1, 30),
    ]
    assert (expected_stage, [(own, DAY, "success", 1, 100)]) == (stage_days(conn), run_days(conn))


def test_stale_days_are_rebuilt_in_batches_and_counted(conn: sqlite3.Connection) -> None:
    """Three stale days rebuilt one per transaction are all rebuilt, and counted."""
    key = stage_key(conn, "p", "build")
    for offset in range(3):
        recorded_run(conn, offset + 1, "p", AT + offset * DAY_NS, key_no=key)
    mark_stale(conn, "p", [DAY, DAY + 1, DAY + 2])
    rebuilt = refresh_stale_days(conn, batch=1)
    assert (3, [DAY, DAY + 1, DAY + 2]) == (rebuilt, [row[1] for row in stage_days(conn)])


def test_nothing_stale_rebuilds_nothing(conn: sqlite3.Connection) -> None:
    """Without stale days ``refresh_stale_days`` returns 0 and writes nothing."""
    assert (0, []) == (refresh_stale_days(conn), stage_days(conn))


def test_a_rebuild_that_fails_leaves_the_day_stale(conn: sqlite3.Connection) -> None:
    """An error while rebuilding rolls the transaction back: the day stays listed stale and
    the connection is out of its transaction."""
    stage_key(conn, "p", "build")
    mark_stale(conn, "p", [DAY])
    conn.execute("DROP TABLE critical_steps")
    with pytest.raises(sqlite3.OperationalError):
        refresh_stale_days(conn)
    stale = conn.execute("SELECT * FROM stale_days").fetchall()
    assert ([("p", DAY)], False) == (stale, conn.in_transaction)
