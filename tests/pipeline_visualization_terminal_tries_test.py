"""The live table's TRIES column (``visualization/_terminal``): a stage a retry made good is told
apart from one that passed first time, in the words of ``runs show``, only once a stage retried."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_support import write
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.visualization._terminal import render_table
from terminal_support import on_a_terminal_of

#: ``fetch`` fails its first attempt and succeeds on its retry; ``publish`` passes first time.
_FLAKY = """\
    name: flaky
    stages:
      - name: fetch
        command: "test -e tried || { touch tried; exit 1; }"
        retry: {max_attempts: 3, backoff: {initial: 1ms, factor: 1.0, max: 1ms}}
        triggers: [{manual: {approval_required: false}}]
      - name: publish
        command: "true"
        triggers: [{on_completion: {stage: fetch}}]
"""

#: :data:`_FLAKY`'s ``fetch`` after four stages that pass first time: last in DAG order, the
#: first cut from a short terminal's table once every stage has ended.
_FLAKY_LAST = """\
    name: flaky_last
    stages:
      - {name: a, command: "true", triggers: [{manual: {approval_required: false}}]}
      - {name: b, command: "true", triggers: [{manual: {approval_required: false}}]}
      - {name: c, command: "true", triggers: [{manual: {approval_required: false}}]}
      - {name: d, command: "true", triggers: [{manual: {approval_required: false}}]}
      - name: fetch
        command: "test -e tried || { touch tried; exit 1; }"
        retry: {max_attempts: 3, backoff: {initial: 1ms, factor: 1.0, max: 1ms}}
        triggers: [{manual: {approval_required: false}}]
"""

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _cells(table: list[str], column: str) -> dict[str, str]:
    """Each stage's cell under ``column`` of a table whose first line is its header."""
    start = table[0].index(column)
    return {row.split()[0]: row[start : start + len(column)].strip() for row in table[1:]}


@pytest.mark.slow
def test_run_watch_shows_the_tries_runs_show_gives(home: Path, tmp_path: Path) -> None:
    """On a 60-column terminal, ``run --watch``'s last table has a TRIES column giving 2 for
    the stage a retry made good and 1 for the other, as ``runs show`` does, each line within
    the terminal's width: it read ``success`` for both."""
    path = write(tmp_path / "flaky.yaml", _FLAKY)
    code, lines = on_a_terminal_of(60, home, "run", str(path), "--watch", streams=("stderr",))
    screen = [_ESCAPES.sub("", line) for line in lines]
    last = max(i for i, line in enumerate(screen) if line.startswith("STAGE"))
    watched = screen[last : last + 3]
    run_id = next(line.split()[1] for line in screen if line.startswith("run "))
    _, shown = on_a_terminal_of(60, home, "runs", "show", run_id)
    table = shown[next(i for i, line in enumerate(shown) if line.startswith("STAGE")) :]
    expected = {"fetch": "2", "publish": "1"}
    assert (0, expected, expected) == (
        code,
        _cells(watched, "TRIES"),
        _cells(table[:3], "TRIES"),
    ), screen
    assert all(len(line) <= 60 for line in watched), watched


@pytest.mark.slow
def test_run_watch_keeps_tries_when_the_stage_that_retried_is_cut(
    home: Path, tmp_path: Path
) -> None:
    """On a terminal 8 lines high, ``run --watch``'s last table cuts ``fetch`` (its rows end
    with the count of those left out) and still has a TRIES column, 1 for each stage shown,
    within the terminal's width: the column was decided from the rows shown, and went."""
    path = write(tmp_path / "flaky_last.yaml", _FLAKY_LAST)
    code, lines = on_a_terminal_of(
        60, home, "run", str(path), "--watch", streams=("stderr",), lines=8
    )
    screen = [_ESCAPES.sub("", line) for line in lines]
    last = max(i for i, line in enumerate(screen) if line.startswith("STAGE"))
    watched = screen[last : last + 3]
    assert (0, {"a": "1", "b": "1"}, "… 3 more stages (3 success)") == (
        code,
        _cells(watched, "TRIES"),
        screen[last + 3],
    ), screen
    assert all(len(line) <= 60 for line in watched), watched


def test_no_tries_column_while_no_stage_retried() -> None:
    """A run whose stages each passed first time has no TRIES column: a column of 1s says
    nothing and takes its columns from the stage names and waits."""
    from rich.console import Console

    t0 = 1_700_000_000.0
    once = AttemptRecord("build.0", 0, 1, "success", t0, t0 + 1)
    run = RunRecord(
        "ab" * 16,
        "p",
        "success",
        t0,
        t0 + 1,
        (StageRecord("build", "command", "success", (once,)),),
        (),
    )
    console = Console(width=60, record=True, force_terminal=False)
    console.print(render_table(dag_snapshot(None, run), t0 + 2))
    header = next(line for line in console.export_text().splitlines() if line.startswith("STAGE"))
    assert ["STAGE", "STATE", "ELAPSED", "INST", "WAITING", "FOR", "/", "ERROR"] == header.split()
