"""The text tables of ``runs list`` and ``runs show`` over what a span source returned."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.cli.run_tables import format_run_table, format_runs_table
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, RunSummary, StageRecord
from taskdaemon.pipeline.table_fit import text_columns

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


def test_a_stage_with_an_instance_still_running_has_no_duration_yet() -> None:
    """A fan-out stage one of whose instances is still running shows DURATION ``-``, as its
    run does; it showed the span of the instances that ended (1.5s of a stage still going),
    and, once every instance ended, it shows the whole stage's."""
    done = (
        AttemptRecord("work.0.1", 0, 1, "success", 1.0, 2.5),
        AttemptRecord("work.1.1", 1, 1, "success", 1.0, 2.0),
    )
    going = (*done, AttemptRecord("work.2.1", 2, 1, "running", 1.5, None))
    ended = (*done, AttemptRecord("work.2.1", 2, 1, "success", 1.5, 9.0))

    def duration(attempts: tuple[AttemptRecord, ...], status: str) -> str:
        stage = StageRecord("work", "python", status, attempts)
        run = RunRecord(RUN_ID, "p", status, 1.0, None, (stage,), ())
        row = format_run_table(run).split("\n\n", 1)[1].splitlines()[1]
        return row.split()[4]

    assert ("-", "8.0s") == (duration(going, "running"), duration(ended, "success"))


def _local_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> Iterator[None]:
    """This process's local time zone is ``zone`` while the test runs."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Asia/Tokyo: UTC+09:00, no daylight saving."""
    yield from _local_zone(monkeypatch, "Asia/Tokyo")


@pytest.fixture
def in_berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Europe/Berlin: UTC+01:00 in winter, UTC+02:00 in summer."""
    yield from _local_zone(monkeypatch, "Europe/Berlin")


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


#: A stage whose error (its command, quoted) is about 100 characters, the run's about 120.
_LONG_FAILURE = """\
    name: nightly
    stages:
      - name: load
        command: "sh -c 'echo loading every partition of the nightly warehouse refresh; exit 3'"
        triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_runs_show_on_a_pipe_holds_the_errors_the_page_shows(tmp_path: Path, home: Path) -> None:
    """Written to a pipe, ``runs show`` gives the run's error and the stage's whole, as the
    web page shows them: both were cut to 60 columns whatever the output, so a file of it lost
    the command and the exit code that the page and ``--json`` gave. The error's type leads
    it as ``Type: message``, as the page writes an attempt's."""
    pipeline = write(tmp_path / "nightly.yaml", _LONG_FAILURE)
    ran = taskdaemon(home, "run", "-q", str(pipeline))
    run_id = ran.stdout.strip()
    shown = taskdaemon(home, "runs", "show", run_id)
    record = json.loads(taskdaemon(home, "runs", "show", "--json", run_id).stdout)
    stage_error = record["stages"][0]["attempts"][0]["error"]
    lines = shown.stdout.splitlines()
    assert (1, 0) == (ran.returncode, shown.returncode), (ran.stderr, shown.stderr)
    assert 60 < len(stage_error) < len(record["error"]), record
    assert f"error     {record['error_type']}: {record['error']}" in lines
    assert (True, True) == (lines[-1].startswith("load "), lines[-1].endswith(f"  {stage_error}"))


#: 2023-11-14 22:13:20 UTC: 2023-11-15 07:13:20 in Tokyo.
_EPOCH = 1_700_000_000.0
_LONG_ERROR = (
    "数据仓库刷新失败" * 3 + ": the warehouse refused the load because the refresh timed out"
)


def _long_run(starts: tuple[float, ...]) -> RunRecord:
    """A run of a stage per start, each named with 50 characters, with queue, CPU and memory
    figures; the last fails with the long (partly CJK) ``_LONG_ERROR``, the run's error too."""
    stages = []
    for n, start in enumerate(starts):
        failed = n == len(starts) - 1
        attempt = AttemptRecord(
            f"s{n}.0.1", 0, 1, "failure" if failed else "success", start, start + 1.5,
            queue_time=0.25, cpu_seconds=0.4, peak_memory_bytes=45_000_000,
            error=_LONG_ERROR if failed else None,
        )  # fmt: skip
        name = f"transform-partition-{n:02d}-of-the-fact-tables-nightly"
        stages.append(StageRecord(name, "command", attempt.status, (attempt,)))
    end = starts[-1] + 2
    return RunRecord(RUN_ID, "p", "failure", starts[0], end, tuple(stages), (), error=_LONG_ERROR)


