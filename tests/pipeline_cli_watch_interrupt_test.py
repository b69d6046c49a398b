"""``run --watch`` and ``watch`` on a terminal stopped by a real Ctrl-C (typed on a pty): the
line saying the run is being cancelled is written above the live table, not over it, and no
echo of the key moves the cursor under the table. So is a log record written meanwhile (an
approval granted from another terminal).

Before, the line went straight to stderr past the table's last line, so the table's next
redraw, which moves the cursor up by its own height, started that many lines below where it
should have: the message was drawn over and the top of the previous frame stayed on the
screen. The terminal's ``^C`` echo did the same to ``watch`` on a narrow terminal, where it
wrapped past a row as wide as the terminal.
"""

from __future__ import annotations

import re
import termios
from pathlib import Path
from typing import Any

import pytest

from cli_faults_support import on_a_terminal
from cli_support import GATED_PIPELINE, taskdaemon, write

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
    assert _drawn_above_the_table(shown, b"SIGINT: cancelling run "), shown[-800:]
    assert b"Traceback" not in shown


def _drawn_above_the_table(shown: bytes, line: bytes) -> bool:
    """Whether ``line`` was written where the live table was erased first (a cursor movement
    up between the table's last header and it), and the table drawn below it (none from it
    to the next header)."""
    said = shown.index(line)
    redraw = shown[said : shown.index(b"STAGE", said)]
    return _CURSOR_UP in shown[shown.rindex(b"STAGE", 0, said) : said] and _CURSOR_UP not in redraw


def test_a_log_record_written_meanwhile_goes_above_the_live_table(
    home: Path, tmp_path: Path
) -> None:
    """An approval granted from another terminal while ``run --watch`` draws its table logs a
    ``taskdaemon.audit`` record: it is written above the table, which is drawn again below it.
    The record's handler kept the stderr it was made with, not the one the live table writes
    through: the record went past the table, the next frame was drawn over it, and the top
    of the previous frame stayed on the screen."""
    path = write(tmp_path / "gated.yaml", GATED_PIPELINE)
    with on_a_terminal(home, "run", str(path), "--watch") as run:
        run.wait_for("approval")
        found = re.search(rb"run ([0-9a-f]{32}) of gated started", bytes(run.seen))
        assert found is not None, bytes(run.seen)
        approved = taskdaemon(home, "approve", found.group(1).decode(), "deploy")
        assert 0 == run.process.wait(60), approved.stderr
        run.wait_for("success in")
    shown = bytes(run.seen)
    assert _drawn_above_the_table(shown, b"approval of deploy granted by "), shown[-800:]


def test_a_ctrl_c_to_watch_on_a_narrow_terminal_is_not_echoed_under_the_table(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """``watch`` on 40 columns, where a row fills the width: while the table is drawn the
    terminal echoes no key (a ``^C`` wrapped to a new line, and the last frame, drawn from one
    line too low, left the summary's first line above it twice); once ``watch`` ended, the
    terminal echoes again."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED_PIPELINE)))
    served.wait_for_line("waiting for approval")
    with on_a_terminal(home, "watch", served.run_id, "--interval", "0.1", columns=40) as watch:
        watch.wait_for("approval")
        echoing = termios.tcgetattr(watch.primary)[3] & termios.ECHO
        watch.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT
        assert 130 == watch.process.wait(60)
        echoes_after = termios.tcgetattr(watch.primary)[3] & termios.ECHO
    shown = bytes(watch.seen)
    assert (0, True) == (echoing, bool(echoes_after)), shown[-500:]
    assert b"^C" not in shown, shown[-500:]
    assert b"Traceback" not in shown
