"""Cost of capturing a command stage's output as log records, against discarding it.

Runs one command stage (the real ``command_handler``) printing N lines (default 100,000), side
by side, alternating, ``--repeat`` times each:

* ``discarded``: the same command with ``>/dev/null 2>&1`` (nothing reaches taskdaemon);
* ``to-file``: the same command writing into a file (on ``/dev/shm``, a tmpfs, where there is
  one): what a write per line costs into any real file rather than ``/dev/null``;
* ``piped-to-cat``: the same command writing into a pipe drained by ``cat >/dev/null`` (cat
  wakes for every line the shell writes);
* ``counted``: taskdaemon's capture with a bound of 0: the command writes into the capture's
  pipes and the reader thread counts every line, nothing is stored: the floor of any capture;
* ``captured``: output captured into the embedded store's ``logs`` table (the real
  ``SqliteLogWriter`` on a new file), with the default bound (10,000 lines per stage), the
  time including the writer's flush of every captured line ("stage alone": until the stage
  returned, the writer thread still working);
* ``captured-all``: the same with the bound raised above N (every line stored).

``counted`` is the floor of any capture: the command writing into a pipe rather than
``/dev/null`` (for a program writing once per line, each write is a system call that costs more
into a pipe, whoever reads it) and taskdaemon reading and counting every line. The stored modes
also print their cost against it ("vs counted"): what storing lines adds to reading them.

For each it prints the median wall time and the median CPU time (user+sys) of both
processes: taskdaemon's (event loop, reader and writer threads: ``RUSAGE_SELF``; in brackets
the reader's and the writer's own, ``thread_time``) and the command's (``RUSAGE_CHILDREN``),
each against ``discarded``. On a shared machine read the CPU columns: the wall time of a mode
depends on whether a core was free while it ran. ``own+`` is taskdaemon's own CPU above
``discarded``'s, as a share of ``discarded``'s total CPU: the capture's cost without the
command's own run-to-run noise (±10-20% under load), which swamps the total's ratio; for a
program whose CPU the pipe does not change (``python``) it is what the total's ratio would be
on a quiet machine. The store is opened before the measure (once
per process in taskdaemon) and closed inside it (its WAL checkpoint is part of storing rows).

Two commands, one table each (``--commands``):

* ``sh-echo``: a ``/bin/sh`` loop of ``echo`` builtins printing ``line <i> of a build log``:
  the worst case, a write system call per line and no other work;
* ``python``: a Python program computing a SHA-256 digest per line and printing it with
  ``print`` (block-buffered when stdout is not a terminal, like most programs' stdio; run
  without ``PYTHONUNBUFFERED``, which would make it write twice a line).

``--command`` measures any other; ``--modes`` a subset (``discarded`` always); ``--pipe-bytes``
the pipe size asked for.

    .venv/bin/python benchmarks/log_capture.py [--lines 100000] [--repeat 7] [--modes ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from taskdaemon.pipeline import output_pipes, output_sinks
from taskdaemon.pipeline.loops import StageContext, command_handler
from taskdaemon.pipeline.stage_output import CaptureLimits
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

_STAGE_ONLY: dict[str, list[float]] = {}
# CPU seconds of the threads that ended, by role: each thread's own clock (``thread_time``).
_THREAD_CPU: Counter[str] = Counter()
_ROLES = {"taskdaemon-output": "reader", "taskdaemon-log-writer": "writer"}
_thread_run = threading.Thread.run


def _timed_run(self: threading.Thread) -> None:
    started = time.thread_time()
    try:
        _thread_run(self)
    finally:
        _THREAD_CPU[_ROLES.get(self.name, "other")] += time.thread_time() - started


threading.Thread.run = _timed_run  # type: ignore[method-assign]
_PLAIN = {
    "discarded": "{{ {command}; }} >/dev/null 2>&1",
    "to-file": "{{ {command}; }} >{file} 2>&1",
    "piped-to-cat": "{{ {command}; }} 2>&1 | cat >/dev/null",
}
# A file in memory where there is a tmpfs: the cost of the writes themselves, not of a disk.
_FILE_DIRECTORY = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


_ALL_MODES = ("discarded", "to-file", "piped-to-cat", "counted", "captured", "captured-all")


@dataclass
class Sample:
    """One run of one mode: wall seconds, and CPU seconds (user+sys) of taskdaemon's process
    (event loop, reader and writer threads) and of the command (its shell and children)."""

    wall: float
    own_cpu: float
    command_cpu: float
    reader_cpu: float = 0.0
    writer_cpu: float = 0.0

    @property
    def cpu(self) -> float:
        """Both processes' CPU."""
        return self.own_cpu + self.command_cpu


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


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


def _once(command: str, mode: str, lines: int, directory: Path) -> Sample:
    sample = _measure(command, mode, lines, directory)
    sample.reader_cpu, sample.writer_cpu = _THREAD_CPU["reader"], _THREAD_CPU["writer"]
    _THREAD_CPU.clear()
    return sample


