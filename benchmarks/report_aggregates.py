"""The span store's report aggregates alone: the writer thread's time in
``RunAggregator.observe`` per stage span.

``.venv/bin/python benchmarks/report_aggregates.py [--runs 1000] [--rounds 5] [--baseline SRC]``

Prepares ``--runs`` ended runs of each shape as the monitor makes them (SDK spans with the
monitor's attributes: task run id, attempt, instance, queue wait, CPU time, peak memory, status,
upstream list, a ``triggered_by`` link to each upstream execution, ``stage.input`` and
``stage.output`` events; the run span with its edge specs): ``chain`` (20 stages, each after the one
before), ``fan`` (the 22 stages of ``concurrent_runs.py``: an entry, four branches of five, a
join) and ``flat`` (``tracking_store.py``'s 20 stages with no upstream and no edges). Then hands
them to one ``RunAggregator`` the way the writer does, ten runs a batch (a run's start, its stage
ends and its end in one ``seen`` list), each batch in its own write transaction on a fresh store,
and times ``observe`` alone (``time.thread_time``, summed over the batches; the commit is not
in it). Prints microseconds per stage span: median and range over rounds.

Each round runs in a fresh child process per shape and per tree; with ``--baseline SRC`` (a
``src`` directory of another checkout, e.g. ``git archive main src | tar -x -C /tmp/base``)
every round also runs with ``SRC`` first on ``PYTHONPATH``, interleaved, so the two are compared
in the same sitting.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

T0 = 1_700_000_000_000_000_000
SHAPES = ("chain", "fan", "flat")
RUNS_A_BATCH = 10


def shape_of(name: str) -> list[tuple[str, list[str]]]:
    """(stage, upstream) of each stage of shape ``name``, in the order they run."""
    if name == "chain":
        return [(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(20)]
    if name == "flat":
        return [(f"stage{i}", []) for i in range(20)]
    stages: list[tuple[str, list[str]]] = [("entry", [])]
    ends = []
    for b in range(4):
        previous = "entry"
        for s in range(5):
            stages.append((f"b{b}s{s}", [previous]))
            previous = f"b{b}s{s}"
        ends.append(previous)
    stages.append(("join", ends))
    return stages


def make_runs(shape: str, runs: int) -> list[list[Any]]:
    """``runs`` ended runs of ``shape``; each list is [run span, stage spans...]."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind

    from taskdaemon.pipeline import telemetry as t

    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(t.SCOPE_NAME)
    stages = shape_of(shape)
    edges = [
        json.dumps([up, name, ["on_completion", up, True]]) for name, ups in stages for up in ups
    ]
    out = []
    for r in range(runs):
        start = T0 + r * 10**9 + 123_457
        root = tracer.start_span(
            t.run_span_name("bench"),
            kind=SpanKind.SERVER,
            start_time=start,
            attributes={
                t.CICD_PIPELINE_NAME: "bench",
                t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
                t.PIPELINE_STAGES: [name for name, _ in stages],
                **({t.PIPELINE_EDGE_SPECS: edges} if edges else {}),
            },
        )
        ctx = trace.set_span_in_context(root)
        ends: dict[str, int] = {}
        contexts: dict[str, Any] = {}
        for i, (name, ups) in enumerate(stages):
            begin = max((ends[u] for u in ups), default=start) + 50_111 + 7 * i
            attributes: dict[str, Any] = {
                t.CICD_PIPELINE_NAME: "bench",
                t.CICD_TASK_NAME: name,
                t.CICD_TASK_RUN_ID: f"{r}-{name}-0-1",
                t.STAGE_LOOP: "python",
                t.STAGE_ATTEMPT: 1,
                t.STAGE_INSTANCE: 0,
                t.STAGE_QUEUE_TIME: 0.000_123 + i * 1e-6,
                t.STAGE_CPU_TIME: 0.000_456,
                t.STAGE_PEAK_MEMORY: 50_000_000 + i,
            }
            if shape != "flat":
                attributes[t.STAGE_UPSTREAM] = ups
            links = [Link(contexts[u], {t.LINK_RELATION: t.LINK_TRIGGERED_BY}) for u in ups]
            span = tracer.start_span(
                name, context=ctx, start_time=begin, attributes=attributes, links=links
            )
            contexts[name] = span.get_span_context()
            for event, at in ((t.EVENT_STAGE_INPUT, begin), (t.EVENT_STAGE_OUTPUT, begin + 999)):
                span.add_event(event, {t.PAYLOAD_JSON: "{}", t.PAYLOAD_SIZE: 2}, timestamp=at)
            span.set_attribute(t.STAGE_STATUS, "success")
            span.set_attribute(t.CICD_TASK_RUN_RESULT, t.RESULT_SUCCESS)
            ends[name] = begin + 1_000_003 + 1_001 * (r % 97)
            span.end(ends[name])
        root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_SUCCESS)
        root.end(max(ends.values()) + 2_000)
        finished = list(exporter.get_finished_spans())
        exporter.clear()
        out.append([finished[-1], *finished[:-1]])
    return out


