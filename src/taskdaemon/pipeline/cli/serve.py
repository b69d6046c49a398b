"""``taskdaemon serve``: a daemon serving metrics, health and the run API, optionally running a
pipeline on a schedule.

::

    taskdaemon serve [--host HOST] [--port PORT]
                     [--pipeline FILE [--every SECONDS] [--max-runs N] [--auto-approve]
                      [--input KEY=VALUE ...] [--break STAGE[:CEL] ...] [--break-on-failure]]
                     [--break-timeout SECONDS]

* Serves ``/metrics``, ``/healthz``, ``/readyz`` and ``/api/runs`` on ``--host``/``--port``
  (default ``TASKDAEMON_METRICS_HOST``/``_PORT``: 127.0.0.1:9090) until SIGINT or SIGTERM, or
  SIGHUP (its terminal closed) unless SIGHUP was ignored at start (``nohup``: ``cli/hangup.py``).
* With ``--pipeline``: starts a run at once, then one every ``--every`` seconds (counted from
  the previous start; a run longer than that is followed at once by the next), at most
  ``--max-runs`` (0, the default, means forever). Runs are ``started_by=schedule``, and
  their run span records the time their slot was due (``taskdaemon.pipeline.scheduled_at_ns``:
  the first run's is the schedule's start, each next one its previous start plus ``--every``),
  so that ``runs show`` and the web page say how late each started (``landing``;
  ``runs list`` does not: docs/architecture.md).
  ``--auto-approve`` grants every approval; otherwise approvals come through the API
  (``POST /api/runs/{id}/approve/{stage}``) or the command line (``taskdaemon approve RUN
  STAGE``): each scheduled run is served on its control socket while it runs, as a
  ``taskdaemon run``'s is, and its id is said when it starts, and a wait for an approval in
  one line with the ``approve`` command (the schedule's lines about a run carry its
  ``run_id`` and ``pipeline`` as log fields, as the run's own records do).
  A run that pauses at a debugger breakpoint is one warning line naming the execution, why,
  and the command that reaches it (``taskdaemon debug attach RUN``); its resumption one line
  more (the action and who), both with the run's fields (not ``stage``: they are serve's
  lines, not the stage's log records, which its log panel and ``logs --stage`` show).
* ``--break``, ``--break-on-failure`` and ``TASKDAEMON_BREAKPOINTS`` set pipeline breakpoints
  on the engine (``cli/breakpoints.py``), checked before anything is served. A pause that no
  ``debug attach`` prompt attends goes on after ``--break-timeout`` seconds (600), by
  ``timeout``, with a warning: a scheduled run never waits for ever for a debugger nobody
  opened (docs/debugging.md, "Breakpoints on serve's runs").
* Stopping: the first signal cancels the open run, for that signal as ``run``'s are (``run
  cancelled by SIGTERM``), and exits after telemetry is flushed (within
  ``TASKDAEMON_EXPORT_TIMEOUT``), 0 or 1 as its runs went (exit codes, below); a second one
  exits at once.
* A scheduled run the engine cannot start (its workspace cannot be made: a read-only or full
  ``$TASKDAEMON_HOME``) is one error line, no traceback, and counted in
  ``taskdaemon.runs.not_started`` (``taskdaemon_runs_not_started_total``, label ``pipeline``);
  the schedule goes on, as the next slot may find the disk writable. Decision: a
  ``taskdaemon.*`` counter of its own, not a ``pipeline.executions`` failure: the run never
  existed (no run id, no trace, nothing to look up), and the ``pipeline.*`` series count runs
  that ran.
* An invalid or unreadable ``--pipeline`` file, and a request that lacks a key a stage of every
  run reads (``cli/inputs.missing_request_inputs``: each scheduled run would fail), are refused
  before serving as ``run`` refuses them (``cli/validate.load_for_run``): bare lines on stderr,
  before the daemon's logging starts, exit 2.
* Exit codes: 0 stopped cleanly with every scheduled run a success (or cancelled by that stop),
  1 a scheduled run did not succeed (it failed, was cancelled by someone else, or could not
  start), or the address is taken, 2 invalid settings, file, arguments or request. Decision:
  ``serve`` stopped by its signal exited 0 after a run that failed, where ``run`` exits 1; a
  CI job or a unit that runs ``serve --pipeline --max-runs N`` and stops it read every run a
  success. Any run since the start counts, not only the last: a failure followed by a success
  is still a run that failed, and the exit code never hides one (the process's end keeps the
  same rule: ``cli/process_end.py``); the line before the exit says how many and which was the
  last. The run the stop itself cancels does not count: stopping a daemon is its normal end,
  as its exit 0 on a signal says. ``serve`` without ``--pipeline`` runs nothing: 0.

The monitoring wiring it shares with ``run`` is in ``cli/monitoring.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import math
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.ascii_number import ascii_only
from taskdaemon.pipeline.cli.breakpoints import add_break_options, checked_breakpoints
from taskdaemon.pipeline.cli.debug_socket import DebugOp, debug_op, end_breakpoints
from taskdaemon.pipeline.cli.ended_runs import store_run_end
from taskdaemon.pipeline.cli.hangup import detach_terminal, stop_signals
from taskdaemon.pipeline.cli.inputs import parse_inputs
from taskdaemon.pipeline.cli.log_options import add_log_level_option, settings_overrides
from taskdaemon.pipeline.cli.monitoring import start_monitoring
from taskdaemon.pipeline.cli.options import (
    add_input_options,
    add_server_options,
    cannot_serve,
    whole_number,
)
from taskdaemon.pipeline.cli.refusal import refuse
from taskdaemon.pipeline.cli.signal_keeper import SignalKeeper
from taskdaemon.pipeline.cli.stage_exit import exits_said
from taskdaemon.pipeline.cli.stop_signals import stop_cancel
from taskdaemon.pipeline.cli.terminal_state import exit_now
from taskdaemon.pipeline.control import ControlServer, handle_status
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.event_loop import run as run_loop
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
)
from taskdaemon.pipeline.heap import tuned_collector
from taskdaemon.pipeline.logs import configure_logging
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.settings import Settings, load_settings
from taskdaemon.pipeline.state import RunStatus

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from taskdaemon.pipeline.engine import Breakpoint, Engine, RunHandle, RunResult
    from taskdaemon.pipeline.loops import LoopRegistry
    from taskdaemon.pipeline.model import Pipeline

__all__ = ["register", "serve_command"]

_log = logging.getLogger("taskdaemon.serve")

EXIT_OK = 0
EXIT_ADDRESS = 1
EXIT_RUN_FAILED = 1
EXIT_INVALID = 2


class _Unsuccessful:
    """The scheduled runs that did not succeed, for ``serve``'s exit code (module docstring)."""

    def __init__(self) -> None:
        self.runs = 0
        self.count = 0
        self.last = ""

    def add(self, what: str) -> None:
        self.count += 1
        self.last = what

    def exit_code(self) -> int:
        """0, or 1 with one line saying how many runs did not succeed and the last one."""
        if not self.count:
            return EXIT_OK
        _log.error(
            "%d of %d scheduled runs did not succeed, the last: %s; exit code %d",
            self.count,
            self.runs,
            self.last,
            EXIT_RUN_FAILED,
        )
        return EXIT_RUN_FAILED


