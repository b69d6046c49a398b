"""Span sources: Tempo, Jaeger and OTLP-JSON parsed into the same spans and runs as the store."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider

from cli_support import free_port, taskdaemon
from pipeline_tracking_support import (
    Backend,
    example_spans,
    make_provider,
    serve,
    write_example_run,
)
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import (
    JaegerSource,
    OtlpJsonSource,
    SpanStore,
    SqliteSpanProcessor,
    TempoSource,
    encode_traces,
    open_source,
    parse_traces,
    reconstruct_run,
)

# Real Tempo API payloads, in the repository: tests/fixtures/tempo/README.md gives their origin.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tempo"


def _fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def test_tempo_v2_fixture_parses() -> None:
    """The real v2 body: base64 ids become hex, enum kind, string nanos, empty status."""
    (span,) = parse_traces(_fixture("api_v2_traces_response.json"))
    assert (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.kind,
        span.start_ns,
        span.end_ns,
        span.status_code,
        span.attributes,
        span.resource,
    ) == (
        "5b8efff798038103d269b633813fc700",
        "eee19b7ec3c1b100",
        None,
        "SERVER",
        1689969302000000000,
        1689970000000000000,
        "UNSET",
        {"my.span.attr": "some value"},
        {"service.name": "my.service"},
    )


def test_tempo_v1_batches_fixture_parses() -> None:
    """The v1 ``batches`` fixture: upper-case hex ids and a numeric kind."""
    (span,) = parse_traces(_fixture("api_v1_traces_batches_fixture.json"))
    assert (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.kind,
    ) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
        "SERVER",
    )


def test_jsonpb_multi_service_fixture_parses() -> None:
    """The multi-service jsonpb trace: three spans, each with its own resource and status."""
    spans = parse_traces(_fixture("jsonpb_resourceSpans_trace-with-virtual-nodes.json"))
    assert [
        (s.name, s.kind, s.status_code, s.resource["service.name"], s.parent_span_id) for s in spans
    ] == [
        ("requester", "SERVER", "OK", "mythical-server", None),
        ("HTTP GET /ready", "CLIENT", "UNSET", "mythical-requester", "d606579e57787587"),
        ("Consumed", "CONSUMER", "UNSET", "internal-consumer", None),
    ]


def test_tempo_search_fixture_is_served_as_a_search() -> None:
    """The real search body is read (hex traceID) and each hit is fetched as a trace."""
    with serve(Backend()) as backend:
        backend.route("/api/search", _fixture("api_search_traceql_response.json"))
        backend.route(
            "/api/v2/traces/5b8efff798038103d269b633813fc700",
            _fixture("api_v2_traces_response.json"),
        )
        with TempoSource(backend.url) as source:
            (summary,) = source.search(since=1_600_000_000, until=1_800_000_000)
    assert (summary.run_id, summary.status) == ("5b8efff798038103d269b633813fc700", "running")


def test_search_results_that_are_not_objects_are_skipped() -> None:
    """A search answer whose ``traces`` holds a string and a number besides a real hit skips
    the two and fetches the hit."""
    found = _fixture("api_search_traceql_response.json")
    assert isinstance(found, dict)
    found["traces"] = ["5b8efff798038103d269b633813fc700", 7, *found["traces"]]
    with serve(Backend()) as backend:
        backend.route("/api/search", found)
        backend.route(
            "/api/v2/traces/5b8efff798038103d269b633813fc700",
            _fixture("api_v2_traces_response.json"),
        )
        with TempoSource(backend.url) as source:
            runs = source.search(since=1_600_000_000, until=1_800_000_000)
    assert ["5b8efff798038103d269b633813fc700"] == [run.run_id for run in runs]


def test_search_hits_whose_trace_is_gone_are_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A search hit whose trace Tempo no longer has (404) is left out of the list, and one
    warning says so, beside the hit that could be read."""
    found = _fixture("api_search_traceql_response.json")
    assert isinstance(found, dict)
    found["traces"] = [*found["traces"], {"traceID": "ab" * 16, "startTimeUnixNano": "1"}]
    with serve(Backend()) as backend:
        backend.route("/api/search", found)
        backend.route(
            "/api/v2/traces/5b8efff798038103d269b633813fc700",
            _fixture("api_v2_traces_response.json"),
        )
        with (
            caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"),
            TempoSource(backend.url) as source,
        ):
            runs = source.search(since=1_600_000_000, until=1_800_000_000)
    messages = [record.getMessage() for record in caplog.records]
    said = "Tempo search: skipped 1 run it found but could not read (the first, no run abab"
    expected = (["5b8efff798038103d269b633813fc700"], [True])
    actual = ([run.run_id for run in runs], [message.startswith(said) for message in messages])
    assert expected == actual, messages


