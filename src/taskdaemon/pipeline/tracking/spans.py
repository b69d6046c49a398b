"""The normalized span: what every span source yields and what reconstruction reads.

``SpanRecord`` is a frozen snapshot with one spelling for everything, whichever source it came
from (the OTel SDK, the SQLite store, Tempo, Jaeger, OTLP-JSON files):

- ids are lower-case hex (trace 32 chars, span 16 chars); ``parent_span_id`` is None for a root;
- ``kind`` is the bare enum name (``SERVER``, ``INTERNAL``, ...), ``status_code`` one of
  ``UNSET``, ``OK``, ``ERROR``;
- times are integer nanoseconds since the epoch; ``end_ns`` is None while the span is open;
- attribute values are ``str``, ``int``, ``float``, ``bool``, ``bytes``, tuples of those, or
  (OTLP ``kvlistValue`` only) dicts; arrays are always tuples so equality never depends on source.

Bounded reading. A span read back keeps at most ``MAX_SPAN_ITEMS`` events and as many links
(``bounded``), however many its source holds: a store written by another tool, or crafted, can
hold a span with a million events, and building a record for each made ``runs show`` take
seconds and hundreds of MiB for a run whose views show none of them one by one. taskdaemon
itself writes no more events and links a span than its tracer provider keeps, and no more
than a reader keeps of those it reads ("Dropped when written" below). What is not kept is counted
(``dropped_events``, ``dropped_links``, summed as ``RunRecord.events_not_read`` and
``links_not_read``): ``runs show`` says how many in its table and its JSON, ``dag --run`` on
stderr, and the web page's run data carries the counts. A cap is never silent.

Past the first ``MAX_SPAN_ITEMS``, the events and links taskdaemon's readers act on are still
kept, up to ``MAX_SPAN_ITEMS`` more: the events named in ``READ_EVENT_NAMES`` (a stage's input,
output and exception, approvals, breakpoints, published events, retries, triggers, which
reconstruction, replay and the timeline read) and the links that name what triggered a stage.
A span whose first thousand events are someone else's keeps its stage's state; a span crafted
with a million ``stage.output`` events keeps two thousand, and says so. A span's attributes are
bounded the same way (``dropped_attributes``, summed as ``RunRecord.attributes_not_read``),
those past the first ``MAX_SPAN_ITEMS`` kept when their key is one of taskdaemon's
(``is_read_attribute``): a crafted run span of a million attributes printed every one of them
in ``runs show --json``.

Dropped when written. The OTel SDK keeps at most so many events, links and attributes a span
(``SpanLimits``, 128 of each by default) and drops the oldest events and links past that, before
any processor or exporter sees the span. The run span gathers events for the whole run (each
stage's approval and its trigger evaluations before the stage has a span of its own, retries,
breakpoints), so a run of a few hundred stages lost its first ones, and the approvals the
timeline rebuilds with them, without a word. Two things answer it. The tracer provider the
``taskdaemon`` command builds keeps ``WRITTEN_SPAN_ITEMS`` events and links a span
(``cli.telemetry.span_limits``, unless the user set ``OTEL_SPAN_EVENT_COUNT_LIMIT`` or
``OTEL_SPAN_LINK_COUNT_LIMIT``, which win): every event taskdaemon writes is one a reader keeps
past the first ``MAX_SPAN_ITEMS``, so whatever the writer keeps reads back whole, and a
hostile pipeline still cannot make a span hold more than that. And what an SDK dropped all the
same (a pipeline of thousands of stages, a user's lower limits, another tracer provider) is
counted: the SDK's ``dropped_events``, ``dropped_links`` and ``dropped_attributes`` are stored
with the span (the store's body, OTLP's ``dropped*Count`` that Tempo and Jaeger give back), read
as ``events_dropped_when_written`` and its two siblings, and summed on the ``RunRecord``, which
``runs show``, its JSON and the web page's run data say, apart from what was not read. A
stage span's own records are never what its limit drops: the monitor stops recording published
events on it while there is still room for its closing event, and counts the rest among the
SDK's dropped events (``monitor/_spans.py``, ``count_if_full``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, TypeVar

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.frozen import field, frozen
from taskdaemon.pipeline.value_methods import ValueMethods

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "MAX_SPAN_ITEMS",
    "READ_EVENT_NAMES",
    "WRITTEN_SPAN_ITEMS",
    "SpanEventRecord",
    "SpanLinkRecord",
    "SpanRecord",
    "bounded",
    "bounded_attributes",
    "epoch_seconds",
    "is_read_attribute",
    "is_trigger_link",
    "normalize_value",
    "span_record_from_sdk",
]


@frozen
class SpanEventRecord(ValueMethods):
    """A span event: name, time in epoch nanoseconds, attributes."""

    name: str
    time_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@frozen
class SpanLinkRecord(ValueMethods):
    """A link to another span (hex ids) with the link's attributes."""

    trace_id: str
    span_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@frozen
