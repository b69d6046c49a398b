"""The span store over a long history: what a query reads does not grow with the runs kept.

Each test fills two stores' ``runs`` rows directly (a short and a long history, the same runs
at the new end) and counts the SQLite virtual-machine instructions a store call executes, with
a progress handler on the store's connection: equal counts mean the call did not walk the
older runs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore
from taskdaemon.pipeline.tracking import store as store_module

MINUTE = 60 * 10**9
T0 = 1_700_000_000 * 10**9
SHORT, LONG = 50, 3000


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list whose one item counts the VM instructions of every store opened from now on."""
    steps = [0]
    opener = store_module.connect_to_read

    def counting(path: Path) -> sqlite3.Connection:
        conn = opener(path)

        def tick() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(tick, 1)
        return conn

    monkeypatch.setattr(store_module, "connect_to_read", counting)
    return steps


def _history(path: Path, runs: int, *, open_runs: int = 1) -> Path:
    """A store whose ``runs`` rows are ``runs`` ended runs of two pipelines, one a minute, then
    ``open_runs`` open ones (no spans, no live writer: interrupted)."""
    SpanStore(path, retention=RetentionPolicy()).close()
    rows: list[tuple[Any, ...]] = []
    for number in range(runs + open_runs):
        start = T0 + number * MINUTE
        ended = number < runs
        rows.append(
            (
                f"{number:032x}",
                "nightly" if number % 10 == 9 else "hourly",
                ("failure" if number % 25 == 24 else "success") if ended else "running",
                start,
                start + 10**9 if ended else None,
            )
        )
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO runs (trace_id, pipeline, status, start_ns, end_ns, stage_count) "
            "VALUES (?, ?, ?, ?, ?, 1)",
            rows,
        )
    return path


def _steps(counted: list[int], path: Path, call: Callable[[SpanStore], object]) -> int:
    with SpanStore(path, retention=RetentionPolicy()) as store:
        counted[0] = 0
        call(store)
        return counted[0]


@pytest.mark.parametrize("status", ["running", "interrupted"])
def test_open_run_filter_reads_no_ended_run(
    tmp_path: Path, counted: list[int], status: str
) -> None:
    """Listing open runs executes as many instructions over 3,000 ended runs as over 50."""
    short = _history(tmp_path / "short.db", SHORT)
    long = _history(tmp_path / "long.db", LONG)

    def search(store: SpanStore) -> object:
        return store.search(status=status, limit=50)

    expected = _steps(counted, short, search)
    assert expected == _steps(counted, long, search)
