"""The engine's observers: fan-out of event records and the optional hooks, each guarded.

An observer that raises is logged once per observer and event type, and ignored: observing
never changes what a pipeline does.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from taskdaemon.pipeline.events import EngineEvent, RunStarted, StageStarted
from taskdaemon.pipeline.model import Pipeline

logger = logging.getLogger(__name__)

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ObserverEntry:
    """One registered observer with its optional hooks, looked up once."""

    __slots__ = (
        "allocate",
        "allocate_at",
        "environment",
        "guarded",
        "observer",
        "on_event",
        "wants_record",
    )

    def __init__(self, observer: Any) -> None:
        self.observer = observer
        # Its class promises that ``on_event`` and ``wants_record`` never raise (module docstring
        # of ``engine``); read from the class, as ``instrumentation`` reads its marker.
        self.guarded = getattr(type(observer), "guards_itself", False) is True
        self.on_event: Callable[[EngineEvent], None] = observer.on_event
        self.allocate: Callable[..., Any] | None = getattr(observer, "allocate_run_id", None)
        # Whether ``allocate`` takes the run's start as ``at=`` (``events``' module docstring).
        self.allocate_at = self.allocate is not None and _takes_at(self.allocate)
        self.environment: Callable[..., Any] | None = getattr(observer, "stage_environment", None)
        self.wants_record: Callable[[type], bool] | None = getattr(observer, "wants_record", None)


def _takes_at(hook: Callable[..., Any]) -> bool:
    """Whether ``hook`` accepts a keyword argument ``at`` (by name, or through ``**kwargs``).

    Asked once, when the observer is registered: a hook written for the first form of the
    protocol, ``allocate_run_id(pipeline, request)``, is still called that way."""
    try:
        parameters = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature Python can read
        return False
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD or (p.name == "at" and p.kind in keyword)
        for p in parameters
    )


class Observers:
    """The registered observers, in registration order.

    ``entries`` is a tuple replaced on every change, so a change during a fan-out never
    disturbs it; ``on_change`` is called after each change (the engine refreshes what its runs
    read: whether anyone observes, whether anyone answers ``stage_environment``).
    """

    __slots__ = ("_logged", "entries", "env_hooks", "on_change")

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.entries: tuple[ObserverEntry, ...] = ()
        self.env_hooks: tuple[ObserverEntry, ...] = ()
        self.on_change = on_change
        self._logged: set[tuple[int, type]] = set()

    def add(self, observer: Any) -> None:
        """Register ``observer``; adding it twice does nothing."""
        if any(entry.observer is observer for entry in self.entries):
            return
        self._set((*self.entries, ObserverEntry(observer)))

    def remove(self, observer: Any) -> None:
        """Unregister ``observer``; removing one that is not registered does nothing."""
        self._set(tuple(e for e in self.entries if e.observer is not observer))

    def _set(self, entries: tuple[ObserverEntry, ...]) -> None:
        self.entries = entries
        self.env_hooks = tuple(e for e in entries if e.environment is not None)
        self.on_change()

    def callables(self) -> tuple[Callable[[EngineEvent], None], Callable[[type], bool]]:
        """What the engine calls to hand out a record and to ask whether one is wanted: ``emit``
        and ``wants_record``, or, when the only observer guards itself (``guards_itself``), its
        own ``on_event`` and ``wants_record`` (when it has one): the same calls without the
        fan-out's frame and guard, a few times a stage."""
        entries = self.entries
        if len(entries) != 1 or not entries[0].guarded:
            return self.emit, self.wants_record
        sole = entries[0]
        return sole.on_event, sole.wants_record or self.wants_record

    def _log_once(self, entry: ObserverEntry, what: type, message: str) -> None:
        """Log an observer's failure, once per observer and record type. A logging handler
        that raises (its stream closed by stage code: ``sys.stderr.close()``) leaves it unsaid:
        out of here, the exception left the engine's dispatch and lost a stage's end, and the
        run hung."""
        key = (id(entry.observer), what)
        if key not in self._logged:
            self._logged.add(key)
            with contextlib.suppress(Exception):
                logger.exception(message, type(entry.observer).__name__, what.__name__)

    def emit(self, event: EngineEvent) -> None:
        """Hand ``event`` to every observer, in order."""
        for entry in self.entries:
            try:
                entry.on_event(event)
            except Exception:
                self._log_once(entry, type(event), "observer %s failed on %s (ignored)")

    def wants_record(self, kind: type) -> bool:
        """True when some observer wants records of type ``kind``: one without a ``wants_record``
        hook takes every record. Asked before a record is built, for the records observers
        may decline (``StageWaiting``, ``StageQueued``); a hook that fails counts as wanting."""
        for entry in self.entries:
            if entry.wants_record is None:
                return True
            try:
                if entry.wants_record(kind):
                    return True
            except Exception:
                self._log_once(entry, kind, "observer %s wants_record failed on %s (ignored)")
                return True
        return False

    def environment(self, event: StageStarted) -> dict[str, str]:
        """The merge of the observers' ``stage_environment`` answers for ``event``."""
        environment: dict[str, str] = {}
        for entry in self.env_hooks:
            assert entry.environment is not None
            try:
                answer = entry.environment(event)
                if answer:
                    environment.update({str(k): str(v) for k, v in answer.items()})
            except Exception:
                self._log_once(entry, StageStarted, "observer %s stage_environment failed (%s)")
        return environment

    def allocate_run_id(self, pipeline: Pipeline, request: Mapping[str, Any], at: float) -> str:
        """The first 32-hex id an observer's ``allocate_run_id`` answers, else a random one.
        ``at`` is the run's start, handed to the hooks that take it (``ObserverEntry``)."""
        for entry in self.entries:
            if entry.allocate is None:
                continue
            try:
                if entry.allocate_at:
                    answer = entry.allocate(pipeline, request, at=at)
                else:
                    answer = entry.allocate(pipeline, request)
            except Exception:
                self._log_once(entry, RunStarted, "observer %s allocate_run_id failed (%s)")
                continue
            if isinstance(answer, str) and _RUN_ID.match(answer):
                return answer
        return os.urandom(16).hex()  # secrets.token_hex(16), without importing secrets
