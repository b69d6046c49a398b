"""What stage code leaves behind it, each with the stage it came from: the threads it starts
and the ``atexit`` hooks it registers.

Stage code may start a ``threading.Thread`` (or a ``concurrent.futures`` pool, whose workers
are threads) that outlives its stage, and register an ``atexit`` hook. Such a thread runs for no
stage execution (``threading.Thread`` does not copy the context it starts in, so
``execution.current_execution()`` is None there), and a hook runs after the command, so nothing
said where they came from when they held taskdaemon's process at its end
(``cli/process_end.py``) or ended it (``os._exit`` in such a thread: ``cli/stage_exit.py``).

While a command runs stages (:func:`leftovers_traced`, entered by ``stage_exit.exits_said``),
``threading.Thread.start`` and ``atexit.register`` note the stage execution current where they
are called (in a thread stage code started: the execution that started that thread). Only
threads not named ``taskdaemon-*`` are noted: taskdaemon names its own threads so (the sync
handlers' pool starts its threads from a stage's hop). A hook is registered wrapped
(:class:`_Hook`), equal to the function it wraps so that ``atexit.unregister(f)`` still finds it,
and notes while it runs that it is the hook atexit is running.

A thread inherits the daemon flag of the thread that creates it. taskdaemon runs a sync handler
(and ``asyncio.to_thread`` work) on its sync pool's threads, and every handler under ``debug
FILE`` on its run's thread, all daemon threads so that a handler abandoned at its timeout never
holds the process. A thread such a handler started without saying ``daemon=`` was so a daemon
thread where the same code run by an ``async def`` handler (on the main thread), or by plain
Python, starts a non-daemon one: at the process's end it was killed with no word, its work (an
upload finishing in the background) lost. Decision: while the block runs, ``Thread.__init__``
gives such a thread the flag plain Python would give it, non-daemon, when stage code creates it
on one of taskdaemon's daemon threads; ``daemon=True`` said (or ``thread.daemon = True`` later)
is kept, and a thread stage code's own thread creates inherits as Python does. The process's end
then waits for it as for any other, :data:`process_end.END_GRACE` seconds at most, and names it
if it is cut off (``cli/process_end.py``). An explicit daemon thread stays unannounced: its code
said that it may be killed.

``sys.exit()`` in such a thread ends that thread alone: Python's ``threading.excepthook`` ignores
``SystemExit`` without a word, so code that meant to end the process (or its stage) saw its
stage succeed and the process go on, with nothing said. While the block runs, a thread stage
code started that ends so is one warning, the stage's own record (``logs --stage``): ``stage
'a': its thread 'quitter' called sys.exit(3), which ends that thread alone: the stage and
taskdaemon go on``.

Nothing else changes what the thread or the hook does; the cost is one look-up a thread created
or started or a hook registered, none a stage.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.cli.late_exit import bound_late
from taskdaemon.pipeline.execution import current_execution, enter_execution

if TYPE_CHECKING:
    from taskdaemon.pipeline.loops import StageContext

__all__ = [
    "handlers_imported",
    "left_by",
    "leftovers_traced",
    "ran_stages",
    "running_hook",
    "started_by",
]

_log = logging.getLogger(__name__)

#: The stage execution that started each thread stage code started (and their threads').
_STARTED: weakref.WeakKeyDictionary[threading.Thread, StageContext] = weakref.WeakKeyDictionary()

#: The stage's hook atexit is running now, while it runs (at most one: atexit runs them in turn).
_RUNNING: list[_Hook] = []


#: Whether this process has traced a command running stages (:func:`leftovers_traced`).
_TRACED: list[bool] = []


def ran_stages() -> bool:
    """Whether a command of this process has run stages, or imported their handler modules
    (:func:`handlers_imported`): stage code ran here."""
    return bool(_TRACED)


def handlers_imported() -> None:
    """Note that this process imported stage code outside a run: the handler modules a command
    resolves (``validate``; ``run``, ``debug``, ``serve`` and ``replay`` before their run, or
    instead of it when one does not resolve). A module's top-level code may register a blocking
    ``atexit`` hook or start a thread as a handler may, and held ``validate`` at its end for
    ever: its process's end is bounded as a run's (``cli/process_end.py``). Called before the
    import: a module that binds ``os._exit`` then binds ``cli/late_exit.py``'s stand-in."""
    bound_late()
    _TRACED[:] = [True]


