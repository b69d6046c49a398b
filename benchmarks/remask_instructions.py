"""What masking a run's stored log rows again costs, in instructions counted under valgrind.

Run: ``python benchmarks/remask_instructions.py [--lines 100000] [--per-batch 100]``
(needs ``valgrind`` and ``setarch``).

A run with a lot of output: each child process stores ``--lines`` captured lines of one run,
``--per-batch`` a batch (the capture's reads), through the store's real log writer
(``tracking.log_writer``) into a fresh store, and waits until they are written. Three outputs:
no line holds the value learnt then (``absent``: the run's rows are read, none rewritten), one
line does (``one``), every hundredth line does (``many``). For each, two children side by side:
one stores the output only, the other then learns the value for the run (``remember_secrets``)
and waits until the writer has masked it again. The difference is what masking again costs;
the first count, what storing the output cost in the first place. Instructions are not time,
so each child's wall time for the masking step is printed too (on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
RUN_ID = "ab" * 16
SECRET = "fetched-s3cr3t-4242"


def _child(text: str, remask: bool, lines: int, per_batch: int) -> None:
    from taskdaemon.pipeline.secret_values import remember_secrets
    from taskdaemon.pipeline.stage_output import OutputBatch
    from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

    every = {"one": lines, "many": 100}.get(text)
    with tempfile.TemporaryDirectory() as folder:
        writer = SqliteLogWriter(Path(folder) / "spans.db")
        try:
            for start in range(0, lines, per_batch):
                texts = tuple(
                    f"line {n}: got {SECRET}"
                    if every is not None and n % every == every - 1
                    else f"line {n}: building module {n % 977} of the project, step {n}"
                    for n in range(start, min(start + per_batch, lines))
                )
                batch = OutputBatch(RUN_ID, "p", "build", 0, 1, RUN_ID, "1" * 16, "stdout", texts)
                writer.write_output(batch)
            assert writer.flush(600)
            began = time.perf_counter()
            if remask:
                remember_secrets({"token": SECRET}, RUN_ID)
                assert writer.flush(600)
            spent = time.perf_counter() - began
        finally:
            writer.close()
        if remask:
            print(f"{text}: {writer.remasked} rows in {spent * 1000:.1f} ms", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--per-batch", type=int, default=100)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--remask", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.remask, args.lines, args.per_batch)
        return
    from engine_stage_instructions import instructions

    env = dict(os.environ, PYTHONPATH=os.pathsep.join((os.environ.get("PYTHONPATH") or SRC, HERE)))
    print(f"{args.lines:,} captured lines, {args.per_batch} a batch, one run")
    for text in ("absent", "one", "many"):
        command = [sys.executable, __file__, "--child", text, "--lines", str(args.lines)]
        command += ["--per-batch", str(args.per_batch)]
        stored = instructions(command, env)
        masked = instructions([*command, "--remask"], env)
        line = f"  {text:6} stored {stored:15,}  masked again {masked - stored:+14,}"
        print(f"{line} ({(masked - stored) / stored:+.1%})", flush=True)


if __name__ == "__main__":
    main()