@pytest.mark.usefixtures("in_tokyo")
@pytest.mark.parametrize("width", [80, 100])
def test_runs_show_fits_80_and_100_columns_by_its_narrow_reading(width: int) -> None:
    """Wider than the terminal, the stage table reads narrow: START the time of day alone (the
    start line says the date), INST, TRIES and TOOK, names and errors cut; at 80 columns MEMORY
    is left out too, and a line names it. Statuses, times and figures stay whole."""
    run = _long_run(tuple(_EPOCH + 60 * n for n in range(12)))
    lines = format_run_table(run, width).splitlines()
    table = lines[lines.index("") + 1 :]
    hidden = "(--wide shows the columns left out to fit: MEMORY)"
    expected = (True, "INST" in table[0] and "TRIES" in table[0], width == 80, 12)
    actual = (
        all(text_columns(line) <= width for line in lines),
        "INSTANCES" not in table[0],
        hidden == table[-1],
        sum(1 for line in table if line.startswith("transform-")),
    )
    assert expected == actual, lines
    first = table[1].split()
    assert ["success", "07:13:20", "1.5s", "250ms", "1", "1", "400ms"] == first[1:8], table[1]
    assert table[12].split()[-1].endswith("…"), table[12]
    assert "start     2023-11-15 07:13:20 (UTC+09:00)" in lines


@pytest.mark.usefixtures("in_tokyo")
def test_runs_show_keeps_the_dates_of_a_run_that_crossed_midnight() -> None:
    """Stages that started on another day than the run keep their dates: a time of day alone
    would read as the run's date. So does one still running (no duration yet)."""
    midnight = _EPOCH + 16 * 3600 + 46 * 60 + 40  # 2023-11-16 00:00:00 in Tokyo
    run = _long_run((midnight - 30, midnight + 30))
    attempt = replace(run.stages[1].attempts[0], status="running", end=None, error=None)
    running = replace(run.stages[1], status="running", attempts=(attempt,))
    for shown in (run, replace(run, status="running", end=None, stages=(run.stages[0], running))):
        table = format_run_table(shown, 80).split("\n\n", 1)[1].splitlines()
        starts = [" ".join(row.split()[2:4]) for row in table[1:3]]
        assert ["2023-11-15 23:59:30", "2023-11-16 00:00:30"] == starts, table


def test_runs_show_is_whole_on_a_pipe_and_when_it_fits() -> None:
    """No width (a pipe, a file, ``--wide``), or one the whole table fits in: the long headers,
    full start times and every column."""
    run = _long_run((_EPOCH, _EPOCH + 60))
    whole = format_run_table(run)
    assert whole == format_run_table(run, 1000)
    header = whole.split("\n\n", 1)[1].splitlines()[0].split()
    assert ["STAGE", "STATUS", "START", "DURATION", "QUEUE", "INSTANCES"] == header[:6]
    assert ["ATTEMPTS", "CPU", "MEMORY", "ERROR"] == header[6:]


def test_runs_list_leaves_out_stages_then_failed_when_names_alone_cannot_fit() -> None:
    """An ``interrupted`` run beside a replay: at 80 columns the pipeline's name at its floor
    still leaves the table wider, so STAGES and FAILED are left out (and named under it); at
    100 the name gives way alone, and both stay."""
    runs = [
        RunSummary(RUN_ID, "nightly-data-warehouse-refresh", "interrupted", _EPOCH, None, 12, 0),
        RunSummary("f" * 32, "nightly-data-warehouse-refresh", "success", _EPOCH, _EPOCH + 9.5,
                   12, 0, replay_of=RUN_ID),
    ]  # fmt: skip
    lines = format_runs_table(runs, 80).splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert ["TOOK", "REPLAY", "OF"] == lines[0].split()[-3:], lines[0]
    assert "(--wide shows the columns left out to fit: STAGES, FAILED)" == lines[-1]
    assert ["01234567", "interrupted"] == [lines[1].split()[0], lines[1].split()[2]], lines
    wider = format_runs_table(runs, 100).splitlines()
    assert ["STAGES", "FAILED"] == wider[0].split()[-4:-2], wider
    assert wider[1].split()[1].endswith("…"), wider