class SpanRecord(ValueMethods):
    """One span, normalized (see the module docstring for the spelling of every field)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int | None
    status_code: str = "UNSET"
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[SpanEventRecord, ...] = ()
    links: tuple[SpanLinkRecord, ...] = ()
    resource: Mapping[str, Any] = field(default_factory=dict)
    dropped_events: int = 0  # events the source holds that were not read (``bounded``)
    dropped_links: int = 0
    # What the SDK that recorded the span dropped past its span limits, so never stored
    # anywhere (OTLP's ``droppedEventsCount``, ``droppedLinksCount``, ``droppedAttributesCount``):
    # "Dropped when written" in the module docstring.
    events_dropped_when_written: int = 0
    links_dropped_when_written: int = 0
    attributes_dropped_when_written: int = 0
    dropped_attributes: int = 0  # attributes the source holds that were not read (``bounded``)

    @property
    def is_open(self) -> bool:
        """True while the span has not ended."""
        return self.end_ns is None


#: How many events, and how many links, a span read back keeps at first; as many more of those
#: taskdaemon's readers act on may follow (the module docstring says why).
MAX_SPAN_ITEMS: Final = 1000

#: How many events, and how many links, the tracer provider taskdaemon builds keeps a span:
#: what a reader keeps of a span whose events are all ones it reads (the module docstring).
WRITTEN_SPAN_ITEMS: Final = 2 * MAX_SPAN_ITEMS

#: The span events reconstruction, replay and the timeline read: kept past the first
#: ``MAX_SPAN_ITEMS``.
READ_EVENT_NAMES: Final = frozenset(
    {
        t.EVENT_TRIGGER_EVALUATED,
        t.EVENT_STAGE_INPUT,
        t.EVENT_STAGE_OUTPUT,
        t.EVENT_APPROVAL_REQUESTED,
        t.EVENT_APPROVAL_RESOLVED,
        t.EVENT_BREAKPOINT_HIT,
        t.EVENT_BREAKPOINT_RESUMED,
        t.EVENT_INPUT_OVERRIDE,
        t.EVENT_PUBLISHED,
        t.EVENT_STAGE_RETRYING,
        "exception",
    }
)

#: The attribute keys taskdaemon's readers act on start so (``telemetry``), or are ``error.type``.
_READ_ATTRIBUTE_PREFIXES: Final = ("taskdaemon.", "cicd.")

_Item = TypeVar("_Item")


def bounded(items: Sequence[_Item], wanted: Callable[[_Item], bool]) -> tuple[Sequence[_Item], int]:
    """The events (or links) of one span a reader keeps, in their order, and how many it
    leaves: all of them up to ``MAX_SPAN_ITEMS``, else the first ``MAX_SPAN_ITEMS`` and then up
    to as many more of those ``wanted`` holds for. ``items`` are as the source spells them
    (decoded JSON, say): only the kept ones are turned into records. Linear in ``items``."""
    if len(items) <= MAX_SPAN_ITEMS:
        return items, 0
    kept = list(items[:MAX_SPAN_ITEMS])
    more = (item for item in islice(items, MAX_SPAN_ITEMS, None) if wanted(item))
    kept += islice(more, MAX_SPAN_ITEMS)
    return kept, len(items) - len(kept)


def is_read_attribute(key: Any) -> bool:
    """Whether a span attribute's key is one taskdaemon's readers act on: kept past the first
    ``MAX_SPAN_ITEMS`` attributes of a span."""
    return type(key) is str and (key.startswith(_READ_ATTRIBUTE_PREFIXES) or key == t.ERROR_TYPE)


def bounded_attributes(attributes: Any) -> tuple[Any, int]:
    """A span's attributes (a decoded dict) as a reader keeps them (``bounded``, keys of
    ``is_read_attribute`` wanted past the first ``MAX_SPAN_ITEMS``) and how many it leaves;
    anything else, or a dict within the bound, as it is."""
    if type(attributes) is not dict or len(attributes) <= MAX_SPAN_ITEMS:
        return attributes, 0
    kept, left = bounded(list(attributes.items()), lambda item: is_read_attribute(item[0]))
    return dict(kept), left


def is_trigger_link(attributes: Any) -> bool:
    """Whether a link's attributes say it names what triggered its stage (reconstruction
    reads those links)."""
    return type(attributes) is dict and attributes.get(t.LINK_RELATION) == t.LINK_TRIGGERED_BY


def epoch_seconds(ns: int) -> float:
    """Epoch nanoseconds as epoch seconds: the float whose nanoseconds they are.

    The monitor writes a time ``at`` (the engine's float) as ``ns(at)``, whole and fractional
    seconds apart (``monitor._spans.ns``); this reads it back the same way and gives ``at``
    again, exactly, so a run's start and end from the store equal the engine's. ``ns / 1e9``
    rounds twice (the int to a double first: 61 significant bits do not fit) and misses by
    one ulp for about one time in fifteen."""
    whole, fraction = divmod(ns, 1_000_000_000)
    return whole + fraction / 1e9


def normalize_value(value: Any) -> Any:
    """One spelling per attribute value: lists become tuples (recursively), dicts stay dicts."""
    if isinstance(value, list | tuple):
        return tuple(normalize_value(item) for item in value)
    if isinstance(value, Mapping):
        return {str(k): normalize_value(v) for k, v in value.items()}
    return value


def normalize_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain dict of normalized values (None and empty input give an empty dict)."""
    if not attributes:
        return {}
    return {str(k): normalize_value(v) for k, v in attributes.items()}


def span_record_from_sdk(span: ReadableSpan) -> SpanRecord:
    """The ``SpanRecord`` of an SDK span (open or ended)."""
    context = span.get_span_context()
    parent = span.parent
    assert context is not None  # an SDK span always has a context
    return SpanRecord(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_span_id=None if parent is None else format(parent.span_id, "016x"),
        name=span.name,
        kind=span.kind.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time,
        status_code=span.status.status_code.name,
        status_message=span.status.description or "",
        attributes=normalize_attributes(span.attributes),
        events=tuple(
            SpanEventRecord(e.name, e.timestamp, normalize_attributes(e.attributes))
            for e in span.events
        ),
        links=tuple(
            SpanLinkRecord(
                format(link.context.trace_id, "032x"),
                format(link.context.span_id, "016x"),
                normalize_attributes(link.attributes),
            )
            for link in span.links
        ),
        resource=normalize_attributes(span.resource.attributes),
        events_dropped_when_written=span.dropped_events,
        links_dropped_when_written=span.dropped_links,
        attributes_dropped_when_written=span.dropped_attributes,
    )
