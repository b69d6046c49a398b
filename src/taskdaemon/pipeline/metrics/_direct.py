"""A synchronous instrument's records handed to the OTel SDK's aggregations directly.

Each record through the SDK's public ``Counter.add`` / ``Histogram.record`` builds a
``Measurement`` (whose construction cleans the attribute mapping), asks the exemplar filter,
and for every reader and view copies the attributes, hashes them (a sorted walk) and looks the
aggregation up, before the aggregation adds the value: about five times the aggregation's own
work. taskdaemon records every stage and run with one of a few cached attribute dicts, so all
of that gives the same answer each time. :func:`direct_recorder` returns a callable that remembers,
per attribute dict, the aggregations the SDK chose for it, and hands each later record to
them as the SDK would: the same ``Measurement`` fields, the same ``aggregate`` calls, in the
same order, so the same data points.

A record takes the SDK's own path whenever the shortcut might differ from it: the first
record of an attribute dict (which makes the aggregations), a value the SDK would refuse (it
logs why), a disabled meter, an exemplar the filter wants sampled (the reservoir reads the
cleaned attributes), a reader added or removed since, a view that keeps only some attribute
keys or an aggregation reset at collection (delta temporality: the SDK then aggregates under
its lock), the cardinality overflow, an aggregation that is no longer the one the SDK holds,
and any instrument, consumer or storage class that is not exactly the SDK's (a subclass, an
API no-op or proxy instrument, another SDK version's layout): for those the recorder is the
instrument's own ``add`` or ``record``. The SDK is imported only when the instrument is one
of its own, so the API-only callers (``taskdaemon run``'s no-op meter) never load it.

The shortcut reads the SDK's private classes, so it is on only for the SDK minor versions
its tests compared it against (:data:`CHECKED_SDK`): another version, which may aggregate
differently under the same names, records through the public methods until those tests
have run against it and its minor version is added here.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from time import time_ns
from typing import Any

__all__ = ["CHECKED_SDK", "direct_recorder", "sdk_checked"]

#: The SDK minor versions the shortcut was compared against (its tests, in
#: ``tests/pipeline_metrics_direct_test.py``).
CHECKED_SDK = ("1.45.",)

#: The SDK's module that defines its synchronous instruments.
_SDK_INSTRUMENTS = "opentelemetry.sdk.metrics._internal.instrument"

#: Attribute dicts remembered per instrument (taskdaemon's are capped by the label guard).
_REMEMBERED_MAX = 100_000

Recorder = Callable[[float, Mapping[str, Any]], None]


def sdk_checked() -> bool:
    """Whether the installed SDK is a minor version in :data:`CHECKED_SDK`: the shortcuts that
    read its private classes (this module's, ``monitor/_shared_events``') are on only then."""
    from opentelemetry.sdk.version import __version__  # noqa: PLC0415

    return __version__.startswith(CHECKED_SDK)


def direct_recorder(instrument: Any) -> Recorder:
    """``instrument``'s ``add`` (counters) or ``record`` (histograms), or, for the SDK's own
    ``Counter``, ``UpDownCounter`` and ``Histogram``, a callable recording the same data
    points with less work (module docstring). Call it as ``(value, attributes)``."""
    plain: Recorder = getattr(instrument, "record", None) or instrument.add
    if type(instrument).__module__ != _SDK_INSTRUMENTS:
        return plain
    try:
        layout = _SdkLayout.load()
    except (ImportError, AttributeError):
        return plain
    kind = layout.kinds.get(type(instrument))
    consumer = getattr(instrument, "_measurement_consumer", None)
    if (
        kind is None
        or type(consumer) is not layout.consumer_class
        or not all(hasattr(consumer, name) for name in ("_reader_storages", "_sdk_config"))
        or not hasattr(instrument, "_is_enabled")
    ):
        return plain
    return _DirectRecorder(instrument, plain, layout, refuse_negative=kind).record


class _SdkLayout:
    """The SDK classes and functions the shortcut depends on, each checked to be the SDK's."""

    _loaded: _SdkLayout | None = None

    def __init__(self) -> None:
        instrument = sys.modules.get(_SDK_INSTRUMENTS)
        if instrument is None:
            raise ImportError(_SDK_INSTRUMENTS)
        if not sdk_checked():
            raise ImportError("the installed opentelemetry-sdk is not one the shortcut knows")
        from opentelemetry.sdk.metrics._internal import (  # noqa: PLC0415
            _view_instrument_match,
            measurement,
            measurement_consumer,
            metric_reader_storage,
        )

        #: Instrument class (the private ones the SDK's meter makes) -> whether it refuses
        #: negative values; only while its recording method is its public base's own.
        self.kinds: dict[type, bool] = {
            made: refuses
            for made, base, method, refuses in (
                (instrument._Counter, instrument.Counter, "add", True),
                (instrument._UpDownCounter, instrument.UpDownCounter, "add", False),
                (instrument._Histogram, instrument.Histogram, "record", True),
            )
            if getattr(made, method) is vars(base)[method]
        }
        self.measurement: Any = measurement.Measurement
        self.consumer_class: type = measurement_consumer.SynchronousMeasurementConsumer
        self.storage_class: Any = metric_reader_storage.MetricReaderStorage
        self.match_class: Any = _view_instrument_match._ViewInstrumentMatch
        self.hash_attributes: Callable[[Any], Any] = _view_instrument_match._hash_attributes
        from opentelemetry.context import get_current  # noqa: PLC0415

        self.get_current: Callable[[], Any] = get_current

    @classmethod
    def load(cls) -> _SdkLayout:
        if cls._loaded is None:
            cls._loaded = cls()
        return cls._loaded


