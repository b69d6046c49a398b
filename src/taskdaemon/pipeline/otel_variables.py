"""The OpenTelemetry SDK's own variables, checked before the SDK reads them.

The SDK and its exporters read these variables themselves, where ``run`` and ``serve`` build
their telemetry, and each treats a bad value its own way: the gRPC exporters raise
(``OTEL_EXPORTER_OTLP_TIMEOUT=abc``, any compression but ``gzip``), and so do the batch
processors for a size of 0 or less or a batch larger than its queue; ``run`` then went on
without telemetry, so without its span store, and no view found the run it printed (an
exporter that raises now turns off alone, ``cli/unbuilt_exporters.py``: still lost). The
HTTP exporters log a warning and take their default (``Unsupported compression type: zip``),
the batch processors log a traceback and take theirs (``OTEL_BSP_SCHEDULE_DELAY=abc``), and
the metric reader takes ``inf`` as "never export". Checked with the other settings
(``settings``), each stops every command at start, in one line naming the variable, what it
accepts and the value refused:

* the span limits (``OTEL_SPAN_EVENT_COUNT_LIMIT`` and the seven others): a whole number of 0
  or more, or empty for none (the SDK's own reading of empty);
* ``OTEL_EXPORTER_OTLP[_TRACES|_METRICS|_LOGS]_TIMEOUT``: seconds, more than 0 and at most
  300, as ``TASKDAEMON_EXPORT_TIMEOUT``. Seconds are the Python SDK's unit, not the
  specification's milliseconds, so a ``10000`` meant as ten seconds, which would hold a dead
  collector's export for hours, is refused, and the reason says the unit;
* ``OTEL_EXPORTER_OTLP[_TRACES|_METRICS|_LOGS]_COMPRESSION``: ``gzip``, ``deflate`` or
  ``none``, what the specification and the HTTP exporters take; the gRPC exporters know only
  ``gzip``, so ``cli/otel_exporters.py`` hands them the value (:func:`compression`) rather than let
  them read it;
* ``OTEL_BSP_*`` and ``OTEL_BLRP_*`` (the span and log batch processors): the schedule delay,
  queue size and batch size a whole number more than 0, the batch at most the queue (the
  SDK's defaults stand in for an unset one), the export timeout (which the SDK reads and does
  not use) a whole number of 0 or more;
* ``OTEL_METRIC_EXPORT_INTERVAL`` and ``OTEL_METRIC_EXPORT_TIMEOUT``: milliseconds, a finite
  number more than 0;
* ``OTEL_EXPORTER_OTLP[_TRACES|_METRICS|_LOGS]_CERTIFICATE``, ``_CLIENT_KEY`` and
  ``_CLIENT_CERTIFICATE``: a readable file. A file missing was a traceback in the gRPC
  exporter's log, which then trusted the system's authorities instead of the one named, and
  every export failing over HTTP, its cause said nowhere;
* ``OTEL_EXPORTER_OTLP[_TRACES|_METRICS|_LOGS]_INSECURE``: ``true`` or ``false``, in any case
  but with no space around. The gRPC exporters take any other word as ``false``: ``1`` or
  ``yes``, meant as plain text to an ``http://`` collector, made them speak TLS to it, every
  export failing;
* ``OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES``: gRPC status codes by name
  (``grpc.StatusCode``), separated by commas, in any case, spaces and empty members ignored
  (empty: no code is retried), as the gRPC exporters read it. A name they do not know was a
  ``KeyError`` from their constructor: ``run`` went on without telemetry, and since
  ``cli/unbuilt_exporters.py`` every gRPC exporter was off;
* ``OTEL_PYTHON_EXPORTER_OTLP_GRPC[_TRACES|_METRICS|_LOGS]_CREDENTIAL_PROVIDER`` and its
  ``_HTTP`` twin: empty (the exporters then ignore it), or the name of an installed entry
  point of the group ``opentelemetry_otlp_credential_provider``. A name none has was a
  ``RuntimeError`` from the constructor of every gRPC exporter of an ``https://`` endpoint,
  and of every HTTP exporter. The HTTP provider's session is the exporter's (the SDK loads it:
  ``cli/bounded_session.py`` gives it none of taskdaemon's then), so its credentials are
  sent. The line does not show the value: the variable is named like a credential, and
  ``secret_values`` keeps its value out of every line. A provider that is installed but fails
  (raises, or answers no ``grpc.ChannelCredentials`` or ``requests.Session``) is only known by
  calling it, which is the exporter's to do: it turns that exporter off, in one line
  (``cli/unbuilt_exporters.py``).

Whole numbers are ASCII digits of at most 18 (Python refuses to read one of over 4,300), other
numbers as ``TASKDAEMON_*``'s (``settings_parsers.number``). Unlike a span limit and the two
``OTEL_PYTHON_*`` (whose empty value the gRPC exporters read as said), these take no empty
value: the SDK fails on most empty ones, and its gRPC and HTTP exporters disagree on what an
empty certificate means. The variables are read by their exact names, as the SDK
reads them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Final

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.settings_parsers import number

__all__ = [
    "COMPRESSIONS",
    "GRPC_STATUS_CODES",
    "SPAN_LIMITS",
    "VARIABLES",
    "compression",
    "sdk_problems",
]

#: The SDK's span limits, which take empty for none.
SPAN_LIMITS: Final = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
)
COMPRESSIONS: Final = ("gzip", "deflate", "none")
#: ``grpc.StatusCode``'s names (importing grpc would cost every command's start).
GRPC_STATUS_CODES: Final = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
#: The entry point group of the gRPC exporters' credential providers.
_CREDENTIAL_PROVIDERS: Final = "opentelemetry_otlp_credential_provider"
#: How the OTLP variables name a signal (the general one first).
_SIGNALS: Final = ("", "_TRACES", "_METRICS", "_LOGS")
#: The span and log batch processors' prefixes, and the SDK's queue size of both when unset.
_BATCHES: Final = ("OTEL_BSP_", "OTEL_BLRP_")
_DEFAULT_QUEUE: Final = 2048
_EXPORT_TIMEOUT: Final = number(gt=0, le=300)
_MILLISECONDS: Final = number(gt=0)


def _whole(value: str, least: int) -> None:
    written = value.strip()
    if not (ascii_digits(written) and len(written) <= 18 and int(written) >= least):
        more = "more than 0" if least else "of 0 or more"
        raise ValueError(f"must be a whole number {more}, of at most 18 digits, not {quote(value)}")


def _limit(value: str) -> None:
    if value.strip():
        _count(value)


def _positive(value: str) -> None:
    _whole(value, 1)


def _count(value: str) -> None:
    _whole(value, 0)


def _timeout(value: str) -> None:
    try:
        _EXPORT_TIMEOUT(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (seconds: the Python SDK's unit, not milliseconds)") from None


def _compression(value: str) -> None:
    if value.strip().lower() not in COMPRESSIONS:
        raise ValueError(f"must be gzip, deflate or none, not {quote(value)}")


def _interval(value: str) -> None:
    if not math.isfinite(_MILLISECONDS(value)):
        raise ValueError(f"must be a finite number of milliseconds, not {quote(value)}")


def _readable_file(value: str) -> None:
    if not (os.path.isfile(value) and os.access(value, os.R_OK)):
        raise ValueError(f"must name a readable file, not {quote(value)}")


def _boolean(value: str) -> None:
    if value.lower() not in ("true", "false"):  # the SDK reads no space around it
        raise ValueError(f"must be true or false, not {quote(value)}")


def _status_codes(value: str) -> None:
    # As the gRPC exporters read it: split on commas, each stripped and upper-cased.
    if any(
        code.strip().upper() not in GRPC_STATUS_CODES for code in value.split(",") if code.strip()
    ):
        raise ValueError(
            f"must be gRPC status codes separated by commas (UNAVAILABLE, ...), not {quote(value)}"
        )


def _credential_provider(value: str) -> None:
    from importlib.metadata import entry_points  # noqa: PLC0415 - only when set

    if value and not entry_points(group=_CREDENTIAL_PROVIDERS, name=value):
        raise ValueError(
            f"names no installed credential provider (entry points {_CREDENTIAL_PROVIDERS})"
        )


#: Each variable's check, which raises ValueError with the reason.
VARIABLES: Final[dict[str, Callable[[str], None]]] = {
    **dict.fromkeys(SPAN_LIMITS, _limit),
    **{f"OTEL_EXPORTER_OTLP{signal}_TIMEOUT": _timeout for signal in _SIGNALS},
    **{f"OTEL_EXPORTER_OTLP{signal}_COMPRESSION": _compression for signal in _SIGNALS},
    **{
        f"{batch}{name}": _positive
        for batch in _BATCHES
        for name in ("SCHEDULE_DELAY", "MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE")
    },
    **{f"{batch}EXPORT_TIMEOUT": _count for batch in _BATCHES},
    "OTEL_METRIC_EXPORT_INTERVAL": _interval,
    "OTEL_METRIC_EXPORT_TIMEOUT": _interval,
    **{
        f"OTEL_EXPORTER_OTLP{signal}_{name}": _readable_file
        for signal in _SIGNALS
        for name in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")
    },
    **{f"OTEL_EXPORTER_OTLP{signal}_INSECURE": _boolean for signal in _SIGNALS},
    "OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES": _status_codes,
    **{
        f"OTEL_PYTHON_EXPORTER_OTLP_{transport}{signal}_CREDENTIAL_PROVIDER": _credential_provider
        for transport in ("GRPC", "HTTP")
        for signal in _SIGNALS
    },
}


def sdk_problems(environ: Mapping[str, str] = os.environ) -> list[tuple[str, str]]:
    """``(variable, why)`` for each variable of :data:`VARIABLES` the SDK would not take,
    then for a batch size over its queue's (the module docstring)."""
    problems = []
    for variable, check in VARIABLES.items():
        if variable in environ:
            try:
                check(environ[variable])
            except ValueError as exc:
                problems.append((variable, str(exc)))
    refused = {variable for variable, _ in problems}
    for batch in _BATCHES:
        queue, size = f"{batch}MAX_QUEUE_SIZE", f"{batch}MAX_EXPORT_BATCH_SIZE"
        if size in environ and not refused & {queue, size}:
            most = int(environ.get(queue, _DEFAULT_QUEUE))
            if int(environ[size]) > most:
                why = f"must be at most the queue's size ({queue}, {most})"
                problems.append((size, f"{why}, not {quote(environ[size])}"))
    return problems


def compression(signal: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The compression of ``signal``'s OTLP exports (``traces``, ``metrics``, ``logs``): its
    own variable, else the general one, else None (unset); checked at start."""
    for variable in (
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ):
        if variable in environ:
            return environ[variable].strip().lower()
    return None
