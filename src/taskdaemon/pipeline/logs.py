"""Structured logs that line up with traces.

Every record that reaches a handler installed by :func:`configure_logging` carries:

* ``trace_id`` / ``span_id``: the span the record belongs to (32 / 16 lowercase hex; absent
  outside a span): during a stage execution, the stage span (from the execution's
  ``TRACEPARENT``, or the current span when it is in that trace, e.g. a handler's own child
  span), else the current OpenTelemetry span of the emitting thread, so a log line leads to its
  run's trace;
* ``run_id``, ``pipeline``, ``stage``, ``instance``, ``attempt``: from, in order of precedence,
  ``extra={...}`` on the call, the context variables set by :func:`log_context`, the stage
  execution the code runs for (``execution.current_execution()``, set by the engine around
  every handler call, so a handler's own ``logging`` calls are tagged with no work on their
  side: async handlers, sync ones in their worker thread, tasks they start), and the attributes
  of the current span (the monitor's run and stage spans carry ``cicd.pipeline.run.id``,
  ``cicd.pipeline.name`` and ``cicd.pipeline.task.name``).

``TASKDAEMON_LOG_FORMAT=json`` writes one JSON object a line (``ts``, ``level``, ``logger``,
``msg``, the ids above, any other ``extra`` fields, ``exc``; ``taskdaemon logs --json`` writes a
stored record under the same keys, ``ts`` in the same form: ``durations.log_time``); ``text``
writes a readable line with the same ids in brackets. With ``OTEL_LOGS_EXPORTER`` set,
:class:`OTelLogHandler` also sends every record to the ``LoggerProvider`` (with the span
context, so backends link logs to spans). Records of the ``opentelemetry`` loggers are never
exported that way, so a failing log exporter cannot feed on its own complaints.

In ``text`` format, control characters in the message and the ids are escaped
(:func:`escape_controls`): a value that reached a log line from outside (a rejection reason, a
stage name) cannot start a forged line of its own. Tracebacks keep their lines.

Secrets are redacted from what these handlers write and export (``redaction``): the message,
``extra`` fields and exception texts.

The stdlib ``logging`` stays the API: library logs, pytest's ``caplog`` and other handlers keep
working. Nothing in taskdaemon prints.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Final

from taskdaemon.pipeline.durations import log_time
from taskdaemon.pipeline.execution import current_execution
from taskdaemon.pipeline.foreign_text import message_of, settle_message, traceback_within
from taskdaemon.pipeline.log_levels import severity_number
from taskdaemon.pipeline.redaction import redact, redact_text
from taskdaemon.pipeline.settings import Settings
from taskdaemon.pipeline.stdout_first import flush_stdout
from taskdaemon.pipeline.telemetry import CICD_PIPELINE_NAME, CICD_PIPELINE_RUN_ID, CICD_TASK_NAME
from taskdaemon.pipeline.terminal_text import CONTROL_ESCAPES, json_shown

if TYPE_CHECKING:  # the logs SDK loads only when a log exporter is configured (start-up time)
    from types import ModuleType

    from opentelemetry import context as otel_context
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "OTelLogHandler",
    "TextFormatter",
    "configure_logging",
    "escape_controls",
    "has_ambient_ids",
    "install_otel_log_handler",
    "log_context",
]

_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("td_run_id", default=None)
_PIPELINE: contextvars.ContextVar[str | None] = contextvars.ContextVar("td_pipeline", default=None)
_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("td_stage", default=None)
_INSTANCE: contextvars.ContextVar[int | None] = contextvars.ContextVar("td_instance", default=None)
_ATTEMPT: contextvars.ContextVar[int | None] = contextvars.ContextVar("td_attempt", default=None)
# Set while the filter resolves an execution's environment: records logged meanwhile (by the
# observers asked for it) must not ask again.
_RESOLVING: contextvars.ContextVar[bool] = contextvars.ContextVar("td_resolving", default=False)
_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")

#: The fields the filter guarantees on every record (``None`` when unknown).
CONTEXT_FIELDS: Final = (
    "trace_id",
    "span_id",
    "run_id",
    "pipeline",
    "stage",
    "instance",
    "attempt",
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)
_INSTALLED: Final = "_taskdaemon_installed"


@contextlib.contextmanager
def log_context(
    *,
    run_id: str | None = None,
    pipeline: str | None = None,
    stage: str | None = None,
    instance: int | None = None,
    attempt: int | None = None,
) -> Iterator[None]:
    """Tag every log record emitted inside the block (and tasks it starts) with these ids."""
    pairs: tuple[tuple[contextvars.ContextVar[Any], Any], ...] = (
        (_RUN_ID, run_id),
        (_PIPELINE, pipeline),
        (_STAGE, stage),
        (_INSTANCE, instance),
        (_ATTEMPT, attempt),
    )
    tokens = [(var, var.set(value)) for var, value in pairs if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Stamps trace and run ids on each record (see the module docstring); never drops one.
    It also writes a message whose text is anyone's code within a deadline
    (``foreign_text.settle_message``): a filter runs before its handler takes its lock."""

    @staticmethod
    def keeps_logger(name: str) -> bool:
        """True: this filter drops no record (``log_rows.row_sink_for`` reads it)."""
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        settle_message(record)
        try:
            _stamp(record)
        except Exception:  # a log line without its ids beats no log line
            for name in CONTEXT_FIELDS:
                _setdefault(record, name, None)
        return True


