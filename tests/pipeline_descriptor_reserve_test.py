"""``descriptor_reserve``: a stage that fails for want of file descriptors says so, and the
reserve is held and given up."""

from __future__ import annotations

import errno
import os
import resource

from taskdaemon.pipeline import descriptor_reserve
from taskdaemon.pipeline.foreign_text import handler_error_text


def test_a_stage_error_for_want_of_descriptors_names_the_limit_and_who_keeps_them() -> None:
    """Before, the text was the OSError's alone, naming the file taskdaemon failed to open (the
    watchdog's module), as if taskdaemon were at fault."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    error = OSError(errno.EMFILE, "Too many open files", "/x/group_watchdog.py")
    assert handler_error_text(error) == (
        f"taskdaemon's process has all the file descriptors its limit allows open ({limit}, "
        "ulimit -n): code it runs (a stage's handler) keeps them: [Errno 24] Too many open "
        "files: '/x/group_watchdog.py'"
    )
    full = OSError(errno.ENFILE, "Too many open files in system")
    assert handler_error_text(full) == (
        "the system's table of open files is full: [Errno 23] Too many open files in system"
    )
    assert "[Errno 2] gone" == handler_error_text(OSError(errno.ENOENT, "gone"))


def test_the_reserve_is_held_until_given_up() -> None:
    before = len(os.listdir("/proc/self/fd"))
    descriptor_reserve.keep_reserve()
    try:
        held = len(os.listdir("/proc/self/fd")) - before
    finally:
        released = descriptor_reserve.release_reserve()
    assert (descriptor_reserve.RESERVE, True, False) == (
        held,
        released,
        descriptor_reserve.release_reserve(),
    )
    assert before == len(os.listdir("/proc/self/fd"))
