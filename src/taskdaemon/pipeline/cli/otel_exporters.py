"""The SDK exporter a name of ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER`` or
``OTEL_LOGS_EXPORTER`` stands for, made with the settings' bounds (``cli/telemetry.py`` wraps
and wires each one).

* ``console`` writes to stderr, not to the SDK's default stdout: a command's stdout is its
  result (``cli/telemetry.py``, "Decision").
* ``otlp`` is gRPC or HTTP per ``OTEL_EXPORTER_OTLP[_SIGNAL]_PROTOCOL``; ``otlp_proto_grpc`` and
  ``otlp_proto_http`` pin the protocol.
* Each OTLP exporter gets ``TASKDAEMON_EXPORT_TIMEOUT`` as its per-request timeout unless
  ``OTEL_EXPORTER_OTLP[_SIGNAL]_TIMEOUT`` is set; a gRPC one is handed its compression
  (:func:`_grpc_compression`), an HTTP one a bounded session (``cli/bounded_session.py``).

Start-up time: each OTLP exporter's module (gRPC above all) is imported only when its name is
asked for.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from taskdaemon.pipeline.cli.export_streaks import Signal
from taskdaemon.pipeline.otel_variables import compression
from taskdaemon.pipeline.settings import Settings

if TYPE_CHECKING:
    import grpc
    from opentelemetry import metrics as metrics_api
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter

__all__ = ["log_exporter", "metric_exporter", "span_exporter"]


def _timeout(settings: Settings, signal: Signal) -> float | None:
    """Our bound unless the user chose an OTLP timeout (then the SDK reads theirs)."""
    return None if settings.otlp_timeout_is_set(signal) else settings.export_timeout


def _grpc_compression(signal: Signal) -> grpc.Compression | None:
    """The compression the variables give ``signal`` (``otel_variables.compression``), handed
    to its gRPC exporter: left to read them itself, it knows only ``gzip`` and raises on the
    specification's ``deflate`` and ``none``."""
    import grpc  # noqa: PLC0415  (lazy, as the gRPC exporters that need it)

    chosen = compression(signal)
    if chosen is None:
        return None
    kinds = grpc.Compression
    return {"gzip": kinds.Gzip, "deflate": kinds.Deflate, "none": kinds.NoCompression}[chosen]


def span_exporter(
    name: str, settings: Settings, meter_provider: metrics_api.MeterProvider
) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(out=sys.stderr)  # stdout is the command's (module doc)
    protocol = _protocol(name, settings, "traces")
    timeout = _timeout(settings, "traces")
    if protocol == "grpc":
        # Lazy: the OTLP exporters (grpc above all) are slow to import; load only what is asked.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(
            timeout=timeout, meter_provider=meter_provider, compression=_grpc_compression("traces")
        )
    # Lazy: the OTLP exporters (grpc above all) are slow to import; load only what is asked.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpSpanExporter,
    )

    from taskdaemon.pipeline.cli.bounded_session import bounded_session  # noqa: PLC0415

    return HttpSpanExporter(
        timeout=timeout, meter_provider=meter_provider, session=bounded_session("TRACES")
    )


def metric_exporter(name: str, settings: Settings) -> MetricExporter:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter  # noqa: PLC0415

        return ConsoleMetricExporter(out=sys.stderr)  # as spans
    protocol = _protocol(name, settings, "metrics")
    timeout = _timeout(settings, "metrics")
    if protocol == "grpc":
        # Lazy: the OTLP exporters (grpc above all) are slow to import; load only what is asked.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(timeout=timeout, compression=_grpc_compression("metrics"))
    # Lazy: the OTLP exporters (grpc above all) are slow to import; load only what is asked.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter as HttpMetricExporter,
    )

    from taskdaemon.pipeline.cli.bounded_session import bounded_session  # noqa: PLC0415

    return HttpMetricExporter(timeout=timeout, session=bounded_session("METRICS"))


def log_exporter(name: str, settings: Settings) -> LogRecordExporter:
    if name == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter  # noqa: PLC0415

        return ConsoleLogRecordExporter(out=sys.stderr)  # as spans
    protocol = _protocol(name, settings, "logs")
    timeout = _timeout(settings, "logs")
    if protocol == "grpc":
        # Lazy: the OTLP exporters (grpc above all) are slow to import; load only what is asked.
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (  # noqa: PLC0415
            OTLPLogExporter as GrpcLogExporter,
        )

        return GrpcLogExporter(timeout=timeout, compression=_grpc_compression("logs"))
    # Lazy: the OTLP exporters (grpc above all) are slow to import; load only what is asked.
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
        OTLPLogExporter as HttpLogExporter,
    )

    from taskdaemon.pipeline.cli.bounded_session import bounded_session  # noqa: PLC0415

    return HttpLogExporter(timeout=timeout, session=bounded_session("LOGS"))


def _protocol(name: str, settings: Settings, signal: Signal) -> str:
    """``otlp_proto_grpc``/``otlp_proto_http`` pin the protocol; ``otlp`` follows the setting."""
    if name == "otlp_proto_grpc":
        return "grpc"
    if name == "otlp_proto_http":
        return "http/protobuf"
    return settings.otlp_protocol(signal)
