"""Log levels of taskdaemon's run logs: the stdlib levels plus ``TRACE`` (below ``DEBUG``).

``TRACE`` (5) is registered with :mod:`logging` on import, so ``logging.getLevelName(5)`` is
``"TRACE"`` and ``TASKDAEMON_LOG_LEVEL=trace`` / ``--log-level trace`` name it.
"""

from __future__ import annotations

import functools
import logging
from typing import Final

from taskdaemon.pipeline.quoting import quote

__all__ = ["LEVEL_NAMES", "TRACE", "level_number", "severity_number"]

#: Below DEBUG: every engine event as a record (``--log-level trace``).
TRACE: Final = 5
logging.addLevelName(TRACE, "TRACE")

#: The names ``TASKDAEMON_LOG_LEVEL`` and ``--log-level`` accept (case-insensitive).
LEVEL_NAMES: Final = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ALIASES: Final = {"WARN": "WARNING", "FATAL": "CRITICAL", "NOTSET": "TRACE"}


def level_number(name: str) -> int:
    """The number of a level name (``trace`` → 5, ``warn`` → 30); ValueError naming the choices."""
    key = name.strip().upper()
    key = _ALIASES.get(key, key)
    if key == "TRACE":
        return TRACE
    if key not in LEVEL_NAMES:
        choices = ", ".join(n.lower() for n in LEVEL_NAMES)
        raise ValueError(f"must be one of {choices}, not {quote(name)}")
    return logging.getLevelNamesMapping()[key]


@functools.lru_cache(maxsize=64)  # levels are few; an odd caller must not grow it unbounded
def severity_number(levelno: int) -> int:
    """The OTel severity number of a stdlib level (TRACE=1, DEBUG=5, INFO=9, WARN=13, ...).
    Remembered by level (a pure function of a few numbers; every stored row asks)."""
    for threshold, number in ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5)):
        if levelno >= threshold:
            return number
    return 1
