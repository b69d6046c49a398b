"""``taskdaemon run FILE``: validate a pipeline file, run it, show progress, summarise.

::

    taskdaemon run FILE [--input k=v ...] [--input-file F] [--approve STAGE ... | --auto-approve]
                        [--workspace DIR] [--quiet] [--watch]
                        [--break STAGE[:CEL] ...] [--break-on-failure]

* The request is the mapping of ``--input-file`` (JSON or YAML) updated by each ``--input k=v``;
  a value is parsed as JSON when it is valid JSON (``n=3``, ``flags=[1,2]``), else kept as text.
* The file is validated and every stage's loop type resolved before anything runs; an invalid
  file prints its issues (one line each, no traceback) and exits 2.
* Progress goes to stderr, one line per stage transition with the time since the run started.
  The summary table (stage, status, instances, attempts, queue time, duration, error or skip
  reason) and the run id go to stdout. ``--quiet`` keeps only the run id on stdout, and on
  stderr a wait for an approval (with its command) and a failed run's reason; it overrides
  ``--watch``. (``replay -q`` and ``debug FILE -q`` drop less: their help says what.)
  ``--watch`` replaces the progress lines with a live table on stderr when it is a terminal
  (one row per stage: state, elapsed time, fan-out progress, what it waits for), or with one
  line per stage state change when it is not (``taskdaemon watch``, ``cli/watch.py``).
* Approvals: ``--approve STAGE`` grants the named stages' approvals as soon as they are asked,
  ``--auto-approve`` grants all. Otherwise a stage waiting for approval is announced with the
  command that grants it: the run is served on its control socket
  (``$TASKDAEMON_HOME/control/<run_id>.sock``) for ``taskdaemon approve / publish / cancel``.
* Debugging: any run can be debugged from another terminal (``taskdaemon debug attach RUN``,
  over the control socket); ``--break`` / ``--break-on-failure`` / ``TASKDAEMON_BREAKPOINTS``
  start it with breakpoints (see ``cli/debug.py``).
* Workspace: each run gets ``DIR/<run_id>`` (``--workspace DIR``, default
  ``$TASKDAEMON_HOME/workspaces``), handed to handlers as ``ctx.workspace``.
* Python loop types import with the current directory first on ``sys.path``
  (``examples.loops:plan`` works from the repository root).
* Exit codes: 0 the run succeeded, 1 it failed (or was cancelled through ``taskdaemon cancel``),
  2 invalid file or arguments (a request that lacks a required input, a workspace that cannot
  be created), 130 cancelled by Ctrl-C
  (SIGINT; SIGTERM gives 143, SIGHUP 129: the terminal closed, unless ignored under ``nohup``;
  ``cli/hangup.py``). The first signal cancels the run cleanly (running commands are
  killed with their process groups; a sync handler's thread, which cannot be, is not waited
  for once the run has ended); a second one exits at once.
* Lost telemetry never changes the exit code, which is the pipeline's: a span store that cannot
  be opened is one warning line at start, spans it failed to write (a full disk) are one warning
  line when they start failing and one at the end with how many were lost, and the metric
  ``taskdaemon_spans_dropped_total`` counts them (see ``docs/span-store.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from taskdaemon.pipeline.cli.approval_policy import (
    ApprovalPolicy,
    add_approval_options,
)
from taskdaemon.pipeline.cli.debug_socket import debug_op
from taskdaemon.pipeline.cli.inputs import parse_inputs
from taskdaemon.pipeline.cli.log_options import add_log_level_option, settings_overrides
from taskdaemon.pipeline.cli.options import (
    add_input_options,
    add_workspace_option,
    cannot_serve,
    workspace_root,
)
from taskdaemon.pipeline.cli.refusal import refuse, say
from taskdaemon.pipeline.cli.stop_signals import StopSignals
from taskdaemon.pipeline.cli.terminal_width import summary_width
from taskdaemon.pipeline.control import ControlServer, handle_status
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.errors import PipelineError, SettingsError
from taskdaemon.pipeline.event_loop import run as run_loop
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
from taskdaemon.pipeline.heap import tuned_collector
from taskdaemon.pipeline.loops import CommandFailedError, LoopRegistry
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.redaction import redact_lines
from taskdaemon.pipeline.run_state import not_reached_reason
from taskdaemon.pipeline.table_fit import MIN_GIVEN, aligned, cut_columns, text_columns
from taskdaemon.pipeline.terminal_text import one_line, shown

if TYPE_CHECKING:  # the engine is imported when the run starts (start-up time)
    from taskdaemon.pipeline.engine import Engine, RunResult

__all__ = [
    "ApprovalPolicy",
    "Observers",
    "ProgressView",
    "build_observers",
    "parse_inputs",
    "register",
    "render_summary",
    "run_pipeline",
    "summary_error",
    "summary_width",
]

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


DESCRIPTION = """\
Validate a pipeline file, run it, show its progress on stderr and a summary on stdout.

