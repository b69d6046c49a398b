"""The debugger prompt under a long command line: bounded in time, one error line for a
request the run cannot read, and the prompt (and its run) going on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import PAUSABLE_PIPELINE, taskdaemon, write


@pytest.mark.slow
def test_a_set_value_over_the_sockets_bound_is_one_error_line_and_the_prompt_goes_on(
    home: Path,
) -> None:
    """``set b x "<1.5 MB>"`` at ``debug FILE``'s prompt: one error line naming the bound, then
    ``where`` answers and the run ends when the input does (the line's shell-like split took
    time quadratic in its length, then the broken pipe escaped the prompt and the process
    waited for ever on its paused run)."""
    path = write(home / "p.yaml", PAUSABLE_PIPELINE)
    value = json.dumps("z" * 1_500_000)
    done = taskdaemon(
        home, "debug", str(path), "--break", "b", "-q", stdin=f"set b x {value}\nwhere\n"
    )
    request = {"op": "debug", "action": "set", "stage": "b", "input": "x"}
    size = len(json.dumps({**request, "value": "z" * 1_500_000, "by": "cli debug"})) + 1
    assert (
        0,
        [
            f"error: a request of {size:,} bytes is over the control socket's bound of "
            "1,048,576 bytes",
            "(taskdaemon) where",
            "  b  paused",
            "run ended success",
        ],
    ) == (
        done.returncode,
        [
            line
            for line in done.stdout.splitlines()
            if line.startswith(("error:", "(taskdaemon) where", "  b ", "run ended"))
        ],
    )
