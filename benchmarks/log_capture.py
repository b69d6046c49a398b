"""Cost of capturing a command stage's output as log records, against discarding it.

Runs one command stage (the real ``command_handler``) printing N lines (default 100,000), side
by side, alternating, ``--repeat`` times each:

* ``discarded``: the same command with ``>/dev/null 2>&1`` (nothing reaches taskdaemon);
* ``piped-to-cat``: the same command writing into a pipe drained by ``cat >/dev/null``: the
  floor of any capture (the command's writes into a pipe and a reader process's CPU);
* ``captured``: output captured into the embedded store's ``logs`` table (the real
  ``SqliteLogWriter`` on a fresh file), with the default bound (10,000 lines per stage), the
  time including the writer's flush of every captured line ("stage alone": until the stage
  returned, the writer thread still working);
* ``captured-all``: the same with the bound raised above N (every line stored).

The command is a ``/bin/sh`` loop printing ``line <i> of a build log`` (about 0.5 s for
100,000 lines here): output written at the pace of a program doing work. ``--command`` takes
any other. Prints medians and each captured mode's cost relative to ``discarded``.

    .venv/bin/python benchmarks/log_capture.py [--lines 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from taskdaemon.pipeline import stage_output
from taskdaemon.pipeline.loops import StageContext, command_handler
from taskdaemon.pipeline.stage_output import CaptureLimits
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

_STAGE_ONLY: dict[str, list[float]] = {}
_PLAIN = {
    "discarded": "{{ {command}; }} >/dev/null 2>&1",
    "piped-to-cat": "{{ {command}; }} 2>&1 | cat >/dev/null",
}


def _ctx(command: str) -> StageContext:
    return StageContext(
        run_id="a" * 32,
        pipeline="bench",
        stage="build",
        loop="command",
        instance=0,
        attempt=1,
        inputs={},
        publish=lambda *a: None,
        report_process=lambda pid: None,
        environment={"TRACEPARENT": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        command=command,
    )


def _once(command: str, mode: str, lines: int, directory: Path) -> float:
    if mode in _PLAIN:
        started = time.perf_counter()
        asyncio.run(command_handler()(_ctx(_PLAIN[mode].format(command=command))))
        return time.perf_counter() - started
    writer = SqliteLogWriter(directory / f"{mode}-{time.monotonic_ns()}.db")
    limit = CaptureLimits() if mode == "captured" else CaptureLimits(lines + 1, 1 << 40)
    previous = stage_output.set_capture_limits(limit)
    stage_output.add_output_sink(writer)
    try:
        started = time.perf_counter()
        asyncio.run(command_handler()(_ctx(command)))
        stage = time.perf_counter() - started
        if not writer.flush(120):
            raise SystemExit("the log writer did not catch up")
        elapsed = time.perf_counter() - started
        _STAGE_ONLY.setdefault(mode, []).append(stage)
    finally:
        stage_output.remove_output_sink(writer)
        stage_output.set_capture_limits(previous)
        writer.close()
    return elapsed


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--command", help="command printing the lines (default: a sh loop)")
    args = parser.parse_args()
    command = args.command or (
        f'i=0; while [ $i -lt {args.lines} ]; do i=$((i+1)); echo "line $i of a build log"; done'
    )
    modes = ("discarded", "piped-to-cat", "captured", "captured-all")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        _once(command, "captured-all", args.lines, Path(tmp))  # warm-up
        _STAGE_ONLY.clear()
        for _ in range(args.repeat):
            for mode in modes:
                times[mode].append(_once(command, mode, args.lines, Path(tmp)))
    base = statistics.median(times["discarded"])
    print(f"{args.lines} lines, {args.repeat} runs each, medians")
    for mode in modes:
        median = statistics.median(times[mode])
        line = f"  {mode:<13} {median * 1000:8.1f} ms  {100 * (median / base - 1):+6.1f}%"
        if mode in _STAGE_ONLY:
            stage = statistics.median(_STAGE_ONLY[mode])
            line += f"   (stage alone {stage * 1000:.1f} ms, {100 * (stage / base - 1):+.1f}%)"
        print(line)


if __name__ == "__main__":
    main()