def test_search_hits_without_a_trace_id_are_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A search answer of 500 hits without a ``traceID`` lists no run and logs one warning
    counting them."""
    with serve(Backend()) as backend:
        backend.route("/api/search", {"traces": [{"rootServiceName": "x"}] * 500})
        with (
            caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"),
            TempoSource(backend.url) as source,
        ):
            runs = source.search(since=1_600_000_000, until=1_800_000_000)
    messages = [record.getMessage() for record in caplog.records]
    expected = ([], 1, True)
    said = "Tempo search: skipped 500 unreadable results"
    actual = (runs, len(messages), messages[0].startswith(said))
    assert expected == actual, messages[:3]


def test_any_value_shapes_are_decoded() -> None:
    """Every OTLP AnyValue kind decodes to its normalized Python value."""
    body = {
        "resourceSpans": [
            {
                "instrumentationLibrarySpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0" * 31 + "1",
                                "spanId": "0" * 15 + "2",
                                "parentSpanId": "",
                                "name": "x",
                                "kind": 1,
                                "startTimeUnixNano": 5,
                                "endTimeUnixNano": "6",
                                "status": {"code": 2, "message": "bad"},
                                "attributes": [
                                    {"key": "s", "value": {"stringValue": "v"}},
                                    {"key": "i", "value": {"intValue": "7"}},
                                    {"key": "d", "value": {"doubleValue": 1}},
                                    {"key": "b", "value": {"boolValue": True}},
                                    {
                                        "key": "a",
                                        "value": {"arrayValue": {"values": [{"intValue": 1}]}},
                                    },
                                    {
                                        "key": "k",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "x", "value": {"stringValue": "y"}}
                                                ]
                                            }
                                        },
                                    },
                                    {"key": "y", "value": {"bytesValue": "AQI="}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (span,) = parse_traces(body)
    assert (
        span.attributes,
        span.kind,
        (span.status_code, span.status_message),
        span.parent_span_id,
    ) == (
        {"s": "v", "i": 7, "d": 1.0, "b": True, "a": (1,), "k": {"x": "y"}, "y": b"\x01\x02"},
        "INTERNAL",
        ("ERROR", "bad"),
        None,
    )


def test_malformed_span_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A span with a bad id is dropped with one warning; its good neighbour survives."""
    body = encode_traces(example_spans())
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["spanId"] = "not-an-id!"
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        parsed = parse_traces(body)
    assert (len(spans) - 1, 1) == (len(parsed), len(caplog.records))


def _store_run(tmp_path: Path) -> tuple[str, object]:
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _exporter = make_provider(processor)
    run_id = write_example_run(provider)
    provider.shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        return run_id, store.get_run(run_id)


@pytest.mark.slow
def test_every_source_rebuilds_the_same_run(tmp_path: Path) -> None:
    """One run served as Tempo v1, Tempo v2, Jaeger v3 and OTLP-JSON lines equals the store's."""
    run_id, expected = _store_run(tmp_path)
    with SpanStore(tmp_path / "spans.db") as store:
        spans = store.get_trace(run_id)
    v1 = encode_traces(spans, ids="base64", key="batches")
    v2 = {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}
    jaeger = {"result": encode_traces(spans, scope_key="instrumentationLibrarySpans")}
    lines = tmp_path / "otlp"
    lines.mkdir()
    (lines / "traces.jsonl").write_text(
        "\n".join(json.dumps(encode_traces([s])) for s in spans) + "\n"
    )
    with serve(Backend()) as tempo_v1, serve(Backend()) as tempo_v2, serve(Backend()) as jaeger_be:
        tempo_v1.route(f"/api/traces/{run_id}", v1)
        tempo_v2.route(f"/api/v2/traces/{run_id}", v2)
        jaeger_be.route(f"/api/v3/traces/{run_id}", jaeger)
        sources = [
            open_source(f"tempo+{tempo_v1.url}"),
            open_source(f"tempo+{tempo_v2.url}"),
            open_source(f"jaeger+{jaeger_be.url}"),
            open_source(f"otlp-json://{lines}"),
        ]
        runs = [source.get_run(run_id) for source in sources]
        for source in sources:
            source.close()
        fallback_requests = list(tempo_v1.requests)
    assert [expected] * 4 == runs
    assert [f"/api/v2/traces/{run_id}", f"/api/traces/{run_id}"] == fallback_requests
    # The common rebuild is the run that was written, not merely the same for every source.
    assert [_outline(run) for run in runs] == [WRITTEN_RUN] * 4


