"""Live DAG state from engine events: ``DagWatcher`` (an engine observer) and ``watch_run``.

The watcher folds each run's engine events into a ``run_state.RunState`` (the one model of a
run's state), whose record is the ``RunRecord`` that spans rebuild, so a live snapshot and a
reconstructed one render identically. ``watch()`` yields a new frozen ``DagSnapshot`` after each
change; a burst of events that arrives while the consumer is busy is coalesced into one
snapshot (the latest state), so a slow consumer never falls behind. The stream ends after the
snapshot that shows the run finished.

A stream subscribes at its first iteration, not when ``watch()`` returns it: one never iterated
(a web feed cancelled before it started, a caller that dropped it) holds nothing, since an async
generator closed or dropped unstarted runs no ``finally`` that could let go. Nothing is missed
meanwhile: the first snapshot is the run's whole state.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from taskdaemon.pipeline.events import EngineEvent
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.run_state import RunState, apply
from taskdaemon.pipeline.visualization._snapshot import DagSnapshot, dag_snapshot

__all__ = ["DagWatcher", "watch_run"]


class _Waiter:
    """One ``watch()`` consumer: which run it follows (None: the first to start that is not
    in ``known``) and the flag that wakes it."""

    def __init__(self, run_id: str | None, known: frozenset[str]) -> None:
        self.run_id = run_id
        self.known = known
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()

    def wake(self) -> bool:
        """Wake the consumer; False when it never can be: its loop was closed under it (a
        hand-run loop closed without finishing its async generators)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.changed.set()
            return True
        try:  # the engine runs on another thread or loop
            self.loop.call_soon_threadsafe(self.changed.set)
        except RuntimeError:  # that loop is closed
            return False
        return True


class DagWatcher:
    """An engine observer that keeps live DAG state per run and streams snapshots.

    Register it with the engine (``Engine(observers=[watcher])``), then ``async for snapshot in
    watcher.watch(run_id)``. It keeps the state of the ``keep_finished`` most recent finished
    runs so a late watcher still gets their final picture. ``on_event`` never raises.
    """

    def __init__(self, *, keep_finished: int = 16) -> None:
        self._runs: OrderedDict[str, RunState] = OrderedDict()
        self._waiters: set[_Waiter] = set()
        self._keep_finished = keep_finished
        self._lock = threading.Lock()

    def on_event(self, event: EngineEvent) -> None:
        """Fold one engine event into the run's state and wake the watchers of that run."""
        run_id = event.run_id
        with self._lock:
            self._apply(event)
            self._prune()
            waiters = [
                w
                for w in self._waiters
                if w.run_id == run_id or (w.run_id is None and run_id not in w.known)
            ]
        for waiter in waiters:
            if waiter.run_id is None:
                waiter.run_id = run_id
            if not waiter.wake():
                with self._lock:
                    self._waiters.discard(waiter)

    def snapshot(self, run_id: str) -> DagSnapshot:
        """The current snapshot of ``run_id``; KeyError if the watcher has not seen it."""
        with self._lock:
            run = self._runs[run_id]
            return dag_snapshot(run.pipeline, run.record())

    def record(self, run_id: str) -> RunRecord:
        """The current state of ``run_id`` as a run record; KeyError if the watcher has not
        seen it."""
        with self._lock:
            return self._runs[run_id].record()

    def awaiting_approval(self, run_id: str) -> frozenset[str]:
        """The stages of ``run_id`` waiting for an approval now; empty for a run the watcher
        does not hold."""
        with self._lock:
            run = self._runs.get(run_id)
            return run.awaiting_approval if run is not None else frozenset()

    def pipelines(self) -> dict[str, Pipeline]:
        """The definitions of the runs the watcher holds, by pipeline name (the latest run's)."""
        with self._lock:
            return {r.pipeline.name: r.pipeline for r in self._runs.values() if r.pipeline}

    def runs(self) -> tuple[str, ...]:
        """The run ids the watcher holds state for, oldest first."""
        with self._lock:
            return tuple(self._runs)

    def watch(self, run_id: str | None = None) -> AsyncIterator[DagSnapshot]:
        """Yield a snapshot of ``run_id`` now (if known) and after each change, until it ends.

        Subscribes at the first iteration (see the module docstring). With ``run_id=None`` the
        stream follows the first run the watcher sees start after this call. Snapshots are
        coalesced: each reflects every event received before it was taken.
        """
        return self._stream(run_id, frozenset(self.runs()) if run_id is None else frozenset())

    def changes(self, run_id: str) -> AsyncIterator[tuple[DagSnapshot, frozenset[str] | None]]:
        """``watch(run_id)``'s items as what changed: ``(snapshot, stages)``, the first
        ``stages`` None and its snapshot whole, each next one holding only the stages an event
        touched since the item before (``RunState.changed_since``), its run's other fields
        whole, and no edges; None again (a whole snapshot) after an event that can touch any
        stage. Its cost is the stages changed, not the run's (the web page's stream:
        ``web/_live_document``)."""
        return self._stream(run_id, frozenset(), changes=True)

    async def _stream(
        self, run_id: str | None, known: frozenset[str], *, changes: bool = False
    ) -> AsyncIterator[Any]:
        waiter = _Waiter(run_id, known)
        with self._lock:
            if run_id is None:  # a run that started since watch() was called
                waiter.run_id = next((r for r in self._runs if r not in known), None)
            if waiter.run_id in self._runs:
                waiter.changed.set()
            self._waiters.add(waiter)
        seen: int | None = None  # the version of the run the last item showed (``changes``)
        try:
            while True:
                await waiter.changed.wait()
                waiter.changed.clear()
                assert waiter.run_id is not None
                with self._lock:
                    run = self._runs[waiter.run_id]
                    stages = None if seen is None or not changes else run.changed_since(seen)
                    seen = run.version  # read first: a masking in ``record`` is a change
                    if stages is None:
                        snapshot = dag_snapshot(run.pipeline, run.record())
                    else:
                        snapshot = dag_snapshot(None, run.record(stages))
                    finished = run.finished
                yield (snapshot, stages) if changes else snapshot
                if finished:
                    return
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def _apply(self, event: EngineEvent) -> None:
        run = self._runs.get(event.run_id)
        if run is None:  # a watcher registered after the run started builds what it can
            self._runs[event.run_id] = apply(None, event)
        else:
            run.apply(event)

    def _prune(self) -> None:
        finished = [run_id for run_id, run in self._runs.items() if run.finished]
        watched = {w.run_id for w in self._waiters}
        for run_id in finished[: max(0, len(finished) - self._keep_finished)]:
            if run_id not in watched:
                del self._runs[run_id]


