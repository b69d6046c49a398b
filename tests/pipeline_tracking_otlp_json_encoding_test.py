"""Spans written as OTLP JSON (``tracking/otlp_json.py``'s encoder): the exact document of
the default dialect, and every dialect read back as the same spans."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import encode_traces, parse_traces
from taskdaemon.pipeline.tracking.otlp_json import encode_any_value
from taskdaemon.pipeline.tracking.spans import SpanEventRecord, SpanLinkRecord, SpanRecord

TRACE = "0123456789abcdef0123456789abcdef"

#: A span with every field set, and an attribute of every value type.
FULL = SpanRecord(
    trace_id=TRACE,
    span_id="00000000000000aa",
    parent_span_id="00000000000000bb",
    name="build",
    kind="SERVER",
    start_ns=10,
    end_ns=20,
    status_code="ERROR",
    status_message="boom",
    attributes={"s": "text", "i": 7, "f": 1.5, "b": True, "y": b"\x00\xff", "t": ("x", 2)},
    events=(SpanEventRecord("retry", 15, {"n": 1}),),
    links=(SpanLinkRecord("fedcba9876543210fedcba9876543210", "00000000000000cc", {"l": "x"}),),
    resource={"service.name": "taskdaemon"},
)

#: An open root span with no status, events or links, of another resource.
BARE = SpanRecord(
    trace_id=TRACE,
    span_id="00000000000000dd",
    parent_span_id=None,
    name="run",
    kind="INTERNAL",
    start_ns=5,
    end_ns=None,
    attributes={"m": {"k": "v"}},
    resource={"service.name": "other"},
)


def test_the_default_dialect_is_otlp_json() -> None:
    """Hex ids, string enums, ``resourceSpans`` and ``scopeSpans``: each field spelled as
    OTLP/protojson spells it, the optional ones only when set, one entry per resource."""
    expected: dict[str, Any] = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "taskdaemon"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "taskdaemon.pipeline"},
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": "00000000000000aa",
                                "name": "build",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": "10",
                                "attributes": [
                                    {"key": "s", "value": {"stringValue": "text"}},
                                    {"key": "i", "value": {"intValue": "7"}},
                                    {"key": "f", "value": {"doubleValue": 1.5}},
                                    {"key": "b", "value": {"boolValue": True}},
                                    {"key": "y", "value": {"bytesValue": "AP8="}},
                                    {
                                        "key": "t",
                                        "value": {
                                            "arrayValue": {
                                                "values": [
                                                    {"stringValue": "x"},
                                                    {"intValue": "2"},
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                                "parentSpanId": "00000000000000bb",
                                "endTimeUnixNano": "20",
                                "events": [
                                    {
                                        "name": "retry",
                                        "timeUnixNano": "15",
                                        "attributes": [{"key": "n", "value": {"intValue": "1"}}],
                                    }
                                ],
                                "links": [
                                    {
                                        "traceId": "fedcba9876543210fedcba9876543210",
                                        "spanId": "00000000000000cc",
                                        "attributes": [{"key": "l", "value": {"stringValue": "x"}}],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "other"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "taskdaemon.pipeline"},
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": "00000000000000dd",
                                "name": "run",
                                "kind": "SPAN_KIND_INTERNAL",
                                "startTimeUnixNano": "5",
                                "attributes": [
                                    {
                                        "key": "m",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "k", "value": {"stringValue": "v"}}
                                                ]
                                            }
                                        },
                                    }
                                ],
                                "status": {},
                            }
                        ],
                    }
                ],
            },
        ]
    }
    assert expected == encode_traces([FULL, BARE])


def test_the_tempo_v1_dialect_spells_ids_enums_and_keys_its_way() -> None:
    """Base64 ids, int enums, ``batches``, ``instrumentationLibrarySpans`` and the scope name
    given: the spelling of each."""
    document = encode_traces(
        [FULL],
        ids="base64",
        enums="int",
        key="batches",
        scope_key="instrumentationLibrarySpans",
        scope_name="tempo",
    )
    scope = document["batches"][0]["instrumentationLibrarySpans"][0]
    span = scope["spans"][0]
    expected = (
        {"name": "tempo"},
        "ASNFZ4mrze8BI0VniavN7w==",
        "AAAAAAAAAKo=",
        "AAAAAAAAALs=",
        2,
        {"code": 2, "message": "boom"},
        "/ty6mHZUMhD+3LqYdlQyEA==",
    )
    actual = (
        scope["scope"],
        span["traceId"],
        span["spanId"],
        span["parentSpanId"],
        span["kind"],
        span["status"],
        span["links"][0]["traceId"],
    )
    assert expected == actual


DIALECTS = list(
    itertools.product(
        ["hex", "base64"],
        ["string", "int"],
        ["resourceSpans", "batches"],
        ["scopeSpans", "instrumentationLibrarySpans"],
    )
)


@pytest.mark.parametrize(("ids", "enums", "key", "scope_key"), DIALECTS, ids=str)
def test_every_dialect_reads_back_as_the_same_spans(
    ids: Any, enums: Any, key: Any, scope_key: Any
) -> None:
    """Whatever the dialect, the reader gives back the spans written, in their order."""
    document = encode_traces([FULL, BARE], ids=ids, enums=enums, key=key, scope_key=scope_key)
    assert [FULL, BARE] == parse_traces(document)


def test_spans_of_one_resource_share_its_entry() -> None:
    """Two spans of the same resource are written in one ``resourceSpans`` entry, in order."""
    later = replace(FULL, span_id="00000000000000ee")
    document = encode_traces([FULL, BARE, later])
    entries = document["resourceSpans"]
    spans = [[span["spanId"] for span in entry["scopeSpans"][0]["spans"]] for entry in entries]
    assert [["00000000000000aa", "00000000000000ee"], ["00000000000000dd"]] == spans


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (False, {"boolValue": False}),
        (0, {"intValue": "0"}),
        (b"", {"bytesValue": ""}),
        ([], {"arrayValue": {"values": []}}),
        ({}, {"kvlistValue": {"values": []}}),
        (None, {"stringValue": "None"}),
    ],
    ids=str,
)
def test_an_attribute_value_is_written_by_its_type(value: Any, expected: dict[str, Any]) -> None:
    """Each value type has its AnyValue key (bool before int; a list as an array), and
    anything else is written as its text."""
    assert expected == encode_any_value(value)
