"""``scripts/mutation_recheck.py``: the mutants mutmut stopped by its time limit, run again alone
and recorded by what their tests then say (docs/mutation.md, "Running it")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mutation_recheck.py"

#: The test mutmut mapped to ``m.f``: it passes, fails or waits for ever by the mutant's number.
_TEST = """\
import os
import threading


def test_f():
    number = os.environ["MUTANT_UNDER_TEST"].rpartition("_")[2]
    assert number != "2"  # the mutant changes what the test reads: killed
    if number == "3":
        threading.Event().wait()  # the mutant waits for ever: a real timeout
"""


def _work(tmp_path: Path, codes: dict[str, int | None]) -> Path:
    """A module's scratch copy as mutmut leaves it: verdicts, the test map, the settings."""
    work = tmp_path / "work"
    (work / "mutants" / "src").mkdir(parents=True)
    (work / "mutants" / "tests").mkdir()
    (work / "mutants" / "tests" / "t_test.py").write_text(_TEST)
    meta = {"exit_code_by_key": codes, "durations_by_key": {}}
    (work / "mutants" / "src" / "m.py.meta").write_text(json.dumps(meta))
    stats = {
        "tests_by_mangled_function_name": {"m.x_f": ["tests/t_test.py::test_f"]},
        "duration_by_test": {"tests/t_test.py::test_f": 0.01},
    }
    (work / "mutants" / "mutmut-stats.json").write_text(json.dumps(stats))
    (work / "mutmut.toml").write_text(
        "[tool.mutmut]\ntimeout_multiplier = 0.1\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
    )
    return work


def _recheck(work: Path, seconds: str, names: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MUTATION_RECHECK_SECONDS=seconds, MUTATION_NAMES=names)
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(work), "src/m.py"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_each_timeout_is_recorded_as_what_its_tests_say_when_run_alone(tmp_path: Path) -> None:
    """Of two mutants mutmut stopped, the one whose test passes is a survivor, the one whose
    test fails is killed; the verdicts of the others are not touched. A mutant that waits for
    ever past the longer limit keeps its timeout (each of mutmut's three timeout codes)."""
    codes = {"m.x_f__mutmut_1": 36, "m.x_f__mutmut_2": 24, "m.x_f__mutmut_4": 0}
    work = _work(tmp_path / "a", {**codes, "m.x_f__mutmut_5": 1})
    done = _recheck(work, "60")  # a limit no pytest start reaches under load
    assert (done.returncode, done.stderr) == (0, "")
    said = [line.partition(" (")[0] for line in done.stdout.splitlines()]
    assert said == ["m.x_f__mutmut_1: survived", "m.x_f__mutmut_2: killed"]
    meta = json.loads((work / "mutants" / "src" / "m.py.meta").read_text())
    assert meta["exit_code_by_key"] == {
        "m.x_f__mutmut_1": 0,
        "m.x_f__mutmut_2": 1,
        "m.x_f__mutmut_4": 0,
        "m.x_f__mutmut_5": 1,
    }
    assert meta["durations_by_key"] == {}
    work = _work(tmp_path / "b", {"m.x_f__mutmut_3": 152})
    done = _recheck(work, "1")
    assert done.stdout.partition(" (")[0] == "m.x_f__mutmut_3: timeout again"
    meta = json.loads((work / "mutants" / "src" / "m.py.meta").read_text())
    assert meta["exit_code_by_key"] == {"m.x_f__mutmut_3": 152}


@pytest.mark.slow
def test_a_run_by_name_runs_again_only_the_timeouts_it_names(tmp_path: Path) -> None:
    """``MUTATION_NAMES`` (a name, or a pattern as mutmut reads it): only the timeouts among
    the mutants named are run again; another timeout, re-run by an earlier run, is kept."""
    codes = {"m.x_f__mutmut_1": 36, "m.x_f__mutmut_2": 24, "m.x_f__mutmut_3": 152}
    work = _work(tmp_path, codes)
    done = _recheck(work, "60", "m.x_f__mutmut_1 *_2 m.x_f__mutmut_9")
    assert (done.returncode, done.stderr) == (0, "")
    said = [line.partition(" (")[0] for line in done.stdout.splitlines()]
    assert said == ["m.x_f__mutmut_1: survived", "m.x_f__mutmut_2: killed"]
    meta = json.loads((work / "mutants" / "src" / "m.py.meta").read_text())
    assert meta["exit_code_by_key"] == {**codes, "m.x_f__mutmut_1": 0, "m.x_f__mutmut_2": 1}


@pytest.mark.parametrize("seconds", ["soon", "0", "inf", "nan"])
def test_a_limit_that_is_no_number_of_seconds_is_refused_in_one_line(
    tmp_path: Path, seconds: str
) -> None:
    """Nothing is run, and the verdicts stay as they were."""
    work = _work(tmp_path, {"m.x_f__mutmut_1": 36})
    done = _recheck(work, seconds)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"mutation_recheck.py: MUTATION_RECHECK_SECONDS: not a number of seconds: {seconds!r}\n"
    )
    meta = json.loads((work / "mutants" / "src" / "m.py.meta").read_text())
    assert meta["exit_code_by_key"] == {"m.x_f__mutmut_1": 36}
