"""The telemetry's load tried once more after stage code took what it needs from the process.

A handler runs in taskdaemon's process, beside ``run``'s telemetry loading on its own thread
(``cli/deferred.py``), and can take from it what the load needs:

* **Python's recursion limit.** ``sys.setrecursionlimit`` is the interpreter's, not a
  thread's: a handler's ``sys.setrecursionlimit(60)`` made the load fail with
  ``RecursionError`` (importing the SDK nests deeper), so the run went unstored (``run ID is
  not stored (telemetry failed to start)``) with nothing naming the cause. A limit below
  :data:`FLOOR` (the one taskdaemon started with) is stage code's mistake for the whole
  process: taskdaemon's writers and logging need the usual depth too. It is put back.
* **File descriptors.** A handler that keeps every descriptor open left the load none: the
  descriptors ``run`` kept in reserve are given up (``descriptor_reserve``).

Either way :func:`built_despite_stage_code` cleans up what the failed build left, tries once
more, and says what was done in one warning. Code that needs a shallow stack to fail fast
should count its own depth.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from typing import Final, TypeVar

from taskdaemon.pipeline.descriptor_reserve import release_reserve, starved

__all__ = ["FLOOR", "built_despite_stage_code"]

_log = logging.getLogger(__name__)

#: The recursion limit as taskdaemon started (imported before any handler runs).
FLOOR: Final = sys.getrecursionlimit()

T = TypeVar("T")


def built_despite_stage_code(build: Callable[[], T], cleanup: Callable[[], object]) -> T:
    """``build()``; once more, after ``cleanup()``, when it failed for the recursion limit or
    the descriptors stage code took (module docstring)."""
    try:
        return build()
    except RecursionError:
        lowered = sys.getrecursionlimit()
        if lowered >= FLOOR:
            raise
        sys.setrecursionlimit(FLOOR)
        said = (
            f"stage code lowered Python's recursion limit to {lowered} "
            f"(sys.setrecursionlimit): taskdaemon put it back to {FLOOR} to load its telemetry"
        )
    except OSError as error:
        if not starved(error) or not release_reserve():
            raise
        said = (
            f"stage code keeps every file descriptor open ({error}): taskdaemon gave up the "
            "ones it kept in reserve to load its telemetry"
        )
    with contextlib.suppress(Exception):
        cleanup()
    _log.warning("%s", said)
    return build()
