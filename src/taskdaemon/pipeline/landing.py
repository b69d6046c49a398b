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
  scheduled time: None, never an error, as every view reads spans from any source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline import telemetry as t

__all__ = ["landing_delay", "scheduled_at"]


def scheduled_at(attributes: Mapping[str, Any]) -> float | None:
    """The epoch seconds a run span's schedule meant its run to start at, None when no
    schedule started it (or the attribute is not a whole number)."""
    value = attributes.get(t.PIPELINE_SCHEDULED_AT)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return value / 1e9


def landing_delay(attributes: Mapping[str, Any], start: float) -> float | None:
    """Seconds from the scheduled time in a run span's ``attributes`` to the run's ``start``
    (epoch seconds), at least 0; None for a run no schedule started."""
    due = scheduled_at(attributes)
    return None if due is None else max(0.0, start - due)
