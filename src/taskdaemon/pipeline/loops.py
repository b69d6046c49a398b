"""Loop types: the registry of stage handlers.

A handler is an async callable ``handler(ctx: StageContext) -> Mapping[str, Any]`` that does one
stage execution's work and returns its result (the stage's outputs unless the stage declares an
``outputs:`` mapping over ``result``). Raising fails the attempt; the exception is recorded by the
monitor and reaches the engine's error strategy unchanged.

Built-in loop types: ``python`` (the stage's ``handler: module:function``) and ``command`` (the
stage's ``command:``, run as a subprocess). Pipeline files declare more under ``loops:``; packages
register more through the entry point group ``taskdaemon.loops`` (name = loop type, value =
``module:function``).

:class:`LoopRegistry` turns a stage into its handler; it is the engine's ``resolver``. A stage's
loop type is looked up, in this order, among the built-ins, the pipeline file's ``loops:``, then
the types registered in code or through entry points, so a file can always override an installed
type for itself.

Python functions (``python`` stages, file-declared ``handler:`` loop types, registered types) may
be sync or async and take the :class:`StageContext`. A sync function runs in a worker thread
(the loop's default executor, see ``_threads``) so it never blocks the event loop; its context's
``publish``, ``report_process`` and ``report_usage`` run on the engine's loop (the thread waits for
them), and its ``environment`` is still resolved on the loop, on first read.
A thread cannot be interrupted, so on timeout or cancellation the stage ends at once while the
thread finishes its call in the background. The function's return value becomes the result: a
mapping as is, ``None`` as ``{}``, anything else as ``{"result": value}``.

CPU time: a Python function's stage reports (``ctx.report_cpu``) the CPU time of the thread
that ran it, measured where it ran with ``time.thread_time()``: for a sync function, its worker
thread around the call (the exact CPU of the call, but nothing when the stage timed out or was
cancelled while the thread still ran); for an async one, the loop thread across the awaited
call, which includes whatever other coroutines and the loop's own bookkeeping ran meanwhile.
Neither counts subprocesses (report them with ``report_usage``, which takes precedence) nor
time spent waiting, so a handler that sleeps reports about zero.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from taskdaemon.pipeline.command_env import command_environment
from taskdaemon.pipeline.errors import HandlerImportError, LoopTypeError, StageFailedError
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.model import LoopDef, Pipeline, Stage
from taskdaemon.pipeline.process_tree import TreePeaks

if TYPE_CHECKING:
    # Imported where a stage runs: ``validate`` resolves handlers without asyncio (a third of
    # its start-up), its worker threads, the output capture or the group watchdog; nor psutil.
    import asyncio

    import psutil

    from taskdaemon.pipeline.stage_context import StageContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "CommandFailedError",
    "Handler",
    "LoopRegistry",
    "StageContext",
    "StdoutTooLargeError",
    "command_handler",
    "python_handler",
]

#: The entry point group packages use to ship loop types (name → ``module:function``).
ENTRY_POINT_GROUP = "taskdaemon.loops"
_T = TypeVar("_T")
_BLANK = re.compile(r"\s+")  # what str.strip removes


# A string: ``StageContext`` is only imported for type checkers here (see ``__getattr__``).
Handler: TypeAlias = "Callable[[StageContext], Awaitable[Mapping[str, Any]]]"

#: How often the process tree of a command stage is sampled, in seconds.
SAMPLE_INTERVAL = 0.1
#: Seconds between SIGTERM and SIGKILL when a command stage is cancelled.
KILL_GRACE = 2.0


class StdoutTooLargeError(StageFailedError):
    """Raised when a command stage printed more on stdout than its result may hold
    (``stage_output.CaptureLimits.stdout_max_bytes``): its result would be cut, so wrong."""

    def __init__(self, seen: int, bound: int) -> None:
        self.seen = seen
        self.bound = bound
        super().__init__(
            f"stdout of {seen} bytes is over the bound of {bound} bytes on a command's result "
            "(TASKDAEMON_STDOUT_MAX_BYTES)"
        )


class CommandFailedError(StageFailedError):
    """Raised when a command stage's process exits with a non-zero code (or dies of a signal).

    ``exit_code`` is the process's return code (negative: the signal number that killed it);
    ``stderr_tail`` the last lines it wrote on stderr.
    """

    def __init__(self, command: str, exit_code: int, stderr_tail: str) -> None:
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
        message = f"command {command!r} {how}"
        if stderr_tail:
            message += f"; stderr (last lines):\n{stderr_tail}"
        super().__init__(message)


# -- python functions -------------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    """``StageContext`` is imported on first use: it is a dataclass (handlers copy it with
    ``dataclasses.replace``), and ``dataclasses`` brings ``inspect``, which ``validate``
    resolving handlers has no use for (docs/architecture.md, "Dependency rule")."""
    if name == "StageContext":
        from taskdaemon.pipeline.stage_context import StageContext  # noqa: PLC0415

        return StageContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CO_COROUTINE = 0x80  # ``inspect.CO_COROUTINE``


def _is_coroutine_function(function: object) -> bool:
    """``inspect.iscoroutinefunction`` without importing ``inspect``: a bound method's or a
    ``functools.partial``'s function is looked through, then its code's coroutine flag read.
    A callable this misses (a C-compiled coroutine function, say) runs in a worker thread,
    and the coroutine it returns is awaited on the loop (``run_sync``): slower, not wrong."""
    while True:
        inner = getattr(function, "__func__", None)
        if inner is not None:
            function = inner
        elif isinstance(function, functools.partial):
            function = function.func
        else:
            break
    code = getattr(function, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def _as_result(value: object) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    return {"result": value}


class _CarriedExitError(Exception):
    """A sync handler's ``GeneratorExit``, on its way from the worker thread to the loop.

    A future's exception reaches the awaiting task through ``coroutine.throw``, and a thrown
    ``GeneratorExit`` *closes* every coroutine awaited below the task's own instead of entering
    them: the engine's attempt never saw it, and the run waited for ever for the instance. So
    the thread hands it over wrapped, and ``run_sync`` raises it again where it awaits."""

    def __init__(self, exit_: GeneratorExit) -> None:
        super().__init__()
        self.exit = exit_


def python_handler(
    function: Callable[[StageContext], Any], *, cancel_grace: float | None = None
) -> Handler:
    """Wrap a sync or async function of the stage context into a :data:`Handler`.

    A sync function runs in a worker thread; an async one is awaited on the engine's loop. Both
    report their thread's CPU time through ``ctx.report_cpu`` (see the module docstring), also
    when they raise. An async function that swallows its cancellation (the stage's timeout, the
    run's cancellation) is abandoned ``cancel_grace`` seconds later (default
    ``cancel_grace.CANCEL_GRACE``), and its stage ends as if it had not swallowed it
    (``cancel_grace``).
    """
    if _is_coroutine_function(function):
        # ``cancel_grace.driven``, imported at the first call and kept (as ``hop`` below): the
        # module imports asyncio, which ``validate`` never needs.
        driven: Any = None
        grace = cancel_grace

        async def run_async(ctx: StageContext) -> Mapping[str, Any]:
            nonlocal driven, grace
            if driven is None:
                from taskdaemon.pipeline import cancel_grace as module  # noqa: PLC0415

                driven = module.driven
                if grace is None:
                    grace = module.CANCEL_GRACE
            started = time.thread_time()
            try:
                result = await driven(function(ctx), grace, ctx.stage, ctx.run_id)
                # Most handlers return None: ``_as_result``'s answer without its call.
                return {} if result is None else _as_result(result)
            finally:
                ctx.report_cpu(time.thread_time() - started)

        run_async.__qualname__ = getattr(function, "__qualname__", "handler")
        return run_async

    def timed(ctx: StageContext) -> Any:  # on the worker thread
        started = time.thread_time()
        try:
            return function(ctx)
        except GeneratorExit as exit_:
            raise _CarriedExitError(exit_) from None  # see ``_CarriedExitError``
        finally:
            # Reported from the thread, before its result reaches the loop (so before the
            # stage's end record is made); the thread-safe context passes ``report_cpu`` as is.
            ctx.report_cpu(time.thread_time() - started)

    # ``_threads.hop``, imported at the first call (see the top) and kept: an ``import``
    # statement of a loaded module still runs the import machinery's look-up every time.
    hop: Any = None

    async def run_sync(ctx: StageContext) -> Mapping[str, Any]:
        nonlocal hop
        if hop is None:
            from taskdaemon.pipeline._threads import hop as imported  # noqa: PLC0415

            hop = imported
        try:
            result: Any = await hop(timed, ctx)
        except _CarriedExitError as carried:
            raise carried.exit from None  # raised here, it fails the attempt like any error
        if result is None:  # most sync handlers: spare the ABC checks below
            return {}
        if isinstance(result, Awaitable):  # a sync wrapper that returned a coroutine
            result = await result
        return _as_result(result)

    run_sync.__qualname__ = getattr(function, "__qualname__", "handler")
    return run_sync


_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _import_target(target: str, *, stage: str, loop: str) -> Callable[[StageContext], Any]:
    """Import ``module:function`` (the function part may be dotted: ``module:Class.method``)."""
    where = f"stage {stage!r}: loop type {loop!r}: handler {target!r}"
    if not _TARGET.match(target):
        raise LoopTypeError(f"{where}: expected 'module:function'")
    module_name, _, attribute = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module, name it
        cause = f"{type(exc).__name__}: {exc}"
        raise HandlerImportError(
            f"{where}: cannot import module {module_name!r}: {cause}",
            module=module_name,
            cause=cause,
            missing=exc.name if isinstance(exc, ModuleNotFoundError) else None,
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise LoopTypeError(
                f"{where}: module {module_name!r} has no attribute {attribute!r}"
            ) from exc
    if not callable(obj):
        raise LoopTypeError(f"{where}: {attribute!r} is not callable")
    function: Callable[[StageContext], Any] = obj
    return function


# -- shell commands ---------------------------------------------------------------------------

_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")


def _input_environment(inputs: Mapping[str, Any]) -> dict[str, str]:
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


async def _sample_peaks(peaks: TreePeaks, interval: float) -> None:
    """Sample the tree every ``interval`` seconds, off the loop, until cancelled (a sample in
    progress ends first)."""
    import asyncio  # noqa: PLC0415 - see the top

    while True:
        await _in_thread(peaks.sample)
        await asyncio.sleep(interval)


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


async def _end_spawned(spawning: asyncio.Future[asyncio.subprocess.Process], grace: float) -> None:
    """Terminate the process group of a spawn whose caller was cancelled meanwhile."""
    try:
        process = await spawning
    except Exception:
        return  # it did not start: nothing to end
    from taskdaemon.pipeline.group_watchdog import shared_watchdog  # noqa: PLC0415 - see the top

    watchdog = shared_watchdog(grace)
    watchdog.started(process.pid)
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
    ``TASKDAEMON_INSTANCE``, and ``ctx.environment`` (``TRACEPARENT`` when monitored). The inputs
    are also written as one JSON object on stdin.

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
    (``group_watchdog``) while it exists. A process that leaves the group (``setsid``) is out
    of reach.

    The process tree is sampled every ``sample_interval`` seconds; the CPU seconds and peak RSS
    of the tree are reported through ``ctx.report_usage`` when the command ends (also on failure
    and cancellation), and the root pid through ``ctx.report_process`` when it starts.
    """

    async def run_command(ctx: StageContext) -> Mapping[str, Any]:
        import asyncio  # noqa: PLC0415 - see the top

        from taskdaemon.pipeline.group_watchdog import shared_watchdog  # noqa: PLC0415
        from taskdaemon.pipeline.stage_output import OutputCapture, communicate  # noqa: PLC0415

        text = command or ctx.command
        if not text:
            raise LoopTypeError(f"stage {ctx.stage!r}: loop type {ctx.loop!r}: no command to run")
        env = command_environment()  # without opentelemetry-instrument's bootstrap
        env.update(_input_environment(ctx.inputs))
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
            await asyncio.shield(_end_spawned(spawning, kill_grace))
            raise
        except BaseException:
            capture.abandon()
            raise
        # Listed until its group is gone and its leader reaped (group ids are then reused).
        watchdog = shared_watchdog(kill_grace)
        watchdog.started(process.pid)
        try:
            capture.spawned()
            peaks = TreePeaks(process.pid)
            sampling = asyncio.create_task(_sample_peaks(peaks, sample_interval))
            ctx.report_process(process.pid)
            try:
                await communicate(process, stdin, capture)
            except BaseException:
                await asyncio.shield(_terminate_group(process, kill_grace))
                raise
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
                ctx.report_usage(peaks.cpu_seconds, peaks.peak_rss)
            await _kill_group(process.pid, kill_grace)
        finally:
            watchdog.ended(process.pid)
        code = process.returncode
        assert code is not None  # communicate() returns after the process was reaped
        if code != 0:
            raise CommandFailedError(text, code, capture.stderr_tail)
        if capture.stdout_over:
            raise StdoutTooLargeError(capture.stdout_bytes, capture.limits.stdout_max_bytes)
        return _parse_stdout(capture.stdout)

    return run_command


