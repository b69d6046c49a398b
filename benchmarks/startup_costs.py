"""Where a command's start-up CPU goes: imports in order, dataclass creation, pattern compiling.

Run: ``python benchmarks/startup_costs.py [--command run] [--processes 9]``.

For one command's import path (``--command``: ``run``, ``validate``, ``dag`` or ``runs``), two
tables, each measured in fresh interpreters so nothing is cached:

* the CPU time (``time.process_time``) each module group adds when imported in the listed order
  after the ones above it, median of ``--processes`` processes: what a group costs on this path,
  given what came before it;
* in one process that imports the whole path, the CPU time spent building classes (inside
  ``dataclasses``, or the project's ``@frozen`` decorator; per module) and inside ``re``
  compiling patterns: two costs that are spread over many modules, so no import line shows
  them.

Figures are CPU time, steadier than wall time on a shared machine, but still inflated by load:
compare rows of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The modules each command imports before it does its work, grouped, in import order.
PATHS: dict[str, tuple[str, ...]] = {
    "run": (
        "typing",
        "dataclasses",
        "argparse",
        "asyncio",
        "yaml",
        "taskdaemon.pipeline._cel",
        "taskdaemon.pipeline.model",
        "taskdaemon.pipeline.events",
        "taskdaemon.pipeline.engine",
        "taskdaemon.pipeline.config",
        "taskdaemon.pipeline.logs",
        "taskdaemon.pipeline.cli.deferred",
        "taskdaemon.pipeline.cli.deferred_start",
        "taskdaemon.pipeline.cli.run",
    ),
    "validate": (
        "typing",
        "dataclasses",
        "argparse",
        "yaml",
        "taskdaemon.pipeline._cel",
        "taskdaemon.pipeline.model",
        "taskdaemon.pipeline.config",
        "taskdaemon.pipeline.cli.validate",
    ),
    "dag": (  # no dataclasses: its records are @frozen (taskdaemon.pipeline.frozen)
        "typing",
        "argparse",
        "yaml",
        "taskdaemon.pipeline._cel",
        "taskdaemon.pipeline.model",
        "taskdaemon.pipeline.config",
        "taskdaemon.pipeline.visualization",
        "taskdaemon.pipeline.cli.dag",
    ),
    "runs": (
        "typing",
        "argparse",
        "logging",
        "taskdaemon.pipeline.records",
        "taskdaemon.pipeline.status_rules",
        "taskdaemon.pipeline.tracking.store",
        "taskdaemon.pipeline.tracking.sources",
        "taskdaemon.pipeline.cli.runs",
    ),
}

_INCREMENTS = """
import sys, time
costs = []
for name in sys.argv[1:]:
    started = time.process_time()
    __import__(name)
    costs.append(time.process_time() - started)
print(" ".join(map(repr, costs)))
"""

_SPREAD = """
import collections, dataclasses, json, re, sys, time
classes, class_time = collections.Counter(), collections.Counter()
build = dataclasses._process_class

def timed_build(cls, *args, **kwargs):
    started = time.process_time()
    try:
        return build(cls, *args, **kwargs)
    finally:
        class_time[cls.__module__] += time.process_time() - started
        classes[cls.__module__] += 1

dataclasses._process_class = timed_build
try:  # the project's own records (``@frozen``), in the trees that have them
    import taskdaemon.pipeline.frozen as frozen_module
except ImportError:
    frozen_module = None
if frozen_module is not None:
    build_record = frozen_module._build

    def timed_record(cls, *args, **kwargs):
        started = time.process_time()
        try:
            return build_record(cls, *args, **kwargs)
        finally:
            class_time[cls.__module__] += time.process_time() - started
            classes[cls.__module__] += 1

    frozen_module._build = timed_record
compile_pattern = re._compile
patterns = [0, 0.0]

def timed_compile(pattern, flags):
    if isinstance(pattern, re.Pattern) or (type(pattern), pattern, flags) in re._cache:
        return compile_pattern(pattern, flags)  # already compiled: not counted
    started = time.process_time()
    try:
        return compile_pattern(pattern, flags)
    finally:
        patterns[0] += 1
        patterns[1] += time.process_time() - started

re._compile = timed_compile
started = time.process_time()
for name in sys.argv[1:]:
    __import__(name)
total = time.process_time() - started
print(json.dumps({"total": total, "patterns": patterns,
                  "classes": {m: [classes[m], class_time[m]] for m in classes}}))
"""


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKDAEMON_", "PYTHON"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def _python(code: str, modules: tuple[str, ...]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    return done.stdout


def main() -> int:
    """Print both tables for ``--command``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--command", choices=sorted(PATHS), default="run")
    parser.add_argument("--processes", type=int, default=9, help="fresh processes (default 9)")
    options = parser.parse_args()
    modules = PATHS[options.command]
    _python("pass", modules)  # byte-code caches written before anything is timed

    runs = [
        [float(x) for x in _python(_INCREMENTS, modules).split()] for _ in range(options.processes)
    ]
    print(
        f"{options.command}: CPU each group adds, in this order (median of {options.processes}"
        f" processes, ms; load average {os.getloadavg()[0]:.1f})"
    )
    for index, name in enumerate(modules):
        print(f"  {name:<40} {statistics.median(r[index] for r in runs) * 1000:7.1f}")
    print(f"  {'all of them':<40} {statistics.median(sum(r) for r in runs) * 1000:7.1f}")

    spread = json.loads(_python(textwrap.dedent(_SPREAD), modules))
    classes = spread["classes"]
    count = sum(n for n, _ in classes.values())
    spent = sum(t for _, t in classes.values())
    print(f"\none process importing all of it: {spread['total'] * 1000:.1f} ms CPU, of which")
    print(f"  building {count} classes         {spent * 1000:7.1f} ms")
    for module, (n, seconds) in sorted(classes.items(), key=lambda item: -item[1][1]):
        print(f"    {module:<42} {n:3} {seconds * 1000:6.1f}")
    compiled, seconds = spread["patterns"]
    print(f"  compiling {compiled} patterns (re) {seconds * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