def _otel_trace() -> ModuleType | None:
    """The OTel tracing API once something has imported it, else ``None``.

    Before then no span can be current (a span in a context needs that API's key), so there
    is no id to read; the filter does not import the API itself, which would put that import
    on ``taskdaemon run``'s path to its first stage: the run loads it on a thread once that
    stage has started (``cli/deferred.py``). Importing it here while another thread is still
    loading it waits for that load to finish.
    """
    if not _TRACE and "opentelemetry.trace" in sys.modules:
        from opentelemetry import trace  # noqa: PLC0415 - loaded already, see above

        _TRACE.append(trace)
    return _TRACE[0] if _TRACE else None


_TRACE: list[ModuleType] = []  # the API once loaded: the filter runs for every record


def has_ambient_ids() -> bool:
    """Whether this thread's context has ids :class:`ContextFilter` would stamp on a record
    that lacks them (a stage execution, a valid current span, a :func:`log_context`)."""
    if current_execution() is not None:
        return True
    trace = _otel_trace()
    if trace is not None and trace.get_current_span().get_span_context().is_valid:
        return True
    return any(var.get() is not None for var in (_RUN_ID, _PIPELINE, _STAGE, _INSTANCE, _ATTEMPT))


def _stamp(record: logging.LogRecord) -> None:
    trace = _otel_trace()
    span = trace.get_current_span() if trace is not None else None
    ctx = span.get_span_context() if span is not None else None
    execution = current_execution()
    ids = _execution_ids(execution.environment) if execution is not None else None
    if ctx is not None and ctx.is_valid and (ids is None or ids[0] == format(ctx.trace_id, "032x")):
        ids = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    _setdefault(record, "trace_id", ids[0] if ids else None)
    _setdefault(record, "span_id", ids[1] if ids else None)
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    for name, var, key in (
        ("run_id", _RUN_ID, CICD_PIPELINE_RUN_ID),
        ("pipeline", _PIPELINE, CICD_PIPELINE_NAME),
        ("stage", _STAGE, CICD_TASK_NAME),
    ):
        value = var.get()
        if value is None and execution is not None:
            value = getattr(execution, name)
        if value is None:
            found = attributes.get(key)
            value = str(found) if found is not None else None
        _setdefault(record, name, value)
    for name, number in (("instance", _INSTANCE), ("attempt", _ATTEMPT)):
        count = number.get()
        if count is None and execution is not None:
            count = getattr(execution, name)
        _setdefault(record, name, count)


