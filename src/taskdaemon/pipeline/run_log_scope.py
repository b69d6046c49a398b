"""Which engine records the run log writes, at its loggers' current levels.

Apart from :mod:`taskdaemon.pipeline.run_log`, which needs the OpenTelemetry API, so that
``taskdaemon run``'s stand-in observer (``cli/deferred.py``) can answer the engine's
``wants_record`` before telemetry has loaded: the answer depends only on the run log's loggers'
levels, which ``configure_logging`` sets before the run starts. ``RunLog.wants`` answers with
:func:`wants`, so the monitor and its stand-in cannot disagree.
"""

from __future__ import annotations

import logging
from typing import Final

from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    BreakpointHit,
    BreakpointResumed,
    InputOverridden,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    TriggerEvaluated,
)
from taskdaemon.pipeline.log_levels import TRACE

__all__ = ["DECISION_LOGGER", "EVENT_LOGGER", "LIFECYCLE_LOGGER", "LOGGED", "takes", "wants"]

LIFECYCLE_LOGGER: Final = "taskdaemon.run.lifecycle"
DECISION_LOGGER: Final = "taskdaemon.run.decision"
EVENT_LOGGER: Final = "taskdaemon.run.event"

#: The record types the run log writes something for above TRACE (``RunLog``'s handlers).
LOGGED: Final = frozenset(
    {
        RunStarted,
        RunFinished,
        StageQueued,
        StageStarted,
        StageFinished,
        StageRetrying,
        StageSkipped,
        TriggerEvaluated,
        ApprovalRequested,
        ApprovalResolved,
        BreakpointHit,
        BreakpointResumed,
        InputOverridden,
    }
)

#: The types whose only records are decisions (DEBUG).
_DECISIONS: Final = frozenset({StageQueued, TriggerEvaluated, ApprovalRequested, ApprovalResolved})

_decision = logging.getLogger(DECISION_LOGGER)
_event = logging.getLogger(EVENT_LOGGER)


def wants(kind: type) -> bool:
    """Whether a record of type ``kind`` may write a run log record at the loggers' current
    levels. Conservative: False only for a type the run log writes nothing for below TRACE, or
    whose one record (``StageQueued``: the DEBUG slot wait) is off."""
    if _event.isEnabledFor(TRACE):
        return True
    if kind is StageQueued:
        return _decision.isEnabledFor(logging.DEBUG)
    return kind in LOGGED


def takes(kind: type) -> bool:
    """Whether the run log has anything to do with a record of type ``kind`` at the loggers'
    current levels: as :func:`wants`, but False also for the types whose only records are
    decisions while DEBUG is off (the monitor queues a ``TriggerEvaluated`` for its spans; the
    run log writes nothing for it at INFO). True for ``RunStarted`` and ``RunFinished`` at any
    level: the run log keeps each run's pipeline between them."""
    if _event.isEnabledFor(TRACE):
        return True
    if kind in _DECISIONS:
        return _decision.isEnabledFor(logging.DEBUG)
    return kind in LOGGED
