"""Breakpoints from the command line (``cli/breakpoints.py``): ``--break STAGE[:CEL]`` and
``TASKDAEMON_BREAKPOINTS``, refused in one bounded line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon

PIPELINE = """\
name: one
stages:
  - name: a
    command: "true"
    triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["a:" + "x" * 100_000, "b" * 100_000], ids=["cel", "stage"])
def test_a_long_refused_breakpoint_is_one_short_line(home: Path, spec: str) -> None:
    """``debug --break`` with a 100,000-character condition that does not compile, or stage
    name, exits 2 with one line that quotes the spec cut, not whole."""
    path = home / "one.yaml"
    path.write_text(PIPELINE)
    done = taskdaemon(home, "debug", str(path), "--break", spec, "-q")
    lines = done.stderr.splitlines()
    assert (2, 1, True) == (done.returncode, len(lines), len(lines[0]) < 400), done.stderr[:400]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "debug"])
def test_a_breakpoint_condition_reading_what_the_pipeline_lacks_exits_2(
    home: Path, command: str
) -> None:
    """``--break`` whose condition reads a stage the pipeline does not have, and a
    ``TASKDAEMON_BREAKPOINTS`` one reading an input the stage does not declare, could never
    hold (they were set, and the run went by them): each is one line, exit 2."""
    path = home / "one.yaml"
    path.write_text(PIPELINE)
    by_option = taskdaemon(home, command, str(path), "--break", "a:stages.zz.outputs.x == 1")
    by_env = taskdaemon(
        home, command, str(path), TASKDAEMON_BREAKPOINTS="a:inputs.nosuch > 1", stdin=""
    )
    assert (2, 2) == (by_option.returncode, by_env.returncode)
    assert [
        "taskdaemon "
        f"{command}: --break 'a:stages.zz.outputs.x == 1': breakpoint condition reads "
        "stage 'zz', which the pipeline does not have (stages: a)"
    ] == by_option.stderr.splitlines()
    assert [
        f"taskdaemon {command}: TASKDAEMON_BREAKPOINTS 'a:inputs.nosuch > 1': breakpoint "
        "condition reads input 'nosuch', which stage 'a' does not declare (inputs: none)"
    ] == by_env.stderr.splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["", " :inputs.x > 1"])
def test_a_breakpoint_without_a_stage_asks_for_one(home: Path, spec: str) -> None:
    """``--break ''`` (or a condition with no stage before its ``:``) says a stage name is
    needed, naming the stages: it said ``no stage ''``, as if one called '' had been sought."""
    path = home / "one.yaml"
    path.write_text(PIPELINE)
    done = taskdaemon(home, "run", str(path), "--break", spec)
    said = f"taskdaemon run: --break {spec!r}: a stage name is needed (stages: a)"
    assert (2, [said]) == (done.returncode, done.stderr.splitlines())


@pytest.mark.slow
def test_more_breakpoints_than_a_session_keeps_are_refused_before_the_run(home: Path) -> None:
    """256 from ``TASKDAEMON_BREAKPOINTS`` and ``--break-on-failure`` are one too many: one line,
    exit 2, nothing run. Before, every one was set, however many (20,000 fit in the variable),
    and the run went on."""
    path = home / "one.yaml"
    path.write_text(PIPELINE)
    env = ";".join(["a"] * 256)
    done = taskdaemon(
        home, "run", str(path), "--break-on-failure", TASKDAEMON_BREAKPOINTS=env, stdin=""
    )
    said = (
        "taskdaemon run: 257 breakpoints (--break, --break-on-failure and "
        "TASKDAEMON_BREAKPOINTS): at most 256"
    )
    assert (2, [said]) == (done.returncode, done.stderr.splitlines())
