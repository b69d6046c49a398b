"""Render a 1,000-stage DAG with a run overlay in each format; print the best wall time.

    .venv/bin/python benchmarks/visualization_render.py [--stages 1000] [--repeat 7] [--svg]

Target: reconstruct + render under 100 ms; this measures the render part (snapshot
building included), the reconstruction is measured by the tracking benchmark. ``--svg`` also
times Graphviz drawing SVG (``graphviz.dot_to_svg``, bounded by ``DOT_TIMEOUT``) of that DAG
and of a fan-out as wide, with ``dot``'s own CPU time: on a shared machine the wall time is
what the bound sees, the CPU time what the drawing costs.
"""

from __future__ import annotations

import argparse
import resource
import time

from taskdaemon.pipeline.graphviz import GraphvizError, dot_to_svg
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.records import AttemptRecord, EdgeRecord, RunRecord, StageRecord
from taskdaemon.pipeline.visualization import (
    VisualizationFormat,
    dag_snapshot,
    render_json,
    visualize,
)

STATUSES = ("success", "success", "success", "failure", "skipped", "running", "timeout")


def build(stages: int) -> tuple[Pipeline, RunRecord]:
    """A binary-tree-shaped DAG (stage i waits for (i-1)//2 and, every 7th, a condition) and
    a run where each stage had one to three attempts."""
    defs = [Stage("stage_0", "plan", (Manual(),))]
    for i in range(1, stages):
        triggers: tuple[OnCompletion | OnCondition, ...] = (OnCompletion(f"stage_{(i - 1) // 2}"),)
        if i % 7 == 0:
            triggers += (OnCondition(f"stages.stage_{i - 1}.outputs.ok == true"),)
        defs.append(Stage(f"stage_{i}", "phase", triggers))
    pipeline = Pipeline("bench", tuple(defs))
    t0 = 1_700_000_000.0
    records = []
    for i, stage in enumerate(defs):
        status = STATUSES[i % len(STATUSES)]
        attempts = (
            tuple(
                AttemptRecord(f"{stage.name}.0.{n}", 0, n, status, t0 + i + n, t0 + i + n + 0.5)
                for n in range(1, 1 + i % 3 + 1)
            )
            if status != "skipped"
            else ()
        )
        records.append(
            StageRecord(
                stage.name,
                stage.loop,
                status,
                attempts,
                tuple(t.describe() for t in stage.triggers),
            )
        )
    edges = tuple(EdgeRecord(e.source, e.target, e.label) for e in pipeline.edges)
    run = RunRecord("ab" * 16, "bench", "failure", t0, t0 + stages, tuple(records), edges)
    return pipeline, run


def fan_out(stages: int) -> Pipeline:
    """One stage and ``stages - 1`` started by its completion, the widest DAG of that size."""
    fan = (Stage(f"stage_{i}", "phase", (OnCompletion("stage_0"),)) for i in range(1, stages))
    return Pipeline("fan", (Stage("stage_0", "plan", (Manual(),)), *fan))


def svg_line(name: str, dot: str, repeat: int) -> str:
    """The best wall time, and ``dot``'s CPU time in that round, of drawing ``dot`` as SVG;
    a drawing refused (past ``DOT_TIMEOUT``) says so, with its own times."""
    rounds = []
    for _ in range(repeat):
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            size = f"{len(dot_to_svg(dot)) / 1024:7.0f} KiB"
        except GraphvizError as error:
            size = f"refused: {error}"
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rounds.append((wall, after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, size))
    wall, cpu_s, size = min(rounds)
    return f"  svg {name:<27} {wall * 1000:7.1f} ms  (dot CPU {cpu_s * 1000:.0f} ms)  {size}"


def best(fn: object, repeat: int) -> float:
    """Best wall time of ``fn()`` in milliseconds."""
    assert callable(fn)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def main() -> None:
    """Print one line per measurement."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--svg", action="store_true", help="also time Graphviz's SVG")
    args = parser.parse_args()
    pipeline, run = build(args.stages)
    print(f"{args.stages} stages, {len(pipeline.edges)} edges, best of {args.repeat}")
    snap_ms = best(lambda: dag_snapshot(pipeline, run), args.repeat)
    print(f"  snapshot (definition + run)      {snap_ms:7.1f} ms")
    snap_only_ms = best(lambda: dag_snapshot(run=run), args.repeat)
    print(f"  snapshot (run only, from spans)  {snap_only_ms:7.1f} ms")
    for fmt in VisualizationFormat:
        ms = best(lambda fmt=fmt: visualize(pipeline, fmt, run), args.repeat)
        size = len(visualize(pipeline, fmt, run))
        print(f"  render {fmt.value:<8} (snapshot incl.) {ms:7.1f} ms  {size / 1024:7.0f} KiB")
    ms = best(lambda: render_json(pipeline, run, indent=None), args.repeat)
    size = len(render_json(pipeline, run, indent=None))
    print(f"  render json compact (indent=None) {ms:6.1f} ms  {size / 1024:7.0f} KiB")
    if args.svg:
        dot = visualize(pipeline, VisualizationFormat.DOT, run)
        print(svg_line("tree + run", dot, args.repeat))
        print(
            svg_line(
                "fan-out", visualize(fan_out(args.stages), VisualizationFormat.DOT), args.repeat
            )
        )


if __name__ == "__main__":
    main()
