"""``run``'s progress lines on stderr: one line per stage transition (``ProgressView``).

``debug FILE`` and ``replay`` write the same lines (with their own hints). Apart from
``cli/run.py`` so that the command's module holds the command, and the line's rules (the clock
column, what gives way on a narrow terminal, hints never cut) are read in one place.

Decision: at ``--log-level debug`` or ``trace`` the console gets the run log's records too,
written by the monitor's worker thread a linger after their events (``_record_queue``), and
they landed after the progress lines of the next stages: ``a trigger 0 ... satisfied`` below
``a running``, ``a.0.1 mapped outputs`` below ``b running``. There the command builds the
monitor before the run (``run.build_observers``) and the view has it write what is queued
before each line (:meth:`ProgressView.settle_first`), so each line follows the records of
the events before it. At other levels nothing changes: the view writes to its stream as it
did, the monitor's records stay on the worker, and ``run`` still loads its telemetry on a
thread (``cli/deferred.py``).

What a Python handler prints goes to the process's stdout, buffered by blocks on a pipe or a
file: each line of the view writes it out first (``stdout_first``), so that a log of both
streams (``run FILE > log 2>&1``) has it between the stage's ``running`` and its end, not
after the run's last line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from typing import IO, Protocol

from taskdaemon.pipeline.cli.terminal_width import summary_width
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageRetrying,
    StageSkipped,
    StageStarted,
)
from taskdaemon.pipeline.loops import CommandFailedError
from taskdaemon.pipeline.redaction import redact_lines
from taskdaemon.pipeline.status_rules import not_reached_reason
from taskdaemon.pipeline.stdout_first import flush_stdout
from taskdaemon.pipeline.table_fit import cut_columns, text_columns, wrapped
from taskdaemon.pipeline.terminal_text import one_line, shown

__all__ = ["ProgressView", "header_lines"]


class _Stream(Protocol):
    """What the view writes its lines to."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class _SettledStream:
    """``stream``, whose every write ``settle`` precedes (the module docstring): what stdout
    holds, and the monitor's records queued."""

    def __init__(self, stream: _Stream, settle: Callable[[], None]) -> None:
        self._stream = stream
        self._settle = settle

    def write(self, text: str, /) -> int:
        self._settle()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()


def header_lines(header: str, width: int | None) -> str:
    """The run's first line, wrapped between words on a terminal ``width`` columns wide, as
    the debugger's opening line is (``table_fit.wrapped``): on 60 columns the terminal broke
    it mid-word, in the workspace's path. Whole, and one line, on a pipe (None)."""
    return "".join(f"{line}\n" for line in wrapped(header, width))


#: The fewest characters of a progress line's error kept on a narrow terminal: a failure line
#: with its retry note leaves 14 of 80 columns, and the summary and the stderr tail follow.
_MIN_DETAIL = 10


