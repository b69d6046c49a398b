"""How the run log's records reach their handlers: as ``logging`` records, or as rows straight
to the span store's log writer.

When the span store's log writer is the only handler that wants a record (``taskdaemon run``'s
lifecycle records: the console drops them), the record is not built: its row goes straight
to the writer (``log_rows.row_sink_for``), the very row the store handler would have written.
Any other handler wanting it (console, OTLP, ``caplog``) keeps the ``logging`` path.

Decision: ``row_sink_for``'s answer is kept for the records the monitor handles in one turn of its
record queue (one worker batch, or one caller's drain, settle or ``handle_batch`` slice:
``_record_queue.turn``) and asked again at the next turn, not on every row. Why: the answer depends
on the whole logging configuration, ``logging`` gives no notice of a change, and checking exactly
that nothing changed costs more than the walk itself (benchmarks/README.md, "Round 15 (runlog12):
remembering `row_sink_for`'s answer, tried and dropped (2026-12-01)"); asking once a turn costs the
walk once per (logger, level) and batch. What it changes: a logging change made while a turn is
under way takes effect from the next turn, a few milliseconds later. That is no weaker in practice:
a record is handled some time after it was made anyway, so which configuration sees which record
was already a matter of the queue's timing. Outside a turn (the hook called directly) the answer is
asked for every row.

Decision: within a turn, the direct rows are kept and handed to the writer together when the
turn ends (``SqliteLogWriter.write_rows``, called by the queue at the end of the turn), not one
``write_row`` each: one locked hand-over a turn instead of two a stage. Their order is kept:
the rows go in the order they were made, and before this hook writes anything through
``logging`` (a record another handler wants, which the store handler then queues at once) the
rows made before it are handed over first. Rows other code logs meanwhile (another thread, a
hook of its own) may land before the turn's rows: their order against the monitor's records was
already a matter of the queue's timing, as above. A ``flush`` that needs the rows settles the
monitor's queue first, and a turn ends (its rows handed over) before the queue's lock goes to
the thread that waits for it.

A logging handler that raises out of its ``emit`` (stage code adds one to the root logger) raised
out of the run log's hook: the monitor's worker logged that failure, through the same handler,
and the exception ended the thread that forwards ``taskdaemon run``'s kept records, so the run
never ended (``tests/reliability_hostile_objects_test.py``). Decision: the record is dropped for
the handlers after that one, which Python's ``logging`` decides anyway; one line says it, once
(``_refused``): the run's own records (spans, the store's log rows) are written before stage
code's handlers see them, so they are kept.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from opentelemetry.trace import SpanContext

from taskdaemon.pipeline._record_queue import turn as _turn
from taskdaemon.pipeline.events import EngineEvent
from taskdaemon.pipeline.log_levels import severity_number
from taskdaemon.pipeline.log_rows import Row, RowSink, encoded_attributes, row_sink_for
from taskdaemon.pipeline.logs import has_ambient_ids

__all__ = ["UNKNOWN", "RunLogEmitter"]

UNKNOWN: Any = object()  # no answer kept yet for this turn
_logger = logging.getLogger(__name__)


class RunLogEmitter:
    """Writes the run log's records and rows (see the module docstring); ``run_log.RunLog``
    decides which."""

    def __init__(self) -> None:
        # ``row_sink_for``'s answers of one turn (module doc), by (logger, level), with the
        # turn's token: one tuple, replaced whole, so an answer is never read under another
        # turn's token.
        self._sinks: tuple[object, dict[tuple[logging.Logger, int], RowSink | None]] = (
            UNKNOWN,
            {},
        )
        # The direct rows of the turn under way, not yet handed to their sink (module doc).
        self._rows: list[Row] = []
        self._rows_sink: RowSink | None = None
        #: Records a logging handler raised on (``_refused``).
        self.refused = 0

    def _hand_over(self) -> None:
        """Hand the rows kept so far to their sink (at a turn's end, and before anything else
        is written, so that the rows keep their order). Never raises: ``write_rows`` does not."""
        rows = self._rows
        if rows:
            self._rows = []
            sink = self._rows_sink
            if sink is not None:
                sink.write_rows(rows)

    def _sink(self, logger: logging.Logger, level: int, token: list[Any] | None) -> RowSink | None:
        """``row_sink_for``'s answer: kept for the turn of ``token`` (module doc), asked for
        every row outside a turn."""
        if token is None:
            return row_sink_for(logger, level)
        sinks = self._sinks
        if sinks[0] is not token:
            sinks = self._sinks = (token, {})
            token.append(self._hand_over)  # this turn's rows, at its end
        sink: RowSink | None = sinks[1].get((logger, level), UNKNOWN)
        if sink is UNKNOWN:
            sink = sinks[1][logger, level] = row_sink_for(logger, level)
        return sink

    def _emit(  # noqa: PLR0917 - every call passes the same seven, in this order
        self,
        logger: logging.Logger,
        level: int,
        event: EngineEvent,
        span: SpanContext | None,
        message: str,
        args: tuple[Any, ...],
        fields: dict[str, Any],
    ) -> None:
        """Write one record of ``event``: a row to the turn's sink when only it wants the record
        (module doc), else a ``logging`` record with the event's time and ids."""
        pipeline = event.pipeline
        pipeline_name = pipeline if isinstance(pipeline, str) else pipeline.name
        stage = getattr(event, "stage", None)
        instance = getattr(event, "instance", None)
        attempt = getattr(event, "attempt", None)
        valid = span is not None and span.is_valid
        token = _turn.token
        sink = self._sink(logger, level, token)
        # A field left None is stamped by ContextFilter from the thread's context; the row
        # path takes over only where that context has nothing to stamp (the same row).
        if sink is not None and (
            (valid and stage is not None and instance is not None and attempt is not None)
            or not has_ambient_ids()
        ):
            # A plain tuple, its attributes' JSON when the writer has it already (log_rows).
            row: Row = (
                event.run_id,
                int(event.at * 1e9),
                severity_number(level),
                logging.getLevelName(level),
                pipeline_name,
                stage,
                instance,
                attempt,
                format(span.span_id, "016x") if valid and span is not None else None,
                logger.name,
                message % args if args else message,
                encoded_attributes(fields) or fields,
            )
            if token is None:
                if self._rows:  # rows of an earlier turn first (one cut short by an error)
                    self._hand_over()
                sink.write_row(row)
            else:  # handed over with the turn's other rows (module doc)
                if sink is not self._rows_sink:
                    self._hand_over()
                    self._rows_sink = sink
                self._rows.append(row)
            return
        if self._rows:  # rows made before this record are stored before it
            self._hand_over()
        extra: dict[str, Any] = {
            "run_id": event.run_id,
            "pipeline": pipeline_name,
            "stage": stage,
            "instance": instance,
            "attempt": attempt,
        }
        if valid and span is not None:
            extra["trace_id"] = format(span.trace_id, "032x")
            extra["span_id"] = format(span.span_id, "016x")
        extra.update(fields)
        record = logger.makeRecord(
            logger.name, level, __file__, 0, message, args, None, extra=extra
        )
        record.created = event.at
        record.msecs = (event.at - int(event.at)) * 1000
        try:
            logger.handle(record)
        except Exception as error:  # a handler of stage code's (module docstring)
            self._refused(type(error).__name__)

    def _refused(self, error: str) -> None:
        """Say, once per run log and in one line, that a logging handler raised ``error`` on
        one of its records."""
        self.refused += 1
        if self.refused == 1:
            with contextlib.suppress(Exception):  # that handler may raise on this one too
                _logger.warning(
                    "a logging handler raised %s on a record of the run log: the handlers "
                    "after it miss that record and any other it raises on; the run goes on",
                    error,
                )
