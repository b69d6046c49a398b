"""``StoreReportData`` read directly: a window's runs and stage attempts from whole days and cut
days, its durations as an exact sorted sequence, the median and slowest runs, pipelines without
runs, a store changed under a read, and a store on a read-only file system."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pipeline_tracking_support import RESOURCE, T0, S, make_provider, store_stages, write_run
from reliability_support import tmpfs
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.reporting import PipelineSample, percentile
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking._day_totals import DAY_NS
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.aggregates import StoreReportData, aggregate_missing

#: The UTC day T0 falls in, and a window of that whole day (no cut day).
DAY = T0 // DAY_NS
WHOLE_DAY = (DAY * DAY_NS / 1e9, (DAY + 1) * DAY_NS / 1e9)
#: A window of 1,000 s around T0, inside one day: every run is read from a cut day.
CUT_DAY = ((T0 - S) / 1e9, (T0 + 1000 * S) / 1e9)


def _store(db: Path, runs: Sequence[tuple[int, str]], pipeline: str = "etl") -> list[str]:
    """One run per ``(work ms, result)``, 100 s apart from T0; returns their ids."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db))
    try:
        return [
            write_run(provider, T0 + i * 100 * S, work, pipeline=pipeline, result=result)
            for i, (work, result) in enumerate(runs)
        ]
    finally:
        provider.shutdown()


@pytest.fixture
def data(tmp_path: Path) -> Iterator[tuple[StoreReportData, list[str]]]:
    """Report data over three successful runs whose ``work`` took 100, 300 and 200 ms."""
    ids = _store(tmp_path / "spans.db", [(100, "success"), (300, "success"), (200, "success")])
    with SpanStore(tmp_path / "spans.db", retention=None) as store:
        opened = StoreReportData(store)
        try:
            yield opened, ids
        finally:
            opened.close()


def _durations_ns(db: Path) -> list[int]:
    """The run durations the writer stored, in ns, sorted (the oracle: what is read back)."""
    conn = sqlite3.connect(db)
    try:
        return sorted(row[0] for row in conn.execute("SELECT duration_ns FROM run_aggregates"))
    finally:
        conn.close()


def test_runs_on_a_cut_day_are_read_from_their_rows(
    tmp_path: Path, data: tuple[StoreReportData, list[str]]
) -> None:
    """A window inside one day counts each run, its durations sorted and its total exact."""
    stored = _durations_ns(tmp_path / "spans.db")
    sample = data[0].sample("etl", *CUT_DAY)
    assert (3, 3, 0, [ns / 1e9 for ns in stored], sum(stored) / 1e9) == (
        sample.runs,
        sample.succeeded,
        sample.failed,
        list(sample.durations),
        sample.total_seconds,
    )


def test_queue_waits_on_a_cut_day_count_every_attempt(
    data: tuple[StoreReportData, list[str]],
) -> None:
    """Every attempt's queue wait on a cut day is in the stage's queue waits, equal ones too."""
    sample = data[0].sample("etl", *CUT_DAY)
    work = next(stage for stage in sample.stages if stage.stage == "work")
    assert [0.005, 0.005, 0.005] == list(work.queue_waits)


def test_the_median_and_slowest_runs_are_named(data: tuple[StoreReportData, list[str]]) -> None:
    """The sample names the run at the lower median duration and the slowest run."""
    report, ids = data
    sample = report.sample("etl", *CUT_DAY)
    assert (ids[2], ids[1]) == (sample.median_run, sample.slowest_run)


def test_durations_are_a_sequence_read_by_index_from_either_end(
    data: tuple[StoreReportData, list[str]],
) -> None:
    """The durations answer negative indexes and slices as a sorted list would."""
    durations = data[0].sample("etl", *WHOLE_DAY).durations
    reference = list(durations)
    assert (reference[-1], reference[-3], reference[0:2], reference[::2]) == (
        durations[-1],
        durations[-3],
        durations[0:2],
        durations[::2],
    )


@pytest.mark.parametrize("index", [3, -4])
def test_durations_past_either_end_raise_index_error(
    data: tuple[StoreReportData, list[str]], index: int
) -> None:
    """An index past either end of the durations is an IndexError, as for a list."""
    durations = data[0].sample("etl", *WHOLE_DAY).durations
    with pytest.raises(IndexError):
        durations[index]


def test_a_pipeline_without_runs_has_an_empty_sample(
    data: tuple[StoreReportData, list[str]],
) -> None:
    """A pipeline with no run in the store gives a sample of no runs, not an error."""
    sample = data[0].sample("nope", *CUT_DAY)
    assert (0, 0, 0, [], (), None, None, 0.0) == (
        sample.runs,
        sample.succeeded,
        sample.failed,
        list(sample.durations),
        sample.stages,
        sample.median_run,
        sample.slowest_run,
        sample.total_seconds,
    )


def test_whole_days_sum_the_runs_of_every_status(tmp_path: Path) -> None:
    """Over whole days, runs of each status are counted and all their durations summed."""
    db = tmp_path / "spans.db"
    _store(db, [(100, "success"), (300, t.RESULT_FAILURE), (200, "success")])
    with SpanStore(db, retention=None) as store:
        report = StoreReportData(store)
        try:
            sample: PipelineSample = report.sample("etl", *WHOLE_DAY)
        finally:
            report.close()
    stored = _durations_ns(db)
    assert (3, 2, 1, sum(stored) / 1e9) == (
        sample.runs,
        sample.succeeded,
        sample.failed,
        sample.total_seconds,
    )


