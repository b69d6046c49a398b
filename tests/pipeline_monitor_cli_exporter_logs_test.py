"""The exporters' lines about failed exports are folded into taskdaemon's own lines at exit:
a run whose collector is down, erring or hanging prints only those (no SDK text, no
traceback), unless asked for at ``--log-level debug``; every other line of those loggers
passes."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, free_port, taskdaemon, write
from collector_support import answered, answering_posts
from taskdaemon.pipeline.cli.exporter_logs import (
    EXPORT_FAILURE_TEMPLATES,
    EXPORTER_LOGGERS,
    ExportFailureFilter,
    RepeatedLogFilter,
    install_export_failure_filter,
    install_repeated_log_filter,
)

#: The modules whose log calls hold the templates (the HTTP exporters share one client).
SDK_MODULES = (
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)
#: taskdaemon's lines at exit, all of them, for a run whose three signals were all lost.
SAID_AT_EXIT = (
    re.compile(r"taskdaemon\.spans: 2 spans were not exported \(otlp: export failed\)"),
    re.compile(r"taskdaemon\.logs: \d+ log records? w[ae]re? not exported \(otlp: export failed\)"),
    re.compile(r"taskdaemon\.metrics: 1 metric export failed \(otlp: export failed\)"),
)


def _record(template: str, level: int = logging.WARNING) -> logging.LogRecord:
    name = "opentelemetry.exporter.otlp.proto.grpc.exporter"
    return logging.LogRecord(name, level, "f", 1, template, ("traces",), None)


def test_every_template_is_one_the_installed_sdk_logs() -> None:
    """An SDK that rewords a line would have its line shown again: this says so first."""
    source = "".join(inspect.getsource(importlib.import_module(name)) for name in SDK_MODULES)
    flat = re.sub(r'"\s*\n\s*"', "", source)  # literals split over lines, joined
    assert [] == sorted(t for t in EXPORT_FAILURE_TEMPLATES if f'"{t}"' not in flat)


def test_export_failures_are_dropped_above_debug_and_kept_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fold = ExportFailureFilter()
    records = [_record(template, logging.ERROR) for template in sorted(EXPORT_FAILURE_TEMPLATES)]
    with caplog.at_level(logging.INFO):
        at_info = {fold.filter(record) for record in records}
    with caplog.at_level(logging.DEBUG):
        at_debug = {fold.filter(record) for record in records}
    assert ({False}, {True}) == (at_info, at_debug)


@pytest.mark.parametrize(
    "message",
    [
        "Queue full, dropping %s.",
        "Exporter already shutdown, ignoring batch",
        "Exception while exporting %s.",
        "Failed to export %s batch",  # a template's start is not the template
        {"not": "a string"},
    ],
)
def test_every_other_warning_passes(message: object, caplog: pytest.LogCaptureFixture) -> None:
    record = _record("")
    record.msg = message
    with caplog.at_level(logging.WARNING):
        assert ExportFailureFilter().filter(record)


def test_it_is_first_on_every_exporter_logger_so_it_sees_the_templates() -> None:
    """Installed after the repeats' filter, it still goes first (the repeats' filter adds a
    count to a template it lets through); installed twice, it is there once."""
    install_repeated_log_filter()
    fold = install_export_failure_filter()
    again = install_export_failure_filter()
    filters = [logging.getLogger(name).filters for name in EXPORTER_LOGGERS]
    assert (True, {0}, {1}) == (
        fold is again,
        {each.index(fold) for each in filters},
        {sum(isinstance(f, ExportFailureFilter) for f in each) for each in filters},
    )
    assert all(isinstance(each[1], RepeatedLogFilter) for each in filters if len(each) > 1)


@contextlib.contextmanager
def _refusing() -> Iterator[str]:
    yield f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def _erring() -> Iterator[str]:
    with answering_posts(answered(500)) as url:
        yield url


@contextlib.contextmanager
def _hanging() -> Iterator[str]:
    """A port that accepts connections and never answers: each export waits its timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes handshakes; nobody reads
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


