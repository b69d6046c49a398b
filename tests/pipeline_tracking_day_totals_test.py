"""The report aggregates' per-day totals and histograms: exact answers over whole and cut days,
kept right through retention, rewrites and the migration from schema version 6."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pipeline_tracking_support import T0, S, store_with
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.reporting import RecordData, Report, build_report, render_report
from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore
from taskdaemon.pipeline.tracking._day_totals import DAY_NS, bucket, bucket_low
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.aggregates import StoreReportData, write_run

HOUR = 3600 * S
# Day-aligned start, so the windows below cut days where the test says.
MIDNIGHT = T0 // DAY_NS * DAY_NS
# From 3.25 days in to 7.5 days in: days 3 and 7 cut, 4, 5 and 6 whole.
WINDOW = ((MIDNIGHT + 78 * HOUR) / 1e9, (MIDNIGHT + 180 * HOUR) / 1e9)


def test_every_value_lies_in_its_bucket() -> None:
    """Bucket ``b`` holds exactly [low(b), low(b + 1)): checked for every value up to 70,000
    and for random values up to 2^62, and the bounds only grow."""
    rng = random.Random(5)
    values = [*range(-3, 70_000), *(rng.randrange(1, 1 << 62) for _ in range(20_000))]
    misplaced = [v for v in values if not bucket_low(bucket(v)) <= v < bucket_low(bucket(v) + 1)]
    lows = [bucket_low(b) for b in range(1, 1000)]
    assert ([], True) == (misplaced, lows == sorted(set(lows)))


def _days_store(db: Path) -> list[str]:
    """40 runs five hours apart (8 days) with random `work` durations; the store's writer
    keeps their aggregates as they end."""
    works = random.Random(11).sample(range(20, 3000), 40)
    return store_with(db, works, t0=MIDNIGHT + HOUR, step=5 * HOUR)


def _reports(db: Path, ids: list[str], *, charts: bool = False) -> tuple[Report, Report, int]:
    """(from the aggregates, from runs rebuilt from their spans, days rebuilt on opening)."""
    with SpanStore(db, retention=None) as store:
        data = StoreReportData(store)
        try:
            stored = build_report(data, *WINDOW, charts=charts)
        finally:
            data.close()
        runs = []
        for run_id in ids:
            try:
                runs.append(store.get_run(run_id))
            except RunNotFoundError:
                continue  # deleted by retention
        rebuilt = build_report(RecordData(runs), *WINDOW, charts=charts)
    return stored, rebuilt, data.rebuilt_days


@pytest.mark.slow
def test_whole_and_cut_days_give_the_exact_report(tmp_path: Path) -> None:
    """A window of three whole UTC days and two cut ones gives, from the day rows and the cut
    days' attempts, the same report (counts, exact percentiles, shares, regressions against the
    previous window, the chart's daily p90) as the runs rebuilt from their spans."""
    ids = _days_store(tmp_path / "spans.db")
    stored, rebuilt, _ = _reports(tmp_path / "spans.db", ids, charts=True)
    (pipeline,) = stored.pipelines
    assert (20, render_report(rebuilt, "json")) == (
        pipeline.runs,
        render_report(stored, "json"),
    )
    daily = rebuilt.pipelines[0].daily_p90
    assert daily.keys() == pipeline.daily_p90.keys()
    for stage, points in daily.items():  # rebuilt runs hold float seconds: equal to the µs
        flat = [v for point in pipeline.daily_p90[stage] for v in point]
        assert [v for point in points for v in point] == pytest.approx(flat, abs=1e-6)
    assert 5 == len(pipeline.daily_p90["work"])


class _Counted:
    """A report's data provider that counts the samples asked of it."""

    def __init__(self, data: Any) -> None:
        self.data, self.samples = data, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.data, name)

    def sample(self, *args: Any, **kwargs: Any) -> Any:
        self.samples += 1
        return self.data.sample(*args, **kwargs)


