"""``taskdaemon replay RUN --break STAGE[:CEL]`` / ``--break-on-failure``: the replay under the
debugger's prompt, in a real pseudo-terminal and on a pipe; the fed stage and the reused
instances never pause. Real subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon
from replay_fan_support import failed_once
from terminal_support import on_a_terminal_of


@pytest.mark.slow
def test_a_replay_pauses_at_the_stage_that_failed_at_the_prompt(home: Path) -> None:
    """Replayed from ``c`` with ``--break c`` on a terminal: the prompt opens at the one
    instance that runs again (item 2), never at the fed ``a`` nor at the two reused
    instances; ``where`` and ``inputs`` answer as in ``debug FILE``, ``continue`` ends it."""
    original = failed_once(home)
    code, shown = on_a_terminal_of(
        120,
        home,
        "replay", original, "--from", "c", "--break", "c", "--break", "a", "-q",
        keys=b"where\ninputs\ncontinue\n\x04",
        cwd=home,
    )  # fmt: skip
    pauses = [line for line in shown if line.startswith("paused at ")]
    assert (0, ["paused at c.1.1 [c#1] (#1 before c (pipeline fan))"] * 2) == (code, pauses), shown
    # ``where``: the reused instances read ``reused`` once they started (their gate or start).
    said = [line.removeprefix("(taskdaemon) ") for line in shown]
    assert (True, True, True) == (
        any(line.startswith("  c  paused  (instances: ") for line in said),
        '{"n": 2}' in said,
        "run ended success" in said,
    ), shown
    assert "2\n" == (home / "ran.txt").read_text()


@pytest.mark.slow
def test_break_on_failure_pauses_a_replayed_failure_and_quit_cancels(home: Path) -> None:
    """The failure still there: ``--break-on-failure`` pauses item 2 after it fails again,
    with its error; ``quit`` cancels the replay (exit 1, as ``debug FILE``'s)."""
    original = failed_once(home)
    (home / "broken").touch()
    done = taskdaemon(
        home, "replay", original, "--from", "c", "--break-on-failure", "-q",
        cwd=home, stdin="where\nquit\n",
    )  # fmt: skip
    assert (1, True) == (
        done.returncode,
        "paused at c.1.1 [c#1] (failure: #1 on failure of any stage (pipeline fan)): broken"
        in done.stdout,
    ), done.stdout + done.stderr


@pytest.mark.slow
def test_a_bad_breakpoint_or_one_with_step_is_refused_before_anything_runs(home: Path) -> None:
    """A breakpoint on no stage is one line and exit 2, as for ``run`` and ``debug``;
    ``--step`` runs nothing, so ``--break`` with it is refused too."""
    original = failed_once(home)
    refused = [
        taskdaemon(home, "replay", original, "--from", "c", "--break", "z", cwd=home),
        taskdaemon(home, "replay", original, "--step", "--break", "c", cwd=home),
    ]
    assert [
        (2, ["taskdaemon replay: --break 'z': no stage 'z' (stages: a, c, d)"]),
        (2, [True]),
    ] == [
        (refused[0].returncode, refused[0].stderr.splitlines()),
        (refused[1].returncode, ["--step runs nothing" in refused[1].stderr]),
    ], [r.stderr for r in refused]
    assert "" == (home / "ran.txt").read_text()


@pytest.mark.slow
def test_where_shows_what_the_replay_did_not_run_as_such(home: Path) -> None:
    """``where`` at the pause and after the run ended: the fed ``a`` is ``replayed`` and the
    reused instances of ``c`` ``reused``, each from the original run, which the first line
    names; the instance that ran is ``success``. Before, all of them read ``success``, as if
    they had run."""
    original = failed_once(home)
    code, shown = on_a_terminal_of(
        140,
        home,
        "replay", original, "--from", "c", "--break", "c", "-q",
        keys=b"continue\nwhere\n\x04",
        cwd=home,
    )  # fmt: skip
    said = [line.removeprefix("(taskdaemon) ") for line in shown]
    start = len(said) - 1 - said[::-1].index("where")  # the answer's, not the typed echo's
    assert (0, said[start + 1 : start + 5]) == (
        code,
        [
            f"run {said[start + 1].split()[1]} success; replay of run {original}; slots 0/4 in use",
            f"  a  replayed  (from run {original})",
            f"  c  success  (instances: 2 reused, 1 success; reused from run {original})",
            "  d  success",
        ],
    ), shown


@pytest.mark.slow
def test_outputs_and_logs_name_what_the_replay_did_not_run_as_where_does(home: Path) -> None:
    """At the pause and after the run: ``outputs`` says the fed upstream ``a`` is
    ``replayed`` and a reused instance ``reused``, and ``logs c`` lists the reused instances
    as such, in ``where``'s words. Before, both said ``success`` (``a (success)``,
    ``c.0: success``), as if they had run."""
    original = failed_once(home)
    code, shown = on_a_terminal_of(
        140,
        home,
        "replay", original, "--from", "c", "--break", "c", "-q",
        keys=b"logs c\ncontinue\noutputs c#0\n\x04",
        cwd=home,
    )  # fmt: skip
    said = [line.removeprefix("(taskdaemon) ") for line in shown]
    logs = len(said) - 1 - said[::-1].index("logs c")  # the answer's, not the typed echo's
    assert (0, ["  c.0: reused (1 attempt)", "  c.1: paused (1 attempt)"]) == (
        code,
        said[logs + 1 : logs + 3],
    ), shown
    outputs = len(said) - 1 - said[::-1].index("outputs c#0")
    assert [
        'c#0 (reused): {"twice": 2}',
        "  upstream a (replayed): {}",
    ] == said[outputs + 1 : outputs + 3], shown
