"""``taskdaemon debug``: run a pipeline under the debugger prompt, or debug a run elsewhere.

::

    taskdaemon debug FILE [--break STAGE[:CEL]]... [--break-on-failure] [--input k=v]...
                          [--log-level LEVEL]
    taskdaemon debug attach RUN
    taskdaemon debug continue|step|skip RUN [STAGE]

* ``debug FILE`` validates and runs the file like ``taskdaemon run`` (same request options,
  progress on stderr, spans in the store), paused at its breakpoints, and reads commands at the
  prompt (:mod:`._debug_prompt`). The run is served on its control socket and the prompt speaks
  to it there, so ``debug attach`` from another terminal drives the same run. ``-q`` means what
  ``run -q`` means (docs/architecture.md, "Command line"): no progress lines, and at the end
  the run id alone on stdout instead of the summary table (a failed run's reason on stderr);
  the prompt's lines stay, the prompt being what ``debug FILE`` is for. ``--log-level`` is
  ``run``'s (``cli/log_options.py``; the run's settings are ``run.build_observers``'s from the
  same arguments). When the input ends (a pipe), the run's breakpoints are deleted and the run
  goes on to its end; the exit code
  is the run's (0 success, 1 failure or cancelled; ``quit`` cancels), 2 for an invalid file or
  breakpoint, 130 on Ctrl-C (while the prompt waits for the run: at the terminal's prompt,
  Ctrl-C drops the line being typed, ``cli/_prompt.py``); SIGTERM cancels the run as Ctrl-C
  does, exit 143, and SIGHUP (the terminal closed) too, exit 129, the run's reason saying so.
  SIGUSR1 writes a dump of the run, as it does to ``run`` (its line above the prompt).
  A span store that cannot be opened ends it, as ``run``, with one line saying the run id
  printed is not stored (``run.say_unstored``).
* ``--break STAGE[:CEL]`` pauses before the stage starts, when the CEL condition (over
  ``request``, ``stages``, ``event``, ``inputs``) holds; ``--break-on-failure`` pauses every
  stage after it fails, before the error strategy acts. ``TASKDAEMON_BREAKPOINTS`` adds
  ``STAGE[:CEL]`` entries separated by ``;``. The same options exist on ``taskdaemon run``.
* ``debug attach RUN`` opens the prompt on a run another ``taskdaemon run`` / ``debug`` /
  ``serve`` process serves (each run ``serve`` schedules, while it runs; a prefix of the id is
  enough); leaving it (end of input) deletes the breakpoints set from it and resumes the run,
  unless another prompt is attached (the run is left to it), and says so (``left run RUN,
  resuming 1 paused execution``); Ctrl-C, SIGTERM and SIGHUP leave it so too (exit 130, 143,
  129). ``quit`` cancels the run, as at ``debug FILE``'s prompt, and exits 1 as a cancelled
  run does (0 when the run had already ended). The difference is deliberate: the end of the
  input is no word of the user's (a terminal closed, a connection dropped, a script whose
  commands ran out), and it must not cancel a run another process owns, which may have
  waited hours at a breakpoint and is what that process exists for; leaving lets the run do
  what it would have done with no prompt attached. Cancelling is the one thing that cannot be
  taken back, so it takes a word typed: ``quit`` (or ``taskdaemon cancel RUN``). A script
  that wants the run cancelled ends its commands with ``quit``.
  ``debug continue|step|skip RUN [STAGE]`` does one thing and exits (0 done, 1 refused, with
  the one-line reason). A run that is not in progress here (or an id that cannot be one) is
  exit 3, as for ``approve``, ``publish``, ``cancel`` and ``status``.
* A file called like a sub-action (``attach``…) is named ``./attach``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.cli.approval_policy import (
    ApprovalPolicy,
    add_approval_options,
)
from taskdaemon.pipeline.cli.breakpoints import add_break_options, apply_breakpoints
from taskdaemon.pipeline.cli.ended_runs import store_run_end
from taskdaemon.pipeline.cli.log_options import add_log_level_option
from taskdaemon.pipeline.cli.options import add_input_options, add_workspace_option, workspace_root
from taskdaemon.pipeline.cli.refusal import refuse
from taskdaemon.pipeline.errors import (
    PipelineError,
    RunNotFoundError,
    SettingsError,
)
from taskdaemon.pipeline.event_loop import run as run_loop
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.wording import counted

__all__ = ["register"]

EXIT_SUCCESS, EXIT_FAILURE, EXIT_INVALID, EXIT_SIGINT = 0, 1, 2, 130
#: No such run in progress: ``approve``'s code for the same answer of the control socket.
EXIT_NO_RUN = 3
_ACTIONS = ("attach", "continue", "step", "skip")


DESCRIPTION = """\
Run a pipeline file under the debugger prompt (debug FILE), or debug a run another
taskdaemon run / debug / serve process serves (debug attach RUN; debug continue|step|skip RUN
[STAGE]).

