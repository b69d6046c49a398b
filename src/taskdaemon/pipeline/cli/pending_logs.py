"""Where a run's log records and its commands' output wait while telemetry loads: a root-logger
handler and output sink standing in for the span store's log writer (``cli/deferred.py``, "Run
logs land in their place").

:class:`PendingLogHandler` offers each record of a run, and each output batch, to its ``keep``
(``DeferredMonitor.keep``, which keeps it among the engine events until the monitor has them
all); what is not kept goes to the store's handler and writer once they are attached, and
nowhere before. Its ``flush`` waits for the load while it stands in on the root logger, so a
debug dump or the debugger's ``logs`` reads a store that has every row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from logging import LogRecord
from typing import TYPE_CHECKING

from taskdaemon.pipeline.logs import ContextFilter

if TYPE_CHECKING:
    from taskdaemon.pipeline.output_sinks import OutputBatch, OutputSink

__all__ = ["PendingLogHandler"]


class PendingLogHandler(logging.Handler):
    """A root-logger handler and output sink standing in for the span store's log writer (see
    the module docstring): a record of a run, or a batch of a command's output, is offered to
    ``keep`` (``DeferredMonitor.keep``, which keeps it among the engine events until the
    monitor has them all) and, when not kept, passed to the store's handler or writer once
    attached. ``dropped`` counts what was kept past the bound."""

    def __init__(
        self, keep: Callable[[LogRecord | OutputBatch], bool], settle: Callable[[], object]
    ) -> None:
        super().__init__()
        self.addFilter(ContextFilter())  # the ids are those of the moment the record is logged
        self._keep = keep
        self._settle = settle
        self._target: logging.Handler | None = None
        self._sink: OutputSink | None = None
        self.attached = False  # the store's handler came (else nothing was ever to be stored)
        self.dropped = 0

    def emit(self, record: LogRecord) -> None:
        """Keep ``record`` or pass it on, when it belongs to a run (``logging`` holds the lock)."""
        if getattr(record, "run_id", None) is not None and not self._keep(record):
            self.pass_on(record)

    def write_output(self, batch: OutputBatch) -> None:
        """Keep ``batch`` or pass it on (the ``output_sinks.OutputSink`` protocol)."""
        if not self._keep(batch):
            self.pass_on(batch)

    def pass_on(
        self, item: LogRecord | OutputBatch, sinks_then: tuple[OutputSink, ...] | None = None
    ) -> None:
        """Pass ``item`` to the store's writer (dropped when the store never opened, or closed).
        A batch kept while ``sinks_then`` were the output sinks goes to every sink registered
        since too (the OTel log export's, made with the monitor): those had it from nobody."""
        if isinstance(item, LogRecord):
            if (target := self._target) is not None:
                target.handle(item)
            return
        if (sink := self._sink) is not None:
            sink.write_output(item)
        if sinks_then is not None:
            from taskdaemon.pipeline.output_sinks import output_sinks  # noqa: PLC0415

            for later in output_sinks():
                if later is not self and later not in sinks_then:
                    later.write_output(item)

    @property
    def forwards_to(self) -> logging.Handler | None:
        """The attached handler records go to once they are not kept, None before
        (``log_rows.row_sink_for`` reads it)."""
        return self._target

    def attach(self, handler: logging.Handler, sink: OutputSink) -> None:
        """Pass the records not kept to ``handler``, and the output batches to ``sink``."""
        self._target, self._sink = handler, sink
        self.attached = True

    def flush(self) -> None:
        """Flush the attached handler: the store's log writer batches its rows, and a debug
        dump or the debugger's ``logs`` reads the store right after a flush. While this stands
        in on the root logger (a run whose telemetry may still load), first wait until nothing
        is kept (``settle``: ``DeferredMonitor.wait``); not once removed, so ``logging``'s
        flush at exit never waits for a load that will not come."""
        if self in logging.getLogger().handlers:
            self._settle()
        target = self._target
        if target is not None:
            target.flush()

    def detach(self, handler: logging.Handler, sink: OutputSink) -> None:
        """Stop passing records and batches on (the store is closing)."""
        if self._target is handler:
            self._target = None
        if self._sink is sink:
            self._sink = None
