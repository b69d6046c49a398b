"""``http_health.py``: what ``/healthz`` and ``/readyz`` answer, verdict by verdict, as the JSON a
probe or an operator reads (docs/architecture.md, "HTTP server"), at the bounds where each
turns; and the loop's ticker, on a real loop with a clock the test sets (the measured lag is
then exact). The routes themselves, over the app, are ``pipeline_monitor_server_test.py``'s."""

from __future__ import annotations

from typing import Any

import pytest

from taskdaemon.pipeline.api_views import RunView, StageView
from taskdaemon.pipeline.cli.export_health import ExportHealthSnapshot
from taskdaemon.pipeline.http_health import (
    LoopLagMonitor,
    LoopLagSnapshot,
    liveness,
    readiness,
)
from taskdaemon.pipeline.tracking._health import StoreHealth

#: The ticker's interval and the server's lag bound (``HealthSources``' default).
INTERVAL, MAX_LAG = 0.25, 1.0


def _alive(lag: LoopLagSnapshot, now: float) -> dict[str, Any]:
    """``/healthz``'s body for ``lag`` at ``now``."""
    return liveness(lag, now=now, max_lag=MAX_LAG).to_json()


def _loop(ok: bool, detail: str, lag: float = 0.0, recent: float = 0.0) -> dict[str, Any]:
    status = "ok" if ok else "unavailable"
    return {
        "status": status,
        "components": {
            "event_loop": {
                "ok": ok,
                "detail": detail,
                "lag_seconds": lag,
                "max_recent_lag_seconds": recent,
            }
        },
    }


def _snapshot(
    lag: float = 0.0, last_tick: float | None = None, started: float | None = None
) -> LoopLagSnapshot:
    return LoopLagSnapshot(INTERVAL, lag, lag, last_tick, 0 if last_tick is None else 1, started)


# --- /healthz --------------------------------------------------------------------------------


def test_a_ticker_not_started_is_alive() -> None:
    assert _alive(_snapshot(), now=100.0) == _loop(True, "ticker not started yet")


def test_a_ticker_that_never_ticked_is_a_stuck_loop_past_the_bound() -> None:
    """Started at 10.0: alive up to interval + max lag (1.25 s) without a tick, and only past
    it the loop is said stuck (a handler blocking it before its first tick)."""
    started = _snapshot(started=10.0)
    assert _alive(started, now=10.5) == _loop(True, "ticker not started yet")
    assert _alive(started, now=11.25) == _loop(True, "ticker not started yet")
    assert _alive(started, now=11.5) == _loop(
        False, "event loop has not ticked since the ticker started 1.50s ago"
    )


def test_a_ticker_that_stopped_ticking_is_a_stuck_loop_past_the_bound() -> None:
    ticked = _snapshot(lag=0.1234567, last_tick=10.0)
    assert _alive(ticked, now=11.25) == _loop(True, "event loop lag 0.123s", 0.123457, 0.123457)
    assert _alive(ticked, now=12.0) == _loop(
        False, "event loop has not ticked for 2.00s", 0.123457, 0.123457
    )


def test_a_lag_over_the_bound_is_unhealthy() -> None:
    assert _alive(_snapshot(lag=1.0, last_tick=10.0), now=10.0) == _loop(
        True, "event loop lag 1.000s", 1.0, 1.0
    )
    assert _alive(_snapshot(lag=1.5, last_tick=10.0), now=10.0) == _loop(
        False, "event loop lag 1.500s > 1.0s", 1.5, 1.5
    )


class Clock:
    """Readings handed out in order, the last one for ever after: the lag each tick measures
    is then set by the test, whatever the machine's load."""

    def __init__(self, *readings: float) -> None:
        self._readings = iter(readings)
        self._last = readings[-1]

    def __call__(self) -> float:
        self._last = next(self._readings, self._last)
        return self._last


#: The ticker's interval in the tests that tick: a power of two, so that the lags are exact.
TICK = 2.0**-10


async def _ticks(monitor: LoopLagMonitor, count: int) -> list[LoopLagSnapshot]:
    """The snapshots of the next ``count`` ticks of ``monitor``, started and stopped here."""
    monitor.start()
    try:
        return [await monitor.next_tick() for _ in range(count)]
    finally:
        await monitor.aclose()


async def test_the_ticker_measures_how_late_each_tick_wakes() -> None:
    """Each tick reads the clock before its sleep and after: the lag is how much later than
    the interval it woke; the window of recent lags keeps the last 20."""
    # Started at 0; the first tick woke 1.25 late; the 20 after it on time.
    on_time = [reading for t in range(2, 22) for reading in (float(t), t + TICK)]
    clock = Clock(0.0, 1.0, 1.0 + TICK + 1.25, *on_time)
    monitor = LoopLagMonitor(interval=TICK, clock=clock)
    before = monitor.snapshot()
    ticks = await _ticks(monitor, 21)
    assert before == LoopLagSnapshot(TICK, 0.0, 0.0, None, 0, None)
    assert ticks[0] == LoopLagSnapshot(TICK, 1.25, 1.25, 2.25 + TICK, 1, 0.0)
    assert ticks[-1] == LoopLagSnapshot(TICK, 0.0, 0.0, 21 + TICK, 21, 0.0)
    assert [tick.max_recent_lag for tick in ticks] == [1.25] * 20 + [0.0]


