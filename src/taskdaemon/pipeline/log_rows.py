"""Run-log rows handed straight to a row sink when no other ``logging`` handler wants them.

``run_log.RunLog`` writes its records through stdlib ``logging`` so that every handler a
process installed sees them (console, OTLP, pytest's ``caplog``). With ``taskdaemon run``'s
defaults the only taker of a lifecycle record is the span store's log writer: the console
drops the ``taskdaemon.run.lifecycle`` logger by name. For that case a record is built, run
through ``ContextFilter`` two or three times (console, run-log slot, store handler) and taken
apart again into a row, two records a stage. :func:`row_sink_for` tells when that detour can be
skipped and a :class:`LogRow` handed to the sink directly; the row is the one the store handler
would have written for the record.

The decision walks the handlers a record of ``logger`` at ``level`` would reach (the logger
and its ancestors, as ``Logger.callHandlers`` does) and answers the sink only when all of
these hold, else None (the ``logging`` path):

* the logger itself has no filters;
* every handler reached either drops the record for sure (its level is above ``level``, or one
  of its filters says it drops every record of that logger: a filter with a
  ``keeps_logger(name) -> bool`` method answering False), or leads to a row sink;
* a handler with a ``keeps_logger(name)`` method of its own drops the record when it answers
  False;
* a handler leads to a row sink when every filter it has declares ``keeps_logger(name)`` True
  and it has a ``row_sink`` attribute that is not None (the store handler), or a
  ``forwards_to`` attribute naming a handler that leads to one (the run-log slot of ``run``,
  ``cli/pending_logs.PendingLogHandler``, once the store is open; while it keeps records, it has
  none and the ``logging`` path keeps them in order);
* exactly one row sink is reached.

A filter without ``keeps_logger`` (a function, a third-party filter) or any other handler
(console at ``--log-level debug`` for decision records, ``OTelLogHandler``, ``caplog``) keeps
the ``logging`` path, so what those see is unchanged. Handlers and filters are read on every
call (a few attribute reads on the handful of loggers of a dotted name), so the answer is exact
at the time of the call: ``logging`` gives no notice of a change, and checking exactly that
nothing changed since an earlier answer costs more than the walk.

Decision (the caller's, ``run_log.RunLog``): the answer is kept for the records the monitor
handles in one turn of its record queue (``_record_queue.turn``: one worker batch, or one
caller's drain, settle or ``handle_batch`` slice) and asked again at the next turn. A logging
change made while a turn is under way thus takes effect from the next turn, a few milliseconds
later. That is no weaker in practice: a record is handled some time after it was made anyway,
so which configuration sees which record was already a matter of the queue's timing.

A row is a plain tuple of the ``logs`` table's twelve columns in its order (:data:`Row`); its
last item is the attributes' mapping, or already their redacted JSON when a producer found it
in :func:`encoded_attributes` (the writer then inserts the row as it is, bar the body's
redaction). The run log's lifecycle rows repeat a few mappings (``{"event": "stage.started",
"loop": "python"}``): their JSON is remembered by :func:`encode_attributes`, which the writer
calls on its thread, and only looked up on the producer's (the monitor's) thread, so a mapping
is redacted and encoded once per process rather than once per row, and never on the run's path.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final, NamedTuple, Protocol

from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.redaction import redact

__all__ = ["LogRow", "Row", "RowSink", "encode_attributes", "encoded_attributes", "row_sink_for"]

#: Encoded attribute mappings remembered at most (:func:`encode_attributes`).
_ENCODED_MAX: Final = 256
_encoded: dict[tuple[Any, ...], str] = {}
# A mapping encoded before a value in it was known as a secret is encoded again after.
MASKED.clears(_encoded)


class LogRow(NamedTuple):
    """One row of the span store's ``logs`` table, as the log writer queues it (attributes
    not yet redacted nor encoded: the writer does that on its thread). Read back, a row is a
    :class:`taskdaemon.pipeline.tracking.log_read.StoredLog`."""

    run_id: str
    time_ns: int
    severity: int
    level: str
    pipeline: Any
    stage: Any
    instance: Any
    attempt: Any
    span_id: Any
    scope: str
    body: str
    attributes: dict[str, Any]


#: A row as the writer queues it: a :class:`LogRow`, or a plain tuple of the same twelve
#: columns (cheaper to build) whose attributes may be their redacted JSON already.
Row = tuple[str, int, int, str, Any, Any, Any, Any, Any, str, str, dict[str, Any] | str]


class RowSink(Protocol):
    """What takes rows directly (``tracking.log_writer.SqliteLogWriter``)."""

    def write_row(self, row: Row) -> None:
        """Queue ``row``; never raises for a full or closed writer (it counts or drops)."""

    def write_rows(self, rows: list[Row]) -> None:
        """Queue ``rows``, in order, as :meth:`write_row` of each would."""


def _text_key(attributes: dict[str, Any]) -> tuple[Any, ...] | None:
    """The memo key of ``attributes`` when every value is a string or None (then equal keys
    mean equal redacted JSON), else None: ``True == 1`` and ``0.0 == -0.0`` would share a
    key while their JSON differs."""
    for value in attributes.values():
        if value is not None and type(value) is not str:
            return None
    return tuple(attributes.items())


def encode_attributes(attributes: dict[str, Any]) -> str:
    """The redacted JSON of a row's attributes, remembered (at most ``_ENCODED_MAX``, emptied
    when full) for mappings holding only strings and None: redaction is a pure function of
    the items, so a remembered text is the one a new walk would make."""
    key = _text_key(attributes)
    if key is None:
        return json.dumps(redact(attributes), default=str)
    encoded = _encoded.get(key)
    if encoded is None:
        encoded = json.dumps(redact(attributes), default=str)
        if len(_encoded) >= _ENCODED_MAX:
            _encoded.clear()
        _encoded[key] = encoded
    return encoded


def encoded_attributes(attributes: dict[str, Any]) -> str | None:
    """The JSON :func:`encode_attributes` remembers for ``attributes``, or None (not yet
    encoded, or not of the kind it remembers): a lookup, no redaction nor encoding. (The test
    of ``_text_key`` inline: this runs on the monitor's thread for every row.)"""
    for value in attributes.values():
        if value is not None and type(value) is not str:
            return None
    return _encoded.get(tuple(attributes.items()))


_DROPS: Any = object()  # the handler drops the record for sure
_NEEDS_RECORD: Any = object()  # the handler wants a real record


def _sink_of(handler: logging.Handler, name: str, level: int, depth: int = 0) -> Any:
    """The row sink ``handler`` leads to, or ``_DROPS``, or ``_NEEDS_RECORD``."""
    if level < handler.level:
        return _DROPS
    own = getattr(handler, "keeps_logger", None)  # a handler that skips loggers by name
    if own is not None and not own(name):
        return _DROPS
    for check in handler.filters:
        keeps = getattr(check, "keeps_logger", None)
        if keeps is None:
            return _NEEDS_RECORD
        if not keeps(name):
            return _DROPS
    sink = getattr(handler, "row_sink", None)
    if sink is not None:
        return sink
    target = getattr(handler, "forwards_to", None)
    if isinstance(target, logging.Handler) and depth < 4:
        found = _sink_of(target, name, level, depth + 1)
        # A forwarder whose target drops the record still took it: keep the logging path.
        return _NEEDS_RECORD if found is _DROPS else found
    return _NEEDS_RECORD


def row_sink_for(logger: logging.Logger, level: int) -> RowSink | None:
    """The one row sink that alone wants ``logger``'s records at ``level`` (module docstring),
    or None when a record must go through ``logging``. The caller has checked
    ``isEnabledFor``."""
    if logger.filters or logger.disabled:
        return None
    name = logger.name
    found: RowSink | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            sink = _sink_of(handler, name, level)
            if sink is _DROPS:
                continue
            if sink is _NEEDS_RECORD or found is not None:
                return None
            found = sink
        if not current.propagate:
            break
        current = current.parent
    return found
