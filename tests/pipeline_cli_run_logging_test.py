"""Run logging's wiring (``cli/run_logging.py``): what the store's log writer loses is counted."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline_monitor_support import scope_labels
from taskdaemon.pipeline import output_sinks
from taskdaemon.pipeline.cli.run_logging import install_run_logging
from taskdaemon.pipeline.cli.telemetry import Telemetry
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.settings import Settings, load_settings
from taskdaemon.pipeline.stage_output import OutputBatch
from taskdaemon.pipeline.tracking import log_writer


def test_records_the_log_writer_drops_are_counted_on_metrics(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    telemetry_for: Callable[[Settings], Telemetry],
) -> None:
    """Records the store's log writer cannot keep (here its queue is full) are counted in
    ``taskdaemon_logs_dropped_total`` on the registry ``/metrics`` serves."""
    monkeypatch.setattr(log_writer, "MAX_PENDING", 0)
    settings = load_settings(home=tmp_path)
    telemetry = telemetry_for(settings)
    monitor = _monitor(telemetry)
    run_id = "d" * 32
    batch = _three_lines(run_id)
    with contextlib.ExitStack() as stack:
        stack.callback(monitor.close)
        writer = install_run_logging(settings, monitor, telemetry, stack)
        assert writer is not None
        writer.write_output(batch)
        assert telemetry.registry is not None
        dropped = telemetry.registry.get_sample_value(
            "taskdaemon_logs_dropped_total", scope_labels()
        )
    assert 3.0 == dropped


def test_the_stdout_bound_setting_reaches_the_captures(
    tmp_path: Path, telemetry_for: Callable[[Settings], Telemetry]
) -> None:
    """``TASKDAEMON_STDOUT_MAX_BYTES`` is the bound of the captures started while installed."""
    settings = load_settings(home=tmp_path, stdout_max_bytes=4096)
    telemetry = telemetry_for(settings)
    monitor = _monitor(telemetry)
    with contextlib.ExitStack() as stack:
        stack.callback(monitor.close)
        install_run_logging(settings, monitor, telemetry, stack)
        bound = output_sinks.capture_limits().stdout_max_bytes
    assert 4096 == bound


def test_run_logs_of_a_store_that_cannot_be_opened_are_counted_on_metrics(
    tmp_path: Path, telemetry_for: Callable[[Settings], Telemetry]
) -> None:
    """With the store unopenable (a directory in its place), the run's records and captured
    output are counted in ``taskdaemon_logs_dropped_total``, as its spans are in
    ``taskdaemon_spans_dropped_total``: nothing keeps them, and the alert must see it."""
    (tmp_path / "spans.db").mkdir()
    settings = load_settings(home=tmp_path)
    telemetry = telemetry_for(settings)
    monitor = _monitor(telemetry)
    run_id = "e" * 32
    batch = _three_lines(run_id)
    with contextlib.ExitStack() as stack:
        stack.callback(monitor.close)
        writer = install_run_logging(settings, monitor, telemetry, stack)
        for sink in output_sinks.output_sinks():
            sink.write_output(batch)
        logging.getLogger("taskdaemon.test").warning("of the run", extra={"run_id": run_id})
        logging.getLogger("taskdaemon.test").warning("of no run")
        assert telemetry.registry is not None
        dropped = telemetry.registry.get_sample_value(
            "taskdaemon_logs_dropped_total", scope_labels()
        )
    assert (None, 4.0) == (writer, dropped)


def _monitor(telemetry: Telemetry) -> PipelineMonitor:
    """A monitor on ``telemetry``'s providers (the test closes it)."""
    return PipelineMonitor(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )


def _three_lines(run_id: str) -> OutputBatch:
    """Three lines of stdout captured from a stage of run ``run_id``."""
    lines = ("one", "two", "three")
    return OutputBatch(run_id, "p", "s", 0, 1, run_id, "b7ad6b7169203331", "stdout", lines, 0)