# --- the command ---------------------------------------------------------------------------------


def _every(text: str) -> float:
    """``--every``: a positive, finite number of seconds (argparse type). NaN ran the runs back
    to back."""
    try:
        seconds = float(ascii_only(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {quote(text)}") from None
    if not 0 < seconds < math.inf:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {quote(text)}")
    return seconds


def _max_runs(text: str) -> int:
    """``--max-runs``: 0 (no limit) or more (argparse type); -1 ran for ever as "1 of -1"."""
    count = whole_number(text)
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {quote(text)}")
    return count


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve metrics, health and the run API; optionally run a pipeline on a schedule",
        description="Serve /metrics, /healthz, /readyz and the run API (GET /api lists its "
        "routes) until SIGINT, SIGTERM or SIGHUP (its terminal closed; not under nohup); with "
        "--pipeline, also run that pipeline at once and "
        "then every --every seconds. Exit codes: 0 stopped by a signal, every scheduled run a "
        "success (or cancelled by that stop), 1 a scheduled run failed, was cancelled or "
        "could not start, or the address is taken, 2 invalid settings, arguments, file or "
        "request (one its stages cannot run without).",
    )
    add_server_options(parser, "TASKDAEMON_METRICS_PORT, else 9090")
    parser.add_argument("--pipeline", metavar="FILE", help="a pipeline file to run repeatedly")
    parser.add_argument(
        "--every",
        type=_every,
        default=None,
        metavar="SECONDS",
        help="with --pipeline: seconds from a run's start to the next one's; runs never "
        "overlap: one that lasts longer is followed at once by the next (default 60)",
    )
    parser.add_argument(
        "--max-runs",
        type=_max_runs,
        default=None,
        metavar="N",
        help="with --pipeline: stop scheduling after N runs (default 0: never)",
    )
    parser.add_argument(
        "--auto-approve", action="store_true", help="grant every approval when it is asked for"
    )
    add_break_options(parser)
    parser.add_argument(
        "--break-timeout",
        type=_every,
        default=600.0,
        metavar="SECONDS",
        help="how long a run waits at a breakpoint with no debugger attached before it goes "
        "on (default 600)",
    )
    add_input_options(parser)
    add_log_level_option(parser)
    parser.set_defaults(func=serve_command)


class _AutoApprove:
    """Grants every approval as soon as it is asked for (after the event is delivered)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ApprovalRequested) and self.engine is not None:
            asyncio.get_running_loop().call_soon(self._grant, event.run_id, event.stage)

    def _grant(self, run_id: str, stage: str) -> None:
        if self.engine is None:  # scheduled only once bound
            return
        with contextlib.suppress(PipelineError):  # the run ended or moved on meanwhile
            self.engine.approve(run_id, stage, "serve --auto-approve")


class _WaitLines:
    """Says on serve's log when an execution of a run pauses at a breakpoint, with the command
    that reaches it, and when it goes on, and when a stage waits for an approval nobody grants
    here (no ``--auto-approve``), with the command that grants it: an operator watching serve
    learns that a run waits for someone, as ``taskdaemon run``'s progress lines say it (the
    demo's run sat at its approval with nothing said past its start). Each line carries the
    run's ``run_id`` and ``pipeline`` as log fields, as the schedule's other lines do. The
    pause's line says how long it waits for a debugger (``--break-timeout``), the command last,
    as a script reads it; a pause that bound ended is a warning, as the run went on without
    anyone having looked."""

    def __init__(self, *, auto_approve: bool, break_timeout: float | None = None) -> None:
        self._auto_approve = auto_approve
        self._bound = (
            ""
            if break_timeout is None
            else f" for {break_timeout:g}s at most unless a debugger is attached"
        )

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ApprovalRequested) and not self._auto_approve:
            # Said once the event is delivered, as ``_AutoApprove`` grants: an entry stage asks
            # before ``start_run`` returns, and its line came before the run's ``started``.
            asyncio.get_running_loop().call_soon(
                functools.partial(
                    _log.info,
                    "run %s of %s waits for approval of %s: taskdaemon approve %s %s",
                    event.run_id,
                    event.pipeline,
                    event.stage,
                    event.run_id,
                    event.stage,
                    extra={"run_id": event.run_id, "pipeline": event.pipeline},
                )
            )
        elif isinstance(event, BreakpointHit):
            _log.warning(
                "run %s of %s paused at %s (%s)%s: taskdaemon debug attach %s",
                event.run_id,
                event.pipeline,
                event.task_run_id,
                event.reason,
                self._bound,
                event.run_id,
                extra={"run_id": event.run_id, "pipeline": event.pipeline},
            )
        elif isinstance(event, BreakpointResumed) and event.by == "timeout":
            _log.warning(
                "run %s of %s resumed %s: nobody attached a debugger within %.0fs "
                "(--break-timeout); going on",
                event.run_id,
                event.pipeline,
                event.task_run_id,
                event.paused,
                extra={"run_id": event.run_id, "pipeline": event.pipeline},
            )
        elif isinstance(event, BreakpointResumed):
            _log.info(
                "run %s of %s resumed %s: %s by %s",
                event.run_id,
                event.pipeline,
                event.task_run_id,
                event.action,
                event.by,
                extra={"run_id": event.run_id, "pipeline": event.pipeline},
            )


#: What ``serve`` does with a run: each says so only with ``--pipeline`` (checked, not ignored).
_RUN_OPTIONS = (
    ("--every", "every"),
    ("--max-runs", "max_runs"),
    ("--auto-approve", "auto_approve"),
    ("--input", "input"),
    ("--input-file", "input_file"),
    ("--break", "breaks"),
    ("--break-on-failure", "break_on_failure"),
)


def serve_command(args: argparse.Namespace) -> int:
    """Run the daemon described by ``args``; returns the exit code."""
    if not args.pipeline:
        given = [
            name for name, dest in _RUN_OPTIONS if getattr(args, dest) not in (None, False, [])
        ]
        if given:  # a schedule without a pipeline ran nothing, silently
            return refuse("serve", EXIT_INVALID, f"{given[0]} needs --pipeline")
    args.every = 60.0 if args.every is None else args.every
    args.max_runs = 0 if args.max_runs is None else args.max_runs
    settings = load_settings(**settings_overrides(args))
    host = args.host or settings.metrics_host
    port = settings.metrics_port if args.port is None else args.port
    pipeline = registry = None
    request: dict[str, Any] = {}
    breakpoints: list[Breakpoint] = []
    if args.pipeline:
        from taskdaemon.pipeline.cli.validate import load_for_run  # noqa: PLC0415

        try:
            request = parse_inputs(args.input, args.input_file)
        except ValueError as error:
            return refuse("serve", EXIT_INVALID, str(error))
        # Loaded once, not at each scheduled run, and refused as ``run`` refuses it: the
        # file's issues one bare line each on stderr, exit 2, before the daemon's logging
        # starts (a timestamped ERROR record read as a crash), and a request that lacks a key
        # every run reads (each run would fail at its first stage, for ever).
        loaded = load_for_run(args.pipeline, request, (), "serve")
        if loaded is None:
            return EXIT_INVALID
        pipeline, registry = loaded
        configure_logging(settings)
        try:
            breakpoints = checked_breakpoints(pipeline, args, settings.breakpoints)
        except ValueError as error:
            return refuse("serve", EXIT_INVALID, str(error))
    try:
        with tuned_collector():  # fewer collections of the runs' long-lived records (heap.py)
            return run_loop(  # the loop that spaces a busy loop's polls (event_loop.py)
                _serve(
                    args,
                    settings,
                    address=(host, port),
                    pipeline=pipeline,
                    registry=registry,
                    request=request,
                    breakpoints=breakpoints,
                )
            )
    except OSError as error:  # one line, as every command's refusals
        return refuse("serve", EXIT_ADDRESS, cannot_serve(host, port, error))


async def _serve(
    args: argparse.Namespace,
    settings: Settings,
    *,
    address: tuple[str, int],
    pipeline: Pipeline | None,
    registry: LoopRegistry | None,
    request: dict[str, Any],
    breakpoints: Sequence[Breakpoint] = (),
) -> int:
    from taskdaemon.pipeline.engine import Engine  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped_by: list[int] = []  # the signal that set ``stop``: the open run is cancelled for it

    def on_signal(signum: int) -> None:
        if signum == signal.SIGHUP:
            detach_terminal()  # the log lines of the stop must not fail on a hung-up terminal
            if stop.is_set():  # the shell's SIGHUP after the kernel's: no hurry
                return
        if stop.is_set():
            exit_now(128 + signum)  # as every command's second signal (cli/terminal_state.py)
        _log.info("%s: stopping", signal.Signals(signum).name)
        stopped_by.append(signum)
        stop.set()

    unsuccessful = _Unsuccessful()
    async with contextlib.AsyncExitStack() as stack:
        # The stop signals are handled before the server starts and says where its token is:
        # a Ctrl-C that comes as soon as that line is read then stops the server through this
        # stack, which removes the token files, instead of a KeyboardInterrupt out of the loop
        # that skipped it and left them behind.
        handled = stop_signals()
        for signum in handled:
            loop.add_signal_handler(signum, on_signal, signum)
        stack.callback(_remove_signal_handlers, loop, handled)
        monitoring = start_monitoring(settings, serve=address, stack=stack)
        approver = _AutoApprove()
        observers: list[Any] = [
            *monitoring.observers,
            _WaitLines(auto_approve=args.auto_approve, break_timeout=args.break_timeout),
        ]
        if args.auto_approve:
            observers.append(approver)
        stack.enter_context(exits_said(observers))  # stage code's os._exit, said and stored
        stack.callback(SignalKeeper().keep().close)  # the stop signals stay taskdaemon's
        workspace = settings.home / "workspaces"
        engine = Engine(resolver=registry, observers=observers, workspace=workspace.absolute())
        approver.engine = engine
        engine.debug_unattended_limit = args.break_timeout
        if breakpoints:
            session = engine.with_debug(True)
            for bp in breakpoints:
                session.set_breakpoint(bp.stage, bp.when, bp.on, pipeline=bp.pipeline)
        monitoring.bind(engine)
        from taskdaemon.pipeline.cli._dump_hook import dump_writer, install_dump_signal  # noqa: PLC0415

        stack.callback(
            install_dump_signal(
                engine, dump_writer(engine, observers, monitoring.telemetry.registry), _log
            )
        )
        async with engine:
            if pipeline is None:
                await stop.wait()
            else:
                not_started = not_started_counter(
                    monitoring.telemetry.meter_provider, pipeline.name
                )
                metrics = monitoring.telemetry.registry
                await _schedule(
                    engine,
                    pipeline,
                    request,
                    args,
                    stop,
                    not_started=not_started,
                    debug=lambda run_id: debug_op(engine, run_id, observers, metrics),
                    stopped_by=stopped_by,
                    unsuccessful=unsuccessful,
                )
    return unsuccessful.exit_code()  # said once the telemetry is flushed: the last line


def not_started_counter(meter_provider: MeterProvider, scheduled: str) -> Callable[[str], None]:
    """A function that counts one scheduled run of a pipeline that could not start, in
    ``taskdaemon.runs.not_started`` (module docstring), whose series for the ``scheduled``
    pipeline is there from now on, at 0: Prometheus' ``increase()`` sees only growth between
    samples, so a series that first appeared at 1 would hide that run from
    ``TaskdaemonRunsNotStarted`` (and every later one until another came within its window)."""
    meter = meter_provider.get_meter(t.SCOPE_NAME, __version__, schema_url=t.SCHEMA_URL)
    counter = meter.create_counter(
        t.METRIC_RUNS_NOT_STARTED,
        unit=t.UNIT_RUNS,
        description="Scheduled runs that could not start (their workspace could not be made)",
    )
    counter.add(0, {"pipeline": scheduled})

    def count(pipeline: str) -> None:
        counter.add(1, {"pipeline": pipeline})

    return count


async def _schedule(
    engine: Engine,
    pipeline: Pipeline,
    request: dict[str, Any],
    args: argparse.Namespace,
    stop: asyncio.Event,
    *,
    not_started: Callable[[str], None] = lambda pipeline: None,
    debug: Callable[[str], DebugOp] | None = None,
    stopped_by: Sequence[int] = (),
    unsuccessful: _Unsuccessful | None = None,
) -> None:
    """Start ``pipeline``'s runs as ``args`` schedule them until ``stop``; ``debug`` makes the
    control socket's ``debug`` op of a run (``cli/debug_socket.py``), without which the
    debugger does not reach the runs; ``stopped_by`` holds the signal that set ``stop``, once
    one did; ``unsuccessful`` counts the runs and notes those that did not succeed (a run
    ended ``cancelled`` once ``stop`` is set is the stop's, not counted)."""
    tally = _Unsuccessful() if unsuccessful is None else unsuccessful
    runs = 0
    due = time.monotonic()  # the first run's slot: at once
    while not stop.is_set() and (args.max_runs <= 0 or runs < args.max_runs):
        started = time.monotonic()
        runs += 1
        # The slot as a wall-clock time, what the run span records (``landing``): the
        # monotonic clock counts the wait, the wall clock says when.
        scheduled_at = time.time() - (time.monotonic() - due)
        try:
            handle = await engine.start_run(
                pipeline, request, started_by="schedule", scheduled_at=scheduled_at
            )
        except PipelineError as error:  # its workspace cannot be made (a read-only home)
            # One line, and the server goes on: the next slot may find the disk writable.
            _log.error(
                "run %d of %s could not start: %s",
                runs,
                pipeline.name,
                error,
                extra={"pipeline": pipeline.name},
            )
            not_started(pipeline.name)
            tally.add(f"run {runs} could not start")
            result = None
        else:
            _log.info(
                "run %s of %s started (%d of %s)",
                handle.run_id,
                pipeline.name,
                runs,
                args.max_runs or "unlimited",
                extra={"run_id": handle.run_id, "pipeline": pipeline.name},
            )
            ops = {} if debug is None else {"debug": debug(handle.run_id)}
            result = await _served_until_end_or_stop(handle, stop, ops, stopped_by)
            end_breakpoints(engine, handle.run_id)
        tally.runs = runs
        if result is not None:
            if not result.succeeded and not (
                stop.is_set() and result.status is RunStatus.CANCELLED
            ):
                tally.add(f"run {result.run_id} {result.status}")
            _log.info(
                "run %s of %s ended %s (%d of %s)",
                result.run_id,
                pipeline.name,
                result.status,
                runs,
                args.max_runs or "unlimited",
                extra={"run_id": result.run_id, "pipeline": pipeline.name},
            )
        if args.max_runs > 0 and runs >= args.max_runs:
            break
        due = started + args.every
        delay = max(0.0, due - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    if not stop.is_set():
        _log.info("schedule done; serving until stopped")
        await stop.wait()


async def _served_until_end_or_stop(
    handle: RunHandle,
    stop: asyncio.Event,
    extra_ops: Mapping[str, DebugOp],
    stopped_by: Sequence[int],
) -> RunResult:
    """:func:`_until_end_or_stop`, the run served on its control socket meanwhile, as a
    ``taskdaemon run``'s is: ``approve``, ``publish``, ``cancel``, ``status`` and the
    ``extra_ops`` (``debug``) reach it. A socket that cannot be made is one warning; the run
    goes on, its API still answering. Once the run has ended, the span store holds its end
    before the socket closes and the caller says it ended (``store_run_end``): a command that
    finds no socket reads the store, and must find the run ended there."""
    server = ControlServer(
        handle.run_id, handle, status=lambda: handle_status(handle), extra_ops=extra_ops
    )
    try:
        await server.start()
    except (OSError, PipelineError) as error:
        _log.warning("run %s has no control socket: %s", handle.run_id, error)
    try:
        result = await _until_end_or_stop(handle, stop, stopped_by)
        await store_run_end(result.run_id)
        return result
    finally:
        await server.aclose()


async def _until_end_or_stop(
    handle: RunHandle, stop: asyncio.Event, stopped_by: Sequence[int]
) -> RunResult:
    """The run's result once it has ended, cancelled first when ``stop`` is set before: for
    the signal that set it (``stopped_by``), as ``run``'s signals cancel (``StopSignals``)."""
    waiter = asyncio.ensure_future(handle.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not waiter.done():
        handle.cancel(*stop_cancel(stopped_by[0]) if stopped_by else ())
    return await waiter


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop, handled: tuple[int, ...]) -> None:
    for signum in handled:
        loop.remove_signal_handler(signum)