class ProgressView:
    """An engine observer writing one line per stage transition to ``stream`` (stderr).

    Lines read ``  1.23s  stage[#instance]  what``; the first column is a clock (seconds since
    the run started, fixed width so lines align: the origin of ``runs show --at``, ``dag --at``
    and ``replay --step``, and the run's last line reads its duration); durations in the text
    use ``format_duration`` like every other view. Never blocks beyond a line write.

    Decision: the clock is the engine's, read from the events (each line's event's ``at``
    less ``RunStarted.at``), not the view's own at the line's writing. It counted from the
    view's making at first (the set-up of telemetry and observers before the run made every
    line late), then from the moment ``RunStarted`` reached the view: the engine writes the
    run's start and names it before it tells its observers, and an entry stage read
    ``running`` at ``0.00s`` while ``report``'s critical path said it had waited, and the
    run's last line read less than its duration. The run's start is the span store's, every
    view's; what happened before its first stage is that stage's wait, in both views.

    The view reads the width of the terminal ``stream`` is itself (``summary_width``), once,
    when made. On a terminal, a wrapped line breaks the clock column, so a line wider than the
    terminal gives way as a table's row does: a stage's name longer than its 24-column label
    is cut (to no fewer than those 24), then an error or a reason ending the line (a failure,
    a skip, the run's end) is cut to fit it, keeping at least ``_MIN_DETAIL`` columns (the
    summary, ``runs show`` and ``logs`` have them whole). A pipe or a file keeps every name
    and 80 characters of each error. Hints (a command to copy) are never cut: one that does not
    fit after its line goes on a line of its own, under the stage's label. The run's first
    line (``run ID of PIPELINE started (workspace PATH)``) wraps between words instead
    (:func:`header_lines`): it names no stage, and every word of it is to be read whole.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        approve_hint: Callable[[str, str], str | None] | None = None,
        attach_hint: bool = True,
        header: Callable[[str], str] | None = None,
        replayed: Collection[str] = (),
        reused: Collection[tuple[str, int]] = (),
    ) -> None:
        self._stream: _Stream = _SettledStream(
            stream if stream is not None else sys.stderr, flush_stdout
        )
        self._width = summary_width(stream if stream is not None else sys.stderr)
        self._start: float | None = None  # RunStarted.at (engine clock): the clock's origin
        self._hint = approve_hint  # (run id, stage) -> the command that approves it, if any
        # The run's first line (``run ... started``), written when the run starts: before any
        # line of its stages, an entry stage's request for an approval included, which the
        # engine makes before ``start_run`` returns.
        self._header = header
        # A pause names ``debug attach RUN`` and how to stop the wait, but not in ``debug``'s
        # own progress: its user is at the prompt already.
        self._attach_hint = attach_hint
        # A replay's fed stages end as its summary says they did, ``replayed``, and that is
        # their only line: their stand-in handler's ``running`` and ``success in 0ms`` told of
        # work nobody did.
        self._replayed = frozenset(replayed)
        # (stage, instance): as a fed stage's, one line. Kept as given: a replay decides which
        # it reuses as each starts (``replay/reuse.py``), before this view hears of it.
        self._reused = reused
        self._multi: set[str] = set()  # stages with more than one instance: show #n
        self._started: dict[str, float] = {}  # task_run_id -> StageStarted.at (engine clock)
        self._skipped: set[str] = set()  # stages whose skip line is written
        self._reached: set[tuple[str, int]] = set()  # (stage, instance) started or paused
        self._unreached: list[tuple[str, int]] = []  # cancelled queued: said at the run's end

    def _is_replayed(self, stage: str, instance: int) -> bool:
        return stage in self._replayed or (stage, instance) in self._reused

    def settle_first(self, settle: Callable[[], None]) -> None:
        """Call ``settle`` (the monitor's ``flush``) before each line, so that the run log's
        records of the events before it are written first (the module docstring)."""
        self._stream = _SettledStream(self._stream, settle)

    def _write(
        self,
        at: float,
        stage: str,
        what: str,
        instance: int | None = None,
        *,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        label = stage if instance is None or stage not in self._multi else f"{stage}#{instance}"
        if self._width is not None:  # a long name gives way, to its column's 24 (the docstring)
            # The clock and its gap (11), a space, ``what``, and the least of the detail.
            fixed = 12 + len(what) + (2 + _MIN_DETAIL if detail else 0)
            label = cut_columns(label, max(24, self._width - fixed))
        if self._start is None:  # no ``RunStarted`` seen: the first line is the origin
            self._start = at
        elapsed = at - self._start
        line = f"{elapsed:8.2f}s  {label:<24} {what}"
        if detail and self._width is None:  # an error or a reason: cut (the class docstring)
            line += f": {one_line(detail, 80)}"
        elif detail and self._width is not None:
            room = max(_MIN_DETAIL, self._width - text_columns(line) - 2)
            line += f": {cut_columns(one_line(detail, room), room)}"
        lines = [line]
        if hint and (self._width is None or text_columns(f"{line} {hint}") <= self._width):
            lines[0] += f" {hint}"
        elif hint:  # a command to copy, whole (the class docstring)
            lines.append(f"{'':12}{hint}")
        # ``what`` may hold text from outside (an approver's name, a breakpoint's reason).
        self._stream.write("".join(f"{shown(line)}\n" for line in lines))
        self._stream.flush()

    def _write_tail(self, tail: str) -> None:
        """A failed command's last stderr lines, indented under its failure line (redacted,
        control characters escaped: the text came from the command)."""
        for line in redact_lines(tail.splitlines()):
            self._stream.write(f"{'':10}  | {shown(line)}\n")
        self._stream.flush()

    def on_event(self, event: EngineEvent) -> None:
        """Write the line for ``event`` (most events have none); a failed command's stderr tail
        follows its failure line."""
        if isinstance(event, RunStarted):
            self._start = event.at  # the clock's origin (the class docstring)
            # An event stage's instances are numbered from its first line on: its first pause
            # read "implementation", its second "implementation#1", then "implementation#0".
            self._multi.update(stage.name for stage in event.pipeline.stages if stage.event_types)
            if self._header is not None:
                self._stream.write(header_lines(self._header(event.run_id), self._width))
                self._stream.flush()
        elif isinstance(event, StageStarted):
            if event.event is not None or event.instance > 0:
                self._multi.add(event.stage)
            self._started[event.task_run_id] = event.at
            self._reached.add((event.stage, event.instance))
            if self._is_replayed(event.stage, event.instance):
                return  # it never ran: its one line is ``replayed`` (the constructor)
            retry = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self._write(event.at, event.stage, f"running{retry}", event.instance)
        elif isinstance(event, StageFinished):
            started = self._started.pop(event.task_run_id, None)
            if started is None and event.stage in self._skipped:
                return  # the end of an execution skipped before it ran: its skip line said it
            if started is None and (event.stage, event.instance) not in self._reached:
                # A stop caught it queued: not reached, as the run's records say (engine/_run.py,
                # ``not_reached``); the run's status, which the reason names, comes at its end.
                self._unreached.append((event.stage, event.instance))
                return
            took = f" in {format_duration(event.at - started)}" if started is not None else ""
            error = event.cancel_reason if event.cancel_reason else event.error
            retry = " (will retry)" if event.will_retry else ""
            replayed = self._is_replayed(event.stage, event.instance)
            what = "replayed" if replayed else f"{event.status}{took}{retry}"
            self._write(event.at, event.stage, what, event.instance, detail=error)
            if isinstance(event.exception, CommandFailedError) and event.exception.stderr_tail:
                self._write_tail(event.exception.stderr_tail)
        elif isinstance(event, StageRetrying):
            self._write(
                event.at, event.stage, f"retrying in {format_duration(event.delay)}", event.instance
            )
        elif isinstance(event, StageSkipped):
            self._skipped.add(event.stage)
            self._write(event.at, event.stage, "skipped", detail=event.reason)
        elif isinstance(event, ApprovalRequested):
            command = self._hint(event.run_id, event.stage) if self._hint else None
            hint = None if command is None else f"({command})"
            self._write(event.at, event.stage, "waiting for approval", hint=hint)
        elif isinstance(event, ApprovalResolved):
            if event.timed_out:
                what = "approval timed out"
            elif event.by == "engine" and not event.approved:  # no one said no (_approvals.py)
                what = "approval withdrawn"
            else:
                what = "approved" if event.approved else "rejected"
                what += f" by {event.by}" if event.by else ""
            self._write(event.at, event.stage, what)
        elif isinstance(event, BreakpointHit):
            if event.instance > 0:  # a fan-out paused before its first start: say which
                self._multi.add(event.stage)
            self._reached.add((event.stage, event.instance))
            attach = None
            if self._attach_hint:  # what it waits for and how to stop it: stdin may be no
                # terminal (CI), where nothing else says the process waits for someone.
                attach = (
                    f"(waiting for: taskdaemon debug attach {event.run_id}; "
                    "Ctrl-C or SIGTERM cancels the run)"
                )
            self._write(
                event.at, event.stage, "paused", event.instance, detail=event.reason, hint=attach
            )
        elif isinstance(event, BreakpointResumed):
            self._write(
                event.at, event.stage, f"resumed: {event.action} by {event.by}", event.instance
            )
        elif isinstance(event, RunFinished):
            for stage, instance in self._unreached:
                self._write(
                    event.at, stage, f"skipped: {not_reached_reason(str(event.status))}", instance
                )
            self._write(event.at, f"run {event.pipeline}", str(event.status), detail=event.error)
