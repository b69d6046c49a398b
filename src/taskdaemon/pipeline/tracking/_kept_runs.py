"""What the report aggregates keep of a run's ended stage spans, and that run's aggregates
computed straight from it when the run span ends (``tracking.aggregates.RunAggregator``).

An ended stage span is kept as one flat tuple of plain values (``attempt_from_sdk``): the cyclic
GC stops tracking such tuples, so thousands of open runs' attempts add nothing to its full
collections, and the span itself (attributes, payload events, links) can be freed. Only what
an aggregate row reads is kept: the stage, span id, attempt number, whether it failed, start,
end, queue wait, CPU time, peak memory, the declared upstream (not the task run id or the
instance: no row reads them; a span id is never empty, so it always names the attempt), and for
the critical path through events the span ids its links name (as the SDK's ints) and the
(time, type) of the events it published (none, for most spans).

At the run's end, ``kept_run`` groups the attempts by stage and finds the critical path from
them, with no ``AttemptRecord``, ``StageRecord`` or ``RunRecord`` built only to be read back
(those objects were most of the aggregates' cost). Every figure goes through the same float
arithmetic as ``write_run`` over a run rebuilt from its stored spans (times in epoch seconds
by ``spans.epoch_seconds``, the engine's floats exactly; durations rounded back to ns), so the
two paths write the same rows; a test holds them equal.

A run span's DAG edges are decoded once per distinct edge list (``EdgeUpstream``): every run of
a pipeline carries the same ``edge_specs`` attribute, and decoding it (one JSON document an
edge, before ``telemetry_codec.edges_of`` read a list of plain items in one pass) cost more
than the rest of the run's critical path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.reporting import FED, ChainStep, Fired, critical_chain
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES
from taskdaemon.pipeline.telemetry_codec import edges_of
from taskdaemon.pipeline.tracking._attribute_values import (
    NUMBER_BOUND,
    float_attribute,
    int_attribute,
    strings_attribute,
)
from taskdaemon.pipeline.tracking.reconstruct import ended_run_status, published_type
from taskdaemon.pipeline.tracking.spans import epoch_seconds

__all__ = ["EdgeUpstream", "Kept", "KeptRun", "attempt_from_sdk", "kept_run", "to_ns"]

_NS: Final = 1e9

#: (stage, span id, attempt, failed (0/1), start s, end s, queue wait s or None, CPU s or None,
#: peak memory or None, declared upstream or None (no attribute), linked span ids (ints),
#: published events as (time s, type))
Kept = tuple[
    str,
    str,
    int,
    int,
    float,
    float,
    float | None,
    float | None,
    int | None,
    Any,
    tuple[int, ...],
    tuple[tuple[float, str], ...],
]


def to_ns(seconds: float) -> int:
    """Seconds (float) to integer ns, as every aggregate column stores them."""
    return round(seconds * _NS)


# The attribute names attempt_from_sdk reads, bound once (it runs once a stage span).
_ATTEMPT: Final = t.STAGE_ATTEMPT
_QUEUE: Final = t.STAGE_QUEUE_TIME
_CPU: Final = t.STAGE_CPU_TIME
_MEMORY: Final = t.STAGE_PEAK_MEMORY
_UPSTREAM: Final = t.STAGE_UPSTREAM
_PUBLISHED: Final = t.EVENT_PUBLISHED
#: The numbers read as they are (``_attribute_values.NUMBER_BOUND``).
_LOW: Final = -NUMBER_BOUND
_HIGH: Final = NUMBER_BOUND


def _sdk_readers() -> None:
    """Bind ``_named_events`` and ``_linked_span_ids`` to ``tracking._bodies``'s, at the first
    kept attempt: ``_bodies`` imports the OTel SDK (and psutil, through its resources), which
    the aggregates' reading side (``taskdaemon report``, which imports this module for
    ``to_ns`` and the rebuild of runs without aggregates) never uses; only the writer, which
    has the SDK loaded, keeps attempts."""
    global _named_events, _linked_span_ids
    from taskdaemon.pipeline.tracking._bodies import (  # noqa: PLC0415 - see above
        linked_span_ids,
        named_events,
    )

    _named_events, _linked_span_ids = named_events, linked_span_ids


def _named_events(events: Sequence[Any], name: str) -> tuple[tuple[int, Any], ...]:
    _sdk_readers()
    return _named_events(events, name)


def _linked_span_ids(links: Sequence[Any]) -> tuple[int, ...]:
    _sdk_readers()
    return _linked_span_ids(links)


def attempt_from_sdk(  # noqa: PLR0917 (what the writer read of the span, as it read it)
    a: Mapping[str, Any],
    name: str,
    span_id: str,
    status: str,
    start_ns: int,
    end_ns: int,
    events: Sequence[Any],
    links: Sequence[Any],
) -> Kept:
    """What is kept of an ended stage attempt whose attributes are ``a``: stage ``name`` (a
    non-empty string), hex ``span_id``, ``status`` (``ended_attempt_status``), start and end,
    the SDK's ``events`` and ``links`` (see the module docstring). The writer reads those for
    its own tally and its row and hands them over (a skip span or one without a stage name is
    not kept: a rebuilt run leaves those out too)."""
    # Read as a rebuild reads the stored attribute (``reconstruct``), only when it is not
    # already what that reading gives (a number within ``_LOW`` and ``_HIGH``; not nan, whose
    # comparisons are all false).
    attempt = a.get(_ATTEMPT)
    if type(attempt) is not int or not attempt or not _LOW <= attempt < _HIGH:
        attempt = int_attribute(attempt, 1) or 1
    memory = a.get(_MEMORY)
    if memory is not None and (type(memory) is not int or not _LOW <= memory < _HIGH):
        memory = int_attribute(memory)
    queue = a.get(_QUEUE)
    if queue is not None and (type(queue) is not float or not _LOW < queue < _HIGH):
        queue = float_attribute(queue)
    cpu = a.get(_CPU)
    if cpu is not None and (type(cpu) is not float or not _LOW < cpu < _HIGH):
        cpu = float_attribute(cpu)
    up = a.get(_UPSTREAM)
    if up is not None:
        up = _shared_upstream(up)
    published: tuple[tuple[float, str], ...] = ()
    for at, attributes in _named_events(events, _PUBLISHED):
        published += ((epoch_seconds(at), published_type(attributes)),)
    # The span ids of every link, not only ``triggered_by`` ones (a rebuilt run's record keeps
    # those): reading each link's relation through the SDK's attributes cost more than the rest
    # of the links and events together, and the other links never name a publisher the path
    # could take (``previous_attempt`` names the stage's own attempt, ``replayed_from`` a span
    # of another trace; ``parent`` and ``replay_of`` are on run spans): the same releases.
    return (
        name,
        span_id,
        attempt,
        int(status in FAILED_STAGE_STATUSES),
        epoch_seconds(start_ns),
        epoch_seconds(end_ns),
        queue,
        cpu,
        memory,
        up,
        _linked_span_ids(links),
        published,
    )


_UPSTREAMS: dict[Any, tuple[str, ...]] = {}


def _shared_upstream(value: Any) -> tuple[str, ...]:
    """A declared upstream list as a tuple of names (``reconstruct``'s reading: a single value
    is a list of one), one shared tuple per distinct list: every run of a pipeline declares the
    same lists, and thousands of open runs kept a tuple each. At most 4,096 lists are kept; a
    full cache starts over."""
    try:
        found = _UPSTREAMS.get(value)
    except TypeError:  # unhashable (a list, or a tuple holding one)
        return strings_attribute(value)
    if found is not None:
        return found
    if len(_UPSTREAMS) >= 4096:
        _UPSTREAMS.clear()
    shared = _UPSTREAMS[value] = strings_attribute(value)
    return shared


class EdgeUpstream:
    """Stage -> the stages its DAG edges come from, per distinct edge list of run spans, decoded
    once (see the module docstring). At most ``size`` lists are kept; a full cache starts over."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._known: dict[Any, dict[str, frozenset[str]]] = {}

    def of(self, attrs: Mapping[str, Any]) -> Mapping[str, frozenset[str]]:
        """The upstream map of the edges on a run span whose attributes are ``attrs``."""
        key = (attrs.get(t.PIPELINE_EDGE_SPECS), attrs.get(t.PIPELINE_EDGES))
        try:
            found = self._known.get(key)
        except TypeError:  # an unhashable value (a list): decoded every time
            return self._decode(attrs)
        if found is None:
            if len(self._known) >= self._size:
                self._known.clear()
            found = self._known[key] = self._decode(attrs)
        return found

    @staticmethod
    def _decode(attrs: Mapping[str, Any]) -> dict[str, frozenset[str]]:
        upstream: dict[str, set[str]] = {}
        for edge in edges_of(attrs) or ():
            upstream.setdefault(edge.target, set()).add(edge.source)
        return {target: frozenset(sources) for target, sources in upstream.items()}