Collector = Callable[[], contextlib.AbstractContextManager[str]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("collector", "protocol"),
    [
        (_refusing, "http/protobuf"),
        (_refusing, "grpc"),
        (_erring, "http/protobuf"),
        (_hanging, "http/protobuf"),
        (_hanging, "grpc"),
    ],
)
def test_a_run_whose_collector_fails_says_only_taskdaemons_lines(
    collector: Collector, protocol: str, home: Path, tmp_path: Path
) -> None:
    """Traces, logs and metrics all to a collector that refuses, answers 500 or never answers:
    the run succeeds and stderr is the three lines at exit, nothing else. The exporters give up
    within their own 1 s timeout while the shutdown has 30 s: with one bound for both, a
    loaded machine could cut the shutdown first, and say so in a line of its own."""
    path = str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    with collector() as endpoint:
        done = taskdaemon(
            home,
            "run",
            "-q",
            path,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_LOGS_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_TIMEOUT="1",
            TASKDAEMON_EXPORT_TIMEOUT="30",
        )
    lines = done.stderr.splitlines()
    said = [bool(pattern.search(line)) for pattern, line in zip(SAID_AT_EXIT, lines, strict=False)]
    assert (0, 3, [True] * 3) == (done.returncode, len(lines), said), done.stderr


@pytest.mark.slow
def test_at_debug_the_exporters_own_lines_say_why(home: Path, tmp_path: Path) -> None:
    """``--log-level debug`` shows what the SDK said about each failed export."""
    path = str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    done = taskdaemon(
        home,
        "run",
        "-q",
        "--log-level",
        "debug",
        path,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        TASKDAEMON_EXPORT_TIMEOUT="30",
    )
    sdk = "opentelemetry.exporter.otlp.proto.http.trace_exporter: Failed to export spans batch"
    assert (0, True) == (done.returncode, sdk in done.stderr), done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("protocol", "proxy"), [("grpc", "grpc_proxy"), ("http/protobuf", "http_proxy")]
)
def test_a_proxys_password_is_in_no_exporter_line(
    home: Path, tmp_path: Path, protocol: str, proxy: str
) -> None:
    """Why no filter hides an endpoint's password in the exporters' lines (the module
    docstring): a credential-bearing endpoint is refused at start, and the other credential
    they dial with, a proxy's, is in no line at ``--log-level debug``, which names the proxy
    by its address (gRPC's failure, urllib3's connection)."""
    path = str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    password, port = "Pr0xyS3cr3t8d7c", free_port()
    done = taskdaemon(
        home,
        "run",
        "-q",
        "--log-level",
        "debug",
        path,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector.invalid:4317",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        TASKDAEMON_EXPORT_TIMEOUT="30",
        no_proxy="",
        NO_PROXY="",
        **{proxy: f"http://proxy-user:{password}@127.0.0.1:{port}"},
    )
    assert (0, True, False) == (
        done.returncode,
        f"127.0.0.1:{port}" in done.stderr,  # the proxy was dialled, and named
        password in done.stderr + done.stdout,
    ), done.stderr[-3000:]


def _cut_at_a_second(
    home: Path, tmp_path: Path, **exporters: str
) -> subprocess.CompletedProcess[str]:
    """``run -q`` of one stage, its ``exporters`` sending to a collector that never answers,
    each willing to wait five minutes, the shutdown's bound one second."""
    path = str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    with _hanging() as endpoint:
        return taskdaemon(
            home,
            "run",
            "-q",
            path,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_TIMEOUT="300",
            TASKDAEMON_EXPORT_TIMEOUT="1",
            **exporters,
        )


