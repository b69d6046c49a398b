"""Where ordinary CEL expressions are evaluated, and what an evaluation costs in and out of process.

Run: ``python benchmarks/cel_routing_costs.py [--rounds 2000] [--baseline SRC]``
(a few seconds; timed in wall-clock, so say the machine's load with the figures).

The rules of docs/cel-limits.md send data-bound work (a long ``+`` chain of the run's data, a
comprehension reading it, many reads of it) to the CEL worker, a pickled round trip each. This
script takes the conditions, filters and input mappings of ``examples/*.yaml`` and the README,
and a few typical small ones, and prints for each whether this tree (and ``--baseline``'s)
evaluates it in the worker, and the median of ``--rounds`` evaluations of it in-process and
through the worker (each given only the parts of the variables it reads), side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

#: (where it comes from, the expression).
EXPRESSIONS = (
    ("example", "has(request.goal) ? request.goal : 'greet the world politely'"),
    ("example", "event.spec.dependencies_met == true"),
    ("example", "3"),
    ("example", "size(stages.specification.outputs.specs) > 0"),
    ("example", "request.goal"),
    ("typical", "event.x.y == true"),
    ("typical", "stages.a.outputs.n + 1 > 3"),
    ("typical", "[1, 2, 3].map(x, x * 2)"),
    ("typical", "size(event.items) > 0"),
    ("typical", "event.items.filter(i, i.ok).size() > 0"),
    ("typical", "[1, 2, 3].filter(x, x > stages.a.outputs.n).size() > 0"),
    ("typical", "['a', 'b'].exists(k, k in event.labels)"),
    ("typical", "request.first + ' ' + request.last"),
    ("typical", "stages.a.outputs.n + stages.b.outputs.n + stages.c.outputs.n > 10"),
)

CONTEXT: dict[str, Any] = {
    "request": {"goal": "ship it", "first": "Ada", "last": "Lovelace"},
    "event": {
        "spec": {"dependencies_met": True},
        "x": {"y": True},
        "items": [{"ok": False}, {"ok": True}, {"ok": True}],
        "labels": ["b", "c"],
    },
    "stages": {
        "specification": {"outputs": {"specs": ["one", "two"]}},
        "a": {"outputs": {"n": 3}},
        "b": {"outputs": {"n": 4}},
        "c": {"outputs": {"n": 5}},
    },
    "result": {},
}


def routes(source: str) -> list[bool]:
    """Whether each of EXPRESSIONS is isolated (evaluated in the worker) by ``source``'s tree,
    asked of a child process importing that tree."""
    code = (
        "import sys\n"
        "from taskdaemon.pipeline.expressions import compile_expression\n"
        "for line in sys.stdin.read().split('\\0'):\n"
        "    print(int(compile_expression(line).isolated))\n"
    )
    env = dict(os.environ, PYTHONPATH=source)
    text = "\0".join(src for _, src in EXPRESSIONS)
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=text,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line == "1" for line in done.stdout.split()]


def median_us(expression: Any, rounds: int) -> float:
    """The median wall-clock time of evaluating ``expression`` over the variables of CONTEXT it
    reads (as the engine gives them), in microseconds."""
    context = {name: CONTEXT[name] for name in expression.variables}
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        expression.evaluate(context)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--baseline", help="another tree's src directory: its routing too")
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    from taskdaemon.pipeline.cel_worker import shared_worker
    from taskdaemon.pipeline.expressions import compile_expression
    from taskdaemon.pipeline.record_fields import replace

    now = routes(str(SRC))
    before = routes(str(Path(args.baseline).resolve())) if args.baseline else None
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, {args.rounds} rounds")
    print(f"{'expression':58} {'base':>6} {'this':>6} {'in-process':>11} {'worker':>9}")
    try:
        for (_, text), isolated, index in zip(EXPRESSIONS, now, range(len(now)), strict=True):
            # The same expression, routed each way: both given only the parts they read.
            local_one = replace(compile_expression(text), isolated=False)
            remote_one = replace(local_one, isolated=True)
            local = median_us(local_one, args.rounds)
            remote = median_us(remote_one, args.rounds)
            base = "-" if before is None else ("worker" if before[index] else "in")
            where = "worker" if isolated else "in"
            shown = text if len(text) <= 58 else text[:55] + "..."
            print(f"{shown:58} {base:>6} {where:>6} {local:9.1f}us {remote:7.1f}us", flush=True)
    finally:
        shared_worker().close()


if __name__ == "__main__":
    main()
