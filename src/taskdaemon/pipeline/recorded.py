"""Values recorded for replay (span schema version 2): the span attributes that carry them.

Replay rebuilds a run from its spans alone (docs/architecture.md, "Span schema versions"), so
the run span carries the definition and the request, and each stage attempt's inputs, outputs
and published events are span events. Every such value is recorded the same way:

* the text: canonical JSON (``payloads.PayloadCapture``: secrets redacted, keys sorted),
  cut at the cap;
* the size and sha256 of the *full* JSON, and a ``truncated`` flag;
* a ``redacted`` flag: some part of the value was replaced before it was recorded.

The hash is taken over the redacted JSON (``payloads.py`` says why: a digest of a secret could
be brute-forced). Replay checks the text it reads against the hash: a backend that cut the
attribute (Tempo cuts at 2,048 bytes unless told otherwise) shows as a mismatch even where the
``truncated`` flag says the value was whole when it was written.

Caps: payloads at ``PayloadCapture.max_bytes`` (``TASKDAEMON_CAPTURE_MAX_BYTES``); the
definition at ``DEFINITION_CAP_FACTOR`` times that, since it is written once per run and a
replay needs it whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.payloads import CapturedPayload, PayloadCapture

__all__ = [
    "DEFINITION_CAP_FACTOR",
    "captured_attributes",
    "definition_attributes",
    "request_attributes",
]

#: The definition may take this many times the payload cap (1 MiB with the default cap).
DEFINITION_CAP_FACTOR = 16


def _cut(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", "ignore"), True


def _is_redacted(capture: PayloadCapture, value: Any) -> bool:
    # ``redact`` returns its argument itself when nothing matched (see payloads.py).
    try:
        return capture.redact(value) is not value
    except Exception:  # capture never raises; neither does this flag
        return False


def definition_attributes(pipeline: Pipeline, capture: PayloadCapture) -> dict[str, Any]:
    """The run span's start attributes recording the definition (empty when capture is off).

    Its sha256 is ``taskdaemon.pipeline.definition_hash``, already on the span.
    """
    if not capture.enabled:
        return {t.SCHEMA_VERSION: t.SPAN_SCHEMA_VERSION}
    text = pipeline.canonical_json
    kept, truncated = _cut(text, capture.max_bytes * DEFINITION_CAP_FACTOR)
    return {
        t.SCHEMA_VERSION: t.SPAN_SCHEMA_VERSION,
        t.PIPELINE_DEFINITION: kept,
        t.PIPELINE_DEFINITION_SIZE: len(text.encode("utf-8")),
        t.PIPELINE_DEFINITION_TRUNCATED: truncated,
    }


def request_attributes(capture: PayloadCapture, request: Mapping[str, Any]) -> dict[str, Any]:
    """The run span's attributes recording the request: JSON, size, sha256, flags."""
    captured = capture.capture(request)
    return {
        t.PIPELINE_REQUEST: captured.json,
        t.PIPELINE_REQUEST_SIZE: captured.size,
        t.PIPELINE_REQUEST_SHA256: captured.sha256,
        t.PIPELINE_REQUEST_TRUNCATED: captured.truncated,
        t.PIPELINE_REQUEST_REDACTED: _is_redacted(capture, request),
    }


def captured_attributes(captured: CapturedPayload, redacted: bool) -> dict[str, Any]:
    """A span event's ``taskdaemon.payload.*`` attributes for a capture already made
    (``PayloadCapture.capture_flagged``'s answer: the capture and ``redacted``)."""
    attributes = captured.attributes()
    attributes[t.PAYLOAD_REDACTED] = redacted
    return attributes
