"""``reconstruct_run`` of recorded runs: one big run (ended, and cut while it ran) and a small one.

Run: ``python benchmarks/reconstruct_events.py [--stages 1000] [--small 2000] [--rounds 15]
[--baseline SRC] [--instructions]`` (``--instructions`` needs ``valgrind`` and ``setarch``).

The runs are real: ``taskdaemon run -q`` of a chain of ``--stages`` no-op Python stages, and of
``examples/feature_delivery.yaml`` (8 spans, as every run of the history benchmarks,
benchmarks/README.md, "A long history: 50,000 runs (scale24, 2026-12-03)"), recorded by the
embedded store in a temporary home. Each child reads their spans back from that store once,
then rebuilds: the big run ended; the big run cut halfway (``replay.timeline.spans_at``: its
run span open, as a live reader sees it, which also reads the approval and breakpoint events);
the small run ``--small`` times (what a reader of a long history from a remote source pays a
run, ``report`` over Tempo say).

Timing: each child times ``--rounds`` rebuilds of each and prints the medians; with
``--baseline SRC`` (another checkout's ``src``) the two trees' children alternate, one child
each per round. ``--instructions``: each case's own instructions under callgrind (a child
doing it twice minus a child doing it once: start-up, imports and the store read cancel), for
this tree and the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
TASKDAEMON = Path(sys.executable).with_name("taskdaemon")

CASES = ("big-ended", "big-live", "small")


def _record(home: Path, stages: int) -> dict[str, str]:
    """Record the two runs into ``home``'s store; their run ids by case."""
    (home / "noop_loop.py").write_text("def noop(ctx):\n    return {}\n")
    lines = ["name: chain", "loops: {noop: {handler: 'noop_loop:noop'}}", "stages:"]
    for i in range(stages):
        trigger = "{manual: {approval_required: false}}"
        if i:
            trigger = f"{{on_completion: {{stage: s{i - 1}}}}}"
        lines += [f"  - name: s{i}", "    loop: noop", f"    triggers: [{trigger}]"]
    (home / "chain.yaml").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, TASKDAEMON_HOME=str(home), PYTHONPATH=f"{SRC}{os.pathsep}{home}")
    env.pop("TASKDAEMON_SPAN_SOURCE", None)

    def run(*args: str, cwd: Path) -> str:
        done = subprocess.run(
            [str(TASKDAEMON), "run", "-q", *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    big = run(str(home / "chain.yaml"), cwd=home)
    small = run("examples/feature_delivery.yaml", "--auto-approve", "-i", "goal=x", cwd=ROOT)
    return {"big": big, "small": small}


def _spans(home: Path, ids: dict[str, str]) -> dict[str, list[Any]]:
    from taskdaemon.pipeline.replay.timeline import spans_at
    from taskdaemon.pipeline.tracking.store import SpanStore

    with SpanStore(home / "spans.db") as store:
        big, small = store.get_trace(ids["big"]), store.get_trace(ids["small"])
    root = min(big, key=lambda s: s.start_ns)
    assert root.end_ns is not None
    middle = root.start_ns + (root.end_ns - root.start_ns) // 2
    return {"big-ended": big, "big-live": spans_at(big, middle), "small": small}


def _child(home: Path, ids: dict[str, str], rounds: int, reps: int, only: str | None) -> None:
    from taskdaemon.pipeline.tracking import reconstruct_run

    spans = _spans(home, ids)
    times: dict[str, list[float]] = {case: [] for case in CASES}
    repeat = {"big-ended": 1, "big-live": 1, "small": reps}
    for _ in range(rounds):
        for case in CASES if only is None else (only,):
            begin = time.perf_counter()
            for _ in range(repeat[case]):
                reconstruct_run(spans[case])
            times[case].append(time.perf_counter() - begin)
    print(json.dumps({case: statistics.median(v) * 1000 for case, v in times.items() if v}))


def _child_command(home: Path, ids: dict[str, str], *extra: str) -> list[str]:
    return [sys.executable, __file__, "--child", str(home), "--ids", json.dumps(ids), *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=1000)
    parser.add_argument("--small", type=int, default=2000, help="rebuilds of the small run")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, json.loads(args.ids), args.rounds, args.small, args.only)
        return
    trees = {"this": str(SRC)}
    if args.baseline:
        trees["baseline"] = str(Path(args.baseline).resolve())
    with tempfile.TemporaryDirectory(prefix="reconstruct-") as name:
        home = Path(name)
        ids = _record(home, args.stages)
        print(f"recorded: a {args.stages}-stage chain and feature_delivery ({ids})")
        if args.instructions:
            _instructions(home, ids, trees)
        else:
            _timings(home, ids, trees, args)


def _figures(figures: dict[str, float], unit: str) -> str:
    """Each tree's figure, and this tree's against the baseline's when there is one."""
    places = 0 if not unit else 2  # counts are whole
    shown = "  ".join(f"{label} {value:,.{places}f}{unit}" for label, value in figures.items())
    if "baseline" in figures:
        shown += f"  this/baseline {figures['this'] / figures['baseline']:.3f}"
    return shown


def _instructions(home: Path, ids: dict[str, str], trees: dict[str, str]) -> None:
    sys.path.insert(0, str(HERE))
    from engine_stage_instructions import instructions

    for case in CASES:
        counts = {}
        for label, src in trees.items():
            env = dict(os.environ, PYTHONPATH=src)
            runs = [
                instructions(
                    _child_command(home, ids, "--rounds", str(n), "--small", "1", "--only", case),
                    env,
                )
                for n in (1, 2)
            ]
            counts[label] = float(runs[1] - runs[0])
        print(f"{case:<10} instructions of one rebuild: {_figures(counts, '')}")


def _timings(
    home: Path, ids: dict[str, str], trees: dict[str, str], args: argparse.Namespace
) -> None:
    results: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    for _ in range(args.rounds):
        for label, src in trees.items():
            env = dict(os.environ, PYTHONPATH=src)
            command = _child_command(home, ids, "--rounds", "3", "--small", str(args.small))
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[label].append(json.loads(done.stdout))
    for case in CASES:
        medians = {
            label: statistics.median(r[case] for r in rows) for label, rows in results.items()
        }
        what = f"{args.small} rebuilds" if case == "small" else "one rebuild"
        print(f"{case:<10} {what}, median of {args.rounds}: {_figures(medians, ' ms')}")


if __name__ == "__main__":
    main()
