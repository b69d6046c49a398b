#!/usr/bin/env python3
"""Fuzz taskdaemon's readers of untrusted input for as long as you give it
(docs/input-limits.md, "Fuzzing"; the targets and the oracle are tests/fuzz_support.py's,
tests/fuzz_targets_support.py's, tests/fuzz_env_support.py's, tests/fuzz_store_support.py's and
tests/fuzz_wire_support.py's).

Usage: scripts/fuzz.py [--minutes 20] [--targets yaml,json,...] [--first-seed 0]
                       [--out /tmp/taskdaemon-fuzz] [--case-seconds 10] [--memory-mib 2048]

The minutes are shared evenly by the targets. Each target runs in a child process under an
address-space limit, each case under an alarm; a child that crashes, runs out of memory or
stops answering for three times the case limit is one finding (the case it was on), and the
target goes on from the next seed. Each distinct finding (target, exception, innermost frame
of taskdaemon) is written once to the output folder as ``<target>-<seed>.txt``, the case
itself beside it for a pipeline file, with what ``taskdaemon validate --no-resolve`` answers
to that file. A case is a function of its seed: ``fuzz_support.case(TARGETS[name](), seed)``
(``fuzz_wire_support.TARGETS``)
makes it again. Not part of CI: ``tests/reliability_fuzz_test.py`` runs a fixed slice.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))


class CaseTimeoutError(BaseException):
    """A case ran past its alarm (a BaseException: no ``except Exception`` swallows it)."""


def _where(error: BaseException) -> str:
    error = error.__cause__ or error  # a target's own error says what it caught
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if "/taskdaemon/" in frame.filename] or frames
    if not ours:
        return "?"
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno}"


def child(name: str, first: int, case_seconds: float) -> None:
    """Run ``name``'s cases from seed ``first`` on; one JSON line per seed started and per
    finding, on stdout."""
    import fuzz_support  # noqa: PLC0415 - after sys.path holds the checkout
    from fuzz_wire_support import TARGETS  # noqa: PLC0415

    target = TARGETS[name]()

    def alarm(*_: object) -> None:
        raise CaseTimeoutError

    signal.signal(signal.SIGALRM, alarm)
    seed = first
    while True:
        print(json.dumps({"seed": seed}), flush=True)
        made = fuzz_support.case(target, seed)
        signal.setitimer(signal.ITIMER_REAL, case_seconds)
        try:
            target.run(made)
        except target.allowed:
            pass
        except (Exception, CaseTimeoutError) as error:  # the oracle: anything else is a finding
            kind = "timeout" if isinstance(error, CaseTimeoutError) else type(error).__name__
            where = "" if kind == "timeout" else _where(error)
            finding = {"seed": seed, "kind": kind, "where": where, "error": str(error)[:300]}
            print(json.dumps({**finding, "case": repr(made)[:5000]}), flush=True)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        seed += 1


def _limit(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.nice(10)


def _confirm(name: str, seed: int, out: Path) -> str:
    """What the real command answers to a pipeline file case: its exit code and first lines."""
    import fuzz_support  # noqa: PLC0415

    if name not in ("yaml", "json", "toml"):
        return ""
    text = fuzz_support.case(fuzz_support.TARGETS[name](), seed)
    path = out / f"{name}-{seed}.{name}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    done = subprocess.run(
        [TASKDAEMON, "validate", "--no-resolve", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = (done.stdout + done.stderr).splitlines()
    return f"taskdaemon validate --no-resolve {path}: exit {done.returncode}\n" + "\n".join(
        lines[-6:]
    )


def campaign(name: str, args: argparse.Namespace, seen: set[tuple[str, ...]]) -> int:
    """Fuzz ``name`` for its share of the time; the number of seeds tried."""
    deadline = time.monotonic() + args.minutes * 60 / len(args.targets)
    seed, tried = args.first_seed, 0
    while time.monotonic() < deadline:
        with tempfile.TemporaryFile() as errors:  # the child's stderr: why it died, if it does
            last = _child_run(name, seed, deadline, errors, args=args, seen=seen)
        tried += last - seed + 1
        seed = last + 1
    return tried


def _child_run(
    name: str,
    seed: int,
    deadline: float,
    errors: IO[bytes],
    *,
    args: argparse.Namespace,
    seen: set[tuple[str, ...]],
) -> int:
    """One child from ``seed`` until the deadline, its death or its silence; the last seed."""
    command = [sys.executable, __file__, "--child", name, str(seed), str(args.case_seconds)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=errors,
        preexec_fn=lambda: _limit(args.memory_mib * 1024 * 1024),  # noqa: PLW1509
    )
    assert process.stdout is not None
    pipe = process.stdout.fileno()
    os.set_blocking(pipe, False)
    current, last, buffer = seed, time.monotonic(), b""
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        buffer += _available(pipe)
        if b"\n" in buffer:
            last = time.monotonic()
            *lines, buffer = buffer.split(b"\n")
            current = _records(name, lines, seen, args.out, current)
        if time.monotonic() - last > 3 * args.case_seconds:
            break  # hung where the alarm cannot reach (inside C code)
    ended = process.poll() is not None
    if not ended:
        process.kill()
    process.wait()
    lines = (buffer + _available(pipe)).split(b"\n")
    current = _records(name, lines[:-1], seen, args.out, current)  # whole lines only
    process.stdout.close()
    if ended or time.monotonic() < deadline:
        errors.seek(0)
        why = f"exit {process.returncode}: " + errors.read()[-2000:].decode(errors="replace")
        record = {"seed": current, "kind": "crash" if ended else "hang", "where": "", "error": why}
        _report(name, record, seen, args.out)
    return current


def _available(pipe: int) -> bytes:
    try:
        return os.read(pipe, 1 << 20)
    except BlockingIOError:
        return b""


def _records(
    name: str, lines: list[bytes], seen: set[tuple[str, ...]], out: Path, current: int
) -> int:
    """Report the findings among the child's ``lines``; the last seed they name."""
    for line in lines:
        record = json.loads(line)
        current = record["seed"]
        if "kind" in record:
            _report(name, record, seen, out)
    return current


