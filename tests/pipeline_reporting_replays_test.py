"""Replays in reports and metrics, on real runs and real replays (engine, monitor, OTel SDK,
embedded store): a replay's fed executions are not executions of their stage, and a replay that
fed stages is left out of the run figures, alike from the store's aggregates (written as runs
end, or rebuilt from spans), from runs rebuilt from spans (the Tempo/Jaeger/OTLP path) and in
the OTel metrics (docs/reports.md, "Replays")."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from pipeline_replay_support import Recording
from pipeline_tracking_support import AGGREGATE_TABLES, aggregate_rows, within_a_microsecond
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.reporting import (
    RecordData,
    Report,
    build_report,
    render_report,
    replay_note,
)
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.aggregates import StoreReportData, aggregate_missing

DAY = 86400.0


class Replayed:
    """One recorded run of the replay tests' ``flow`` and two replays of it ``--from check``
    (``plan`` and ``build`` fed), recorded into one store, with the monitor's metrics read by
    ``reader``."""

    def __init__(self, db: Path) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.rec = Recording(db, meter_provider=self.meters)
        self.original = self.rec.run().run_id
        self.replays = [self.rec.replay(self.original, from_stage="check").run_id for _ in range(2)]
        self.runs = [self.original, *self.replays]

    def close(self) -> None:
        self.rec.close()
        self.meters.shutdown()


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    recorded = Replayed(tmp_path_factory.mktemp("replays") / "spans.db")
    yield recorded
    recorded.close()


def _windows() -> list[tuple[float, float]]:
    """A window of whole UTC days (read from the day rows) and one of an hour around now (read
    from the attempts themselves, unless it holds a midnight)."""
    now = time.time()
    return [(now - 2 * DAY, now + 2 * DAY), (now - 3600, now + 3600)]


def _store_report(db: Path, since: float, until: float) -> tuple[Report, Any]:
    with SpanStore(db) as store:
        data = StoreReportData(store)
        try:
            return build_report(data, since, until), data.sample("flow", since, until)
        finally:
            data.close()


def _rebuilt_report(replayed: Replayed, since: float, until: float) -> tuple[Report, Any]:
    with SpanStore(replayed.rec.db) as store:
        data = RecordData([store.get_run(run_id) for run_id in replayed.runs])
    return build_report(data, since, until), data.sample("flow", since, until)


def _executions(report: Report) -> dict[str, int]:
    (pipeline,) = report.pipelines
    return {stage.stage: stage.executions for stage in pipeline.stages}


@pytest.mark.slow
@pytest.mark.parametrize("source", ["store", "rebuilt"])
def test_fed_executions_and_replays_that_fed_stages_are_left_out(
    replayed: Replayed, source: str
) -> None:
    """Only the original ran plan and build: one execution each, not three; check and release
    ran in every run, replays included. The run figures are the original's alone (its path is
    the median and slowest one), and a note says two replays were left out."""
    with SpanStore(replayed.rec.db) as store:
        alone = RecordData([store.get_run(replayed.original)])
    for window in _windows():
        once = _executions(build_report(alone, *window))
        if source == "store":
            report, sample = _store_report(replayed.rec.db, *window)
        else:
            report, sample = _rebuilt_report(replayed, *window)
        (pipeline,) = report.pipelines
        assert {
            "plan": once["plan"],
            "build": once["build"],
            "check": 3 * once["check"],
            "release": 3 * once["release"],
        } == _executions(report)
        assert (1, 2) == (pipeline.runs, sample.replays)
        assert (replayed.original, replayed.original) == (sample.median_run, sample.slowest_run)
        assert replay_note("flow", 2) in report.notes
        shares = {stage.stage: stage.critical_share for stage in pipeline.stages}
        assert sum(shares.values()) <= 1.0 + 1e-9


@pytest.mark.slow
def test_the_store_and_the_rebuilt_runs_give_the_same_report(replayed: Replayed) -> None:
    """Over whole days and over cut ones, the store's aggregates and the runs rebuilt from
    their spans (what Tempo, Jaeger and OTLP files give) report the same figures: the same
    JSON, but for a last printed digit that the store's nanosecond sums and the rebuilt runs'
    float seconds may round apart (a microsecond, the report's resolution)."""
    for window in _windows():
        from_store, _ = _store_report(replayed.rec.db, *window)
        rebuilt, _ = _rebuilt_report(replayed, *window)
        store_json = json.loads(render_report(from_store, "json"))
        assert within_a_microsecond(json.loads(render_report(rebuilt, "json")), store_json)


@pytest.mark.slow
def test_the_writer_and_a_rebuild_from_spans_write_the_same_rows(
    replayed: Replayed, tmp_path: Path
) -> None:
    """The rows the writer wrote as the runs ended (from the attempts it kept) equal those
    ``aggregate_missing`` writes from the stored spans, replays' rows included: status
    ``replayed``, no critical path, and no attempt of a fed stage."""
    copy = tmp_path / "copy.db"
    with sqlite3.connect(replayed.rec.db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    target.close()
    conn = connect(copy)
    try:
        written = aggregate_rows(conn)
        for table in AGGREGATE_TABLES:
            conn.execute(f"DELETE FROM {table}")
        assert 3 == aggregate_missing(conn)
        assert written == aggregate_rows(conn)
        statuses = dict(
            conn.execute(
                "SELECT t.trace_id, a.status FROM run_aggregates a JOIN traces t USING (trace_no)"
            ).fetchall()
        )
        fed_rows = conn.execute(
            "SELECT count(*) FROM stage_attempts a JOIN stage_keys k USING (key_no) "
            "WHERE k.stage IN ('plan', 'build')"
        ).fetchone()[0]
        steps = conn.execute(
            "SELECT count(*) FROM critical_steps s JOIN run_aggregates a USING (trace_no) "
            "WHERE a.status = 'replayed'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert {replayed.original: "success"} | dict.fromkeys(replayed.replays, "replayed") == statuses
    assert (2, 0) == (fed_rows, steps)


@pytest.mark.slow
def test_a_version_9_store_has_its_replays_aggregated_again(
    replayed: Replayed, tmp_path: Path
) -> None:
    """A store whose replays were aggregated before the rule (as runs, with their fed attempts)
    is migrated when opened: the replays' rows are dropped and written again, and the report
    equals a fresh store's."""
    copy = tmp_path / "old.db"
    with sqlite3.connect(replayed.rec.db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    target.close()
    window = _windows()[0]
    fresh, _ = _store_report(copy, *window)
    conn = sqlite3.connect(copy)
    # What version 9 wrote: each replay a run (status and a duration in the run histogram) and
    # its fed executions attempts of their stage.
    conn.execute("UPDATE run_aggregates SET status = 'success' WHERE status = 'replayed'")
    conn.execute(
        "INSERT INTO stage_attempts SELECT k.key_no, a.start_ns, a.trace_no, 'fed', 1, 0, 0, "
        "0, NULL, NULL FROM run_aggregates a JOIN stage_keys k ON k.pipeline = a.pipeline "
        "AND k.stage = 'plan' WHERE a.trace_no != (SELECT min(trace_no) FROM run_aggregates)"
    )
    conn.execute("DELETE FROM run_days WHERE status = 'replayed'")
    conn.execute("UPDATE run_days SET runs = runs + 2 WHERE status = 'success'")
    conn.execute("UPDATE stage_days SET executions = executions + 2")
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    migrated, sample = _store_report(copy, *window)
    assert 2 == sample.replays
    assert render_report(fresh, "json") == render_report(migrated, "json")


def _by_status(points: list[Any], stage: str) -> dict[str, Any]:
    return {p.attributes[t.LABEL_STATUS]: p for p in points if p.attributes[t.LABEL_STAGE] == stage}


def _points(reader: InMemoryMetricReader, metric: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for item in scope.metrics
        if item.name == metric
        for point in item.data.data_points
    ]


@pytest.mark.slow
def test_fed_executions_are_counted_replayed_with_no_duration_or_queue_time(
    replayed: Replayed,
) -> None:
    """The metrics: plan's two fed executions add two ``replayed`` executions and no
    observation to the duration or queue histograms, nor to ``get_metrics()``; check, which
    every run executed, has three durations."""
    executions = _points(replayed.reader, t.METRIC_STAGE_EXECUTIONS)
    assert {"success": 1, "replayed": 2, "failure": 0, "timeout": 0, "cancelled": 0} == {
        status: p.value for status, p in _by_status(executions, "plan").items()
    }
    durations = _points(replayed.reader, t.METRIC_STAGE_DURATION)
    plan = _by_status(durations, "plan")
    assert ["success"] == list(plan)
    assert isinstance(plan["success"], HistogramDataPoint)
    assert 1 == plan["success"].count
    checks = _by_status(durations, "check")
    assert 6 == sum(p.count for p in checks.values())  # two instances in each of three runs
    queues = [
        p
        for p in _points(replayed.reader, t.METRIC_STAGE_QUEUE_TIME)
        if p.attributes[t.LABEL_STAGE] == "plan"
    ]
    assert [1] == [p.count for p in queues]
    assert 1 == replayed.rec.monitor.get_metrics("flow").stages["plan"].count