@pytest.mark.slow
def test_a_shutdown_cut_at_its_bound_says_so_in_one_line(home: Path, tmp_path: Path) -> None:
    """A collector that never answers, exporters that would wait five minutes: the shutdown
    is cut at TASKDAEMON_EXPORT_TIMEOUT, says so, and every line is taskdaemon's. Logged while
    the log provider was still shutting down, that warning reached the provider, which added a
    line of the SDK's own ("Shutdown called, ignoring Log."). (The metric reader's shutdown,
    given what is left of the bound, ends its export as the bound ends: the failed export's
    line may come too, or not.)"""
    done = _cut_at_a_second(
        home,
        tmp_path,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
    )
    cut = "telemetry shutdown did not finish within 1.0s (TASKDAEMON_EXPORT_TIMEOUT)"
    strangers = [line for line in done.stderr.splitlines() if " WARNING taskdaemon." not in line]
    assert (0, [], True) == (done.returncode, strangers, cut in done.stderr), done.stderr


@pytest.mark.slow
def test_a_cut_shutdown_names_only_what_it_drops(home: Path, tmp_path: Path) -> None:
    """Only log records go to a collector that never answers: the cut shutdown says the log
    records are dropped. It said "unexported spans and metrics are dropped", of a run that
    exported neither, and never named the log records it did drop."""
    done = _cut_at_a_second(
        home, tmp_path, OTEL_LOGS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf"
    )
    said = [
        line.split("; ", 1)[-1] for line in done.stderr.splitlines() if "did not finish" in line
    ]
    assert (0, ["unexported log records are dropped"]) == (done.returncode, said), done.stderr


@pytest.mark.slow
def test_each_signals_retries_have_the_whole_bound(home: Path, tmp_path: Path) -> None:
    """A refused port, each exporter retrying within its own 5 s (about 3 s of back-off) and
    a 6 s bound: the three providers shut down at once, so each export fails within the bound
    and is counted. One after the other (metrics first), the traces' turn came with the bound
    nearly spent: the shutdown was cut, and the run's spans went uncounted and unsaid."""
    path = str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    done = taskdaemon(
        home,
        "run",
        "-q",
        path,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_TIMEOUT="5",
        TASKDAEMON_EXPORT_TIMEOUT="6",
    )
    lines = done.stderr.splitlines()
    said = [bool(pattern.search(line)) for pattern, line in zip(SAID_AT_EXIT, lines, strict=False)]
    assert (0, 3, [True] * 3) == (done.returncode, len(lines), said), done.stderr


@pytest.mark.parametrize(
    ("logger", "template", "args", "signal", "cause"),
    [
        (
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            "Transient error %s encountered while exporting %s batch, retrying in %.2fs.",
            ("Connection refused", "span", 1.0),
            "traces",
            "Connection refused",
        ),
        (
            "opentelemetry.exporter.otlp.proto.http._log_exporter",
            "Failed to export %s batch code: %s, reason: %s",
            ("log", 503, "Service\nUnavailable"),
            "logs",
            "503: Service Unavailable",
        ),
        (
            "opentelemetry.exporter.otlp.proto.http.metric_exporter",
            "Failed to export %s batch code: %s, reason: %s",
            ("metrics", None, "https://u:hunter2@collector/v1/metrics refused"),
            "metrics",
            "https://u:[REDACTED]@collector/v1/metrics refused",
        ),
        (
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            "Failed to export %s batch due to timeout, max retries or shutdown.",
            ("span",),
            "traces",
            "gave up within the export timeout",
        ),
        (
            "opentelemetry.exporter.otlp.proto.grpc.exporter",
            "Failed to export %s to %s, error code: %s, error details: %s",
            ("logs", "collector:4317", "StatusCode.UNAVAILABLE", "to u:hunter2@collector:4317"),
            "logs",
            "StatusCode.UNAVAILABLE: to u:[REDACTED]@collector:4317",
        ),
    ],
)
def test_the_cause_a_folded_line_gives_is_kept_for_its_signal(
    logger: str, template: str, args: tuple[object, ...], signal: str, cause: str
) -> None:
    """What taskdaemon's line says when exports start to fail (``cli/export_streaks.py``):
    taken once, one line, no password."""
    fold = ExportFailureFilter()
    fold.filter(logging.LogRecord(logger, logging.ERROR, "f", 1, template, args, None))
    assert (cause, None) == (fold.take_cause(signal), fold.take_cause(signal))