#: The example run as ``write_example_run`` writes it, spelled out by hand.
WRITTEN_RUN = (
    "demo",
    "success",
    "abc123",
    [
        ("plan", "success", [(0, 1, "success", None)]),
        ("build", "success", [(0, 1, "failure", "exit 2"), (0, 2, "success", None)]),
        ("test", "success", [(0, 1, "success", None), (1, 1, "success", None)]),
        ("deploy", "skipped", []),
    ],
    [
        ("plan", "build", "on completion"),
        ("build", "test", "on event\nbuild.ready"),
        ("test", "deploy", "on completion"),
    ],
)


def _outline(run: Any) -> tuple[Any, ...]:
    """What a reader of the run sees: pipeline, status, hash, stages with their attempts, edges."""
    return (
        run.pipeline,
        run.status,
        run.definition_hash,
        [
            (
                s.name,
                s.status,
                [(a.instance, a.attempt, a.status, a.error) for a in s.attempts],
            )
            for s in run.stages
        ],
        [(e.source, e.target, e.label) for e in run.edges],
    )


def test_tempo_search_sends_traceql_and_window() -> None:
    """The search asks TraceQL over cicd.pipeline.* with start/end seconds and the limit."""
    spans = example_spans()
    run_id = spans[0].trace_id
    with serve(Backend()) as backend:
        backend.route("/api/search", {"traces": [{"traceID": run_id}]})
        backend.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        with TempoSource(backend.url) as source:
            found = source.search(pipeline="demo", status="success", since=100, until=200, limit=5)
        query = backend.requests[0]
    params = {k: v[0] for k, v in parse_qs(urlsplit(query).query).items()}
    assert (params["q"], params["start"], params["end"], params["limit"]) == (
        '{ span.cicd.pipeline.action.name = "RUN" && span.cicd.pipeline.name = "demo" '
        '&& span.cicd.pipeline.result = "success" }',
        "100",
        "201",
        "5",
    )
    assert found == []  # the run started in 2023, outside since/until


def test_jaeger_search_summarizes_returned_traces() -> None:
    """Jaeger's search returns whole traces; each run becomes one summary."""
    spans = example_spans()
    with serve(Backend()) as backend:
        backend.route("/api/v3/traces", {"result": encode_traces(spans)})
        with JaegerSource(backend.url, service="taskdaemon") as source:
            (summary,) = source.search(pipeline="demo", since=0)
        query = backend.requests[0]
    assert (summary.pipeline, summary.status, summary.stage_count) == ("demo", "success", 4)
    assert "query.service_name=taskdaemon" in query
    assert "query.operation_name=RUN+demo" in query


def test_truncated_body_is_a_clear_error() -> None:
    """A body cut in the middle raises SpanSourceError naming the URL."""
    run_id = "a" * 32
    with serve(Backend()) as backend:
        backend.route(
            f"/api/v3/traces/{run_id}", json.dumps({"result": {"resourceSpans": []}}).encode()[:20]
        )
        with (
            JaegerSource(backend.url) as source,
            pytest.raises(SpanSourceError, match="malformed JSON"),
        ):
            source.get_trace(run_id)


