"""metrics/_direct: records handed to the SDK's aggregations directly give the data points the
SDK's own ``add`` and ``record`` give, for every reader, view and exemplar filter."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry import metrics as metrics_api
from opentelemetry import trace
from opentelemetry.sdk.metrics import (
    AlwaysOnExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline.metrics import _direct
from taskdaemon.pipeline.metrics._direct import direct_recorder

Recorders = dict[str, Callable[[float, dict[str, Any]], None]]

FAN = {"pipeline": "fan", "stage": "b0s1"}
JOIN = {"pipeline": "fan", "stage": "join", "status": "success"}
#: Values and attribute dicts recorded on every instrument, refused ones included.
RECORDS: list[tuple[float, dict[str, Any]]] = [
    (1, FAN),
    (2, FAN),
    (0.25, JOIN),
    (-1, FAN),  # refused by counters and histograms, added by an up-down counter
    (math.nan, JOIN),  # refused by every instrument
    (3, FAN),
    (7.5, JOIN),
]


@pytest.fixture(autouse=True)
def _sdk_layout_loaded_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test loads the SDK's layout itself: the module keeps the first one it loaded for
    the process, so a fault in the loading would otherwise be met by the first test alone."""
    monkeypatch.setattr(_direct._SdkLayout, "_loaded", None)


def make_provider(reader: InMemoryMetricReader, **options: Any) -> MeterProvider:
    return MeterProvider(metric_readers=[reader], **options)


def instruments(provider: MeterProvider, direct: bool) -> Recorders:
    """A counter, an up-down counter and a histogram, recorded on through ``direct_recorder``
    or through their own methods."""
    meter = provider.get_meter("test")
    counter = meter.create_counter("c")
    updown = meter.create_up_down_counter("u")
    histogram = meter.create_histogram("h", unit="s")
    if direct:
        return {
            "c": direct_recorder(counter),
            "u": direct_recorder(updown),
            "h": direct_recorder(histogram),
        }
    return {"c": counter.add, "u": updown.add, "h": histogram.record}


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[Any, ...]]]:
    """Every data point the reader collects, without its timestamps."""
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[Any, ...]]] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                rows = []
                for point in metric.data.data_points:
                    exemplars = tuple(
                        (e.value, dict(e.filtered_attributes or {}), e.span_id, e.trace_id)
                        for e in point.exemplars
                    )
                    values = tuple(
                        getattr(point, name, None)
                        for name in ("value", "count", "sum", "min", "max", "bucket_counts")
                    )
                    rows.append((dict(point.attributes), values, exemplars))
                found[metric.name] = sorted(rows, key=repr)
    return found


def record_all(recorders: Recorders, records: list[tuple[float, dict[str, Any]]]) -> None:
    for value, attributes in records:
        for record in recorders.values():
            record(value, attributes)


def both(
    make_reader: Callable[[], InMemoryMetricReader], **options: Any
) -> Iterator[tuple[InMemoryMetricReader, Recorders]]:
    """The SDK's own path first, then the direct one, each on a fresh provider."""
    for direct in (False, True):
        reader = make_reader()
        yield reader, instruments(make_provider(reader, **options), direct)


def test_the_same_data_points_as_the_sdk_methods() -> None:
    """Counters, up-down counters and histograms hold the same points either way, refused
    values (negative, NaN) refused alike."""
    seen = []
    for reader, recorders in both(InMemoryMetricReader):
        record_all(recorders, RECORDS * 3)
        seen.append(points(reader))
    assert seen[0] == seen[1]
    assert (FAN, (18, None, None, None, None, None), ()) in seen[1]["c"]


