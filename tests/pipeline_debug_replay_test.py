"""What a debugger did to a run, as ``replay --step`` walks it afterwards: the breakpoint's
pause and resumption and an input overridden are events of the walk, with the state they
led to (as ``runs show`` rebuilds it from the same spans)."""

from __future__ import annotations

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


def _run(home: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """``taskdaemon ARGS`` in ``home``, ``stdin`` on a pipe, to its end."""
    env = {**os.environ, "TASKDAEMON_HOME": str(home), "OTEL_TRACES_EXPORTER": "none"}
    env.pop("TASKDAEMON_BREAKPOINTS", None)
    env.pop("TASKDAEMON_SPAN_SOURCE", None)
    return subprocess.run(
        [TASKDAEMON, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_the_walk_shows_a_breakpoints_pause_its_override_and_its_resumption(
    home: Path,
) -> None:
    """A run paused at b, whose input x was overridden and which was continued: ``replay
    --step`` walks the pause (b paused, as ``runs show`` said), the override and the
    resumption (it skipped all three: b read as pending while it was paused)."""
    (home / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    debugged = _run(home, "debug", str(home / "p.yaml"), "--break", "b", "-q", stdin="set b x 5\n")
    walk = _run(home, "replay", debugged.stdout.split()[2], "--step", stdin="next\n" * 12)
    lines = walk.stdout.splitlines()
    found = [
        (line.split(None, 2)[2], lines[i + 1].split()[2])
        for i, line in enumerate(lines)
        if line.startswith("[") and "b" in line.split(None, 2)[2].split()[0]
    ]
    assert [
        ("b.0.1 paused: #1 before b (pipeline dbg)", "b=paused"),
        ("b: input x overridden by cli debug", "b=paused"),
        ("b.0.1 resumed: continue by cli debug (end of input)", "b=pending"),
        ("b started", "b=running"),
        ("b success", "b=success"),
    ] == found
