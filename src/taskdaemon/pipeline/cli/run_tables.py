"""The text tables of ``taskdaemon runs list`` and ``runs show`` (pure renderers).

Every cell is text from spans, and spans from a remote source are whatever was sent to the
backend: control characters in a name are shown as escapes (``terminal_text``), so a name
cannot drive the reader's terminal or break a row, and a cell is cut at 128 characters."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from taskdaemon.pipeline.byte_sizes import format_bytes
from taskdaemon.pipeline.durations import (
    format_duration,
    format_run_duration,
    local_time,
    utc_offset,
)
from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.landing import landing_delay, scheduled_at
from taskdaemon.pipeline.records import (
    AttemptRecord,
    RunRecord,
    RunSummary,
    StageRecord,
    stage_error,
)
from taskdaemon.pipeline.table_fit import (
    LAST_GIVEN,
    cut_columns,
    fit,
    hidden_note,
    short_ids,
    text_columns,
)
from taskdaemon.pipeline.telemetry import (
    PIPELINE_REQUEST_TRUNCATED,
    PIPELINE_THREADS_LEFT,
    STATUS_REPLAYED,
)
from taskdaemon.pipeline.telemetry_codec import recorded_request
from taskdaemon.pipeline.terminal_text import CONTROL_ESCAPES, one_line
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS
from taskdaemon.pipeline.wording import counted

__all__ = ["format_run_table", "format_runs_table"]


def _zone(epochs: Iterable[float | None]) -> str:
    """The local zone's UTC offset at ``epochs`` (``UTC+09:00``), which ``local_time``
    writes them in; ``local time`` when they straddle a change of offset (daylight saving).
    No time at all: the offset now."""
    known = [e for e in epochs if e is not None] or [time.time()]
    offsets = {utc_offset(e) for e in known}
    if len(offsets) != 1:
        return "local time"
    (offset,) = offsets
    return offset


#: Characters of a cell at most (the longest name validation allows): a remote source's
#: megabyte name would otherwise pad every row of its table to a megabyte.
_MAX_CELL = 128


def _cell(text: str) -> str:
    return cut(text.translate(CONTROL_ESCAPES), _MAX_CELL)


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    give_way: tuple[int, ...],
    drop: tuple[int, ...] = (),
) -> str:
    """The aligned table, fitted to ``width`` when given (``table_fit.fit``, its free text to
    ``LAST_GIVEN`` columns as a last resort), with the line naming the columns it left out to
    fit, if any."""
    cells = [[_cell(cell) for cell in row] for row in rows]
    table = fit(header, cells, width, give_way, drop, floor=LAST_GIVEN)
    return "\n".join([*table.lines, *hidden_note(table.hidden, width)])


def _fits(table: str, width: int | None) -> bool:
    """Whether every line of ``table`` fits in ``width`` terminal columns (None: no bound)."""
    return width is None or all(text_columns(line) <= width for line in table.splitlines())


#: The REPLAY OF cell of a replay: the first digits of the replayed run's id.
_REPLAY_ID_DIGITS = 8


def _replayed(run: RunSummary) -> str:
    """The REPLAY OF cell: ``-`` for a run that is no replay, else the first characters of the
    replayed run's id (``_table`` escapes a foreign producer's value that is no run id)."""
    return run.replay_of[:_REPLAY_ID_DIGITS] if run.replay_of else "-"


def _took(run: RunSummary) -> str | None:
    """An interrupted run's TOOK cell, ``≥5.2s``: ``at least 5.2s`` in 6 columns, so that at 60
    the id, ``interrupted``, the start and it still leave the pipeline 8 (the narrow table
    already writes ``…``); None for any other run."""
    at_least = run.lasted_at_least
    return None if run.duration is not None or at_least is None else f"≥{format_duration(at_least)}"


def format_runs_table(runs: Sequence[RunSummary], width: int | None = None) -> str:
    """An aligned table: run id, pipeline, status, start, duration, stages, failed, and, when
    any run listed is a replay, REPLAY OF, and when any was scheduled (``serve --pipeline``),
    LATE: how late it started against its schedule (``RunSummary.landing_delay``; ``-`` for a
    run no schedule started, ``0ms`` for one on time). An interrupted run's DURATION is the
    part its process was seen alive, ``at least 5.2s`` (``durations.format_run_duration``;
    ``≥5.2s`` in the narrow table's TOOK, ``_took``).

    LATE, like REPLAY OF, only when a listed run has one, and last: a history of runs started
    by hand keeps its width and columns, and a scheduled pipeline's table reads its delays
    beside its durations without a flag to ask for them. It is left out after REPLAY OF when
    the terminal is too narrow: ``runs show`` says it, with the time the run was due.

    ``width``: the columns of the terminal it is written to, when the whole table is wider:
    RUN ID then shows the shortest prefix of at least 8 digits unique among the runs listed
    (which ``runs show`` takes back), DURATION reads TOOK (its cells are 5 wide up to 99
    hours: the long header only widened the column), and PIPELINE gives way (cut with an
    ellipsis) before any other column (``table_fit``). Still wider (an ``interrupted`` run
    beside replays leaves PIPELINE less than its 12 columns at 80), STAGES, FAILED, then
    REPLAY OF are left out, a line naming them: the run's status already says whether it
    failed, ``runs show`` has its stages and what it replayed. Still wider (60 columns: the
    id, status, start and TOOK take 51 beside an ``interrupted`` run), PIPELINE is cut to 8
    columns as a last resort (``table_fit.LAST_GIVEN``). None (a pipe, a file, ``--wide``):
    every id whole, every column.

    A replay is a run of its own, and without the column three replays of a run read as four
    identical rows of its pipeline. The column says which run each one replayed in 8 hex
    digits: enough to match the run's own row by eye (its RUN ID starts with them) and to
    ``runs show`` it from the embedded store (a unique prefix); ``--json`` has the whole id.
    A word and an id, not a mark such as ``↻``: it reads in any terminal and font, can be
    typed and grepped, and the header says what the digits are. No mark keeps the table within
    80 columns (its 32-digit RUN ID already takes a row past 100), so the column costs as
    little as it can: 11 characters, last, so that every other column keeps its place (and a
    wrapped row wraps as before), and only when a listed run is a replay: a history without
    replays keeps its width.
    """
    start = f"START ({_zone(r.start for r in runs)})"
    header: tuple[str, ...] = (
        "RUN ID",
        "PIPELINE",
        "STATUS",
        start,
        "DURATION",
        "STAGES",
        "FAILED",
    )
    replays = any(r.replay_of for r in runs)
    if replays:
        header += ("REPLAY OF",)
    scheduled = any(r.scheduled_at is not None for r in runs)
    if scheduled:
        header += ("LATE",)
    rows = [
        (
            r.run_id,
            r.pipeline,
            r.status,
            local_time(r.start),
            format_run_duration(r.duration, r.lasted_at_least),
            str(r.stage_count),
            str(r.failed_stages),
            *((_replayed(r),) if replays else ()),
            *((format_duration(r.landing_delay),) if scheduled else ()),
        )
        for r in runs
    ]
    whole = _table(header, rows, None, ())
    if _fits(whole, width):
        return whole
    ids = short_ids([row[0] for row in rows])
    took = [_took(r) or row[4] for r, row in zip(runs, rows, strict=True)]
    shown = [(i, *row[1:4], t, *row[5:]) for i, t, row in zip(ids, took, rows, strict=True)]
    narrow = (*header[:4], "TOOK", *header[5:])
    # STAGES, then FAILED, then REPLAY OF, then LATE (the docstring).
    return _table(narrow, shown, width, (1,), drop=tuple(range(5, len(header))))


#: The columns of a run's error and of a stage's ERROR cell in ``runs show``: as much as the
#: web page shows of them (``web/_views.MAX_ERROR``, ``web/_pages._CELL``), so a pipe or a file
#: holds what the page says. A narrower terminal cuts them further (``table_fit``).
_RUN_ERROR = 1000
_STAGE_ERROR = 200


def _one_line(text: str | None, width: int) -> str:
    return one_line(text, width) or "-"


def _stage_error(stage: StageRecord, day: str) -> str | None:
    """The ERROR cell: the skip reason, else the stage's error as every view reads it
    (``records.stage_error``), else since when and at which breakpoint an execution of it is
    paused before its start, which has no attempt to show it (the time of day alone on
    ``day``, the run's start date)."""
    error = stage.skip_reason or stage_error(stage.status, stage.attempts, stage.cancel_reason)
    if error is not None or not stage.paused_before_start:
        return error
    first, *more = stage.paused_before_start
    since = local_time(first.since)
    since = since[11:] if since.startswith(day) else since
    return f"paused since {since} at {first.reason}" + (f", and {len(more)} more" if more else "")


def _span_items(events: int, links: int, attributes: int) -> str | None:
    """The non-zero counts in words, ``672 span events and 3 span links``; None when all are
    zero."""
    said = [
        counted(count, noun)
        for count, noun in (
            (events, "span event"),
            (links, "span link"),
            (attributes, "span attribute"),
        )
        if count
    ]
    return " and ".join(said) if said else None


def not_read_note(run: RunRecord) -> str | None:
    """What the run's spans held that was not read (``tracking.spans.bounded``), None when
    nothing was left: ``999000 span events and 3 span links, past the first 1000 a span``."""
    left = _span_items(run.events_not_read, run.links_not_read, run.attributes_not_read)
    return None if left is None else f"{left}, past the first {MAX_SPAN_ITEMS} a span"


def dropped_note(run: RunRecord) -> str | None:
    """What the SDK that recorded the run's spans dropped past its span limits
    (``tracking.spans``, "Dropped when written"), None when nothing: ``672 span events when
    written``."""
    dropped = _span_items(
        run.events_dropped_when_written,
        run.links_dropped_when_written,
        run.attributes_dropped_when_written,
    )
    return None if dropped is None else f"{dropped} when written"


def _ran(attempts: Sequence[AttemptRecord]) -> list[AttemptRecord]:
    """The attempts this run executed: not a replay's fed ones (status ``replayed``), whose
    handler did not run. A fed stage's stand-in returns the recorded outputs at once, and its
    time is its wait for a worker slot in the replay: as DURATION and QUEUE it read as the
    stage's figures, neither the record's nor any work's. A fed stage shows ``-`` there, as
    its CPU and MEMORY do, and a report leaves it out of every stage figure alike
    (``reporting._replays``); the recorded figures are the original run's (``runs show``
    of the run its ``replay of`` line names)."""
    return [attempt for attempt in attempts if attempt.status != STATUS_REPLAYED]


def _request(run: RunRecord) -> str | None:
    """The run's request (its ``--input`` values, a CI's build parameters) as its run span
    recorded it: JSON, capped and redacted when it was captured (``(cut)`` after a capped
    one), on one line; None for a run started with none, or whose capture was off."""
    text = recorded_request(run.attributes)
    if text is None:
        return None
    cut_note = " (cut)" if run.attributes.get(PIPELINE_REQUEST_TRUNCATED) is True else ""
    return _one_line(text, _RUN_ERROR) + cut_note


def _threads_left(run: RunRecord) -> str | None:
    """The threads its stages left running at the run's end, as its run span recorded them
    (``cli/process_end.threads_left``), on one line; None when it recorded none."""
    left = run.attributes.get(PIPELINE_THREADS_LEFT)
    if not isinstance(left, (list, tuple)) or not left:
        return None
    named = ", ".join(str(thread) for thread in left)
    plural = "s" if len(left) > 1 else ""
    return _one_line(f"thread{plural} {named} still running at the run's end", _RUN_ERROR)


def format_run_table(run: RunRecord, width: int | None = None) -> str:
    """A run header and its stage table: status, start, duration, queue time, instances,
    attempts, cpu, memory, error (start is the first attempt's).

    QUEUE is the longest any attempt waited for a worker slot, as in the ``run`` summary (a
    retry that found a slot at once does not hide the wait of the attempt before it).
    DURATION is wall time, from the first attempt's start to the last one's end; a stage its
    executions were held at debugger breakpoints says for how long beside it (``1.7s (paused
    1.6s)``, ``paused_time``): an attempt's own span leaves a pause out, but a pause between two
    attempts (at a failure, then ``retry``) lies inside that window, and a pause before the
    first start or after the last failure outside it (docs/debugging.md, "Spans"). A replay's
    fed stage has ``-`` for both (``_ran`` says why).
    INSTANCES counts the instances that ran; ATTEMPTS is the most attempts one instance needed
    (1: no retry), the meaning the ``run`` summary gives it too. ERROR is the skip reason, else
    the last error of an instance whose final attempt has one (``cancelled: <why>`` for a stage
    a stop of the run cancelled, also one it caught paused before its start), as the ``run``
    summary reads it, else since when and at which breakpoint an execution of it is paused
    before its start (``StageRecord.paused_before_start``: it has no attempt to show it).

    ``width``: the columns of the terminal it is written to. When the whole table is wider, it
    reads narrower, in this order, each step only while it is still wider (``table_fit``):

    * START is the time of day alone when every stage started on the run's date, which the
      ``start`` line above says once (a run that crossed midnight keeps its dates);
      INSTANCES and ATTEMPTS read INST and TRIES (``watch`` says INST; the cells are counts
      of one or two digits, so the long headers only widened their columns);
      DURATION reads TOOK (its cells are 5 wide up to 99 hours), and a pause is a PAUSED
      column beside it, not 19 columns of ``1.7s (paused 1.6s)`` in every row;
    * STAGE and ERROR give way (cut with an ellipsis, the wider first, to 12 columns);
    * MEMORY, then CPU, then QUEUE, then PAUSED are left out, a line under the table naming
      them and ``--wide``: what a run cost matters after what it did and how long it took,
      and a pause is the debugger's, not the run's;
    * STAGE and ERROR give way further, to 8 columns (``table_fit.LAST_GIVEN``), a last
      resort that fits 60 columns: the other columns then take 42 or more.

    STATUS, START, DURATION and the counts are never cut, nor the run's id: at 80 columns a
    table of long names keeps STAGE, STATUS, START, TOOK, QUEUE, INST, TRIES, CPU and ERROR.
    None (a pipe, a file, ``--wide``, ``--json``'s absence aside): the whole table.
    """
    # One zone for the view: the run's start and its stages' (a run rarely spans a change).
    times = [run.start, *(s.attempts[0].start for s in run.stages if s.attempts)]
    head = [
        f"run       {run.run_id}",
        f"pipeline  {run.pipeline.translate(CONTROL_ESCAPES)}",
        f"status    {run.status.translate(CONTROL_ESCAPES)}",
        f"start     {local_time(run.start)} ({_zone(times)})",
        f"duration  {format_run_duration(run.duration, run.lasted_at_least)}",
    ]
    if (due := scheduled_at(run.attributes)) is not None:  # a run ``serve`` scheduled
        late = format_duration(landing_delay(run.attributes, run.start))
        head.append(f"scheduled {local_time(due)} (started {late} late)")
    if (request := _request(run)) is not None:
        head.append(f"request   {request}")
    if (left := _threads_left(run)) is not None:
        head.append(f"left      {left}")
    if run.replay_of:  # a replay (``taskdaemon replay``): the run it re-executed
        head.append(f"replay of {run.replay_of.translate(CONTROL_ESCAPES)}")
    if run.error or run.error_type:
        # "Type: message", as Python and the web page's attempts write it: with a space only,
        # "CommandFailedError stage 'build' failure: ..." read as one phrase.
        error = ": ".join(filter(None, (run.error_type, run.error)))
        head.append(f"error     {_one_line(error, _RUN_ERROR)}")
    if (note := not_read_note(run)) is not None:
        head.append(f"not read  {note}")
    if (note := dropped_note(run)) is not None:
        head.append(f"dropped   {note}")
    if width is not None:  # the free text of the head gives way too: pipeline, request, error
        head = [
            cut_columns(line, width) if line.startswith(("pipeline", "request", "error")) else line
            for line in head
        ]
    header = (
        "STAGE",
        "STATUS",
        "START",
        "DURATION",
        "QUEUE",
        "INSTANCES",
        "ATTEMPTS",
        "CPU",
        "MEMORY",
        "ERROR",
    )
    rows: list[tuple[str, ...]] = []
    pauses = []  # each stage's PAUSED cell
    day = local_time(run.start)[:10]
    for stage in run.stages:
        first = stage.attempts[0] if stage.attempts else None
        ran = _ran(stage.attempts)
        # An attempt not ended (running, waiting, cut short by a crash) leaves the stage's end
        # unknown: its DURATION is ``-``, as a running run's is, not the span of the attempts
        # that ended, which read as the whole stage's (812ms for a stage 3s into its work).
        ends = [a.end for a in ran if a.end is not None]
        ended = ran and len(ends) == len(ran)
        duration = max(0.0, max(ends) - ran[0].start) if ended else None
        cpu = [a.cpu_seconds for a in stage.attempts if a.cpu_seconds is not None]
        mem = [a.peak_memory_bytes for a in stage.attempts if a.peak_memory_bytes is not None]
        queues = [a.queue_time for a in ran if a.queue_time is not None]
        paused = sum(a.paused_time or 0.0 for a in stage.attempts)
        pauses.append(format_duration(paused) if paused else "-")
        rows.append(
            (
                stage.name,
                stage.status,
                local_time(first.start if first else None),
                format_duration(duration),
                format_duration(max(queues) if queues else None),
                str(len({a.instance for a in stage.attempts})) if stage.attempts else "-",
                str(max(a.attempts_made for a in stage.attempts)) if stage.attempts else "-",
                format_duration(sum(cpu)) if cpu else "-",
                format_bytes(max(mem)) if mem else "-",
                _one_line(_stage_error(stage, day), _STAGE_ERROR),
            )
        )
    noted = [
        (*row[:3], row[3] + ("" if pause == "-" else f" (paused {pause})"), *row[4:])
        for row, pause in zip(rows, pauses, strict=True)
    ]
    whole = _table(header, noted, None, ())
    if _fits(whole, width):
        return "\n".join(head) + "\n\n" + whole
    if all(row[2] == "-" or row[2][:10] == day for row in rows):  # the head says the date
        rows = [(row[0], row[1], row[2][11:] or row[2], *row[3:]) for row in rows]
    narrow: tuple[str, ...] = (*header[:3], "TOOK", header[4], "INST", "TRIES", *header[7:])
    # Left out first to last: MEMORY, CPU, QUEUE, then PAUSED (the docstring).
    drop: tuple[int, ...] = (8, 7, 4)
    if any(pause != "-" for pause in pauses):
        narrow = (*narrow[:4], "PAUSED", *narrow[4:])
        rows = [(*row[:4], pause, *row[4:]) for row, pause in zip(rows, pauses, strict=True)]
        drop = (9, 8, 5, 4)
    table = _table(narrow, rows, width, (0, len(narrow) - 1), drop=drop)
    return "\n".join(head) + "\n\n" + table