def test_a_direct_recorder_is_not_the_instruments_own_method() -> None:
    """The SDK's instruments get the shortcut (else these tests would compare the SDK with
    itself); the API's no-op instruments get their own method back."""
    meter = make_provider(InMemoryMetricReader()).get_meter("test")
    counter = meter.create_counter("c")
    histogram = meter.create_histogram("h")
    assert counter.add != direct_recorder(counter)
    assert histogram.record != direct_recorder(histogram)
    noop = metrics_api.NoOpMeterProvider().get_meter("test").create_counter("c")
    assert noop.add == direct_recorder(noop)


def test_an_sdk_version_not_compared_against_records_through_its_own_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shortcut reads private classes: an SDK minor version its tests have not compared
    it against gets the public methods back; the installed one is among those compared."""
    from opentelemetry.sdk import version

    assert version.__version__.startswith(_direct.CHECKED_SDK)
    monkeypatch.setattr(version, "__version__", "1.99.0")
    counter = make_provider(InMemoryMetricReader()).get_meter("test").create_counter("c")
    assert counter.add == direct_recorder(counter)


def delta_reader() -> InMemoryMetricReader:
    kinds = (Counter, UpDownCounter, Histogram)
    delta = AggregationTemporality.DELTA
    return InMemoryMetricReader(preferred_temporality=dict.fromkeys(kinds, delta))


@pytest.mark.parametrize("make_reader", [delta_reader, InMemoryMetricReader])
def test_collections_between_records(make_reader: Callable[[], InMemoryMetricReader]) -> None:
    """A delta reader's collections (which drop the aggregations) and a cumulative one's
    (which keep counting on them) see the same points either way."""
    seen = []
    for reader, recorders in both(make_reader):
        collections = []
        for _ in range(3):
            record_all(recorders, RECORDS)
            collections.append(points(reader))
        seen.append(collections)
    assert seen[0] == seen[1]
    assert seen[1][2]["c"]  # the last collection counted the records before it


def test_a_view_that_keeps_some_attribute_keys() -> None:
    """A view keeping only ``pipeline`` merges the stages into one point either way."""
    view = View(instrument_name="*", attribute_keys={"pipeline"})
    seen = []
    for reader, recorders in both(InMemoryMetricReader, views=[view]):
        record_all(recorders, RECORDS)
        seen.append(points(reader))
    assert seen[0] == seen[1]
    assert [{"pipeline": "fan"}] == [row[0] for row in seen[1]["c"]]


def test_the_cardinality_overflow() -> None:
    """Past a reader's cardinality limit records go to the overflow point either way."""

    def capped() -> InMemoryMetricReader:
        return InMemoryMetricReader(cardinality_limits={Counter: 2, Histogram: 2, UpDownCounter: 2})

    many = [(1.0, {"stage": f"s{n}"}) for n in range(5)]
    seen = []
    for reader, recorders in both(capped):
        record_all(recorders, many * 2)
        seen.append(points(reader))
    assert seen[0] == seen[1]
    assert {"otel.metric.overflow": True} in [row[0] for row in seen[1]["c"]]


@contextmanager
def sampled_span() -> Iterator[None]:
    with TracerProvider().get_tracer("test").start_as_current_span("stage"):
        yield


@pytest.mark.parametrize("always_on", [False, True])
def test_exemplars_inside_a_sampled_span(always_on: bool) -> None:
    """Inside a sampled span (trace-based filter) or always (always-on filter) the records
    offer the same exemplars to the reservoirs; outside a span the trace-based filter none."""
    options = {"exemplar_filter": AlwaysOnExemplarFilter()} if always_on else {}
    seen = []
    for reader, recorders in both(InMemoryMetricReader, **options):
        record_all(recorders, RECORDS)  # outside any span: learns the dicts
        with sampled_span():
            record_all(recorders, RECORDS)
        seen.append(points(reader))
    strip = [
        [(row[0], row[1], tuple(e[:2] for e in row[2])) for row in rows]
        for rows in (seen[0]["h"], seen[1]["h"])
    ]
    assert strip[0] == strip[1]
    assert all(row[2] for row in seen[1]["h"])  # each point kept an exemplar
    span_ids = {e[2] for rows in seen[1].values() for row in rows for e in row[2]}
    assert span_ids - {None}  # the span's exemplars carry its ids
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_reader_added_after_the_dicts_were_learnt() -> None:
    """A reader added later gets every later record, as with the SDK's own methods."""
    seen = []
    for direct in (False, True):
        first = InMemoryMetricReader()
        provider = make_provider(first)
        recorders = instruments(provider, direct)
        record_all(recorders, RECORDS)
        second = InMemoryMetricReader()
        provider.add_metric_reader(second)
        record_all(recorders, RECORDS)
        seen.append((points(first), points(second)))
    assert seen[0] == seen[1]
    assert seen[1][1]["c"]


