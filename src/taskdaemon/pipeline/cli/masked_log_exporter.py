"""A log exporter that masks, in each batch it sends, the values that became known as secrets
after its records were made (``cli/telemetry.py`` wraps each log exporter in one).

Every log record is redacted when it is made (``logs``, ``log_export``), with the values known
then. The batch processor holds records for up to its schedule delay before they are exported:
a stage that printed a secret it fetched and then returned it under ``token`` made its lines
before the value was known, and they may still wait there. :class:`MaskedLogExporter` looks at
each batch as it leaves: a record whose body or attribute texts hold a value known now goes out
masked, as a copy (the SDK's records are shared with the other processors). A batch already
sent is not revisited (docs/redaction.md, "Recorded before the value was known").

Cost: nothing while no value is known; else one substring test a value over the batch's texts
joined, and a copy only of the records holding one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from taskdaemon.pipeline.masked_values import masked_batch
from taskdaemon.pipeline.redaction import redact

__all__ = ["MaskedLogExporter"]


class MaskedLogExporter(LogRecordExporter):
    """Delegates to ``inner`` each batch, its records holding a known value masked."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self._inner = inner

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return self._inner.export(masked_batch(batch, _texts, _masked))

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it untyped

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _texts(data: ReadableLogRecord) -> list[str]:
    """The texts of ``data``'s body and attribute values, those inside lists and mappings too:
    taskdaemon's own records hold only texts and numbers, but a record another logging handler
    made on the same provider may hold a structured body or a list of texts."""
    record = data.log_record
    texts: list[str] = []
    _collect(record.body, texts)
    if record.attributes:
        _collect(list(record.attributes.values()), texts)
    return texts


def _collect(value: Any, texts: list[str]) -> None:
    """Append the texts in ``value`` to ``texts``, walking lists, tuples and mappings as deep
    as they go (the OTLP encoder that sends the record walks it the same way)."""
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, texts)
    elif isinstance(value, Mapping):
        _collect(list(value.values()), texts)


def _masked(data: ReadableLogRecord) -> ReadableLogRecord:
    record = copy.copy(data.log_record)
    record.body = redact(record.body)
    if record.attributes:
        record.attributes = redact(dict(record.attributes))
    return ReadableLogRecord(
        log_record=record,
        resource=data.resource,
        instrumentation_scope=data.instrumentation_scope,
        limits=data.limits,
    )
