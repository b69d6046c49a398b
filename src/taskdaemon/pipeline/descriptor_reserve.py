"""A process whose file descriptors stage code keeps open: the error said, the run stored.

A handler that opens files until ``EMFILE`` and keeps them left ``run`` without a descriptor:
the telemetry's load (imports, the span store's files) failed, so the run went unstored, and
the next command stage failed with ``[Errno 24] Too many open files: '.../group_watchdog.py'``
(the import of the module that starts the stage's watchdog), which reads like taskdaemon's
own fault.

Decision: ``run`` keeps :data:`RESERVE` descriptors (``/dev/null``, close-on-exec) from before
its first stage (:func:`keep_reserve`); a load that fails for want of descriptors gives them
up (:func:`release_reserve`) and tries once more, so the run's spans and end reach the store
(which keeps its files open once it has them). The reserve is given up as well once the load
is done, and when the run's monitoring closes: a process that runs pipelines one after another
(tests, a notebook) holds none between them. A stage failing for want of descriptors says so
first (:func:`exhaustion_text`): the process's limit (``ulimit -n``) and that code it runs
keeps them. Stage code that takes the freed ones too is not stopped: the load then fails as
before, said.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import threading
from typing import Final, TypeGuard

__all__ = ["RESERVE", "exhaustion_text", "keep_reserve", "release_reserve", "starved"]

#: Descriptors kept for the telemetry's load: an import opens one at a time; the span store's
#: writers keep the database, its journal and shared memory open.
RESERVE: Final = 16

_reserve: list[int] = []
_lock = threading.Lock()  # the load's thread and the run's close may both give it up


def keep_reserve() -> None:
    """Hold :data:`RESERVE` descriptors (fewer if the process has no more)."""
    with _lock, contextlib.suppress(OSError):
        while len(_reserve) < RESERVE:
            _reserve.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))


def release_reserve() -> bool:
    """Close the held descriptors; whether there were any."""
    with _lock:
        held = bool(_reserve)
        while _reserve:
            with contextlib.suppress(OSError):
                os.close(_reserve.pop())
    return held


def starved(error: BaseException) -> TypeGuard[OSError]:
    """Whether ``error`` is the process's (or the system's) lack of file descriptors."""
    return isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE)


def exhaustion_text(error: OSError) -> str:
    """What a lack of descriptors means, before ``error``'s own text."""
    if error.errno == errno.ENFILE:
        return f"the system's table of open files is full: {error}"
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    shown = "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
    return (
        f"taskdaemon's process has all the file descriptors its limit allows open ({shown}, "
        f"ulimit -n): code it runs (a stage's handler) keeps them: {error}"
    )
