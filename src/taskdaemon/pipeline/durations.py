"""Durations and points in time as people write and read them.

The one way every view writes a duration: the ``run`` summary and progress lines,
``runs list``, ``runs show`` and the DAG labels all call :func:`format_duration`.

Decision: compact units without a space (``850ms``, ``12.3s``, ``4m05s``, ``2h03m``), as
people type them in ``--since 10m`` and in pipeline files' ``timeout: 30s``. Each unit is
chosen after rounding, so 0.9996 s reads ``1.0s``, never ``1000ms``.

Parsing (:func:`parse_age`, :func:`parse_when`; queries, retention, the web API): ages are
``500ms``, ``30s``, ``10m``, ``2h``, ``30d``, ``2w``. Points in time (``--since`` /
``--until``): an age meaning "that long before now", or an ISO 8601 date/time (naive means
local time).

Decision: an age carries its unit. A bare number (``report --since 7``) was read as seconds,
silently, where its writer meant days as often as seconds: the report then said there were no
runs in its window, an answer that looks right. It is refused in one line that asks which
unit (``7 what? write 7s, 7m, 7h or 7d``), in every option and query that takes an age
(``runs list`` and ``report``'s ``--since`` / ``--until``, ``retention --max-age``, the web
API's ``since`` / ``until``). Two exceptions: zero, the same in every unit, and
``TASKDAEMON_RETENTION_MAX_AGE`` (``bare_seconds=True``), documented as seconds since it was
added and set once in a deployment, where refusing it now would turn a working retention off
with one warning (``run``, ``serve``).

Bounds: an age is at most a hundred years (``36500d``) and a point in time lies between 1900
and 2200. The span store keeps times as signed 64-bit nanoseconds (1678 to 2262) and a report
reaches back a second window as long as the first, so anything wider would overflow there, as
a traceback or an HTTP 500, instead of being refused here in one line.

A point in time as a span attribute or timestamp is integer epoch nanoseconds
(:func:`epoch_ns`), one conversion for the spans the monitor writes and the live records the
views read before those spans are stored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime

from taskdaemon.pipeline.quoting import quote

__all__ = [
    "epoch_ns",
    "format_duration",
    "format_run_duration",
    "log_time",
    "parse_age",
    "parse_when",
    "utc_offset",
]

_MAX_AGE_DAYS = 36500
_EARLIEST = -2208988800.0  # 1900-01-01T00:00Z
_LATEST = 7258118400.0  # 2200-01-01T00:00Z


def epoch_ns(seconds: float) -> int:
    """Epoch seconds as integer nanoseconds, exact to the nanosecond."""
    # Whole and fractional parts apart: ``seconds * 1e9`` on an epoch float loses nanoseconds
    # (61 significant bits do not fit a double), which would skew exact time attributes.
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def format_duration(seconds: float | None) -> str:
    """``850ms``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` for None (not measured, still open).

    Negative values (clock steps) read as zero.
    """
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    tenths = round(seconds * 10)
    if tenths < 600:
        return f"{tenths / 10:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m"


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.ASCII)


def format_run_duration(duration: float | None, at_least: float | None) -> str:
    """A run's duration as every view writes it: :func:`format_duration` of ``duration``, or,
    for an interrupted run (no end, ``at_least`` its start to its last sign of life,
    ``records.lasted_at_least``), ``at least 5.2s``. Words, not ``>=5.2s`` or ``5.2s+``: they
    read the same in any terminal, font and screen reader, and cannot pass for an exact
    figure; the few interrupted rows pay their eight extra columns (only ``runs list``'s
    narrow table, short of them, writes ``≥5.2s``)."""
    if duration is None and at_least is not None:
        return f"at least {format_duration(at_least)}"
    return format_duration(duration)


def local_time(epoch: float | None) -> str:
    """Epoch seconds as local ``YYYY-MM-DD HH:MM:SS`` (``-`` for None): how ``runs list``,
    ``runs show`` and the web page read without its script write a point in time, beside the
    zone :func:`utc_offset` names."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def log_time(time_ns: int) -> str:
    """``time_ns`` (nanoseconds since the epoch) as a log record's time: UTC, ISO 8601, to the
    millisecond (``2026-12-05T15:38:00.410Z``). The one way the log lines (``logs``: text, and
    JSON's ``ts``) and ``taskdaemon logs`` (its lines, and ``--json``'s ``ts``) write it, so a
    record reads the same in both (the store keeps its time as the handlers' ``created``)."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_ns // 1_000_000_000))
    return f"{whole}.{time_ns // 1_000_000 % 1000:03d}Z"


def utc_offset(epoch: float) -> str:
    """The local zone's offset from UTC at ``epoch``, as the views name the zone of the local
    times they write: ``UTC+09:00``, ``UTC-03:30``."""
    offset = datetime.fromtimestamp(epoch).astimezone().strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:5]}"


def parse_age(text: str, *, bare_seconds: bool = False) -> float:
    """Seconds in ``text`` (``30d``, ``12h``); ValueError naming the text otherwise, a bare
    number other than zero too unless ``bare_seconds`` (see the module docstring)."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"not a duration: {quote(text)} (use e.g. 30s, 10m, 2h, 30d)")
    number = match.group(1)
    if match.group(2) is None and not bare_seconds and float(number) != 0.0:
        number = number if len(number) <= 12 else "N"  # a long one is quoted once, not five times
        raise ValueError(
            f"not a duration: {quote(text)} ({number} what? write {number}s, {number}m, "
            f"{number}h or {number}d)"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not seconds <= _MAX_AGE_DAYS * 86400.0:  # NaN-proof: "9" * 400 is inf
        raise ValueError(
            f"not a duration: {quote(text)} (at most {_MAX_AGE_DAYS}d, a hundred years)"
        )
    return seconds


def parse_when(text: str, *, clock: Callable[[], float] = time.time) -> float:
    """Epoch seconds of ``text``: an age before now (``1h``) or an ISO 8601 date/time, from
    1900 to 2200 (see the module docstring)."""
    if _AGE.match(text):
        when = clock() - parse_age(text)  # an age over the limit: its own error
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError):
            raise ValueError(
                f"not a time: {quote(text)} (use an age such as 1h or 30d, or ISO 8601 such as "
                "2025-01-31T12:00)"
            ) from None
    if not _EARLIEST <= when <= _LATEST:
        raise ValueError(f"not a time: {quote(text)} (out of range: 1900 to 2200)")
    return when
