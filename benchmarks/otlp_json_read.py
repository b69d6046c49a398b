"""Reading one run, and listing the runs, from a big OTLP-JSON lines file.

``.venv/bin/python benchmarks/otlp_json_read.py [--runs 2000] [--spans 100] [--pairs 2]
[--baseline SRC]``

Writes a file of ``--runs`` lines, one run of ``--spans`` spans a line (a root and its stage
spans, each with five attributes and two events, hex ids, as the collector's file exporter
writes them), into a temporary folder. Each measurement is a child process that opens it as
``--source otlp-json://FILE`` does (``OtlpJsonSource``) and times, in CPU seconds of the
process, ``get_trace`` of the run in the file's middle (what ``runs show`` reads) and then
``search`` (what ``runs list`` reads), with the peak RSS after each. With ``--baseline SRC``
(``git archive main src | tar -x -C /tmp/base``, then ``--baseline /tmp/base/src``) children
alternate between this checkout and SRC, ``--pairs`` times each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
T0 = 1_700_000_000_000_000_000


def write_file(path: Path, runs: int, spans: int) -> str:
    """The lines file; returns the trace id of the run in its middle."""
    from taskdaemon.pipeline.tracking.otlp_json import encode_traces
    from taskdaemon.pipeline.tracking.spans import SpanEventRecord, SpanRecord

    rng = random.Random(1)
    middle = ""
    resource_attributes = {"service.name": "taskdaemon"}
    with path.open("w") as out:
        for number in range(runs):
            trace_id = f"{rng.getrandbits(128):032x}"
            root_id = f"{rng.getrandbits(64):016x}"
            names = tuple(f"stage{i}" for i in range(spans - 1))
            records = [
                SpanRecord(
                    trace_id=trace_id, span_id=root_id, parent_span_id=None, name="RUN bench",
                    kind="SERVER", start_ns=T0, end_ns=T0 + 10**9, status_code="OK",
                    status_message="", events=(), links=(), resource=resource_attributes,
                    attributes={"cicd.pipeline.name": "bench", "pipeline.stages": names},
                )
            ]  # fmt: skip
            for index, name in enumerate(names):
                start = T0 + index * 1000
                records.append(
                    SpanRecord(
                        trace_id=trace_id, span_id=f"{rng.getrandbits(64):016x}",
                        parent_span_id=root_id, name=name, kind="INTERNAL", start_ns=start,
                        end_ns=start + 900, status_code="OK", status_message="", links=(),
                        resource=resource_attributes,
                        attributes={
                            "cicd.pipeline.name": "bench", "cicd.pipeline.task.name": name,
                            "pipeline.stage.attempt": 1, "pipeline.stage.cpu_time": 0.001,
                            "pipeline.stage.queue_time": 0.0,
                        },
                        events=(
                            SpanEventRecord("stage.started", start, {}),
                            SpanEventRecord("stage.finished", start + 900, {"outputs": 1}),
                        ),
                    )
                )  # fmt: skip
            out.write(json.dumps(encode_traces(records)) + "\n")
            if number == runs // 2:
                middle = trace_id
    return middle


def child(path: str, trace_id: str) -> dict[str, float]:
    """In the child: CPU seconds of one ``get_trace`` and one ``search``, and the peak RSS."""
    from taskdaemon.pipeline.tracking.sources import OtlpJsonSource

    source = OtlpJsonSource(path)
    started = time.process_time()
    spans = len(source.get_trace(trace_id))
    got = time.process_time() - started
    got_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.process_time()
    runs = len(source.search(limit=1_000_000))
    searched = time.process_time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "get_trace": got, "get_peak": got_peak, "search": searched, "spans": spans, "runs": runs,
        "peak": peak,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "TRACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    sources = {"this": str(SRC)}
    if args.baseline:
        if not (Path(args.baseline) / "taskdaemon").is_dir():
            parser.error(f"--baseline {args.baseline}: no taskdaemon package there")
        sources["base"] = str(Path(args.baseline).resolve())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spans.json"
        trace_id = write_file(path, args.runs, args.spans)
        size = path.stat().st_size / 1e6
        load = os.getloadavg()[0]
        print(
            f"{args.runs} runs of {args.spans} spans, {size:.0f} MB (load average {load:.1f}"
            f" on {os.cpu_count()} CPUs); CPU s, peak RSS MiB"
        )
        for pair in range(args.pairs):
            order = list(sources.items())
            if pair % 2:  # ABBA: neither tree always runs first in a pair
                order.reverse()
            for name, source in order:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), trace_id],
                    env=dict(os.environ, PYTHONPATH=source),
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                got = json.loads(out.splitlines()[-1])
                print(f"  {name:<5} get_trace {got['get_trace']:6.2f} ({got['spans']:.0f} "
                      f"spans, peak {got['get_peak']:4.0f})  search {got['search']:6.2f} "
                      f"({got['runs']:.0f} runs, peak {got['peak']:4.0f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
