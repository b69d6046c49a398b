"""Large pipeline files up to the size limit: peak memory (and instructions) of the commands
that load them.

``.venv/bin/python benchmarks/big_pipeline_memory.py [--sizes 1,4,16] [--shapes block,flow]
[--commands validate-no-resolve,validate,dag] [--baseline SRC] [--instructions]``

Each file is written in a temporary directory, as many stages as fit in ``--sizes`` MiB (the
last one at most the limit, 16 MiB), in one of these shapes (:func:`pipeline`):

* ``block``: block-style stages with flow-style triggers, as a user writes them
  (``triggers: [{on_completion: {stage: s0}}]``);
* ``block-entries``: the same with the trigger a block entry (``- on_completion: {stage: s0}``,
  ``per_stage.py``'s chain);
* ``flow``: one flow mapping a stage (``- {name: s1, handler: ..., triggers: [...]}``);
* ``oneline``: the whole file one flow mapping on one line;
* ``json``: the same as JSON (``json.dumps``, one line), a ``.json`` file;
* ``anchors``: ``block`` with the handler shared through an anchor and aliases (since round
  25 read the quick way, as ``block``);
* ``merges``: ``block`` with the first stage anchored and merged into every other one
  (``<<: *base``, which the loader reads the thorough way, composing every node);
* ``worst``: ``stages: [a, a, ...]`` on one line, the most stages a byte (each one an issue).

Each command (``taskdaemon validate --no-resolve``, ``validate``, ``dag``, with the repository's
root as the working directory, so the ``examples.loops`` handlers resolve) runs once under
``/usr/bin/time -v``; its "Maximum resident set size" is the figure, which load on the machine
does not change. ``--baseline SRC`` runs each again with ``PYTHONPATH=SRC`` (``git archive main
src | tar -x -C /tmp/base``). ``--instructions`` also counts each command under valgrind
(callgrind, as ``engine_stage_instructions.instructions`` does): minutes for the large files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIMIT = 16 * 1024 * 1024
SHAPES = ("block", "block-entries", "flow", "oneline", "json", "anchors", "merges", "worst")
COMMANDS = {
    "validate-no-resolve": ["validate", "--no-resolve"],
    "validate": ["validate"],
    "dag": ["dag"],
}
HANDLER = "examples.loops:plan"


def _trigger(i: int) -> str:
    return (
        "{manual: {approval_required: false}}"
        if i == 0
        else f"{{on_completion: {{stage: s{i - 1}}}}}"
    )


def _stage(shape: str, i: int) -> str:
    if shape == "block":
        return f"  - name: s{i}\n    handler: {HANDLER}\n    triggers: [{_trigger(i)}]\n"
    if shape == "anchors":
        handler = f"&h {HANDLER}" if i == 0 else "*h"
        return f"  - name: s{i}\n    handler: {handler}\n    triggers: [{_trigger(i)}]\n"
    if shape == "merges":
        if i == 0:
            head = "  - &base\n    name: s0\n"
            return head + f"    handler: {HANDLER}\n    triggers: [{_trigger(0)}]\n"
        return f"  - <<: *base\n    name: s{i}\n    triggers: [{_trigger(i)}]\n"
    if shape == "block-entries":
        return (
            f"  - name: s{i}\n    handler: {HANDLER}\n    triggers:\n      - {_trigger(i)[1:-1]}\n"
        )
    if shape == "flow":
        return f"  - {{name: s{i}, handler: {HANDLER}, triggers: [{_trigger(i)}]}}\n"
    if shape == "json":
        stage: dict[str, object] = {"name": f"s{i}", "handler": HANDLER}
        trigger = {"on_completion": {"stage": f"s{i - 1}"}} if i else {"manual": {}}
        stage["triggers"] = [trigger]
        return (", " if i else "") + json.dumps(stage)
    if shape == "oneline":
        return f"{', ' if i else ''}{{name: s{i}, handler: {HANDLER}, triggers: [{_trigger(i)}]}}"
    raise ValueError(f"unknown shape {shape!r}")


def pipeline(shape: str, size: int) -> tuple[str, int]:
    """A pipeline file of ``shape`` of at most ``size`` characters, and its number of stages."""
    if shape == "worst":
        head, tail = "name: big\nstages: [a", "]\n"
        count = (size - len(head) - len(tail)) // 2 + 1
        return head + ",a" * (count - 1) + tail, count
    head, tail = {
        "oneline": ("{name: big, stages: [", "]}\n"),
        "json": ('{"name": "big", "stages": [', "]}\n"),
    }.get(shape, ("name: big\nstages:\n", ""))
    parts = [head]
    total = len(head) + len(tail)
    i = 0
    while True:
        text = _stage(shape, i)
        if total + len(text) > size:
            break
        parts.append(text)
        total += len(text)
        i += 1
    parts.append(tail)
    return "".join(parts), i


def peak_kib(command: list[str], env: dict[str, str]) -> tuple[int, int]:
    """The command's maximum resident set size in KiB and its exit code."""
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if found is None:
        sys.exit(f"{' '.join(command)}: no figure from /usr/bin/time:\n{done.stderr[-2000:]}")
    return int(found.group(1)), done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16", help="comma list of MiB (at most 16)")
    parser.add_argument("--shapes", default="block,flow,oneline", help=f"of {', '.join(SHAPES)}")
    parser.add_argument("--commands", default=",".join(COMMANDS), help=", ".join(COMMANDS))
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    trees = {"this": str(ROOT / "src")}
    if args.baseline:
        trees["base"] = os.path.abspath(args.baseline)
    if args.instructions:
        sys.path.insert(0, str(HERE))
        from engine_stage_instructions import instructions
    print("shape          MiB  stages   command              tree  peak MiB  exit  instructions")
    with tempfile.TemporaryDirectory() as tmp:
        for size_text in args.sizes.split(","):
            size = min(LIMIT, int(float(size_text) * 1024 * 1024))
            for shape in args.shapes.split(","):
                text, stages = pipeline(shape, size)
                suffix = ".json" if shape == "json" else ".yaml"
                path = Path(tmp) / f"{shape}-{size_text}{suffix}"
                path.write_text(text)
                del text
                for name in args.commands.split(","):
                    for tree, src in trees.items():
                        env = dict(os.environ, PYTHONPATH=src)
                        command = [sys.executable, "-m", "taskdaemon.pipeline.cli"]
                        command += [*COMMANDS[name], str(path)]
                        kib, code = peak_kib(command, env)
                        count = (
                            f"{instructions(command, env, str(ROOT)):,}"
                            if args.instructions
                            else ""
                        )
                        print(
                            f"{shape:14} {size_text:>4} {stages:7,}   {name:20} {tree:5} "
                            f"{kib / 1024:8.1f}  {code:4}  {count}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
