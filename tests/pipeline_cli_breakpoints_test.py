"""Breakpoints from the command line (``cli/breakpoints.py``): ``--break STAGE[:CEL]`` and
``TASKDAEMON_BREAKPOINTS``, refused in one bounded line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon

PIPELINE = """\
name: one
stages:
  - name: a
    command: "true"
    triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["a:" + "x" * 100_000, "b" * 100_000], ids=["cel", "stage"])
def test_a_long_refused_breakpoint_is_one_short_line(home: Path, spec: str) -> None:
    """``debug --break`` with a 100,000-character condition that does not compile, or stage
    name, exits 2 with one line that quotes the spec cut, not whole."""
    path = home / "one.yaml"
    path.write_text(PIPELINE)
    done = taskdaemon(home, "debug", str(path), "--break", spec, "-q")
    lines = done.stderr.splitlines()
    assert (2, 1, True) == (done.returncode, len(lines), len(lines[0]) < 400), done.stderr[:400]