def _report(name: str, record: dict[str, Any], seen: set[tuple[str, ...]], out: Path) -> None:
    key = (name, record["kind"], record["where"])
    if key in seen:
        return
    seen.add(key)
    text = json.dumps(record, indent=1) + "\n" + _confirm(name, record["seed"], out) + "\n"
    (out / f"{name}-{record['seed']}.txt").write_text(text, encoding="utf-8")
    print(f"FINDING {name} seed {record['seed']}: {record['kind']} at {record['where']}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        name, first, seconds = sys.argv[2:5]
        child(name, int(first), float(seconds))
        return
    from fuzz_wire_support import TARGETS  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, default=20.0, help="the whole run, shared by the targets (20)"
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        metavar="NAME,...",
        help=f"the targets (default all: {', '.join(TARGETS)})",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="SEED",
        help="each target's first case (0); a case is its seed",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir(), "taskdaemon-fuzz"),
        metavar="DIR",
        help="the folder the findings are written to (%(default)s)",
    )
    parser.add_argument(
        "--case-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="the alarm on each case (10)",
    )
    parser.add_argument(
        "--memory-mib",
        type=int,
        default=2048,
        metavar="MIB",
        help="each target's address-space limit (2048)",
    )
    args = parser.parse_args()
    args.targets = args.targets.split(",")
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"no such target: {', '.join(unknown)}")
    args.out.mkdir(mode=0o700, parents=True, exist_ok=True)
    seen: set[tuple[str, ...]] = set()
    for name in args.targets:
        started = time.monotonic()
        tried = campaign(name, args, seen)
        print(f"{name}: {tried} cases in {time.monotonic() - started:.0f} s", flush=True)
    print(f"{len(seen)} distinct findings in {args.out}")


if __name__ == "__main__":
    main()
