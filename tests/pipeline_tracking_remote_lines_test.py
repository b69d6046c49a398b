"""A remote answer in JSON lines (Jaeger 1.x's grpc-gateway stream), from a local HTTP server:
its lines end at ``\\n`` only, and a body of more lines than its size allows is refused before
any is cut out (``tracking/http_sources.py``, ``_json_lines``)."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import JaegerSource

STREAM = Path(__file__).resolve().parent / "fixtures" / "jaeger" / "grpc_gateway_trace_stream.jsonl"
RUN = "4bf92f3577b34da6a3ce929d0e0e4736"
PATH = f"/api/v3/traces/{RUN}"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"], ids=repr)
def test_a_line_holding_a_separator_of_another_kind_in_a_string_is_one_line(
    separator: str,
) -> None:
    """JSON takes these characters raw in a string; ``str.splitlines`` cut a line at them, and
    the whole answer was refused as malformed."""
    body = STREAM.read_bytes().replace(
        b'"stringValue":"demo"', f'"stringValue":"de{separator}mo"'.encode(), 1
    )
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        jaeger.route(PATH, body)
        spans = source.get_trace(RUN)
    assert f"de{separator}mo" in {span.attributes.get("cicd.pipeline.name") for span in spans}


@pytest.mark.slow
def test_a_body_of_more_lines_than_its_size_allows_is_one_line_at_once() -> None:
    """Four MiB of ``0`` lines (two characters a line): refused before any line is cut out,
    where each line was once a string of its own, all at once, many times the body."""
    body = b"0\n" * 2**21
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        jaeger.route(PATH, body)
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(SpanSourceError) as caught:
                source.get_trace(RUN)
            took = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert str(caught.value) == (
        f"{jaeger.url}{PATH}: JSON lines body holds {2**21 + 1} lines in {len(body)} "
        "characters, more than one per 8 characters"
    )
    assert peak < 4 * len(body), f"{peak / len(body):.1f} times the body"
    assert took < 10


@pytest.mark.slow
def test_a_body_of_lines_that_are_not_objects_is_refused_at_its_first_line() -> None:
    """Four MiB of ``"aaaaaa"`` lines, within the density rule: a stream's chunks are objects,
    so the first line ends the reading, where every line was decoded into a string first."""
    body = b'"aaaaaa"\n' * (2**22 // 9)
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        jaeger.route(PATH, body)
        started = time.monotonic()
        with pytest.raises(SpanSourceError) as caught:
            source.get_trace(RUN)
        took = time.monotonic() - started
    assert str(caught.value).startswith(
        f"{jaeger.url}{PATH}: malformed JSON body ({len(body)} bytes): "
    )
    assert took < 10
