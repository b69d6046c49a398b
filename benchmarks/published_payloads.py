"""What one stage publishing many large events costs: the run, its stored row, its readers.

Run: ``.venv/bin/python benchmarks/published_payloads.py [--events 2000] [--kib 64]
[--pause MS] [--io-kib 0] [--char y] [--capture BYTES] [--rounds 3] [--baseline SRC]``.

A real ``taskdaemon run`` (embedded store, a temporary home) of one Python stage that publishes
``--events`` events, each payload a different text of ``--kib`` KiB: at the default capture
cap (64 KiB) and the tracer provider's 2,000 events a span, the most one span can be made to
hold by event count alone. Its published events all land on the stage's span
(docs/span-store.md, "A byte budget a span"). ``--pause MS`` sleeps between two events: the
span store's writer then rewrites the open stage span, growing, as it gains them (a live view
reads them), where a stage publishing at once leaves it one rewrite or none. ``--io-kib N``
gives the run an input field of N KiB, which the stage takes and returns as its output (both
recorded on its span, within the cap). ``--char`` is the payloads' filler character: a
non-ASCII one makes every text of the run's rows wider in Python than in UTF-8.

Printed for each tree: the peak resident set (the kernel's ``VmHWM``) of ``run`` and the CPU
seconds it used (user and system), the size of the store file it leaves, and the peak of
``runs show`` and ``replay --dry-run`` reading that store back with the same tree, the largest
of ``--rounds`` processes each; the CPU is their median (how often the open span is rewritten
follows each run's timing, and one run rewriting it more would stand for them all).
``--capture BYTES`` sets ``TASKDAEMON_CAPTURE_MAX_BYTES`` for every process; at 0 nothing is
recorded that ``replay`` could run from, and it is not run.
``--baseline SRC`` (another checkout's ``src``) does the same with that tree, the two trees
taking turns to go first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

PIPELINE = """\
name: published
loops:
  publish: {handler: "published_handler:publish"}
stages:
  - name: a
    loop: publish
    inputs: {blob: request.blob}
    emits: [big]
    triggers: [{manual: {approval_required: false}}]
"""

HANDLER = """\
import os
import time


def publish(ctx):
    events, size = int(os.environ["EVENTS"]), int(os.environ["KIB"]) * 1024
    pause = int(os.environ["PAUSE_MS"]) / 1000
    filler = os.environ["CHAR"] * size
    for i in range(events):
        ctx.publish("big", {"i": i, "x": f"{i:08d}" + filler[8:]})
        time.sleep(pause)
    return {"blob": ctx.inputs["blob"]}
"""

#: The child: ``taskdaemon ARGS``, then its peak resident set (KiB) and CPU seconds on
#: stderr's last line.
CHILD = """\
import contextlib, io, resource, sys
from taskdaemon.pipeline.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
if code != 0:
    sys.exit(f"exit {code}")
usage = resource.getrusage(resource.RUSAGE_SELF)
peak = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print(peak, usage.ru_utime + usage.ru_stime, file=sys.stderr)
"""


def _child(tree: str, home: Path, *args: str, sizes: argparse.Namespace) -> tuple[float, float]:
    """The peak MiB and the CPU seconds of ``taskdaemon ARGS`` in a fresh process of ``tree``."""
    env = dict(os.environ, TASKDAEMON_HOME=str(home), EVENTS=str(sizes.events))
    env.update(KIB=str(sizes.kib), PAUSE_MS=str(sizes.pause), CHAR=sizes.char)
    env["TASKDAEMON_CAPTURE_MAX_BYTES"] = str(sizes.capture)
    env["PYTHONPATH"] = os.pathsep.join((tree, str(home.parent)))
    env.pop("TASKDAEMON_SPAN_SOURCE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home.parent / "pycache")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{tree}: {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    peak, cpu = done.stderr.split()[-2:]
    return int(peak) / 1024, float(cpu)


def _round(tree: str, folder: Path, name: str, args: argparse.Namespace) -> list[float]:
    """Peak MiB and CPU seconds of ``run``, the store's MiB, and the peaks of its readers
    (NaN for ``replay`` at ``--capture 0``)."""
    home = folder / name
    home.mkdir()
    run = ("run", "-q", "--input-file", str(folder / "input.json"), str(folder / "published.yaml"))
    peaks = list(_child(tree, home, *run, sizes=args))
    db = home / "spans.db"
    with sqlite3.connect(db) as conn:
        ((run_id,),) = conn.execute("SELECT trace_id FROM runs").fetchall()
    conn.close()
    peaks.append(db.stat().st_size / 2**20)
    peaks.append(_child(tree, home, "runs", "show", run_id, sizes=args)[0])
    replay = ("replay", run_id, "--dry-run")
    peaks.append(_child(tree, home, *replay, sizes=args)[0] if args.capture else math.nan)
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--kib", type=int, default=64)
    parser.add_argument("--pause", type=int, default=0, metavar="MS")
    parser.add_argument("--io-kib", type=int, default=0)
    parser.add_argument("--char", default="y")
    parser.add_argument("--capture", type=int, default=65536, metavar="BYTES")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="SRC")
    args = parser.parse_args()
    trees = {"this": str(SRC)}
    if args.baseline:
        trees["base"] = os.path.abspath(args.baseline)
    with tempfile.TemporaryDirectory(prefix="published-payloads-") as name:
        folder = Path(name)
        (folder / "published.yaml").write_text(PIPELINE)
        (folder / "published_handler.py").write_text(HANDLER)
        blob = args.char * (args.io_kib * 1024)
        (folder / "input.json").write_text(json.dumps({"blob": blob}, ensure_ascii=False))
        found: dict[str, list[list[float]]] = {tree: [] for tree in trees}
        for round_ in range(args.rounds):
            order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
            for tree in order:
                peaks = _round(trees[tree], folder, f"{tree}-{round_}", args)
                found[tree].append(peaks)
        print(
            f"one stage publishing {args.events} events of {args.kib} KiB each "
            f"({args.char!r}, {args.pause} ms apart), input and output of {args.io_kib} KiB, "
            f"capture cap {args.capture} bytes, largest of {args.rounds} processes "
            "(CPU: their median)"
        )
        head = f"{'run peak MiB':>13} {'run CPU s':>10} {'store MiB':>10} {'runs show':>10}"
        print(f"{'tree':6} {head} {'replay':>8}")
        for tree, rounds in found.items():
            run_peak, cpu, store, show, replay = (
                max(column) for column in zip(*rounds, strict=True)
            )
            cpu = statistics.median(round_[1] for round_ in rounds)
            print(f"{tree:6} {run_peak:13.0f} {cpu:10.2f} {store:10.1f} {show:10.0f} {replay:8.0f}")


if __name__ == "__main__":
    main()
