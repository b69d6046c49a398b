"""Slips of a pipeline's author, through the real ``taskdaemon validate``: one line each, on
the slip's own line. Before, a stage with both ``command:`` and ``handler:`` was said to miss
its loop type ("loop: missing required field (or exactly one of handler and command)"), a
misspelt ``Command:`` was said twice (its "did you mean" and that same missing field), and a
duration written ``10 m`` got the list of forms rather than the one to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

_STAGE = "  - name: a\n    {}\n    triggers: [{{manual: {{}}}}]\n"


def _validate(home: Path, path: Path) -> list[str]:
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    assert (2, "") == (done.returncode, done.stderr)
    return done.stdout.splitlines()


@pytest.mark.slow
def test_each_slip_is_one_line_on_its_own_line(home: Path, tmp_path: Path) -> None:
    stages = [
        "command: 'true'\n    handler: steps:run",
        "Command: 'true'",
        "command: 'true'\n    timeout: 10 m",
    ]
    text = "name: demo\nstages:\n" + "".join(
        _STAGE.format(body).replace("name: a", f"name: s{index}")
        for index, body in enumerate(stages)
    )
    path = write(tmp_path / "slips.yaml", text)
    assert [
        f"{path}:5: stages[0].handler: both command and handler given: keep one (a command "
        "runs in a shell, a handler is a Python module:function)",
        f"{path}:8: stages[1].Command: unknown key (did you mean 'command'?)",
        f"{path}:12: stages[2].timeout: invalid duration '10 m' (write 10m, without spaces)",
    ] == _validate(home, path)


@pytest.mark.slow
def test_a_toml_duration_with_a_space_says_the_string_to_write(home: Path, tmp_path: Path) -> None:
    text = (
        'name = "demo"\n[[stages]]\nname = "a"\ncommand = "true"\ntimeout = "1h 30 m"\n'
        "triggers = [{manual = {}}]\n"
    )
    path = write(tmp_path / "slips.toml", text)
    assert [
        f"{path}:5: stages[0].timeout: invalid duration '1h 30 m' (write \"1h30m\", without spaces)"
    ] == _validate(home, path)