def _statements_to_sample(db: Path, stages: int, window: tuple[float, float]) -> int:
    """The SQL statements a sample of a run of ``stages`` stages over ``window`` executes,
    every stage's duration and queue wait percentiles read."""
    store_stages(db, "wide", [f"s{i}" for i in range(stages)], "boom")
    statements: list[str] = []
    with SpanStore(db, retention=None) as store:
        data = StoreReportData(store)
        try:
            data._conn.set_trace_callback(statements.append)
            sample = data.sample("wide", *window)
            for stage in sample.stages:
                percentile(stage.durations, 0.9)
                percentile(stage.queue_waits, 0.9)
        finally:
            data.close()
    assert stages == len(sample.stages)
    return len(statements)


@pytest.mark.parametrize("window", [WHOLE_DAY, CUT_DAY], ids=["whole day", "cut day"])
def test_a_samples_queries_do_not_grow_with_its_stages(
    tmp_path: Path, window: tuple[float, float]
) -> None:
    """A sample reads each kind of row for all the pipeline's stages at once: a run of 100
    stages costs as many statements as a run of 10 (a 5,000-stage run's report was ten
    statements a stage), from the day rows or from a cut day's attempts."""
    expected = _statements_to_sample(tmp_path / "ten.db", 10, window)
    assert expected == _statements_to_sample(tmp_path / "hundred.db", 100, window)


def test_a_histogram_that_disagrees_with_the_rows_is_one_line(tmp_path: Path) -> None:
    """When the day histogram counts runs the rows do not hold (the store changed underneath),
    reading their durations is a SpanSourceError saying to run the report again."""
    db = tmp_path / "spans.db"
    _store(db, [(100, "success")])
    conn = sqlite3.connect(db)
    conn.execute("UPDATE histogram_days SET count = count + 2 WHERE series = 2")
    conn.commit()
    conn.close()
    with SpanStore(db, retention=None) as store:
        report = StoreReportData(store)
        try:
            durations = report.sample("etl", *WHOLE_DAY).durations
            with pytest.raises(SpanSourceError) as refused:
                durations[1]
        finally:
            report.close()
    assert "the report aggregates changed while being read; run it again" == str(refused.value)


def test_runs_without_aggregates_are_aggregated_when_opened(tmp_path: Path) -> None:
    """Ended runs whose aggregates are missing are aggregated when the report data opens (a
    run whose run span is gone counts as done, and is left out), and the sample is as if the
    writer had aggregated them."""
    db = tmp_path / "spans.db"
    ids = _store(db, [(100, "success"), (300, "success"), (200, "success")])
    before = _durations_ns(db)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM run_aggregates")
    conn.execute(
        "DELETE FROM spans WHERE json_extract(body, '$[0]') IS NULL AND trace_no = "
        "(SELECT trace_no FROM traces WHERE trace_id = ?)",
        (ids[1],),
    )
    conn.commit()
    conn.close()
    with SpanStore(db, retention=None) as store:
        report = StoreReportData(store)
        try:
            aggregated = report.aggregated
            durations = list(report.sample("etl", *CUT_DAY).durations)
        finally:
            report.close()
    assert (3, [before[0] / 1e9, before[1] / 1e9]) == (aggregated, durations)


def test_aggregate_missing_counts_the_runs_of_every_batch(tmp_path: Path) -> None:
    """``aggregate_missing`` writes the missing aggregates ``batch`` runs per transaction and
    returns how many it wrote in all."""
    db = tmp_path / "spans.db"
    _store(db, [(100, "success"), (300, "success"), (200, "success")])
    conn = connect(db)
    try:
        conn.execute("DELETE FROM run_aggregates")
        written = aggregate_missing(conn, batch=2)
        stored = conn.execute("SELECT count(*) FROM run_aggregates").fetchone()[0]
    finally:
        conn.close()
    assert (3, 3) == (written, stored)


def test_a_run_whose_start_was_not_seen_is_aggregated_by_the_writer(tmp_path: Path) -> None:
    """A run span that ends in a writer that never saw it start (another process started it)
    is aggregated from its stored spans as it ends: nothing is left to aggregate later."""
    recorder, exporter = make_provider()
    write_run(recorder, T0, 100)
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    for span in exporter.get_finished_spans():
        processor.on_end(span)
    processor.shutdown()
    recorder.shutdown()
    with SpanStore(db, retention=None) as store:
        report = StoreReportData(store)
        try:
            counted = (report.aggregated, report.sample("etl", *CUT_DAY).runs)
        finally:
            report.close()
    assert (0, 1) == counted


@pytest.mark.slow
def test_a_store_on_a_read_only_file_system_is_reported_from_a_copy_then_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On a read-only file system the report reads a private copy of the store, says so once,
    and the copy is gone when the report data is closed."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with tmpfs(tmp_path / "mount", size="8m") as mount:
        db = mount / "spans.db"
        _store(db, [(100, "success")])
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with SpanStore(db, retention=None) as store:
            with caplog.at_level(logging.WARNING, logger="taskdaemon.tracking"):
                report = StoreReportData(store)
            try:
                copies = sorted(p.name for p in scratch.glob("*/*"))
                runs = report.sample("etl", *CUT_DAY).runs
            finally:
                report.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "taskdaemon.tracking"]
    assert (
        1,
        True,
        [f"{db}: on a read-only file system, reporting from a temporary copy"],
        [],
    ) == (runs, "spans.db" in copies, warnings, list(scratch.iterdir()))
