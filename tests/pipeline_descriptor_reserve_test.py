"""``descriptor_reserve``: a stage that fails for want of file descriptors says so, and the
reserve is held and given up."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys

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


#: Counts the process's descriptors around holding and giving up the reserve, in a process of
#: its own: the test's may hold it from a run started before (CI saw 0 held), and its other
#: threads open and close descriptors meanwhile.
RESERVE_COUNTS = """\
import os
from taskdaemon.pipeline import descriptor_reserve as reserve

def count():
    return len(os.listdir("/proc/self/fd"))

before = count()
reserve.keep_reserve()
held = count() - before
cloexec = all(not os.get_inheritable(fd) for fd in reserve._reserve)
released = reserve.release_reserve()
print(held, cloexec, released, reserve.release_reserve(), count() - before)
"""


def test_the_reserve_is_held_until_given_up() -> None:
    counted = subprocess.run(
        [sys.executable, "-c", RESERVE_COUNTS],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert f"{descriptor_reserve.RESERVE} True True False 0" == counted.stdout.strip()
