"""A misspelt stage or debugger command, typed where a newcomer first types one: ``logs
--stage``, ``replay --from`` and the debugger's prompt, end to end through the console script.
Each says the name meant, as ``validate`` does for a definition's misspelt stage (``did you
mean 'build'?``); before, the first two listed the stages and the prompt said only that
``help`` lists its commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

_TWO = """\
    name: two
    stages:
      - name: build
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: deploy
        command: "true"
        triggers: [{on_completion: {stage: build}}]
"""


@pytest.mark.slow
def test_a_misspelt_stage_of_a_stored_run_says_the_stage_meant(home: Path, tmp_path: Path) -> None:
    """``logs RUN --stage biuld`` and ``replay RUN --from deplyo`` each end with a "did you
    mean" after the stages they list, on their one error line; a name close to none (``zzz``)
    gets the list alone."""
    pipeline = write(tmp_path / "two.yaml", _TWO)
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    logs = taskdaemon(home, "logs", run_id, "--stage", "biuld")
    replay = taskdaemon(home, "replay", run_id, "--from", "deplyo")
    far = taskdaemon(home, "logs", run_id, "--stage", "zzz")
    assert [
        (
            1,
            f"taskdaemon logs: run {run_id} of pipeline 'two' has no stage 'biuld' "
            "(its stages: build, deploy); did you mean 'build'?\n",
        ),
        (
            2,
            "taskdaemon replay: no stage 'deplyo' in the definition (stages: build, deploy); "
            "did you mean 'deploy'?\n",
        ),
        (
            1,
            f"taskdaemon logs: run {run_id} of pipeline 'two' has no stage 'zzz' "
            "(its stages: build, deploy)\n",
        ),
    ] == [(done.returncode, done.stderr) for done in (logs, replay, far)]


@pytest.mark.slow
def test_a_misspelt_debugger_command_says_the_command_meant(home: Path, tmp_path: Path) -> None:
    """At the debugger's prompt, fed on a pipe, ``inptus`` is ``inputs`` misspelt; ``xyzzy``,
    close to no command, still points at ``help``."""
    pipeline = write(tmp_path / "two.yaml", _TWO)
    done = taskdaemon(
        home, "debug", str(pipeline), "--break", "deploy", stdin="inptus\nxyzzy\nquit\n"
    )
    said = [
        line
        for line in done.stdout.splitlines()
        if line.startswith(("(taskdaemon) ", "error: unknown command"))
    ]
    assert (
        1,
        [
            "(taskdaemon) inptus",
            "error: unknown command 'inptus' (did you mean 'inputs'?)",
            "(taskdaemon) xyzzy",
            "error: unknown command 'xyzzy' ('help' lists them)",
            "(taskdaemon) quit",
        ],
    ) == (done.returncode, said), done.stdout + done.stderr
