"""What a span read back keeps (``tracking.spans``): ``bounded`` at its edges, through a real
store, and the SDK's spans spelled as every other source spells them.

The spans are written by the OTel SDK (its event and link limits raised past
``MAX_SPAN_ITEMS``, as another tool's could be) into a real store, ``SqliteSpanProcessor``,
and read back by ``SpanStore.get_trace``: the reader keeps the first ``MAX_SPAN_ITEMS`` events
(and links), then up to as many more of those taskdaemon reads, and counts the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.tracking.spans import (
    MAX_SPAN_ITEMS,
    SpanEventRecord,
    SpanLinkRecord,
    SpanRecord,
    span_record_from_sdk,
)
from taskdaemon.pipeline.tracking.store import SpanStore

RESOURCE = Resource.create({"service.name": "taskdaemon"})
FOREIGN, READ = "other.tool", t.EVENT_STAGE_OUTPUT
#: A link to another trace; ``TRIGGER`` says it names what triggered the stage.
OTHER = {t.LINK_RELATION: "other"}
TRIGGER = {t.LINK_RELATION: t.LINK_TRIGGERED_BY}
T0 = 1_700_000_000_000_000_000


def _provider(*processors: Any) -> TracerProvider:
    limits = SpanLimits(max_events=4 * MAX_SPAN_ITEMS, max_links=4 * MAX_SPAN_ITEMS)
    provider = TracerProvider(resource=RESOURCE, span_limits=limits)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def _link(i: int, attributes: dict[str, str]) -> Link:
    context = SpanContext(0xAB << 120, i + 1, is_remote=True, trace_flags=TraceFlags(1))
    return Link(context, attributes)


def _stored(tmp_path: Path, events: list[str], links: list[dict[str, str]]) -> SpanRecord:
    """The one span written with ``events`` (by name, the i-th at ``T0 + i``) and ``links``
    (by attributes), as the store reads it back."""
    db = tmp_path / "spans.db"
    provider = _provider(SqliteSpanProcessor(db))
    span = provider.get_tracer("test").start_span(
        "stage", start_time=T0, links=[_link(i, a) for i, a in enumerate(links)]
    )
    for i, name in enumerate(events):
        span.add_event(name, {"i": i}, timestamp=T0 + i)
    span.end(end_time=T0 + len(events) + 1)
    trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    with SpanStore(db) as store:
        (record,) = store.get_trace(trace_id)
    return record


def _kept(record: SpanRecord) -> tuple[list[int], int, list[int], int]:
    """The indices of the events and links kept (as written), and how many of each not read."""
    return (
        [event.attributes["i"] for event in record.events],
        record.dropped_events,
        [int(link.span_id, 16) - 1 for link in record.links],
        record.dropped_links,
    )


CAP = list(range(MAX_SPAN_ITEMS))


@pytest.mark.parametrize(
    ("events", "kept", "dropped"),
    [
        # At the cap: every event, none counted.
        ([FOREIGN] * MAX_SPAN_ITEMS, CAP, 0),
        # One past it, an event taskdaemon reads: kept, right after the cap.
        ([FOREIGN] * MAX_SPAN_ITEMS + [READ], [*CAP, MAX_SPAN_ITEMS], 0),
        # One past it, someone else's: left and counted.
        ([FOREIGN] * (MAX_SPAN_ITEMS + 1), CAP, 1),
        # Past the cap, read events mixed with others: the read ones in order, the rest counted.
        (
            [FOREIGN] * MAX_SPAN_ITEMS + [FOREIGN, READ, FOREIGN, READ],
            [*CAP, MAX_SPAN_ITEMS + 1, MAX_SPAN_ITEMS + 3],
            2,
        ),
        # More read events past the cap than the cap again: the first as many kept.
        (
            [FOREIGN] * MAX_SPAN_ITEMS + [READ] * (MAX_SPAN_ITEMS + 2),
            [*CAP, *range(MAX_SPAN_ITEMS, 2 * MAX_SPAN_ITEMS)],
            2,
        ),
    ],
    ids=["at-cap", "read-past", "foreign-past", "mixed-past", "read-past-twice-cap"],
)
def test_a_stored_span_keeps_the_events_bounded_says_and_counts_the_rest(
    tmp_path: Path, events: list[str], kept: list[int], dropped: int
) -> None:
    record = _stored(tmp_path, events, [])
    assert (kept, dropped) == _kept(record)[:2]


@pytest.mark.parametrize(
    ("links", "kept", "dropped"),
    [
        ([OTHER] * MAX_SPAN_ITEMS, CAP, 0),
        ([OTHER] * MAX_SPAN_ITEMS + [TRIGGER], [*CAP, MAX_SPAN_ITEMS], 0),
        (
            [OTHER] * MAX_SPAN_ITEMS + [OTHER, TRIGGER, {}, TRIGGER],
            [*CAP, MAX_SPAN_ITEMS + 1, MAX_SPAN_ITEMS + 3],
            2,
        ),
    ],
    ids=["at-cap", "trigger-past", "mixed-past"],
)
def test_a_stored_span_keeps_the_trigger_links_past_the_cap(
    tmp_path: Path, links: list[dict[str, str]], kept: list[int], dropped: int
) -> None:
    record = _stored(tmp_path, [], links)
    assert (kept, dropped) == _kept(record)[2:]


def test_an_sdk_span_is_spelled_as_the_store_spells_it(tmp_path: Path) -> None:
    """``span_record_from_sdk`` of the SDK's own spans equals what the store reads back of
    them: ids in lower-case hex, arrays as tuples, a root's parent None, a status without
    description as ``""``, the bare kind and status names, events and links with their
    attributes, the resource."""
    db = tmp_path / "spans.db"
    exporter = InMemorySpanExporter()
    provider = _provider(SimpleSpanProcessor(exporter), SqliteSpanProcessor(db))
    tracer = provider.get_tracer("test")
    root = tracer.start_span("run", kind=SpanKind.SERVER, start_time=T0)
    root.set_attributes({"tags": ["a", "b"], "n": 3, "ok": True})
    root.set_status(Status(StatusCode.OK))
    child = tracer.start_span(
        "stage",
        context=set_span_in_context(root),
        start_time=T0 + 5,
        links=[_link(0xFACE, {**TRIGGER, "weights": [0.5, 1.5]})],
    )
    child.add_event(READ, {"sizes": [1, 2], "text": "x"}, timestamp=T0 + 6)
    child.add_event("bare", timestamp=T0 + 7)
    child.set_status(Status(StatusCode.ERROR, "it broke"))
    child.end(end_time=T0 + 8)
    root.end(end_time=T0 + 9)
    provider.shutdown()
    from_sdk = sorted(
        (span_record_from_sdk(span) for span in exporter.get_finished_spans()),
        key=lambda record: record.start_ns,
    )
    with SpanStore(db) as store:
        stored = store.get_trace(from_sdk[0].trace_id)
    run, stage = from_sdk
    assert (stored, run.parent_span_id, stage.parent_span_id) == (from_sdk, None, run.span_id)
    assert (
        run.kind,
        run.status_code,
        run.status_message,
        dict(run.attributes),
        stage.status_code,
        stage.status_message,
        stage.events,
        stage.links,
        dict(stage.resource),
    ) == (
        "SERVER",
        "OK",
        "",
        {"tags": ("a", "b"), "n": 3, "ok": True},
        "ERROR",
        "it broke",
        (
            SpanEventRecord(READ, T0 + 6, {"sizes": (1, 2), "text": "x"}),
            SpanEventRecord("bare", T0 + 7, {}),
        ),
        (SpanLinkRecord("ab" + "0" * 30, "000000000000facf", {**TRIGGER, "weights": (0.5, 1.5)}),),
        dict(RESOURCE.attributes),
    )
