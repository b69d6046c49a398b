"""``other_tools``: the keys of other tools' pipeline files, through ``taskdaemon validate``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write


@pytest.mark.slow
def test_validate_gives_the_line_to_write_for_other_tools_habits(
    home: Path, tmp_path: Path
) -> None:
    """GitHub Actions', GitLab's, Airflow's and Argo's words each get the taskdaemon line: they
    got only the list of allowed keys, or a "did you mean" at an unrelated key."""
    path = write(
        tmp_path / "habits.yaml",
        """\
        name: habits
        stages:
          - {name: build, command: "true", triggers: [{manual: {}}]}
          - {name: test, command: "true", triggers: [{on_success: build}]}
          - {name: notify, command: "true", triggers: [{on_failure: {stage: build}}]}
          - {name: clean, command: "true", triggers: [{always: build}]}
          - {name: lint, command: "true", triggers: [{on_completion: {stage: build, when: always}}]}
          - {name: nightly, command: "true", triggers: [{schedule: "0 3 * * *"}]}
          - name: deploy
            script: make deploy
            needs: [build, test]
            when: "stages.test.status == 'success'"
            retries: 3
            env: {TARGET: prod}
        """,
    )
    done = taskdaemon(home, "validate", str(path))
    unknown = f"{path}:{{}}: stages[{{}}].{{}}: unknown key ({{}})"
    expected = [
        unknown.format(4, 1, "triggers[0].on_success", "write on_completion: {stage: 'build'}"),
        unknown.format(
            5,
            2,
            "triggers[0].on_failure",
            """write on_condition: {expression: "stages.build.status == 'failure'"}, with """
            "error_strategy: continue",
        ),
        unknown.format(
            6,
            3,
            "triggers[0].always",
            "write on_completion: {stage: 'build', success_only: false}",
        ),
        unknown.format(
            7,
            4,
            "triggers[0].on_completion.when",
            "on_completion fires when the stage succeeds; success_only: false fires however "
            "it ends",
        ),
        unknown.format(
            8,
            5,
            "triggers[0].schedule",
            "a schedule is not a trigger: taskdaemon serve --pipeline FILE --every SECONDS "
            "starts a run every SECONDS",
        ),
        f"{path}:9: stages[6].loop: missing required field (or exactly one of handler and command)",
        f"{path}:9: stages[6].triggers: missing required field",
        unknown.format(10, 6, "script", "did you mean 'command'?"),
        unknown.format(
            11,
            6,
            "needs",
            "write triggers: [{on_completion: {stage: 'build'}}, {on_completion: {stage: "
            "'test'}}], with trigger_mode: all to wait for all",
        ),
        unknown.format(
            12,
            6,
            "when",
            """write triggers: [{on_condition: {expression: "stages.test.status == 'success'"}}]""",
        ),
        unknown.format(
            13, 6, "retries", "write retry: {max_attempts: 4}, the first attempt included"
        ),
        unknown.format(
            14,
            6,
            "env",
            "a command gets its inputs as TASKDAEMON_INPUT_<NAME> variables: inputs: {NAME: CEL}",
        ),
    ]
    assert (2, expected) == (done.returncode, done.stdout.splitlines()), done.stderr
