"""A scheduled run's landing delay: how late it started against the time its schedule meant
(Airflow's "landing times").

``serve --pipeline`` gives each run it starts ``taskdaemon.pipeline.scheduled_at_ns`` on its run
span (epoch nanoseconds); the delay is the run span's start minus that. Runs no schedule started
have no such attribute, and no delay: ``-`` in every view, not ``0s``, which would claim a
schedule that was met.

Decisions:

* A delay is never negative: the schedule reads its due time on the monotonic clock and the
  run's start on the wall clock, so a step of the wall clock between the two could make a run
  "early"; it started on time, ``0s``.
* A value that is not a whole number of nanoseconds (a foreign producer's span, a bool) is no
  scheduled time: None, never an error, as every view reads spans from any source. Nor is one
  past a signed 64-bit integer of nanoseconds (the year 2262; OTLP's ``fixed64`` goes further,
  the store's INTEGER does not): a source's JSON can spell any integer, and 10**30 is past what
  a date can be (``runs show`` failed on it) and 10**400 past what a float can hold (so did
  ``--json`` and the run's page).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline import telemetry as t

__all__ = ["landing_delay", "late_by", "scheduled_at", "scheduled_ns"]

#: The first nanosecond past a signed 64-bit integer (the year 2262): OTLP's times are
#: ``fixed64``, but the store's ``runs.scheduled_ns`` is SQLite's INTEGER, which a larger
#: value would fail to bind, and with it the writer's whole batch of spans.
_PAST_INT64 = 2**63


def scheduled_ns(attributes: Mapping[str, Any]) -> int | None:
    """The epoch nanoseconds a run span's schedule meant its run to start at (what the store's
    ``runs.scheduled_ns`` holds), None when no schedule started it (or the attribute is not a
    whole number)."""
    value = attributes.get(t.PIPELINE_SCHEDULED_AT)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _PAST_INT64:
        return None
    return value


def scheduled_at(attributes: Mapping[str, Any]) -> float | None:
    """:func:`scheduled_ns` in epoch seconds."""
    value = scheduled_ns(attributes)
    return None if value is None else value / 1e9


def late_by(due: float | None, start: float) -> float | None:
    """Seconds from ``due`` (epoch seconds, None: no schedule) to ``start``, at least 0."""
    return None if due is None else max(0.0, start - due)


def landing_delay(attributes: Mapping[str, Any], start: float) -> float | None:
    """Seconds from the scheduled time in a run span's ``attributes`` to the run's ``start``
    (epoch seconds), at least 0; None for a run no schedule started."""
    return late_by(scheduled_at(attributes), start)
