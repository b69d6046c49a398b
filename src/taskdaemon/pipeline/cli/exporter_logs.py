"""The exporters' own log lines: none about a failed export, unless asked; one per problem.

A dead, erring or hanging collector makes the OTLP exporters and the SDK's batch processors log
two to four long lines for every batch (a retry's back-off, the final failure, a traceback for
gRPC's ``UNKNOWN``). What they say is already counted and said by taskdaemon: one warning line
at exit per signal (``N spans were not exported (otlp: export failed)``, and the same for log
records and metric exports: ``span_losses``), while the process lives one line when an
exporter's exports start to fail, with the cause these lines gave (kept by the filter), and one
when they succeed again (``cli/export_streaks.py``), the ``taskdaemon_*_export_failed_total``
series and ``/readyz``. :class:`ExportFailureFilter` keeps those lines off every handler, unless the
log level is ``debug`` or below (``--log-level debug``), where they say why. It goes first on
the loggers of :data:`EXPORTER_LOGGERS` when telemetry is built (``cli/telemetry.py``);
:class:`RepeatedLogFilter` then keeps the first of each problem per window of what is left and
says how many it dropped when the next passes.

Decision: a line is folded by its exact message template (:data:`EXPORT_FAILURE_TEMPLATES`,
those of the installed SDK's exporters), never by its level or logger, so that every other
warning of these loggers (a full queue dropping spans, a batch too large to send, an exporter
used after its shutdown, an exporter that raised) is still shown: none of those is a collector
being down, and some are not counted anywhere else. Every failure a folded line tells of is
counted: the span, log and metric exporters are each wrapped to count their failed exports
(``cli/telemetry.py``).

Decision: the SDK's own ``DuplicateFilter`` comes off those loggers when ours goes on. It
compares a record with the one before it by logger module, level and message template, its
arguments left out, so the gRPC exporters of traces and of logs, which share one logger and
one template, hid each other: a run whose traces and logs went to a dead collector said that
one of them failed, never both. Ours does what it was for (no endless repeats of a failing
export's line, even when the log line is itself exported) per signal, and counts what it drops.

Decision: no filter hides an endpoint's password. The gRPC exporter names its endpoint without
the scheme (``user:password@collector:4317``), which the formatters' redaction does not take
(it needs ``scheme://``), but no such endpoint reaches an exporter: the endpoint variables,
the only place an exporter takes one from (taskdaemon passes none), are refused at start when
they hold a user or password (``settings_parsers.endpoint``), and a proxy's credentials
(``grpc_proxy``, ``https_proxy``) are in none of these lines, the proxy named by its address
(``tests/pipeline_monitor_cli_exporter_logs_test.py``). What the exporters' lines give as a
failure's cause, kept for taskdaemon's own line, is still redacted in both forms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from taskdaemon.pipeline.redaction import redact_endpoint_passwords, redact_text

__all__ = [
    "EXPORTER_LOGGERS",
    "EXPORT_FAILURE_TEMPLATES",
    "ExportFailureFilter",
    "RepeatedLogFilter",
    "drop_sdk_duplicate_filters",
    "install_export_failure_filter",
    "install_repeated_log_filter",
]

_FilterT = TypeVar("_FilterT", bound=logging.Filter)

#: The loggers the exporters and the SDK's export paths write their failures to.
EXPORTER_LOGGERS: tuple[str, ...] = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)


#: Per template, where its arguments hold the cause of the failure (a refused connection, an
#: HTTP status and reason, a gRPC code and details) and the gRPC exporters' signal. The HTTP
#: exporters' last line after retries, :data:`_GAVE_UP`, has none (the retry's line before it
#: had, if there was a retry).
_CAUSES: Final[dict[str, tuple[tuple[int, ...], int | None]]] = {
    "Transient error %s encountered while exporting %s batch, retrying in %.2fs.": ((0,), None),
    "Failed to export %s batch code: %s, reason: %s": ((1, 2), None),
    "Transient error %s encountered while exporting %s to %s, retrying in %.2fs. "
    "Error details: %s": ((0, 4), 1),
    "Failed to export %s to %s, error code: %s, error details: %s": ((2, 3), 0),
}
_GAVE_UP: Final = "Failed to export %s batch due to timeout, max retries or shutdown."
#: The message templates of the exporters' lines about an export that failed or is being
#: retried: OTLP/HTTP's (the common client's, for every signal) and OTLP/gRPC's, those that
#: give a cause, the HTTP exporters' last line, and the retry cut by a shutdown.
EXPORT_FAILURE_TEMPLATES: Final = frozenset(
    {*_CAUSES, _GAVE_UP, "Shutdown in progress, aborting retry."}
)
#: The OTLP/HTTP exporters' loggers, one a signal (the gRPC ones share one: the signal is an
#: argument).
_HTTP_SIGNALS: Final = {
    "opentelemetry.exporter.otlp.proto.http.trace_exporter": "traces",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter": "metrics",
    "opentelemetry.exporter.otlp.proto.http._log_exporter": "logs",
}


class ExportFailureFilter(logging.Filter):
    """Drops the records of :data:`EXPORT_FAILURE_TEMPLATES` while the root logger is above
    ``DEBUG`` (the module docstring says why); every other record passes. It keeps the cause
    each record gives, per signal, for taskdaemon's line when exports start to fail
    (:meth:`take_cause`, ``cli/export_streaks.py``): the exporters return a bare failure.

    The level is read at each record, not once: whoever sets it after telemetry is built (an
    embedding application, a test) gets what they set."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._causes: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str) or record.msg not in EXPORT_FAILURE_TEMPLATES:
            return True
        self._keep_cause(record)
        return logging.getLogger().isEnabledFor(logging.DEBUG)

    def take_cause(self, signal: str) -> str | None:
        """The cause of ``signal``'s last failed export, if a record gave one, and forget it
        (a later failure that logs none must not be given this one's)."""
        with self._lock:
            return self._causes.pop(signal, None)

    def _keep_cause(self, record: logging.LogRecord) -> None:
        signal = _HTTP_SIGNALS.get(record.name, "")
        if record.msg == _GAVE_UP:  # no retry before it (a timeout under 1 s): say that much
            with self._lock:
                self._causes.setdefault(signal, "gave up within the export timeout")
            return
        where, signal_at = _CAUSES.get(str(record.msg), ((), None))
        args = record.args if isinstance(record.args, tuple) else ()
        if not where or max(where) >= len(args):
            return
        if signal_at is not None and signal_at < len(args):
            signal = str(args[signal_at])
        said = (str(args[at]) for at in where if args[at] is not None)  # HTTP: no status
        # Both forms: this cause is said outside the formatters' redaction (in a test's capture).
        cause = redact_text(redact_endpoint_passwords(": ".join(said)))
        with self._lock:
            self._causes[signal] = " ".join(cause.split())  # one line