async def test_a_tick_on_time_or_earlier_is_no_lag() -> None:
    ticks = await _ticks(LoopLagMonitor(interval=TICK, clock=Clock(0.0, 1.0, 1.0)), 1)
    assert ticks == [LoopLagSnapshot(TICK, 0.0, 0.0, 1.0, 1, 0.0)]


async def test_the_default_interval_makes_a_silent_loop_stuck_after_a_second_and_a_quarter() -> (
    None
):
    """The server's ticker (``LoopLagMonitor()``) ticks every quarter second: with the lag
    bound of a second, ``/healthz`` says a loop that never ticked stuck after 1.25 s."""
    monitor = LoopLagMonitor(clock=Clock(50.0))
    monitor.start()
    await monitor.aclose()
    snapshot = monitor.snapshot()
    assert [_alive(snapshot, now)["status"] for now in (51.25, 51.3)] == ["ok", "unavailable"]


# --- /readyz ---------------------------------------------------------------------------------


def _ready(**sources: Any) -> dict[str, Any]:
    """``/readyz``'s body at now = 1000.0, grace 5 s, without any source not given."""
    given: dict[str, Any] = {"export": None, "store": None, "runs": ()} | sources
    return readiness(now=1000.0, grace=5.0, **given).to_json()


def _export(failures: int, successes: int, error: str | None = None) -> ExportHealthSnapshot:
    return ExportHealthSnapshot(("otlp",), 60.0, failures, successes, error, None)


def test_nothing_configured_is_ready() -> None:
    assert _ready() == {
        "status": "ok",
        "components": {
            "span_export": {"ok": True, "detail": "no span exporter configured"},
            "log_export": {"ok": True, "detail": "no log exporter configured"},
            "span_store": {"ok": True, "detail": "no span store configured"},
            "stages": {"ok": True, "detail": "0 running, none overdue"},
        },
    }


def test_each_export_is_judged_by_its_own_results() -> None:
    """Span export succeeding and log export failing with no success since: unready, the log
    export naming the exporter's error and the window."""
    body = _ready(export=_export(0, 3), log_export=_export(2, 0, "otlp: export failed"))
    assert body["status"] == "unavailable"
    assert body["components"]["span_export"] == {
        "ok": True,
        "detail": "exports succeeding",
        "exporters": ["otlp"],
        "failures": 0,
        "window_seconds": 60.0,
    }
    assert body["components"]["log_export"] == {
        "ok": False,
        "detail": "2 failed exports in 60s: otlp: export failed",
        "exporters": ["otlp"],
        "failures": 2,
        "window_seconds": 60.0,
    }


def test_an_exporter_that_has_not_exported_yet_is_ready_and_says_so() -> None:
    """Before its first batch (a run's spans go at its end) an exporter was "exports
    succeeding", to a collector nobody had reached yet; it is ready, as nothing failed, and
    says that nothing was exported yet."""
    body = _ready(export=_export(0, 0))
    assert (True, "no export yet") == (
        body["components"]["span_export"]["ok"],
        body["components"]["span_export"]["detail"],
    )


@pytest.mark.parametrize("ok", [True, False])
def test_the_store_says_its_own_verdict(ok: bool) -> None:
    body = _ready(store=StoreHealth(ok, "database or disk is full"))
    assert (body["status"], body["components"]["span_store"]) == (
        "ok" if ok else "unavailable",
        {"ok": ok, "detail": "database or disk is full"},
    )


def _run(*stages: StageView) -> RunView:
    return RunView("run-1", "deploy", "running", stages=stages)


def test_a_stage_is_overdue_only_past_its_timeout_and_the_grace() -> None:
    """Timeout 10 s and a grace of 5 s: a stage that started 15 s ago is not overdue yet, one
    that started 15.5 s ago is; ended or waiting stages and stages without a start or a
    timeout never are; the running ones are counted."""
    on_time = StageView("build", "running", started_at=985.0, timeout=10.0)
    late = StageView("push", "running", instance=2, started_at=984.5, timeout=10.0)
    ended = StageView("lint", "succeeded", started_at=900.0, timeout=10.0)
    unstarted = StageView("wait", "running", timeout=10.0)
    untimed = StageView("soak", "running", started_at=1.0)
    assert _ready(runs=[_run(on_time, ended, unstarted, untimed)])["components"]["stages"] == {
        "ok": True,
        "detail": "3 running, none overdue",
    }
    assert _ready(runs=[_run(on_time, late, ended)])["components"]["stages"] == {
        "ok": False,
        "detail": "1 stage running past their timeout",
        "overdue": ["deploy/run-1/push[2]"],
    }


def test_every_overdue_stage_is_named() -> None:
    late = [StageView(name, "running", started_at=0.0, timeout=1.0) for name in ("a", "b")]
    assert _ready(runs=[_run(*late)])["components"]["stages"] == {
        "ok": False,
        "detail": "2 stages running past their timeout",
        "overdue": ["deploy/run-1/a[0]", "deploy/run-1/b[0]"],
    }
