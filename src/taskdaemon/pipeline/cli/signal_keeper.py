"""The stop signals' handling, put back when stage code changed it (an engine observer).

An ``async def`` handler runs on the event loop's thread, the main one for ``run``, ``serve``
and ``replay``, so it may call ``signal.signal``. ``signal.signal(SIGINT, SIG_IGN)`` made the
run ignore Ctrl-C from then on (a later ``sleep 20`` stage ran to its end, exit 0, the run a
success); ``SIG_DFL`` made the next Ctrl-C kill the process outright (the run left
``interrupted``, nothing said). A Python function of its own still let taskdaemon's handling
run (asyncio's wake-up descriptor is written for every signal), but ran too.

Decision: SIGINT, SIGTERM and SIGHUP are taskdaemon's for as long as it runs stages: they are
how a user stops a run cleanly (``cli/stop_signals.py``). When a stage attempt ends (the
engine's ``StageFinished``), :class:`SignalKeeper` compares each one's handling with what it
was once taskdaemon had installed its own, and puts back any that changed, with one warning
naming the signal, what it had become and the stage seen ending. Not refused up front: nothing
can tell a handler's ``signal.signal`` before it runs. Not put back at once: while the handler
runs, its choice holds (nothing polls). A handler that means to finish a step before it
stops has the tools a run's cancellation respects: catching ``asyncio.CancelledError``, or
``asyncio.shield``. The stage named is the one that ended when the change was seen; with
stages running side by side, the change may be another one's.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from taskdaemon.pipeline.events import EngineEvent, StageFinished

__all__ = ["SignalKeeper"]

_log = logging.getLogger(__name__)

#: The signals kept: every stop signal a command may handle (``cli/hangup.py``).
KEPT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_Handling = Callable[[int, Any], Any] | int | signal.Handlers | None


class SignalKeeper:
    """An engine observer that puts back the stop signals' handling (module docstring)."""

    guards_itself = True  # ``on_event`` and ``wants_record`` never raise

    def __init__(self) -> None:
        self._kept: dict[int, _Handling] = {}

    def keep(self) -> SignalKeeper:
        """Take the stop signals' handling as it is now (taskdaemon's own installed) as the
        handling to keep; the keeper itself."""
        if threading.current_thread() is threading.main_thread():  # else none can change
            self._kept = {signum: signal.getsignal(signum) for signum in KEPT}
        return self

    def wants_record(self, kind: type) -> bool:
        return kind is StageFinished

    def on_event(self, event: EngineEvent) -> None:
        if type(event) is not StageFinished:
            return
        for signum, kept in self._kept.items():
            now = signal.getsignal(signum)
            if now == kept:
                continue
            try:
                signal.signal(signum, kept)
            except (ValueError, TypeError, OSError):  # never stops the run
                continue
            _log.warning(
                "%s's handling was changed by stage code (%s, seen as stage '%s' ended): "
                "taskdaemon's is put back, so that %s still stops the run",
                signal.Signals(signum).name,
                _handling(now),
                event.stage,
                signal.Signals(signum).name,
            )


def _handling(handling: _Handling) -> str:
    """What a signal's handling had become, in words."""
    if handling == signal.SIG_IGN:
        return "set to be ignored"
    if handling == signal.SIG_DFL:
        return "set to its default action"
    if handling is None:
        return "set outside Python"
    return "given a handler of its own"
