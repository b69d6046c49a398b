"""Reading (and writing) OTLP JSON in every shape the backends produce.

Accepted on input, in any combination:

- envelopes: ``{"resourceSpans": [...]}`` (OTLP, collector file exporter, Tempo v2 inner),
  ``{"batches": [...]}`` (Tempo v1 ``/api/traces``), ``{"trace": {...}, "status": ...}``
  (Tempo v2 ``/api/v2/traces``), ``{"result": {...}}`` (Jaeger v2 API v3, grpc-gateway);
- ``scopeSpans`` and the pre-1.0 ``instrumentationLibrarySpans``;
- ids as hex (any case) or base64 (gogo jsonpb), empty parent ids meaning "root";
- ``kind`` and ``status.code`` as enum strings (``SPAN_KIND_SERVER``, ``STATUS_CODE_ERROR``) or
  ints; nanosecond times as strings or ints;
- OTLP ``AnyValue``: string, int (string or number), double, bool, array, kvlist, bytes.

A malformed span inside a good body is skipped, never a crash, with one warning (logging) a body;
a body that is not an OTLP trace at all raises ``SpanSourceError``. A span keeps the events and
links ``spans.bounded`` says, counting the rest; only the kept ones are decoded into records.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded
from taskdaemon.pipeline.ellipsis import cut_line
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.quoting import quote, quote_value
from taskdaemon.pipeline.tracking._item_flood import LEFT_OUT, read_event, trigger_link
from taskdaemon.pipeline.tracking.spans import (
    SpanEventRecord,
    SpanLinkRecord,
    SpanRecord,
    bounded,
    is_read_attribute,
)

__all__ = [
    "Skipped",
    "decode_any_value",
    "encode_any_value",
    "encode_traces",
    "may_hold_trace",
    "normalize_id",
    "parse_traces",
]

logger = logging.getLogger(__name__)

_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")


#: Characters of the first entry skipped that its warning names: a 100,000-character span id
#: was written whole.
_FIRST_SHOWN = 200


class Skipped:
    """What reading one body, file or answer passed over: counted, the first one kept, then one
    warning for them all (:meth:`warn`): a file of garbage is one line on the terminal, not one
    a line, and the reader is told that what is shown is partial."""

    __slots__ = ("count", "first")

    def __init__(self) -> None:
        self.count = 0
        self.first = ""

    def add(self, what: str) -> None:
        """One more passed over; ``what`` names it (and why) if it is the first, on one line of
        at most :data:`_FIRST_SHOWN` characters (it quotes the body, which may be hostile)."""
        if not self.count:
            self.first = cut_line(what, _FIRST_SHOWN)
        self.count += 1

    def warn(self, log: logging.Logger, where: str, one: str, many: str) -> None:
        """``WHERE: skipped N MANY (the first, FIRST)`` (``one`` for a single one) on ``log``;
        nothing when none was passed over."""
        if self.count:
            noun = one if self.count == 1 else many
            log.warning("%s: skipped %d %s (the first, %s)", where, self.count, noun, self.first)


class _BadSpanError(ValueError):
    """A span that cannot be read; the span is skipped."""


def normalize_id(raw: Any, length: int, *, pad: bool = False) -> str:
    """``raw`` (hex of ``length`` chars, or base64 of ``length // 2`` bytes) as lower-case hex.

    Shorter hex is left-padded: 16 chars (Jaeger 64-bit trace ids), or any length with
    ``pad``, for hex whose leading zeros were cut off (a Tempo search result's
    ``traceID``: Tempo's ``util.TraceIDToHexString`` trims them, so one run in sixteen has a
    shorter id there). Raises ``ValueError`` otherwise.
    """
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"id must be a non-empty string, got {quote_value(raw)}")
    # Jaeger may send a 64-bit trace id as 16 hex chars: left-pad it.
    is_hex = all(c in "0123456789abcdefABCDEF" for c in raw)
    short = (len(raw) == 16 and length == 32) or (pad and len(raw) < length)
    if is_hex and (len(raw) == length or short):
        return raw.lower().rjust(length, "0")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"id {quote(raw)} is neither hex nor base64") from exc
    if len(data) * 2 != length:
        raise ValueError(f"id {quote(raw)} decodes to {len(data)} bytes, expected {length // 2}")
    return data.hex()


def _enum(raw: Any, names: tuple[str, ...], prefix: str, default: str) -> str:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ValueError(f"bad enum value {quote_value(raw)}")
    if isinstance(raw, int):
        if 0 <= raw < len(names):
            return names[raw]
        raise ValueError(f"enum value {raw} out of range")
    if isinstance(raw, str):
        name = raw.upper().removeprefix(prefix)
        if name in names:
            return name
        if ascii_digits(name):
            return _enum(int(name), names, prefix, default)
    raise ValueError(f"unknown enum value {quote_value(raw)}")


#: The latest time a span may have, in nanoseconds: SQLite's largest integer, 2**63 - 1 (in
#: the year 2262), under OTLP's ``fixed64``. A later one overflowed the platform's ``time_t``
#: when a view wrote it (``runs list`` died in a traceback).
_MAX_NANOS = 2**63 - 1


def _nanos(raw: Any, *, required: bool) -> int | None:
    if raw is None or raw in ("", "0", 0):
        if required:
            raise ValueError("missing time")
        return None
    whole = (
        (isinstance(raw, int) and not isinstance(raw, bool))
        or (isinstance(raw, str) and ascii_digits(raw) and len(raw) <= 20)
        or (isinstance(raw, float) and raw.is_integer())
    )
    value = int(raw) if whole else None
    if value is None or not 0 < value <= _MAX_NANOS:
        raise ValueError(f"bad time {quote_value(raw)}")
    return value


#: OTLP's counts of what the SDK dropped (events, links, attributes), and the attributes that
#: carry them in formats without those fields (``telemetry``).
_DROPPED_FIELDS = ("droppedEventsCount", "droppedLinksCount", "droppedAttributesCount")
_DROPPED_ATTRIBUTES = (t.DROPPED_EVENTS_COUNT, t.DROPPED_LINKS_COUNT, t.DROPPED_ATTRIBUTES_COUNT)


def _count(raw: Any) -> int:
    """An OTLP ``dropped*Count`` (a number, or its digits as protojson may spell a uint32), 0
    when absent; ValueError when it is no count."""
    if raw is None:
        return 0
    if type(raw) is int and raw >= 0:
        return raw
    if type(raw) is str and ascii_digits(raw) and len(raw) <= 10:
        return int(raw)
    raise ValueError(f"bad dropped count {quote(str(raw))}")


def decode_any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` object as a normalized Python value (see ``spans``)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"AnyValue must be an object, got {quote_value(value)}")
    if not value:
        return None
    key, raw = next(iter(value.items()))
    try:
        return _any_value(key, raw)
    except OverflowError:  # int() of 1e400, float() of a 400-digit integer
        raise ValueError(f"bad {key} {quote(str(raw))}") from None


def _any_value(key: Any, raw: Any) -> Any:
    match key:
        case "stringValue":
            return str(raw)
        case "boolValue":
            if isinstance(raw, str):
                return raw == "true"
            return bool(raw)
        case "intValue":
            return int(raw)
        case "doubleValue":
            return float(raw)
        case "bytesValue":
            return base64.b64decode(raw)
        case "arrayValue":
            return tuple(decode_any_value(v) for v in (raw or {}).get("values", []) or [])
        case "kvlistValue":
            return _attributes((raw or {}).get("values"))
    raise ValueError(f"unknown AnyValue key {quote_value(key)}")


def _attributes(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    if not isinstance(raw, list):
        raise ValueError("attributes must be a list")
    out: dict[str, Any] = {}
    for item in raw:
        if item is not LEFT_OUT:  # counted where it was left out (tracking._item_flood)
            out[str(item["key"])] = decode_any_value(item.get("value") or {})
    return out


def _read_attribute(raw: Any) -> bool:
    """Whether an OTLP attribute (decoded JSON) has a key taskdaemon reads."""
    return type(raw) is dict and is_read_attribute(raw.get("key"))


def _bounded_items(raw: Any, wanted: Callable[[Any], bool]) -> tuple[Sequence[Any], int]:
    """``bounded`` of a span's events or links (``raw``, decoded JSON), those left out while
    decoding (``LEFT_OUT``: ``tracking._item_flood``) counted among the ones not read."""
    items = raw or []
    if not isinstance(items, list):
        raise ValueError("events and links must be lists")
    present = [item for item in items if item is not LEFT_OUT]
    kept, dropped = bounded(present, wanted)
    return kept, dropped + len(items) - len(present)


def _item_attributes(raw: Any, left: list[int]) -> dict[str, Any]:
    """An event's or a link's attributes (``raw``, decoded JSON) as a span's are kept
    (``bounded``: the first ``MAX_SPAN_ITEMS``, then those taskdaemon reads), those not read
    added to ``left[0]``. Decision: counted among the span's attributes not read
    (``dropped_attributes``), which ``runs show`` says: an event or a link has no count of
    its own, and a flood of them is the span's. Before, an answer not picked as flooded
    (``tracking._item_flood``) kept every attribute of an event, silently."""
    if type(raw) is not list:
        return _attributes(raw)
    kept, dropped = bounded(raw, _read_attribute)
    left[0] += dropped
    return _attributes(kept)


def _span(raw: Any, resource: dict[str, Any]) -> SpanRecord:
    if not isinstance(raw, Mapping):
        raise _BadSpanError("span is not an object")
    try:
        parent_raw = raw.get("parentSpanId")
        status = raw.get("status") or {}
        events, dropped_events = _bounded_items(raw.get("events"), read_event)
        links, dropped_links = _bounded_items(raw.get("links"), trigger_link)
        kept, dropped_attributes = bounded(raw.get("attributes") or [], _read_attribute)
        attributes = _attributes(kept)
        left = [0]  # the attributes of its events and links not read (``_item_attributes``)
        written = [_count(raw.get(field)) for field in _DROPPED_FIELDS]
        for i, key in enumerate(_DROPPED_ATTRIBUTES):
            # A backend that stored the span in another model gives the count as an attribute.
            if type(tagged := attributes.get(key)) is int and tagged >= 0:
                del attributes[key]
                written[i] = written[i] or tagged
        return SpanRecord(
            trace_id=normalize_id(raw.get("traceId"), 32),
            span_id=normalize_id(raw.get("spanId"), 16),
            parent_span_id=normalize_id(parent_raw, 16) if parent_raw else None,
            name=str(raw.get("name", "")),
            kind=_enum(raw.get("kind"), _KINDS, "SPAN_KIND_", "UNSPECIFIED"),
            start_ns=_nanos(raw.get("startTimeUnixNano"), required=True) or 0,
            end_ns=_nanos(raw.get("endTimeUnixNano"), required=False),
            status_code=_enum(status.get("code"), _STATUS, "STATUS_CODE_", "UNSET"),
            status_message=str(status.get("message", "") or ""),
            attributes=attributes,
            events=tuple(
                SpanEventRecord(
                    str(e.get("name", "")),
                    _nanos(e.get("timeUnixNano"), required=False) or 0,
                    _item_attributes(e.get("attributes"), left),
                )
                for e in events
            ),
            links=tuple(
                SpanLinkRecord(
                    normalize_id(link.get("traceId"), 32),
                    normalize_id(link.get("spanId"), 16),
                    _item_attributes(link.get("attributes"), left),
                )
                for link in links
            ),
            resource=resource,
            dropped_events=dropped_events,
            dropped_links=dropped_links,
            events_dropped_when_written=written[0],
            links_dropped_when_written=written[1],
            attributes_dropped_when_written=written[2],
            dropped_attributes=dropped_attributes + left[0],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _BadSpanError(str(exc)) from exc


def _resource_spans(body: Any) -> list[Any]:
    """The ``resourceSpans`` list of any accepted envelope; SpanSourceError if there is none."""
    if not isinstance(body, Mapping):
        raise SpanSourceError(
            f"not an OTLP trace body: expected an object, got {type(body).__name__}"
        )
    if "result" in body and isinstance(body["result"], Mapping):
        return _resource_spans(body["result"])
    if "trace" in body:
        inner = body["trace"]
        # Tempo v2 omits the trace (or sends {}) when nothing was found.
        return [] if not inner else _resource_spans(inner)
    for key in ("resourceSpans", "batches"):
        if key in body:
            value = body[key]
            if value is None:
                return []
            if not isinstance(value, list):
                raise SpanSourceError(f"not an OTLP trace body: {key!r} is not a list")
            return value
    if not body:
        return []
    raise SpanSourceError(
        "not an OTLP trace body: no 'resourceSpans', 'batches', 'trace' or 'result' key "
        f"(keys: {sorted(body)[:5]})"
    )


def _list(value: Any, key: str) -> list[Any]:
    """``value``, a list (None is an empty one); SpanSourceError naming ``key`` otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpanSourceError(f"not an OTLP trace body: {key!r} is not a list")
    return value


#: Spans read between two calls of ``parse_traces``' ``check``.
_CHECK_EVERY = 512


def parse_traces(
    body: Any, *, where: str = "body", check: Callable[[], None] | None = None
) -> list[SpanRecord]:
    """Every readable span of a decoded OTLP JSON body, in body order.

    Raises ``SpanSourceError`` when the body is not an OTLP trace document; skips spans that
    cannot be read, with one warning for the body naming ``where``, their count and the first.
    ``check``, when given, is called before the first span and every :data:`_CHECK_EVERY`
    spans; what it raises ends the reading (a remote query past its deadline).
    """
    spans: list[SpanRecord] = []
    skipped, entries, unread = Skipped(), Skipped(), Skipped()
    seen = 0
    for index, resource_spans in enumerate(_resource_spans(body)):
        if not isinstance(resource_spans, Mapping):
            entries.add(f"#{index}, {type(resource_spans).__name__}")
            continue
        try:
            resource = _attributes((resource_spans.get("resource") or {}).get("attributes"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            unread.add(f"#{index}: {exc}")
            resource = {}
        key, scopes = "scopeSpans", resource_spans.get("scopeSpans")
        if scopes is None:
            key = "instrumentationLibrarySpans"
            scopes = resource_spans.get(key)
        for scope_spans in _list(scopes, key):
            raw_spans = scope_spans.get("spans") if isinstance(scope_spans, Mapping) else None
            for raw in _list(raw_spans, "spans"):
                if check is not None and not seen % _CHECK_EVERY:
                    check()
                seen += 1
                try:
                    spans.append(_span(raw, resource))
                except _BadSpanError as exc:
                    span_id = raw.get("spanId") if isinstance(raw, Mapping) else None
                    skipped.add(f"{span_id}: {exc}")
    entries.warn(
        logger, where, "resourceSpans entry that is not an object", "resourceSpans entries"
    )
    unread.warn(
        logger, where, "resource's unreadable attributes", "resources' unreadable attributes"
    )
    skipped.warn(logger, where, "malformed span", "malformed spans")
    return spans


# --- encoding ------------------------------------------------------------------------------

IdEncoding = Literal["hex", "base64"]


def encode_any_value(value: Any) -> dict[str, Any]:
    """A normalized Python value as an OTLP ``AnyValue`` (ints as strings, like protojson)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, tuple | list):
        return {"arrayValue": {"values": [encode_any_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _encode_attributes(value)}}
    return {"stringValue": str(value)}


def _encode_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": encode_any_value(v)} for k, v in attributes.items()]


def _encode_id(hex_id: str, encoding: IdEncoding) -> str:
    return hex_id if encoding == "hex" else base64.b64encode(bytes.fromhex(hex_id)).decode()


def _encode_span(
    span: SpanRecord, ids: IdEncoding, enums: Literal["string", "int"]
) -> dict[str, Any]:
    kind: str | int = f"SPAN_KIND_{span.kind}" if enums == "string" else _KINDS.index(span.kind)
    code: str | int = (
        f"STATUS_CODE_{span.status_code}" if enums == "string" else _STATUS.index(span.status_code)
    )
    out: dict[str, Any] = {
        "traceId": _encode_id(span.trace_id, ids),
        "spanId": _encode_id(span.span_id, ids),
        "name": span.name,
        "kind": kind,
        "startTimeUnixNano": str(span.start_ns),
        "attributes": _encode_attributes(span.attributes),
        "status": {"code": code, "message": span.status_message}
        if span.status_code != "UNSET"
        else {},
    }
    if span.parent_span_id:
        out["parentSpanId"] = _encode_id(span.parent_span_id, ids)
    for key, count in (
        ("droppedAttributesCount", span.attributes_dropped_when_written),
        ("droppedEventsCount", span.events_dropped_when_written),
        ("droppedLinksCount", span.links_dropped_when_written),
    ):
        if count:
            out[key] = count
    if span.end_ns is not None:
        out["endTimeUnixNano"] = str(span.end_ns)
    if span.events:
        out["events"] = [
            {
                "name": e.name,
                "timeUnixNano": str(e.time_ns),
                "attributes": _encode_attributes(e.attributes),
            }
            for e in span.events
        ]
    if span.links:
        out["links"] = [
            {
                "traceId": _encode_id(link.trace_id, ids),
                "spanId": _encode_id(link.span_id, ids),
                "attributes": _encode_attributes(link.attributes),
            }
            for link in span.links
        ]
    return out


def encode_traces(
    spans: Iterable[SpanRecord],
    *,
    ids: IdEncoding = "hex",
    enums: Literal["string", "int"] = "string",
    key: Literal["resourceSpans", "batches"] = "resourceSpans",
    scope_key: Literal["scopeSpans", "instrumentationLibrarySpans"] = "scopeSpans",
    scope_name: str = "taskdaemon.pipeline",
) -> dict[str, Any]:
    """``spans`` as one OTLP JSON document, one ``resourceSpans`` entry per distinct resource.

    ``ids``/``enums``/``key`` choose the dialect: OTLP/protojson is hex + string enums +
    ``resourceSpans``; Tempo v1 is base64 + string enums + ``batches``.
    """
    groups: dict[str, tuple[Mapping[str, Any], list[dict[str, Any]]]] = {}
    for span in spans:
        group_key = repr(sorted(span.resource.items()))
        groups.setdefault(group_key, (span.resource, []))[1].append(_encode_span(span, ids, enums))
    return {
        key: [
            {
                "resource": {"attributes": _encode_attributes(resource)},
                scope_key: [{"scope": {"name": scope_name}, "spans": encoded}],
            }
            for resource, encoded in groups.values()
        ]
    }


# A JSON escape of a character an id may be spelled with (a digit, a letter, ``+``, ``/`` or
# ``=``): text holding one may hide an id from a plain search.
_ID_CHARACTER_ESCAPE = re.compile(r"\\(?:/|u00(?:2[bBfF]|3[0-9dD]|[4-7][0-9a-fA-F]))")


def may_hold_trace(trace_id: str) -> Callable[[str], bool]:
    """A test of JSON text: False only when the text cannot hold a span of ``trace_id`` (lower-
    case hex), so a reader may skip it without decoding it.

    Exact for every spelling :func:`normalize_id` reads: hex in any case (the 16-character
    Jaeger form ends the 32-character one), or base64 of the 16 bytes, whose first 21
    characters hold 126 of the 128 bits (the 22nd may carry any padding bits). Text with a
    JSON escape of a character an id is spelled with is always kept.
    """
    hex_tail = trace_id[16:]
    base64_form = base64.b64encode(bytes.fromhex(trace_id)).decode()[:21]

    def test(text: str) -> bool:
        return (
            hex_tail in text.lower()
            or base64_form in text
            or ("\\" in text and _ID_CHARACTER_ESCAPE.search(text) is not None)
        )

    return test


def iter_json_lines(
    lines: Iterable[str], *, where: str, keep: Callable[[str], bool] | None = None
) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded object)`` for each of the JSON ``lines`` (an open text file, for
    one), passing over the lines ``keep`` refuses without decoding them. Undecodable lines are
    skipped, with one warning for them all (:class:`Skipped`)."""
    skipped = Skipped()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (keep is not None and not keep(line)):
            continue
        try:
            document = loads_bounded(line)
        except BoundedInputError as exc:  # not JSON, or nested too deeply
            skipped.add(f"line {number}: {exc}")
            continue
        yield number, document
    skipped.warn(logger, where, "undecodable line", "undecodable lines")
