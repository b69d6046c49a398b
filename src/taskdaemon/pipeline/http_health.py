"""What ``/healthz`` and ``/readyz`` answer: the engine loop's lag, span and log export, the span
store and stages overrunning their timeouts, each component's verdict in one report.

``LoopLagMonitor`` is a task on the engine's loop that sleeps an interval and measures how late
it wakes; ``liveness`` reads its last tick; ``readiness`` judges span and log export, the store
and the runs' stages; ``HealthSources`` says where the server's two routes read each from
(``server.create_app``).

Every detail is redacted where the report becomes JSON (:meth:`HealthReport.to_json`): an
export's error is the exporter's text, which may quote its endpoint's password or query key, or
a header, and the store's error a path, while ``/healthz`` and ``/readyz`` answer anyone,
without the API token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskdaemon.pipeline.api_views import RunView
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.wording import counted

__all__ = [
    "ComponentHealth",
    "HealthReport",
    "HealthSources",
    "LoopLagMonitor",
    "LoopLagSnapshot",
    "liveness",
    "readiness",
]


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One component's verdict: ``ok``, a human ``detail``, and data for machines."""

    ok: bool
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The verdicts of every component; ``ok`` only when all are."""

    components: Mapping[str, ComponentHealth]

    @property
    def ok(self) -> bool:
        """True when every component is ok."""
        return all(component.ok for component in self.components.values())

    def to_json(self) -> dict[str, Any]:
        """``{"status": "ok"|"unavailable", "components": {name: {...}}}``, each detail
        redacted (the module docstring)."""
        return {
            "status": "ok" if self.ok else "unavailable",
            "components": {
                name: {"ok": c.ok, "detail": redact_text(c.detail), **dict(c.data)}
                for name, c in self.components.items()
            },
        }


# --- liveness: event-loop lag --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoopLagSnapshot:
    """The ticker's last measurement: lag of the last tick and when it ran, and when the
    ticker was started (monotonic; None before ``start``)."""

    interval: float
    lag: float
    max_recent_lag: float
    last_tick: float | None
    ticks: int
    started: float | None = None


class LoopLagMonitor:
    """A task that sleeps ``interval`` and measures how late it wakes: the event loop's lag."""

    def __init__(self, *, interval: float = 0.25, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._lag = 0.0
        self._recent: list[float] = []
        self._last_tick: float | None = None
        self._ticks = 0
        self._task: asyncio.Task[None] | None = None
        self._ticked: asyncio.Event | None = None
        self._started: float | None = None

    def start(self) -> None:
        """Start ticking in the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._started = self._clock()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def aclose(self) -> None:
        """Stop ticking (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            expected = self._clock() + self.interval
            await asyncio.sleep(self.interval)
            now = self._clock()
            self._lag = max(0.0, now - expected)
            self._recent = [*self._recent[-19:], self._lag]
            self._last_tick = now
            self._ticks += 1
            if self._ticked is not None:
                self._ticked.set()
                self._ticked = None

    async def next_tick(self) -> LoopLagSnapshot:
        """Wait for the next tick (an explicit sync point) and return its measurement."""
        if self._ticked is None:
            self._ticked = asyncio.Event()
        await self._ticked.wait()
        return self.snapshot()

    def snapshot(self) -> LoopLagSnapshot:
        """The latest measurement."""
        return LoopLagSnapshot(
            interval=self.interval,
            lag=self._lag,
            max_recent_lag=max(self._recent, default=0.0),
            last_tick=self._last_tick,
            ticks=self._ticks,
            started=self._started,
        )


def liveness(lag: LoopLagSnapshot, *, now: float, max_lag: float = 1.0) -> HealthReport:
    """Alive when the loop's last lag is under ``max_lag`` and the ticker ticked recently."""
    data = {
        "lag_seconds": round(lag.lag, 6),
        "max_recent_lag_seconds": round(lag.max_recent_lag, 6),
    }
    if lag.last_tick is None:
        # Not ticked yet: fine just after the start, a stuck loop once past the bound (a
        # handler that blocked the loop before its first tick would otherwise look alive).
        waited = None if lag.started is None else now - lag.started
        if waited is not None and waited > lag.interval + max_lag:
            detail = f"event loop has not ticked since the ticker started {waited:.2f}s ago"
            verdict = ComponentHealth(False, detail, data)
        else:
            verdict = ComponentHealth(True, "ticker not started yet", data)
    elif now - lag.last_tick > lag.interval + max_lag:
        stale = now - lag.last_tick
        verdict = ComponentHealth(False, f"event loop has not ticked for {stale:.2f}s", data)
    elif lag.lag > max_lag:
        verdict = ComponentHealth(False, f"event loop lag {lag.lag:.3f}s > {max_lag}s", data)
    else:
        verdict = ComponentHealth(True, f"event loop lag {lag.lag:.3f}s", data)
    return HealthReport({"event_loop": verdict})


# --- readiness -----------------------------------------------------------------------------------


def readiness(
    *,
    export: Any | None,
    log_export: Any | None = None,
    store: Any | None,
    runs: Sequence[RunView],
    now: float,
    grace: float = 5.0,
) -> HealthReport:
    """Ready when span and log export work, the store is healthy and no stage overran its
    timeout.

    ``export`` and ``log_export`` are ``ExportHealthSnapshot``s of span and log record export
    (or ``None`` without exporters), ``store`` any object with ``ok`` and ``detail`` (or
    ``None`` without a store), ``now`` epoch seconds.
    """
    components: dict[str, ComponentHealth] = {
        "span_export": _export_verdict(export, "span"),
        "log_export": _export_verdict(log_export, "log"),
    }
    if store is None:
        components["span_store"] = ComponentHealth(True, "no span store configured")
    else:
        components["span_store"] = ComponentHealth(bool(store.ok), str(store.detail))
    overdue = [
        f"{run.pipeline}/{run.run_id}/{stage.stage}[{stage.instance}]"
        for run in runs
        for stage in run.stages
        if stage.status == "running"
        and stage.started_at is not None
        and stage.timeout is not None
        and now - stage.started_at > stage.timeout + grace
    ]
    if overdue:
        components["stages"] = ComponentHealth(
            False,
            f"{counted(len(overdue), 'stage')} running past their timeout",
            {"overdue": overdue},
        )
    else:
        running = sum(1 for run in runs for s in run.stages if s.status == "running")
        components["stages"] = ComponentHealth(True, f"{running} running, none overdue")
    return HealthReport(components)


def _export_verdict(export: Any | None, signal: str) -> ComponentHealth:
    """One signal's export (``signal``: ``span`` or ``log``) judged by one rule: unready while
    its exports failed in the window with no success since. Log export is judged as span export
    is: a collector refusing the run logs loses what an operator set the exporter up to see,
    as one refusing spans does, and the embedded store keeps both either way."""
    if export is None or not export.exporters:
        return ComponentHealth(True, f"no {signal} exporter configured")
    data = {
        "exporters": list(export.exporters),
        "failures": export.failures,
        "window_seconds": export.window,
    }
    if export.ok:
        tried = export.failures or export.successes or export.last_success_at is not None
        return ComponentHealth(True, "exports succeeding" if tried else "no export yet", data)
    detail = f"{counted(export.failures, 'failed export')} in {export.window:.0f}s"
    if export.last_error:
        detail = f"{detail}: {export.last_error}"
    return ComponentHealth(False, detail, data)


@dataclass(slots=True)
class HealthSources:
    """Where ``/healthz`` and ``/readyz`` read from; every source is optional.

    ``export`` and ``log_export`` return an ``ExportHealthSnapshot`` (of span and of log
    record export); ``store`` an object with ``ok``/``detail``.
    """

    lag: LoopLagMonitor | None = None
    export: Callable[[], Any] | None = None
    log_export: Callable[[], Any] | None = None
    store: Callable[[], Any | None] | None = None
    max_lag: float = 1.0
    stage_grace: float = 5.0
    wall_clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