# -- the registry -----------------------------------------------------------------------------


@frozen
class _EntryPointLoop:
    target: str  # module:function, imported on first use


# loop type, handler, command, the file's declaration of the loop type
_ResolutionKey: TypeAlias = tuple[str, str | None, str | None, LoopDef | None]


class LoopRegistry:
    """Resolves stages to handlers: the engine's ``resolver``.

    ``resolve(pipeline, stage)`` (also ``registry(pipeline, stage)``) returns the stage's
    :data:`Handler` or raises :class:`LoopTypeError` naming the stage, the loop type and, for
    Python handlers, the ``module:function`` that failed. Resolutions are cached per what they
    read (the stage's loop type, handler and command, and the file's declaration of that loop
    type); ``register`` clears the cache.
    """

    def __init__(self) -> None:
        self._types: dict[str, Handler | _EntryPointLoop] = {}
        self._cache: dict[_ResolutionKey, Handler] = {}
        self._entry_points_read = True  # a bare registry has none to read

    @classmethod
    def default(cls) -> LoopRegistry:
        """A registry with the built-ins and every loop type installed packages declare in the
        ``taskdaemon.loops`` entry point group (imported when first used).

        The group is read when first needed (a stage whose type is neither built in nor
        declared by its file, or :attr:`loop_types`), not here: reading every installed
        package's metadata costs more than the rest of ``taskdaemon validate``. Types
        registered in code take precedence over entry points either way.
        """
        registry = cls()
        registry._entry_points_read = False
        return registry

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib import metadata  # noqa: PLC0415 - see default()

        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            self._types.setdefault(entry_point.name, _EntryPointLoop(entry_point.value))

    @property
    def loop_types(self) -> tuple[str, ...]:
        """The registered loop type names (built-ins excluded), sorted."""
        self._read_entry_points()
        return tuple(sorted(self._types))

    def register(self, name: str, handler: Callable[[StageContext], Any]) -> None:
        """Register loop type ``name``: a sync or async function of the stage context."""
        if name in {"python", "command"}:
            raise LoopTypeError(f"loop type {name!r} is built in and cannot be replaced")
        self._types[name] = python_handler(handler)
        self._cache.clear()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Handler:
        """The handler that runs ``stage`` of ``pipeline``."""
        # Keyed by exactly what resolving reads, not by the definition's hash, whose canonical
        # JSON and sha256 ``validate`` would pay for nothing.
        key = (stage.loop, stage.handler, stage.command, pipeline.loops.get(stage.loop))
        handler = self._cache.get(key)
        if handler is None:
            handler = self._resolve(pipeline, stage)
            self._cache[key] = handler
        return handler

    __call__ = resolve

    def _resolve(self, pipeline: Pipeline, stage: Stage) -> Handler:
        loop = stage.loop
        where = f"stage {stage.name!r}: loop type {loop!r}"
        if loop == "python":
            if not stage.handler:
                raise LoopTypeError(f"{where}: needs 'handler: module:function'")
            return python_handler(_import_target(stage.handler, stage=stage.name, loop=loop))
        if loop == "command":
            if not stage.command:
                raise LoopTypeError(f"{where}: needs 'command'")
            return command_handler(stage.command)
        declared = pipeline.loops.get(loop)
        if declared is not None:
            if declared.handler:
                target = _import_target(declared.handler, stage=stage.name, loop=loop)
                return python_handler(target)
            if declared.command:
                return command_handler(stage.command or declared.command)
            raise LoopTypeError(f"{where}: the declaration has neither 'handler' nor 'command'")
        self._read_entry_points()
        registered = self._types.get(loop)
        if isinstance(registered, _EntryPointLoop):
            handler = python_handler(_import_target(registered.target, stage=stage.name, loop=loop))
            self._types[loop] = handler
            return handler
        if registered is not None:
            return registered
        known = sorted({"python", "command", *pipeline.loops, *self._types})
        raise LoopTypeError(f"{where}: unknown loop type (known: {', '.join(known)})")
