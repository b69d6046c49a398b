"""Which engine records the run log writes, at its loggers' current levels.

Apart from :mod:`taskdaemon.pipeline.run_log`, which needs the OpenTelemetry API, so that
``taskdaemon run``'s stand-in observer (``cli/deferred.py``) can answer the engine's
``wants_record`` before telemetry has loaded: the answer depends only on the run log's loggers'
levels, which ``configure_logging`` sets before the run starts. ``RunLog.wants`` answers with
:func:`wants`, so the monitor and its stand-in cannot disagree.

:func:`takes` is the narrower question the monitor asks before it calls the run log with a
record it handles anyway (``RunLog.takes``): at the default level a ``TriggerEvaluated`` (two
a stage in a chain) writes nothing, and its span need not be looked up nor the hook called.
"""

from __future__ import annotations

import logging
from typing import Final

from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
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
    }
)

#: The types the run log writes a lifecycle record for (or must see: ``RunStarted`` and
#: ``RunFinished`` keep its books of the run's pipeline).
_LIFECYCLE: Final = frozenset(
    {RunStarted, RunFinished, StageStarted, StageFinished, StageRetrying, StageSkipped}
)

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
    """Whether the run log must be called with a record of type ``kind`` at the loggers'
    current levels: False only when it would write nothing (a decision record with the
    decision logger below DEBUG, or a type it writes only at TRACE, with TRACE off)."""
    if kind in _LIFECYCLE or _event.isEnabledFor(TRACE):
        return True
    return kind in LOGGED and _decision.isEnabledFor(logging.DEBUG)
