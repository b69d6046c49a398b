"""A collector that dies and comes back, said while it happens: in a process that lives on,
each signal's first failed export is one line at once, with its cause, and the first success
after it one more, with what was lost; at exit the count line; never the SDK's text, never a
line per batch."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import IO

import pytest

from cli_support import ROOT, TASKDAEMON, environment, free_port, line_with, write
from collector_support import answered, answering_posts
from taskdaemon.pipeline.cli.export_health import ExportHealth
from taskdaemon.pipeline.cli.export_streaks import ExportStreak
from taskdaemon.pipeline.cli.span_losses import ExportFailures

#: ``start`` ends at once, then two stages each wait on a fifo the test writes to, once the
#: lines it waits for came.
WAITING_PIPELINE = """\
    name: waits
    stages:
      - name: start
        command: "echo start"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: first
        command: "read line < {first}; echo first"
        triggers: [{{on_completion: {{stage: start}}}}]
      - name: second
        command: "read line < {second}; echo second"
        triggers: [{{on_completion: {{stage: first}}}}]
"""
SIGNALS = (("spans", "span"), ("logs", "log record"), ("metrics", "metric"))


def _until(stderr: list[str], stream: IO[str], pattern: str) -> None:
    """Read stderr lines into ``stderr`` until one matches ``pattern``."""
    if not any(re.search(pattern, line) for line in stderr):
        line_with(stream, re.compile(pattern), seen=stderr)


@pytest.mark.slow
def test_a_dead_collector_is_said_once_then_its_return(home: Path, tmp_path: Path) -> None:
    """Refused, then answering 200 on the same port, while the run waits on fifos: the
    three streak lines, once each and naming the refused connection, then the three recovery
    lines while the run still waits, then the count lines at exit, in taskdaemon's words
    only."""
    first, second = tmp_path / "first", tmp_path / "second"
    os.mkfifo(first)
    os.mkfifo(second)
    path = write(tmp_path / "waits.yaml", WAITING_PIPELINE.format(first=first, second=second))
    port = free_port()
    with subprocess.Popen(
        [TASKDAEMON, "run", "-q", str(path)],
        cwd=ROOT,
        env=environment(
            home,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_LOGS_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TIMEOUT="3",  # room for a retry, whose line has the cause
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_BLRP_SCHEDULE_DELAY="100",
            OTEL_METRIC_EXPORT_INTERVAL="200",
            TASKDAEMON_EXPORT_TIMEOUT="30",
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as run:
        assert run.stderr is not None
        stderr: list[str] = []
        try:
            for _, noun in SIGNALS:
                _until(stderr, run.stderr, rf"{noun} exports to otlp fail: .*Connection refused")
            with answering_posts(answered(200), port=port):
                first.write_text("go\n")  # "first" ends: its span and record are exported
                for _, noun in SIGNALS:
                    _until(stderr, run.stderr, rf"{noun} exports to otlp succeed again")
                second.write_text("go\n")  # the run ends
                stderr.extend(run.stderr)
                run.wait(60)
        finally:
            # A failed test: the run must not wait on its fifos for ever (releasing them let
            # ``second`` start after its release, and ``Popen``'s exit waited on the run with no
            # bound). Killed, its watchdog ends the stages' shells.
            if run.poll() is None:
                run.kill()
            run.wait(60)
    kinds = [
        "fail" if " fail: " in line else "back" if " succeed again; " in line else "exit"
        for line in stderr
    ]
    strangers = [line for line in stderr if " WARNING taskdaemon." not in line]
    expected = ["fail"] * 3 + ["back"] * 3 + ["exit"] * 3
    assert (0, expected, []) == (run.returncode, kinds, strangers), "".join(stderr)
    for signal, noun in SIGNALS:
        said = [line for line in stderr if f"taskdaemon.{signal}: {noun} exports" in line]
        assert 2 == len(said), "".join(stderr)


def _streak(
    closing: threading.Event, causes: dict[str, str], failures: ExportFailures | None = None
) -> ExportStreak:
    record = (failures or ExportFailures()).record
    return ExportStreak("logs", "otlp", closing, lambda signal: causes.pop(signal, None), record)


def test_a_streak_is_one_line_and_its_end_another(caplog: pytest.LogCaptureFixture) -> None:
    """Three failed exports, then two that went through: two lines, the cause the exporter's
    line gave, and what the whole streak lost, which is counted too (with the wrapper's
    error: the exit line's)."""
    failures = ExportFailures()
    streak = _streak(threading.Event(), {"logs": "HTTP 503: busy"}, failures)
    with caplog.at_level(logging.INFO):
        for records in (2, 3, 4):
            streak.failed(records, "export failed")
        streak.succeeded()
        streak.succeeded()
    counted = ({"otlp": 9}, {"otlp": "export failed"})
    assert counted == (failures.failed(), failures.last_errors())
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        (
            "taskdaemon.logs",
            "log record exports to otlp fail: HTTP 503: busy (what is lost is counted in "
            "taskdaemon_logs_export_failed_total and said at exit)",
        ),
        (
            "taskdaemon.logs",
            "log record exports to otlp succeed again; 9 log records lost while they failed",
        ),
    ]


def test_no_streak_starts_once_the_telemetry_closes(caplog: pytest.LogCaptureFixture) -> None:
    """Failures while shutting down are the exit line's (counted, not said); a streak said
    before still ends."""
    closing, failures = threading.Event(), ExportFailures()
    said_before, after = _streak(closing, {}), _streak(closing, {}, failures)
    with caplog.at_level(logging.INFO):
        said_before.failed(1, "export failed")
        closing.set()
        after.failed(1, "export failed")
        after.succeeded()
        said_before.failed(1, "export failed")
        said_before.succeeded()
    assert {"otlp": 1} == failures.failed()
    assert [r.getMessage().partition(";")[0] for r in caplog.records] == [
        "log record exports to otlp fail: export failed (what is lost is counted in "
        "taskdaemon_logs_export_failed_total and said at exit)",
        "log record exports to otlp succeed again",
    ]


def test_a_span_streak_names_its_exporter_once(caplog: pytest.LogCaptureFixture) -> None:
    """The streak's line names the exporter, and its health (``/readyz``, which says the last
    error of all exporters) too, each once; the count keeps the wrapper's error."""
    health = ExportHealth()
    streak = ExportStreak("traces", "otlp", threading.Event(), lambda _: None, health.record)
    with caplog.at_level(logging.INFO):
        streak.failed(2, "export of 2 spans failed")
    assert health.failures.last_errors() == {"otlp": "export of 2 spans failed"}
    assert health.snapshot().last_error == "otlp: export of 2 spans failed"
    assert [r.getMessage() for r in caplog.records] == [
        "span exports to otlp fail: export of 2 spans failed (what is lost is counted in "
        "taskdaemon_spans_export_failed_total and said at exit)"
    ]


def test_a_metric_streak_says_its_loss_is_said_at_exit_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Metric exports have no series counting their failures: the line says the exit line has
    them, not "counted said at exit" (which it read), and the recovery counts exports."""
    failures = ExportFailures()
    streak = ExportStreak("metrics", "otlp", threading.Event(), lambda _: None, failures.record)
    with caplog.at_level(logging.INFO):
        streak.failed(1, "export failed")
        streak.failed(1, "export failed")
        streak.succeeded()
    assert {"otlp": 2} == failures.failed()
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        (
            "taskdaemon.metrics",
            "metric exports to otlp fail: export failed (what is lost is said at exit)",
        ),
        (
            "taskdaemon.metrics",
            "metric exports to otlp succeed again; 2 metric exports lost while they failed",
        ),
    ]
