"""Runs' log records written as OTLP JSON logs: an OTLP ``ExportLogsServiceRequest`` in JSON,
one object a line, the collector file exporter's format (``resourceLogs`` → ``scopeLogs`` per
run of one logger's records → ``logRecords``, hex ids, ints as strings).

The records are ``log_read``'s, read from the store; ``dump_logs`` reads this form back from a
debug dump. Attribute values are encoded by ``otlp_json``'s ``encode_any_value``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any

from taskdaemon.pipeline.tracking.otlp_json import encode_any_value

if TYPE_CHECKING:
    from taskdaemon.pipeline.tracking.log_read import StoredLog

__all__ = ["encode_logs", "write_otlp_json_logs"]


def encode_logs(
    rows: Iterable[StoredLog], resource: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The rows as one OTLP JSON ``ExportLogsServiceRequest``, in their order: each run of
    consecutive rows of one logger is one ``ScopeLogs`` entry (a logger's name may come back in
    a later entry). Grouping each logger's rows into one entry lost the order the store holds
    them in (its insertion order, which ``logs`` prints): records come from several threads
    (the monitor's, the output readers'), so one can be older than the record stored before it,
    or as old as another logger's; a dump read back by time listed such a run differently."""
    scopes: list[tuple[str, list[dict[str, Any]]]] = []
    for row in rows:
        attributes = {
            f"taskdaemon.{name}": value
            for name, value in (
                ("run_id", row.run_id),
                ("pipeline", row.pipeline),
                ("stage", row.stage),
                ("instance", row.instance),
                ("attempt", row.attempt),
            )
            if value is not None
        }
        attributes.update(row.attributes)
        record: dict[str, Any] = {
            "timeUnixNano": str(row.time_ns),
            "observedTimeUnixNano": str(row.time_ns),
            "severityNumber": row.severity,
            "severityText": row.level,
            "body": {"stringValue": row.body},
            "attributes": [
                {"key": key, "value": encode_any_value(value)}
                for key, value in attributes.items()
                if value is not None
            ],
            "traceId": row.trace_id,
        }
        if row.span_id:
            record["spanId"] = row.span_id
        if not scopes or scopes[-1][0] != row.scope:
            scopes.append((row.scope, []))
        scopes[-1][1].append(record)
    resource_attributes = dict(resource or {"service.name": "taskdaemon"})
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": k, "value": encode_any_value(v)}
                        for k, v in resource_attributes.items()
                    ]
                },
                "scopeLogs": [
                    {"scope": {"name": scope}, "logRecords": records} for scope, records in scopes
                ],
            }
        ]
    }


def write_otlp_json_logs(
    rows: Iterable[StoredLog], out: IO[str], resource: Mapping[str, Any] | None = None
) -> None:
    """Write the rows to ``out`` as the collector file exporter does: one JSON line."""
    out.write(json.dumps(encode_logs(rows, resource), separators=(",", ":")))
    out.write("\n")