--break STAGE[:CEL] pauses before the stage starts (when the CEL condition over request,
stages, event and inputs holds); --break-on-failure pauses a stage after it fails, before the
error strategy acts; TASKDAEMON_BREAKPOINTS adds STAGE[:CEL] entries separated by ';'.

At the prompt, 'help' lists the commands. Fed on a pipe, the prompt runs the commands in order
and exits with the run's exit code: 0 success, 1 failure or cancelled, 2 invalid file or
breakpoint, 130 Ctrl-C.
"""


def register(subparsers: Any) -> None:
    """Add the ``debug`` sub-command."""
    parser = subparsers.add_parser(
        "debug",
        help="run a pipeline under the debugger, or debug a running one",
        description=DESCRIPTION,
        # On two lines: on one it was 84 columns, past an 80-column terminal.
        usage="taskdaemon debug [options] FILE\n"
        "       taskdaemon debug attach|continue|step|skip RUN [STAGE]",
    )
    parser.add_argument(
        "words",
        nargs="+",
        metavar="FILE | attach|continue|step|skip RUN [STAGE]",
        help="a pipeline file to run under the debugger, or an action on a run in progress "
        "(RUN: its id or a unique prefix; STAGE: the execution to resume)",
    )
    add_break_options(parser)
    add_input_options(parser)
    add_approval_options(parser)
    add_workspace_option(parser)
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="debug FILE: print only the run id at the end (no summary table; a failed run's "
        "reason still goes to stderr) and no progress lines; the prompt's lines are still shown",
    )
    add_log_level_option(parser)
    parser.set_defaults(func=debug_command)


#: The longest debug answer read. An answer quotes a paused stage's inputs (each pause, each
#: ``where``) and ``inputs``/``outputs`` a stage's values, which a command's stdout can make up
#: to TASKDAEMON_STDOUT_MAX_BYTES (64 MiB) long: past the control socket's usual 1 MiB the
#: prompt failed at the first pause and cancelled the run.
MAX_ANSWER_BYTES = 256 << 20


def caller(run_id: str) -> Any:
    """A function sending one debug request to run ``run_id``'s control socket."""
    from taskdaemon.pipeline.control import send_request  # noqa: PLC0415

    def call(request: dict[str, Any]) -> dict[str, Any]:
        return send_request(
            run_id, {"op": "debug", **request}, timeout=60.0, max_bytes=MAX_ANSWER_BYTES
        )

    return call


def debug_command(args: argparse.Namespace) -> int:
    """Dispatch ``debug FILE`` and ``debug ACTION RUN [STAGE]``."""
    words = args.words
    if words[0] in _ACTIONS:
        return _remote(words)
    if len(words) != 1:
        return refuse("debug", EXIT_INVALID, f"expected one FILE, got {quote(' '.join(words))}")
    return _local(args, words[0])


