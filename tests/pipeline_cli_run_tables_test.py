"""The text tables of ``runs list`` and ``runs show`` over what a span source returned."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.cli.run_tables import format_run_table, format_runs_table
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, RunSummary, StageRecord

RUN_ID = "0123456789abcdef0123456789abcdef"
HOSTILE = "p\x1b]0;title\x07\x1b[2J\r\nfake"
SHOWN = "p\\x1b]0;title\\x07\\x1b[2J\\x0d\\x0afake"


def _run(stage: str) -> RunRecord:
    attempt = AttemptRecord(f"{stage}.0.1", 0, 1, "success", 1.0, 2.0)
    return RunRecord(
        RUN_ID,
        "p",
        "success",
        1.0,
        2.0,
        (StageRecord(stage, "python", "success", (attempt,)),),
        (),
    )


def test_a_pipeline_name_with_control_characters_is_shown_escaped() -> None:
    """A run's pipeline name holding a terminal's escapes and a line break is one table row,
    each control character shown as its escape."""
    table = format_runs_table([RunSummary(RUN_ID, HOSTILE, "success", 1.0, 2.0)])
    lines = table.splitlines()
    expected = (2, True, True)
    actual = (len(lines), SHOWN in lines[1], table.replace("\n", "").isprintable())
    assert expected == actual, table


def test_a_stage_name_with_control_characters_is_shown_escaped() -> None:
    """A stage name holding a terminal's escapes and a line break is one row of the stage
    table, each control character shown as its escape."""
    table = format_run_table(_run(HOSTILE))
    rows = table.split("\n\n", 1)[1].splitlines()
    expected = (2, True, True)
    actual = (len(rows), rows[1].startswith(SHOWN), table.replace("\n", "").isprintable())
    assert expected == actual, table


def test_a_megabyte_stage_name_is_cut_so_rows_stay_short() -> None:
    """A stage name of a million characters beside a short one is cut to 128 characters with
    an ellipsis, so no row is padded to a megabyte."""
    run = _run("x" * 1_000_000)
    short = StageRecord("s", "python", "success", run.stages[0].attempts)
    table = format_run_table(RunRecord(RUN_ID, "p", "success", 1.0, 2.0, (*run.stages, short), ()))
    rows = table.split("\n\n", 1)[1].splitlines()
    expected = ("x" * 127 + "…", True)
    actual = (rows[1].split()[0], max(len(row) for row in rows) < 300)
    assert expected == actual


def test_a_failed_stage_whose_last_instance_succeeded_shows_its_last_error() -> None:
    """A stage of several instances that failed, whose last attempt to end succeeded, shows
    the last error among its attempts (it showed ``-``: a failed stage without a reason)."""
    attempts = (
        AttemptRecord("work.0.1", 0, 1, "success", 1.0, 2.0),
        AttemptRecord("work.1.1", 1, 1, "failure", 1.0, 2.0, error="bad item 3"),
        AttemptRecord("work.2.1", 2, 1, "success", 1.0, 3.0),
    )
    stage = StageRecord("work", "python", "failure", attempts)
    table = format_run_table(RunRecord(RUN_ID, "p", "failure", 1.0, 3.0, (stage,), ()))
    row = table.split("\n\n", 1)[1].splitlines()[1]
    assert "bad item 3" == row.split("  ")[-1].strip()


@pytest.fixture
def in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time zone is Asia/Tokyo (UTC+09:00, no daylight saving)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("in_tokyo")
def test_runs_list_says_the_zone_of_its_start_times_once() -> None:
    """The START column's header names the local zone its times are in."""
    table = format_runs_table([RunSummary(RUN_ID, "p", "success", 0.0, 2.0)])
    header, row = table.splitlines()
    column = header.index("START")
    expected = ("START (UTC+09:00)", "1970-01-01 09:00:00")
    assert expected == (header[column:].split("  ")[0], row[column : column + 19])


@pytest.mark.usefixtures("in_tokyo")
def test_runs_show_says_the_zone_of_its_times_once() -> None:
    """The run's start line names the local zone of the view's times."""
    table = format_run_table(RunRecord(RUN_ID, "p", "success", 0.0, 2.0, (), ()))
    start = next(line for line in table.splitlines() if line.startswith("start"))
    assert "start     1970-01-01 09:00:00 (UTC+09:00)" == start


#: Two entry stages and one worker slot: ``late``'s first attempt waits for ``hog``'s slot, then
#: fails; its retry finds the slot free at once.
_QUEUED_RETRY = """\
    name: queued
    concurrency: 1
    stages:
      - name: hog
        command: "sleep 0.3"
        triggers: [{manual: {approval_required: false}}]
      - name: late
        command: "test -e tried || { touch tried; exit 1; }"
        retry: {max_attempts: 2, backoff: {initial: 1ms, factor: 1.0, max: 1ms}}
        triggers: [{manual: {approval_required: false}}]
"""


def _queue_cell(table: str, stage: str) -> str:
    """The QUEUE cell of ``stage``'s row in a table whose header names a QUEUE column."""
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("STAGE"))
    row = next(line for line in lines if line.split(" ", 1)[0] == stage)
    start = header.index("QUEUE")
    return row[start:].split()[0]


@pytest.mark.slow
def test_runs_show_gives_the_queue_time_the_run_summary_gave(tmp_path: Path, home: Path) -> None:
    """A stage whose first attempt waited for a worker slot and whose retry did not: ``runs
    show`` gives its QUEUE as the ``run`` summary does (the longest wait), not its last
    attempt's (0ms), which hid the wait."""
    pipeline = write(tmp_path / "queued.yaml", _QUEUED_RETRY)
    ran = taskdaemon(home, "run", str(pipeline))
    summary = ran.stdout.split("\n\n")[0]
    run_id = ran.stdout.split("\n\n")[1].split()[1]
    shown = taskdaemon(home, "runs", "show", run_id)
    expected = (0, 0, _queue_cell(summary, "late"))
    actual = (ran.returncode, shown.returncode, _queue_cell(shown.stdout, "late"))
    assert expected == actual, (ran.stdout, ran.stderr, shown.stdout)
    assert _queue_cell(summary, "late") != "0ms", summary  # the case at hand: it waited
