"""The span store's stand-in when it cannot be opened: the pipeline runs on without it.

A corrupt or truncated file, a read-only one, a directory in its place, a schema newer than
this taskdaemon, a full disk: ``SqliteSpanProcessor`` cannot start, and monitoring must never
stop a pipeline. The composition root (``cli.telemetry.store_span_processors``) then registers
an ``UnavailableSpanStore`` in its place: an OTel span processor that stores nothing, counts the
spans it could not store (``dropped_spans``, exported as the metric
``taskdaemon.spans.dropped``), reports the store down (``health()``, the ``span_store``
component of ``/readyz``) and logs one warning line, once.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import SpanProcessor

from taskdaemon.pipeline.tracking._health import StoreHealth

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

__all__ = ["UnavailableSpanStore"]

logger = logging.getLogger(__name__)


class UnavailableSpanStore(SpanProcessor):
    """Stands in for a span store that could not be opened (see the module docstring).

    ``where`` names the store (its URL or path); ``reason`` is the one-line cause
    (``SpanSourceError``'s message, naming the file).
    """

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        self._lock = threading.Lock()
        self._dropped = 0
        self._warned = False

    @property
    def dropped_spans(self) -> int:
        """Spans that ended while the store was unavailable (none of them is stored)."""
        return self._dropped

    @property
    def last_write_error(self) -> str:
        """Why nothing is stored."""
        return self.reason

    def warn_once(self) -> None:
        """Log the one warning line (later calls do nothing)."""
        with self._lock:
            if self._warned:
                return
            self._warned = True
        logger.warning("span store unavailable, spans are not stored: %s", self.reason)

    def health(self) -> StoreHealth:
        """Always down, with the reason."""
        return StoreHealth(False, f"span store unavailable: {self.reason}")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Warn on the first span if nobody has yet."""
        if not self._warned:
            self.warn_once()

    def on_end(self, span: ReadableSpan) -> None:
        """Count the span as dropped."""
        with self._lock:
            self._dropped += 1

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is queued."""
        return True
