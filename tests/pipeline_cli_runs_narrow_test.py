"""``runs list``, ``runs show`` and ``report`` on a real terminal (a pty) narrower than their
tables: every line of each fits 80 columns; the ids of ``runs list`` are the shortest unique
prefixes of at least 8 digits and ``runs show`` takes them back; names and errors give way with
an ellipsis, then whole columns are left out and named; numbers, statuses and times are never
cut; a pipe and ``--wide`` get the tables whole."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.table_fit import text_columns
from terminal_support import (
    LONG_PIPELINE,
    LONG_STAGES,
    long_names_pipeline,
    on_a_terminal_of,
)

pytestmark = pytest.mark.slow

TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def history() -> Iterator[tuple[Path, list[str]]]:
    """A home with three runs of a pipeline with long names (its last stage fails), and their
    ids, newest first."""
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        path = long_names_pipeline(home)
        for _ in range(3):
            assert 1 == taskdaemon(home, "run", str(path), "-q").returncode
        listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
        yield home, [run["run_id"] for run in listed]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_runs_list_fits_80_columns_and_its_ids_can_be_typed_back(
    history: tuple[Path, list[str]],
) -> None:
    home, ids = history
    code, lines = on_a_terminal_of(80, home, "runs", "list")
    assert 0 == code, lines
    assert all(len(line) <= 80 for line in lines), lines
    assert "RUN ID" == lines[0][:6]
    rows = lines[1:]
    assert len(ids) == len(rows)
    for row, run_id in zip(rows, ids, strict=True):
        shown, pipeline, status, day, hour = row.split()[:5]
        assert 8 <= len(shown) < 32, row
        assert run_id.startswith(shown), row
        assert pipeline.endswith("…"), row
        assert LONG_PIPELINE.startswith(pipeline[:-1]), row
        assert "failure" == status, row
        assert TIME.fullmatch(f"{day} {hour}"), row
        typed = taskdaemon(home, "runs", "show", shown)
        assert 0 == typed.returncode, typed.stderr
        assert f"run       {run_id}" == typed.stdout.splitlines()[0]


def test_a_pipe_and_wide_get_the_whole_table(history: tuple[Path, list[str]]) -> None:
    """Piped, every id and name is whole (scripts read them); ``--wide`` on the same narrow
    terminal prints the same lines."""
    home, ids = history
    piped = taskdaemon(home, "runs", "list")
    assert 0 == piped.returncode, piped.stderr
    rows = piped.stdout.splitlines()[1:]
    assert ids == [row.split()[0] for row in rows]
    assert all(LONG_PIPELINE == row.split()[1] for row in rows)
    code, lines = on_a_terminal_of(80, home, "runs", "list", "--wide")
    assert (0, piped.stdout.splitlines()) == (code, lines)
    shown = taskdaemon(home, "runs", "show", ids[0])
    code, lines = on_a_terminal_of(80, home, "runs", "show", ids[0], "--wide")
    assert (0, shown.stdout.splitlines()) == (code, lines)
    assert LONG_STAGES[0] in shown.stdout


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_runs_show_fits_by_its_narrow_reading(
    history: tuple[Path, list[str]], columns: int
) -> None:
    """At 80, 100 and 120 columns (its table is 130 whole, with a partly CJK error) every line
    fits: START reads the time of the day the ``start`` line gives, INSTANCES, ATTEMPTS and
    DURATION read INST, TRIES and TOOK, stage names and the error give way; each status, time
    and count is whole, and the run's id in its head too. The columns left out are named under
    it."""
    home, ids = history
    code, lines = on_a_terminal_of(columns, home, "runs", "show", ids[0][:8])
    assert 0 == code, lines
    assert all(text_columns(line) <= columns for line in lines), lines
    assert f"run       {ids[0]}" == lines[0]
    day = next(line.split()[1] for line in lines if line.startswith("start "))
    whole = taskdaemon(home, "runs", "show", ids[0]).stdout.splitlines()
    table = lines[lines.index("") + 1 :]
    header = table[0].split()
    assert ["STAGE", "STATUS", "START", "TOOK"] == header[:4], table[0]
    assert {"INST", "TRIES", "ERROR"} <= set(header), table[0]
    for row, stage, status in zip(table[1:3], LONG_STAGES, ("success", "failure"), strict=True):
        cells = row.split()
        assert stage.startswith(cells[0].removesuffix("…")), row
        assert status == cells[1], row
        assert any(f"{day} {cells[2]}" in line for line in whole), (row, whole)
    shown = set(header) | {"INSTANCES", "ATTEMPTS"}
    hidden = [name for name in ("QUEUE", "CPU", "MEMORY") if name not in shown]
    note = [f"(--wide shows the columns left out to fit: {', '.join(hidden)})"] if hidden else []
    assert note == table[3:], table


def _stage_table(lines: list[str]) -> dict[str, dict[str, str]]:
    """The report's stage table: per stage (its shown name), the cell under each header."""
    at = next(n for n, line in enumerate(lines) if line.startswith("STAGE "))
    header = re.split(r"  +", lines[at])
    rows = [re.split(r"  +", line) for line in lines[at + 1 : lines.index("", at)]]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows if len(row) > 1}


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_report_fits_by_names_then_columns_never_figures(
    history: tuple[Path, list[str]], columns: int
) -> None:
    """At 80, 100 and 120 columns every line of the report fits: stage names cut, then whole
    columns left out (named under the table); each figure shown is the piped report's, and
    the critical path's run ids and the summary's figures are whole."""
    home, ids = history
    piped = taskdaemon(home, "report")
    assert 0 == piped.returncode, piped.stderr
    assert any(len(line) > columns for line in piped.stdout.splitlines())
    code, lines = on_a_terminal_of(columns, home, "report")
    assert 0 == code, lines
    assert all(text_columns(line) <= columns for line in lines), lines
    whole = _stage_table(piped.stdout.splitlines())
    fitted = _stage_table(lines)
    assert len(whole) == len(fitted) == 2, lines
    for name, cells in fitted.items():
        (stage,) = [s for s in whole if s.startswith(name.removesuffix("…"))]
        assert all(whole[stage][k] == v for k, v in cells.items() if k != "STAGE"), cells
    left_out = [k for k in next(iter(whole.values())) if k not in next(iter(fitted.values()))]
    said = " ".join(" ".join(lines).split())  # wrapped lines joined again
    note = f"(--wide shows the columns left out to fit: {', '.join(left_out)})"
    assert (note in said) == bool(left_out), lines
    summary = next(line for line in piped.stdout.splitlines() if line.startswith("pipeline "))
    assert summary.split(":", 1)[1].strip() in said, lines
    assert any(f"run {run_id} (" in said for run_id in ids), lines  # a critical path's