def _execution_ids(environment: Mapping[str, str]) -> tuple[str, str] | None:
    """(trace id, span id) of the execution's span, from its ``TRACEPARENT`` (the engine asks
    the observers for it on first read; records they log meanwhile do not ask again)."""
    if _RESOLVING.get():
        return None
    token = _RESOLVING.set(True)
    try:
        traceparent = environment.get("TRACEPARENT")
    finally:
        _RESOLVING.reset(token)
    match = _TRACEPARENT.match(traceparent) if isinstance(traceparent, str) else None
    return (match[1], match[2]) if match else None


def _setdefault(record: logging.LogRecord, name: str, value: str | int | None) -> None:
    if getattr(record, name, None) is None:
        setattr(record, name, value)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRS and key not in CONTEXT_FIELDS and not key.startswith("_")
    }


class _BoundedExceptions(logging.Formatter):
    """A formatter whose exception text is taken within a deadline (``traceback_within``)."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        exception = ei[1] if ei else None
        if exception is None:
            return super().formatException(ei)
        return traceback_within(exception).removesuffix("\n")  # as logging writes it


class JsonFormatter(_BoundedExceptions):
    """One JSON object per record: ts, level, logger, msg, the context ids, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": log_time(int(record.created * 1e9)),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact_text(message_of(record)),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        entry.update(redact(_extras(record)))
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["stack"] = redact_text(record.stack_info)
        return json_shown(json.dumps(entry, default=_redacted_str, ensure_ascii=False))


class TextFormatter(_BoundedExceptions):
    """``ts LEVEL logger: msg [pipeline=… run_id=… stage=… instance=… attempt=… trace_id=…
    span_id=…]`` for humans at a terminal (the ids that are known)."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name}={value}"
            for name in _TEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        )
        # the message alone first: a piece of a secret at its edges (``secret_pieces``) is
        # no longer at the line's edges once the ids follow it
        message = redact_text(message_of(record))
        line = f"{log_time(int(record.created * 1e9))} {record.levelname} {record.name}: {message}"
        if ids:
            line = f"{line} [{ids}]"
        line = escape_controls(line)
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return redact_text(line)


_CONTROLS: Final = CONTROL_ESCAPES | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",  # line and paragraph separators: some viewers break lines there
    0x2029: "\\u2029",
}


def escape_controls(text: str) -> str:
    """``text`` with C0/C1 controls, DEL and U+2028/2029 written as escapes (``\\n``, ``\\x1b``)."""
    return text.translate(_CONTROLS)


_TEXT_FIELDS: Final = ("pipeline", "run_id", "stage", "instance", "attempt", "trace_id", "span_id")


def _redacted_str(value: Any) -> str:
    return redact_text(str(value))


def _severity(levelno: int) -> SeverityNumber:
    """``log_levels.severity_number`` as the logs API's enum."""
    from opentelemetry._logs import SeverityNumber  # noqa: PLC0415 - an exporter loaded it

    return SeverityNumber(severity_number(levelno))


