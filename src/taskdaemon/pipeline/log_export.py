"""Captured command output sent to an OTel ``LoggerProvider`` (the OTLP log exporter).

:class:`OTelOutputSink` is an ``output_sinks.OutputSink``: each captured line becomes one OTel
log record of the ``taskdaemon.run.output`` scope, in the stage span's context (so backends
link it to the span), with the stage's ids as ``taskdaemon.*`` attributes and ``log.iostream``.
Bodies are redacted. The provider's batch processor does the exporting, off the event loop.
(The OTel Python logs API is still marked experimental: ``opentelemetry._logs``.)
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from taskdaemon.pipeline.output_sinks import OutputBatch
from taskdaemon.pipeline.redaction import redact_lines

__all__ = ["OUTPUT_SCOPE", "OTelOutputSink"]

OUTPUT_SCOPE: Final = "taskdaemon.run.output"


class OTelOutputSink:
    """Sends captured output batches to ``logger_provider`` (see the module docstring)."""

    def __init__(self, logger_provider: LoggerProvider) -> None:
        self._logger = logger_provider.get_logger(OUTPUT_SCOPE)

    def write_output(self, batch: OutputBatch) -> None:
        """Emit one OTel log record per line (or the dropped-lines marker)."""
        context = otel_context.get_current()
        if batch.trace_id and batch.span_id:
            span = NonRecordingSpan(
                SpanContext(
                    int(batch.trace_id, 16),
                    int(batch.span_id, 16),
                    False,
                    TraceFlags(TraceFlags.SAMPLED),
                )
            )
            context = trace.set_span_in_context(span, context)
        attributes: dict[str, Any] = {
            "taskdaemon.run_id": batch.run_id,
            "taskdaemon.pipeline": batch.pipeline,
            "taskdaemon.stage": batch.stage,
            "taskdaemon.instance": batch.instance,
            "taskdaemon.attempt": batch.attempt,
            "log.iostream": batch.stream,
        }
        if batch.dropped_lines:
            self._logger.emit(
                context=context,
                severity_number=SeverityNumber.WARN,
                severity_text="WARNING",
                body=batch.marker_text(),
                attributes={
                    **attributes,
                    "taskdaemon.log.dropped_lines": batch.dropped_lines,
                    "taskdaemon.log.dropped_bytes": batch.dropped_bytes,
                },
            )
            return
        when = batch.time_ns
        for text in redact_lines(list(batch.texts)):
            self._logger.emit(
                timestamp=when,
                context=context,
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                body=text,
                attributes=attributes,
            )