def _remote(words: Sequence[str]) -> int:
    from taskdaemon.pipeline.cli._debug_prompt import DebugPrompt  # noqa: PLC0415
    from taskdaemon.pipeline.cli.sigterm import exit_code, sigterm_raises  # noqa: PLC0415

    action = words[0]
    if len(words) < 2 or len(words) > 3 or (action == "attach" and len(words) != 2):
        usage = "RUN" if action == "attach" else "RUN [STAGE]"
        return refuse("debug", EXIT_INVALID, f"usage: taskdaemon debug {action} {usage}")
    call = caller(words[1])
    try:
        if action == "attach":
            prompt = DebugPrompt(
                call, history=home_directory() / "debug_history", by="cli debug attach"
            )
            left: dict[str, Any] = {}
            stopped: int | None = None
            # SIGTERM and SIGHUP leave as Ctrl-C does: by their default action, the prompt
            # left its breakpoints in the run and the terminal without its echo (readline's).
            with sigterm_raises():
                try:
                    prompt.run(first_stop=False)
                except KeyboardInterrupt as stop:
                    stopped = exit_code(stop)
                finally:
                    if not prompt.done and not prompt.quit:
                        # A run that ended meanwhile has nothing to detach from: not an error.
                        detach = {
                            "action": "detach",
                            "by": "cli debug attach",
                            "client": prompt.client,
                        }
                        with contextlib.suppress(RunNotFoundError):
                            left.update(call(detach))
            if stopped is not None:
                # Ctrl-C leaves as Ctrl-D does: say so, and what that did to the run (on a
                # line of its own, not after the prompt readline left on the terminal).
                if sys.stdout.isatty():
                    print(flush=True)
                return refuse("debug", stopped, _left_line(prompt.run_id, left))
            if (leaving := _leaving(prompt.run_id, left)) is not None:
                # The input's end let the run go on: said, so that a script whose commands
                # ran out reads that its run was resumed, not cancelled as ``quit`` does.
                print(leaving, flush=True)
            # A run ``quit`` cancelled exits as a cancelled run does everywhere (``debug
            # FILE``, ``run``): 0 told a script that what it attached to went well.
            return EXIT_FAILURE if prompt.cancelled else EXIT_SUCCESS
        answer = call(
            {
                "action": action,
                "stage": words[2] if len(words) == 3 else None,
                "by": f"cli debug {action}",
            }
        )
    except RunNotFoundError as exc:
        from taskdaemon.pipeline.cli.ended_runs import ended_run  # noqa: PLC0415

        return refuse("debug", EXIT_NO_RUN, ended_run(words[1], None) or str(exc))
    except PipelineError as exc:
        return refuse("debug", EXIT_FAILURE, str(exc))
    except KeyboardInterrupt:
        return EXIT_SIGINT
    print(_resumed_line(action, answer.get("resumed")))
    return EXIT_SUCCESS


def _left_line(run_id: str, detached: dict[str, Any]) -> str:
    """What an interrupted ``debug attach`` did on leaving (its ``detach`` answer, empty when
    the run had ended or the prompt never joined it)."""
    leaving = _leaving(run_id, detached)
    return "interrupted" if leaving is None else f"interrupted: {leaving}"


def _leaving(run_id: str, detached: dict[str, Any]) -> str | None:
    """What leaving a ``debug attach`` prompt did to the run, from its ``detach`` answer;
    None when there was none (the run had ended, or the prompt never joined it)."""
    if "resumed" not in detached:
        return None
    resumed = detached["resumed"]
    if not resumed:
        return f"left run {run_id}, resuming nothing"
    return f"left run {run_id}, resuming {counted(resumed, 'paused execution')}"


def _resumed_line(action: str, resumed: Any) -> str:
    """What ``debug continue|step|skip RUN`` did, in one line: ``continue`` answers a count,
    ``step`` and ``skip`` the execution they resumed (named by its ``task_run_id``; the whole
    answer, inputs and all, is what ``debug attach``'s ``where`` and ``inputs`` show)."""
    if resumed is None or resumed == 0:
        return "nothing was paused"
    if isinstance(resumed, int):
        return f"resumed {resumed} execution{'' if resumed == 1 else 's'}"
    from taskdaemon.pipeline.terminal_text import shown  # noqa: PLC0415

    execution = shown(str(resumed.get("task_run_id", "?")))
    if action == "skip":
        return f"skipped {execution}"
    return f"resumed {execution}; in step mode, each execution that becomes ready pauses"


def _local(args: argparse.Namespace, file: str) -> int:
    from taskdaemon.pipeline.cli.inputs import parse_inputs  # noqa: PLC0415
    from taskdaemon.pipeline.cli.validate import load_for_run  # noqa: PLC0415
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    try:
        request = parse_inputs(args.input, args.input_file)
    except ValueError as error:
        return refuse("debug", EXIT_INVALID, str(error))
    loaded = load_for_run(file, request, args.approve, "debug")
    if loaded is None:
        return EXIT_INVALID
    pipeline, registry = loaded
    env = load_settings().breakpoints
    workspace = workspace_root(args)
    return prompt_over(
        "debug", lambda: RunThread(args, pipeline, request, registry, workspace, env)
    )