def test_a_body_of_many_lines_that_are_not_json_is_one_error_and_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body of 100 lines none of which is JSON (a protobuf or HTML answer) is one
    SpanSourceError, with no warning logged for its lines."""
    run_id = "a" * 32
    with serve(Backend()) as backend:
        backend.route(f"/api/v3/traces/{run_id}", b"\x08\x01 not json\n" * 100)
        with (
            caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"),
            JaegerSource(backend.url) as source,
            pytest.raises(SpanSourceError) as caught,
        ):
            source.get_trace(run_id)
    expected = (True, [])
    actual = (
        "malformed JSON body" in str(caught.value),
        [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING],
    )
    assert expected == actual


def test_a_redirect_is_reported_not_followed() -> None:
    """A 302 to another host is an error naming the status and the target (its password
    hidden), and nothing is asked of the other host."""
    run_id = "a" * 32
    with serve(Backend()) as backend:
        backend.route(f"/api/v3/traces/{run_id}", b"", 302)
        backend.location = "http://u:pw@elsewhere.invalid/login"
        with JaegerSource(backend.url) as source, pytest.raises(SpanSourceError) as caught:
            source.get_trace(run_id)
    message = str(caught.value)
    expected = "HTTP 302, a redirect not followed, to http://u:[REDACTED]@elsewhere.invalid/login"
    assert expected == message.partition(f"{run_id}: ")[2]


def test_body_that_is_not_a_trace_is_a_clear_error() -> None:
    """JSON that is not an OTLP document raises SpanSourceError."""
    run_id = "b" * 32
    with serve(Backend()) as backend:
        backend.route(f"/api/v2/traces/{run_id}", {"hello": "world"})
        with (
            TempoSource(backend.url) as source,
            pytest.raises(SpanSourceError, match="not an OTLP"),
        ):
            source.get_trace(run_id)


def test_server_error_is_retried_then_reported() -> None:
    """A 5xx is retried, then reported with its status."""
    run_id = "c" * 32
    with serve(Backend()) as backend:
        backend.route(f"/api/v2/traces/{run_id}", b"boom", status=503)
        with (
            TempoSource(backend.url, backoff=0.01) as source,
            pytest.raises(SpanSourceError, match="HTTP 503"),
        ):
            source.get_trace(run_id)
        tries = len(backend.requests)
    assert tries == 3


def test_an_error_body_is_shown_as_one_line_without_control_characters() -> None:
    """A 401 whose body holds terminal escapes and line breaks is reported with the body's
    text on one line, every control character escaped."""
    run_id = "c" * 32
    with serve(Backend()) as backend:
        backend.route(f"/api/v2/traces/{run_id}", b"\x1b]0;title\x07\x1b[2Jdenied\r\nfake", 401)
        with TempoSource(backend.url) as source, pytest.raises(SpanSourceError) as caught:
            source.get_trace(run_id)
    message = str(caught.value)
    expected = ("HTTP 401: \\x1b]0;title\\x07\\x1b[2Jdenied fake", True)
    actual = (message.partition(f"{run_id}: ")[2], message.isprintable())
    assert expected == actual


def test_a_backend_error_message_is_cut_to_one_short_line() -> None:
    """A trace answer whose ``error`` is a megabyte with line breaks is reported in one
    printable line of at most 400 characters."""
    run_id = "c" * 32
    with serve(Backend()) as backend:
        backend.route(f"/api/v2/traces/{run_id}", {"error": "x\n\x1b" * 500_000})
        with TempoSource(backend.url) as source, pytest.raises(SpanSourceError) as caught:
            source.get_trace(run_id)
    message = str(caught.value)
    expected = (True, True, True)
    actual = ("backend error: x" in message, message.isprintable(), len(message) <= 400)
    assert expected == actual, message[:500]


def test_a_body_declared_in_another_charset_is_read_as_json_reads_it() -> None:
    """JSON is UTF-8 whatever the Content-Type says: a search answered as ``charset=utf-16``
    is read, not a decoding error."""
    with serve(Backend()) as backend:
        backend.route("/api/search", {"traces": []}, content_type="text/html; charset=utf-16")
        with TempoSource(backend.url) as source:
            found = source.search()
    assert [] == found


def test_a_body_that_is_not_utf8_is_a_clear_error() -> None:
    """A body that is not UTF-8 raises SpanSourceError naming the URL."""
    with serve(Backend()) as backend:
        backend.route("/api/search", b'{"traces": [{"traceID": "\xff"}]}')
        with (
            TempoSource(backend.url) as source,
            pytest.raises(SpanSourceError, match=r"/api/search\?.*: malformed JSON body"),
        ):
            source.search()


def test_dead_port_is_a_clear_error() -> None:
    """A backend nobody listens on raises SpanSourceError saying it cannot be reached."""
    port = free_port()
    with (
        TempoSource(f"http://127.0.0.1:{port}", backoff=0.01) as source,
        pytest.raises(SpanSourceError, match="cannot reach"),
    ):
        source.get_trace("d" * 32)


def test_missing_trace_is_run_not_found() -> None:
    """404 on both Tempo paths means the run is unknown."""
    with (
        serve(Backend()) as backend,
        TempoSource(backend.url) as source,
        pytest.raises(RunNotFoundError),
    ):
        source.get_trace("e" * 32)


def test_unknown_scheme_is_rejected() -> None:
    """An unknown source URL names the accepted forms."""
    with pytest.raises(SpanSourceError, match="unknown span source"):
        open_source("zipkin://localhost:9411")


def test_otlp_json_directory_search(tmp_path: Path) -> None:
    """A directory of JSON-lines files is searched like a store; bad lines are skipped."""
    spans = example_spans(pipeline="alpha")
    (tmp_path / "a.json").write_text(json.dumps(encode_traces(spans)) + "\n{truncated\n")
    source = OtlpJsonSource(tmp_path)
    (summary,) = source.search(pipeline="alpha")
    assert (spans[0].trace_id, "success") == (summary.run_id, summary.status)
    assert reconstruct_run(spans) == source.get_run(spans[0].trace_id)


def test_an_otlp_json_files_bad_lines_are_one_warning_of_each_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Undecodable lines and lines that are JSON but no trace are skipped with one warning
    each for the file, counting them and naming the first by its own line number."""
    spans = example_spans(pipeline="alpha")
    good = json.dumps(encode_traces(spans))
    lines = ["{truncated", good, '{"not": "a trace"}', "also bad", '{"resourceSpans": 3}']
    (tmp_path / "a.json").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        (summary,) = OtlpJsonSource(tmp_path).search(pipeline="alpha")
    file = tmp_path / "a.json"
    expected = [
        f"{file}: skipped 2 undecodable lines (the first, line 1: not JSON",
        f"{file}: skipped 2 lines that are not an OTLP trace (the first, line 3: ",
    ]
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert (spans[0].trace_id, expected) == (
        summary.run_id,
        [m[: len(e)] for m, e in zip(messages, expected, strict=True)],
    ), messages


