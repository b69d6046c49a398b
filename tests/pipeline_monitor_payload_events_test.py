"""The ``stage.input`` / ``stage.output`` events of repeated payloads: each span records its
own payload's attributes, whatever was recorded before (the monitor shares the redacted
attributes of whole short texts between spans, ``_stage_spans._payload_event``); that memo
itself: bounded, of short whole texts only, and sharing only the mappings it keeps."""

from __future__ import annotations

import hashlib
import itertools
import json
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pipeline_monitor_stage_spans_support import (
    payload_attributes,
)
from pipeline_monitor_support import Feed, Telemetry
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.monitor import _stage_spans
from taskdaemon.pipeline.payloads import REDACTED, PayloadCapture
from taskdaemon.pipeline.span_redaction import RedactingTracer
from taskdaemon.pipeline.state import RunStatus


def _expected(text: str, redacted: bool, cap: int = 4096) -> dict[str, Any]:
    data = text.encode()
    return {
        t.PAYLOAD_JSON: data[:cap].decode(),
        t.PAYLOAD_SIZE: len(data),
        t.PAYLOAD_SHA256: hashlib.sha256(data).hexdigest(),
        t.PAYLOAD_TRUNCATED: len(data) > cap,
        t.PAYLOAD_REDACTED: redacted,
    }


def test_each_payload_event_records_its_own_payload_when_payloads_repeat(
    tel: Telemetry,
) -> None:
    """Two runs of four stages: a payload redacted and one that only looks redacted (same JSON
    text, flag False), the empty payload again and again, and two too long to share, cut at
    the cap to the same text. Every event has its own payload's attributes, in the same order."""
    big = {"items": list(range(40))}
    bigger = {"items": list(range(41))}  # the same first 64 bytes of JSON
    payloads: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"password": "hunter2"}, {}),  # input redacted
        ({"password": REDACTED}, {}),  # the same JSON text, nothing redacted
        ({}, {"password": "hunter2"}),
        (big, bigger),
    ]
    names = [f"s{i}" for i in range(len(payloads))]
    stages = [Stage(names[0], "python", (Manual(approval_required=False),))]
    stages += [Stage(n, "python", (OnCompletion(p),)) for p, n in itertools.pairwise(names)]
    capture = PayloadCapture(max_bytes=64)
    feed = Feed(tel, Pipeline(name="payloads", stages=tuple(stages)), capture=capture)
    for _ in range(2):
        feed.start_run()
        for name, (inputs, outputs) in zip(names, payloads, strict=True):
            feed.start(name, inputs=inputs)
            feed.finish(name, outputs=outputs)
        feed.finish_run(RunStatus.SUCCESS)
    redacted_text = json.dumps({"password": REDACTED}, separators=(",", ":"))
    big_text = json.dumps(big, separators=(",", ":"))
    bigger_text = json.dumps(bigger, separators=(",", ":"))
    expected = [
        (_expected(redacted_text, True), _expected("{}", False)),
        (_expected(redacted_text, False), _expected("{}", False)),
        (_expected("{}", False), _expected(redacted_text, True)),
        (_expected(big_text, False, 64), _expected(bigger_text, False, 64)),
    ]
    for name, (inputs, outputs) in zip(names, expected, strict=True):
        spans = tel.by_name(t.stage_span_name(name))
        assert len(spans) == 2
        for span in spans:
            events = {event.name: dict(event.attributes or {}) for event in span.events}
            assert list(events[t.EVENT_STAGE_INPUT].items()) == list(inputs.items())
            assert list(events[t.EVENT_STAGE_OUTPUT].items()) == list(outputs.items())


