"""The pipeline file's load, part by part, per stage: thread CPU, or instructions (valgrind).

``.venv/bin/python benchmarks/pipeline_load_parts.py [--stages 301,1001] [--pairs 3]
[--parts compose,load] [--baseline SRC] [--instructions | --process]``

Each child writes ``per_stage.py``'s async chain of each ``--stages`` size and times, best of
``--repeat`` (``time.thread_time``, after one untimed run, the sizes interleaved): ``compose``
(``yamlsafe.compose_bounded``: the C parser and its Python call-backs), ``convert`` (nodes to
plain values: ``yaml_values.plain_tree`` where the tree has it, as ``load_pipeline`` reads a
file without aliases or mistakes, else ``yaml_values.NodeConverter``), ``read`` (the text to
plain values as ``load_pipeline`` reads it, ``config_text.read_yaml``: since round 18 most files
are read by ``yaml_quick`` without composing, so ``compose`` and ``convert`` are what such a
file no longer pays, and ``read`` what it does), ``reader``
(``config_reader.ConfigReader``: plain values to the model, every field checked), ``validate``
(``validation.validate_pipeline``), ``load`` (``config.load_pipeline``, all of it) and ``canonical``
(``Pipeline.canonical_json`` of the loaded chain, computed anew each time), each divided by the
number of stages. The parts run with the cyclic collector paused, as ``load_pipeline``
runs them. With ``--baseline SRC`` (``git archive main src | tar -x -C /tmp/base``, then
``--baseline /tmp/base/src``) children alternate between this checkout and SRC, ``--pairs``
times (the order flipped every pair); each figure is the median over a tree's children of
their best (with its range) and of their median.

This VM's speed drifts by up to 2x within seconds, more than most levers on the parse move it.
``--instructions`` counts instead: each part of each tree runs under ``valgrind --tool=
cachegrind`` twice, with ``--repeat`` runs and with none, and the difference of the two
instruction counts is divided by runs and stages. The count is the same on every run (hash
seed fixed, and address randomisation off: the composer's tag memo is keyed on a class, whose
hash is its address); it weighs a C-level dict look-up and a Python frame by their
instructions, not by their cache misses, so it ranks levers, and the CPU figures confirm them.

``--process`` counts what a command pays, as the lead's budget of a stage does
(``benchmarks/README.md``, "Quiet-window figures, sixth session of 2026-12-01"): a fresh process
that loads the chain once (``load``), or loads it and reads its ``canonical_json`` (``load+json``),
under ``engine_stage_instructions.instructions``; (count with each ``--stages`` size - count
with a chain of 1) / (size - 1), start-up, imports and first-use compiling cancelled.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
PARTS = ("compose", "convert", "read", "reader", "validate", "load", "canonical")


class _NoLines(dict[str, int]):
    """No lines, for any form of ``ConfigReader``'s argument: a mapping before parse10, a callable
    that returns one after, given the paths wanted since mem21 (a chain has no issue, so none
    is read)."""

    def __call__(self, wanted: object = None) -> dict[str, int]:
        return self


def _work(stages: int, folder: Path) -> dict[str, Callable[[], object]]:
    """Each part's work on a fresh chain of ``stages`` stages written in ``folder``."""
    sys.path.insert(0, str(HERE))
    from per_stage import chain
    from taskdaemon.pipeline.config import load_pipeline
    from taskdaemon.pipeline.config_reader import ConfigReader
    from taskdaemon.pipeline.yaml_values import NodeConverter
    from taskdaemon.pipeline.yamlsafe import compose_bounded

    try:
        from taskdaemon.pipeline.validation import validate_pipeline
    except ImportError:  # a tree before model16, when the validator was in ``model``
        from taskdaemon.pipeline.model import validate_pipeline  # type: ignore[attr-defined,no-redef]

    path = folder / f"chain-{stages}.yaml"
    text = chain("async", stages)
    path.write_text(text)
    node = compose_bounded(text)
    assert node is not None
    try:
        from taskdaemon.pipeline.yaml_values import plain_tree
    except ImportError:  # a tree before parse10

        def convert() -> object:
            return NodeConverter("f").value(node, "", None)
    else:

        def convert() -> object:
            return plain_tree(node)

    try:
        from taskdaemon.pipeline.config_text import read_yaml
    except ImportError:  # a tree before parse10

        def read() -> object:
            return NodeConverter("f").value(compose_bounded(text), "", None)
    else:

        def read() -> object:
            return read_yaml(text, "f")

    data = NodeConverter("f").value(node, "", None)
    pipeline = ConfigReader("f", _NoLines()).pipeline(data)
    return {
        "compose": lambda: compose_bounded(text),
        "convert": convert,
        "read": read,
        "reader": lambda: ConfigReader("f", _NoLines()).pipeline(data),
        "validate": lambda: validate_pipeline(pipeline, registered_loops=()),
        "load": lambda: load_pipeline(path),
        # The cached property's function: a fresh text each time from the same model.
        "canonical": lambda: type(pipeline).canonical_json.func(pipeline),
    }