def _measure(command: str, mode: str, lines: int, directory: Path) -> Sample:
    _THREAD_CPU.clear()
    if mode in _PLAIN:
        handle, name = tempfile.mkstemp(dir=_FILE_DIRECTORY or directory)
        os.close(handle)
        target = Path(name)
        shell = _PLAIN[mode].format(command=command, file=shlex.quote(str(target)))
        own0, child0 = _cpu()
        started = time.perf_counter()
        asyncio.run(command_handler()(_ctx(shell)))
        wall = time.perf_counter() - started
        own1, child1 = _cpu()
        target.unlink(missing_ok=True)
        return Sample(wall, own1 - own0, child1 - child0)
    # The store is opened once per process, not per stage: not measured. Its closing is (the
    # WAL checkpoint copying the rows into the database file, which SQLite would otherwise do
    # on the writer thread every 1,000 pages).
    writer = SqliteLogWriter(directory / f"{mode}-{time.monotonic_ns()}.db")
    limit = {
        "counted": CaptureLimits(0, 0),
        "captured": CaptureLimits(),
        "captured-all": CaptureLimits(lines + 1, 1 << 40),
    }[mode]
    previous = output_sinks.set_capture_limits(limit)
    output_sinks.add_output_sink(writer)
    try:
        own0, child0 = _cpu()
        started = time.perf_counter()
        asyncio.run(command_handler()(_ctx(command)))
        stage = time.perf_counter() - started
        if not writer.flush(120):
            raise SystemExit("the log writer did not catch up")
        elapsed = time.perf_counter() - started
        _STAGE_ONLY.setdefault(mode, []).append(stage)
    finally:
        output_sinks.remove_output_sink(writer)
        output_sinks.set_capture_limits(previous)
        writer.close()
    own1, child1 = _cpu()
    return Sample(elapsed, own1 - own0, child1 - child0)


_SH_LOOP = 'i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo "line $i of a build log"; done'
# Prints like most programs (stdio block-buffered when not a terminal), after a little work per
# line: a digest, as a build or test tool would compute or format something per line.
_PYTHON_PROGRAM = (
    "import hashlib\n"
    "for i in range({lines}):\n"
    "    digest = hashlib.sha256(str(i).encode()).hexdigest()\n"
    "    print(f'line {{i}} of a build log {{digest[:16]}}')\n"
)
_COMMANDS = {
    "sh-echo": _SH_LOOP,
    # Without PYTHONUNBUFFERED (set in some shells and CI): with it, print writes twice a line.
    "python": f"env -u PYTHONUNBUFFERED {shlex.quote(sys.executable)} -c {{program}}",
}


def _command(name: str, lines: int) -> str:
    if name == "python":
        return _COMMANDS[name].format(program=shlex.quote(_PYTHON_PROGRAM.format(lines=lines)))
    return _COMMANDS[name].format(lines=lines)


def _table(name: str, command: str, modes: tuple[str, ...], lines: int, repeat: int) -> None:
    samples: dict[str, list[Sample]] = {mode: [] for mode in modes}
    _STAGE_ONLY.clear()
    with tempfile.TemporaryDirectory() as tmp:
        _once(command, modes[-1], lines, Path(tmp))  # warm-up
        _STAGE_ONLY.clear()
        for _ in range(repeat):
            for mode in modes:
                samples[mode].append(_once(command, mode, lines, Path(tmp)))

    def median(mode: str, field: str) -> float:
        return statistics.median(getattr(sample, field) for sample in samples[mode])

    base_wall, base_cpu = median("discarded", "wall"), median("discarded", "cpu")
    base_own = median("discarded", "own_cpu")
    print(
        f"{name}: {lines} lines, {repeat} runs each, medians "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"  {'mode':<13} {'wall':>9}  {'vs':>6}   {'CPU':>9}  {'vs':>6}"
        "   own CPU (reader writer)  own+  command CPU"
    )
    for mode in modes:
        wall, cpu = median(mode, "wall"), median(mode, "cpu")
        line = (
            f"  {mode:<13} {wall * 1000:6.1f} ms  {100 * (wall / base_wall - 1):+5.1f}%"
            f"   {cpu * 1000:6.1f} ms  {100 * (cpu / base_cpu - 1):+5.1f}%"
            f"   {median(mode, 'own_cpu') * 1000:4.0f} ms"
            f" ({median(mode, 'reader_cpu') * 1000:4.0f} {median(mode, 'writer_cpu') * 1000:4.0f})"
            f" {100 * (median(mode, 'own_cpu') - base_own) / base_cpu:+5.1f}%"
            f"  {median(mode, 'command_cpu') * 1000:8.0f} ms"
        )
        if mode in _STAGE_ONLY:
            stage = statistics.median(_STAGE_ONLY[mode])
            line += f"   (stage alone {stage * 1000:.1f} ms, {100 * (stage / base_wall - 1):+.1f}%"
            if "counted" in samples and mode != "counted":
                floor_wall, floor_cpu = median("counted", "wall"), median("counted", "cpu")
                line += (
                    f"; vs counted: wall {100 * (wall / floor_wall - 1):+.1f}%"
                    f", CPU {100 * (cpu / floor_cpu - 1):+.1f}%"
                )
            line += ")"
        print(line)


def main() -> None:
    """Measure and print one table per command."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--modes", default=",".join(_ALL_MODES), help="modes to run")
    parser.add_argument("--commands", default=",".join(_COMMANDS), help=f"of {','.join(_COMMANDS)}")
    parser.add_argument("--command", help="measure this command instead")
    parser.add_argument("--pipe-bytes", type=int, help="pipe size to ask for (default 256 KiB)")
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))
    if "discarded" not in modes or not set(modes) <= set(_ALL_MODES):
        parser.error(f"--modes: a subset of {','.join(_ALL_MODES)} with discarded")
    names = tuple(args.commands.split(","))
    if not set(names) <= set(_COMMANDS):
        parser.error(f"--commands: a subset of {','.join(_COMMANDS)}")
    if args.pipe_bytes:
        output_pipes.PIPE_BYTES = args.pipe_bytes  # type: ignore[misc]
    if args.command:
        _table("--command", args.command, modes, args.lines, args.repeat)
        return
    for name in names:
        _table(name, _command(name, args.lines), modes, args.lines, args.repeat)


if __name__ == "__main__":
    main()
