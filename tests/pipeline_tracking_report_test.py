"""``taskdaemon report``: percentiles, critical paths, regressions, from the store and Tempo."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import statistics
from pathlib import Path
from typing import Any

import pytest

from pipeline_tracking_support import T0, Backend, S, serve, store_with
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.reporting import (
    RecordData,
    build_report,
    critical_path,
    percentile,
    render_report,
)
from taskdaemon.pipeline.tracking import SpanStore, encode_traces
from taskdaemon.pipeline.tracking.aggregates import StoreReportData

MS = S // 1000
DAY = 86400.0


# -- percentiles ------------------------------------------------------------------------------


def test_percentile_known_values() -> None:
    """Linear interpolation between closest ranks, as numpy's default."""
    assert 2.5 == percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    assert 3.7 == pytest.approx(percentile([1.0, 2.0, 3.0, 4.0], 0.9))
    assert (1.0, 4.0) == (percentile([1.0, 2.0, 3.0, 4.0], 0), percentile([1.0, 2.0, 3.0, 4.0], 1))
    assert 5.0 == percentile([5.0], 0.99)
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="quantile"):
        percentile([1.0], 1.5)


@pytest.mark.parametrize("n", [2, 3, 10, 101, 1000])
def test_percentile_matches_the_reference_over_synthetic_durations(n: int) -> None:
    """Every percentile p1..p99 equals the standard library's inclusive quantiles (the same
    definition, computed independently) over seeded random durations."""
    durations = sorted(random.Random(n).lognormvariate(0, 1) for _ in range(n))
    reference = statistics.quantiles(durations, n=100, method="inclusive")
    ours = [percentile(durations, k / 100) for k in range(1, 100)]
    assert ours == pytest.approx(reference, rel=1e-12)


# -- critical path on hand-built DAGs ---------------------------------------------------------


def test_critical_path_of_a_diamond_follows_the_longer_branch() -> None:
    """a → (b, c) → d: c ends after b, so the path is a, c, d, with the waits between."""
    intervals = {"a": (1.0, 2.0), "b": (2.5, 3.0), "c": (2.2, 5.0), "d": (5.5, 6.0)}
    upstream = {"b": ["a"], "c": ["a"], "d": ["b", "c"]}
    steps = critical_path(0.0, intervals, upstream)
    assert [("a", 1.0, 1.0), ("c", 0.2, 2.8), ("d", 0.5, 0.5)] == [
        (s.stage, pytest.approx(s.wait), pytest.approx(s.duration)) for s in steps
    ]


def test_critical_path_stops_at_a_stage_its_upstream_did_not_release() -> None:
    """A stage started by a condition while its upstream still ran heads the chain itself."""
    intervals = {"build": (0.0, 10.0), "notify": (2.0, 12.0), "other": (0.0, 1.0)}
    steps = critical_path(0.0, intervals, {"notify": ["build"]})
    assert [("notify", 2.0, 10.0)] == [(s.stage, s.wait, s.duration) for s in steps]


def test_critical_path_goes_through_the_publish_of_the_event_that_fired_a_stage() -> None:
    """plan → build, which publishes ``part`` at 3.0 and 5.0 and runs until 10.0; notify,
    fired at 3.5, is released by the publish before it (not by a later one, nor by build's
    end, 0.5 ms after its start for ``late``): build's step ends at the publish, named."""
    intervals = {
        "plan": (0.5, 1.0),
        "build": (1.0, 10.0),
        "notify": (3.5, 12.0),
        "late": (9.9995, 11.0),
    }
    fired = {"notify": [("build", 5.0, "part"), ("build", 3.0, "part")]}
    steps = critical_path(0.0, intervals, {"build": ["plan"], "notify": ["build"]}, fired)
    assert [
        ("plan", 0.5, 0.5, None),
        ("build", 0.0, 2.0, "part"),
        ("notify", 0.5, 8.5, None),
    ] == [(s.stage, s.wait, s.duration, s.event) for s in steps]
    late = {"late": [("build", 3.0, "part")]}
    upstream = {"late": ["build"], "build": ["plan"]}
    intervals["notify"] = (3.5, 9.0)
    steps = critical_path(0.0, intervals, upstream, late)
    assert [("build", 3.0, "part", 0.0), ("late", 11.0, None, pytest.approx(6.9995))] == [
        (s.stage, s.end, s.event, s.wait) for s in steps[1:]
    ]
    # Ended before the fired stage started: its end released it, the step is whole.
    intervals["late"] = (10.5, 11.0)
    steps = critical_path(0.0, intervals, upstream, late)
    assert [("build", 10.0, None, 9.0), ("late", 11.0, None, 0.5)] == [
        (s.stage, s.end, s.event, s.duration) for s in steps[1:]
    ]
    # A publish after the stage started, or by a stage already on the chain, releases nothing.
    steps = critical_path(0.0, intervals, upstream, {"plan": [("build", 0.1, "x")]})
    assert ["plan", "build", "late"] == [s.stage for s in steps]
    steps = critical_path(0.0, {"a": (1.0, 2.0), "b": (1.5, 3.0)}, {}, {"b": [("a", 1.6, "e")]})
    assert [("b", 1.5, None)] == [(s.stage, s.wait, s.event) for s in steps]


