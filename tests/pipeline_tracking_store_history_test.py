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
from taskdaemon.pipeline.tracking._schema import connect

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
    connect(path).close()  # as a writer does: readers never create a store
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


def test_retention_with_nothing_old_enough_reads_no_run(tmp_path: Path, counted: list[int]) -> None:
    """A retention pass by age that deletes nothing executes as many instructions over 3,000
    runs as over 50 (it runs each time a store opens with the policy in the environment)."""
    short = _history(tmp_path / "short.db", SHORT, open_runs=0)
    long = _history(tmp_path / "long.db", LONG, open_runs=0)
    policy = RetentionPolicy(max_age=400 * 86400.0)

    def retention(store: SpanStore) -> object:
        return store.apply_retention(policy, now=T0 / 1e9 + 86400)

    expected = _steps(counted, short, retention)
    assert expected == _steps(counted, long, retention)


def test_retention_with_every_run_kept_reads_no_run(tmp_path: Path, counted: list[int]) -> None:
    """A retention pass by a count above the store's runs executes as many instructions over
    3,000 runs as over 50, with an age that dooms nothing beside it."""
    short = _history(tmp_path / "short.db", SHORT, open_runs=0)
    long = _history(tmp_path / "long.db", LONG, open_runs=0)

    def retention(store: SpanStore) -> object:
        policy = RetentionPolicy(max_age=400 * 86400.0, keep=1_000_000)
        return store.apply_retention(policy, now=T0 / 1e9 + 86400)

    expected = _steps(counted, short, retention)
    assert expected == _steps(counted, long, retention)


def test_retention_by_count_keeps_the_runs_listed_first(tmp_path: Path) -> None:
    """Of runs that started at the same instant, retention keeps those ``runs list`` shows
    first, up to ``keep`` a pipeline."""
    path = _history(tmp_path / "spans.db", 0, open_runs=0)
    rows = [
        (f"{n:032x}", "p", "success", T0 + (n // 4) * MINUTE, T0 + MINUTE * 10)
        for n in (7, 3, 5, 1, 6, 2, 4, 0)
    ]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO runs (trace_id, pipeline, status, start_ns, end_ns) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    with SpanStore(path, retention=RetentionPolicy()) as store:
        expected = [s.run_id for s in store.search(limit=6)]
        store.apply_retention(RetentionPolicy(keep=6))
        assert expected == [s.run_id for s in store.search(limit=100)]
