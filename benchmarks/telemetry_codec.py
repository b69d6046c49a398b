"""What the structured trigger and edge specs (span schema 3) cost against the text forms of
schema 2, side by side in one process.

* ``encode``: the run span's edge list and every stage's trigger list of an N-stage pipeline, as
  the monitor computes them once per pipeline: JSON specs (``telemetry_codec``) against the old
  ``describe()`` / ``source>target>label`` strings.
* ``rebuild``: ``reconstruct_run`` of one N-stage run whose spans carry the schema 3 specs
  against the same spans carrying the schema 2 text (rebuilding decodes every spec, or parses
  every description, of the first span of each stage, and the run span's edges; both give the
  same triggers, checked before timing).

Every stage has an ``on_completion`` trigger and an ``on_event`` trigger with a filter (every
third one also a condition), so the regular-expression parser sees each of its shapes. Times are
process CPU time (``time.process_time``), best of ``--repeat`` rounds, the variants alternating.

Run: ``.venv/bin/python benchmarks/telemetry_codec.py [--stages 1000] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    Pipeline,
    Stage,
    Trigger,
)
from taskdaemon.pipeline.telemetry_codec import encode_edge, encode_trigger
from taskdaemon.pipeline.tracking import reconstruct_run
from taskdaemon.pipeline.tracking.spans import SpanRecord

T0 = 1_700_000_000_000_000_000
TRACE = "ab" * 16


def make_pipeline(stages: int) -> Pipeline:
    """A chain: each stage waits for the previous one and for its event."""
    built = [Stage("s0", "python", (Manual(),), emits=("e1",))]
    for i in range(1, stages):
        triggers: list[Trigger] = [
            OnCompletion(f"s{i - 1}"),
            OnEvent(f"e{i}", f'event.tag == "t{i}" && event.n > {i}'),
        ]
        if i % 3 == 0:
            triggers.append(OnCondition(f'stages.s{i - 1}.status == "success"'))
        built.append(Stage(f"s{i}", "python", tuple(triggers), emits=(f"e{i + 1}",)))
    return Pipeline("bench", tuple(built))


def encode_new(pipeline: Pipeline) -> tuple[list[str], list[list[str]]]:
    """The schema 3 lists."""
    edges = [encode_edge(edge) for edge in pipeline.edges]
    return edges, [[encode_trigger(x) for x in stage.triggers] for stage in pipeline.stages]


def encode_old(pipeline: Pipeline) -> tuple[list[str], list[list[str]]]:
    """The schema 2 lists."""
    edges = [f"{e.source}>{e.target}>{e.label}" for e in pipeline.edges]
    return edges, [[x.describe() for x in stage.triggers] for stage in pipeline.stages]


def make_spans(pipeline: Pipeline, *, schema: int) -> list[SpanRecord]:
    """One ended run of ``pipeline`` as a span source returns it, in ``schema`` 2 or 3."""
    root_attrs: dict[str, Any] = {
        t.CICD_PIPELINE_NAME: "bench",
        t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
        t.CICD_PIPELINE_RESULT: t.RESULT_SUCCESS,
        t.SCHEMA_VERSION: schema,
        t.PIPELINE_STAGES: tuple(stage.name for stage in pipeline.stages),
    }
    edges, _ = encode_new(pipeline) if schema == 3 else encode_old(pipeline)
    root_attrs[t.PIPELINE_EDGE_SPECS if schema == 3 else t.PIPELINE_EDGES] = tuple(edges)
    spans = [
        SpanRecord(
            TRACE, "0" * 16, None, "RUN bench", "SERVER", T0, T0 + 10**9, "UNSET", "", root_attrs
        )
    ]
    for i, stage in enumerate(pipeline.stages):
        attrs: dict[str, Any] = {
            t.CICD_TASK_NAME: stage.name,
            t.CICD_TASK_RUN_RESULT: t.RESULT_SUCCESS,
            t.STAGE_LOOP: "python",
            t.STAGE_ATTEMPT: 1,
            t.STAGE_INSTANCE: 0,
            t.STAGE_TRIGGERS: tuple(x.describe() for x in stage.triggers),
        }
        if schema == 3:
            attrs[t.STAGE_TRIGGER_SPECS] = tuple(encode_trigger(x) for x in stage.triggers)
        span_id = format(i + 1, "016x")
        spans.append(
            SpanRecord(
                TRACE,
                span_id,
                "0" * 16,
                stage.name,
                "INTERNAL",
                T0 + i,
                T0 + i + 1,
                "OK",
                "",
                attrs,
            )
        )
    return spans


def best(function: Callable[[], object], repeat: int) -> float:
    """The least CPU seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    """Print the two comparisons."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    pipeline = make_pipeline(args.stages)
    triggers = sum(len(stage.triggers) for stage in pipeline.stages)
    spans2, spans3 = make_spans(pipeline, schema=2), make_spans(pipeline, schema=3)
    run2, run3 = reconstruct_run(spans2), reconstruct_run(spans3)
    assert [s.trigger_specs for s in run2.stages] == [s.trigger_specs for s in run3.stages]
    rows = {
        "encode": (lambda: encode_old(pipeline), lambda: encode_new(pipeline)),
        "rebuild": (lambda: reconstruct_run(spans2), lambda: reconstruct_run(spans3)),
    }
    print(
        f"{args.stages} stages, {len(pipeline.edges)} edges, {triggers} triggers;"
        f" CPU ms, best of {args.repeat}"
    )
    print(f"  {'':8} {'schema 2':>10} {'schema 3':>10} {'ratio':>7}")
    for name, (old, new) in rows.items():
        old_s, new_s = best(old, args.repeat), best(new, args.repeat)
        print(f"  {name:8} {old_s * 1e3:10.2f} {new_s * 1e3:10.2f} {new_s / old_s:6.2f}x")


if __name__ == "__main__":
    main()