def prompt_over(command: str, make_runner: Callable[[], RunThread]) -> int:
    """Run the run ``make_runner`` makes (a :class:`RunThread`) under the prompt, in this
    terminal, until it ends; its exit code. ``debug FILE``'s, and ``replay --break``'s
    (``cli/replay_debug.py``); ``command`` names the command in a one-line refusal."""
    from taskdaemon.pipeline.cli._debug_prompt import DebugPrompt  # noqa: PLC0415
    from taskdaemon.pipeline.cli._prompt import LinesAbove  # noqa: PLC0415
    from taskdaemon.pipeline.cli.sigterm import exit_code, sigterm_raises  # noqa: PLC0415
    from taskdaemon.pipeline.cli.stop_signals import stop_cancel  # noqa: PLC0415

    # The run's progress lines (and log records) show above the prompt, not in what is typed.
    above = LinesAbove(sys.stderr)
    # SIGTERM and SIGHUP stop the run as Ctrl-C does (cancelled, exit 143 or 129), not by their
    # default action, which would leave the run ``interrupted`` in the store, no summary: from
    # the run's start, as its first pause may show before the prompt does.
    with contextlib.redirect_stderr(above), sigterm_raises():
        runner = make_runner()
        # The run's loop is not this thread's, where a signal's handler runs: it hands the
        # dump to the loop (``run`` installs its SIGUSR1 on its loop, the main thread's).
        previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: runner.dump())
        runner.start()
        try:
            run_id = runner.started()
            if run_id is None:
                return refuse(command, runner.code, runner.error or "the run did not start")
            call = caller(run_id)
            prompt = DebugPrompt(
                call, history=home_directory() / "debug_history", by="cli debug", above=above
            )
            prompt.run()
            if not prompt.done:
                call(
                    {
                        "action": "detach",
                        "by": "cli debug (end of input)",
                        "client": prompt.client,
                        "all": True,
                    }
                )
                while not prompt.done:
                    prompt.wait()
        except KeyboardInterrupt as stop:
            run_id = runner.started()  # the stop may come before the run has its id
            if run_id is None:
                return refuse(command, runner.code, runner.error or "the run did not start")
            runner.interrupted = exit_code(stop) - 128
            with contextlib.suppress(OSError):  # said if it can be: the cancel must happen
                print(
                    f"\n{signal.Signals(runner.interrupted).name}: cancelling run {run_id}...",
                    file=sys.stderr,
                    flush=True,
                )
            runner.cancel(*stop_cancel(runner.interrupted))
        except PipelineError as exc:
            refuse(command, EXIT_FAILURE, str(exc))
            runner.cancel()
        except BaseException:
            runner.cancel()  # else finish() would wait for ever on a run left paused
            raise
        finally:
            signal.signal(signal.SIGUSR1, previous)
            runner.finish()
        return runner.code


