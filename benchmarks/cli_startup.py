"""CLI start-up: each command timed as a whole process, side by side with ``python -c pass``.

Run: ``python benchmarks/cli_startup.py [--rounds 11] [--quick] [--baseline TREE]``.

Commands (the target is a median at or below 150 ms for each):

* ``taskdaemon --version``;
* ``taskdaemon validate examples/feature_delivery.yaml`` (CEL conditions, Python handlers
  resolved, from the repository root);
* ``taskdaemon runs list``, ``taskdaemon runs show RUN`` and ``taskdaemon report`` over a
  store of a few runs;
* ``taskdaemon dag examples/feature_delivery.yaml``;
* ``taskdaemon run startup.yaml`` *up to its first stage start*: the one stage's handler writes
  the wall-clock time it was called to a file; the figure is that time minus the time just
  before the process was spawned. The rest of the run (its end, the telemetry flush) is shown
  as ``run (whole)`` for information.

Two rows give the floor of ``run``, what the interpreter and its libraries cost before any of
taskdaemon's code (measured as processes too, with the same interpreter): ``python -c "import
asyncio, yaml, argparse"`` and the same plus ``asyncio.run`` of an empty coroutine, the event
loop's start and close that ``run`` also pays. ``run`` cannot go below the second; the last
lines of the table give ``run`` (to its first stage) over that floor: taskdaemon's own share.
(The floor's ``import yaml`` compiles PyYAML's non-printable pattern the slow way, which
``run`` does not: ``yaml_import.py``; so that share is understated by those few ms.)
(The other commands import no asyncio: their floor is ``python -c pass`` and what they parse.)

Two figures per command: wall time (the target's measure) and CPU time (user + system of the
process; for ``run``, of the process up to the stage start, read by the handler). On a machine
shared with other work, wall time includes waiting for a CPU while CPU time mostly does not, so
the CPU column and its ratio to ``python -c pass`` are the steadier comparison there.

Everything runs in a temporary ``TASKDAEMON_HOME`` prepared here (three runs of the trivial
pipeline fill its span store), with ``TASKDAEMON_*``/``OTEL_*`` variables removed from the
environment so the defaults apply. Each round runs every command once, in the same order, so a
machine whose load changes spreads it over all commands alike; the first round is a warm-up
(byte-code caches) and is not counted.

``--baseline TREE`` times every command a second time in each round with ``PYTHONPATH`` at
``TREE/src`` (another checkout of the project, e.g. ``git worktree add /tmp/main main``), same
interpreter, a home and store of its own (an older tree may refuse a newer store), interleaved
with this tree's (``validate`` and ``dag`` from TREE's root, so each tree reads its own example
and handler module): its rows follow, and the last column gives this tree's median over the
baseline's (below 1.0: faster), a ratio that stays readable on a loaded machine. The two trees
take turns going first, round by round, and a last block gives, per command, the median of the
per-round differences of CPU time (this tree minus the baseline, the same round) with a 95%
confidence interval of that median (order statistics): a VM whose speed drifts moves both
sides of a round alike, so these resolve a few milliseconds where the medians' ranges overlap.
``--run-only`` times ``run`` alone (and ``python -c pass``), for many rounds of one change.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0

PIPELINE = """\
name: startup
loops:
  mark: {handler: "startup_marker:mark"}
stages:
  - name: first
    loop: mark
    triggers:
      - manual: {approval_required: false}
"""

MARKER = """\
import os
import resource
import time


def mark(ctx):
    now = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["CLI_STARTUP_MARKER"], "w") as out:
        out.write(f"{now!r} {usage.ru_utime + usage.ru_stime!r}")
    return {}
"""


def _taskdaemon() -> list[str]:
    """The console script beside this interpreter (what a user types), else ``-m``."""
    script = Path(sys.executable).with_name("taskdaemon")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "taskdaemon.pipeline.cli"]


def _environment(home: Path, tree: Path) -> dict[str, str]:
    """The environment of a command: defaults only, this home, the package from ``tree``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TASKDAEMON_", "OTEL_", "PYTHON"))
    }
    env["TASKDAEMON_HOME"] = str(home)
    env["PYTHONPATH"] = str(tree / "src")
    return env


