"""A failing collector said while it fails: one line when an exporter's exports start to fail,
one when they succeed again, none in between.

The exporters' own lines about a failed export are folded away (``exporter_logs``), and what
is lost is counted and said at exit (``span_losses``). A long-lived process (``serve``, ``ui``,
a long ``run``) would then say nothing for hours: :class:`ExportStreak`, one per wrapped
exporter (``cli/telemetry.py``, ``cli/observed_log_exporter.py``,
``cli/observed_metric_exporter.py``), says the first failed export of a streak at once, with
its cause and where the loss is counted, and the first success after it, with how much the
streak lost. It is the span store's rule for a full disk (docs/span-store.md).

Decision: a streak is the one thing a wrapped exporter tells of each export's outcome, and it
passes the outcome on to where the signal's losses are counted (``record``:
``span_losses.ExportFailures.record``, ``export_health.ExportHealth.record``), so that no wrapper
can count a loss and leave its streak unsaid, or the other way round.

Decision: nothing starts a streak once the telemetry shuts down (``closing`` is set): the
failures of the last exports are the exit line's, so a short run against a dead collector
says that line alone. A streak said before the shutdown still says its recovery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, Literal

from taskdaemon.pipeline.wording import counted

__all__ = ["OFF", "ExportStreak", "Signal", "Tally"]

#: The exported signals, as the OTel variables name them (``OTEL_TRACES_EXPORTER``...).
Signal = Literal["traces", "logs", "metrics"]

#: Where an exporter's outcomes are counted: its name, what one export lost, and the error
#: (``None``: the export went through).
Tally = Callable[[str, int, str | None], None]

#: The error of each export of an exporter that could not be built (:meth:`ExportStreak.off`),
#: then the short cause: the line at exit (``span_losses``) said ``otlp: export failed`` of an
#: exporter that never ran, and sent the reader to a collector that was never called.
OFF: Final = "off, it could not be built"

#: Per signal: the logger of its lines (those of its line at exit), what is exported, what a
#: failed export's count counts, and the series that counts it (metric exports have none: said
#: at exit only).
_SAID: Final[dict[str, tuple[str, str, str, str | None]]] = {
    "traces": ("taskdaemon.spans", "span", "span", "taskdaemon_spans_export_failed_total"),
    "logs": (
        "taskdaemon.logs",
        "log record",
        "log record",
        "taskdaemon_logs_export_failed_total",
    ),
    "metrics": ("taskdaemon.metrics", "metric", "metric export", None),
}


class ExportStreak:
    """The streak of failed exports of one exporter (``name``) of one signal, each outcome
    passed on to ``record`` (``name``, what was lost, the error; ``None``: it went through).
    The export thread calls :meth:`failed` and :meth:`succeeded`; thread-safe all the same (a
    flush may export from another thread). ``causes`` is ``ExportFailureFilter.take_cause``:
    the exporters return a bare failure, their folded line said why."""

    def __init__(
        self,
        signal: Signal,
        name: str,
        closing: threading.Event,
        causes: Callable[[str], str | None],
        record: Tally,
    ) -> None:
        logger, self._what, self._noun, self._series = _SAID[signal]
        self._log = logging.getLogger(logger)
        self._signal = signal
        self._name = name
        self._closing = closing
        self._causes = causes
        self._record = record
        self._lock = threading.Lock()
        self._lost: int | None = None  # None: no streak said
        self._off: str | None = None  # the error of every export once the exporter is off

    def failed(self, count: int, error: str) -> None:
        """One export lost ``count`` (spans, records, or the export itself); ``error`` is the
        wrapper's cause, said when the exporter's folded line gave none; an exporter that is
        off (:meth:`off`) records its own error instead."""
        self._record(self._name, count, self._off or error)
        cause = self._causes(self._signal) or error
        with self._lock:
            if self._lost is not None:
                self._lost += count
                return
            if self._closing.is_set():
                return
            self._lost = count
        counter = f"counted in {self._series} and " if self._series else ""
        self._log.warning(
            "%s exports to %s fail: %s (what is lost is %ssaid at exit)",
            self._what,
            self._name,
            cause,
            counter,
        )

    def off(self, reason: str, short: str) -> None:
        """The exporter could not be built (``cli/unbuilt_exporters.py``): say so now, in one
        line naming it and why, and nothing more while its stand-in fails every export (no
        streak line, no recovery: each loss is counted, under :data:`OFF` and ``short``, the
        cause in a word, and the total said at exit)."""
        with self._lock:
            self._lost = 0
            self._off = f"{OFF} ({short})"
        counter = f"counted in {self._series} and " if self._series else ""
        self._log.warning(
            "%s exporter %s is off, it could not be built: %s (what it would have exported "
            "is %ssaid at exit)",
            self._what,
            self._name,
            reason,
            counter,
        )

    def succeeded(self) -> None:
        """An export went through: ends a streak that was said, in one line."""
        self._record(self._name, 0, None)
        with self._lock:
            lost, self._lost = self._lost, None
        if lost is not None:
            self._log.warning(
                "%s exports to %s succeed again; %s lost while they failed",
                self._what,
                self._name,
                counted(lost, self._noun),
            )