def test_an_interrupted_run_s_row_fits_60_columns_its_name_cut_to_8() -> None:
    """``interrupted`` (11 columns) beside the id, start and TOOK leaves the pipeline 9 of 60
    columns: its name is cut below its 12 as a last resort (``table_fit.LAST_GIVEN``), after
    STAGES and FAILED are left out; the status and the duration stay whole."""
    runs = [
        RunSummary("a" * 32, "nightly-data-warehouse-refresh", "interrupted", 1.0, 3601.0, 4, 1),
        RunSummary("b" * 32, "p", "success", 1.0, 2.0, 1, 0),
    ]
    lines = format_runs_table(runs, 60).splitlines()
    assert [] == [line for line in lines if text_columns(line) > 60], lines
    assert ["aaaaaaaa", "nightly-…", "interrupted"] == lines[1].split()[:3], lines
    assert ("TOOK", "1h00m") == (lines[0].split()[-1], lines[1].split()[-1]), lines


def _said(table: str) -> list[str]:
    """The table's lines, each without the padding after its last cell."""
    return [line.rstrip() for line in table.splitlines()]


#: A run that failed, and a replay of it an hour later.
_REPLAYED = [
    RunSummary(RUN_ID, "nightly", "failure", _EPOCH, _EPOCH + 75.0, 4, 1),
    RunSummary("f" * 32, "nightly", "success", _EPOCH + 3600, _EPOCH + 3609.5, 4, 0,
               replay_of=RUN_ID),
]  # fmt: skip


@pytest.mark.usefixtures("in_tokyo")
def test_runs_list_on_a_pipe_is_every_column_of_every_run() -> None:
    """No width: each run's whole id, its counts, and which run a replay replayed (``-`` for a
    run that is none); without a replay listed, no REPLAY OF column."""
    assert _said(format_runs_table(_REPLAYED)) == [
        "RUN ID                            PIPELINE  STATUS   START (UTC+09:00)    DURATION"
        "  STAGES  FAILED  REPLAY OF",
        f"{RUN_ID}  nightly   failure  2023-11-15 07:13:20  1m15s     4       1       -",
        f"{'f' * 32}  nightly   success  2023-11-15 08:13:20  9.5s      4       0       01234567",
    ]
    assert _said(format_runs_table(_REPLAYED[:1])) == [
        "RUN ID                            PIPELINE  STATUS   START (UTC+09:00)    DURATION"
        "  STAGES  FAILED",
        f"{RUN_ID}  nightly   failure  2023-11-15 07:13:20  1m15s     4       1",
    ]


@pytest.mark.usefixtures("in_tokyo")
def test_runs_list_leaves_out_replay_of_after_stages_and_failed() -> None:
    """At 70 columns an ``interrupted`` run beside its replay, long names cut, fits only with
    REPLAY OF left out too, after STAGES and FAILED, and the line under it names all three."""
    runs = [
        replace(run, pipeline="nightly-data-warehouse-refresh", end=None, status="interrupted")
        if run.replay_of is None
        else replace(run, pipeline="nightly-data-warehouse-refresh")
        for run in _REPLAYED
    ]
    lines = format_runs_table(runs, 70).splitlines()
    assert [] == [line for line in lines if text_columns(line) > 70], lines
    assert ["RUN", "ID", "PIPELINE", "STATUS", "START", "(UTC+09:00)", "TOOK"] == lines[0].split()
    assert "(--wide shows the columns left out to fit: STAGES, FAILED, REPLAY OF)" == lines[-1]
    narrower = format_runs_table(runs, 60).splitlines()  # the line under it wrapped too
    assert [] == [line for line in narrower if text_columns(line) > 60], narrower
    assert ["(--wide shows the columns left out to fit: STAGES, FAILED,", "    REPLAY OF)"] == (
        narrower[-2:]
    )


