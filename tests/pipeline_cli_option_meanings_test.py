"""Options that mean one thing on every command that takes them (docs/architecture.md,
"Command line"): ``-q`` (the run id alone on stdout), an age (its unit given), and
``replay``'s answer to ``run``'s approval options. Each through the real command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write

#: One stage that fails (exit 3): a run, a replay and a debugged run that fail.
_FAILING = """\
    name: failing
    stages:
      - name: boom
        command: "exit 3"
        triggers: [{manual: {approval_required: false}}]
"""

_RUN_ID = re.compile(r"[0-9a-f]{32}")


@pytest.mark.slow
def test_quiet_prints_the_run_id_and_a_failures_reason_alike_everywhere(
    home: Path, tmp_path: Path
) -> None:
    """``run -q``, ``replay -q`` and ``debug FILE -q`` of a run that fails: each ends its stdout
    with the run's id alone (``replay -q`` printed the summary, ``debug FILE -q`` nothing), its
    stderr is the one line giving the failure's reason, and the exit code is 1."""
    path = write(tmp_path / "failing.yaml", _FAILING)
    ran = taskdaemon(home, "run", "-q", str(path))
    original = ran.stdout.strip()
    replayed = taskdaemon(home, "replay", original, "-q")
    debugged = taskdaemon(home, "debug", str(path), "-q", stdin="")
    ids = [ran.stdout.strip(), replayed.stdout.strip(), debugged.stdout.splitlines()[-1]]
    said = [f"{done.stdout}{done.stderr}" for done in (ran, replayed, debugged)]
    assert [True] * 3 == [bool(_RUN_ID.fullmatch(run_id)) for run_id in ids], said
    assert len(set(ids)) == 3, said  # a replay and a debugged run are runs of their own
    assert [1, 1, 1] == [done.returncode for done in (ran, replayed, debugged)], said
    assert [
        [f"taskdaemon {command}: run {run_id} failure: stage 'boom' failure: command 'exit 3' "
         "exited with code 3"]
        for command, run_id in zip(("run", "replay", "debug"), ids, strict=True)
    ] == [done.stderr.splitlines() for done in (ran, replayed, debugged)], said  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--json", "--verify"], "-q prints only the run id, --json the report: give one"),
        (["--dry-run"], "--dry-run runs nothing: -q acts on a replay that runs"),
        (["--step"], "--step runs nothing: -q acts on a replay that runs"),
    ],
)
def test_quiet_is_refused_where_a_replay_prints_no_run_id(
    home: Path, tmp_path: Path, options: list[str], said: str
) -> None:
    """``-q`` with ``--json`` (a report on stdout), ``--dry-run`` or ``--step`` (no run): one
    line, exit 2, nothing on stdout; ``--step -q`` walked the run, printing it all."""
    original = taskdaemon(home, "run", "-q", str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)))
    done = taskdaemon(home, "replay", original.stdout.strip(), *options, "-q", stdin="")
    assert (2, "", [f"taskdaemon replay: {said}"]) == (
        done.returncode,
        done.stdout,
        done.stderr.splitlines(),
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--since", "7"],
        ["runs", "list", "--since", "7"],
        ["runs", "list", "--until", "7"],
        ["retention", "--max-age", "7"],
    ],
)
def test_a_bare_number_as_an_age_asks_for_its_unit(home: Path, argv: list[str]) -> None:
    """``report --since 7`` read 7 seconds, and said no runs were in its window to someone who
    meant 7 days; every option taking an age now refuses a bare number, asking its unit."""
    done = taskdaemon(home, *argv)
    assert (2, "", True) == (
        done.returncode,
        done.stdout,
        done.stderr.rstrip().endswith("not a duration: '7' (7 what? write 7s, 7m, 7h or 7d)"),
    ), done.stderr


def test_a_bare_zero_and_the_retention_variables_seconds_are_still_taken(home: Path) -> None:
    """Zero is zero in any unit (``retention --max-age 0``), and
    ``TASKDAEMON_RETENTION_MAX_AGE=90``, documented as seconds, still reads as seconds."""
    assert 0 == taskdaemon(home, "retention", "--max-age", "0").returncode
    listed = taskdaemon(home, "runs", "list", TASKDAEMON_RETENTION_MAX_AGE="90")
    assert 0 == listed.returncode, listed.stderr


@pytest.mark.parametrize(
    ("options", "option"),
    [(["--auto-approve"], "--auto-approve"), (["--approve", "deploy"], "--approve")],
)
def test_replay_says_why_it_takes_no_approval_option(
    home: Path, options: list[str], option: str
) -> None:
    """``replay --auto-approve`` (``run``'s option, given by habit) said only "unrecognized
    arguments"; it now says what a replay does at an approval instead, exit 2, before it looks
    for the run."""
    done = taskdaemon(home, "replay", "0123abcd", *options)
    assert (2, "", [
        f"taskdaemon replay: {option} is run's: a replay decides each approval as the recorded "
        "run's was decided, and rejects one that never was (no replay approves what nobody "
        "approved)"
    ]) == (done.returncode, done.stdout, done.stderr.splitlines())  # fmt: skip