def child(sizes: list[int], parts: list[str], repeat: int) -> dict[str, list[float]]:
    """In the child: ``{"PART@SIZE": [best, median]}``, µs a stage."""
    folder = Path(tempfile.mkdtemp(prefix="td-load-parts-"))
    work = {size: _work(size, folder) for size in sizes}
    times: dict[str, list[float]] = {f"{part}@{size}": [] for part in parts for size in sizes}
    gc.disable()
    for size in sizes:
        for part in parts:
            work[size][part]()
    for _ in range(repeat):
        for size in sizes:
            for part in parts:
                started = time.thread_time()
                work[size][part]()
                times[f"{part}@{size}"].append((time.thread_time() - started) / size * 1e6)
    shutil.rmtree(folder, ignore_errors=True)
    return {key: [min(found), statistics.median(found)] for key, found in times.items()}


def counted(size: int, part: str, runs: int) -> None:
    """In a child under valgrind: one untimed run, then ``runs`` more of ``part``."""
    work = _work(size, Path(tempfile.mkdtemp(prefix="td-load-parts-")))[part]
    gc.disable()
    for _ in range(runs + 1):
        work()


def once(size: int, canonical: bool) -> None:
    """In a counted process: load the chain of ``size`` stages once, and read its JSON."""
    sys.path.insert(0, str(HERE))
    from per_stage import chain
    from taskdaemon.pipeline.config import load_pipeline

    folder = Path(tempfile.mkdtemp(prefix="td-load-once-"))
    path = folder / "chain.yaml"
    path.write_text(chain("async", size))
    pipeline = load_pipeline(path)
    if canonical:
        _ = pipeline.canonical_json
    shutil.rmtree(folder, ignore_errors=True)


def process_instructions(source: str, size: int, canonical: bool) -> float:
    """Instructions a stage of a process that loads the chain once (see the docstring)."""
    sys.path.insert(0, str(HERE))
    from engine_stage_instructions import instructions as counted_process

    env = dict(os.environ, PYTHONPATH=source)
    found = []
    for stages in (1, size):
        command = [sys.executable, __file__, "--once", str(stages)]
        command += ["--canonical"] if canonical else []
        found.append(counted_process(command, env))
    return (found[1] - found[0]) / (size - 1)


def instructions(source: str, size: int, part: str, runs: int) -> float:
    """Instructions a stage of ``part`` with ``source`` first on the path (valgrind)."""
    env = dict(os.environ, PYTHONPATH=source, PYTHONHASHSEED="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    found = []
    for count in (0, 0, runs):  # the first writes any stale byte-code cache: not counted
        command = [
            "setarch", "-R", "valgrind", "--tool=cachegrind", "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable, __file__, "--count", part, "--stages", str(size),
            "--repeat", str(count),
        ]  # fmt: skip
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        assert match is not None, out.stderr
        found.append(int(match.group(1).replace(",", "")))
    return (found[2] - found[1]) / runs / size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="301,1001", help="comma list of chain sizes")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma list of parts")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--process", action="store_true", help="whole processes, counted")
    parser.add_argument("--once", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--canonical", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", metavar="PART", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.stages.split(",")]
    parts = [part for part in args.parts.split(",") if part]
    if args.once is not None:
        once(args.once, args.canonical)
        return
    if args.count:
        counted(sizes[0], args.count, args.repeat)
        return
    if args.child:
        print(json.dumps(child(sizes, parts, args.repeat)))
        return
    variants = {"this": str(SRC)}
    if args.baseline:
        variants["base"] = args.baseline
    if args.process:
        print("a process that loads the chain once, instructions a stage (N against 1)")
        print("  variant  reads     " + "".join(f"{size:>12}" for size in sizes))
        for label, canonical in (("load", False), ("load+json", True)):
            for name, source in variants.items():
                counts = [process_instructions(source, size, canonical) for size in sizes]
                print(f"  {name:<8} {label:<9} " + "".join(f"{c:12,.0f}" for c in counts))
        return
    if args.instructions:
        runs = max(1, args.repeat // 5)
        print(f"pipeline file load, async chain, instructions a stage ({runs} runs minus none)")
        print("  variant  part      " + "".join(f"{size:>12}" for size in sizes))
        for part in parts:
            for name, source in variants.items():
                counts = [instructions(source, size, part, runs) for size in sizes]
                print(f"  {name:<8} {part:<9} " + "".join(f"{c:12,.0f}" for c in counts))
        return
    results: dict[str, list[dict[str, list[float]]]] = {name: [] for name in variants}
    order = list(variants.items())
    loads = []
    for _ in range(args.pairs):
        for name, source in order:
            env = dict(os.environ, PYTHONPATH=source)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            command = [
                sys.executable, __file__, "--child", "--stages", args.stages,
                "--parts", args.parts, "--repeat", str(args.repeat),
            ]  # fmt: skip
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            results[name].append(json.loads(out.stdout))
        loads.append(os.getloadavg()[0])
        order.reverse()
    print(
        f"pipeline file load, async chain, thread CPU µs a stage: best and median of "
        f"{args.repeat} in each of {args.pairs} children a tree; median over children, the "
        f"children's best in brackets (load average {min(loads):.1f}-{max(loads):.1f})"
    )
    for part in parts:
        for size in sizes:
            key = f"{part}@{size}"
            for name, rows in results.items():
                bests = [row[key][0] for row in rows]
                medians = [row[key][1] for row in rows]
                print(
                    f"  {name:<6} {part:<9} {size:>6}  best {statistics.median(bests):7.1f} "
                    f"({min(bests):.1f}-{max(bests):.1f})  median "
                    f"{statistics.median(medians):7.1f}"
                )


if __name__ == "__main__":
    main()
