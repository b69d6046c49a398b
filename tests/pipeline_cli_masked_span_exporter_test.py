"""Spans still waiting in the batch processor when a value became known as a secret leave
masked (``cli/masked_span_exporter``): a real run whose first attempt prints a secret it
fetched on stderr and fails (its span's error holds the stderr tail), then whose second
attempt returns it under ``token``, exports its spans over the console exporter at exit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from cli_support import write
from redaction_support import (
    MADE_SECRET,
    MAKE_SECRET,
    console_json_objects,
    run_exported_at_exit,
)
from taskdaemon.pipeline.cli.masked_span_exporter import MaskedSpanExporter
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets

SECRET = MADE_SECRET

PIPELINE = f"""\
    name: exporting
    retry: {{max_attempts: 2, backoff: {{initial: 10ms}}}}
    error_strategy: retry
    stages:
      - name: vault
        triggers: [{{manual: {{approval_required: false}}}}]
        command: >-
          {MAKE_SECRET}
          if [ "$TASKDAEMON_ATTEMPT" = 1 ]; then echo "vault said $V, then broke" >&2; exit 4; fi;
          printf '{{"token": "%s"}}' "$V"
"""


def test_a_batch_not_yet_exported_loses_a_value_learnt_after_its_spans(
    home: Path, tmp_path: Path
) -> None:
    """The batch processor waits a minute (longer than the run), so every span is exported at
    exit, after the second attempt returned the value: the failed attempt's span leaves with
    its error masked, in its status and in its exception event, and nothing holds the value."""
    stdout = run_exported_at_exit(home, write(tmp_path / "exporting.yaml", PIPELINE), "traces")
    failed = [
        span
        for span in console_json_objects(stdout)
        if span.get("name") == "vault" and span["status"]["status_code"] == "ERROR"
    ]
    said = f"vault said {REDACTED}, then broke"
    errors = [
        [span["status"]["description"]]
        + [
            event["attributes"]["exception.message"]
            for event in span["events"]
            if event["name"] == "exception"
        ]
        for span in failed
    ]
    assert ([[True, True]], False) == (
        [[text.endswith(said) for text in texts] for texts in errors],
        SECRET in stdout,
    )


def test_only_the_spans_holding_a_value_known_now_are_copied_and_masked() -> None:
    """Spans recorded before the value was known, exported in one batch after: the one holding
    it leaves with it masked in every text (its attributes and their items, an event's name
    and attributes, a link's attributes, its status) and all else as it was; the one without
    it leaves as the very same object; the SDK's own span (which other processors share) keeps
    what it recorded."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("plain", attributes={"note": "nothing"}) as plain:
            pass
        with tracer.start_as_current_span(
            "holding",
            links=[Link(plain.get_span_context(), {"why": f"after {SECRET}"})],
            attributes={"error": f"said {SECRET}", "lines": ("ok", f"x{SECRET}y"), "n": 3},
        ) as span:
            span.add_event(f"event {SECRET}", {"detail": SECRET, "count": 2})
            span.set_status(Status(StatusCode.ERROR, f"broke on {SECRET}"))
    finally:
        provider.shutdown()
    before, holding = recorded.get_finished_spans()
    remember_secrets({"token": SECRET})
    exported = InMemorySpanExporter()
    MaskedSpanExporter(exported).export([before, holding])
    same, masked = exported.get_finished_spans()
    assert (
        same is before,
        dict(masked.attributes or {}),
        [(event.name, dict(event.attributes or {})) for event in masked.events],
        [(link.context, dict(link.attributes or {})) for link in masked.links],
        (masked.status.status_code, masked.status.description),
        (masked.name, masked.context, masked.parent, masked.kind, masked.resource),
        (masked.start_time, masked.end_time, masked.instrumentation_scope),
        (holding.attributes or {})["error"],
    ) == (
        True,
        {"error": f"said {REDACTED}", "lines": ("ok", f"x{REDACTED}y"), "n": 3},
        [(f"event {REDACTED}", {"detail": REDACTED, "count": 2})],
        [(plain.get_span_context(), {"why": f"after {REDACTED}"})],
        (StatusCode.ERROR, f"broke on {REDACTED}"),
        (holding.name, holding.context, holding.parent, holding.kind, holding.resource),
        (holding.start_time, holding.end_time, holding.instrumentation_scope),
        f"said {SECRET}",
    )


def _recorded(
    make: dict[str, dict[str, object]], resource: Resource | None = None
) -> dict[str, ReadableSpan]:
    """Spans made by a real provider, by name: each child of a ``root`` span, a failed client
    span (its status without a description), with ``make[name]``'s ``attributes``, ``event``
    (attributes of an event ``e``) and ``link`` (attributes of a link to the root)."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider(resource=resource or Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("root") as root:
            for name, parts in make.items():
                link = parts.get("link")
                links = [Link(root.get_span_context(), link)] if isinstance(link, dict) else []
                attributes = parts.get("attributes")
                with tracer.start_as_current_span(
                    name,
                    kind=SpanKind.CLIENT,
                    links=links,
                    attributes=attributes if isinstance(attributes, dict) else None,
                ) as span:
                    event = parts.get("event")
                    if isinstance(event, dict):
                        span.add_event("e", event, timestamp=1_700_000_000_123_456_789)
                    span.set_status(Status(StatusCode.ERROR))
    finally:
        provider.shutdown()
    return {span.name: span for span in recorded.get_finished_spans()}


def test_a_value_in_only_one_of_a_spans_texts_is_found_and_masked() -> None:
    """The value alone in a span's attributes, alone in an event's, or alone in a link's is
    enough for that span to leave masked; a failed span whose status has no description
    leaves with none."""
    spans = _recorded(
        {
            "in attributes": {"attributes": {"out": f"got {SECRET}"}},
            "in an event": {"event": {"out": f"got {SECRET}"}},
            "in a link": {"link": {"out": f"got {SECRET}"}},
        }
    )
    remember_secrets({"token": SECRET})
    exported = InMemorySpanExporter()
    MaskedSpanExporter(exported).export(list(spans.values()))
    out = {span.name: span for span in exported.get_finished_spans()}
    said = f"got {REDACTED}"
    assert (
        dict(out["in attributes"].attributes or {}),
        [dict(event.attributes or {}) for event in out["in an event"].events],
        [dict(link.attributes or {}) for link in out["in a link"].links],
        [out[name].status.description for name in ("in attributes", "in an event", "in a link")],
        out["root"] is spans["root"],
    ) == ({"out": said}, [{"out": said}], [{"out": said}], [None, None, None], True)


def test_a_masked_copy_keeps_its_parent_kind_resource_and_event_times() -> None:
    """The copy of a child span keeps the span it belongs to, its kind, the provider's
    resource and each event's own time, so a backend files it where the original went."""
    resource = Resource.create({"service.name": "masking-test"})
    spans = _recorded({"child": {"event": {"out": SECRET}}}, resource)
    remember_secrets({"token": SECRET})
    exported = InMemorySpanExporter()
    MaskedSpanExporter(exported).export([spans["child"]])
    (masked,) = exported.get_finished_spans()
    assert (
        masked.parent,
        masked.kind,
        masked.resource.attributes.get("service.name"),
        [(event.timestamp, dict(event.attributes or {})) for event in masked.events],
    ) == (
        spans["root"].context,
        SpanKind.CLIENT,
        "masking-test",
        [(1_700_000_000_123_456_789, {"out": REDACTED})],
    )


class _Flushing(SpanExporter):
    """An exporter that says how each flush was asked and answers it was not done."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise AssertionError("not exported to")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.asked.append(timeout_millis)
        return False


def test_a_flush_reaches_the_inner_exporter_with_its_timeout_and_answer() -> None:
    """A flush is the inner exporter's: with the timeout asked (the SDK's own default when
    none is), and its answer returned."""
    inner = _Flushing()
    masking = MaskedSpanExporter(inner)
    assert ([False, False], [250, 30000]) == (
        [masking.force_flush(250), masking.force_flush()],
        inner.asked,
    )