def child(shape: str, runs: int) -> dict[str, float]:
    """One round: seconds in ``observe`` per stage span, on a fresh store."""
    from taskdaemon.pipeline import telemetry as t
    from taskdaemon.pipeline.tracking import RetentionPolicy, SqliteSpanProcessor
    from taskdaemon.pipeline.tracking._bodies import parts
    from taskdaemon.pipeline.tracking._kept_runs import attempt_from_sdk
    from taskdaemon.pipeline.tracking._schema import connect
    from taskdaemon.pipeline.tracking.aggregates import (
        RUN_ENDED,
        RUN_STARTED,
        STAGE_ENDED,
        RunAggregator,
    )
    from taskdaemon.pipeline.tracking.reconstruct import ended_attempt_status

    # The trace id, then what ``attempt_from_sdk`` takes after the attributes: an older tree's
    # writer hands over fewer fields (no events and links), and so does this benchmark there.
    width = attempt_from_sdk.__code__.co_argcount

    def _stage(span: Any) -> tuple[Any, Any]:
        """A stage span's attributes and what the writer works out of it (``observe``)."""
        attrs, events, links = parts(span)
        status = ended_attempt_status(attrs, span.status.status_code._name_)
        name, context = attrs[t.CICD_TASK_NAME], span.context
        span_hex = f"{context.span_id:016x}"
        stage = (context.trace_id, name, span_hex, status, span.start_time, span.end_time)
        return attrs, (*stage, events, links)[:width]

    data = make_runs(shape, runs)
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "aggregates.db"
        SqliteSpanProcessor(path, retention=RetentionPolicy()).shutdown()  # the schema
        conn = connect(path)
        aggregator = RunAggregator()
        spent = 0.0
        stage_spans = 0
        for first in range(0, runs, RUNS_A_BATCH):
            batch = data[first : first + RUNS_A_BATCH]
            seen = []
            for root, *stages in batch:
                seen.append((RUN_STARTED, root, parts(root)[0], None))
                seen.extend((STAGE_ENDED, span, *_stage(span)) for span in stages)
                seen.append((RUN_ENDED, root, parts(root)[0], None))
                stage_spans += len(stages)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO traces (trace_id, first_ns) VALUES (?, ?)",
                [(format(root.context.trace_id, "032x"), root.start_time) for root, *_ in batch],
            )
            trace_nos = {
                root.context.trace_id: conn.execute(
                    "SELECT trace_no FROM traces WHERE trace_id = ?",
                    (format(root.context.trace_id, "032x"),),
                ).fetchone()[0]
                for root, *_ in batch
            }
            begin = time.thread_time()
            aggregator.observe(conn, seen, trace_nos)
            spent += time.thread_time() - begin
            conn.execute("COMMIT")
        rows = conn.execute("SELECT count(*) FROM stage_attempts").fetchone()[0]
        conn.close()
    assert rows == stage_spans, (rows, stage_spans)
    return {"per_span": spent / stage_spans}


def main() -> None:
    """Interleave the rounds of every shape (and tree) in child processes; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--baseline", metavar="SRC", help="also run with SRC first on the path")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.runs)))
        return
    trees: dict[str, str | None] = {"this": None}
    if args.baseline:
        trees["baseline"] = str(Path(args.baseline).resolve())
    shapes = [s for s in args.shapes.split(",") if s]
    samples: dict[tuple[str, str], list[float]] = {(s, tr): [] for s in shapes for tr in trees}
    for _ in range(args.rounds):
        for shape in shapes:
            for tree, src in trees.items():
                env = dict(os.environ)
                if src is not None:
                    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
                out = subprocess.run(
                    [sys.executable, __file__, "--child", shape, "--runs", str(args.runs)],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                samples[shape, tree].append(json.loads(out)["per_span"])
    load = os.getloadavg()[0]
    print(
        f"RunAggregator.observe, {args.runs} runs a round, {args.rounds} interleaved rounds "
        f"(load average {load:.1f} on {os.cpu_count()} CPUs): us a stage span, median (range)"
    )
    for shape in shapes:
        line = f"  {shape:<6}"
        for tree in trees:
            values = samples[shape, tree]
            line += (
                f"  {tree} {statistics.median(values) * 1e6:6.2f}"
                f" ({min(values) * 1e6:.2f}-{max(values) * 1e6:.2f})"
            )
        if "baseline" in trees:
            ratio = statistics.median(samples[shape, "this"]) / statistics.median(
                samples[shape, "baseline"]
            )
            line += f"  this/baseline {ratio:.2f}"
        print(line)


if __name__ == "__main__":
    main()
