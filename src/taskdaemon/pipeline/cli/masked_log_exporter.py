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
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from taskdaemon.pipeline.masked_values import masked_batch
from taskdaemon.pipeline.redaction import redact, redact_text

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
    """The body and attribute values of ``data`` that are texts."""
    record = data.log_record
    texts = [record.body] if isinstance(record.body, str) else []
    if record.attributes:
        texts += (value for value in record.attributes.values() if isinstance(value, str))
    return texts


def _masked(data: ReadableLogRecord) -> ReadableLogRecord:
    record = copy.copy(data.log_record)
    body: Any = record.body
    record.body = redact_text(body) if isinstance(body, str) else body
    if record.attributes:
        record.attributes = redact(dict(record.attributes))
    return ReadableLogRecord(
        log_record=record,
        resource=data.resource,
        instrumentation_scope=data.instrumentation_scope,
        limits=data.limits,
    )
