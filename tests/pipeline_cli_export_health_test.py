"""One signal's export outcomes as ``/readyz`` reads them (``cli/export_health.py``), on a
clock the test moves: the window, the successes after the last failure, the last error and
success, and the bound on what is kept."""

from __future__ import annotations

from taskdaemon.pipeline.cli.export_health import ExportHealth, ExportHealthSnapshot


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _said(snapshot: ExportHealthSnapshot) -> tuple[object, ...]:
    """What ``/readyz`` says of it: failures, successes, last error, last success, ok."""
    return (
        snapshot.failures,
        snapshot.successes,
        snapshot.last_error,
        snapshot.last_success_at,
        snapshot.ok,
    )


def test_a_failure_is_healthy_again_only_after_a_later_success() -> None:
    clock = _Clock()
    health = ExportHealth(window=60.0, clock=clock)
    health.record("otlp", 3, None)
    assert (0, 1, None, 1000.0, True) == _said(health.snapshot())
    clock.now = 1010.0
    health.record("otlp", 5, "connection refused")
    clock.now = 1011.0
    assert (1, 0, "otlp: connection refused", 1000.0, False) == _said(health.snapshot())
    clock.now = 1012.0
    health.record("otlp", 2, None)
    assert (1, 1, "otlp: connection refused", 1012.0, True) == _said(health.snapshot())


def test_a_failure_leaves_the_window_after_window_seconds_and_its_error_with_it() -> None:
    clock = _Clock()
    health = ExportHealth(window=60.0, clock=clock)
    health.record("otlp", 5, "timed out")
    clock.now = 1060.0
    assert (1, "otlp: timed out", False, None) == (
        (edge := health.snapshot()).failures,
        edge.last_error,
        edge.ok,
        edge.last_success_at,
    )
    clock.now = 1060.5
    assert (0, None, True) == ((gone := health.snapshot()).failures, gone.last_error, gone.ok)


def test_what_is_kept_of_a_flood_of_exports_is_bounded() -> None:
    """Monitoring never grows without bound: past 1,024 outcomes the oldest are forgotten."""
    health = ExportHealth(window=60.0, clock=_Clock())
    for _ in range(3000):
        health.record("otlp", 1, "refused")
    assert 1024 == health.snapshot().failures
    assert {"otlp": 3000} == health.failures.failed()
