"""Captured output's batches and where they go: the process's output sinks, and the bound
captures start with.

A command stage's capture (``stage_output``) and a Python handler's ``print()``
(``handler_prints``) each make an :class:`OutputBatch` per read and hand it to :func:`deliver`,
which gives it to every registered sink (:func:`add_output_sink`; the CLI registers the span
store's log writer and, with an OTLP log exporter, the OTel one). With no sink registered, each
line becomes a stdlib ``logging`` record of the ``taskdaemon.run.output`` logger (INFO), its
secrets redacted, so a library user's handlers see it. A sink that raises loses that batch,
never the stage: the failure is logged once per sink.

The registry is process-wide, and replaced whole on each change, so a reader thread reads it
without a lock.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from taskdaemon.pipeline.redaction import redact_lines

__all__ = [
    "CaptureLimits",
    "CaptureSettings",
    "OutputBatch",
    "OutputSink",
    "add_output_sink",
    "bound_captures",
    "capture_limits",
    "deliver",
    "output_sinks",
    "remove_output_sink",
    "set_capture_limits",
    "trace_ids",
]

_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_logger = logging.getLogger("taskdaemon.run.output")
#: A failed sink is said under the logger's name from before this module was parted from
#: ``stage_output``: a logging configuration that names it keeps working.
_own_logger = logging.getLogger("taskdaemon.pipeline.stage_output")


@dataclass(frozen=True, slots=True)
class CaptureLimits:
    """Per stage execution: lines and bytes captured as log records at most (0 captures
    nothing), and the bytes of stdout kept as the stage's result at most."""

    max_lines: int = 10_000
    max_bytes: int = 1_048_576
    stdout_max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutputBatch:
    """Lines one stage execution wrote on one stream, in order, and the marker of dropped ones.

    ``texts`` are the lines (without their line ends), all read at ``time_ns`` (one read of
    the pipe: one batch). A batch with ``dropped_lines > 0`` (and no lines) is the
    end-of-capture marker.
    """

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    trace_id: str | None
    span_id: str | None
    stream: str  # "stdout" | "stderr"
    texts: Sequence[str] = ()
    time_ns: int = 0
    dropped_lines: int = 0
    dropped_bytes: int = 0
    limits: CaptureLimits | None = None

    @property
    def lines(self) -> tuple[tuple[int, str], ...]:
        """``(time_ns, text)`` per line (a convenience: built on each call)."""
        when = self.time_ns
        return tuple((when, text) for text in self.texts)

    def marker_text(self) -> str:
        """The marker record's message (only meaningful when ``dropped_lines``)."""
        limits = self.limits or CaptureLimits()
        return (
            f"[taskdaemon] {self.dropped_lines} output lines ({self.dropped_bytes} bytes) "
            f"dropped past the capture bound of {limits.max_lines} lines / "
            f"{limits.max_bytes} bytes per stage"
        )


class OutputSink(Protocol):
    """Receives captured output; called from a stage's reader thread, so it must be
    thread-safe and must not block (queue the batch, do the I/O elsewhere)."""

    def write_output(self, batch: OutputBatch) -> None:
        """Take one batch (queue it; do the I/O elsewhere)."""


class _Registry:
    """The process's sinks and bound (replaced whole, so readers need no lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sinks: tuple[OutputSink, ...] = ()
        self.limits = CaptureLimits()
        self.failed: set[int] = set()


_registry = _Registry()


def add_output_sink(sink: OutputSink) -> None:
    """Send every captured batch to ``sink`` from now on (process-wide)."""
    with _registry.lock:
        if sink not in _registry.sinks:
            _registry.sinks = (*_registry.sinks, sink)


def output_sinks() -> tuple[OutputSink, ...]:
    """The sinks every captured batch goes to now."""
    return _registry.sinks


def remove_output_sink(sink: OutputSink) -> None:
    """Stop sending batches to ``sink`` (no error if it was not registered)."""
    with _registry.lock:
        _registry.sinks = tuple(s for s in _registry.sinks if s is not sink)
        _registry.failed.discard(id(sink))


class CaptureSettings(Protocol):
    """The settings that bound captures (``settings.Settings`` has them)."""

    @property
    def log_capture_max_lines(self) -> int: ...
    @property
    def log_capture_max_bytes(self) -> int: ...
    @property
    def stdout_max_bytes(self) -> int: ...


def bound_captures(
    settings: CaptureSettings, stack: contextlib.ExitStack | contextlib.AsyncExitStack
) -> None:
    """Bound the captures started from now on as ``settings`` say, until ``stack`` closes
    (the previous bound is then set again)."""
    limits = CaptureLimits(
        settings.log_capture_max_lines, settings.log_capture_max_bytes, settings.stdout_max_bytes
    )
    previous = set_capture_limits(limits)
    stack.callback(set_capture_limits, previous)


def set_capture_limits(limits: CaptureLimits) -> CaptureLimits:
    """Set the per-stage bound of captures started from now on; returns the previous one."""
    with _registry.lock:
        previous, _registry.limits = _registry.limits, limits
    return previous


def capture_limits() -> CaptureLimits:
    """The bound captures start with."""
    return _registry.limits


def trace_ids(environment: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """The stage span's trace and span ids, from the ``TRACEPARENT`` of ``environment``."""
    match = _TRACEPARENT.match((environment or {}).get("TRACEPARENT", ""))
    return (match[1], match[2]) if match else (None, None)


def deliver(batch: OutputBatch) -> None:
    """Hand ``batch`` to every output sink (or, with none, to ``logging``): what a capture
    does with each read, also for lines that come from elsewhere (``handler_prints``)."""
    sinks = _registry.sinks
    if not sinks:
        _log_batch(batch)
        return
    for sink in sinks:
        try:
            sink.write_output(batch)
        except Exception:  # monitoring never stops a pipeline; say so once per sink
            if id(sink) not in _registry.failed:
                _registry.failed.add(id(sink))
                _own_logger.warning(
                    "output sink %r failed; its batches are lost", sink, exc_info=True
                )


def _log_batch(batch: OutputBatch) -> None:
    """The fallback sink: one stdlib record per line (a library user's handlers see them),
    its secrets redacted as every sink redacts them (``redaction.redact_lines``): a library
    user's handlers are an output like any other."""
    level = logging.WARNING if batch.dropped_lines else logging.INFO
    if not _logger.isEnabledFor(level):
        return
    extra = {
        "run_id": batch.run_id,
        "pipeline": batch.pipeline,
        "stage": batch.stage,
        "instance": batch.instance,
        "attempt": batch.attempt,
        "trace_id": batch.trace_id,
        "span_id": batch.span_id,
        "stream": batch.stream,
    }
    if batch.dropped_lines:
        _logger.warning("%s", batch.marker_text(), extra=extra)
    for text in redact_lines(list(batch.texts)):
        _logger.info("%s", text, extra=extra)
