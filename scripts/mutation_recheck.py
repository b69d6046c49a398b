#!/usr/bin/env python3
"""Run again, alone and with a longer limit, each mutant mutmut stopped by its time limit, and
record it by what its tests then say (docs/mutation.md, "Running it").

Usage: scripts/mutation_recheck.py WORK SOURCE  (run by scripts/mutation.sh after mutmut)

``WORK`` is a module's scratch copy (``.mutation/<module>``), ``SOURCE`` the mutated file's path
in it (``src/taskdaemon/pipeline/x.py``). mutmut counts a *timeout* as killed, but its wall
limit, (the tests' time + 1 s) times ``timeout_multiplier``, is met under load by tests that
only ran slowly: mut51 found 8 of 19 such "kills" that passed when run again. Each is run here
on the tests mutmut mapped to its function (``mutants/mutmut-stats.json``), in a process of its
own, with a wall limit four times mutmut's and at least ``MUTATION_RECHECK_SECONDS`` (120). Its
pytest exit then replaces the timeout in ``mutants/<SOURCE>.meta``, where ``mutmut results``
and the score read it: 0 survived, 1 killed; a mutant stopped again keeps its timeout (it loops
or waits for ever, a real kill). Any other exit (pytest's usage or collection errors) keeps the
timeout and is said. One line a mutant goes to stdout. With ``MUTATION_NAMES`` set (names or
fnmatch patterns, as mutmut reads them) only the timeouts among those mutants are run again:
the others were run again by the run that tested them, and a run by name stops at no other.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

#: mutmut's exit codes for a mutant its CPU or wall limit stopped (``mutmut.stats``).
TIMEOUT_CODES = frozenset({24, -24, 152, 255, 36})
#: mutmut's ``timeout_constant`` and ``timeout_multiplier`` defaults.
TIMEOUT_CONSTANT, DEFAULT_MULTIPLIER = 1.0, 15.0
#: What a re-run's pytest exit becomes: its verdict's code and word.
VERDICTS = {0: (0, "survived"), 1: (1, "killed")}


def recheck(work: Path, source: str, floor: float, names: list[str] | None = None) -> Iterator[str]:
    """Re-run the timed-out mutants of ``source`` in ``work`` (only those ``names`` match, when
    given), yielding the line said of each as its verdict is written (a run of many takes
    minutes: each shows as it ends)."""
    meta_path = work / "mutants" / f"{source}.meta"
    meta = json.loads(meta_path.read_text())
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    timed_out = sorted(
        name
        for name, code in codes.items()
        if code in TIMEOUT_CODES
        and (not names or any(fnmatch.fnmatch(name, pattern) for pattern in names))
    )
    if not timed_out:
        return
    settings = tomllib.loads((work / "mutmut.toml").read_text())["tool"]["mutmut"]
    multiplier = float(settings.get("timeout_multiplier", DEFAULT_MULTIPLIER))
    stats = json.loads((work / "mutants" / "mutmut-stats.json").read_text())
    for name in timed_out:
        tests = sorted(stats["tests_by_mangled_function_name"][name.partition("__mutmut_")[0]])
        spent = sum(stats["duration_by_test"].get(test, 0.0) for test in tests)
        limit = max(floor, 4 * (spent + TIMEOUT_CONSTANT) * multiplier)
        exit_code, seconds = _run(work, name, tests, settings["pytest_add_cli_args"], limit)
        if exit_code in VERDICTS:
            codes[name], word = VERDICTS[exit_code]
        elif exit_code is None:
            word = "timeout again"
        else:
            word = f"timeout kept (pytest exited {exit_code})"
        meta_path.write_text(json.dumps(meta, indent=4))  # each verdict kept as it comes
        yield f"{name}: {word} ({seconds:.0f} s of {limit:.0f} s)"


def _run(
    work: Path, name: str, tests: list[str], pytest_args: list[str], limit: float
) -> tuple[int | None, float]:
    """pytest's exit code for ``tests`` against mutant ``name`` (None: stopped at ``limit``),
    and the seconds it took. The process group is killed at the limit, children too."""
    env = dict(os.environ, MUTANT_UNDER_TEST=name)
    command = [sys.executable, "-m", "pytest", "--rootdir=.", "--tb=no", "-x", *pytest_args]
    started = time.monotonic()
    with subprocess.Popen(
        [*command, *tests],
        cwd=work / "mutants",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as process:
        try:
            exit_code: int | None = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # the group ended in between
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            exit_code = None
    return exit_code, time.monotonic() - started


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: mutation_recheck.py WORK SOURCE", file=sys.stderr)
        return 2
    given = os.environ.get("MUTATION_RECHECK_SECONDS", "120")
    try:
        floor = float(given)
    except ValueError:
        floor = -1.0
    if not 0 < floor < float("inf"):
        print(
            f"mutation_recheck.py: MUTATION_RECHECK_SECONDS: not a number of seconds: {given!r}",
            file=sys.stderr,
        )
        return 2
    names = os.environ.get("MUTATION_NAMES", "").split()
    for line in recheck(Path(argv[0]), argv[1], floor, names):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
