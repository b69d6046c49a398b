"""``runs list`` and ``runs show`` on real terminals (a pty) of 60, 80 and 120 columns, over
real runs with long names, an error in CJK, a debugger's pause and a replay: no line is wider
than the terminal (at 60 columns the fixed columns leave the names less than their 12, so they
are cut further as a last resort, ``table_fit.LAST_GIVEN``), and every status, time,
duration, count and id shown is the piped table's."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import taskdaemon
from pipeline_debug_cli_support import debug
from taskdaemon.pipeline.table_fit import LAST_GIVEN, text_columns
from terminal_support import (
    LONG_PIPELINE,
    LONG_STAGES,
    long_names_pipeline,
    on_a_terminal_of,
)

pytestmark = pytest.mark.slow

COLUMNS = [60, 80, 120]


@pytest.fixture(scope="module")
def history() -> Iterator[tuple[Path, list[str]]]:
    """A home with a run of a pipeline with long names (its last stage fails), a run of it
    whose failing stage a breakpoint held, and a replay of the first; their ids, newest
    first."""
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        path = long_names_pipeline(home)
        assert 1 == taskdaemon(home, "run", str(path), "-q").returncode
        paused = debug(home, str(path), "--break", LONG_STAGES[1], "-q", stdin="continue\n")
        assert 1 == paused.returncode, paused.stdout + paused.stderr
        first = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)[-1]["run_id"]
        assert 1 == taskdaemon(home, "replay", first, "-q").returncode
        listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
        yield home, [run["run_id"] for run in listed]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _cells(line: str) -> list[str]:
    return re.split(r"  +", line)


@pytest.mark.parametrize("columns", COLUMNS)
def test_runs_list_fits_and_keeps_each_status_time_and_duration(
    history: tuple[Path, list[str]], columns: int
) -> None:
    """Each row's id is a prefix of its run's, its pipeline a cut of the name (never fewer
    than ``LAST_GIVEN`` columns), its status, start and duration the piped row's."""
    home, ids = history
    piped = [_cells(line) for line in taskdaemon(home, "runs", "list").stdout.splitlines()[1:]]
    code, lines = on_a_terminal_of(columns, home, "runs", "list")
    assert (0, []) == (code, [line for line in lines if text_columns(line) > columns]), lines
    rows = [_cells(line) for line in lines[1 : 1 + len(ids)]]
    for row, whole, run_id in zip(rows, piped, ids, strict=True):
        assert run_id.startswith(row[0]), row
        assert LONG_PIPELINE.startswith(row[1].removesuffix("…")), row
        assert LAST_GIVEN <= text_columns(row[1]), row
        assert whole[2:5] == row[2:5], (row, whole)


@pytest.mark.parametrize("columns", COLUMNS)
def test_runs_show_of_a_paused_run_fits_and_keeps_each_figure(
    history: tuple[Path, list[str]], columns: int
) -> None:
    """The paused run's stage table: DURATION reads TOOK and its pause is a PAUSED column
    (the piped table's ``59ms (paused 17ms)`` took 19 columns), or is named under the table
    as left out; each status, duration, pause and count shown is the piped table's."""
    home, ids = history
    piped = taskdaemon(home, "runs", "show", ids[1]).stdout
    whole = [_cells(line) for line in piped.split("\n\n", 1)[1].splitlines()]
    assert "(paused " in whole[2][3], piped
    code, lines = on_a_terminal_of(columns, home, "runs", "show", ids[1][:8])
    assert (0, []) == (code, [line for line in lines if text_columns(line) > columns]), lines
    table = lines[lines.index("") + 1 :]
    header = _cells(table[0])
    assert ["STAGE", "STATUS", "START", "TOOK"] == header[:4], table
    said = " ".join(" ".join(table[3:]).split())  # the note, its wrapped lines joined
    assert ("PAUSED" in header) != ("PAUSED" in said), table
    for row, stage, cells in zip(table[1:3], LONG_STAGES, whole[1:], strict=True):
        shown = dict(zip(header, _cells(row), strict=True))
        assert stage.startswith(shown["STAGE"].removesuffix("…")), row
        assert LAST_GIVEN <= text_columns(shown["STAGE"]), row
        took, _, pause = cells[3].partition(" (paused ")
        expected = {"STATUS": cells[1], "TOOK": took, "PAUSED": pause.removesuffix(")") or "-"}
        kept = [name for name in expected if name in shown]
        assert [expected[k] for k in kept] == [shown[k] for k in kept], (row, cells)
