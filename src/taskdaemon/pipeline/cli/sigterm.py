"""SIGTERM and SIGHUP handled as Ctrl-C is, for the commands whose Ctrl-C is a
``KeyboardInterrupt`` in the main thread (``watch``, ``logs -f``, ``dag --watch``, ``debug
FILE``'s prompt): a process ended by either signal's default action skips every ``finally``
and ``with`` exit, so a live table left the terminal's cursor hidden, a debugged run was left
``interrupted`` in the store, and a follower's parent was told of a death by signal.
With :func:`sigterm_raises`, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``)
instead, and SIGHUP :class:`HungUp`: the same clean stop, exit code 143 or 129
(:func:`exit_code`). A second SIGTERM exits at once. SIGHUP follows ``cli/hangup.py``: left
ignored under ``nohup``, the terminal's streams detached before anything is raised, and a
SIGHUP after the first signal (the shell's, after the kernel's) is no hurry: it changes nothing.

Inside, Ctrl-C raises through the same guard, which keeps all three out of one place: the
import machinery's own frames. There, between taking a module's lock and the ``try`` that gives
it back, an exception leaves the lock held for ever; the telemetry still loading on its thread
then blocks on it, and the run waits for the telemetry (a hung-up ``debug`` hung until
``cli/deferred.py``'s bound, about one in ten under load). A signal that finds the main thread
there is sent again a moment later (``_AGAIN``), and raises once it is out.

Nor inside a :func:`signals_held` block (``rich``'s live display starting or stopping:
``cli/watch.py``). Its start hides the cursor, takes stderr and pushes its render hook, and
only a whole start is undone: a Ctrl-C raised there (``Live.__enter__`` left, no
``__exit__``) left the shell a hidden cursor, and a stop interrupted before its ``finally``
did as much. Such a signal is noted, and raised as the block ends.

A command that waits on an event loop (``watch``, ``dag --watch``) runs it with
:func:`woken_by_signals`. A signal only marks its Python handler pending, to be run by the main
thread at its next bytecode; the kernel may hand it to another thread (any that does not block
it), or to the main thread a moment before its loop starts to wait. A loop waiting with no
timer due (a poll in flight that a silent source holds) then slept on: the live table went on
drawing, and the Ctrl-C was never seen. The loop now also waits on the signals' wakeup
descriptor, which the C handler writes to whichever thread runs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Awaitable, Iterator
from types import FrameType
from typing import TypeVar

from taskdaemon.pipeline.cli.hangup import detach_terminal, hangup_handled
from taskdaemon.pipeline.cli.terminal_state import exit_now

__all__ = [
    "HungUp",
    "Terminated",
    "exit_code",
    "signals_held",
    "sigterm_raises",
    "terminal_hung_up",
    "woken_by_signals",
]

T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: handled wherever Ctrl-C is."""

    signum: int = signal.SIGTERM


class HungUp(Terminated):
    """SIGHUP (the terminal closed), raised in the main thread."""

    signum: int = signal.SIGHUP


