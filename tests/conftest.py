"""Suite-wide guard: a test must not leave OpenTelemetry exporter threads running.

An exporter left working after its test (a batch processor, a periodic metric reader, or a
telemetry shutdown that outlived its bound) keeps exporting and logging into the root logger
while later tests run, where tests that read log lines pick its lines up. Each test is checked
on its own, so the one that leaks is the one that fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from taskdaemon.pipeline.cli.telemetry import Telemetry
    from taskdaemon.pipeline.settings import Settings

#: Names of the threads OpenTelemetry's SDK and ``build_telemetry`` start to export or shut down.
EXPORTER_THREADS = (
    "OtelBatch",  # OtelBatch{Span,LogRecord}RecordProcessor
    "OtelPeriodicExportingMetricReader",
    "taskdaemon-telemetry-shutdown",
)


def _exporter_threads() -> set[threading.Thread]:
    return {
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(EXPORTER_THREADS) and thread.is_alive()
    }


@pytest.fixture(autouse=True)
def no_exporter_left_running() -> Iterator[None]:
    """Fail the test that leaves an exporter thread it started running after its teardown."""
    before = _exporter_threads()
    yield
    left = sorted(thread.name for thread in _exporter_threads() - before)
    assert not left, f"exporter threads left running: {left}"


@pytest.fixture
def telemetry_for() -> Iterator[Callable[[Settings], Telemetry]]:
    """``build_telemetry`` for a test: every Telemetry it built is shut down at teardown and
    waited for, even when its shutdown outlived the export bound (a dead collector)."""
    # Imported here, not at the top: every test loads this file, few need the OTel SDK.
    from taskdaemon.pipeline.cli.telemetry import build_telemetry

    built: list[Telemetry] = []

    def build(settings: Settings) -> Telemetry:
        built.append(build_telemetry(settings))
        return built[-1]

    yield build
    for telemetry in built:
        telemetry.shutdown()
        assert telemetry.wait_closed(60), "telemetry shutdown still running after 60 s"
