"""``watch`` on a narrow terminal (a real pty, 20 and 30 columns): every row names its stage.

The fixed columns (STATE, ELAPSED, INST) took the whole width, and ``rich`` drew the STAGE
column 0 wide on 20 columns (rows of states with no names) and one character and its
ellipsis on 30. The columns after STATE now give way first (``_terminal._columns_kept``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_support import taskdaemon
from terminal_support import LONG_STAGES, long_names_pipeline, on_a_terminal_of

pytestmark = pytest.mark.slow

#: A control sequence ``rich`` draws with (colours, cursor moves, erasing a line).
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.parametrize("columns", [20, 30])
def test_a_narrow_live_table_names_each_stage(home: Path, tmp_path: Path, columns: int) -> None:
    done = taskdaemon(home, "run", str(long_names_pipeline(tmp_path)))
    found = re.search(r"run ([0-9a-f]{32}) ", done.stderr)
    assert found, done.stderr
    code, lines = on_a_terminal_of(columns, home, "watch", found.group(1))
    assert code == 1, lines  # the run failed
    shown = [_CONTROL.sub("", line).rstrip() for line in lines]
    shown = [line for line in shown if line]  # the blank line the live table ends with
    last_frame = shown[-2:]
    for stage, row in zip(LONG_STAGES, last_frame, strict=True):
        assert row.startswith(stage[:8]), last_frame
    assert "success" in last_frame[0]
    assert "failure" in last_frame[1]
    assert all(len(line) <= columns for line in shown), shown
