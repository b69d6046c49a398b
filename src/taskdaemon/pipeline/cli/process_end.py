"""The process's end once its command has returned: bounded, and said when something holds it.

After a command returns its exit code (``run``: the run stored, its summary printed), Python
waits for every non-daemon thread, then runs the ``atexit`` hooks. A thread stage code left
running (a ``threading.Thread`` of an ``async def`` handler, a ``ThreadPoolExecutor`` never shut
down) or an ``atexit`` hook it registered that blocks held ``taskdaemon run``, ``serve``,
``debug FILE`` or ``replay`` forever, with nothing said: a finished run, and a terminal or a CI
job that never came back. Ctrl-C there printed a traceback from ``threading._shutdown``.

Decision: the run has ended and is stored; what its stages left running is no part of it
(the stage that started it reported its end already, and no record will say how that work
ended). A user expects the command to end with its run, with its exit code, and to be told
what was left. So the entry points (``taskdaemon``'s ``main``, ``python -m
taskdaemon.pipeline.cli``) call :func:`watch_end` with the command's exit code: the process's
end gets :data:`END_GRACE` seconds, then one line names what holds it (each thread by its name,
the stage that started it and the code it runs; or the ``atexit`` hook and the stage that
registered it: ``cli/stage_leftovers.py``), stdout and stderr are flushed and the process ends
with the command's exit code (``os._exit``; the ``atexit`` hooks not yet run do not run).
Waiting on, with a line saying so, was the other choice: a cron or CI job then hangs until
something kills it, for work whose result nobody reads. Work that must finish belongs in the
handler (``thread.join()``, ``executor.shutdown()``), where its stage's span, timeout and
cancellation count it.

Stage code's ``os._exit`` during the grace (a thread it left, an ``atexit`` hook) ended the
process at once with the code it asked, with nothing said: a run stored ``success`` and a
process that exited 5, or 0 after a run that failed. It is said now, in one line naming who
called it as above (``taskdaemon: thread 'exiter' (started by stage 'a', running m.f) ended the
process with os._exit(5) after the command ended with exit code 0``), and the process still
ends at once with the code asked (code that calls ``os._exit`` means it), but one the shell
reads as 0 is the command's: it never hides a run that failed. A forked child's is its own.
A name a handler module bound as it was imported (``from os import _exit``) calls this one too
(``cli/late_exit.py``).

Ctrl-C while the end is held: one line naming what held it, exit 130 (as a Ctrl-C anywhere
else), no traceback. A SIGINT ignored from the start (``nohup``) stays ignored.

The watch is a bare ``_thread`` thread, outside ``threading``'s books: a ``threading.Thread``
would be listed by ``threading.enumerate()`` to code that looks at exit (a daemon one) or would
hold the very exit it watches (a non-daemon one); ``_thread`` threads are never waited for.
``cli.main`` called in the same process (the tests) never starts it: only the entry points do,
and only after a command that ran stages, or imported their handler modules (``validate``: a
module may register a blocking ``atexit`` hook as it is imported), or that leaves a thread to
wait for (``runs list`` starts no thread for it).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import select
import signal
import sys
import threading
import time
from types import FrameType
from typing import Final, NoReturn

from taskdaemon.pipeline.cli import EXIT_INTERRUPTED
from taskdaemon.pipeline.cli.late_exit import beneath
from taskdaemon.pipeline.cli.stage_leftovers import left_by, ran_stages, running_hook, started_by

__all__ = ["END_GRACE", "threads_left", "watch_end"]

#: Seconds the process's end may take after its command returned before it is forced: time
#: for a thread finishing a last write or request, short beside anyone waiting for the prompt.
END_GRACE: Final = 2.0

#: Threads a line names at most (a handler may leave thousands); the rest are counted.
SHOWN_THREADS: Final = 5


def watch_end(code: int) -> int:
    """Have the process end within :data:`END_GRACE` seconds from now with ``code`` (or 130 at
    Ctrl-C), saying what held it (module docstring); returns ``code``, for ``sys.exit``.

    Only after a command that ran stages or imported their handlers, or with a thread left that
    the end would wait for: a command that ran no stage code (``runs list``) starts no watch."""
    main = threading.main_thread()
    if not ran_stages() and all(t.daemon for t in threading.enumerate() if t is not main):
        return code
    _say_exits(code)
    # Signals reach the watch through a wake-up pipe, which Python's C handler writes whichever
    # thread the kernel gave the signal to: a handler run by the main thread would never run
    # while that thread waits for a lock (threading._shutdown) and another got the signal.
    woken, wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    if threading.current_thread() is main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _noted)
        signal.set_wakeup_fd(wake, warn_on_full_buffer=False)

    def watch() -> None:
        deadline = time.monotonic() + END_GRACE
        pressed = False
        while not pressed and (left := deadline - time.monotonic()) > 0:
            if select.select([woken], [], [], left)[0]:
                pressed = signal.SIGINT in os.read(woken, 512)
        try:
            holder, hint = _holder()
        except Exception:  # stage code's names and objects: the process ends all the same
            holder, hint = "what Python runs at exit", ""
        if pressed:
            _end(f"Ctrl-C: exiting without waiting for {holder}", EXIT_INTERRUPTED)
        _end(
            f"exiting without waiting for {holder}, still running {END_GRACE:g} s after the "
            f"command ended{hint}",
            code,
        )

    _thread.start_new_thread(watch, ())
    return code


def threads_left(run_id: str) -> dict[str, list[str]]:
    """The run span's attribute naming the threads stage code of ``run_id`` left running as its
    end is recorded (:data:`telemetry.PIPELINE_THREADS_LEFT`), which the process's end will
    wait for and name if cut off; empty when none. Written then, as the store is closed by the
    time the grace has passed: the record says they still ran at the run's end, and
    ``runs show`` says it after the fact (the line on stderr says whether one was cut off).

    Decision: the cut itself is not recorded. The run span has ended and been exported (OTLP
    too) before the grace begins; recording the cut would mean reopening the store from the
    end's watch, with ``os._exit`` due within the grace, to change a span already ended, so the
    store and every exported copy would disagree. Under ``serve`` a run's end is not the
    process's: its threads run on and no cut follows. And the grace may end in a kill, which
    writes nothing either. So the record keeps what was true when it was written."""
    from taskdaemon.pipeline import telemetry  # noqa: PLC0415

    left = left_by(run_id)
    if not left:
        return {}
    named = [_thread_named(thread) for thread in left[:SHOWN_THREADS]]
    if len(left) > SHOWN_THREADS:
        named.append(f"and {len(left) - SHOWN_THREADS} more")
    return {telemetry.PIPELINE_THREADS_LEFT: named}


def _say_exits(code: int) -> None:
    """Replace ``os._exit`` for the grace after a command that returned ``code`` (module
    docstring)."""
    real_exit, pid = beneath(os._exit), os.getpid()

    def said_exit(status: int) -> NoReturn:
        if os.getpid() != pid or type(status) is not int or not -(2**31) <= status < 2**31:
            real_exit(status)  # a forked child's, or a wrong call (its error as before)
        try:
            caller = _caller()
        except Exception:  # stage code's names and objects: the process ends all the same
            caller = "code Python ran at exit"
        _end(
            f"{caller} ended the process with os._exit({status}) after the command ended "
            f"with exit code {code}",
            status if status % 256 else code,
        )

    os._exit = said_exit


def _caller() -> str:
    """Who calls, in the grace: a thread, or the ``atexit`` hook the main thread runs."""
    thread = threading.current_thread()
    if thread is not threading.main_thread():
        return f"thread {_thread_named(thread)}"
    return _hook_named(sys._getframe())


def _noted(signum: int, frame: object) -> None:
    """SIGINT's Python handler while the end is watched: the watch acts on it (its wake-up
    pipe), so that the main thread raises nothing (``KeyboardInterrupt`` in
    ``threading._shutdown``, or in an ``atexit`` hook, was a traceback)."""


def _end(said: str, code: int) -> NoReturn:
    """Flush stdout, say ``said`` on stderr, end the process with ``code``."""
    from posix import _exit  # noqa: PLC0415 - the real one, whoever replaced os._exit

    with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed or gone stream
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(f"taskdaemon: {said}\n")
        sys.stderr.flush()
    _exit(code)


def _holder() -> tuple[str, str]:
    """What holds the process's end (the threads it waits for, else the hook it runs), and
    what the code that holds it should do instead (its line's end)."""
    main = threading.main_thread()
    # A foreign thread's stand-in (threading._DummyThread) is a daemon: never waited for.
    waited = [t for t in threading.enumerate() if t is not main and not t.daemon]
    if waited:
        named = ", ".join(_thread_named(thread) for thread in waited[:SHOWN_THREADS])
        more = len(waited) - SHOWN_THREADS
        plural = "s" if len(waited) > 1 else ""
        return (
            f"thread{plural} {named}" + (f" and {more} more" if more > 0 else ""),
            "; a handler joins the threads it starts before it returns",
        )
    frame = sys._current_frames().get(main.ident or 0)
    if running_hook() is None and frame is None:
        return "what Python runs at exit", ""
    return _hook_named(frame), "; an atexit hook must not block"


def _hook_named(frame: FrameType | None) -> str:
    """The ``atexit`` hook the main thread runs (``frame`` one of its frames), with the stage
    that registered it when one did."""
    from taskdaemon.pipeline.quoting import quote  # noqa: PLC0415

    if (hook := running_hook()) is not None:
        func, execution = hook
        return f"the atexit hook {_code_name(func)} (registered by stage {quote(execution.stage)})"
    while frame is not None and frame.f_back is not None:  # atexit calls the outermost: the hook
        frame = frame.f_back
    # A hook no stage registered: a handler module's, as it was imported (``validate``).
    return f"the atexit hook {_code_name(frame)}"


def _thread_named(thread: threading.Thread) -> str:
    """``'name'`` with the stage that started ``thread`` and the code it runs, when known."""
    from taskdaemon.pipeline.quoting import quote  # noqa: PLC0415

    execution = started_by(thread)
    target = getattr(thread, "_target", None) or type(thread).run
    by = "" if execution is None else f"started by stage {quote(execution.stage)}, "
    return f"{quote(thread.name)} ({by}running {_code_name(target)})"


#: Characters of a code's name a line shows at most (stage code chooses its names).
NAME_SHOWN: Final = 120


def _code_name(code: object) -> str:
    """A function's (or a frame's) module and qualified name, as a reader finds it: cut to
    :data:`NAME_SHOWN`, its control characters escaped."""
    from taskdaemon.pipeline.ellipsis import cut  # noqa: PLC0415
    from taskdaemon.pipeline.terminal_text import shown  # noqa: PLC0415

    inner = getattr(code, "f_code", None)
    if inner is not None:
        module = getattr(code, "f_globals", {}).get("__name__", "?")
        name = inner.co_qualname
    else:
        module = getattr(code, "__module__", None) or "?"
        name = getattr(code, "__qualname__", None) or type(code).__qualname__
    return shown(cut(f"{module}.{name}", NAME_SHOWN))
