"""``os._exit`` as a handler module finds it when imported: a stand-in that calls the ``os._exit``
of the moment it is called.

``cli/stage_exit.py`` (while stages run) and ``cli/process_end.py`` (in the grace after the
command) say who ended the process by replacing ``os._exit``, the module's attribute. A handler
module that did ``from os import _exit`` (or ``_exit = os._exit``) as it was imported, before
either replacement, held the real function: its ``_exit(0)`` in a stage's thread during the
grace ended the process silent, with exit code 0 after a run that failed, and during the run it
left the run unstored, unsaid. Nothing runs in the process after the real ``_exit``: it cannot
be seen once called, only before.

Decision: the commands that import handler modules (``stage_leftovers.handlers_imported``,
called before the import) first put :func:`late_exit` in ``os._exit``'s place, once a process.
A name bound at import then holds the stand-in, which calls whatever ``os._exit`` is when it is
called: a replacement's during the run or the grace, which says it, else the real one. The
replacements call the real one beneath it (:func:`beneath`): calling the stand-in would call
them again. It stays for the process's life: a name bound to it may be called at any time.

Still unseen, and said here rather than guessed at: code that reaches the C function by another
name (``posix._exit``, ``ctypes``), a module imported before taskdaemon resolved its handlers
(a ``.pth`` file's, ``sitecustomize``), and a signal whose default action ends the process
(``os.kill(os.getpid(), signal.SIGKILL)``): none of them goes through ``os._exit``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn

__all__ = ["beneath", "bound_late", "late_exit"]

#: ``os._exit`` as the process had it when the stand-in took its place.
_REAL: list[Callable[[int], NoReturn]] = []


def late_exit(status: int) -> NoReturn:
    """``os._exit(status)`` as ``os._exit`` is now (module docstring)."""
    now = os._exit
    (_REAL[0] if now is late_exit else now)(status)
    raise AssertionError("unreachable")  # pragma: no cover - os._exit does not return


# A hook registered as ``atexit.register(_exit, 5)`` is named as what it was asked.
late_exit.__module__, late_exit.__qualname__ = "os", "_exit"


def bound_late() -> None:
    """Put :func:`late_exit` in ``os._exit``'s place, once a process."""
    if not _REAL and os._exit is not late_exit:
        _REAL.append(os._exit)
        os._exit = late_exit


def beneath(exit_function: Callable[[int], NoReturn]) -> Callable[[int], NoReturn]:
    """The function ``exit_function`` ends the process with: the real ``os._exit`` for the
    stand-in, else ``exit_function`` itself."""
    return _REAL[0] if exit_function is late_exit else exit_function
