"""What ``JaegerSource`` says to Jaeger's query API v3 over HTTP, and how Jaeger answers back.

Requests (docs/span-store.md, "Jaeger's requests"): a search is ``GET /api/v3/traces`` with the
snake_case parameters every Jaeger that has the HTTP gateway reads (Jaeger 2.19 made camelCase
the canonical spelling and kept these as aliases); the number of traces goes both as
``query.search_depth`` (its name from Jaeger 2.19) and ``query.num_traces`` (its name before,
still read after), so an older Jaeger does not fall back to its own default.

Answers: a trace, or a search's traces, come as one OTLP JSON object inside ``{"result": ...}``
(ids in hex, enums as integers, nanoseconds as strings); the grpc-gateway of Jaeger 1.x sent the
same ``{"result": ...}`` objects one a line, a stream (``otlp_json`` reads both). An error is
``{"error": {"httpCode": N, "message": "..."}}`` with the HTTP status N; nothing found is such an
error with 404, for a trace and for a search alike (before 1.53, a stream of no chunk: a 200
with an empty body). A 404 without that body is no Jaeger answer at all: a wrong address or
base path, never "no such run".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded

__all__ = ["error_body_message", "error_message", "nothing_found", "search_params"]


def search_params(
    service: str, operation: str | None, start: float, end: float, limit: int
) -> dict[str, Any]:
    """The query of ``GET /api/v3/traces``: runs of ``service`` started from ``start`` to
    ``end`` (epoch seconds, RFC 3339 on the wire), at most ``limit`` traces, only those with a
    span named ``operation`` when given."""
    depth = max(limit, 1)
    params: dict[str, Any] = {
        "query.service_name": service,
        "query.start_time_min": _rfc3339(start),
        "query.start_time_max": _rfc3339(end),
        "query.search_depth": depth,
        "query.num_traces": depth,
    }
    if operation is not None:
        params["query.operation_name"] = operation
    return params


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def error_message(error: Any) -> str | None:
    """The ``message`` of the value of an error answer's ``error`` key, as text; None when
    ``error`` is not such an object."""
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None


def error_body_message(content: bytes) -> str | None:
    """The message of a body that is Jaeger's error answer (``{"error": {"message": ...}}``),
    whatever ``Content-Type`` it came with (Jaeger sends it as ``text/plain``); None for any
    other body."""
    try:
        body = loads_bounded(content)
    except BoundedInputError:
        return None
    return error_message(body.get("error")) if isinstance(body, dict) else None


def nothing_found(status: int, content: bytes) -> bool | None:
    """Whether an answer of ``status`` with the body ``content`` says that nothing was found
    (see the module docstring); None for a 404 that is not Jaeger's."""
    if status == 404:
        return True if error_body_message(content) is not None else None
    return status == 200 and not content.strip()
