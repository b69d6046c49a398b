"""The report aggregates over a long history: opening a report reads no ended run's row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.aggregates import aggregate_missing

MINUTE = 60 * 10**9
T0 = 1_700_000_000 * 10**9


def _run_row(number: int, *, ended: bool) -> tuple[object, ...]:
    start = T0 + number * MINUTE
    if ended:
        return (f"{number:032x}", "success", start, start + 10**9)
    return (f"{number:032x}", "running", start, None)


def _aggregated_history(path: Path, runs: int) -> Path:
    """A store of ``runs`` ended runs, each with its aggregate row, and one open run."""
    connect(path).close()  # as a writer does: readers never create a store
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO runs (trace_id, pipeline, status, start_ns, end_ns) "
            "VALUES (?, 'p', ?, ?, ?)",
            [_run_row(n, ended=n < runs) for n in range(runs + 1)],
        )
        conn.executemany(
            "INSERT INTO run_aggregates VALUES (?, 'p', 'success', ?, ?, ?)",
            [(n + 1, T0 + n * MINUTE, 10**9, 10**9) for n in range(runs)],
        )
    return path


def _steps_to_check(path: Path) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 1)
    assert aggregate_missing(conn) == 0
    conn.close()
    return steps[0]


def test_checking_for_runs_to_aggregate_reads_no_ended_run(tmp_path: Path) -> None:
    """Finding every ended run aggregated executes as many instructions over 3,000 runs as over
    50."""
    expected = _steps_to_check(_aggregated_history(tmp_path / "short.db", 50))
    assert expected == _steps_to_check(_aggregated_history(tmp_path / "long.db", 3000))