def install_export_failure_filter(
    loggers: Sequence[str] = EXPORTER_LOGGERS,
) -> ExportFailureFilter:
    """Put one :class:`ExportFailureFilter` first on ``loggers`` (once: reuses an installed
    one). First, because the filter after it changes what it matches: the repeats' filter
    adds a count to a record's template."""
    return _install_once(ExportFailureFilter, ExportFailureFilter, loggers, first=True)


class RepeatedLogFilter(logging.Filter):
    """Lets the first record of each (logger, message template, signal) through per ``window``
    seconds.

    A dead collector makes the exporters log the same warning for every batch and every retry;
    this keeps one line per problem and, when it passes the next one, says how many it dropped.
    The signal (``traces``, ``logs``, ``metrics``: an argument of the record) is part of the
    problem: the gRPC exporters of every signal share one logger and one template, so without
    it the first signal to fail hid the others' failures for the whole window.

    Decision: the window is a telemetry set-up's, not the process's: ``build_telemetry``
    resets it, so each set-up of one process (a test after another, an embedding application
    building its telemetry again) says its first problem of each kind rather than lose it to
    the same line of an earlier set-up (the HTTP servers' error-log budgets are per server for
    the same reason). It cannot be finer: a record does not say which set-up's exporter logged
    it (the loggers are the exporter modules', the threads the SDK's). Two set-ups alive at
    once share it, the second's start letting each problem through once more.
    """

    def __init__(self, *, window: float = 300.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}

    def suppressed(self) -> dict[tuple[str, str, str], int]:
        """Records dropped so far in the current window, per (logger, message template,
        signal)."""
        with self._lock:
            return {key: count for key, (_, count) in self._seen.items()}

    def reset(self) -> None:
        """Forget what was seen: the next record of each kind passes again."""
        with self._lock:
            self._seen.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg), _signal(record.args))
        now = self._clock()
        with self._lock:
            first, suppressed = self._seen.get(key, (None, 0))
            if first is not None and now - first < self.window:
                self._seen[key] = (first, suppressed + 1)
                return False
            self._seen[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} (and {suppressed} similar messages suppressed)"
        return True


_SIGNALS: Final = frozenset({"traces", "logs", "metrics", "spans"})


def _signal(args: object) -> str:
    """The signal a record's arguments name (the gRPC exporters': ``traces``, ``logs``,
    ``metrics``), else ``""``."""
    if isinstance(args, tuple):
        for arg in args:
            if isinstance(arg, str) and arg in _SIGNALS:
                return arg
    return ""


def install_repeated_log_filter(
    loggers: Sequence[str] = EXPORTER_LOGGERS, *, window: float = 300.0
) -> RepeatedLogFilter:
    """Attach one :class:`RepeatedLogFilter` to ``loggers`` (once: reuses an installed one),
    taking the SDK's ``DuplicateFilter`` off them (module docstring)."""
    drop_sdk_duplicate_filters(loggers)
    return _install_once(RepeatedLogFilter, lambda: RepeatedLogFilter(window=window), loggers)


def drop_sdk_duplicate_filters(loggers: Sequence[str] = EXPORTER_LOGGERS) -> None:
    """Take the SDK's ``DuplicateFilter`` off ``loggers`` (module docstring). An exporter's
    module adds its own when it is first imported: call this again once the exporters are
    made."""
    for name in loggers:
        logger = logging.getLogger(name)
        for existing in list(logger.filters):
            if _is_sdk_duplicate_filter(existing):
                logger.removeFilter(existing)


def _is_sdk_duplicate_filter(candidate: object) -> bool:
    """Whether ``candidate`` is the OTel SDK's ``DuplicateFilter`` (told by its class, so that
    this module imports no SDK)."""
    kind = type(candidate)
    return kind.__name__ == "DuplicateFilter" and kind.__module__.startswith("opentelemetry.")


def _install_once(
    kind: type[_FilterT],
    make: Callable[[], _FilterT],
    loggers: Sequence[str],
    *,
    first: bool = False,
) -> _FilterT:
    """The ``kind`` filter already on one of ``loggers``, else ``make()`` added to each (put
    before the filters there with ``first``)."""
    for name in loggers:
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, kind):
                return existing
    made = make()
    for name in loggers:
        logger = logging.getLogger(name)
        if first:
            logger.filters.insert(0, made)
        else:
            logger.addFilter(made)
    return made
