"""A very large run read back: ``report``, ``dag --format svg`` and an ended run's web stream.

    .venv/bin/python benchmarks/big_runs.py [--stages 5000] [--rounds 3] [--baseline SRC]

One run of a fan-out (one stage, then ``--stages - 1`` started by its completion, no-op
``async`` Python handlers) is made by ``taskdaemon run -q`` into a fresh home's span store.
Each round then times, as subprocesses, with this tree's code and with ``--baseline SRC``
(another checkout's ``src``) interleaved (CPU: user + system of the child and of what it waited
for, ``dot`` included; wall: the child's whole life, what ``dot``'s bound sees; peak: its
maximum resident set, the figure ``/usr/bin/time -v`` gives):

- ``report -f html``, ``-f table`` and ``-f json`` over a window holding the run;
- ``dag --run ID --format svg -o FILE``, the command the web page names for a DAG too big to
  draw there (Graphviz's ``dot`` does most of that work);
- ``stream``: the web page's reads of an ended run (``web/_data.RunData``): the page's record,
  then, its CPU timed by the child itself, the stream route's check and its stream followed to
  its end.

Each line gives the median and range of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKDAEMON = [sys.executable, "-m", "taskdaemon.pipeline.cli"]
HANDLERS = "async def noop(ctx):\n    return None\n"


def fan_out(stages: int) -> str:
    """A fan-out of ``stages`` no-op stages as YAML."""
    lines = ["name: fan", "stages:"]
    for i in range(stages):
        lines += [f"  - name: s{i}", "    loop: python", "    handler: big_handlers:noop"]
        trigger = "manual: {approval_required: false}" if i == 0 else "on_completion: {stage: s0}"
        lines += ["    triggers:", f"      - {trigger}"]
    return "\n".join(lines) + "\n"


def child_env(home: Path, source: str, work: Path) -> dict[str, str]:
    """The environment of a child: ``home``, ``source`` first on its path, then ``work``."""
    return dict(os.environ, TASKDAEMON_HOME=str(home), PYTHONPATH=f"{source}:{work}")


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, float, int, str]:
    """Wall and CPU seconds, peak MiB and exit code of ``command``, and what it printed."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        said = out.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code, said


async def _stream(db: str, run_id: str) -> float:
    # Imported here: the parent times children, with this tree's code or the baseline's.
    from taskdaemon.pipeline.web._data import RunData

    data = RunData(source_url=f"sqlite:///{db}")
    try:
        await data.record(run_id)  # the run page's read, which keeps the ended run
        start = time.process_time()
        await data.snapshot(run_id)  # the stream route's check that the run exists
        async for _item in data.follow(run_id):
            pass
        return time.process_time() - start
    finally:
        data.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="SRC", help="another checkout's src directory")
    parser.add_argument("--stream-child", nargs=2, metavar=("DB", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_child:
        print(f"stream CPU {asyncio.run(_stream(*args.stream_child)):.3f}")
        return
    here = str(Path(__file__).resolve().parents[1] / "src")
    sources = {"this": here}
    if args.baseline:
        sources["base"] = str(Path(args.baseline).resolve())
    with tempfile.TemporaryDirectory(prefix="td-big-runs-") as folder:
        work = Path(folder)
        (work / "big_handlers.py").write_text(HANDLERS)
        (work / "fan.yaml").write_text(fan_out(args.stages))
        home = work / "home"
        env = child_env(home, here, work)
        run_id = subprocess.run(
            [*TASKDAEMON, "run", "-q", str(work / "fan.yaml")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()  # ``run -q`` prints the run id alone
        # A fixed window around the run: the report's bytes are the same from round to round.
        now = time.time()
        window = [
            *("--since", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400))),
            *("--until", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))),
        ]
        svg = str(work / "dag.svg")
        commands = {
            f"report {fmt}": [*TASKDAEMON, "report", *window, "-f", fmt, "-o", os.devnull]
            for fmt in ("html", "table", "json")
        }
        commands["dag svg"] = [*TASKDAEMON, "dag", "--run", run_id, "--format", "svg", "-o", svg]
        commands["stream"] = [
            sys.executable,
            __file__,
            "--stream-child",
            str(home / "spans.db"),
            run_id,
        ]
        figures: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        refused: dict[tuple[str, str], list[str]] = {}
        for _ in range(args.rounds):
            for name, command in commands.items():
                for tree, source in sources.items():
                    wall, cpu, peak, code, said = measured(command, child_env(home, source, work))
                    if code != 0:  # main's dag svg: dot past its bound
                        refused.setdefault((name, tree), []).append(said.strip())
                    elif name == "stream":  # the child's own figure: the page's read left out
                        cpu = float(said.split()[-1])
                    figures.setdefault((name, tree), []).append((wall, cpu, peak))
        print(f"{args.stages} stages, fan-out, {args.rounds} rounds: median (range)")
        for (name, tree), rows in figures.items():
            walls, cpus, peaks = ([row[i] for row in rows] for i in range(3))
            failed = refused.get((name, tree), [])
            print(
                f"  {name:<12} {tree:<4}  CPU {statistics.median(cpus):6.2f} s "
                f"({min(cpus):.2f}-{max(cpus):.2f})  wall {statistics.median(walls):6.2f} s "
                f"({min(walls):.2f}-{max(walls):.2f})  peak {statistics.median(peaks):6.1f} MiB"
                + (f"  {len(failed)} failed: {failed[0]}" if failed else "")
            )


if __name__ == "__main__":
    main()
