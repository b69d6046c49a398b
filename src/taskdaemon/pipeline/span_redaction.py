"""A tracer whose spans redact what is recorded on them, for the monitor.

``RedactingTracer(tracer).start_span(...)`` returns a span that passes every recorded value
through ``redaction``: attributes (at start and later) and event and link attributes through
``redact`` (secret keys and secret-shaped strings), the span name and status description
through ``redact_text``, and exceptions as an ``exception`` event whose message and stack trace
are redacted (the SDK's ``record_exception`` would record ``str(exception)`` as it is). So
nothing the monitor records, whatever it is (an error message, a command line, a published
event, a trigger's expression), reaches a span processor, the span store or an exporter with a
secret in it.

The SDK span itself is what processors see; only the monitor holds the wrapper.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util import types

from taskdaemon.pipeline.errors import (
    STACKTRACE_MAX_CHARS,
    bounded_text,
    redacted_bounded_text,
)
from taskdaemon.pipeline.foreign_text import handler_error_text, traceback_within
from taskdaemon.pipeline.redaction import redact, redact_text

__all__ = ["RedactingSpan", "RedactingTracer", "redact_attributes"]


def redact_attributes(attributes: types.Attributes) -> Any:
    """``attributes`` as a :class:`RedactingSpan` records them; also for callers that record
    the same attributes on many spans and redact them once (``start_span``'s ``redacted``)."""
    return redact(attributes) if attributes else attributes


class RedactingTracer:
    """Wraps a tracer: ``start_span`` gives :class:`RedactingSpan` (see the module docstring)."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @property
    def wrapped(self) -> Tracer:
        """The tracer this one wraps."""
        return self._tracer

    def start_span(
        self,
        name: str,
        *,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        redacted: Mapping[str, Any] | None = None,
        redacted_links: Sequence[Link] = (),
        name_redacted: bool = False,
    ) -> RedactingSpan:
        """Start a span as the wrapped tracer does, with its name, attributes and links'
        attributes redacted. ``redacted``: attributes already passed through
        :func:`redact_attributes`, recorded first and as they are (``attributes`` after them).
        ``redacted_links``: links whose attributes already went through it (a stage span's
        ``triggered_by`` links, whose attributes are one constant redacted once), recorded
        after ``links`` and as they are. ``name_redacted``: ``name`` already went through
        ``redact_text``."""
        if links:
            links = [_redacted_link(link) for link in links]
        if redacted_links:
            links = [*links, *redacted_links] if links else redacted_links
        recorded = redact(attributes) if attributes else attributes  # redact_attributes inline
        if redacted:
            recorded = {**redacted, **recorded} if recorded else redacted
        span = self._tracer.start_span(
            name if name_redacted else redact_text(name),
            context=context,
            kind=kind,
            attributes=recorded,
            links=links,
            start_time=start_time,
        )
        return RedactingSpan(span)


def _redacted_link(link: Link) -> Link:
    """``link`` with its attributes redacted: itself when they hold nothing to redact (nearly
    always: a stage span's ``triggered_by`` link), not a copy."""
    attributes = link.attributes
    redacted = redact_attributes(attributes)
    return link if redacted is attributes else Link(link.context, redacted)


class RedactingSpan(Span):
    """A span that redacts every value recorded on it before the wrapped span gets it.

    ``is_recording`` and ``add_redacted_event`` (whose values the caller redacted) are the
    wrapped span's own bound methods, set per instance, not methods of this class that call
    them: the monitor makes each twice a stage on a stage span and twice on the run span, and
    a forwarding method is a Python frame more each time. Exact: the same method of the same
    span is called with the same arguments (``timestamp``, a keyword, is the SDK API's own
    name); nothing the wrapper redacts goes through them."""

    __slots__ = ("_span", "add_redacted_event", "is_recording")

    #: ``span.is_recording`` of the wrapped span.
    is_recording: Callable[[], bool]
    #: ``add_event`` of attributes already passed through :func:`redact_attributes` (by a
    #: caller that records the same redacted mapping on many spans), as they are: the wrapped
    #: span's ``add_event(name, attributes, timestamp=...)``.
    add_redacted_event: Callable[..., None]

    def __init__(self, span: Span) -> None:
        self._span = span
        self.is_recording = span.is_recording
        self.add_redacted_event = span.add_event

    @property
    def wrapped(self) -> Span:
        """The span this one records on (what processors see). For a parent context only:
        the SDK reads nothing but the span context of a parent, the same on both, and asking
        the wrapped span skips a call of this class three times a child span; recording on it
        would skip redaction."""
        return self._span

    def get_span_context(self) -> SpanContext:
        return self._span.get_span_context()

    def end(self, end_time: int | None = None) -> None:
        self._span.end(end_time=end_time)

    def set_redacted_attributes(self, attributes: Mapping[str, Any]) -> None:
        """``set_attributes`` of ``attributes`` already passed through
        :func:`redact_attributes` (built redacted by the caller), as they are."""
        self._span.set_attributes(attributes)

    def update_name(self, name: str) -> None:
        self._span.update_name(redact_text(name))

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        self._span.set_attributes(redact_attributes({key: value}))

    def set_attributes(self, attributes: types.Attributes) -> None:
        if attributes:  # redact_attributes inline, one call less: a few times a stage
            self._span.set_attributes(redact(attributes))

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        self._span.add_event(
            name, redact(attributes) if attributes else attributes, timestamp=timestamp
        )

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        self._span.add_link(context, redact_attributes(attributes))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, Status):
            if status.description:
                status = Status(status.status_code, redact_text(status.description))
            self._span.set_status(status)
        else:
            self._span.set_status(status, None if description is None else redact_text(description))

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
        message: str | None = None,
    ) -> None:
        """Record ``exception`` as the SDK does (an ``exception`` event with its type, message
        and stack trace), with the message and stack trace redacted and bounded.

        ``message`` is the exception's text when the caller has it already (the engine's
        error of the attempt, redacted and bounded): a handler's ``__str__`` is anyone's code,
        and one returning 50 MB was called once here for the message and once more by
        ``traceback`` for the stack trace's last line. Its text is taken once, here or by the
        caller, and the stack trace's last line is that text.
        """
        cls = type(exception)
        module = cls.__module__
        name = (
            f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__
        )
        if message is None:
            message = redacted_bounded_text(handler_error_text(exception), redact_text)
        recorded: dict[str, Any] = {
            "exception.type": name,
            "exception.message": message,
            "exception.stacktrace": _stacktrace(exception, name, message),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        recorded = redact_attributes(recorded)
        # Bounded once redacted (``bounded_text``): a handler's message may be 10 MB.
        recorded["exception.stacktrace"] = bounded_text(
            recorded["exception.stacktrace"], STACKTRACE_MAX_CHARS
        )
        self._span.add_event("exception", recorded, timestamp=timestamp)


#: The sentences ``traceback`` writes between an exception and the one it came from.
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _stacktrace(exception: BaseException, name: str, message: str) -> str:
    """What ``traceback.format_exception(exception)`` writes, its last line ``name: message``
    without calling ``exception.__str__`` again; the exceptions it was raised from or while
    handling are written by ``traceback`` itself. So is an exception group (its exceptions'
    stack traces are what it is read for: a ``TaskGroup`` in an async handler raises one) and
    an exception with notes (``add_note``, written after its text): their text is taken
    again there, a cost only such exceptions pay, within a deadline
    (``foreign_text.traceback_within``), as any of them may be the handler's."""
    if isinstance(exception, BaseExceptionGroup) or getattr(exception, "__notes__", None):
        return traceback_within(exception)
    chained, joint = exception.__cause__, _CAUSE
    if chained is None and not exception.__suppress_context__:
        chained, joint = exception.__context__, _CONTEXT
    before = "" if chained is None else traceback_within(chained) + joint
    frames = "".join(traceback.format_tb(exception.__traceback__))
    if frames:
        frames = "Traceback (most recent call last):\n" + frames
    return f"{before}{frames}{name}: {message}\n" if message else f"{before}{frames}{name}\n"