def counting_plain(
    monkeypatch: pytest.MonkeyPatch, provider: MeterProvider
) -> tuple[Recorders, dict[str, list[float]]]:
    """Direct recorders of a counter, an up-down counter and a histogram, and the values of
    the records that went through each instrument's own method (the SDK's path)."""
    meter = provider.get_meter("test")
    made = {
        "c": meter.create_counter("c"),
        "u": meter.create_up_down_counter("u"),
        "h": meter.create_histogram("h"),
    }
    plain: dict[str, list[float]] = {name: [] for name in made}
    for name, instrument in made.items():
        method = "record" if name == "h" else "add"
        own = getattr(instrument, method)

        def counted(amount: float, attributes: Any, own: Any = own, name: str = name) -> None:
            plain[name].append(amount)
            own(amount, attributes)

        monkeypatch.setattr(instrument, method, counted)
    return {name: direct_recorder(i) for name, i in made.items()}, plain


def test_a_remembered_dicts_later_records_skip_the_sdks_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shortcut is taken: of a dict's records, only the first goes through the
    instrument's own method (which learns where it goes); so do the records the SDK would
    refuse or treat apart (NaN; a negative value, except on an up-down counter; not zero nor
    a fraction), every record of a mapping that is not a plain dict, and the first record of
    each other dict."""
    recorders, plain = counting_plain(monkeypatch, make_provider(InMemoryMetricReader()))
    frozen = MappingProxyType(dict(FAN))
    records = [(1, FAN), (2, FAN), (math.nan, FAN), (-4, FAN), (0, FAN), (0.5, FAN)]
    records += [(5, JOIN), (6, JOIN), (7, frozen), (8, frozen), (9, FAN)]
    record_all(recorders, records)
    refused = [1, math.nan, -4, 5, 7, 8]
    assert (repr(refused), repr([1, math.nan, 5, 7, 8]), repr(refused)) == (
        repr(plain["c"]),
        repr(plain["u"]),
        repr(plain["h"]),
    )


def test_a_reader_added_sends_the_next_record_through_the_sdk_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader added after a dict was learnt: its next record takes the SDK's path (which
    gives the new reader its aggregation) and learns again; the records after it are direct."""
    provider = make_provider(InMemoryMetricReader())
    recorders, plain = counting_plain(monkeypatch, provider)
    record_all(recorders, [(1, FAN), (2, FAN)])
    provider.add_metric_reader(InMemoryMetricReader())
    record_all(recorders, [(3, FAN), (4, FAN)])
    assert {"c": [1, 3], "u": [1, 3], "h": [1, 3]} == plain


def test_a_dict_dropped_after_its_records_is_never_taken_for_a_later_one() -> None:
    """Dicts made for a few records each and then dropped (a later one may be given the
    same ``id``): each one's records land on its own points, as through the SDK."""
    seen = []
    for reader, recorders in both(InMemoryMetricReader):
        for n in range(50):
            attributes = {"stage": f"s{n}"}
            record_all(recorders, [(1, attributes), (n, attributes)])
            del attributes
        seen.append(points(reader))
    assert seen[0] == seen[1]
    assert ({"stage": "s49"}, (50, None, None, None, None, None), ()) in seen[1]["c"]
