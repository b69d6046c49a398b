"""``run``'s summary table on stdout, once the run has ended (``render_summary``).

``debug FILE`` and ``replay`` print the same table. Each cell says what the run's records say
(``summary_error`` is ``runs show``'s error of the stage), so that the summary and every later
view of the run agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.table_fit import (
    LAST_GIVEN,
    aligned,
    cut_columns,
    fit,
    text_columns,
    wrapped,
)
from taskdaemon.pipeline.telemetry import STATUS_REPLAYED
from taskdaemon.pipeline.terminal_text import one_line

if TYPE_CHECKING:  # the engine is imported when the run starts (start-up time)
    from taskdaemon.pipeline.engine import RunResult

__all__ = ["render_summary", "summary_error"]

#: Characters of a stage's error the summary keeps on a pipe or in a file (``runs show`` has
#: it whole).
_ERROR_WIDTH = 70


def summary_error(result: RunResult, stage: str) -> str | None:
    """The ERROR cell of ``stage`` in the summary: its skip reason, else the last error of an
    instance whose final started execution has one (``records.outcome_error``), else that of an
    execution a stop cancelled while held at a breakpoint before its start (``cancelled:
    <why>``), as the records do: what every view of its records says
    (``records.stage_error``)."""
    from taskdaemon.pipeline.records import outcome_error  # noqa: PLC0415 - at the run's end

    # A skipped stage's reason first: one whose executions a stop caught queued says it was
    # not reached, as ``runs show`` does, rather than its executions' cancellation. Of the
    # others, only the executions the records know of (started, or held at a breakpoint): an
    # instance or a retry a stop caught queued has no span, so its cancellation is no view's.
    # An execution held at a breakpoint that a stop cancelled has no attempt in the records:
    # they say ``cancelled: <why>`` only when no started execution has an error
    # (``records.stage_error``), and so does the summary: a sibling instance's failure that
    # stopped the run is the stage's error, not the cancellation it caused.
    executions = result.executions.get(stage, ())
    return (
        result.skip_reasons.get(stage)
        or outcome_error(
            (ex.instance, ex.error) for ex in executions if ex.times.running is not None
        )
        or outcome_error((ex.instance, ex.error) for ex in executions if ex.held)
    )


def render_summary(result: RunResult, pipeline: Pipeline, width: int | None = None) -> str:
    """The summary table of a finished run, stages in file order.

    Columns: stage, status, instances (how many ran), attempts (the most any one instance
    needed, as in ``runs show``; ``-`` for a stage that never started), queue time (the
    longest wait for a slot), duration (first start to last end; a replay's fed stage, whose
    handler did not run, has ``-`` for both, as in ``runs show``), error (that of an instance
    whose last attempt failed, as ``runs show`` reads it: an attempt a retry made good is not
    the stage's error; or why the stage was skipped or cancelled).

    ``width``: the columns of the terminal the summary is written to, which it fits by the
    rule every table of the terminal follows (``table_fit``), since a wrapped row no longer
    reads as a row: only when the whole table is wider, INSTANCES and ATTEMPTS read INST and
    TRIES (as in ``runs show``), then STAGE and ERROR give way, the wider first, to no fewer
    than 12 columns, and, as a last resort, to 8 (``table_fit.LAST_GIVEN``, as in ``runs
    show``): the other columns take 49, so at 12 a 60-column terminal wrapped every row with
    an error, its cut tail under the STAGE column. STATUS, the counts and the durations are
    never cut, and no column is left out (``run`` has no ``--wide``; ``runs show RUN`` has
    every column and whole errors). The run's error line is wrapped to the width, not cut.
    None (a pipe, a file) keeps up to 70 characters of each stage's error and 200 of the run's.
    """
    header = ("STAGE", "STATUS", "INSTANCES", "ATTEMPTS", "QUEUE", "DURATION", "ERROR")
    rows: list[tuple[str, ...]] = []
    for stage in pipeline.stages:
        every = result.executions.get(stage.name, ())
        # What ran: an execution skipped or cancelled before its start is no attempt (its
        # error, a cancellation's reason, still shows).
        executions = [ex for ex in every if ex.times.running is not None]
        status = str(result.stage_status.get(stage.name, "pending"))
        instances = len({ex.instance for ex in executions})
        attempts = max((ex.attempt for ex in executions), default=0)
        # A replay's fed stage did no work: its times are its stand-in's wait for a slot in
        # the replay, so QUEUE and DURATION say ``-``, as ``runs show`` does (``run_tables._ran``).
        timed = [] if status == STATUS_REPLAYED else executions
        queues = [ex.times.queue_time for ex in timed if ex.times.queue_time is not None]
        starts = [ex.times.running for ex in timed if ex.times.running is not None]
        ends = [ex.times.ended for ex in timed if ex.times.ended is not None]
        duration = max(ends) - min(starts) if starts and ends else None
        error = summary_error(result, stage.name)
        rows.append(
            (
                stage.name,
                status,
                str(instances) if executions else "-",
                str(attempts) if executions else "-",
                format_duration(max(queues) if queues else None),
                format_duration(duration),
                error or "",
            )
        )
    rows = [(*row[:-1], one_line(row[-1], _ERROR_WIDTH)) for row in rows]
    lines = aligned(header, rows)
    if width is not None and any(text_columns(line) > width for line in lines):
        narrow = (*header[:2], "INST", "TRIES", *header[4:])
        lines = fit(narrow, rows, width, (0, len(header) - 1), floor=LAST_GIVEN).lines
    total = None if result.finished_at is None else result.finished_at - result.started_at
    lines.append("")
    lines.append(f"run {result.run_id} {result.status} in {format_duration(total)}")
    if result.error:
        # Wrapped, not cut: it is no table row, and its end is what a failure is read for (the
        # exit code, the stderr's last lines). A word wider than the line (a path, a CJK
        # sentence with no space) is still cut to it.
        said = wrapped(f"error: {one_line(result.error, 200)}", width)
        lines.extend(said if width is None else (cut_columns(line, width) for line in said))
    return "\n".join(lines)