def started_by(thread: threading.Thread) -> StageContext | None:
    """The stage execution that started ``thread``, or None: not started by stage code (or
    not while a command traced it)."""
    return _STARTED.get(thread)


def left_by(run_id: str) -> list[threading.Thread]:
    """The threads stage code of run ``run_id`` started that still run and that the process's
    end waits for (not daemon threads)."""
    for _ in range(3):  # a thread another thread starts meanwhile changes the mapping
        with contextlib.suppress(RuntimeError):
            started = list(_STARTED.items())
            break
    else:
        return []
    return [
        thread
        for thread, execution in started
        if execution.run_id == run_id and not thread.daemon and thread.is_alive()
    ]


def running_hook() -> tuple[Callable[..., object], StageContext] | None:
    """The ``atexit`` hook that stage code registered and atexit is running now, with the
    stage execution that registered it, or None."""
    return (_RUNNING[0].func, _RUNNING[0].execution) if _RUNNING else None


def _current() -> StageContext | None:
    """The stage execution the calling code runs for, directly or through its thread."""
    return current_execution() or _STARTED.get(threading.current_thread())


class _Hook:
    """An ``atexit`` hook stage code registered: calls ``func``, noted as running meanwhile."""

    __slots__ = ("execution", "func")

    def __init__(self, func: Callable[..., object], execution: StageContext) -> None:
        self.func = func
        self.execution = execution

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        _RUNNING.append(self)
        try:
            return self.func(*args, **kwargs)
        finally:
            _RUNNING.remove(self)

    def __eq__(self, other: object) -> bool:  # atexit.unregister(func) compares with ==
        return other is self or other == self.func

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:  # "Exception ignored in atexit callback" names the function
        return repr(self.func)


@contextlib.contextmanager
def leftovers_traced() -> Iterator[None]:
    """Note, for the block, the stage that starts each thread and registers each hook."""
    real_init = threading.Thread.__init__
    real_start = threading.Thread.start
    real_register = atexit.register
    real_excepthook = threading.excepthook

    def excepthook(args: threading.ExceptHookArgs) -> None:
        execution = None if args.thread is None else _STARTED.get(args.thread)
        if args.exc_type is SystemExit and execution is not None and args.thread is not None:
            _said_thread_exit(execution, args.thread, args.exc_value)
        real_excepthook(args)

    def init(self: threading.Thread, *args: Any, daemon: bool | None = None, **kwargs: Any) -> None:
        real_init(self, *args, daemon=daemon, **kwargs)
        if daemon is None and self.daemon and not self.name.startswith("taskdaemon-"):
            creator = threading.current_thread()
            if creator not in _STARTED and current_execution() is not None:
                self.daemon = False  # inherited from taskdaemon's thread: as plain Python's

    def start(self: threading.Thread) -> None:
        if not self.name.startswith("taskdaemon-") and (execution := _current()) is not None:
            _STARTED[self] = execution
        real_start(self)

    def register(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        execution = _current()
        if execution is None:
            return real_register(func, *args, **kwargs)
        real_register(_Hook(func, execution), *args, **kwargs)
        return func  # as atexit.register returns it: a decorator keeps the function

    _TRACED[:] = [True]
    threading.Thread.__init__ = init  # type: ignore[method-assign]
    threading.Thread.start = start  # type: ignore[method-assign]
    atexit.register = register
    threading.excepthook = excepthook
    try:
        yield
    finally:
        if threading.Thread.__init__ is init:
            threading.Thread.__init__ = real_init  # type: ignore[method-assign]
        if threading.Thread.start is start:
            threading.Thread.start = real_start  # type: ignore[method-assign]
        if atexit.register is register:
            atexit.register = real_register
        if threading.excepthook is excepthook:
            threading.excepthook = real_excepthook


def _said_thread_exit(
    execution: StageContext, thread: threading.Thread, exit: BaseException | None
) -> None:
    """Say that ``thread``, which ``execution`` started, ended by ``sys.exit`` (module
    docstring), as the stage's record: the thread is ending, its context is its own."""
    from taskdaemon.pipeline.foreign_text import exit_call  # noqa: PLC0415
    from taskdaemon.pipeline.quoting import quote  # noqa: PLC0415 - said rarely

    enter_execution(execution)
    _log.warning(
        "stage %s: its thread %s called %s, which ends that thread alone: the stage "
        "and taskdaemon go on",
        quote(execution.stage),
        quote(thread.name),
        exit_call(exit),
    )