@pytest.mark.slow
def test_a_window_of_three_centuries_samples_only_the_days_with_runs(tmp_path: Path) -> None:
    """``report --format html --since 1900-01-01 --until 2200-01-01`` sampled each of the
    window's 109,573 days for the p90 chart (a minute over a remote source's runs, whatever
    they held); the stretches without runs are now skipped whole. The chart still has the
    same point per day that ran, from the store and from the runs rebuilt."""
    ids = _days_store(tmp_path / "spans.db")
    window = (-2208988800.0, 7258118400.0)  # the bounds ``parse_when`` takes
    with SpanStore(tmp_path / "spans.db", retention=None) as store:
        stored = _Counted(StoreReportData(store))
        try:
            from_store = build_report(stored, *window, charts=True).pipelines[0].daily_p90
        finally:
            stored.data.close()
        rebuilt = _Counted(RecordData([store.get_run(run_id) for run_id in ids]))
    from_runs = build_report(rebuilt, *window, charts=True).pipelines[0].daily_p90
    flat = [v for point in from_store["work"] for v in point]
    assert (9, True, True) == (
        len(from_runs["work"]),
        stored.samples < 200,
        rebuilt.samples < 200,
    ), (stored.samples, rebuilt.samples)
    assert [v for point in from_runs["work"] for v in point] == pytest.approx(flat, abs=1e-6)


@pytest.mark.slow
def test_retention_rebuilds_the_days_it_deleted_from(tmp_path: Path) -> None:
    """After retention deletes the oldest runs, the next report rebuilds their days and still
    equals the report of the runs that are left."""
    ids = _days_store(tmp_path / "spans.db")
    with SpanStore(tmp_path / "spans.db", retention=None) as store:
        deleted = store.apply_retention(RetentionPolicy(keep=15)).deleted_runs
    stored, rebuilt, rebuilt_days = _reports(tmp_path / "spans.db", ids)
    assert (25, True, 11) == (deleted, rebuilt_days > 0, stored.pipelines[0].runs)
    assert render_report(rebuilt, "json") == render_report(stored, "json")


@pytest.mark.slow
def test_aggregating_a_run_again_does_not_count_it_twice(tmp_path: Path) -> None:
    """Writing a run's aggregates a second time replaces them: its days are rebuilt, not
    added to, so the report is unchanged."""
    db = tmp_path / "spans.db"
    ids = _days_store(db)
    before, _, _ = _reports(db, ids)
    with SpanStore(db, retention=None) as store:
        again = store.get_run(ids[20])
    conn = connect(db)
    (trace_no,) = conn.execute("SELECT trace_no FROM traces WHERE trace_id = ?", (ids[20],))
    conn.execute("BEGIN IMMEDIATE")
    write_run(conn, trace_no[0], again)
    conn.execute("COMMIT")
    stale = conn.execute("SELECT count(*) FROM stale_days").fetchone()[0]
    conn.close()
    after, _, rebuilt_days = _reports(db, ids)
    assert (1, 1) == (stale, rebuilt_days)
    assert render_report(before, "json") == render_report(after, "json")


@pytest.mark.slow
def test_a_version_6_store_gains_its_day_rows_on_the_first_report(tmp_path: Path) -> None:
    """A store written before the day tables existed (schema v6) is migrated when opened, its
    days are rebuilt by the first report, and that report is exact."""
    db = tmp_path / "spans.db"
    ids = _days_store(db)
    conn = sqlite3.connect(db)
    for table in ("stage_days", "run_days", "histogram_days", "stale_days"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DELETE FROM stage_keys WHERE stage = ''")
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    conn.close()
    stored, rebuilt, rebuilt_days = _reports(db, ids)
    assert 9 == rebuilt_days  # runs on nine UTC days (hours 1 to 196)
    assert render_report(rebuilt, "json") == render_report(stored, "json")
