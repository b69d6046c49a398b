"""A span exporter that masks, in each batch it sends, the values that became known as secrets
after its spans ended (``cli/telemetry.py`` wraps each span exporter in one).

Every attribute the monitor records is redacted when it is recorded, with the values known
then. The batch processor holds ended spans for up to its schedule delay before they are
exported: a first attempt that printed a secret on stderr and failed ended with the stderr tail
in its error, and the second attempt returned the value under ``token`` while that span was
still waiting. :class:`MaskedSpanExporter` looks at each batch as it leaves: a span whose
attribute, event, link or status texts hold a value known now goes out as a masked copy (the
SDK's spans are shared with the other processors, the span store's among them). A batch
already sent is not revisited (docs/redaction.md, "Recorded before the value was known").

A masked copy is built with ``ReadableSpan``'s public constructor, which takes no dropped
counts: such a span exports 0 attributes, events or links dropped (taskdaemon's own spans stay
well under the SDK's limits). That is the price of not copying the SDK's private fields.

Cost: nothing while no value is known; else one substring test a value over the batch's texts
joined, and a copy only of the spans holding one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from taskdaemon.pipeline.masked_values import masked_batch
from taskdaemon.pipeline.redaction import redact, redact_text

__all__ = ["MaskedSpanExporter"]


class MaskedSpanExporter(SpanExporter):
    """Delegates to ``inner`` each batch, its spans holding a known value masked."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export(masked_batch(spans, _texts, _masked))

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _texts(span: ReadableSpan) -> Iterator[str]:
    """The texts of ``span`` a secret could be in: attribute values (and their items), event
    names and attributes, link attributes, and the status description."""
    yield from _attribute_texts(span.attributes)
    for event in span.events:
        yield event.name
        yield from _attribute_texts(event.attributes)
    for link in span.links:
        yield from _attribute_texts(link.attributes)
    if span.status.description:
        yield span.status.description


def _attribute_texts(attributes: Mapping[str, Any] | None) -> Iterator[str]:
    for value in (attributes or {}).values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, list | tuple):
            yield from (item for item in value if isinstance(item, str))


def _masked(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redacted(span.attributes),
        events=[
            Event(redact_text(event.name), _redacted(event.attributes), event.timestamp)
            for event in span.events
        ],
        links=[Link(link.context, _redacted(link.attributes)) for link in span.links],
        kind=span.kind,
        status=Status(status.status_code, redact_text(status.description or "") or None),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _redacted(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``attributes`` redacted, sequences kept as tuples (what the SDK's attributes hold)."""
    if attributes is None:
        return None
    return {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in redact(dict(attributes)).items()
    }
