"""The store's report sample is exact: over generated runs, its counts, sums, sorted durations,
percentiles and named runs equal a naive computation over the same runs, whichever way each
histogram bucket is read (the window's rows, or a rank walk along the value index), and reading
a window's percentiles costs the same however long the history before it is."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskdaemon.pipeline.reporting import PipelineSample, percentile
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.tracking._day_totals import DAY_NS, day_of
from taskdaemon.pipeline.tracking._ranked_column import BUCKET_ROWS, WALK_PER_READ
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.aggregates import StoreReportData

S = 10**9
NS = 1e9  # ns to seconds, as the store divides
# A UTC midnight: runs start over the four days after it, windows cut them anywhere.
MIDNIGHT = 20_000 * DAY_NS
STAGES = ("a", "b")
QUANTILES = (0.0, 0.25, 0.5, 0.9, 0.99, 1.0)


@dataclass(frozen=True)
class Attempt:
    """One stage attempt as ``stage_attempts`` holds it."""

    stage: str
    attempt: int
    failed: int
    duration_ns: int
    queue_ns: int | None
    cpu_s: float | None
    peak_memory: int | None


@dataclass(frozen=True)
class Run:
    """One ended run as ``run_aggregates`` holds it, with its attempts and critical steps."""

    status: str
    start_ns: int
    duration_ns: int
    attempts: tuple[Attempt, ...]
    critical_ns: tuple[tuple[str, int], ...]


# Values crowd a few neighbouring buckets, many equal ones inside one bucket (1024-1087), with
# rare outliers far away.
_values = st.one_of(
    st.integers(1024, 1028),
    st.integers(1000, 1100),
    st.sampled_from([0, 1, 15, 16, 1024]),
    st.integers(0, 10**12),
)
_attempts = st.builds(
    Attempt,
    stage=st.sampled_from(STAGES),
    attempt=st.integers(1, 3),
    failed=st.integers(0, 1),
    duration_ns=_values,
    queue_ns=st.none() | _values,
    cpu_s=st.none() | st.sampled_from([0.25, 0.5, 1.0]),
    peak_memory=st.none() | st.integers(0, 10**9),
)
_runs = st.builds(
    Run,
    status=st.sampled_from(["success", "success", "failure", "cancellation"]),
    start_ns=st.integers(0, 4 * DAY_NS).map(lambda offset: MIDNIGHT + offset),
    duration_ns=_values,
    attempts=st.lists(_attempts, max_size=3).map(tuple),
    critical_ns=st.lists(st.tuples(st.sampled_from(STAGES), _values), max_size=2).map(tuple),
)
# Whole seconds: seconds as floats convert to exactly these nanoseconds.
_bound = st.integers(-DAY_NS // S, 5 * DAY_NS // S).map(lambda s: MIDNIGHT // S + s)


def _trace_id(trace_no: int) -> str:
    return f"{trace_no:032x}"


def _write(db: Path, runs: Sequence[Run]) -> None:
    """The aggregate rows of ``runs`` (trace numbers from 1 in order), their days listed stale
    so opening the report builds the day rows from them."""
    conn = connect(db)
    try:
        conn.execute("BEGIN IMMEDIATE")
        keys = {}
        for stage in STAGES:
            conn.execute("INSERT INTO stage_keys (pipeline, stage) VALUES ('p', ?)", (stage,))
            keys[stage] = conn.execute(
                "SELECT key_no FROM stage_keys WHERE stage = ?", (stage,)
            ).fetchone()[0]
        for trace_no, run in enumerate(runs, start=1):
            conn.execute(
                "INSERT INTO traces VALUES (?, ?, ?)", (trace_no, _trace_id(trace_no), run.start_ns)
            )
            conn.execute(
                "INSERT INTO run_aggregates VALUES (?, 'p', ?, ?, ?, 0)",
                (trace_no, run.status, run.start_ns, run.duration_ns),
            )
            for number, a in enumerate(run.attempts):
                conn.execute(
                    "INSERT INTO stage_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        keys[a.stage],
                        run.start_ns,
                        trace_no,
                        f"{number:016x}",
                        a.attempt,
                        a.failed,
                        a.duration_ns,
                        a.queue_ns,
                        a.cpu_s,
                        a.peak_memory,
                    ),
                )
            for stage, run_ns in dict(run.critical_ns).items():
                conn.execute(
                    "INSERT INTO critical_steps VALUES (?, ?, ?, 0, ?)",
                    (keys[stage], run.start_ns, trace_no, run_ns),
                )
        conn.executemany(
            "INSERT OR IGNORE INTO stale_days VALUES ('p', ?)",
            [(day_of(run.start_ns),) for run in runs],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


@contextmanager
def _opened(
    runs: Sequence[Run], bucket_rows: int = BUCKET_ROWS, walk_per_read: int = WALK_PER_READ
) -> Iterator[StoreReportData]:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "spans.db"
        _write(db, runs)
        with SpanStore(db, retention=None) as store:
            data = StoreReportData(store, bucket_rows=bucket_rows, walk_per_read=walk_per_read)
            try:
                yield data
            finally:
                data.close()


def _percentiles(values: Sequence[float]) -> list[float | None]:
    return [percentile(values, q) for q in QUANTILES]


def _observed(sample: PipelineSample) -> dict[str, Any]:
    """What the sample says, percentiles read before the full lists (as a report reads them)."""
    seen: dict[str, Any] = {
        "percentiles": _percentiles(sample.durations),
        "median_run": sample.median_run,
        "slowest_run": sample.slowest_run,
    }
    for stage in sample.stages:
        seen[stage.stage] = {
            "percentiles": _percentiles(stage.durations),
            "queue_percentiles": _percentiles(stage.queue_waits),
            "totals": (
                stage.executions,
                stage.failures,
                stage.retries,
                stage.cpu_seconds,
                stage.cpu_samples,
                stage.peak_memory_bytes,
                stage.critical_seconds,
            ),
            "durations": list(stage.durations),
            "queue_waits": list(stage.queue_waits),
        }
    seen["counts"] = (sample.runs, sample.succeeded, sample.failed, sample.total_seconds)
    seen["durations"] = list(sample.durations)
    return seen


def _naive(runs: Sequence[Run], since_ns: int, until_ns: int) -> dict[str, Any]:
    """The same, from the runs in Python: the window's ended runs, sorted and summed."""
    numbered = [
        (trace_no, run)
        for trace_no, run in enumerate(runs, start=1)
        if since_ns <= run.start_ns < until_ns
    ]
    ranked = sorted(numbered, key=lambda item: (item[1].duration_ns, item[1].start_ns, item[0]))
    durations = [run.duration_ns / NS for _, run in ranked]
    expected: dict[str, Any] = {
        "percentiles": _percentiles(durations),
        "median_run": _trace_id(ranked[(len(ranked) - 1) // 2][0]) if ranked else None,
        "slowest_run": _trace_id(ranked[-1][0]) if ranked else None,
    }
    for stage in STAGES:
        attempts = [a for _, run in numbered for a in run.attempts if a.stage == stage]
        if not attempts:
            continue
        stage_durations = sorted(a.duration_ns for a in attempts)
        queues = sorted(a.queue_ns for a in attempts if a.queue_ns is not None)
        cpu = [a.cpu_s for a in attempts if a.cpu_s is not None]
        peaks = [a.peak_memory for a in attempts if a.peak_memory is not None]
        critical = sum(dict(run.critical_ns).get(stage, 0) for _, run in numbered)
        expected[stage] = {
            "percentiles": _percentiles([d / NS for d in stage_durations]),
            "queue_percentiles": _percentiles([q / NS for q in queues]),
            "totals": (
                len(attempts),
                sum(a.failed for a in attempts),
                sum(a.attempt > 1 for a in attempts),
                sum(cpu) if cpu else None,
                len(cpu),
                max(peaks) if peaks else None,
                critical / NS,
            ),
            "durations": [d / NS for d in stage_durations],
            "queue_waits": [q / NS for q in queues],
        }
    expected["counts"] = (
        len(numbered),
        sum(run.status == "success" for _, run in numbered),
        sum(run.status == "failure" for _, run in numbered),
        sum(run.duration_ns for _, run in numbered) / NS,
    )
    expected["durations"] = durations
    return expected


# The median in the upper half of a tie group that does not open its bucket: its row is found
# from the group's far end (generated runs rarely tie three ways around the median).
_TIED_MEDIAN = [
    Run("success", MIDNIGHT + (n + 1) * 3600 * S, duration, (), ())
    for n, duration in enumerate([1024, 1030, 1030, 1030, 1040])
]


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(
    runs=_TIED_MEDIAN,
    bounds=(MIDNIGHT // S, MIDNIGHT // S + 2 * DAY_NS // S),
    bucket_rows=BUCKET_ROWS,
    walk_per_read=0,
)
@given(
    runs=st.lists(_runs, max_size=40),
    bounds=st.tuples(_bound, _bound).filter(lambda pair: pair[0] < pair[1]),
    bucket_rows=st.sampled_from([0, 1, 3, BUCKET_ROWS]),
    walk_per_read=st.sampled_from([0, WALK_PER_READ]),
)
def test_the_sample_equals_a_naive_computation(
    runs: list[Run], bounds: tuple[int, int], bucket_rows: int, walk_per_read: int
) -> None:
    """Over generated runs and windows (cutting days and histogram buckets anywhere), the
    sample's counts, sums, CPU and memory totals, sorted durations and queue waits, their
    percentiles and the median and slowest runs equal a computation over the runs in Python
    (and so do a sample's runs, executions and durations when it is not shown),
    with buckets read through the window (``walk_per_read`` 0), by rank (``bucket_rows`` 0, or
    a history not crowded enough) or each bucket its own way (``bucket_rows`` 1 or 3)."""
    since, until = bounds
    with _opened(runs, bucket_rows, walk_per_read) as data:
        observed = _observed(data.sample("p", float(since), float(until)))
        compared = data.sample("p", float(since), float(until), shown=False)
        compared_stages = {
            s.stage: (s.executions, _percentiles(s.durations), list(s.durations))
            for s in compared.stages
        }
    expected = _naive(runs, since * S, until * S)
    assert expected == observed
    # A sample the report only compares with or charts: its run count, and its stages'
    # executions and durations (all the report reads of it), counted in SQL on the cut days.
    assert expected["counts"][0] == compared.runs
    assert {
        stage: (e["totals"][0], e["percentiles"], e["durations"])
        for stage, e in expected.items()
        if stage in STAGES
    } == compared_stages


def _steps_to_read_percentiles(runs: Sequence[Run], since_ns: int, until_ns: int) -> int:
    """SQLite VM instructions of a window's sample and its run and stage percentiles."""
    with _opened(runs) as data:
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        data._conn.set_progress_handler(tick, 1)
        sample = data.sample("p", since_ns / NS, until_ns / NS)
        for values in (sample.durations, *(s.durations for s in sample.stages)):
            _percentiles(values)
        data._conn.set_progress_handler(None, 0)
    return steps[0]


def _every(minutes: int, count: int) -> list[Run]:
    """``count`` runs ``minutes`` apart from MIDNIGHT, of durations close enough to share
    histogram buckets with any other such runs (a few equal ones each)."""
    return [
        Run(
            "success",
            MIDNIGHT + n * minutes * 60 * S,
            10**9 + n % 7,
            (Attempt("a", 1, 0, 10**9 + n % 5, 10**6, None, None),),
            (),
        )
        for n in range(count)
    ]


def test_a_windows_percentiles_cost_the_same_after_any_long_history() -> None:
    """A day's sample and percentiles (runs and stages, median and slowest runs named) execute
    as many SQLite VM instructions after five days of 1,800 runs as after five days of 7,200
    (the history's per-day histograms have as many rows)."""
    window = [replace(run, start_ns=run.start_ns + 6 * DAY_NS) for run in _every(24, 60)]
    since, until = MIDNIGHT + 6 * DAY_NS, MIDNIGHT + 7 * DAY_NS
    expected = _steps_to_read_percentiles(_every(4, 1800) + window, since, until)
    assert expected == _steps_to_read_percentiles(_every(1, 7200) + window, since, until)
