"""Structured logs: JSON/text lines and OTLP log records carry trace and run ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline.logs import configure_logging, log_context
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.telemetry import CICD_PIPELINE_NAME, CICD_PIPELINE_RUN_ID, CICD_TASK_NAME

_log = logging.getLogger("taskdaemon.test.logs")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after each test (closing the ones the
    test added)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("root_logging")
def test_json_lines_carry_the_current_trace_and_span_ids() -> None:
    """A record emitted inside a span carries that span's trace id and span id."""
    stream = io.StringIO()
    configure_logging(load_settings(log_format="json"), stream=stream)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("stage") as span:
        _log.info("stage %s done", "load", extra={"rows": 42})
    ctx = span.get_span_context()
    (line,) = _lines(stream)
    expected = {
        "level": "INFO",
        "logger": "taskdaemon.test.logs",
        "msg": "stage load done",
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "rows": 42,
    }
    assert expected == {key: line[key] for key in expected}


@pytest.mark.usefixtures("root_logging")
def test_run_ids_come_from_the_monitor_span_attributes() -> None:
    """Inside a stage span, run_id, pipeline and stage come from its cicd.* attributes."""
    stream = io.StringIO()
    configure_logging(load_settings(log_format="json"), stream=stream)
    tracer = TracerProvider().get_tracer("test")
    attributes = {
        CICD_PIPELINE_RUN_ID: "ab" * 16,
        CICD_PIPELINE_NAME: "etl",
        CICD_TASK_NAME: "load",
    }
    with tracer.start_as_current_span("load", attributes=attributes):
        _log.warning("slow")
    (line,) = _lines(stream)
    expected = {"run_id": "ab" * 16, "pipeline": "etl", "stage": "load"}
    assert expected == {key: line[key] for key in expected}


@pytest.mark.usefixtures("root_logging")
def test_log_context_and_extra_tag_records_outside_spans() -> None:
    """log_context tags records without a span, and extra= wins over it."""
    stream = io.StringIO()
    configure_logging(load_settings(log_format="json"), stream=stream)
    with log_context(run_id="cd" * 16, pipeline="etl", stage="extract"):
        _log.info("one")
        _log.info("two", extra={"stage": "load"})
    _log.info("three")
    lines = _lines(stream)
    expected = [
        ("cd" * 16, "extract", False),
        ("cd" * 16, "load", False),
        (None, None, False),
    ]
    assert expected == [(ln.get("run_id"), ln.get("stage"), "trace_id" in ln) for ln in lines]


@pytest.mark.usefixtures("root_logging")
def test_text_lines_show_the_ids_in_brackets() -> None:
    """The text format appends the known ids in brackets after the message."""
    stream = io.StringIO()
    configure_logging(load_settings(log_format="text"), stream=stream)
    with log_context(pipeline="etl", stage="load"):
        _log.error("boom")
    expected = "ERROR taskdaemon.test.logs: boom [pipeline=etl stage=load]"
    assert expected == stream.getvalue().strip().split(" ", 1)[1]


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_twice_keeps_one_handler() -> None:
    """Calling configure_logging again replaces its handler instead of adding a second."""
    stream = io.StringIO()
    settings = load_settings(log_format="json")
    configure_logging(settings, stream=io.StringIO())
    configure_logging(settings, stream=stream)
    _log.info("once")
    assert len(_lines(stream)) == 1


@pytest.mark.usefixtures("root_logging")
def test_otlp_log_records_carry_the_span_context() -> None:
    """With a LoggerProvider, each record is also an OTel log record linked to its span."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    configure_logging(load_settings(), logger_provider=provider, stream=io.StringIO())
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("stage") as span, log_context(stage="load"):
        _log.info("exported", extra={"rows": 7})
        logging.getLogger("opentelemetry.sdk.test").warning("not exported")
    provider.shutdown()
    (data,) = exporter.get_finished_logs()
    record = data.log_record
    expected = ("exported", span.get_span_context().trace_id, "load", 7)
    actual = (
        record.body,
        record.trace_id,
        record.attributes["taskdaemon.stage"] if record.attributes else None,
        record.attributes["rows"] if record.attributes else None,
    )
    assert expected == actual


@pytest.mark.usefixtures("root_logging")
def test_otlp_log_records_leave_out_fields_without_a_value() -> None:
    """An ``extra`` field that is None (a successful stage's ``error_type``) is left out of the
    OTel log record, as the unknown ids are, not sent as the text ``"None"``."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    configure_logging(load_settings(), logger_provider=provider, stream=io.StringIO())
    _log.info("stage finished", extra={"status": "success", "error_type": None})
    provider.shutdown()
    (data,) = exporter.get_finished_logs()
    attributes = dict(data.log_record.attributes or {})
    expected = {"status": "success"}
    assert expected == {k: attributes[k] for k in ("status", "error_type") if k in attributes}


@pytest.mark.usefixtures("root_logging")
def test_otlp_log_records_leave_out_a_code_location_the_record_lacks() -> None:
    """A record made rather than logged (``run_log``'s: its module, no function, line 0) is
    exported with its file alone, not with a null function and line 0; a logged one has all
    three."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    configure_logging(load_settings(), logger_provider=provider, stream=io.StringIO())
    _log.handle(_log.makeRecord(_log.name, logging.INFO, __file__, 0, "made", (), None))
    _log.info("logged")
    provider.shutdown()
    keys = ("code.file.path", "code.function.name", "code.line.number")
    found = [
        [key for key in keys if key in (data.log_record.attributes or {})]
        for data in exporter.get_finished_logs()
    ]
    assert [["code.file.path"], list(keys)] == found


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_the_http_clients_request_lines_show_only_from_debug(level: str, shown: bool) -> None:
    """httpx's line a request (a remote span source polled by ``ui``) is not printed at the
    default INFO level, and is at DEBUG."""
    stream = io.StringIO()
    configure_logging(load_settings(log_format="text", log_level=level), stream=stream)
    try:
        logging.getLogger("httpx").info("HTTP Request: GET http://tempo:3200/api/search")
    finally:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert shown == ("HTTP Request" in stream.getvalue())