Sample = tuple[float, float]  # (wall seconds, CPU seconds)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], *, cwd: Path, env: dict[str, str]) -> Sample:
    """Wall seconds from just before the spawn to the exit, and the process's CPU seconds;
    raises on a non-zero exit."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed, _children_cpu() - cpu


def _timed_run(argv: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[Sample, Sample]:
    """(to the first stage's start, to the process's exit) of one run."""
    marker = cwd / "marker.txt"
    marker.unlink(missing_ok=True)
    env = {**env, "CLI_STARTUP_MARKER": str(marker)}
    wall = time.time()
    whole = _timed(argv, cwd=cwd, env=env)
    at, cpu = (float(field) for field in marker.read_text().split())
    return (at - wall, cpu), whole


#: (label, ``python -c`` code): the interpreter and libraries floor of ``run``.
FLOOR = (
    ("floor: import asyncio, yaml, argparse", "import asyncio, yaml, argparse"),
    (
        "floor: the same + asyncio.run(empty)",
        "import asyncio, yaml, argparse\nasync def empty(): pass\nasyncio.run(empty())",
    ),
)


def _paired(ours: list[Sample], baseline: list[Sample]) -> tuple[float, float, float]:
    """Median of the per-round CPU differences (ms), and the 95% confidence interval of that
    median: the order statistics ``n/2 -+ 0.98 sqrt(n)`` (the sign test's normal bound)."""
    diffs = sorted((mine[1] - base[1]) * 1000 for mine, base in zip(ours, baseline, strict=True))
    count = len(diffs)
    half = 0.98 * count**0.5
    low = diffs[max(int(count / 2 - half), 0)]
    high = diffs[min(int(count / 2 + half), count - 1)]
    return statistics.median(diffs), low, high


def _medians(samples: list[Sample]) -> Sample:
    return (
        statistics.median(wall for wall, _ in samples) * 1000,
        statistics.median(cpu for _, cpu in samples) * 1000,
    )


def _row(
    name: str,
    samples: list[Sample],
    python: Sample | None,
    target: bool,
    *,
    versus: Sample | None = None,
    width: int = 30,
) -> str:
    """One table row: medians and ranges, ratios to ``python -c pass``, the verdict, and with
    ``versus`` (this command's baseline medians) wall and CPU over the baseline's."""
    walls = [wall * 1000 for wall, _ in samples]
    cpus = [cpu * 1000 for _, cpu in samples]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    ratios = f"{wall / python[0]:5.1f}x {cpu / python[1]:5.1f}x" if python else " " * 13
    verdict = ""
    if target:
        verdict = "ok" if wall <= TARGET_MS else f"OVER {TARGET_MS:.0f} ms"
    if versus is not None:
        verdict = f"{verdict:<12} {wall / versus[0]:5.2f} {cpu / versus[1]:5.2f}"
    return (
        f"  {name:<{width}} {wall:7.1f} ({min(walls):6.1f}-{max(walls):6.1f})"
        f" {cpu:7.1f} ({min(cpus):6.1f}-{max(cpus):6.1f})  {ratios}  {verdict}"
    ).rstrip()


def _python(code: str, env: dict[str, str]) -> Callable[[], Sample]:
    """Times ``python -c code`` (this interpreter, ``env``)."""
    return lambda: _timed([sys.executable, "-c", code], cwd=ROOT, env=env)


def _commands(
    cli: list[str], work: Path, env: dict[str, str], run_id: str, tree: Path
) -> list[tuple[str, Callable[[], Sample], bool]]:
    """(name, measure, has the target) of each command but ``run``, run with ``env``;
    ``validate`` and ``dag`` from ``tree``'s root (its own example, whose handler module
    ``validate`` imports), or from this one's if ``tree`` has no example."""
    example = "examples/feature_delivery.yaml"
    root = tree if (tree / example).is_file() else ROOT
    return [
        ("taskdaemon --version", lambda: _timed([*cli, "--version"], cwd=ROOT, env=env), True),
        (
            "validate feature_delivery.yaml",
            lambda: _timed([*cli, "validate", example], cwd=root, env=env),
            True,
        ),
        ("runs list", lambda: _timed([*cli, "runs", "list"], cwd=work, env=env), True),
        (
            "runs show RUN",
            lambda: _timed([*cli, "runs", "show", run_id], cwd=work, env=env),
            True,
        ),
        ("report", lambda: _timed([*cli, "report"], cwd=work, env=env), True),
        (
            "dag feature_delivery.yaml",
            lambda: _timed([*cli, "dag", example], cwd=root, env=env),
            True,
        ),
    ]


def main() -> int:
    """Prepare the store, time every command ``--rounds`` times, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11, help="counted rounds (default 11)")
    parser.add_argument("--quick", action="store_true", help="3 rounds (a smoke pass)")
    parser.add_argument(
        "--run-only", action="store_true", help="time run alone (and python -c pass)"
    )
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        type=Path,
        help="also time the checkout at TREE (its src/ on PYTHONPATH), side by side",
    )
    options = parser.parse_args()
    rounds = 3 if options.quick else options.rounds
    baseline_tree: Path | None = options.baseline
    if baseline_tree is not None and not (baseline_tree / "src" / "taskdaemon").is_dir():
        parser.error(f"--baseline {baseline_tree}: no src/taskdaemon there")

    with tempfile.TemporaryDirectory(prefix="taskdaemon-startup-") as tmp:
        work = Path(tmp)
        (work / "startup.yaml").write_text(PIPELINE)
        (work / "startup_marker.py").write_text(MARKER)
        env = _environment(work / "home", ROOT)
        cli = _taskdaemon()
        run_argv = [*cli, "run", "startup.yaml", "--quiet"]

        def filled(tree_env: dict[str, str]) -> str:
            """Three runs into the home's store (and a warm byte-code cache): a run id."""
            for _ in range(3):
                _timed_run(run_argv, cwd=work, env=tree_env)
            listed = subprocess.run(
                [*cli, "runs", "list", "--json"],
                cwd=work,
                env=tree_env,
                capture_output=True,
                check=True,
            )
            return str(json.loads(listed.stdout)[0]["run_id"])

        trees = [("", env, ROOT, filled(env))]
        if baseline_tree is not None:
            # A home of its own: an older tree may not open a store this one wrote.
            baseline_env = _environment(work / "baseline-home", baseline_tree.resolve())
            trees.append(
                ("baseline: ", baseline_env, baseline_tree.resolve(), filled(baseline_env))
            )
        python: list[tuple[str, Callable[[], Sample], bool]] = [
            (label, _python(code, env), False)
            for label, code in (("python -c pass", "pass"), *([] if options.run_only else FLOOR))
        ]
        per_tree = [
            [
                (f"{prefix}{name}", measure, target)
                for name, measure, target in _commands(cli, work, tree_env, run_id, tree)
            ]
            for prefix, tree_env, tree, run_id in trees
        ]
        if options.run_only:
            per_tree = [[] for _ in trees]
        commands = python + [command for tree_commands in per_tree for command in tree_commands]
        samples: dict[str, list[Sample]] = {name: [] for name, _, _ in commands}
        for prefix, *_ in trees:
            samples[f"{prefix}run (to first stage start)"] = []
            samples[f"{prefix}run (whole, for information)"] = []
        for index in range(rounds + 1):
            for name, measure, _ in python:
                value = measure()
                if index:
                    samples[name].append(value)
            # The trees take turns going first.
            order = range(len(trees)) if index % 2 else range(len(trees) - 1, -1, -1)
            for turn in order:
                prefix, tree_env, *_ = trees[turn]
                for name, measure, _ in per_tree[turn]:
                    value = measure()
                    if index:
                        samples[name].append(value)
                to_stage, whole = _timed_run(run_argv, cwd=work, env=tree_env)
                if index:
                    samples[f"{prefix}run (to first stage start)"].append(to_stage)
                    samples[f"{prefix}run (whole, for information)"].append(whole)

    _report(samples, commands, trees, rounds, baseline_tree)
    return 0


def _report(
    samples: dict[str, list[Sample]],
    commands: list[tuple[str, Callable[[], Sample], bool]],
    trees: list[tuple[str, dict[str, str], Path, str]],
    rounds: int,
    baseline_tree: Path | None,
) -> None:
    """Print the table, the paired differences (with a baseline) and run's share over the
    floor (when the floor was timed)."""
    targets = {name for name, _, target in commands if target}
    targets |= {f"{prefix}run (to first stage start)" for prefix, *_ in trees}
    python_pass = _medians(samples["python -c pass"])
    print(f"median (range) of {rounds} rounds, ms; ratios to python -c pass; target <= 150 ms wall")
    print(f"  {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    width = max(map(len, samples))
    columns = f"{'wall':>7} {'(range)':<15} {'cpu':>7} {'(range)':<15}  wall/  cpu/"
    header = f"  {'command':<{width}} {columns}"
    if baseline_tree is not None:
        header += f"{'':16}vs baseline: wall   cpu"
        print(f"  baseline: {baseline_tree}")
    print(header)
    for name, values in samples.items():
        versus = None
        if baseline_tree is not None and f"baseline: {name}" in samples:
            versus = _medians(samples[f"baseline: {name}"])
        ratio_to = None if name == "python -c pass" else python_pass
        print(_row(name, values, ratio_to, name in targets, versus=versus, width=width))
    if baseline_tree is not None:
        print("  per round, this tree's CPU minus the baseline's: median (95% CI), ms")
        for name, values in samples.items():
            if f"baseline: {name}" in samples:
                middle, low, high = _paired(values, samples[f"baseline: {name}"])
                print(f"    {name:<{width - 4}} {middle:+7.2f} ({low:+7.2f} {high:+7.2f})")
    if FLOOR[-1][0] in samples:
        floor = _medians(samples[FLOOR[-1][0]])
        print(f"  run to its first stage over the floor ({FLOOR[-1][0][7:]}): taskdaemon's own")
        for prefix, *_ in trees:
            wall, cpu = _medians(samples[f"{prefix}run (to first stage start)"])
            own = f"{wall - floor[0]:6.1f} ms wall {cpu - floor[1]:6.1f} ms cpu"
            print(f"    {prefix or 'this tree: '}{own}")


if __name__ == "__main__":
    sys.exit(main())