def test_a_table_as_wide_as_the_terminal_is_whole() -> None:
    """A table exactly the terminal's width fits: whole; a column narrower, it reads narrow."""
    whole = format_runs_table(_REPLAYED)
    width = max(text_columns(line) for line in whole.splitlines())
    assert whole == format_runs_table(_REPLAYED, width)
    assert "TOOK" in format_runs_table(_REPLAYED, width - 1).splitlines()[0]


_JANUARY, _JULY = 1_704_110_400.0, 1_719_835_200.0  # 2024-01-01 and 2024-07-01, 12:00 UTC


@pytest.mark.usefixtures("in_berlin")
def test_runs_list_says_the_zone_of_its_runs_not_of_today() -> None:
    """START's zone is the offset the runs' times are in (summer time for a July run, whatever
    the date today), and ``local time`` when the runs listed straddle a change of offset."""
    winter = RunSummary("a" * 32, "p", "success", _JANUARY, _JANUARY + 1)
    summer = RunSummary("b" * 32, "p", "success", _JULY, _JULY + 1)
    starts = [
        re.split(r" {2,}", format_runs_table(runs).splitlines()[0])[3]
        for runs in ([winter], [summer], [winter, summer])
    ]
    assert ["START (UTC+01:00)", "START (UTC+02:00)", "START (local time)"] == starts


#: A run of each kind of stage: one whose cost was measured, one retried after a pause at a
#: breakpoint, one cancelled while its attempt ran, one skipped; a replay that failed.
_STAGES = (
    StageRecord("fetch", "command", "success", (
        AttemptRecord("fetch.0.1", 0, 1, "success", _EPOCH, _EPOCH + 0.25, queue_time=0.05,
                      cpu_seconds=0.1, peak_memory_bytes=3 * 1024 * 1024),
    )),
    StageRecord("build", "command", "failure", (
        AttemptRecord("build.0.1", 0, 1, "failure", _EPOCH + 1, _EPOCH + 2, error="exit 2"),
        AttemptRecord("build.0.2", 0, 2, "failure", _EPOCH + 3.7, _EPOCH + 5, error="exit 3",
                      paused_time=1.6),
    )),
    StageRecord("poll", "command", "cancelled", (
        AttemptRecord("poll.0.1", 0, 1, "running", _EPOCH + 1, None),
    ), cancel_reason="the run was cancelled"),
    StageRecord("deploy", "command", "skipped", skip_reason="upstream build failed"),
)  # fmt: skip
_FAILED_REPLAY = RunRecord(
    RUN_ID, "nightly", "failure", _EPOCH, _EPOCH + 6, _STAGES, (),
    error="stage 'build' failure: exit 3", error_type="CommandFailedError", replay_of="e" * 32,
)  # fmt: skip


@pytest.mark.usefixtures("in_tokyo")
def test_runs_show_on_a_pipe_says_each_kind_of_stage() -> None:
    """No width: the run's head (the run it replayed, its error as ``Type: message``), then a
    row per stage: its cost, its pause beside its duration, the cancelled stage's reason with
    no duration (its attempt never ended), and ``-`` for all a skipped stage never had."""
    assert _said(format_run_table(_FAILED_REPLAY)) == [
        f"run       {RUN_ID}",
        "pipeline  nightly",
        "status    failure",
        "start     2023-11-15 07:13:20 (UTC+09:00)",
        "duration  6.0s",
        f"replay of {'e' * 32}",
        "error     CommandFailedError: stage 'build' failure: exit 3",
        "",
        "STAGE   STATUS     START                DURATION            QUEUE  INSTANCES  ATTEMPTS"
        "  CPU    MEMORY  ERROR",
        "fetch   success    2023-11-15 07:13:20  250ms               50ms   1          1"
        "         100ms  3.0MiB  -",
        "build   failure    2023-11-15 07:13:21  4.0s (paused 1.6s)  -      1          2"
        "         -      -       exit 3",
        "poll    cancelled  2023-11-15 07:13:21  -                   -      1          1"
        "         -      -       cancelled: the run was cancelled",
        "deploy  skipped    -                    -                   -      -          -"
        "         -      -       upstream build failed",
    ]


