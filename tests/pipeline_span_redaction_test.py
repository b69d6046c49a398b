"""The monitor's redacting tracer: every name, attribute, link, status and exception recorded
through it is redacted, and what the caller redacted already passes as it is."""

from __future__ import annotations

import traceback
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)

from taskdaemon.pipeline.errors import ERROR_MAX_CHARS
from taskdaemon.pipeline.payloads import REDACTED
from taskdaemon.pipeline.span_redaction import RedactingTracer, _redacted_link

TOKEN = "ghp_" + "T3st" * 9  # a GitHub token's shape, not a real one
LINKED = SpanContext(trace_id=0x1F, span_id=0x2F, is_remote=False)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider exporting to memory, shut down after the test."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_link_attributes_are_recorded_redacted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A link whose attributes hold a secret is recorded with it redacted; a clean one as is."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    links = [
        Link(LINKED, {"relation": "triggered_by"}),
        Link(LINKED, {"api_token": "plain", "note": f"see {TOKEN}"}),
    ]
    tracer.start_span("s", links=links).end()
    (span,) = exporter.get_finished_spans()
    recorded = [dict(link.attributes or {}) for link in span.links]
    assert recorded == [
        {"relation": "triggered_by"},
        {"api_token": REDACTED, "note": f"see {REDACTED}"},
    ]


def test_a_clean_link_is_not_copied() -> None:
    """A link with nothing to redact is handed on itself; one with a secret is a new link."""
    clean = Link(LINKED, {"relation": "triggered_by"})
    secret = Link(LINKED, {"password": "x"})
    assert _redacted_link(clean) is clean
    redacted = _redacted_link(secret)
    assert redacted is not secret
    assert (redacted.context, dict(redacted.attributes or {})) == (LINKED, {"password": REDACTED})


def test_each_call_redacts_or_passes_on_as_it_says(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The redacting calls redact; the pass-through ones (``add_redacted_event`` and
    ``is_recording``, the wrapped span's own bound methods, ``set_redacted_attributes``,
    ``end``, ``get_span_context``) record what they are given, at the times given, on the
    wrapped span."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    span = tracer.start_span("s", start_time=1_000)
    assert span.is_recording() is True
    assert span.get_span_context() == span.wrapped.get_span_context()
    span.add_event("walked", {"note": TOKEN}, timestamp=2_000)
    span.add_redacted_event("as-is", {"note": TOKEN}, timestamp=3_000)
    span.set_attributes({"walked": TOKEN})
    span.set_attribute("one", TOKEN)
    span.set_redacted_attributes({"as_is": TOKEN})
    span.end(end_time=4_000)
    assert span.is_recording() is False
    (ended,) = exporter.get_finished_spans()
    assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in ended.events] == [
        ("walked", 2_000, {"note": REDACTED}),
        ("as-is", 3_000, {"note": TOKEN}),
    ]
    assert dict(ended.attributes or {}) == {"walked": REDACTED, "one": REDACTED, "as_is": TOKEN}
    assert (ended.start_time, ended.end_time) == (1_000, 4_000)


