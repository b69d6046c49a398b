"""``run --watch`` on a terminal stopped by a real Ctrl-C (typed on a pty): the line saying
the run is being cancelled is written above the live table, not over it.

Before, it went straight to stderr past the table's last line, so the table's next redraw,
which moves the cursor up by its own height, started that many lines below where it should
have: the message was drawn over and the top of the previous frame stayed on the screen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_faults_support import on_a_terminal

pytestmark = pytest.mark.slow

_CURSOR_UP = b"\x1b[1A"

PIPELINE = """\
name: sleepy
loops:
  nap: {command: "sleep 60"}
stages:
  - name: nap
    loop: nap
    triggers: [{manual: {approval_required: false}}]
"""


def test_the_cancelling_line_of_a_ctrl_c_goes_above_the_live_table(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "sleepy.yaml"
    path.write_text(PIPELINE)
    with on_a_terminal(home, "run", str(path), "--watch") as run:
        run.wait_for("WAITING FOR")
        run.wait_for("running")
        run.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT
        assert 130 == run.process.wait(60)
        run.wait_for("run cancelled")
    shown = bytes(run.seen)
    said = shown.index(b"SIGINT: cancelling run ")
    # What follows the line, up to the table's next header, draws the table below it: no
    # cursor movement back over it.
    redraw = shown[said : shown.index(b"STAGE", said)]
    assert _CURSOR_UP not in redraw, redraw
    # And the line was written where the live table was erased first (above the table).
    assert _CURSOR_UP in shown[shown.rindex(b"STAGE", 0, said) : said]
    assert b"Traceback" not in shown