@pytest.mark.parametrize("cap", [0, 1, 2, 3, 4096])
def test_empty_payloads_are_cut_at_their_own_capture_cap(tel: Telemetry, cap: int) -> None:
    """Empty inputs and outputs (a dict, a mapping proxy), recorded whole by one monitor, then
    by a monitor whose capture has ``cap``: each event is ``{}`` as its own capture keeps it
    (nothing under a cap of 0, ``{`` under 1, whole from 2), whatever was remembered from the
    first (``_stage_spans._payload_event`` shares the attributes of an empty payload)."""
    first = Feed(
        tel,
        Pipeline(name="first", stages=(Stage("a", "python", (Manual(approval_required=False),)),)),
    )
    first.start_run()
    first.start("a", inputs={})
    first.finish("a", outputs={})
    first.finish_run(RunStatus.SUCCESS)
    second = Feed(
        tel,
        Pipeline(name="second", stages=(Stage("b", "python", (Manual(approval_required=False),)),)),
        capture=PayloadCapture(max_bytes=cap),
    )
    second.start_run()
    second.start("b", inputs=MappingProxyType({}))
    second.finish("b", outputs=MappingProxyType({}))
    second.finish_run(RunStatus.SUCCESS)
    second.start_run()
    second.start("b", inputs={})
    second.finish("b", outputs={})
    second.finish_run(RunStatus.SUCCESS)
    [whole] = tel.by_name(t.stage_span_name("a"))
    spans = tel.by_name(t.stage_span_name("b"))
    assert len(spans) == 2
    for span, expected in [
        (whole, _expected("{}", False)),
        *((s, _expected("{}", False, cap)) for s in spans),
    ]:
        events = {event.name: dict(event.attributes or {}) for event in span.events}
        assert list(events[t.EVENT_STAGE_INPUT].items()) == list(expected.items())
        assert list(events[t.EVENT_STAGE_OUTPUT].items()) == list(expected.items())


def test_the_payload_memo_is_bounded_and_keeps_only_short_whole_texts() -> None:
    """The remembered payload events hold short whole texts only (a text over 256 bytes, or
    one cut at the cap, is not kept), at most 1,024 of them: emptied when full."""
    memo = _stage_spans._payload_events
    memo.clear()
    capture = PayloadCapture(max_bytes=300)
    long_text = '{"k":"' + "x" * 250 + '"}'  # 258 bytes
    edge = '{"k":"' + "x" * 248 + '"}'  # 256 bytes: kept
    assert (len(long_text), len(edge)) == (258, 256)
    _stage_spans._payload_event(capture, {"k": "x" * 250})
    _stage_spans._payload_event(PayloadCapture(max_bytes=4), {"k": "y"})
    assert memo == {}
    _stage_spans._payload_event(capture, {"k": "x" * 248})
    assert list(memo) == [(edge, False)]
    for i in range(1, 1024):
        _stage_spans._payload_event(capture, {"i": i})
    assert len(memo) == 1024
    _stage_spans._payload_event(capture, {"i": 1})
    assert len(memo) == 1024  # known: not added
    _stage_spans._payload_event(capture, {"i": 5000})
    assert list(memo) == [('{"i":5000}', False)]
    memo.clear()


@pytest.mark.parametrize(("value", "text"), [([], "[]"), ("", '""'), (None, "null"), (0, "0")])
def test_an_empty_value_that_is_not_a_mapping_is_captured_as_it_is(value: Any, text: str) -> None:
    """Only an empty dict or mapping proxy takes the remembered ``{}`` event: any other empty
    value is captured as its own JSON."""
    capture = PayloadCapture()
    _stage_spans._payload_events.clear()  # the memo as a fresh process has it: no ``{}`` yet
    assert dict(_stage_spans._payload_event(capture, {})) == payload_attributes("{}")  # now it has
    assert dict(_stage_spans._payload_event(capture, value)) == payload_attributes(text)
    assert dict(_stage_spans._payload_event(capture, MappingProxyType({}))) == payload_attributes(
        "{}"
    )


def test_payload_events_share_the_memos_mappings_only() -> None:
    """A short payload's event (the memo keeps its attributes) shares one SDK mapping between
    spans; a long one's (not kept) is built for its own event and not held after."""
    tracer = RedactingTracer(TracerProvider().get_tracer("test"))
    capture = PayloadCapture(max_bytes=4096)
    short, long = {"k": "short"}, {"k": "x" * 400}
    spans = [tracer.start_span(name) for name in ("a", "b")]
    for span in spans:
        for value in (short, long):
            attributes = _stage_spans._payload_event(capture, value)
            _stage_spans._add_payload_event(span, t.EVENT_STAGE_INPUT, attributes, 1)
    (short_a, long_a), (short_b, long_b) = (
        [event.attributes for event in span.wrapped.events]  # type: ignore[attr-defined]
        for span in spans
    )
    assert short_a is short_b
    assert long_a is not long_b
    assert dict(long_a) == dict(long_b)
    kept = [entry[0] for entry in _stage_spans._PAYLOAD_EVENTS._kept.values()]
    assert all("x" * 400 not in str(mapping) for mapping in kept)
