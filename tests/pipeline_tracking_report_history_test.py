"""A report reads its windows, not the history: the same report, in every format, from a store
holding twelve days of runs and from one holding only the runs of the window and of the
previous window it is compared with."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from pipeline_tracking_support import RESOURCE, write_run
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.reporting import build_report, render_report
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking._day_totals import DAY_NS
from taskdaemon.pipeline.tracking.aggregates import StoreReportData

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
FIRST = 19_700 * DAY_NS  # a UTC midnight: the history's first day
# A day and a half from 05:00 of the ninth day: a whole day between two cut ones, and the
# previous window (cut days too) inside the history, which goes on three days after it.
SINCE = FIRST + 8 * DAY_NS + 5 * HOUR
UNTIL = SINCE + 36 * HOUR
PREVIOUS = SINCE - (UNTIL - SINCE)


class _RunIds(IdGenerator):
    """Trace and span ids from the run's number: a run has the same ids in either store."""

    def __init__(self) -> None:
        self.run = 0
        self._span = 0

    def generate_trace_id(self) -> int:
        self._span = 0
        return self.run + 1

    def generate_span_id(self) -> int:
        self._span += 1
        return (self.run + 1) << 8 | self._span


def _history() -> list[tuple[int, int, str, bool]]:
    """Twelve days of runs, one every 37 minutes: ``(number, start ns, pipeline, failed)``."""
    return [
        (n, FIRST + n * 37 * MINUTE, "nightly" if n % 9 == 0 else "etl", n % 10 == 3)
        for n in range(12 * 24 * 60 // 37)
    ]


def _store(db: Path, runs: list[tuple[int, int, str, bool]]) -> None:
    """The runs' spans through the store's own writer. A run's ``work`` takes one of a few
    durations (many runs tie) that rise from the window's start, so the window regresses;
    every 25th run fails."""
    ids = _RunIds()
    provider = TracerProvider(resource=RESOURCE, id_generator=ids)
    provider.add_span_processor(SqliteSpanProcessor(db))
    try:
        for number, start, pipeline, failed in runs:
            ids.run = number
            works = (100, 100, 120, 150) if start < SINCE else (130, 150, 150, 400)
            work = random.Random(number).choice(works)
            result = t.RESULT_FAILURE if number % 25 == 0 else t.RESULT_SUCCESS
            write_run(provider, start, work, pipeline=pipeline, failed=failed, result=result)
    finally:
        provider.shutdown()


def _reports(db: Path) -> dict[str, str]:
    """The report over [SINCE, UNTIL) in every format."""
    with SpanStore(db, retention=None) as store:
        data = StoreReportData(store)
        try:
            plain = build_report(data, SINCE / 1e9, UNTIL / 1e9, source="the store")
            charted = build_report(data, SINCE / 1e9, UNTIL / 1e9, source="the store", charts=True)
        finally:
            data.close()
    return {
        "table": render_report(plain, "table", None),
        "markdown": render_report(plain, "markdown", None),
        "json": render_report(plain, "json", None),
        "html": render_report(charted, "html", None),
    }


@pytest.mark.slow
def test_a_long_history_gives_the_report_of_its_windows_runs_alone(tmp_path: Path) -> None:
    """Every figure of every format (counts, rates, percentiles, critical paths of the median
    and slowest runs, regressions, the p90 per day) is the same from the whole history as from
    the two windows' runs alone; the window has runs of both pipelines, failed ones and a
    regression, so each kind of figure is there to compare."""
    history = _history()
    _store(tmp_path / "history.db", history)
    _store(tmp_path / "windows.db", [run for run in history if PREVIOUS <= run[1] < UNTIL])
    reports = _reports(tmp_path / "history.db")
    assert reports == _reports(tmp_path / "windows.db")
    table = reports["table"]
    assert "pipeline etl: 52 runs, 94.2% succeeded" in table
    assert "pipeline nightly: 6 runs" in table
    assert "work: 150ms -> 400ms" in table
