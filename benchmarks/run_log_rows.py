"""CPU cost of the run-log records of a stage, through ``logging`` and as direct rows.

``.venv/bin/python benchmarks/run_log_rows.py [--stages 2000] [--rounds 7]``

Sets up logging as ``taskdaemon run`` does (console handler that drops lifecycle records, the
run-log slot on the root logger, the span store's log writer behind it: the real
``cli/deferred`` and ``cli/run_logging`` pieces on a temporary store) and feeds the real
``run_log.RunLog`` hook a ``StageStarted`` and a ``StageFinished`` per stage, with the stage's
span context, as the monitor's worker does. Two variants, alternating within each round:

* ``direct``: as configured, the writer is the only taker of lifecycle records, so their rows
  go to it directly (``log_rows``);
* ``logging``: one more root handler that wants every record (level NOTSET, drops it in
  ``emit``) forces the ``logging`` path: ``makeRecord``, ``ContextFilter`` on each handler,
  the store handler taking the record apart into the same row.

Reported: CPU time of the feeding thread per stage (``time.thread_time``), median and best over
rounds, and the ratio; and the log writer thread's CPU per stage over the same rows (its
redaction, JSON and SQLite work, the same rows in both variants: from the thread's CPU clock,
between the flushes around each feed), to compare trees with ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import SpanContext, TraceFlags

from taskdaemon.pipeline.cli.pending_logs import PendingLogHandler
from taskdaemon.pipeline.cli.run_logging import install_run_logging
from taskdaemon.pipeline.events import StageFinished, StageStarted
from taskdaemon.pipeline.logs import configure_logging
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.state import StageStatus


class _WantsAll(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        return None


def _events(run_id: str, stages: int) -> list[tuple[object, SpanContext]]:
    out: list[tuple[object, SpanContext]] = []
    now = time.time()
    for i in range(stages):
        span = SpanContext(int(run_id, 16), i + 1, False, TraceFlags(TraceFlags.SAMPLED))
        common = {"run_id": run_id, "pipeline": "bench", "stage": f"s{i}", "instance": 0}
        trid = f"s{i}.0.1"
        out.append(
            (
                StageStarted(
                    **common,
                    attempt=1,
                    task_run_id=trid,
                    loop="python",
                    at=now,
                    queued_at=now,
                    considered_at=now,
                    inputs={},
                ),
                span,
            )
        )
        out.append(
            (
                StageFinished(
                    **common, attempt=1, task_run_id=trid, status=StageStatus.SUCCESS, at=now
                ),
                span,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        settings = load_settings(span_source_url=f"sqlite:///{Path(tmp) / 'spans.db'}")
        configure_logging(settings, stream=open("/dev/null", "w"))  # noqa: SIM115
        root = logging.getLogger()
        slot = PendingLogHandler(keep=lambda item: False, settle=lambda: None)  # all handed over
        root.addHandler(slot)
        stack.callback(root.removeHandler, slot)
        monitor = PipelineMonitor(resource_sampling=False)
        # No metrics read: the run log's dropped-records gauge is registered on a no-op meter.
        telemetry = SimpleNamespace(
            logger_provider=None, span_processors=(), meter_provider=NoOpMeterProvider()
        )
        writer = install_run_logging(settings, monitor, telemetry, stack, slot=slot)  # type: ignore[arg-type]
        assert writer is not None
        hook = monitor._recorder.hooks[-1]
        events = _events("0123456789abcdef0123456789abcdef", args.stages)
        extra = _WantsAll()
        figures: dict[str, list[float]] = {"direct": [], "logging": []}
        written: dict[str, list[float]] = {"direct": [], "logging": []}
        clock = time.pthread_getcpuclockid(writer._thread.ident or 0)
        for round_ in range(args.rounds + 1):  # the first round warms up
            order = ["direct", "logging"] if round_ % 2 else ["logging", "direct"]
            for variant in order:
                if variant == "logging":
                    root.addHandler(extra)
                writer.flush()
                writing = time.clock_gettime(clock)
                start = time.thread_time()
                for event, span in events:
                    hook(event, span)
                spent = time.thread_time() - start
                root.removeHandler(extra)
                writer.flush()
                if round_:
                    figures[variant].append(spent / args.stages * 1e6)
                    writing = time.clock_gettime(clock) - writing
                    written[variant].append(writing / args.stages * 1e6)
        monitor.close()
    print(
        f"run-log records of {args.stages} stages (2 a stage), {args.rounds} rounds,"
        " CPU of the feeding thread per stage"
    )
    for variant, values in figures.items():
        print(
            f"  {variant:8} median {statistics.median(values):7.1f} µs   best {min(values):7.1f} µs"
        )
    ratio = statistics.median(figures["logging"]) / statistics.median(figures["direct"])
    print(f"  logging / direct: {ratio:.2f}x  (rows written: {writer.written})")
    print("  the log writer's thread, CPU per stage over the same rows:")
    for variant, values in written.items():
        print(
            f"  {variant:8} median {statistics.median(values):7.1f} µs   best {min(values):7.1f} µs"
        )


if __name__ == "__main__":
    main()