class _Upstream:
    """A run's upstream stages (``reporting.run_upstream``: its edges' and its stages' declared
    lists, united), merged only for the stages the critical path asks about."""

    def __init__(
        self, edges: Mapping[str, frozenset[str]], declared: Mapping[str, tuple[str, ...]]
    ) -> None:
        self._edges = edges
        self._declared = declared

    def of(self, stage: str) -> Iterable[str]:
        """The stages ``stage`` depends on."""
        declared = self._declared.get(stage)
        from_edges = self._edges.get(stage)
        if declared is None:
            return () if from_edges is None else from_edges
        if from_edges is None:
            return declared
        return from_edges if from_edges.issuperset(declared) else from_edges.union(declared)


class KeptRun(NamedTuple):
    """An ended run's figures, from its run span and its kept attempts."""

    pipeline: str
    status: str
    start_ns: int
    duration_ns: int
    stages: dict[str, tuple[float, float]]  # stage -> (start, end), in order of first sight
    attempts: list[Kept]  # in the order they ended
    path: list[ChainStep]  # reporting.critical_chain


def kept_run(
    root: Any, attrs: Mapping[str, Any], kept: list[Kept], edges: EdgeUpstream, *, fed: bool
) -> KeptRun:
    """The figures of the run whose run span ``root`` (attributes ``attrs``) ended, from its
    kept attempts (its fed ones are never kept): what ``write_run`` reads of a ``RunRecord``,
    computed the same way. ``fed``: the run is a replay that fed stages (``reporting.FED``):
    its status is ``FED`` and it has no critical path (``reporting._replays``)."""
    start = epoch_seconds(root.start_time or 0)  # as ``reconstruct_run`` reads a run's times
    end = epoch_seconds(root.end_time or 0)
    declared: dict[str, tuple[str, ...]] = {}
    intervals: dict[str, tuple[float, float]] = {}
    publishers: dict[str, tuple[str, tuple[tuple[float, str], ...]]] = {}
    for name, span_id, _, _, first, last, _, _, _, up, _, published in kept:
        span = intervals.get(name)
        if span is None:
            intervals[name] = (first, last)
        else:
            intervals[name] = (min(span[0], first), max(span[1], last))
        if up is not None:
            declared[name] = up
        if published:
            publishers[span_id] = (name, published)
    fired = _fired(kept, publishers) if publishers and not fed else None
    return KeptRun(
        pipeline=str(attrs.get(t.CICD_PIPELINE_NAME, "")),
        status=FED if fed else ended_run_status(attrs, root.status.status_code._name_),
        start_ns=to_ns(start),
        duration_ns=to_ns(max(0.0, end - start)),
        stages=intervals,
        attempts=kept,
        path=[]
        if fed
        else critical_chain(
            start,
            intervals,
            _Upstream(edges.of(attrs), declared).of,
            None if not fired else (lambda stage: fired.get(stage, ())),
        ),
    )


def _fired(
    kept: list[Kept], publishers: Mapping[str, tuple[str, tuple[tuple[float, str], ...]]]
) -> dict[str, list[Fired]]:
    """``reporting.run_fired`` of a run's kept attempts, given its attempts that published
    events (``publishers``: hex span id -> (stage, events))."""
    fired: dict[str, list[Fired]] = {}
    for attempt in kept:
        for span_id in attempt[10]:
            found = publishers.get(format(span_id, "016x"))
            if found is not None:
                events = fired.setdefault(attempt[0], [])
                events += [(found[0], at, event) for at, event in found[1]]
    return fired
