"""A debug dump's log records read back (``tracking.dump_logs``; docs/debugging.md,
"Dumps"): OTLP JSON that is not taskdaemon's own, or is damaged, gives the records that can be
read, each field that cannot in its empty form, and never an error."""

from __future__ import annotations

from taskdaemon.pipeline.tracking.dump_logs import decode_logs
from taskdaemon.pipeline.tracking.log_read import StoredLog


def test_records_of_foreign_or_damaged_otlp_json_are_read_as_far_as_they_can_be() -> None:
    """What the collector's file exporter writes (a trace id, no ``taskdaemon.*`` ids), a
    record with none of the optional fields, ids and a span id of the wrong type, a body that
    is not a string, attributes that cannot be read, and entries that are not objects before
    the ones that are: every readable record, in the document's order."""
    attributes = [
        3,
        {"key": 1, "value": {"stringValue": "a key not a string"}},
        {"key": "count", "value": {"intValue": "inf"}},
        {"key": "taskdaemon.run_id", "value": {"stringValue": "ab12"}},
        {"key": "taskdaemon.pipeline", "value": {"intValue": "2"}},
        {"key": "taskdaemon.stage", "value": {"boolValue": True}},
        {"key": "kept", "value": {"boolValue": True}},
    ]
    records = [
        {"timeUnixNano": "30", "traceId": "cd34", "body": {"bytesValue": "aGk="}},
        {"timeUnixNano": "20", "spanId": 5, "body": {"intValue": "5"}, "attributes": attributes},
        {"body": {"stringValue": "bare"}, "attributes": 5},
        {"body": {"unknownValue": 1}},
    ]
    body = {
        "resourceLogs": [
            1,
            {"scopeLogs": 5},
            {
                "scopeLogs": [
                    2,
                    {"scope": {"name": 7}, "logRecords": records[:2]},
                    {"logRecords": records[2:]},
                ]
            },
        ]
    }
    empty = {"pipeline": None, "stage": None, "instance": None, "attempt": None, "span_id": None}
    assert [
        StoredLog(0, "cd34", 30, 0, "", **empty, scope="", body="\"b'hi'\""),
        StoredLog(0, "ab12", 20, 0, "", **empty, scope="", body="5", attributes={"kept": True}),
        StoredLog(id=0, run_id="", time_ns=0, severity=0, level="", scope="", body="bare", **empty),
    ] == decode_logs(body)
