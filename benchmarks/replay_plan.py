"""Build the replay plan of a 1,000-stage run from its spans; print wall and CPU times.

    .venv/bin/python benchmarks/replay_plan.py [--stages 1000] [--repeat 15]

The run is recorded for real: the monitor's manual API drives a binary-tree DAG (stage i
after stage (i-1)//2) through the OTel SDK with an in-memory exporter, every stage with
captured inputs and outputs. Timed: ``read_recorded_run`` over the spans plus ``build_plan``
with ``--from`` the middle stage (the definition is parsed and checked against its hash,
the request and every fed stage's outputs are checked, nothing is executed).
Target: under 100 ms for 1,000 stages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.replay import build_plan, read_recorded_run
from taskdaemon.pipeline.tracking import span_record_from_sdk


def record(stages: int) -> tuple[Pipeline, list[object]]:
    """A recorded run of a ``stages``-stage binary tree, as span records."""
    defs = [Stage("stage_0", "plan", (Manual(),))]
    defs += [
        Stage(f"stage_{i}", "phase", (OnCompletion(f"stage_{(i - 1) // 2}"),))
        for i in range(1, stages)
    ]
    pipeline = Pipeline("bench", tuple(defs))
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monitor = PipelineMonitor(
        tracer_provider=provider,
        meter_provider=MeterProvider(),
        capture=PayloadCapture(max_bytes=65536),
        resource_sampling=False,
    )
    run_id = monitor.start_run(pipeline, {"goal": "bench", "n": stages})
    for stage in defs:
        monitor.stage_started(run_id, stage.name, inputs={"goal": "bench", "from": stage.name})
        monitor.stage_completed(run_id, stage.name, {"result": stage.name, "items": [1, 2, 3]})
    monitor.finish_run(run_id)
    monitor.close()
    spans = [span_record_from_sdk(s) for s in exporter.get_finished_spans()]
    provider.shutdown()
    return pipeline, spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    _, spans = record(args.stages)
    middle = f"stage_{args.stages // 2}"
    times = []
    cpu = []
    plan = None
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        plan = build_plan(read_recorded_run(spans), from_stage=middle)
        cpu.append(time.process_time() - start_cpu)
        times.append(time.perf_counter() - start)
    assert plan is not None
    assert not plan.missing, plan.missing
    print(
        f"replay plan of {args.stages} stages ({len(spans)} spans, {len(plan.fed)} fed, "
        f"{len(plan.rerun)} to run), over {args.repeat}:\n"
        f"  wall  best {min(times) * 1000:6.1f} ms  "
        f"median {statistics.median(times) * 1000:6.1f} ms\n"
        f"  CPU   best {min(cpu) * 1000:6.1f} ms  median {statistics.median(cpu) * 1000:6.1f} ms"
        f"\n  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
