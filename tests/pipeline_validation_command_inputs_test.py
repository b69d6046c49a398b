"""``validation``: a command that reads an input variable its stage does not set, through
``taskdaemon validate``."""

from __future__ import annotations

from pathlib import Path

from cli_support import taskdaemon, write


def test_a_misspelt_input_variable_is_refused_with_the_name_to_write(
    home: Path, tmp_path: Path
) -> None:
    """The shell reads an unset variable as empty: ``$TASKDAEMON_INPUT_NAEM`` ran with nothing,
    silently. A name no input sets is refused; the names inputs set (``user-name`` is
    ``USER_NAME``), with a default or not, pass."""
    path = write(
        tmp_path / "env.yaml",
        """\
        name: env
        stages:
          - name: greet
            command: echo "hello $TASKDAEMON_INPUT_NAEM"
            triggers: [{manual: {}}]
            inputs: {name: request.name}
          - name: bare
            command: echo "$TASKDAEMON_INPUT_X"
            triggers: [{manual: {}}]
          - name: fine
            command: echo "${TASKDAEMON_INPUT_USER_NAME:-x} $TASKDAEMON_INPUT_NAME"
            triggers: [{manual: {}}]
            inputs: {user-name: request.name, name: request.name}
        """,
    )
    done = taskdaemon(home, "validate", str(path))
    expected = [
        f"{path}:4: stages[0].command: reads 'TASKDAEMON_INPUT_NAEM', which no input sets (did "
        "you mean 'TASKDAEMON_INPUT_NAME'?)",
        f"{path}:8: stages[1].command: reads 'TASKDAEMON_INPUT_X', which no input sets (the "
        "stage has no inputs: inputs: {NAME: CEL} sets TASKDAEMON_INPUT_<NAME>)",
    ]
    assert (2, expected) == (done.returncode, done.stdout.splitlines()), done.stderr