class _Remembered:
    """What one attribute dict's records go to: the consumer's storages when it was learnt,
    each view match with the key and the aggregation found in it, and the
    attributes as the SDK cleaned them (what its ``Measurement`` would hold). ``targets`` is
    None when this dict's records always take the SDK's path. It keeps the dict alive, so no
    other dict can have its ``id`` while it is remembered."""

    __slots__ = ("attributes", "cleaned", "storages", "targets")

    def __init__(
        self,
        attributes: Mapping[str, Any],
        cleaned: Any = None,
        storages: Any = None,
        targets: tuple[tuple[Any, Any, Any], ...] | None = None,
    ) -> None:
        self.attributes = attributes
        self.cleaned = cleaned
        self.storages = storages
        self.targets = targets


class _DirectRecorder:
    """One SDK instrument's records, by its remembered attribute dicts (module docstring).
    An attribute dict must not change once recorded with (taskdaemon's are cached, never
    changed): the SDK copies it at every record, this remembers it."""

    __slots__ = ("_consumer", "_instrument", "_layout", "_plain", "_refuse_negative", "_remembered")

    def __init__(
        self, instrument: Any, plain: Recorder, layout: _SdkLayout, *, refuse_negative: bool
    ) -> None:
        self._instrument = instrument
        self._plain = plain
        self._layout = layout
        self._refuse_negative = refuse_negative
        self._consumer = instrument._measurement_consumer
        #: ``id(attributes)`` -> what its records go to.
        self._remembered: dict[int, _Remembered] = {}

    def record(self, amount: float, attributes: Mapping[str, Any]) -> None:
        """Record ``amount`` under ``attributes`` as the SDK's method would."""
        instrument = self._instrument
        remembered = self._remembered.get(id(attributes))
        if (
            remembered is None
            or remembered.targets is None
            or remembered.storages is not self._consumer._reader_storages
            or not instrument._is_enabled()
            or not math.isfinite(amount)
            or (amount < 0 and self._refuse_negative)
        ):
            self._record_plain(amount, attributes)
            return
        layout = self._layout
        now = time_ns()
        context = layout.get_current()
        cleaned = remembered.cleaned
        if self._consumer._sdk_config.exemplar_filter.should_sample(amount, now, cleaned, context):
            self._record_plain(amount, attributes)
            return
        targets = remembered.targets
        for match, key, aggregation in targets:
            if match._attributes_aggregation.get(key) is not aggregation:
                self._record_plain(amount, attributes)
                return
        # The SDK's Measurement, built without cleaning the attributes again: they are the
        # mapping the first record's cleaning made (only an exemplar would read them).
        measurement = layout.measurement(amount, now, instrument, context)
        object.__setattr__(measurement, "attributes", cleaned)
        for _, _, aggregation in targets:
            aggregation.aggregate(measurement, False)

    def _record_plain(self, amount: float, attributes: Mapping[str, Any]) -> None:
        """The SDK's own path; then learn (again) where this dict's records go, unless they
        always take this path or what was learnt still holds."""
        self._plain(amount, attributes)
        remembered = self._remembered.get(id(attributes))
        if remembered is not None and (remembered.targets is None or self._holds(remembered)):
            return
        if remembered is None and len(self._remembered) >= _REMEMBERED_MAX:
            return
        try:
            learnt = self._learn(attributes)
        except AttributeError:  # the SDK's layout is not the one this reads
            learnt = _Remembered(attributes)
        self._remembered[id(attributes)] = learnt

    def _holds(self, remembered: _Remembered) -> bool:
        """Whether the SDK still holds what was learnt: the same storages and aggregations."""
        if remembered.storages is not self._consumer._reader_storages:
            return False
        targets = remembered.targets or ()
        return all(match._attributes_aggregation.get(key) is found for match, key, found in targets)

    def _learn(self, attributes: Mapping[str, Any]) -> _Remembered:
        """Where the SDK put ``attributes``' last record; ``targets`` None when the shortcut
        could differ from its path (module docstring)."""
        layout = self._layout
        if type(attributes) is not dict:
            return _Remembered(attributes)  # a mapping type the SDK might read differently
        instrument = self._instrument
        storages = self._consumer._reader_storages
        cleaned = layout.measurement(0, 0, instrument, None, attributes).attributes
        key = layout.hash_attributes(dict(cleaned))
        targets: list[tuple[Any, Any, Any]] = []
        for storage in storages.values():
            if type(storage) is not layout.storage_class:
                return _Remembered(attributes)
            for match in storage._instrument_view_instrument_matches.get(instrument, ()):
                if (
                    type(match) is not layout.match_class
                    or match._reset_on_collect
                    or match._view._attribute_keys is not None
                ):
                    return _Remembered(attributes)
                aggregation = match._attributes_aggregation.get(key)
                if aggregation is None:  # the cardinality overflow took it
                    return _Remembered(attributes)
                targets.append((match, key, aggregation))
        if not targets:
            return _Remembered(attributes)
        return _Remembered(attributes, cleaned, storages, tuple(targets))
