"""Validation time by pipeline shape: is loading a pipeline file linear in its size?

Run: ``python benchmarks/validation_shapes.py [--sizes 10000,20000,40000] [--rounds 3]``.

Each shape is written as YAML text and read with ``parse_pipeline`` (compose, convert, build the
model, ``validate_pipeline``: names, references, CEL, cycles, entry stages):

* ``chain``: each stage waits for the one before;
* ``fan-out``: one entry stage and N-1 stages waiting for it (40,000 took 17.2 s, against
  2.9 s for the chain, while ``Pipeline.downstream`` tested membership in a list);
* ``root-last``: the fan-out with its entry stage written last (the file's order is not a
  topological one: the stages are ordered by the heap, all N-1 ready at once);
* ``fan-in``: N-1 entry stages and one stage waiting for all of them;
* ``events``: one emitter and N-1 stages triggered by its event, each with a CEL filter.

Printed: the best of ``--rounds`` runs per shape and size, µs per stage, and the ratio of the
µs per stage at the largest size to the smallest (≈1.0 when linear).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from taskdaemon.pipeline.config import parse_pipeline

_ENTRY = "    triggers: [{manual: {approval_required: false}}]\n"


def _stage(name: str, triggers: str, extra: str = "") -> str:
    return f"  - name: {name}\n    command: 'true'\n{triggers}{extra}"


def chain(n: int) -> str:
    parts = [_stage("s0", _ENTRY)]
    parts += [
        _stage(f"s{i}", f"    triggers: [{{on_completion: {{stage: s{i - 1}}}}}]\n")
        for i in range(1, n)
    ]
    return "name: chain\nstages:\n" + "".join(parts)


def fan_out(n: int) -> str:
    parts = [_stage("root", _ENTRY)]
    parts += [
        _stage(f"s{i}", "    triggers: [{on_completion: {stage: root}}]\n") for i in range(1, n)
    ]
    return "name: fan-out\nstages:\n" + "".join(parts)


def root_last(n: int) -> str:
    parts = [
        _stage(f"s{i}", "    triggers: [{on_completion: {stage: root}}]\n") for i in range(1, n)
    ]
    parts.append(_stage("root", _ENTRY))
    return "name: root-last\nstages:\n" + "".join(parts)


def fan_in(n: int) -> str:
    parts = [_stage(f"s{i}", _ENTRY) for i in range(1, n)]
    waits = ", ".join(f"{{on_completion: {{stage: s{i}}}}}" for i in range(1, n))
    parts.append(_stage("sink", f"    trigger_mode: all\n    triggers: [{waits}]\n"))
    return "name: fan-in\nstages:\n" + "".join(parts)


def events(n: int) -> str:
    parts = [_stage("root", _ENTRY, "    emits: [go]\n")]
    parts += [
        _stage(
            f"s{i}",
            f"    triggers: [{{on_event: {{type: go, filter: 'event.n == {i}'}}}}]\n",
        )
        for i in range(1, n)
    ]
    return "name: events\nstages:\n" + "".join(parts)


SHAPES: dict[str, Callable[[int], str]] = {
    "chain": chain,
    "fan-out": fan_out,
    "root-last": root_last,
    "fan-in": fan_in,
    "events": events,
}


def best_seconds(text: str, rounds: int) -> float:
    """The fastest of ``rounds`` parses of ``text`` (a fresh model each time)."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        parse_pipeline(text, registered_loops=())
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,20000,40000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{'shape':9} " + " ".join(f"{n:>16,}" for n in sizes) + "   ratio µs/stage")
    for name, build in SHAPES.items():
        per_stage = []
        cells = []
        for n in sizes:
            seconds = best_seconds(build(n), args.rounds)
            per_stage.append(seconds / n * 1e6)
            cells.append(f"{seconds:7.2f}s {per_stage[-1]:5.0f}µs")
        ratio = per_stage[-1] / per_stage[0]
        print(f"{name:9} " + " ".join(f"{c:>16}" for c in cells) + f"   {ratio:.2f}")


if __name__ == "__main__":
    main()