def test_one_run_is_read_from_a_lines_file_of_many_runs_whatever_their_spelling(
    tmp_path: Path,
) -> None:
    """``get_trace`` finds a run written with base64 ids among runs written in hex, and yields
    the same spans as reading the whole file does."""
    wanted = example_spans(pipeline="alpha")
    others = [example_spans(pipeline=f"other{i}") for i in range(3)]
    lines = [json.dumps(encode_traces(spans)) for spans in others]
    lines.insert(2, json.dumps(encode_traces(wanted, ids="base64", key="batches")))
    (tmp_path / "a.json").write_text("\n".join(lines) + "\n")
    source = OtlpJsonSource(tmp_path)
    whole = [s for s in source._spans() if s.trace_id == wanted[0].trace_id]
    assert (wanted, wanted) == (source.get_trace(wanted[0].trace_id), whole)


def test_reading_one_run_passes_over_bad_lines_that_cannot_hold_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad line without the run's id is not decoded for ``get_trace``, so no warning; the
    whole-file read of ``search`` still warns about it."""
    spans = example_spans(pipeline="alpha")
    (tmp_path / "a.json").write_text(json.dumps(encode_traces(spans)) + "\n{truncated\n")
    source = OtlpJsonSource(tmp_path)
    with caplog.at_level(logging.WARNING):
        source.get_trace(spans[0].trace_id)
        after_get = len(caplog.records)
        source.search()
    assert (0, 1) == (after_get, len(caplog.records) - after_get)


def test_a_raw_next_line_character_in_a_span_name_does_not_split_its_line(tmp_path: Path) -> None:
    """A span name holding a raw U+0085 or U+2028 (valid JSON, written as it is by writers
    that do not escape it) leaves its line whole: the run is read, not warned away."""
    spans = example_spans(pipeline="alpha")
    named = [replace(spans[0], name="a\x85b\u2028c"), *spans[1:]]
    other = json.dumps(encode_traces(example_spans(pipeline="beta")))
    text = json.dumps(encode_traces(named), ensure_ascii=False) + "\n" + other + "\n"
    (tmp_path / "a.json").write_text(text, encoding="utf-8")
    assert named == OtlpJsonSource(tmp_path).get_trace(spans[0].trace_id)


READ_AND_LIST_MODULES = """
import json, sys
from taskdaemon.pipeline.tracking import open_source, reconstruct_run
source = open_source(sys.argv[1])
try:
    found = source.search(limit=10)
    record = source.get_run(found[0].run_id)
    rebuilt = reconstruct_run(source.get_trace(found[0].run_id))