@pytest.mark.usefixtures("in_tokyo")
@pytest.mark.parametrize(
    ("error_type", "error", "said"),
    [("KeyboardInterrupt", None, "KeyboardInterrupt"), (None, "boom", "boom")],
)
def test_runs_show_says_an_error_of_a_type_or_a_message_alone(
    error_type: str | None, error: str | None, said: str
) -> None:
    """A run's error with no message, or no type, is its one part; a run still running has
    no duration."""
    run = RunRecord(
        RUN_ID, "p", "running", _EPOCH, None, (), (), error=error, error_type=error_type
    )
    assert ["duration  -", f"error     {said}"] == _said(format_run_table(run))[4:6]


@pytest.mark.usefixtures("in_tokyo")
def test_runs_show_says_what_its_spans_held_past_what_was_read_or_written() -> None:
    """What a reader left of the spans, and what the SDK dropped when it wrote them, each in a
    head line that the narrow reading never cuts (its figures are the point); the pipeline's
    name and the error are cut to the width."""
    run = replace(
        _FAILED_REPLAY,
        pipeline="nightly-data-warehouse-refresh-" * 3,
        error="x" * 200,
        error_type=None,
        stages=_STAGES[:1],
        events_not_read=999_000,
        links_not_read=3,
        attributes_not_read=1,
        attributes_dropped_when_written=672,
    )
    assert _said(format_run_table(run, 60))[:9] == [
        f"run       {RUN_ID}",
        "pipeline  nightly-data-warehouse-refresh-nightly-data-wareh…",
        "status    failure",
        "start     2023-11-15 07:13:20 (UTC+09:00)",
        "duration  6.0s",
        f"replay of {'e' * 32}",
        f"error     {'x' * 49}…",
        "not read  999000 span events and 3 span links and 1 span attribute, past the first "
        "1000 a span",
        "dropped   672 span attributes when written",
    ]
    links = replace(
        run,
        events_not_read=0,
        attributes_not_read=0,
        events_dropped_when_written=5,
        links_dropped_when_written=1,
    )
    assert [
        "not read  3 span links, past the first 1000 a span",
        "dropped   5 span events and 1 span link and 672 span attributes when written",
    ] == _said(format_run_table(links))[7:9]


@pytest.mark.usefixtures("in_tokyo")
def test_runs_show_narrow_puts_a_pause_in_a_column_left_out_last() -> None:
    """Narrower than the whole table: the time of day under START (a skipped stage's ``-``
    too), TOOK, and the pause in a PAUSED column beside it; at 80 columns MEMORY and CPU are
    left out, at 60 QUEUE and then PAUSED as well."""
    at_80 = format_run_table(_FAILED_REPLAY, 80).split("\n\n", 1)[1]
    assert _said(at_80) == [
        "STAGE   STATUS     START     TOOK   PAUSED  QUEUE  INST  TRIES  ERROR",
        "fetch   success    07:13:20  250ms  -       50ms   1     1      -",
        "build   failure    07:13:21  4.0s   1.6s    -      1     2      exit 3",
        "poll    cancelled  07:13:21  -      -       -      1     1      cancelled: the …",
        "deploy  skipped    -         -      -       -      -     -      upstream build …",
        "(--wide shows the columns left out to fit: CPU, MEMORY)",
    ]
    at_60 = _said(format_run_table(_FAILED_REPLAY, 60).split("\n\n", 1)[1])
    assert ["STAGE", "STATUS", "START", "TOOK", "INST", "TRIES", "ERROR"] == at_60[0].split()
    assert ["(--wide shows the columns left out to fit: PAUSED, QUEUE,", "    CPU, MEMORY)"] == (
        at_60[-2:]
    )
    unpaused = replace(_FAILED_REPLAY, stages=(_STAGES[0], _STAGES[3]))
    at_60 = _said(format_run_table(unpaused, 60).split("\n\n", 1)[1])
    assert "STAGE   STATUS   START     TOOK   INST  TRIES  ERROR" == at_60[0]
    assert ["(--wide shows the columns left out to fit: QUEUE, CPU,", "    MEMORY)"] == at_60[-2:]