class RunThread(threading.Thread):
    """The engine's event loop, running the one debugged run and serving its control socket
    (with the debug ops) until ``finish()``; the prompt talks to it through the socket. A
    subclass runs another run in ``_main`` (``cli/replay_debug.py``): it sets ``run_id`` and
    ``_ready`` once its socket serves, ``_loop``, ``_handle`` and ``_dump`` for ``cancel`` and
    ``dump``, ``code`` at the end, and waits for ``_finished`` before closing the socket."""

    def __init__(  # noqa: PLR0917 - built in one place
        self,
        args: argparse.Namespace,
        pipeline: Any,
        request: dict[str, Any],
        registry: Any,
        workspace: Path,
        env: str,
    ) -> None:
        super().__init__(name="taskdaemon-debug-run", daemon=True)
        self._args, self._pipeline, self._request = args, pipeline, request
        self._registry, self._workspace, self._env = registry, workspace, env
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: Any = None
        self._dump: Callable[[], None] | None = None  # SIGUSR1's handler, in the run's loop
        self.run_id: str | None = None
        self.code = EXIT_FAILURE
        self.error: str | None = None
        self.interrupted = 0  # the signal that stopped the run (SIGINT, SIGTERM, SIGHUP), or 0

    def started(self) -> str | None:
        """Wait until the run started (its id) or could not (None, with ``code``/``error``)."""
        self._ready.wait()
        return self.run_id

    def cancel(self, reason: str | None = None, by: str | None = None) -> None:
        """Cancel the run (from the prompt's thread), ``reason`` recorded, else who cancels
        (``RunHandle.cancel``)."""
        if self._loop is not None and self._handle is not None:
            self._loop.call_soon_threadsafe(self._handle.cancel, reason, by)

    def dump(self) -> None:
        """SIGUSR1's dump of the run, as ``run`` writes it (``cli/_dump_hook.py``), written
        by the run's loop (from the signal's handler, in the prompt's thread)."""
        if self._loop is not None and self._dump is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the run has ended
                self._loop.call_soon_threadsafe(self._dump)

    def finish(self) -> None:
        """Let the thread close the socket and telemetry once the run ended; wait for it."""
        self._finished.set()
        self.join()

    def run(self) -> None:
        try:
            run_loop(self._main())  # as ``run``'s (event_loop.py)
        except (SettingsError, ValueError) as exc:
            self.code, self.error = EXIT_INVALID, str(exc).replace("\n", "; ")
        except PipelineError as exc:  # its workspace cannot be made (a read-only home): as run
            self.code, self.error = EXIT_INVALID, str(exc)
        except Exception as exc:  # never a traceback: say it in one line
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from taskdaemon.pipeline.cli.run import (  # noqa: PLC0415
            build_observers,
            say_quietly,
            say_unstored,
        )
        from taskdaemon.pipeline.cli.run_progress import ProgressView  # noqa: PLC0415
        from taskdaemon.pipeline.cli.run_summary import render_summary  # noqa: PLC0415
        from taskdaemon.pipeline.cli.stage_exit import exits_said  # noqa: PLC0415
        from taskdaemon.pipeline.cli.terminal_width import summary_width  # noqa: PLC0415
        from taskdaemon.pipeline.engine import Engine  # noqa: PLC0415

        args = self._args
        progress = None if args.quiet else ProgressView(sys.stderr, attach_hint=False)
        approvals = ApprovalPolicy(args.approve, approve_all=args.auto_approve)
        async with contextlib.AsyncExitStack() as stack:
            observers = build_observers(args, progress=progress, approvals=approvals, stack=stack)
            stack.enter_context(exits_said(observers))  # stage code's os._exit, said and stored
            engine = Engine(resolver=self._registry, observers=observers, workspace=self._workspace)
            async with engine:
                session = engine.with_debug(True)
                apply_breakpoints(session, self._pipeline, args, self._env)
                try:
                    handle = await engine.start_run(self._pipeline, self._request, started_by="cli")
                except PipelineError as error:  # its workspace cannot be made, as run says
                    self.code, self.error = EXIT_INVALID, str(error)
                    return
                self._loop, self._handle = asyncio.get_running_loop(), handle
                approvals.attach(handle)
                from taskdaemon.pipeline.cli._dump_hook import (  # noqa: PLC0415
                    dump_signal_handler,
                    dump_writer,
                )

                writer = dump_writer(engine, observers)
                self._dump = dump_signal_handler(engine, writer)
                server = await debug_server(engine, handle, writer)
                stack.push_async_callback(server.aclose)
                self.run_id = handle.run_id
                self._ready.set()
                result = await handle.wait()
                await store_run_end(result.run_id)  # before the socket closes (the stack)
                await asyncio.get_running_loop().run_in_executor(None, self._finished.wait)
        if args.quiet:
            say_quietly("debug", result)
        else:
            print(render_summary(result, self._pipeline, summary_width()), flush=True)
        say_unstored("debug", result.run_id, observers.unstored())
        if result.succeeded:
            self.code = EXIT_SUCCESS
        elif self.interrupted:
            self.code = 128 + self.interrupted  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
        else:
            self.code = EXIT_FAILURE


async def debug_server(engine: Any, handle: Any, writer: Any) -> Any:
    """The run's control socket, serving the debug ops (``writer`` its dumps), started: the
    socket ``debug attach`` and the prompt talk to, ``debug FILE``'s and ``replay --break``'s
    (``cli/replay_debug.py``). Raises what ``ControlServer.start`` raises."""
    from taskdaemon.pipeline.control import ControlServer  # noqa: PLC0415
    from taskdaemon.pipeline.debug_ops import DebugOps  # noqa: PLC0415
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    ops = DebugOps(
        engine, handle.run_id, dump=writer, redact_patterns=load_settings().redact_patterns
    )
    server = ControlServer(handle.run_id, handle, extra_ops={"debug": ops})
    await server.start()
    return server