def test_critical_path_of_a_chain_and_its_ties() -> None:
    """A chain is its own path; of two upstreams ending together the later-started wins,
    then the first name, whatever the mapping order."""
    chain = critical_path(0.0, {"x": (0.0, 1.0), "y": (1.0, 3.0)}, {"y": ["x"]})
    assert ["x", "y"] == [s.stage for s in chain]
    intervals = {"p": (0.0, 2.0), "q": (1.0, 2.0), "r": (0.5, 2.0), "z": (2.0, 3.0)}
    for order in (["p", "q", "r"], ["r", "q", "p"]):
        steps = critical_path(0.0, intervals, {"z": order})
        assert ["q", "z"] == [s.stage for s in steps]
    assert () == critical_path(0.0, {}, {})


# -- writing runs -----------------------------------------------------------------------------


def _window(t0: int = T0, days: float = 1.0) -> tuple[float, float]:
    return t0 / 1e9 - 1, t0 / 1e9 - 1 + days * DAY


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# -- the report over the store ----------------------------------------------------------------


@pytest.mark.slow
def test_store_percentiles_equal_the_reference(tmp_path: Path) -> None:
    """Stage and run percentiles read from the store's aggregates equal the reference
    quantiles of the durations written, and the counts are exact."""
    works = random.Random(7).sample(range(20, 2000), 101)
    store_with(tmp_path / "spans.db", works)
    with SpanStore(tmp_path / "spans.db") as store:
        data = StoreReportData(store)
        report = build_report(data, *_window())
        data.close()
    (etl,) = report.pipelines
    stages = {s.stage: s for s in etl.stages}
    work = stages["work"]
    failed_runs = sum(1 for i in range(101) if i % 10 == 3)
    executed = [w / 1000 for w in works] + [0.001] * failed_runs  # failed first attempts: 1 ms
    reference = statistics.quantiles(executed, n=100, method="inclusive")
    assert (work.p50, work.p90, work.p99) == pytest.approx(
        (reference[49], reference[89], reference[98]),
        abs=1e-6,  # times are floats: to the µs
    )
    assert (101 + failed_runs, failed_runs, failed_runs) == (
        work.executions,
        round(work.failure_rate * work.executions),
        work.retries,
    )
    assert (0.005, 0.005) == pytest.approx((work.queue_p50, work.queue_p90))
    assert (0.002, 1002) == (pytest.approx(work.cpu_seconds), work.peak_memory_bytes)
    runs = sorted((w + (2 if i % 10 == 3 else 0) + 1 + 50) / 1000 for i, w in enumerate(works))
    assert etl.p90 == pytest.approx(statistics.quantiles(runs, n=100, method="inclusive")[89])
    # work, slow, done set every run's length; fast never does.
    assert ["work", "slow", "done"] == [s.stage for s in etl.median_path.steps]  # type: ignore[union-attr]
    assert 0.0 == stages["fast"].critical_share
    assert sum(s.critical_share for s in etl.stages) < 1.0


@pytest.mark.slow
def test_regressions_compare_with_the_previous_window(tmp_path: Path) -> None:
    """`work`'s p90 rising from 100 ms to 150 ms is a regression with both numbers; the other
    stages, unchanged, are not."""
    day = int(DAY) * S
    store_with(tmp_path / "spans.db", [100] * 20, t0=T0 - day)
    store_with(tmp_path / "spans.db", [150] * 20, t0=T0)
    with SpanStore(tmp_path / "spans.db") as store:
        data = StoreReportData(store)
        report = build_report(data, *_window())
        data.close()
    (regression,) = report.pipelines[0].regressions
    # Times are read as epoch seconds (floats), whose step near 1.7e9 s is 2.4e-7 s: a
    # duration of whole nanoseconds comes back within a microsecond, not to the nanosecond.
    assert ("work", 0.1, 0.15) == (
        regression.stage,
        pytest.approx(regression.previous_p90, abs=1e-6),
        pytest.approx(regression.current_p90, abs=1e-6),
    )


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["report", "--format", "json", *args])
    out, err = capsys.readouterr()
    assert 0 == code, err
    document: dict[str, Any] = json.loads(out)
    return document


