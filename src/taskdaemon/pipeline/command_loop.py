"""The ``command`` loop type: a stage's shell command run as a subprocess, its result and its
process group's end.

:func:`command_handler` makes the handler the registry (``loops``) gives a ``command`` stage, or
a file-declared loop type with a ``command:``; its docstring is the contract (environment,
stdin, result, output capture, exit codes, what ends the process group). The process tree is
sampled off the loop for the stage's CPU time and peak memory (``process_tree``), and the
group is listed with the process's watchdog (``group_watchdog``) while it exists. ``loops``
re-exports the public names, so ``loops.command_handler`` and its errors stay where handlers
and tests have always found them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from taskdaemon.pipeline.command_env import command_environment
from taskdaemon.pipeline.errors import LoopTypeError, StageFailedError
from taskdaemon.pipeline.process_tree import TreePeaks

if TYPE_CHECKING:
    # Imported where a stage runs: ``validate`` resolves handlers without asyncio (a third of
    # its start-up), its worker threads, the output capture or the group watchdog; nor psutil.
    import asyncio

    import psutil

    from taskdaemon.pipeline.adopted_orphans import Orphans
    from taskdaemon.pipeline.group_watchdog import GroupWatchdog
    from taskdaemon.pipeline.loops import Handler
    from taskdaemon.pipeline.stage_context import StageContext

__all__ = [
    "KILL_GRACE",
    "SAMPLE_INTERVAL",
    "CommandFailedError",
    "StdoutTooLargeError",
    "command_handler",
    "input_environment",
]

_T = TypeVar("_T")
_logger = logging.getLogger(__name__)
_BLANK = re.compile(r"\s+")  # what str.strip removes

#: How often the process tree of a command stage is sampled, in seconds.
SAMPLE_INTERVAL = 0.1
#: Seconds between SIGTERM and SIGKILL when a command stage is cancelled.
KILL_GRACE = 2.0


class StdoutTooLargeError(StageFailedError):
    """Raised when a command stage printed more on stdout than its result may hold
    (``output_sinks.CaptureLimits.stdout_max_bytes``): its result would be cut, so wrong."""

    def __init__(self, seen: int, bound: int) -> None:
        self.seen = seen
        self.bound = bound
        super().__init__(
            f"stdout of {seen} bytes is over the bound of {bound} bytes on a command's result "
            "(TASKDAEMON_STDOUT_MAX_BYTES)"
        )


#: The shell's exit codes for a command it could not start.
_SHELL_CODES = {126: "found but not executable", 127: "not found"}


#: Characters of a failed command its error quotes: a command line with its arguments, enough
#: to tell which one failed, not a generated one at length.
SHOWN_COMMAND = 200


class CommandFailedError(StageFailedError):
    """Raised when a command stage's process exits with a non-zero code (or dies of a signal).

    ``exit_code`` is the process's return code (negative: the signal number that killed it);
    ``stderr_tail`` the last lines it wrote on stderr. The shell's 127 (a command not found)
    and 126 (found, not executable) name ``workspace``, the directory the command ran in: a
    relative path in a command (``./scripts/build.sh``) is read from the run's workspace, not
    from where taskdaemon was started, and the shell's own line does not say where it looked.

    The message quotes the command as every error quotes a value (``quoting.quote``: redacted,
    cut to ``SHOWN_COMMAND`` characters): a generated command line of 100 KB was quoted whole in
    the error, and so in the stage span's status and exception event, ``runs show`` and the
    terminal. ``command`` keeps it whole, and the run span's pipeline definition (replay's
    record, with its own attribute limits) is where the full command is stored on purpose.
    """

    def __init__(
        self, command: str, exit_code: int, stderr_tail: str, workspace: str | None = None
    ) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        if exit_code < 0:
            try:
                how = f"was killed by {signal.Signals(-exit_code).name}"
            except ValueError:
                how = f"was killed by signal {-exit_code}"
        else:
            how = f"exited with code {exit_code}"
        if exit_code in _SHELL_CODES and workspace:
            how += f" ({_SHELL_CODES[exit_code]}; it ran in the run's workspace, {workspace})"
        from taskdaemon.pipeline.quoting import quote  # noqa: PLC0415 - a failure only

        message = f"command {quote(command, SHOWN_COMMAND)} {how}"
        if stderr_tail:
            message += f"; stderr (last lines):\n{stderr_tail}"
        super().__init__(message)


_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")


def input_environment(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The ``TASKDAEMON_INPUT_<NAME>`` variables of ``inputs`` (:func:`command_handler`; the
    debugger's ``env`` shows them: ``debug_env``)."""
    env = {}
    for name, value in inputs.items():
        key = "TASKDAEMON_INPUT_" + _ENV_NAME.sub("_", name).upper()
        env[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    return env


def _parse_stdout(data: bytes | bytearray) -> Mapping[str, Any]:
    """A command's result from its whole stdout: the JSON object it printed, else
    ``{"stdout": text, "exit_code": 0}`` with the text decoded as UTF-8 (with replacement)
    without its trailing newlines (like the shell's ``$(...)``). An object nested deeper than
    ``json`` decodes is text too: what a command prints never fails its stage.

    The output may be megabytes: it is decoded once, from a view of its bytes without the
    trailing newlines (a newline byte never occurs inside a UTF-8 sequence, so this decodes as
    the whole output would), and only an output whose first non-blank character is ``{`` is
    stripped and parsed. Decoding, stripping and cutting the newlines off each copied it
    (``benchmarks/README.md``, "log_capture.py")."""
    tail = data[-64:]
    kept = len(tail.rstrip(b"\n"))
    end = len(data) - len(tail) + kept if kept else len(data.rstrip(b"\n"))
    with memoryview(data) as view, view[:end] as head:
        text = str(head, "utf-8", "replace")
    blank = _BLANK.match(text)
    if text.startswith("{", blank.end() if blank else 0):
        try:
            value = json.loads(text.strip())
        except (ValueError, RecursionError):  # not JSON, or nested past what json decodes
            pass
        else:
            if isinstance(value, dict):
                return value
    return {"stdout": text, "exit_code": 0}


async def _in_thread(function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` on a worker thread; when cancelled, the call still ends before the
    cancellation is re-raised.

    Giving up the wait alone would not give up the call: a process-tree sample would go on
    reading ``/proc`` (files open, ``TreePeaks`` being updated) after its stage ended and
    reported its usage from that same ``TreePeaks``. One loop future per call
    (``_threads.call_in_thread``), shielded, instead of ``asyncio.to_thread``'s task, its
    concurrent future chained to an asyncio one, and a task around that."""
    import asyncio  # noqa: PLC0415 - see the top

    from taskdaemon.pipeline._threads import call_in_thread  # noqa: PLC0415 - see the top

    call = call_in_thread(function, *args)
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # the cancellation is what the caller sees
            await asyncio.shield(call)
        raise


async def _sample_peaks(sample: Callable[[], object], interval: float) -> None:
    """Sample the tree every ``interval`` seconds, off the loop, until cancelled (a sample in
    progress ends first)."""
    import asyncio  # noqa: PLC0415 - see the top

    while True:
        await _in_thread(sample)
        await asyncio.sleep(interval)


def _sample_both(peaks: TreePeaks, orphans: Orphans) -> None:
    """One sample of the tree and one look for the processes it left (``adopted_orphans``)."""
    peaks.sample()
    orphans.look()


async def _end_orphans(stage: str, orphans: Orphans | None, grace: float) -> None:
    """Kill and reap the processes the command left outside its group, and say them."""
    if orphans is None:
        return
    killed, count, left = await _in_thread(orphans.end, grace)
    if count:
        more = f" and {count - len(killed)} more" if count > len(killed) else ""
        _logger.warning(
            "stage %r: %d process%s its command started left its process group (setsid) and "
            "outlived it: killed with the stage (pid %s%s)",
            stage,
            count,
            "" if count == 1 else "es",
            ", ".join(killed),
            more,
        )
    if left:
        _logger.warning(
            "stage %r: %d process%s it left outside its group still ran after %gs",
            stage,
            left,
            "" if left == 1 else "es",
            grace,
        )


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _group_members(pgid: int) -> list[psutil.Process]:
    """The live (non-zombie) processes of a process group."""
    import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (OSError, psutil.Error):
            continue
    return members


async def _kill_group(pgid: int, grace: float) -> None:
    """SIGKILL what is left of a process group and wait (up to ``grace``) until it is gone.

    Signal delivery is asynchronous; waiting makes "the stage ended" mean "its processes ended".
    """
    import asyncio  # noqa: PLC0415 - see the top

    if not _signal_group(pgid, signal.SIGKILL):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while loop.time() < deadline:
        if not await _in_thread(_group_members, pgid):
            return
        await asyncio.sleep(0.01)  # SIGKILL needs no cooperation: this ends within ms


async def _terminate_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group, wait for the root up to ``grace``, then SIGKILL the group."""
    import asyncio  # noqa: PLC0415 - see the top

    pgid = process.pid  # start_new_session made the root a group leader
    if _signal_group(pgid, signal.SIGTERM):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    # Whatever is still in the group (the root ignored SIGTERM, or children outlived it) dies now.
    await _kill_group(pgid, grace)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)


async def _end_held_open(stage: str, pgid: int, grace: float, still: bool) -> None:
    """End the processes a command left in its group that still hold its output open after it
    exited (``stage_output.DRAIN_GRACE``), and say so: they end with the stage all the same
    (``command_handler``), but the user who started them in the background should know why.

    ``still``: the output is held after the group's end, by a process that left the group
    (``setsid``, a daemon that made its own session), which ending the group does not reach:
    said in a line of its own, as the rest of its output is not read. It is not hunted down
    by the pipe it holds: on Linux, taskdaemon has adopted it once its parents ended, and
    kills it with the stage's other orphans (``adopted_orphans``, whose line names it);
    elsewhere it runs on past its stage, which the line then says."""
    from taskdaemon.pipeline.adopted_orphans import become_subreaper  # noqa: PLC0415
    from taskdaemon.pipeline.stage_output import DRAIN_GRACE  # noqa: PLC0415 - see the top

    if still:
        _logger.warning(
            "stage %r: a process its command started outside its process group (setsid) "
            "still holds its output open: what it writes is not read%s",
            stage,
            "" if become_subreaper() else ", and it runs on after the stage",
        )
        return
    _logger.warning(
        "stage %r: its command exited, but processes it left running held its output open "
        "for %gs: they are killed with the stage",
        stage,
        DRAIN_GRACE,
    )
    await _kill_group(pgid, grace)


def _unlist_once_ended(watchdog: GroupWatchdog, pgid: int, ending: asyncio.Future[None]) -> None:
    """Unlist ``pgid`` once ``ending`` (its group's end) has run to its end."""
    if not ending.cancelled():
        watchdog.ended(pgid)


async def _end_spawned(
    spawning: asyncio.Future[asyncio.subprocess.Process],
    watchdog: GroupWatchdog,
    token: str,
    grace: float,
) -> None:
    """Terminate the process group of a spawn whose caller was cancelled meanwhile."""
    try:
        process = await spawning
    except Exception:
        watchdog.spawn_failed(token)
        return  # it did not start: nothing to end
    watchdog.started(process.pid, token)
    try:
        await _terminate_group(process, grace)
    finally:
        watchdog.ended(process.pid)


def command_handler(
    command: str | None = None,
    *,
    sample_interval: float = SAMPLE_INTERVAL,
    kill_grace: float = KILL_GRACE,
) -> Handler:
    """A handler running ``command`` (else ``ctx.command``) through ``/bin/sh -c``.

    The subprocess gets its own session (so its own process group), ``ctx.workspace`` as working
    directory when set, and this environment on top of the engine's own (less
    ``opentelemetry-instrument``'s bootstrap: ``command_env``): one
    ``TASKDAEMON_INPUT_<NAME>`` per input (upper-cased, other characters than letters, digits and
    ``_`` replaced by ``_``; JSON-encoded unless a string), ``TASKDAEMON_RUN_ID``,
    ``TASKDAEMON_PIPELINE``, ``TASKDAEMON_STAGE``, ``TASKDAEMON_ATTEMPT``,
    ``TASKDAEMON_INSTANCE``, and ``ctx.environment`` (``TRACEPARENT`` when monitored); then
    ``TASKDAEMON_SPAWN_TOKEN``, random, new for each spawn, by which the watchdog finds the
    processes of a spawn whose group it was not told yet. The inputs are also written as one
    JSON object on stdin.

    Result: stdout parsed as JSON when it is a JSON object, else
    ``{"stdout": text, "exit_code": 0}``; a stdout longer than the capture's
    ``stdout_max_bytes`` is read to its end but not kept, and raises
    :class:`StdoutTooLargeError` (after a non-zero exit's :class:`CommandFailedError`). Both
    streams are captured line by line as log records of the stage while the command runs
    (``stage_output``: bounded per stage). A non-zero exit raises :class:`CommandFailedError`
    with the code and the last lines of stderr. On cancellation (the engine's timeout included)
    the whole process group gets SIGTERM, then SIGKILL after ``kill_grace`` seconds, and the
    cancellation is re-raised. When the command exits, whatever it left running in its process
    group is killed: a stage's processes do not outlive it. Nor do they outlive this process
    when it is killed outright (``kill -9``): the group is listed with the process's watchdog
    (``group_watchdog``) while it exists, and its spawn's processes by their token before.
    A process that leaves the group (``setsid``) once it is listed is out of reach of the
    watchdog; on Linux, taskdaemon adopts it when its parents end, and kills and reaps it when
    the stage ends, with one warning (``adopted_orphans``).

    The process tree is sampled every ``sample_interval`` seconds; the CPU seconds and peak RSS
    of the tree are reported through ``ctx.report_usage`` when the command ends (also on failure
    and cancellation), and the root pid through ``ctx.report_process`` when it starts.
    """

    async def run_command(ctx: StageContext) -> Mapping[str, Any]:
        import asyncio  # noqa: PLC0415 - see the top

        from taskdaemon.pipeline.adopted_orphans import Orphans, become_subreaper  # noqa: PLC0415
        from taskdaemon.pipeline.group_watchdog import (  # noqa: PLC0415
            TOKEN_VARIABLE,
            shared_watchdog,
        )
        from taskdaemon.pipeline.stage_output import OutputCapture, communicate  # noqa: PLC0415

        text = command or ctx.command
        if not text:
            raise LoopTypeError(f"stage {ctx.stage!r}: loop type {ctx.loop!r}: no command to run")
        env = command_environment()  # without opentelemetry-instrument's bootstrap
        env.update(input_environment(ctx.inputs))
        env.update(
            {
                "TASKDAEMON_RUN_ID": ctx.run_id,
                "TASKDAEMON_PIPELINE": ctx.pipeline,
                "TASKDAEMON_STAGE": ctx.stage,
                "TASKDAEMON_ATTEMPT": str(ctx.attempt),
                "TASKDAEMON_INSTANCE": str(ctx.instance),
            }
        )
        env.update(ctx.environment)
        stdin = json.dumps(dict(ctx.inputs), default=str).encode()
        capture = OutputCapture(
            run_id=ctx.run_id,
            pipeline=ctx.pipeline,
            stage=ctx.stage,
            instance=ctx.instance,
            attempt=ctx.attempt,
            environment=env,
        )
        # Listed before the fork: the watchdog ends its processes should taskdaemon die before
        # their group is listed (group_watchdog's docstring).
        watchdog = shared_watchdog(kill_grace)
        token = env[TOKEN_VARIABLE] = watchdog.spawning()
        adopting = become_subreaper()  # before the fork: its orphans come back here
        spawning = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                text,
                stdin=asyncio.subprocess.PIPE,
                stdout=capture.child_stdout,
                stderr=capture.child_stderr,
                cwd=ctx.workspace,
                env=env,
                start_new_session=True,
            )
        )
        try:
            # Shielded: a cancellation while spawning must not leave a started process group
            # behind (asyncio would kill the shell alone, orphaning its children).
            process = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            capture.abandon()
            await asyncio.shield(_end_spawned(spawning, watchdog, token, kill_grace))
            raise
        except BaseException:
            capture.abandon()
            watchdog.spawn_failed(token)
            raise
        # Listed until its group is gone and its leader reaped (group ids are then reused).
        watchdog.started(process.pid, token)
        ending: asyncio.Future[None] | None = None
        orphans = Orphans(process.pid, token) if adopting else None
        try:
            capture.spawned()
            peaks = TreePeaks(process.pid)
            sample = peaks.sample if orphans is None else partial(_sample_both, peaks, orphans)
            sampling = asyncio.create_task(_sample_peaks(sample, sample_interval))
            ctx.report_process(process.pid)
            try:
                held_open = partial(_end_held_open, ctx.stage, process.pid, kill_grace)
                await communicate(process, stdin, capture, held_open)
            except BaseException:
                # Unlisted when the group is gone, not when this wait ends: a second
                # cancellation (the run's, after the stage's) ends the wait at once while the
                # group still has its grace, and taskdaemon may die before it ends (a second
                # Ctrl-C): the watchdog must still know the group then. An end cut short (the
                # loop closing) leaves it listed: the watchdog ends it when this process ends.
                ending = asyncio.ensure_future(_terminate_group(process, kill_grace))
                ending.add_done_callback(partial(_unlist_once_ended, watchdog, process.pid))
                await asyncio.shield(ending)
                await asyncio.shield(_end_orphans(ctx.stage, orphans, kill_grace))
                raise
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
                ctx.report_usage(peaks.cpu_seconds, peaks.peak_rss)
            await _kill_group(process.pid, kill_grace)
            await _end_orphans(ctx.stage, orphans, kill_grace)
        finally:
            if ending is None:  # else its end unlists the group
                watchdog.ended(process.pid)
        code = process.returncode
        assert code is not None  # communicate() returns after the process was reaped
        if code != 0:
            raise CommandFailedError(text, code, capture.stderr_tail, ctx.workspace)
        if capture.stdout_over:
            raise StdoutTooLargeError(capture.stdout_bytes, capture.limits.stdout_max_bytes)
        return _parse_stdout(capture.stdout)

    return run_command
