"""``taskdaemon report`` over 100,000 stored runs (2 million spans): target under 2 s.

Run: ``.venv/bin/python benchmarks/report.py`` (``--runs 2000`` for a quick pass). The store is
filled through the real ``SqliteSpanProcessor`` (so its report aggregates are written by the
writer, as runs end): runs of one root and 19 stage spans (a chain of 19 stages, every tenth
run with one retried attempt), one run a minute over the window. Filling takes minutes; the file
is kept (``--db``, default in the temporary folder) and reused when it already holds the runs;
a file of an older schema is migrated on first use, and that first report, which rebuilds the
per-day totals, is timed apart.
The report is then computed and rendered as a table ``--rounds`` times, each with a fresh store
connection; the best and median times are printed, beside the time to rebuild 1,000 runs from
their spans (what a report without aggregates pays per run). Wall time and this process's CPU
time are both printed: on a loaded machine the first includes time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.reporting import build_report, render_report
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking.aggregates import StoreReportData

T0 = 1_700_000_000_000_000_000
MINUTE = 60 * 1_000_000_000
MS = 1_000_000
STAGES = [f"stage{i:02d}" for i in range(19)]
EDGES = [f"{a}>{b}>on completion" for a, b in itertools.pairwise(STAGES)]


def fill(db: Path, runs: int) -> None:
    """Write ``runs`` runs through the span processor, in chunks (memory stays flat)."""
    processor = SqliteSpanProcessor(db, max_batch=8192)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(t.SCOPE_NAME)
    rng = random.Random(1)
    started = time.perf_counter()
    for number in range(runs):
        t0 = T0 + number * MINUTE
        root = tracer.start_span(
            "RUN bench",
            kind=SpanKind.SERVER,
            start_time=t0,
            attributes={
                t.CICD_PIPELINE_NAME: "bench",
                t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
                t.PIPELINE_STAGES: STAGES,
                t.PIPELINE_EDGES: EDGES,
            },
        )
        ctx = trace.set_span_in_context(root)
        now = t0 + MS
        for index, name in enumerate(STAGES):
            attempts = 2 if index == 5 and number % 10 == 0 else 1
            for attempt in range(1, attempts + 1):
                took = int(rng.lognormvariate(3, 0.5) * MS)
                span = tracer.start_span(
                    name,
                    context=ctx,
                    start_time=now,
                    attributes={
                        t.CICD_PIPELINE_NAME: "bench",
                        t.CICD_TASK_NAME: name,
                        t.STAGE_ATTEMPT: attempt,
                        t.STAGE_INSTANCE: 0,
                        t.STAGE_QUEUE_TIME: rng.random() / 100,
                        t.STAGE_CPU_TIME: took / 2e9,
                        t.STAGE_PEAK_MEMORY: rng.randrange(10**6, 10**8),
                    },
                )
                failed = attempt < attempts
                span.set_attribute(t.CICD_TASK_RUN_RESULT, "failure" if failed else "success")
                span.end(now + took)
                now += took + MS
        root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_SUCCESS)
        root.end(now)
        if number % 2000 == 1999:
            processor.force_flush()
            rate = (number + 1) / (time.perf_counter() - started)
            print(f"  {number + 1} runs written ({rate:.0f} runs/s)", flush=True)
    provider.shutdown()


def stored_runs(db: Path) -> int:
    """How many ended runs the file holds (0 when it does not exist)."""
    if not db.exists():
        return 0
    with SpanStore(db) as store:
        return len(store.search(limit=10**7))


def main() -> None:
    """Fill (or reuse) the store, then time the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()
    # In a folder of its own: a store is not made in one anyone may write (the temporary one).
    bench = Path(tempfile.gettempdir()) / "taskdaemon-benchmarks"
    db = args.db or bench / f"taskdaemon-report-bench-v7-{args.runs}.db"
    if stored_runs(db) != args.runs:
        db.unlink(missing_ok=True)
        print(f"filling {db} with {args.runs} runs ({args.runs * 20} spans)...", flush=True)
        fill(db, args.runs)
    since = T0 / 1e9 - 1
    until = since + args.runs * 60 + 2
    started, started_cpu = time.perf_counter(), time.process_time()
    with SpanStore(db, retention=None) as store:
        data = StoreReportData(store)
        data.close()
    if data.rebuilt_days or data.aggregated:
        print(
            f"first open: {data.aggregated} runs aggregated, {data.rebuilt_days} days rebuilt in "
            f"{time.perf_counter() - started:.1f} s ({time.process_time() - started_cpu:.1f} s "
            "CPU), once"
        )
    times, cpu = [], []
    for _ in range(args.rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        with SpanStore(db, retention=None) as store:
            data = StoreReportData(store)
            report = build_report(data, since, until, source=str(db))
            text = render_report(report, "table")
            data.close()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    (bench,) = report.pipelines
    print(text)
    print(f"{bench.runs} runs, {sum(s.executions for s in bench.stages)} stage executions")
    print(
        f"report (table), best of {args.rounds}: {min(times):.3f} s, "
        f"median {statistics.median(times):.3f} s; CPU time of this process: best "
        f"{min(cpu):.3f} s, median {statistics.median(cpu):.3f} s"
    )
    with SpanStore(db) as store:
        ids = [s.run_id for s in store.search(limit=1000)]
        started = time.perf_counter()
        for run_id in ids:
            store.get_run(run_id)
        rebuild = time.perf_counter() - started
    print(
        f"rebuilding {len(ids)} runs from their spans: {rebuild:.3f} s "
        f"({rebuild / len(ids) * 1000:.2f} ms per run)"
    )


if __name__ == "__main__":
    main()