class _ObservableEngine(Protocol):
    def add_observer(self, observer: Any) -> None: ...

    def remove_observer(self, observer: Any) -> None: ...


def watch_run(
    source: DagWatcher | _ObservableEngine, run_id: str | None = None
) -> AsyncIterator[DagSnapshot]:
    """Stream snapshots of ``run_id`` from a registered ``DagWatcher``, or from an engine with
    ``add_observer``/``remove_observer``.

    With an engine, a watcher is attached *when this function is called* (so a run started
    right after the call is seen from its first event) and detached when the stream ends or is
    closed, even before its first snapshot: iterate the stream to its end or ``aclose()`` it.
    The stream ends after the snapshot showing the run finished; ``run_id=None`` follows the
    next run that starts.
    """
    if isinstance(source, DagWatcher):
        return source.watch(run_id)
    watcher = DagWatcher()
    source.add_observer(watcher)
    return _Detaching(watcher, source, run_id)


class _Detaching:
    """``watch_run``'s stream over an engine, which detaches the watcher at its end or close.

    An async generator alone would not do: one closed before its first iteration runs no
    ``finally``. The generator inside still detaches one dropped under way (asyncio closes it).
    """

    def __init__(self, watcher: DagWatcher, source: _ObservableEngine, run_id: str | None):
        self._detach = functools.partial(source.remove_observer, watcher)
        self._snapshots = _detaching(watcher.watch(run_id), self._detach)

    def __aiter__(self) -> _Detaching:
        return self

    def __anext__(self) -> Awaitable[DagSnapshot]:
        return self._snapshots.__anext__()

    async def aclose(self) -> None:
        """Detach the watcher (idempotent) and end the stream."""
        self._detach()
        await self._snapshots.aclose()


async def _detaching(
    snapshots: AsyncIterator[DagSnapshot], detach: Callable[[], None]
) -> AsyncGenerator[DagSnapshot, None]:
    try:
        async for snapshot in snapshots:
            yield snapshot
    finally:
        detach()