class OTelLogHandler(logging.Handler):
    """Sends records to an OTel ``LoggerProvider`` with the current span context.

    (The SDK's own ``LoggingHandler`` is deprecated in favour of a contrib package we do not
    need: this is the dozen lines of it taskdaemon uses.)
    """

    def __init__(self, logger_provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = logger_provider

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry"):
            return
        try:
            # A record made rather than logged (``run_log``'s: no function, line 0) has no code
            # location but its module: left out, not sent as null and 0.
            attributes: dict[str, Any] = {"code.file.path": record.pathname}
            if record.funcName:
                attributes["code.function.name"] = record.funcName
            if record.lineno:
                attributes["code.line.number"] = record.lineno
            for name in ("run_id", "pipeline", "stage", "instance", "attempt"):
                value = getattr(record, name, None)
                if value is not None:
                    attributes[f"taskdaemon.{name}"] = value
            for key, value in _extras(record).items():
                if value is None:  # no value: left out, as the ids are (not the text "None")
                    continue
                attributes[key] = (
                    value if isinstance(value, str | int | float | bool) else str(value)
                )
            exception = record.exc_info[1] if record.exc_info else None
            if exception is not None:
                attributes["exception.stacktrace"] = traceback_within(exception)
            attributes = redact(attributes)
            self._provider.get_logger(record.name).emit(
                timestamp=int(record.created * 1e9),
                context=_record_context(record),
                severity_number=_severity(record.levelno),
                severity_text=record.levelname,
                body=redact_text(message_of(record)),
                attributes=attributes,
            )
        except Exception:
            self.handleError(record)


def _record_context(record: logging.LogRecord) -> otel_context.Context:
    """The current context, or, when it has no span, one whose span is the record's stage span
    (a handler's thread or task has no current span, but its records carry the stage's ids)."""
    from opentelemetry import context as otel_context  # noqa: PLC0415 - see _otel_trace
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags  # noqa: PLC0415

    current = otel_context.get_current()
    if trace.get_current_span(current).get_span_context().is_valid:
        return current
    trace_id, span_id = getattr(record, "trace_id", None), getattr(record, "span_id", None)
    if not (isinstance(trace_id, str) and isinstance(span_id, str)):
        return current
    span = NonRecordingSpan(
        SpanContext(int(trace_id, 16), int(span_id, 16), False, TraceFlags(TraceFlags.SAMPLED))
    )
    return trace.set_span_in_context(span, current)


#: Loggers of the HTTP client the remote span sources use (``tracking._remote``).
_HTTP_CLIENT_LOGGERS: Final = ("httpx", "httpcore")


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The console's handler: each record after what stdout holds (``stdout_first``), so that
    a log of both streams has a handler's ``print`` before the warning it logs next."""

    def emit(self, record: logging.LogRecord) -> None:
        flush_stdout()
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """A record the console could not write, reported as ``logging`` reports it, but not
        raised when the report itself fails: with stderr closed by stage code
        (``sys.stderr.close()`` in a handler), ``logging``'s report raised ``ValueError`` out
        of the logging call, into the engine's observer dispatch, which lost the stage's end:
        the run hung for ever, SIGTERM too. Nothing is left to say it on."""
        with contextlib.suppress(ValueError):
            super().handleError(record)


def configure_logging(
    settings: Settings,
    *,
    logger_provider: LoggerProvider | None = None,
    stream: IO[str] | None = None,
) -> list[logging.Handler]:
    """Install taskdaemon's handlers on the root logger, replacing ones a previous call installed.

    One stream handler (stderr by default) with the format of ``TASKDAEMON_LOG_FORMAT`` and the
    level of ``TASKDAEMON_LOG_LEVEL``, plus an :class:`OTelLogHandler` when ``logger_provider``
    is given. Handlers installed by others (pytest, the OTel logging instrumentation) are kept.
    The HTTP client's own loggers (a line a request) speak at WARNING and up unless the level
    is DEBUG or below. Returns the handlers installed.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _INSTALLED, False):
            root.removeHandler(handler)
            handler.close()
    console = _ConsoleHandler(stream if stream is not None else sys.stderr)
    console.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    installed: list[logging.Handler] = [console]
    if logger_provider is not None:
        installed.append(OTelLogHandler(logger_provider))
    for handler in installed:
        handler.addFilter(ContextFilter())
        setattr(handler, _INSTALLED, True)
        root.addHandler(handler)
    root.setLevel(settings.log_level_number)
    # The HTTP client logs every request at INFO: a remote span source (``ui`` polling Tempo)
    # would print a line a request, three for a retried one. Shown from DEBUG down.
    level = settings.log_level_number
    chatty = level if level <= logging.DEBUG else max(level, logging.WARNING)
    for name in _HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(chatty)
    return installed


def install_otel_log_handler(logger_provider: LoggerProvider) -> logging.Handler:
    """Add an :class:`OTelLogHandler` to the handlers :func:`configure_logging` installed
    (which replaces it on its next call); for telemetry built after the console was set up."""
    handler = OTelLogHandler(logger_provider)
    handler.addFilter(ContextFilter())
    setattr(handler, _INSTALLED, True)
    logging.getLogger().addHandler(handler)
    return handler
