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
  ``--watch``. ``replay -q`` and ``debug FILE -q`` mean the same (:func:`say_quietly`).
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
  be opened is one warning line at start and one at the end (the run id printed is not
  stored), spans it failed to write (a full disk) are one warning line when they start failing
  and one at the end with how many were lost, and the metric
  ``taskdaemon_spans_dropped_total`` counts them (see ``docs/span-store.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from taskdaemon.pipeline.cli.approval_policy import (
    ApprovalPolicy,
    add_approval_options,
)
from taskdaemon.pipeline.cli.debug_socket import debug_op
from taskdaemon.pipeline.cli.ended_runs import store_run_end
from taskdaemon.pipeline.cli.inputs import parse_inputs
from taskdaemon.pipeline.cli.log_options import add_log_level_option, settings_overrides
from taskdaemon.pipeline.cli.options import (
    add_input_options,
    add_workspace_option,
    cannot_serve,
    workspace_root,
)
from taskdaemon.pipeline.cli.refusal import refuse, say
from taskdaemon.pipeline.cli.run_progress import ProgressView, header_lines
from taskdaemon.pipeline.cli.run_summary import render_summary
from taskdaemon.pipeline.cli.signal_keeper import SignalKeeper
from taskdaemon.pipeline.cli.stage_exit import exits_said
from taskdaemon.pipeline.cli.stop_signals import StopSignals
from taskdaemon.pipeline.cli.terminal_width import summary_width
from taskdaemon.pipeline.control import ControlServer, handle_status
from taskdaemon.pipeline.errors import PipelineError, SettingsError
from taskdaemon.pipeline.event_loop import run as run_loop
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    EngineEvent,
)
from taskdaemon.pipeline.heap import tuned_collector
from taskdaemon.pipeline.loops import LoopRegistry
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.stdout_first import flush_stdout
from taskdaemon.pipeline.table_fit import cut_columns, text_columns
from taskdaemon.pipeline.terminal_text import one_line, shown

if TYPE_CHECKING:  # the engine is imported when the run starts (start-up time)
    from taskdaemon.pipeline.engine import Engine

__all__ = [
    "ApprovalPolicy",
    "Observers",
    "build_observers",
    "parse_inputs",
    "register",
    "run_pipeline",
]

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


DESCRIPTION = """\
Validate a pipeline file, run it, show its progress on stderr and a summary on stdout.

Summary columns: INSTANCES is how many instances of the stage ran (more than one for event
stages and fan-out); ATTEMPTS is the most attempts one instance needed (1: no retry); in a
terminal narrower than the table, these two read INST and TRIES; QUEUE the longest wait for a
worker slot; DURATION from the first start to the last end; ERROR why the stage was skipped,
else the last error of an instance whose final attempt failed, or why it was cancelled (as
runs show says).

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
        "(HOST defaults to TASKDAEMON_METRICS_HOST, else 127.0.0.1; beyond loopback the API "
        "needs TASKDAEMON_API_TOKEN)",
    )
    add_log_level_option(parser)
    from taskdaemon.pipeline.cli.breakpoints import add_break_options  # noqa: PLC0415

    add_break_options(parser)
    parser.set_defaults(func=run_command)


# -- observers --------------------------------------------------------------------------------


class Observers(list[Any]):
    """A run's engine observers, and the Prometheus registry ``--serve`` exports (None without
    it), whose metrics every dump the process writes of its run holds (``taskdaemon dump``,
    ``SIGUSR1``, the debugger's ``dump``, the HTTP route: docs/debugging.md, "Dumps")."""

    registry: Any = None
    #: Why the run is in no span store, asked once it has ended (``DeferredMonitor.unstored``).
    unstored: Callable[[], str | None] = staticmethod(lambda: None)


def say_unstored(command: str, run_id: str, cause: str | None) -> None:
    """The line ``run``, ``replay`` and ``debug FILE`` end with when their run is in no span
    store (``cause``: their monitoring's ``unstored()``), since the id they printed will not be
    found (docs/architecture.md, "Span sources"); nothing when it is stored."""
    if cause is not None:
        say(command, f"run {run_id} is not stored ({cause}): runs show will not find it")


def say_quietly(command: str, result: Any) -> None:
    """What ``-q`` leaves of a run's end (``run``, ``replay``, ``debug FILE``; docs/architecture.md,
    "Command line"): its id alone on stdout, and a failed run's reason on stderr, which ``-q``
    drops with the summary it was part of."""
    print(result.run_id, flush=True)
    if not result.succeeded:
        reason = f": {one_line(result.error, 500)}" if result.error else ""
        say(command, f"run {result.run_id} {result.status}{reason}")


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
            flush_stdout()  # after what a handler printed, in a log of both streams too
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
    # The run log's records on the console beside the lines: the monitor first, its records
    # written before each line (``cli/run_progress.py``'s module docstring).
    beside = progress is not None and settings.log_level_number <= logging.DEBUG
    if serve or beside:
        from taskdaemon.pipeline.cli.monitoring import (  # noqa: PLC0415
            parse_address,
            start_monitoring,
        )

        address = None
        if serve:
            try:
                address = parse_address(serve, settings.metrics_host)
            except ValueError as error:  # reported by the CLI's main, exit 2
                raise SettingsError([("--serve", str(error))]) from None
        try:
            monitoring = start_monitoring(settings, serve=address, stack=stack)
        except OSError as error:  # a port in use: said as serve and ui say it (run_pipeline)
            if address is None:
                raise
            raise PipelineError(cannot_serve(*address, error)) from None
        if progress is not None and beside:
            progress.settle_first(monitoring.monitor.flush)
        observers.extend(monitoring.observers)
        observers.registry = monitoring.telemetry.registry
        observers.unstored = monitoring.unstored
    else:  # the pipeline starts while telemetry loads (start-up time, see cli/deferred.py)
        from taskdaemon.pipeline.cli.deferred_start import (  # noqa: PLC0415
            start_deferred_monitoring,
        )

        observers.append(deferred := start_deferred_monitoring(settings, stack))
        observers.unstored = deferred.unstored
        from taskdaemon.pipeline.handler_prints import capture_prints  # noqa: PLC0415

        capture_prints(stack)  # a handler's print() is a log line of its stage too
    return observers


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
        stack.enter_context(exits_said(observers))  # stage code's os._exit, said and stored
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
                flush_stdout()
                sys.stderr.write(header_lines(header(handle.run_id), summary_width(sys.stderr)))
                sys.stderr.flush()
            approvals.attach(handle)
            view = None
            if watcher is not None:
                from taskdaemon.pipeline.cli.watch import follow, redrawable  # noqa: PLC0415

                stream = watcher.watch(handle.run_id)
                view = asyncio.create_task(follow(stream, sys.stderr, tty=redrawable(sys.stderr)))

            signals.install()
            stack.callback(SignalKeeper().keep().close)  # the stop signals stay taskdaemon's
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
            # Before the socket closes (the stack) and the summary says the run ended.
            await store_run_end(result.run_id)
            if view is not None:
                await view  # ends with the snapshot of the finished run
    if args.quiet:
        say_quietly("run", result)
    else:
        print(render_summary(result, pipeline, summary_width()), flush=True)
    say_unstored("run", result.run_id, observers.unstored())
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
