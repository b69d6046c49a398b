"""Instructions one in-process CEL evaluation of ``request.go`` costs, by the request's size.

Run: ``python benchmarks/cel_context_instructions.py [--evaluations 150] [--baseline SRC]``
(needs ``valgrind`` and ``setarch``; a few seconds a process).

A condition such as ``request.go`` is evaluated in-process (docs/cel-limits.md) every time its
run changes. This script counts, under callgrind (``engine_stage_instructions.instructions``),
a process that compiles the expression and evaluates it ``--evaluations`` times over a request
(``small``: two short members; ``large``: the same plus a 10 MB string member), less the same
process evaluating it once, divided by the evaluations less one: the instructions an
evaluation costs, the request's building and the start-up cancelled. ``--baseline`` counts
another tree's ``src`` the same way, in the same run, to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

from engine_stage_instructions import instructions  # noqa: E402 - the benchmarks directory

SIZES = ("small", "large")


def child(size: str, evaluations: int) -> None:
    """Evaluate ``request.go`` ``evaluations`` times over a request of ``size``."""
    from taskdaemon.pipeline.expressions import compile_expression

    request: dict[str, object] = {"go": True, "name": "demo"}
    if size == "large":
        request["blob"] = "x" * 10_000_000
    expression = compile_expression("request.go")
    context = {"request": request}
    for _ in range(evaluations):
        if expression.evaluate(context) is not True:
            sys.exit("request.go should be true")


def count(source: str, size: str, evaluations: int) -> int:
    """The instructions of a child over ``source``'s tree."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((source, str(HERE))))
    command = [sys.executable, __file__, "--child", size, "--evaluations", str(evaluations)]
    return instructions(command, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=150)
    parser.add_argument("--baseline", help="another tree's src directory, counted alike")
    parser.add_argument("--child", choices=SIZES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.evaluations)
        return
    trees = {"this": str(SRC)}
    if args.baseline:
        trees["base"] = str(Path(args.baseline).resolve())
    n = args.evaluations
    for size in SIZES:
        for name, source in trees.items():
            each = (count(source, size, n) - count(source, size, 1)) / (n - 1)
            print(f"  {size:5}  {name}  {each:12,.0f} instructions an evaluation", flush=True)


if __name__ == "__main__":
    main()
