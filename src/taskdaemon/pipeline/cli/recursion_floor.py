"""Python's recursion limit, lowered by stage code, put back for taskdaemon's own work.

``sys.setrecursionlimit`` is the interpreter's, not a thread's: a handler that called
``sys.setrecursionlimit(60)`` made ``run``'s telemetry, loading on its own thread meanwhile,
fail with ``RecursionError`` (importing the SDK nests deeper than 60 frames), so the run went
unstored (``run ID is not stored (telemetry failed to start)``) with nothing naming the cause.

Decision: a limit below :data:`FLOOR` (the one taskdaemon started with) is stage code's
mistake for the process, not a choice taskdaemon can live with: its writers, its logging and
its loads all need the usual depth. :func:`built_at_floor` runs a build (the telemetry's load);
should it raise ``RecursionError`` with the limit below the floor, the limit is put back and the
build tried once more, and one warning names what was done. The handler keeps the limit it set
until then; code that needs a shallow stack to fail fast should count its own depth.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from typing import Final, TypeVar

__all__ = ["FLOOR", "built_at_floor"]

_log = logging.getLogger(__name__)

#: The recursion limit as taskdaemon started (imported before any handler runs).
FLOOR: Final = sys.getrecursionlimit()

T = TypeVar("T")


def built_at_floor(build: Callable[[], T], cleanup: Callable[[], object]) -> T:
    """``build()``; after a ``RecursionError`` with the limit below :data:`FLOOR`, ``cleanup()``
    (what the failed build left), the limit put back and ``build()`` once more."""
    try:
        return build()
    except RecursionError:
        lowered = sys.getrecursionlimit()
        if lowered >= FLOOR:
            raise
    with contextlib.suppress(Exception):
        cleanup()
    sys.setrecursionlimit(FLOOR)
    _log.warning(
        "stage code lowered Python's recursion limit to %d (sys.setrecursionlimit): "
        "taskdaemon put it back to %d to load its telemetry",
        lowered,
        FLOOR,
    )
    return build()
