"""What one stage publishing many large events costs: the run, its stored row, its readers.

Run: ``.venv/bin/python benchmarks/published_payloads.py [--events 2000] [--kib 64]
[--capture BYTES] [--rounds 3] [--baseline SRC]``.

A real ``taskdaemon run`` (embedded store, a temporary home) of one Python stage that publishes
``--events`` events, each payload a different text of ``--kib`` KiB: at the default capture
cap (64 KiB) and the tracer provider's 2,000 events a span, the most one span can be made to
hold by event count alone. Its published events all land on the stage's span
(docs/span-store.md, "A byte budget a span"). Printed for each tree: the peak resident set
(the kernel's ``VmHWM``) of ``run``, the size of the store file it leaves, and the peak of
``runs show`` and ``replay --dry-run`` reading that store back with the same tree, the largest
of ``--rounds`` processes each. ``--capture BYTES`` sets ``TASKDAEMON_CAPTURE_MAX_BYTES`` for
every process; at 0 nothing is recorded that ``replay`` could run from, and it is not run.
``--baseline SRC`` (another checkout's ``src``) does the same with that tree, the two trees
taking turns to go first.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
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
    emits: [big]
    triggers: [{manual: {approval_required: false}}]
"""

HANDLER = """\
import os


def publish(ctx):
    events, size = int(os.environ["EVENTS"]), int(os.environ["KIB"]) * 1024
    filler = "y" * size
    for i in range(events):
        ctx.publish("big", {"i": i, "x": f"{i:08d}" + filler[8:]})
    return {}
"""

#: The child: ``taskdaemon ARGS``, then its peak resident set (KiB) on stderr's last line.
CHILD = """\
import contextlib, io, sys
from taskdaemon.pipeline.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
if code != 0:
    sys.exit(f"exit {code}")
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0], file=sys.stderr)
"""


def _child(tree: str, home: Path, *args: str, events: int, kib: int, capture: int) -> float:
    """The peak MiB of ``taskdaemon ARGS`` in a fresh process of ``tree``."""
    env = dict(os.environ, TASKDAEMON_HOME=str(home), EVENTS=str(events), KIB=str(kib))
    env["TASKDAEMON_CAPTURE_MAX_BYTES"] = str(capture)
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
    return int(done.stderr.split()[-1]) / 1024


def _round(tree: str, folder: Path, name: str, args: argparse.Namespace) -> list[float]:
    """Peak MiB of ``run``, the store's MiB, and the peaks of its readers (NaN for
    ``replay`` at ``--capture 0``)."""
    home = folder / name
    home.mkdir()
    sizes = {"events": args.events, "kib": args.kib, "capture": args.capture}
    run_peak = _child(tree, home, "run", "-q", str(folder / "published.yaml"), **sizes)
    db = home / "spans.db"
    with sqlite3.connect(db) as conn:
        ((run_id,),) = conn.execute("SELECT trace_id FROM runs").fetchall()
    conn.close()
    peaks = [run_peak, db.stat().st_size / 2**20]
    peaks.append(_child(tree, home, "runs", "show", run_id, **sizes))
    replay = ("replay", run_id, "--dry-run")
    peaks.append(_child(tree, home, *replay, **sizes) if args.capture else math.nan)
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--kib", type=int, default=64)
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
        found: dict[str, list[list[float]]] = {tree: [] for tree in trees}
        for round_ in range(args.rounds):
            order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
            for tree in order:
                peaks = _round(trees[tree], folder, f"{tree}-{round_}", args)
                found[tree].append(peaks)
        print(
            f"one stage publishing {args.events} events of {args.kib} KiB each, "
            f"capture cap {args.capture} bytes, largest of {args.rounds} processes"
        )
        print(f"{'tree':6} {'run peak MiB':>13} {'store MiB':>10} {'runs show':>10} {'replay':>8}")
        for tree, rounds in found.items():
            run_peak, store, show, replay = (max(column) for column in zip(*rounds, strict=True))
            print(f"{tree:6} {run_peak:13.0f} {store:10.1f} {show:10.0f} {replay:8.0f}")


if __name__ == "__main__":
    main()