def exit_code(stop: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 129 for SIGHUP, 130 for Ctrl-C."""
    return 128 + (stop.signum if isinstance(stop, Terminated) else signal.SIGINT)


#: The file name of the import machinery's frames (``_bootstrap`` and ``_bootstrap_external``).
_IMPORT_MACHINERY = "<frozen importlib._bootstrap"
#: Seconds before a signal that came inside the import machinery is sent again.
_AGAIN = 0.01


#: The signals that came inside each :func:`signals_held` block, the innermost last.
_held: list[list[int]] = []


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Inside, SIGINT, SIGTERM and SIGHUP raise nothing when :func:`sigterm_raises` handles
    them: each is noted, and raised as the block ends, an exception from inside or not (the
    signal is why the command stops). Only for what is short and must be done whole."""
    pending: list[int] = []
    _held.append(pending)
    try:
        yield
    finally:
        _held.pop()
        for signum in pending:
            signal.raise_signal(signum)  # its handler runs in this thread, at once


#: While a handler starts the timers of the signals it put off (:func:`_put_off`): the signals
#: that came meanwhile, to be sent again too. Empty otherwise.
_came_meanwhile: list[list[int]] = []


def _put_off(signum: int, frame: FrameType | None) -> bool:
    """Whether ``frame`` is the import machinery's: then the signal is sent again shortly.

    So is a signal that comes while a handler is still starting that timer: on a loaded
    machine the timer's thread may start, wait and send the signal before ``start`` returns,
    and the handler then ran again in ``threading``'s frame and raised there, inside the
    import machinery's frame the first signal had spared. Such a signal is only noted; the
    handler starting the timer sends it again in turn, so no handler starts a thread inside
    another. A signal inside a :func:`signals_held` block is only noted, for the block."""
    if _held:
        _held[-1].append(signum)
        return True
    if _came_meanwhile:
        _came_meanwhile[0].append(signum)
        return True
    if frame is None or not frame.f_code.co_filename.startswith(_IMPORT_MACHINERY):
        return False
    pending = [signum]
    _came_meanwhile.append(pending)
    try:
        while pending:
            again = threading.Timer(_AGAIN, os.kill, (os.getpid(), pending.pop(0)))
            again.daemon = True
            again.start()
    finally:
        _came_meanwhile.clear()
    return True


def _stopping() -> None:
    """What signals do once the first one raised: a second SIGTERM exits at once (the user does
    not want to wait); SIGHUP only detaches the terminal."""
    signal.signal(signal.SIGTERM, lambda *_: exit_now(128 + signal.SIGTERM))
    if hangup_handled():
        signal.signal(signal.SIGHUP, lambda *_: detach_terminal())


def terminal_hung_up() -> HungUp:
    """The stop of a command whose read of its terminal failed as a hung-up terminal's does
    (EIO) before the kernel's SIGHUP raised (put off, above, or still on its way): the stop the
    signal makes, and the SIGHUP that follows only detaches."""
    detach_terminal()
    _stopping()
    return HungUp()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if not _put_off(signum, frame):
        raise KeyboardInterrupt


def _raise(signum: int, frame: FrameType | None) -> None:
    if _put_off(signum, frame):
        return
    _stopping()
    raise Terminated


def _hang_up(signum: int, frame: FrameType | None) -> None:
    if _put_off(signum, frame):
        return
    detach_terminal()  # before the stop writes anything: a hung-up terminal fails writes
    _stopping()
    raise HungUp


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated`, and SIGHUP (unless ignored) :class:`HungUp`, in the
    main thread while inside; Ctrl-C (unless ignored) still ``KeyboardInterrupt``. None of
    them inside the import machinery (above)."""
    hangup = hangup_handled()
    previous = signal.signal(signal.SIGTERM, _raise)
    previous_hangup = signal.signal(signal.SIGHUP, _hang_up) if hangup else None
    interrupt = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous_interrupt = signal.signal(signal.SIGINT, _interrupt) if interrupt else None
    try:
        yield
    finally:
        if previous_interrupt is not None:
            signal.signal(signal.SIGINT, previous_interrupt)
        signal.signal(signal.SIGTERM, previous)
        # Once stopping, a late SIGHUP (the shell's, as it exits) still only detaches: its
        # default action would end the process before it returns its exit code.
        if previous_hangup is not None and signal.getsignal(signal.SIGHUP) is _hang_up:
            signal.signal(signal.SIGHUP, previous_hangup)


async def woken_by_signals(main: Awaitable[T]) -> T:
    """``main`` awaited on the running loop, which wakes for every signal with a Python handler
    meanwhile (module docstring): the main thread runs that handler at once, and a handler
    that raises (:func:`sigterm_raises`) stops the loop there. Outside the main thread, where
    no handler runs, just ``main``."""
    import asyncio  # noqa: PLC0415 - the commands without a loop need not import it

    if threading.current_thread() is not threading.main_thread():
        return await main
    loop = asyncio.get_running_loop()
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)  # as the wakeup descriptor must be
    loop.add_reader(read, _drain, read)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    try:
        return await main
    finally:
        signal.set_wakeup_fd(previous)
        loop.remove_reader(read)
        os.close(read)
        os.close(write)


def _drain(fd: int) -> None:
    """Read what the signals wrote (one byte each): the wake-up, once it is done."""
    with contextlib.suppress(OSError):  # nothing left (EAGAIN)
        os.read(fd, 4096)
