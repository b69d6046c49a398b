"""Loop types: the registry of stage handlers.

A handler is an async callable ``handler(ctx: StageContext) -> Mapping[str, Any]`` that does one
stage execution's work and returns its result (the stage's outputs unless the stage declares an
``outputs:`` mapping over ``result``). Raising fails the attempt; the exception is recorded by the
monitor and reaches the engine's error strategy unchanged.

Built-in loop types: ``python`` (the stage's ``handler: module:function``) and ``command`` (the
stage's ``command:``, run as a subprocess: ``command_loop``). Pipeline files declare more under
``loops:``; packages register more through the entry point group ``taskdaemon.loops`` (name =
loop type, value = ``module:function``).

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

The thread's CPU clock is read twice a stage, and each read is a system call on Linux (the
vDSO answers ``clock_gettime`` for wall clocks only). Kept so: one read after the call, against
the value the same thread read after its previous stage, would add the pool's own work between
two calls (handing over a result, taking the next call) to the stage's CPU time, and the
first stage on a thread would have no previous value; ``getrusage(RUSAGE_THREAD)`` is a system
call too, and counts in microseconds.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from taskdaemon.pipeline.command_loop import (
    KILL_GRACE,
    SAMPLE_INTERVAL,
    CommandFailedError,
    StdoutTooLargeError,
    command_handler,
)
from taskdaemon.pipeline.errors import HandlerImportError, LoopTypeError
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.model import LoopDef, Pipeline, Stage

if TYPE_CHECKING:
    from taskdaemon.pipeline.stage_context import StageContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "KILL_GRACE",
    "SAMPLE_INTERVAL",
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


# A string: ``StageContext`` is only imported for type checkers here (see ``__getattr__``).
Handler: TypeAlias = "Callable[[StageContext], Awaitable[Mapping[str, Any]]]"


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
    """Import ``module:function`` (the function part may be dotted: ``module:Class.method``).

    A failure is worded for the author of the file: a misspelt function or module gets the
    "did you mean" of a misspelt key (``_near_name``, ``_near_module``), and a module that
    raises while it is imported names the line that raised (``_raised_at``), since the
    exception's own words rarely say where it came from."""
    from taskdaemon.pipeline.quoting import quoted  # noqa: PLC0415 - a handler is resolved once

    where = f"stage {stage!r}: loop type {loop!r}: handler {quoted(target)}"
    if not _TARGET.match(target):
        raise LoopTypeError(f"{where}: expected 'module:function'")
    module_name, _, attribute = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module, name it
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        cause = f"{type(exc).__name__}: {exc}"
        cause += _near_module(module_name) if missing == module_name else _raised_at(exc)
        raise HandlerImportError(
            f"{where}: cannot import module {module_name!r}: {cause}",
            module=module_name,
            cause=cause,
            missing=missing,
        ) from exc
    parts = attribute.split(".")
    for at, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            hint = _near_name(obj, part, ".".join([*parts[:at], ""]))
            raise LoopTypeError(
                f"{where}: module {module_name!r} has no attribute {attribute!r}{hint}"
            ) from exc
    if not callable(obj):
        raise LoopTypeError(f"{where}: {attribute!r} is not callable")
    wrong = _call_mismatch(obj)
    if wrong is not None:
        raise LoopTypeError(
            f"{where}: {attribute!r} {wrong}: a handler is called with one argument, the "
            "stage context (def handler(ctx): ...)"
        )
    function: Callable[[StageContext], Any] = obj
    return function


_CO_VARARGS = 0x04  # ``inspect.CO_VARARGS``


def _call_mismatch(function: object) -> str | None:
    """Why ``function`` cannot be called with one positional argument, as its code says
    (``takes no argument``, ``takes 2 arguments``), or None: a ``def fetch():`` failed every run
    at its first stage, though ``validate`` had said OK. Read from the code object, without
    ``inspect`` (its import is most of ``validate``'s start-up); a callable without one of its
    own (a class, a callable object, a ``functools.partial``, a C function) or that takes
    ``*args`` (most decorators' wrappers) is not judged."""
    bound = 0
    inner = getattr(function, "__func__", None)
    if inner is not None and getattr(function, "__self__", None) is not None:
        function, bound = inner, 1
    code = getattr(function, "__code__", None)
    try:
        if code is None or code.co_flags & _CO_VARARGS:
            return None
        positional = code.co_argcount - bound
        required = positional - len(getattr(function, "__defaults__", None) or ())
    except (AttributeError, TypeError):  # a ``__code__`` that is not a code object
        return None
    if positional < 1:
        return "takes no argument"
    if required > 1:
        return f"takes {required} arguments"
    return None


def _near_name(owner: object, name: str, prefix: str) -> str:
    """`` (did you mean 'fetch'?)`` for ``name`` missing from ``owner``, among its public
    attributes (``prefix`` is the dotted path to ``owner``), or ``""``."""
    from taskdaemon.pipeline.wording import close_match  # noqa: PLC0415 - a failure only

    try:
        names = [found for found in dir(owner) if not found.startswith("_")]
    except Exception:  # a hostile ``__dir__``: no hint rather than no error line
        return ""
    close = close_match(name, names)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def _near_module(module_name: str) -> str:
    """`` (did you mean 'pkg.build'?)`` for a missing ``pkg.biuld`` whose package imports, among
    the package's modules; ``""`` for a missing top-level module (every installed one would be
    a candidate, and the usual cause is the directory: ``validate`` says where it looked)."""
    package_name, _, name = module_name.rpartition(".")
    package = sys.modules.get(package_name) if package_name else None
    paths = getattr(package, "__path__", None)
    if paths is None:
        return ""
    import pkgutil  # noqa: PLC0415 - a failure only (start-up time)

    from taskdaemon.pipeline.wording import close_match  # noqa: PLC0415 - a failure only

    close = close_match(name, [module.name for module in pkgutil.iter_modules(paths)])
    return f" (did you mean {f'{package_name}.{close[0]}'!r}?)" if close else ""


def _raised_at(exc: BaseException) -> str:
    """`` (raised at pkg/mod.py:3)``: the line of the innermost module being imported that
    raised, relative to the current directory when under it: the module's own line that called
    into a library, not the library's line that raised (``json.loads`` of a bad constant), which
    is not the author's to fix. ``""`` when there is none (a ``SyntaxError``'s words already
    name its file and line)."""
    import os  # noqa: PLC0415 - a failure only

    place = None
    traceback = exc.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if code.co_name == "<module>" and not code.co_filename.startswith("<"):
            place = (code.co_filename, traceback.tb_lineno)
        traceback = traceback.tb_next
    if place is None:
        return ""
    path = place[0]
    if path.startswith(os.getcwd() + os.sep):
        path = os.path.relpath(path)
    return f" (raised at {path}:{place[1]})"


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
