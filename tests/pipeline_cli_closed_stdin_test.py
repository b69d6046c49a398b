"""The prompts with stdin closed (``<&-``) and their output on a real terminal (a pty): they
end as on ``</dev/null``, at the end of their input, in one line, not a traceback.

Python makes a closed stdin ``None``, and the prompt's first look at it (``isatty``) was an
AttributeError traceback, exit 1 (``cli.main``: ``_closed_at_start``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli_faults_support import ended_run, on_a_terminal
from cli_support import TASKDAEMON

pytestmark = pytest.mark.slow

#: Runs ARGV with its stdin closed.
_STDIN_CLOSED = "import os, sys; os.close(0); os.execv(sys.argv[1], sys.argv[1:])"


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("replay", "{run}", "--step"), 0, "[1/"),
        (("debug", "attach", "{run}"), 3, "has ended (success)"),
    ],
    ids=["replay-step", "debug-attach"],
)
def test_a_prompt_with_stdin_closed_ends_as_at_the_end_of_its_input(
    home: Path, tmp_path: Path, args: tuple[str, ...], code: int, said: str
) -> None:
    run_id = ended_run(home, tmp_path)
    argv = [arg.format(run=run_id) for arg in args]
    with on_a_terminal(
        home, "-c", _STDIN_CLOSED, TASKDAEMON, *argv, command=sys.executable
    ) as command:
        shown = command.read_to_end().decode()
        assert code == command.process.wait(60), shown
    assert said in shown
    assert "Traceback" not in shown