def test_the_span_name_is_redacted(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """A span name holding a secret is recorded with it redacted."""
    provider, exporter = spans
    RedactingTracer(provider.get_tracer("test")).start_span(f"deploy {TOKEN}").end()
    (span,) = exporter.get_finished_spans()
    assert f"deploy {REDACTED}" == span.name


def test_a_name_already_redacted_is_recorded_as_it_is(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``name_redacted=True`` records the name as given, not through ``redact_text`` again."""
    provider, exporter = spans
    RedactingTracer(provider.get_tracer("test")).start_span(TOKEN, name_redacted=True).end()
    (span,) = exporter.get_finished_spans()
    assert TOKEN == span.name


def test_start_attributes_are_recorded_redacted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """Attributes given at the start are recorded, a secret key's value redacted."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    tracer.start_span("s", attributes={"password": "x", "stage": "build"}).end()
    (span,) = exporter.get_finished_spans()
    assert {"password": REDACTED, "stage": "build"} == dict(span.attributes or {})


def test_pre_redacted_attributes_come_first_and_as_they_are(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``redacted`` is recorded unchanged and first, ``attributes`` after it (winning a
    shared key) and redacted."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    tracer.start_span(
        "s",
        redacted={"as_is": TOKEN, "shared": "old"},
        attributes={"note": TOKEN, "shared": "new"},
    ).end()
    (span,) = exporter.get_finished_spans()
    expected = [("as_is", TOKEN), ("shared", "new"), ("note", REDACTED)]
    assert expected == list((span.attributes or {}).items())


def test_pre_redacted_links_follow_the_given_links_as_they_are(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``redacted_links`` are recorded after ``links`` and unchanged; ``links`` redacted."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    tracer.start_span(
        "s",
        links=[Link(LINKED, {"note": TOKEN})],
        redacted_links=[Link(LINKED, {"as_is": TOKEN})],
    ).end()
    (span,) = exporter.get_finished_spans()
    recorded = [dict(link.attributes or {}) for link in span.links]
    assert [{"note": REDACTED}, {"as_is": TOKEN}] == recorded


def test_pre_redacted_links_alone_are_recorded(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``redacted_links`` without ``links`` are recorded, unchanged."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    tracer.start_span("s", redacted_links=[Link(LINKED, {"as_is": TOKEN})]).end()
    (span,) = exporter.get_finished_spans()
    assert [{"as_is": TOKEN}] == [dict(link.attributes or {}) for link in span.links]


def test_the_parent_context_and_kind_are_passed_on(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A span started with a parent context and a kind has that parent and that kind."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    parent = tracer.start_span("parent")
    child = tracer.start_span(
        "child", context=set_span_in_context(parent.wrapped), kind=SpanKind.SERVER
    )
    child.end()
    parent.end()
    ended = {span.name: span for span in exporter.get_finished_spans()}
    recorded = (ended["child"].parent, ended["child"].kind)
    assert (ended["parent"].context, SpanKind.SERVER) == recorded


def test_update_name_redacts_the_new_name(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A name given later through ``update_name`` is recorded with its secret redacted."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.update_name(f"renamed {TOKEN}")
    span.end()
    (ended,) = exporter.get_finished_spans()
    assert f"renamed {REDACTED}" == ended.name


def test_add_link_records_the_context_with_its_attributes_redacted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A link added later keeps its context and has its secret attributes redacted."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.add_link(LINKED, {"token": "x", "relation": "retry_of"})
    span.end()
    (ended,) = exporter.get_finished_spans()
    recorded = [(link.context, dict(link.attributes or {})) for link in ended.links]
    assert [(LINKED, {"token": REDACTED, "relation": "retry_of"})] == recorded


def test_a_status_object_keeps_its_code_with_its_description_redacted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``set_status(Status(ERROR, text))`` records ERROR and the text redacted."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.set_status(Status(StatusCode.ERROR, f"failed with {TOKEN}"))
    span.end()
    (ended,) = exporter.get_finished_spans()
    recorded = (ended.status.status_code, ended.status.description)
    assert (StatusCode.ERROR, f"failed with {REDACTED}") == recorded


def test_a_status_object_without_description_is_recorded(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``set_status(Status(OK))`` records OK with no description."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.set_status(Status(StatusCode.OK))
    span.end()
    (ended,) = exporter.get_finished_spans()
    assert (StatusCode.OK, None) == (ended.status.status_code, ended.status.description)


def test_a_status_code_keeps_its_description_redacted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``set_status(ERROR, text)`` records ERROR and the text redacted."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.set_status(StatusCode.ERROR, f"failed with {TOKEN}")
    span.end()
    (ended,) = exporter.get_finished_spans()
    recorded = (ended.status.status_code, ended.status.description)
    assert (StatusCode.ERROR, f"failed with {REDACTED}") == recorded


def test_a_status_code_without_description_has_none(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``set_status(ERROR)`` records ERROR with no description."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.set_status(StatusCode.ERROR)
    span.end()
    (ended,) = exporter.get_finished_spans()
    assert (StatusCode.ERROR, None) == (ended.status.status_code, ended.status.description)


class LeakError(RuntimeError):
    """An exception of a module other than ``builtins``."""


def _raised(error: BaseException) -> BaseException:
    """``error`` after it was raised and caught, so that it has a traceback."""
    try:
        raise error
    except BaseException as caught:
        return caught


def test_record_exception_records_the_sdk_event_redacted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """``record_exception`` records one ``exception`` event at the given time with the type's
    qualified name, the message and the stack trace redacted, ``escaped`` as text and the
    given attributes redacted."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    error = _raised(LeakError(f"login with {TOKEN}"))
    span.record_exception(error, {"api_key": "k", "stage": "b"}, timestamp=5_000, escaped=True)
    span.end()
    (ended,) = exporter.get_finished_spans()
    (event,) = ended.events
    stacktrace = "".join(traceback.format_exception(error)).replace(TOKEN, REDACTED)
    expected = {
        "exception.type": f"{__name__}.LeakError",
        "exception.message": f"login with {REDACTED}",
        "exception.stacktrace": stacktrace,
        "exception.escaped": "True",
        "api_key": REDACTED,
        "stage": "b",
    }
    assert ("exception", 5_000, expected) == (
        event.name,
        event.timestamp,
        dict(event.attributes or {}),
    )


def test_a_builtin_exception_type_is_named_without_its_module(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A builtin exception's type is its bare name, and ``escaped`` defaults to ``"False"``."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.record_exception(_raised(ValueError("bad")))
    span.end()
    (ended,) = exporter.get_finished_spans()
    (event,) = ended.events
    attributes = event.attributes or {}
    assert ("ValueError", "False") == (
        attributes["exception.type"],
        attributes["exception.escaped"],
    )


class _UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise ValueError("no text")


def test_record_exception_of_an_exception_whose_str_raises(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """An exception whose ``__str__`` raises is recorded with a message that says so."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    span.record_exception(_raised(_UnprintableError()))
    span.end()
    (ended,) = exporter.get_finished_spans()
    (event,) = ended.events
    assert "<_UnprintableError: str() failed>" == (event.attributes or {})["exception.message"]


def test_record_exception_bounds_a_huge_message_and_stack_trace(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A 10 MB exception message is recorded cut to ``ERROR_MAX_CHARS`` plus its marker, and
    its stack trace (which repeats it) ends with that cut message: the text is taken once."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    error = _raised(RuntimeError("x" * 10_000_000))
    full = "".join(traceback.format_exception(error))
    span.record_exception(error)
    span.end()
    (ended,) = exporter.get_finished_spans()
    (event,) = ended.events
    attributes = event.attributes or {}
    message = str(attributes["exception.message"])
    message_cut = 10_000_000 - ERROR_MAX_CHARS
    assert ERROR_MAX_CHARS + len(f"…[{message_cut} characters cut]…") == len(message)
    assert full.replace("x" * 10_000_000, message) == attributes["exception.stacktrace"]


def test_an_exception_group_and_notes_keep_their_whole_stack_trace(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """An exception group's stack trace holds its exceptions' own (a ``TaskGroup`` in an async
    handler raises one), and a note added to an exception follows it: written as
    ``traceback`` writes them, their text redacted."""
    provider, exporter = spans
    span = RedactingTracer(provider.get_tracer("test")).start_span("s")
    noted = _raised(ValueError("first"))
    noted.add_note(f"while using {TOKEN}")
    group = _raised(ExceptionGroup("two failed", [noted, _raised(KeyError("second"))]))
    span.record_exception(group)
    span.end()
    (ended,) = exporter.get_finished_spans()
    (event,) = ended.events
    stacktrace = "".join(traceback.format_exception(group)).replace(TOKEN, REDACTED)
    assert ("KeyError: 'second'" in stacktrace, stacktrace) == (
        True,
        (event.attributes or {})["exception.stacktrace"],
    )