Summary columns: INSTANCES is how many instances of the stage ran (more than one for event
stages and fan-out); ATTEMPTS is the most attempts one instance needed (1: no retry); QUEUE the
longest wait for a worker slot; DURATION from the first start to the last end; ERROR the first
error, why the stage was skipped, or why it was cancelled.

Exit codes: 0 the run succeeded, 1 it failed or was cancelled, 2 invalid file or arguments
(a request that lacks an input a stage needs, a workspace that cannot be created), 130
interrupted by Ctrl-C (143 by SIGTERM, 129 by SIGHUP: the terminal closed).
"""


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    parser = subparsers.add_parser(
        "run",
        help="run a pipeline file and show its progress",
        description=DESCRIPTION,
    )
    parser.add_argument("file", metavar="FILE", help="pipeline file (.yaml, .yml, .json, .toml)")
    add_input_options(parser)
    add_approval_options(parser)
    add_workspace_option(parser)
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the run id (no summary) and no progress lines (nor --watch's table); "
        "a wait for an approval not granted, with its command, and a failed run's reason still "
        "go to stderr",
    )
    parser.add_argument(
        "--watch", action="store_true", help="show a live table of the stages (stderr)"
    )
    parser.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve /metrics, /healthz, /readyz and the run API during the run "
        "(HOST defaults to TASKDAEMON_METRICS_HOST)",
    )
    add_log_level_option(parser)
    from taskdaemon.pipeline.cli.breakpoints import add_break_options  # noqa: PLC0415

    add_break_options(parser)
    parser.set_defaults(func=run_command)


# -- request ----------------------------------------------------------------------------------


# -- progress ---------------------------------------------------------------------------------


class ProgressView:
    """An engine observer writing one line per stage transition to ``stream`` (stderr).

    Lines read ``  1.23s  stage[#instance]  what``; the first column is a clock (seconds since
    the run started, fixed width so lines align: the origin of ``runs show --at``, ``dag --at``
    and ``replay --step``, and the run's last line reads its duration; it counted from the
    view's making, up to a tenth of a second earlier, while telemetry and the observers were
    set up); durations in the text use ``format_duration`` like every other view. Never blocks
    beyond a line write.

    The view reads the width of the terminal ``stream`` is itself (``summary_width``), once,
    when made. On a terminal, a wrapped line breaks the clock column, so a line wider than the
    terminal gives way as a table's row does: a stage's name longer than its 24-column label
    is cut (to no fewer than those 24), then an error or a reason ending the line (a failure,
    a skip, the run's end) is cut to fit it, keeping at least ``_MIN_DETAIL`` columns (the
    summary, ``runs show`` and ``logs`` have them whole). A pipe or a file keeps every name
    and 80 characters of each error. Hints (a command to copy) are never cut: one that does not
    fit after its line goes on a line of its own, under the stage's label.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        approve_hint: Callable[[str, str], str | None] | None = None,
        attach_hint: bool = True,
        header: Callable[[str], str] | None = None,
        replayed: Collection[str] = (),
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = summary_width(self._stream)
        self._clock = clock
        self._start = clock()
        self._hint = approve_hint  # (run id, stage) -> the command that approves it, if any
        # The run's first line (``run ... started``), written when the run starts: before any
        # line of its stages, an entry stage's request for an approval included, which the
        # engine makes before ``start_run`` returns.
        self._header = header
        # A pause names ``debug attach RUN``, but not in ``debug``'s own progress: its user is
        # at the prompt already.
        self._attach_hint = attach_hint
        # A replay's fed stages end as its summary says they did, ``replayed``, and that is
        # their only line: their stand-in handler's ``running`` and ``success in 0ms`` told of
        # work nobody did.
        self._replayed = frozenset(replayed)
        self._multi: set[str] = set()  # stages with more than one instance: show #n
        self._started: dict[str, float] = {}  # task_run_id -> StageStarted.at (engine clock)
        self._skipped: set[str] = set()  # stages whose skip line is written
        self._reached: set[tuple[str, int]] = set()  # (stage, instance) started or paused
        self._unreached: list[tuple[str, int]] = []  # cancelled queued: said at the run's end

    def _write(
        self,
        stage: str,
        what: str,
        instance: int | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        label = stage if instance is None or stage not in self._multi else f"{stage}#{instance}"
        if self._width is not None:  # a long name gives way, to its column's 24 (the docstring)
            # The clock and its gap (11), a space, ``what``, and the least of the detail.
            fixed = 12 + len(what) + (2 + _MIN_DETAIL if detail else 0)
            label = cut_columns(label, max(24, self._width - fixed))
        elapsed = self._clock() - self._start
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
            self._start = self._clock()  # the clock's origin (the class docstring)
            # An event stage's instances are numbered from its first line on: its first pause
            # read "implementation", its second "implementation#1", then "implementation#0".
            self._multi.update(stage.name for stage in event.pipeline.stages if stage.event_types)
            if self._header is not None:
                self._stream.write(self._header(event.run_id) + "\n")
                self._stream.flush()
        elif isinstance(event, StageStarted):
            if event.event is not None or event.instance > 0:
                self._multi.add(event.stage)
            self._started[event.task_run_id] = event.at
            self._reached.add((event.stage, event.instance))
            if event.stage in self._replayed:
                return  # it never ran: its one line is ``replayed`` (the constructor)
            retry = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self._write(event.stage, f"running{retry}", event.instance)
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
            what = "replayed" if event.stage in self._replayed else f"{event.status}{took}{retry}"
            self._write(event.stage, what, event.instance, error)
            if isinstance(event.exception, CommandFailedError) and event.exception.stderr_tail:
                self._write_tail(event.exception.stderr_tail)
        elif isinstance(event, StageRetrying):
            self._write(event.stage, f"retrying in {format_duration(event.delay)}", event.instance)
        elif isinstance(event, StageSkipped):
            self._skipped.add(event.stage)
            self._write(event.stage, "skipped", detail=event.reason)
        elif isinstance(event, ApprovalRequested):
            command = self._hint(event.run_id, event.stage) if self._hint else None
            hint = None if command is None else f"({command})"
            self._write(event.stage, "waiting for approval", hint=hint)
        elif isinstance(event, ApprovalResolved):
            if event.timed_out:
                what = "approval timed out"
            elif event.by == "engine" and not event.approved:  # no one said no (_approvals.py)
                what = "approval withdrawn"
            else:
                what = "approved" if event.approved else "rejected"
                what += f" by {event.by}" if event.by else ""
            self._write(event.stage, what)
        elif isinstance(event, BreakpointHit):
            if event.instance > 0:  # a fan-out paused before its first start: say which
                self._multi.add(event.stage)
            self._reached.add((event.stage, event.instance))
            attach = f"(taskdaemon debug attach {event.run_id})" if self._attach_hint else None
            self._write(event.stage, "paused", event.instance, event.reason, attach)
        elif isinstance(event, BreakpointResumed):
            self._write(event.stage, f"resumed: {event.action} by {event.by}", event.instance)
        elif isinstance(event, RunFinished):
            for stage, instance in self._unreached:
                self._write(stage, f"skipped: {not_reached_reason(str(event.status))}", instance)
            self._write(f"run {event.pipeline}", str(event.status), detail=event.error)


class Observers(list[Any]):
    """A run's engine observers, and the Prometheus registry ``--serve`` exports (None without
    it), whose metrics every dump the process writes of its run holds (``taskdaemon dump``,
    ``SIGUSR1``, the debugger's ``dump``, the HTTP route: docs/debugging.md, "Dumps")."""

    registry: Any = None


class ApprovalHint:
    """With ``--quiet`` (no progress lines), the one line a wait for an approval still gets on
    ``stream`` (stderr), with the command that grants it: the run waits for it, and the run id
    the command needs was printed only when the run ended. A stage the command line approves
    (``approvals``) gets none. On a terminal too narrow for the line, the command goes whole on
    a line of its own, as ``ProgressView``'s hints do, and the stage's name above is cut."""

    def __init__(self, approvals: ApprovalPolicy, stream: IO[str] | None = None) -> None:
        self._approvals = approvals
        self._stream = stream if stream is not None else sys.stderr
        self._width = summary_width(self._stream)

    def wants_record(self, kind: type) -> bool:
        """Only ``ApprovalRequested`` (see ``ApprovalPolicy.wants_record``)."""
        return kind is ApprovalRequested

    def on_event(self, event: EngineEvent) -> None:
        """Say the wait for ``event``'s approval, unless the command line grants it."""
        if isinstance(event, ApprovalRequested) and not self._approvals.wants(event.stage):
            hint = f"(taskdaemon approve {event.run_id} {event.stage})"
            lines = [f"{event.stage} waits for approval {hint}"]
            if self._width is not None and text_columns(lines[0]) > self._width:
                stage = cut_columns(event.stage, max(1, self._width - 19))
                lines = [f"{stage} waits for approval", f"    {hint}"]
            self._stream.write("".join(f"{shown(line)}\n" for line in lines))
            self._stream.flush()


def awaits_approval(pipeline: Pipeline, approvals: ApprovalPolicy) -> bool:
    """Whether a stage of ``pipeline`` waits for an approval ``approvals`` does not grant:
    only then does ``-q`` need its :class:`ApprovalHint`. An observer more than the monitor
    costs every stage the engine's fan-out (``Observers.callables``), and a pipeline with no
    such wait would pay it for a line it never prints."""
    return any(
        stage.awaits_approval and not approvals.wants(stage.name) for stage in pipeline.stages
    )


def build_observers(
    args: argparse.Namespace,
    *,
    progress: ProgressView | None,
    approvals: ApprovalPolicy,
    stack: contextlib.AsyncExitStack,
    hint_approvals: bool = True,
) -> Observers:
    """The engine observers of one ``taskdaemon run``, in the order they see each event.

    This is the one place to extend (monitoring adds its observer here and registers its
    shutdown on ``stack``, which is closed after the run ended, before the process exits).
    ``approvals`` is among them only when it grants something (``ApprovalPolicy.grants``);
    ``-q``'s :class:`ApprovalHint` only when ``hint_approvals`` (:func:`awaits_approval`).
    """
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    settings = load_settings(**settings_overrides(args))
    serve = getattr(args, "serve", None)
    # Approvals, progress, the monitor, then the API's controller (bound to the engine later).
    observers = Observers([approvals] if approvals.grants else [])
    if progress is not None:
        observers.append(progress)
    elif hint_approvals and getattr(args, "quiet", False):
        observers.append(ApprovalHint(approvals))
    if serve:
        from taskdaemon.pipeline.cli.monitoring import (  # noqa: PLC0415
            parse_address,
            start_monitoring,
        )

        try:
            address = parse_address(serve, settings.metrics_host)
        except ValueError as error:  # reported by the CLI's main, exit 2
            raise SettingsError([("--serve", str(error))]) from None
        try:
            monitoring = start_monitoring(settings, serve=address, stack=stack)
        except OSError as error:  # a port in use: said as serve and ui say it (run_pipeline)
            raise PipelineError(cannot_serve(*address, error)) from None
        observers.extend(monitoring.observers)
        observers.registry = monitoring.telemetry.registry
    else:  # the pipeline starts while telemetry loads (start-up time, see cli/deferred.py)
        from taskdaemon.pipeline.cli.deferred import start_deferred_monitoring  # noqa: PLC0415

        observers.append(start_deferred_monitoring(settings, stack))
    return observers


# -- summary ----------------------------------------------------------------------------------


#: Characters of a stage's error the summary keeps on a pipe or in a file (``runs show`` has
#: it whole).
_ERROR_WIDTH = 70
#: The fewest characters of a progress line's error kept on a narrow terminal: a failure line
#: with its retry note leaves 14 of 80 columns, and the summary and the stderr tail follow.
_MIN_DETAIL = 10


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
    longest wait for a slot), duration (first start to last end), error (that of an instance
    whose last attempt failed, as ``runs show`` reads it: an attempt a retry made good is not
    the stage's error; or why the stage was skipped or cancelled).

    ``width``: the columns of the terminal the summary is written to, which it fits by the
    rule every table of the terminal follows (``table_fit``), since a wrapped row no longer
    reads as a row: only when the whole table is wider, INSTANCES and ATTEMPTS read INST and
    TRIES (as in ``runs show``), then STAGE and ERROR give way, the wider first, to no fewer
    than 12 columns. STATUS, the counts and the durations are never cut, and no column is
    left out (``run`` has no ``--wide``; ``runs show RUN`` has every column and whole
    errors). The run's error line is cut to the width too.
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
        queues = [ex.times.queue_time for ex in executions if ex.times.queue_time is not None]
        starts = [ex.times.running for ex in executions if ex.times.running is not None]
        ends = [ex.times.ended for ex in executions if ex.times.ended is not None]
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
        lines = aligned(narrow, rows, width, (0, len(header) - 1))
    total = None if result.finished_at is None else result.finished_at - result.started_at
    lines.append("")
    lines.append(f"run {result.run_id} {result.status} in {format_duration(total)}")
    if result.error:
        error = one_line(result.error, 200)
        if width is not None:  # in terminal columns: a CJK message takes two a character
            error = cut_columns(error, max(MIN_GIVEN, width - len("error: ")))
        lines.append(f"error: {error}")
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    """Validate, run and summarise the pipeline named by ``args``; returns the exit code."""
    from taskdaemon.pipeline.cli.validate import load_for_run  # noqa: PLC0415

    try:
        request = parse_inputs(args.input, args.input_file)
    except ValueError as error:
        return refuse("run", EXIT_INVALID, str(error))
    # Fewer collections of the run's long-lived records (heap.py); tuned before the load, so
    # that the definition is frozen with the rest rather than walked by a young collection.
    with tuned_collector() as keep:
        loaded = load_for_run(args.file, request, args.approve, "run")
        if loaded is None:
            return EXIT_INVALID
        pipeline, registry = loaded
        workspace = workspace_root(args)
        keep()
        # The loop that spaces a busy loop's polls (event_loop.py).
        return run_loop(run_pipeline(args, pipeline, request, registry, workspace))


async def run_pipeline(
    args: argparse.Namespace,
    pipeline: Pipeline,
    request: Mapping[str, Any],
    registry: LoopRegistry,
    workspace: Path,
) -> int:
    """Run ``pipeline`` to its end, serving it on its control socket; returns the exit code."""
    from taskdaemon.pipeline.engine import Engine  # noqa: PLC0415

    approvals = ApprovalPolicy(args.approve, approve_all=args.auto_approve)

    def approve_hint(run_id: str, stage: str) -> str | None:
        # None for a stage the command line grants: its approval comes at once, and the command
        # to copy read as a wait the user had to end (``--auto-approve`` showed it too).
        return None if approvals.wants(stage) else f"taskdaemon approve {run_id} {stage}"

    def header(run_id: str) -> str:  # the workspace: --workspace or the home, as given
        return (
            f"run {run_id} of {pipeline.name} started (workspace {shown(str(workspace / run_id))})"
        )

    watch = getattr(args, "watch", False) and not args.quiet
    progress = (
        None
        if args.quiet or watch
        else ProgressView(
            sys.stderr,
            approve_hint=approve_hint,
            header=header,
        )
    )
    signals = StopSignals()  # the first SIGINT, SIGTERM or SIGHUP cancels the run
    async with contextlib.AsyncExitStack() as stack:
        try:
            observers = build_observers(
                args,
                progress=progress,
                approvals=approvals,
                stack=stack,
                hint_approvals=awaits_approval(pipeline, approvals),
            )
        except PipelineError as error:  # --serve's address cannot be bound: as serve and ui
            return refuse("run", EXIT_FAILURE, str(error))
        watcher = None
        if watch:
            from taskdaemon.pipeline.visualization import DagWatcher  # noqa: PLC0415

            watcher = DagWatcher()
            observers.append(watcher)
        engine = Engine(resolver=registry, observers=observers, workspace=workspace)
        for observer in observers:  # observers that steer the engine (the --serve API)
            if callable(bind := getattr(observer, "bind", None)):
                bind(engine)
        async with engine:
            breakpoints = _breakpoints(engine, pipeline, args)
            if breakpoints is not None:
                return refuse("run", EXIT_INVALID, breakpoints)
            try:
                handle = await engine.start_run(pipeline, request, started_by="cli")
            except PipelineError as error:  # its workspace cannot be made (a read-only home)
                return refuse("run", EXIT_INVALID, str(error))
            if watch:  # else the progress view wrote it as the run started (or -q: nothing)
                print(header(handle.run_id), file=sys.stderr, flush=True)
            approvals.attach(handle)
            view = None
            if watcher is not None:
                from taskdaemon.pipeline.cli.watch import follow, redrawable  # noqa: PLC0415

                stream = watcher.watch(handle.run_id)
                view = asyncio.create_task(follow(stream, sys.stderr, tty=redrawable(sys.stderr)))

            signals.install()
            signals.bind(handle.run_id, handle.cancel)
            stack.callback(signals.remove)
            stack.callback(_dump_on_sigusr1(engine, observers))

            server = ControlServer(
                handle.run_id,
                handle,
                status=lambda: handle_status(handle),
                extra_ops={"debug": debug_op(engine, handle.run_id, observers, observers.registry)},
            )
            try:
                await server.start()
            except (OSError, PipelineError) as error:
                say("run", f"no control socket: {error}")
            else:
                stack.push_async_callback(server.aclose)
            result = await handle.wait()
            if view is not None:
                await view  # ends with the snapshot of the finished run
    if args.quiet:
        print(result.run_id, flush=True)
        if not result.succeeded:  # --quiet drops progress and summary, never the reason
            reason = f": {one_line(result.error, 500)}" if result.error else ""
            refuse("run", EXIT_FAILURE, f"run {result.run_id} {result.status}{reason}")
    else:
        print(render_summary(result, pipeline, summary_width()), flush=True)
    if result.succeeded:
        return EXIT_SUCCESS
    stopped = signals.exit_code()
    if stopped is not None and str(result.status) == "cancelled":
        return stopped
    return EXIT_FAILURE


def _breakpoints(engine: Engine, pipeline: Pipeline, args: argparse.Namespace) -> str | None:
    """Debug mode with the run's breakpoints, when it has some; the one-line error if bad."""
    from taskdaemon.pipeline.cli.breakpoints import apply_breakpoints  # noqa: PLC0415
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    env = load_settings().breakpoints
    if not (args.breaks or args.break_on_failure or env.strip()):
        return None  # no debug mode, no gate: attaching later turns it on
    try:
        apply_breakpoints(engine.with_debug(True), pipeline, args, env)
    except ValueError as error:
        return str(error)
    return None


def _dump_on_sigusr1(engine: Engine, observers: Observers) -> Callable[[], None]:
    """SIGUSR1 writes a debug dump of the run, which goes on (``cli/_dump_hook.py``); returns
    the function that removes the handler.

    The handler is installed now, the dump code imported at the first signal: it is not on the
    path to the run's first stage (start-up time).
    """
    loop = asyncio.get_running_loop()
    handler: list[Callable[[], None]] = []

    def on_signal() -> None:
        if not handler:
            from taskdaemon.pipeline.cli._dump_hook import (  # noqa: PLC0415
                dump_signal_handler,
                dump_writer,
            )

            writer = dump_writer(engine, observers, observers.registry)
            handler.append(dump_signal_handler(engine, writer))
        handler[0]()

    loop.add_signal_handler(signal.SIGUSR1, on_signal)

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGUSR1)

    return remove