@pytest.mark.slow
def test_the_store_and_a_tempo_source_give_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same runs served by a local Tempo-format server give the same JSON report as the
    store's aggregates (the remote path rebuilds each run)."""
    ids = store_with(tmp_path / "spans.db", [30, 80, 55, 200, 120, 90, 60, 75, 140, 45, 66, 99])
    since, until = "2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z"
    from_store = _cli_json(
        capsys, "--source", f"sqlite:///{tmp_path / 'spans.db'}", "--since", since, "--until", until
    )
    with SpanStore(tmp_path / "spans.db") as store, serve(Backend()) as tempo:
        tempo.route("/api/search", {"traces": [{"traceID": run_id} for run_id in ids]})
        for run_id in ids:
            spans = store.get_trace(run_id)
            tempo.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        from_tempo = _cli_json(
            capsys, "--source", f"tempo+{tempo.url}", "--since", since, "--until", until
        )
    assert from_store.pop("source") != from_tempo.pop("source")
    assert _rounded(from_store) == _rounded(from_tempo)
    assert 12 == from_store["pipelines"][0]["runs"]


@pytest.mark.slow
def test_every_format_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Table, Markdown and HTML carry the same figures; the HTML file needs nothing else: no
    script, no external file, its three charts inline."""
    store_with(tmp_path / "spans.db", [50, 70, 90, 110])
    base = ["report", "--source", f"sqlite:///{tmp_path / 'spans.db'}", "--since", "2023-11-14"]
    outputs = {}
    for fmt in ("table", "markdown", "html"):
        assert 0 == main([*base, "--format", fmt, "-o", str(tmp_path / f"r.{fmt}")])
        outputs[fmt] = (tmp_path / f"r.{fmt}").read_text()
    assert "pipeline etl: 4 runs, 100.0% succeeded" in outputs["table"]
    # work: 50, 70, 90, 110 ms and the 1 ms failed attempt of the fourth run (index 3)
    assert "| work | 5 | 20.0% | 1 | 70ms | 102ms | 109ms |" in outputs["markdown"]
    page = outputs["html"]
    assert 3 == page.count("<svg")
    assert not re.search(r"<script|<link|\ssrc=", page)
    assert "<td>work</td><td>5</td>" in page
    assert "" == capsys.readouterr().err


def test_bad_arguments_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An unreadable --since and an empty window exit 2 with one line each."""
    source = ["--source", f"sqlite:///{tmp_path / 'spans.db'}"]
    assert 2 == main(["report", *source, "--since", "yesterday"])
    assert 2 == main(["report", *source, "--since", "1d", "--until", "2d"])
    lines = capsys.readouterr().err.splitlines()
    assert [
        "taskdaemon report: not a time: 'yesterday' (use an age such as 1h or 30d, or ISO 8601 "
        "such as 2025-01-31T12:00)",
        "taskdaemon report: --until 2d must be after --since 1d",
    ] == lines


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--until", "2020-01-01"], "--until 2020-01-01 must be after --since 7d (the default)"),
        (["--since", "2199-01-01"], "--until (now, the default) must be after --since 2199-01-01"),
    ],
)
def test_an_empty_window_names_the_default_bound_it_met(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, given: list[str], said: str
) -> None:
    """One bound given alone can meet the other's default: the line names that default. It
    said "--until must be after --since" to a user who gave no --since."""
    source = ["--source", f"sqlite:///{tmp_path / 'spans.db'}"]
    assert (2, f"taskdaemon report: {said}\n") == (
        main(["report", *source, *given]),
        capsys.readouterr().err,
    )


# -- the aggregates' life cycle ---------------------------------------------------------------


@pytest.mark.slow
def test_a_version_4_store_is_aggregated_when_first_reported(tmp_path: Path) -> None:
    """Runs stored before the aggregates existed (schema v4) are aggregated by the first
    report, which then equals the report of runs rebuilt from their spans."""
    db = tmp_path / "spans.db"
    ids = store_with(db, [40, 60, 80])
    conn = sqlite3.connect(db)
    for table in ("stage_keys", "run_aggregates", "stage_attempts", "critical_steps"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with SpanStore(db) as store:
        data = StoreReportData(store)
        from_aggregates = build_report(data, *_window())
        data.close()
        rebuilt = build_report(RecordData([store.get_run(i) for i in ids]), *_window())
    assert 3 == data.aggregated
    assert render_report(rebuilt, "json") == render_report(from_aggregates, "json")


@pytest.mark.slow
def test_retention_drops_the_aggregates_of_deleted_runs(tmp_path: Path) -> None:
    """Deleting runs by retention deletes their aggregates with them."""
    db = tmp_path / "spans.db"
    store_with(db, [40, 60, 80])
    with SpanStore(db) as store:
        from taskdaemon.pipeline.tracking import RetentionPolicy

        assert 2 == store.apply_retention(RetentionPolicy(keep=1)).deleted_runs
    conn = sqlite3.connect(db)
    counts = [
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("run_aggregates", "stage_attempts", "critical_steps")
    ]
    conn.close()
    assert [1, 4, 3] == counts
