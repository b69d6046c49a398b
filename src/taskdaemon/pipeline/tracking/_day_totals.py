"""Per-day totals and histograms of the report aggregates (schema version 7).

A report over a long window must not visit every attempt of every run in it. For each stage
key and UTC day (``day = start_ns // DAY_NS`` of the *run's* start, as the report selects runs
by their start) the store keeps:

- ``stage_days``: executions, failures, retries, CPU time (sum and count), the highest peak
  memory, queue waits recorded, and the seconds the stage ran on its runs' critical paths;
- ``run_days`` (keyed by the pipeline's own key, the ``stage_keys`` row with stage ``''``):
  runs and the sum of their durations, per run status;
- ``histogram_days``: how many durations (series 0), queue waits (series 1) and run durations
  (series 2) fell in each bucket of a log-scale histogram (``bucket``).

A report then reads the window's whole days from these rows, and only the attempts of its two
partial days (before the first midnight, after the last) from ``stage_attempts``.

Exact percentiles: the buckets are not used to estimate a value, only to find it. The item of
rank ``k`` lies in the bucket where the histogram's running count passes ``k``; it is then read
from the index on (key, value, start) restricted to that bucket's value range, ``LIMIT 1 OFFSET
r`` where ``r`` is its rank inside the bucket, walking from the bucket's nearer end. So the
answer is the same value a sort of every sample would give (the reference tests compare them),
and the walk is bounded by one bucket's rows (1/16 of an octave, 4-6% of the value range)
instead of half the window's. Those are the bucket's rows of the whole history: when they are
more than four times the window's rows, the window's own values in the bucket are read instead
(``_ranked_column.RankedColumn``).

Buckets (``bucket``, exact integer arithmetic, no floating point): values below 1 ns are bucket
0; 1-15 ns are their own bucket; above, each power of two is split into 16 equal parts by the
four bits after the leading one.

Upkeep: the writer adds each batch's runs with :class:`DayTotals` (one upsert row per touched
row per batch, not per attempt, many rows a statement). A day that cannot be updated by
addition (retention deleted runs from it, a run's aggregates were rewritten, a store migrated
from version 6) is listed in ``stale_days``; :func:`refresh_stale_days` rebuilds those days
from ``stage_attempts``, ``critical_steps`` and ``run_aggregates`` before a report reads them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final

from taskdaemon.pipeline.telemetry import STATUS_REPLAYED as _FED
from taskdaemon.pipeline.tracking._row_inserts import insert_rows, statements

__all__ = [
    "DAY_NS",
    "SERIES_DURATION",
    "SERIES_QUEUE",
    "SERIES_RUN",
    "DayTotals",
    "bucket",
    "bucket_low",
    "day_of",
    "refresh_stale_days",
    "stage_totals_add",
]

DAY_NS: Final = 86_400 * 1_000_000_000
SERIES_DURATION: Final = 0
SERIES_QUEUE: Final = 1
SERIES_RUN: Final = 2
_SUB_BITS: Final = 4  # 16 buckets per power of two
_SUB: Final = 1 << _SUB_BITS
_LOWEST: Final = -(1 << 63)  # bucket 0 starts at SQLite's smallest integer

# stage_days columns after (key_no, day), in order; stage_totals_add folds into such a list.
STAGE_COLUMNS: Final = (
    "executions",
    "failures",
    "retries",
    "cpu_s",
    "cpu_count",
    "peak_memory",
    "queue_count",
    "critical_ns",
)


def day_of(start_ns: int) -> int:
    """The UTC day number of a time in epoch nanoseconds."""
    return start_ns // DAY_NS


def bucket(value: int) -> int:
    """The histogram bucket of ``value`` (see the module docstring)."""
    if value < 1:
        return 0
    if value < _SUB:
        return value
    exponent = value.bit_length() - 1
    mantissa = (value >> (exponent - _SUB_BITS)) & (_SUB - 1)
    return _SUB * (exponent - _SUB_BITS + 1) + mantissa


def bucket_low(number: int) -> int:
    """The smallest value of bucket ``number`` (bucket ``n`` holds ``[low(n), low(n + 1))``)."""
    if number <= 0:
        return _LOWEST
    if number < _SUB:
        return number
    exponent = number // _SUB + _SUB_BITS - 1
    return (_SUB + number % _SUB) << (exponent - _SUB_BITS)


def stage_totals_add(  # noqa: PLR0917 (one value per stage_days column)
    totals: list[Any],
    failed: int,
    attempt: int,
    queue_ns: int | None,
    cpu_s: float | None,
    peak_memory: int | None,
) -> None:
    """Fold one attempt into ``totals`` (a list in ``STAGE_COLUMNS`` order)."""
    totals[0] += 1
    totals[1] += failed
    totals[2] += attempt > 1
    if cpu_s is not None:
        totals[3] = cpu_s if totals[3] is None else totals[3] + cpu_s
        totals[4] += 1
    if peak_memory is not None and (totals[5] is None or peak_memory > totals[5]):
        totals[5] = peak_memory
    if queue_ns is not None:
        totals[6] += 1


def new_totals() -> list[Any]:
    """Empty totals in ``STAGE_COLUMNS`` order."""
    return [0, 0, 0, None, 0, None, 0, 0]


# Each upsert many rows a statement (``_row_inserts``): a run's end adds a row a stage to
# ``stage_days`` and two to ``histogram_days`` (durations, queue waits), which ``executemany``
# ran one statement a row (benchmarks/README.md, "The loop's inbox keeps the GIL (perf52,
# 2026-12-07)"). The rows of one flush have distinct keys (they come from dicts), and SQLite
# applies the conflict clause to each row in turn: the stored rows are the same.
_UPSERT_STAGE: Final = statements(
    "INSERT INTO stage_days VALUES",
    10,
    64,
    """ON CONFLICT (key_no, day) DO UPDATE SET
    executions = executions + excluded.executions,
    failures = failures + excluded.failures,
    retries = retries + excluded.retries,
    cpu_s = CASE WHEN cpu_s IS NULL THEN excluded.cpu_s
                 WHEN excluded.cpu_s IS NULL THEN cpu_s ELSE cpu_s + excluded.cpu_s END,
    cpu_count = cpu_count + excluded.cpu_count,
    peak_memory = max(coalesce(peak_memory, excluded.peak_memory),
                      coalesce(excluded.peak_memory, peak_memory)),
    queue_count = queue_count + excluded.queue_count,
    critical_ns = critical_ns + excluded.critical_ns""",
)
_UPSERT_RUN: Final = statements(
    "INSERT INTO run_days VALUES",
    5,
    64,
    """ON CONFLICT (key_no, day, status) DO UPDATE SET
    runs = runs + excluded.runs, duration_ns = duration_ns + excluded.duration_ns""",
)
_UPSERT_HISTOGRAM: Final = statements(
    "INSERT INTO histogram_days VALUES",
    5,
    64,
    "ON CONFLICT (key_no, series, day, bucket) DO UPDATE SET count = count + excluded.count",
)


class DayTotals:
    """What a set of runs adds to the day rows, summed in memory, then written by
    :meth:`flush` with one upsert row per touched row."""

    def __init__(self) -> None:
        self._stages: dict[tuple[int, int], list[Any]] = {}
        self._runs: dict[tuple[int, int, str], list[int]] = {}
        # A plain dict, not a Counter: its ``+= 1`` on a new key goes through a Python-level
        # ``__missing__``, once per attempt.
        self._histogram: dict[tuple[int, int, int, int], int] = {}

    def __bool__(self) -> bool:
        return bool(self._stages or self._runs)

    def attempt(  # noqa: PLR0917 (one value per stage_attempts column)
        self,
        key_no: int,
        start_ns: int,
        failed: int,
        attempt: int,
        duration_ns: int,
        queue_ns: int | None,
        cpu_s: float | None,
        peak_memory: int | None,
    ) -> None:
        """One ended attempt of a run started at ``start_ns``."""
        self._attempt(
            key_no, day_of(start_ns), failed, attempt, duration_ns, queue_ns, cpu_s, peak_memory
        )

    def _stage_totals(self, key_no: int, day: int) -> list[Any]:
        totals = self._stages.get((key_no, day))
        if totals is None:
            totals = self._stages[key_no, day] = new_totals()
        return totals

    def _attempt(  # noqa: PLR0917 (attempt's, with the day found)
        self,
        key_no: int,
        day: int,
        failed: int,
        attempt: int,
        duration_ns: int,
        queue_ns: int | None,
        cpu_s: float | None,
        peak_memory: int | None,
    ) -> None:
        stage_totals_add(
            self._stage_totals(key_no, day), failed, attempt, queue_ns, cpu_s, peak_memory
        )
        histogram = self._histogram
        where = (key_no, SERIES_DURATION, day, bucket(duration_ns))
        histogram[where] = histogram.get(where, 0) + 1
        if queue_ns is not None:
            where = (key_no, SERIES_QUEUE, day, bucket(queue_ns))
            histogram[where] = histogram.get(where, 0) + 1

    def add_run(  # noqa: PLR0917 (one value per run_aggregates column)
        self,
        pipeline_key: int,
        start_ns: int,
        status: str,
        duration_ns: int,
        attempts: Iterable[Sequence[Any]],
        steps: Iterable[Sequence[Any]],
    ) -> None:
        """One ended run started at ``start_ns``: its ``stage_attempts`` rows (``attempts``),
        its ``critical_steps`` rows (``steps``) and itself; ``attempt``, ``critical`` and
        ``run`` row by row, in the same order (the CPU time is a float sum), with the day
        found once."""
        day = day_of(start_ns)
        add = self._attempt
        for key_no, _, _, _, attempt, failed, took, queue_ns, cpu_s, peak in attempts:
            add(key_no, day, failed, attempt, took, queue_ns, cpu_s, peak)
        for key_no, _, _, _, run_ns in steps:
            self._stage_totals(key_no, day)[7] += run_ns
        self.run(pipeline_key, start_ns, status, duration_ns)

    def critical(self, key_no: int, start_ns: int, run_ns: int) -> None:
        """One critical-path step of a run started at ``start_ns``."""
        self._stage_totals(key_no, day_of(start_ns))[7] += run_ns

    def run(self, pipeline_key: int, start_ns: int, status: str, duration_ns: int) -> None:
        """One ended run of the pipeline whose key is ``pipeline_key``. A replay that fed
        stages (status ``replayed``) is counted under its status, apart, and is no run
        duration (``reporting._replays``)."""
        day = day_of(start_ns)
        totals = self._runs.setdefault((pipeline_key, day, status), [0, 0])
        totals[0] += 1
        totals[1] += duration_ns
        if status == _FED:
            return
        where = (pipeline_key, SERIES_RUN, day, bucket(duration_ns))
        self._histogram[where] = self._histogram.get(where, 0) + 1

    def flush(self, conn: sqlite3.Connection) -> None:
        """Add everything gathered to the day rows (inside the caller's transaction), then
        start over empty."""
        if self._stages:
            insert_rows(
                conn, _UPSERT_STAGE, [(*key, *totals) for key, totals in self._stages.items()]
            )
        if self._runs:
            insert_rows(conn, _UPSERT_RUN, [(*key, *totals) for key, totals in self._runs.items()])
        if self._histogram:
            insert_rows(
                conn, _UPSERT_HISTOGRAM, [(*key, count) for key, count in self._histogram.items()]
            )
        self._stages, self._runs, self._histogram = {}, {}, {}


def pipeline_key(conn: sqlite3.Connection, pipeline: str) -> int:
    """The ``stage_keys`` number of the pipeline itself (stage ``''``), created if needed."""
    conn.execute("INSERT OR IGNORE INTO stage_keys (pipeline, stage) VALUES (?, '')", (pipeline,))
    number: int = conn.execute(
        "SELECT key_no FROM stage_keys WHERE pipeline = ? AND stage = ''", (pipeline,)
    ).fetchone()[0]
    return number


def mark_stale(conn: sqlite3.Connection, pipeline: str, days: Iterable[int]) -> None:
    """List ``pipeline``'s ``days`` as needing a rebuild."""
    conn.executemany(
        "INSERT OR IGNORE INTO stale_days VALUES (?, ?)", [(pipeline, day) for day in days]
    )


def _rebuild_day(conn: sqlite3.Connection, pipeline: str, day: int) -> None:
    low, high = day * DAY_NS, (day + 1) * DAY_NS
    keys = [
        row[0]
        for row in conn.execute(
            "SELECT key_no FROM stage_keys WHERE pipeline = ? AND stage != ''", (pipeline,)
        )
    ]
    own = pipeline_key(conn, pipeline)
    for key_no in [*keys, own]:
        conn.execute("DELETE FROM stage_days WHERE key_no = ? AND day = ?", (key_no, day))
        conn.execute("DELETE FROM run_days WHERE key_no = ? AND day = ?", (key_no, day))
        for series in (SERIES_DURATION, SERIES_QUEUE, SERIES_RUN):
            conn.execute(
                "DELETE FROM histogram_days WHERE key_no = ? AND series = ? AND day = ?",
                (key_no, series, day),
            )
    totals = DayTotals()
    for key_no in keys:
        for row in conn.execute(
            "SELECT start_ns, failed, attempt, duration_ns, queue_ns, cpu_s, peak_memory "
            "FROM stage_attempts WHERE key_no = ? AND start_ns >= ? AND start_ns < ?",
            (key_no, low, high),
        ):
            totals.attempt(key_no, *row)
        for start_ns, run_ns in conn.execute(
            "SELECT start_ns, run_ns FROM critical_steps WHERE key_no = ? AND start_ns >= ? "
            "AND start_ns < ?",
            (key_no, low, high),
        ):
            totals.critical(key_no, start_ns, run_ns)
    for start_ns, status, duration_ns in conn.execute(
        "SELECT start_ns, status, duration_ns FROM run_aggregates INDEXED BY run_aggregates_start "
        "WHERE pipeline = ? AND start_ns >= ? AND start_ns < ? AND status != 'unknown'",
        (pipeline, low, high),
    ):
        totals.run(own, start_ns, status, duration_ns)
    totals.flush(conn)
    conn.execute("DELETE FROM stale_days WHERE pipeline = ? AND day = ?", (pipeline, day))


def refresh_stale_days(conn: sqlite3.Connection, batch: int = 50) -> int:
    """Rebuild every day listed in ``stale_days``, ``batch`` days per write transaction;
    returns how many were rebuilt. Cheap when none is listed (one indexed read)."""
    done = 0
    while True:
        if conn.execute("SELECT 1 FROM stale_days LIMIT 1").fetchone() is None:
            return done
        conn.execute("BEGIN IMMEDIATE")
        try:
            days = conn.execute("SELECT pipeline, day FROM stale_days LIMIT ?", (batch,)).fetchall()
            for pipeline, day in days:
                _rebuild_day(conn, pipeline, day)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done += len(days)
