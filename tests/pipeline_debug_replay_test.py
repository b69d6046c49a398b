"""What a debugger did to a run, as ``replay --step`` walks it afterwards: the breakpoint's
pause and resumption and an input overridden are events of the walk, with the state they
led to (as ``runs show`` rebuilds it from the same spans)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import PAUSABLE_PIPELINE, taskdaemon, write


@pytest.mark.slow
def test_the_walk_shows_a_breakpoints_pause_its_override_and_its_resumption(
    home: Path,
) -> None:
    """A run paused at b, whose input x was overridden and which was continued: ``replay
    --step`` walks the pause (b paused, as ``runs show`` said), the override and the
    resumption (it skipped all three: b read as pending while it was paused)."""
    path = write(home / "p.yaml", PAUSABLE_PIPELINE)
    debugged = taskdaemon(home, "debug", str(path), "--break", "b", "-q", stdin="set b x 5\n")
    walk = taskdaemon(home, "replay", debugged.stdout.split()[2], "--step", stdin="next\n" * 12)
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