finally:
    source.close()
print(json.dumps({"runs": len(found), "same": record == rebuilt, "modules": sorted(sys.modules)}))
"""


@pytest.mark.slow
def test_reading_the_store_imports_nothing_of_the_writing_side(tmp_path: Path) -> None:
    """Searching the store and rebuilding a run, in a fresh interpreter, loads neither the span
    writer nor its entry point nor any OpenTelemetry module."""

    provider = TracerProvider()
    provider.add_span_processor(SqliteSpanProcessor(tmp_path / "spans.db"))
    write_example_run(provider)
    provider.shutdown()
    db = tmp_path / "spans.db"
    done = subprocess.run(
        [sys.executable, "-c", READ_AND_LIST_MODULES, f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    report = json.loads(done.stdout)
    writing = (
        "opentelemetry",
        "taskdaemon.pipeline.tracking.writer",
        "taskdaemon.pipeline.tracking.store_processor",
    )
    loaded = [m for m in report["modules"] if m.startswith(writing)]
    assert (1, True, []) == (report["runs"], report["same"], loaded)


@pytest.mark.parametrize(
    "text",
    # 16 digits: a prefix typed by a user (the store resolves it), once padded to another id;
    # base64 of 16 bytes: a wire form of OTLP JSON, no spelling of a run id; a prefix.
    ["abcd1234abcd1234", "q83vEjSrzRKrzRI0q80SNA==", "abcd", "../etc"],
)
def test_remote_sources_refuse_what_is_not_a_whole_run_id_as_the_server_does(text: str) -> None:
    """Tempo and Jaeger refuse a text that is not 32 hex digits before asking anything, with
    the server's and the store's one-line reason (``run_id_form``)."""
    expected_message = f"not a run id (32 hex digits): {text!r}"
    messages = []
    with serve(Backend()) as backend:
        for source_type in (TempoSource, JaegerSource):
            with source_type(backend.url) as source, pytest.raises(RunNotFoundError) as refused:
                source.get_trace(text)
            messages.append(str(refused.value))
    assert ([expected_message] * 2, []) == (messages, backend.requests)


def test_a_whole_run_id_is_asked_for_in_lower_case_without_blanks(tmp_path: Path) -> None:
    """Upper-case digits and blanks around them are forgiven: Tempo is asked for the lower-case
    id, and an OTLP-JSON file yields the run's spans."""
    spans = example_spans(pipeline="alpha")
    run_id = spans[0].trace_id
    (tmp_path / "a.json").write_text(json.dumps(encode_traces(spans)) + "\n")
    with serve(Backend()) as backend, TempoSource(backend.url) as tempo:
        with pytest.raises(RunNotFoundError):
            tempo.get_trace(f" {run_id.upper()}\n")
        asked = list(backend.requests)
    found = OtlpJsonSource(tmp_path).get_trace(f" {run_id.upper()} ")
    expected = ([f"/api/v2/traces/{run_id}", f"/api/traces/{run_id}"], spans)
    assert expected == (asked, found)


def test_a_store_missing_for_a_lost_slash_says_so_in_its_one_error_line(
    home: Path, tmp_path: Path
) -> None:
    """``runs list --source sqlite:///tmp/.../x.db``, run where ``tmp`` is missing, finds no
    store: one line, exit 1, the four-slash form at its end. The hint was a line of its own,
    before the error and without its ``taskdaemon`` head."""
    relative = f"{str(tmp_path).lstrip('/')}/none.db"  # its first directory is at the root
    done = taskdaemon(home, "runs", "list", "--source", f"sqlite:///{relative}", cwd=tmp_path)
    said = (
        f"taskdaemon runs list: {relative}: no span store here "
        f"(sqlite:////{relative} names /{relative})\n"
    )
    assert (1, said) == (done.returncode, done.stderr)
