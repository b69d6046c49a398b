"""The debugger prompt under a long command line: bounded in time, one error line for a
request the run cannot read, and the prompt (and its run) going on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))

PIPELINE = """\
    name: dbg
    stages:
      - name: a
        command: "echo '{\\"x\\": 1}'"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo '{}'"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
"""


@pytest.mark.slow
def test_a_set_value_over_the_sockets_bound_is_one_error_line_and_the_prompt_goes_on(
    home: Path,
) -> None:
    """``set b x "<1.5 MB>"`` at ``debug FILE``'s prompt: one error line naming the bound, then
    ``where`` answers and the run ends when the input does (the line's shell-like split took
    time quadratic in its length, then the broken pipe escaped the prompt and the process
    waited for ever on its paused run)."""
    (home / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    env = {**os.environ, "TASKDAEMON_HOME": str(home), "OTEL_TRACES_EXPORTER": "none"}
    env.pop("TASKDAEMON_BREAKPOINTS", None)
    value = json.dumps("z" * 1_500_000)
    done = subprocess.run(
        [TASKDAEMON, "debug", str(home / "p.yaml"), "--break", "b", "-q"],
        env=env,
        input=f"set b x {value}\nwhere\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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
