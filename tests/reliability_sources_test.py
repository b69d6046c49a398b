"""Remote span sources against hostile backends, and credentials in source URLs.

Real local HTTP servers (threads started here, stopped in teardown) stand in for Tempo: one
streams an endless body, one answers a search with a thousand ids, others answer with a few
megabytes that would decode to far more (the real answer of tests/fixtures/tempo with a
million attributes spliced in, among others). Backends that answer slowly or never:
``reliability_sources_deadlines_test.py``.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from reliability_sources_support import RUN_ID, Backend, answering, serving, show_run
from reliability_support import taskdaemon
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.errors import SettingsError, SpanSourceError
from taskdaemon.pipeline.tracking import JaegerSource, TempoSource, open_source
from taskdaemon.pipeline.tracking._remote import RemoteLimits, display_url, split_credentials
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tempo"


def _reply(server: Backend, handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    server.write(handler, data)


def _run_trace(trace_id: str, start_ns: int) -> dict[str, Any]:
    """A Tempo v1 answer holding one finished run span."""
    attributes = [
        {"key": t.CICD_PIPELINE_ACTION_NAME, "value": {"stringValue": t.RUN_ACTION}},
        {"key": t.CICD_PIPELINE_NAME, "value": {"stringValue": "p"}},
        {"key": t.CICD_PIPELINE_RESULT, "value": {"stringValue": t.RESULT_SUCCESS}},
    ]
    span = {
        "traceId": trace_id,
        "spanId": "00000000000000aa",
        "name": "RUN p",
        "kind": 2,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 1_000_000),
        "attributes": attributes,
    }
    return {"batches": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}


# --- a cap on results -----------------------------------------------------------------------------


def test_tempo_search_fetches_at_most_limit_traces_newest_first() -> None:
    """A search answered with 1,000 ids fetches only ``limit`` traces, the newest, and stops
    asking the v2 endpoint once an old Tempo answered on v1: 1 + 1 + limit requests."""
    ids = [f"{number:032x}" for number in range(1, 1001)]
    start = {trace_id: 1_700_000_000_000_000_000 + n * 10**9 for n, trace_id in enumerate(ids)}

    def tempo(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        path = handler.path.split("?", 1)[0]
        if path == "/api/search":
            found = [{"traceID": i, "startTimeUnixNano": str(start[i])} for i in ids]
            _reply(server, handler, 200, {"traces": found})
        elif path.startswith("/api/traces/"):
            trace_id = path.rsplit("/", 1)[1]
            _reply(server, handler, 200, _run_trace(trace_id, start[trace_id]))
        else:
            _reply(server, handler, 404, {"error": "not found"})

    with serving(tempo) as server, TempoSource(server.url) as source:
        runs = source.search(since=1_600_000_000, until=1_800_000_000, limit=5)
        paths = [path.split("?", 1)[0] for path, _ in server.requests]
    expected = (ids[-5:][::-1], 7, 1, 1)
    actual = (
        [run.run_id for run in runs],
        len(paths),
        paths.count("/api/search"),
        sum(p.startswith("/api/v2/") for p in paths),
    )
    assert expected == actual


def test_a_refused_search_names_its_url_in_at_most_200_characters() -> None:
    """The search's URL holds the filters a client sent (the web page's ``pipeline``, up to
    16 KiB): a Tempo that refuses it is named by the URL's start, not the whole query."""

    def refusing(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        _reply(server, handler, 400, {"error": "query too long"})

    with (
        serving(refusing) as server,
        TempoSource(server.url) as source,
        pytest.raises(SpanSourceError) as caught,
    ):
        source.search(pipeline="A" * 12_000)
    message = str(caught.value)
    assert (message.startswith(server.url), "A" * 200 in message, len(message) < 600) == (
        True,
        False,
        True,
    ), message[:600]


# --- a cap on the body ----------------------------------------------------------------------------


def test_an_endless_body_is_refused_at_the_size_cap() -> None:
    """A response that never ends is read only up to the cap, then refused with a one-line
    error naming the limit; the client stops reading (the server sees it go), so memory stays
    near the cap."""

    def endless(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # HTTP/1.0, no length: the body runs until the connection closes
        chunk = b"[" + b" " * 65535
        while not stop.is_set():
            server.write(handler, chunk)

    limits = RemoteLimits(deadline=30.0, max_bytes=2**20)
    with serving(endless) as server, TempoSource(server.url, limits=limits) as source:
        with pytest.raises(SpanSourceError) as caught:
            source.get_trace(RUN_ID)
        message = str(caught.value)
    expected = (True, True, 1)
    actual = (
        "response larger than 1048576 bytes" in message,
        server.sent < 64 * 2**20,
        len(message.splitlines()),
    )
    assert expected == actual, (message, server.sent)


@pytest.mark.slow
def test_runs_show_refuses_an_endless_body_in_one_line(home: Path) -> None:
    """``runs show`` against an endless body exits 2 with one line once
    TASKDAEMON_SOURCE_MAX_BYTES is read."""

    def endless(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.end_headers()
        while not stop.is_set():
            server.write(handler, b" " * 65536)

    with serving(endless) as server:
        done = show_run(home, server, TASKDAEMON_SOURCE_MAX_BYTES="1000000")
    expected = (1, 1, True)  # a source that cannot answer: exit 1
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        "response larger than 1000000 bytes" in done.stderr,
    )
    assert expected == actual, done.stderr


# --- answers dense in values ----------------------------------------------------------------------

#: The real Tempo v2 answer (tests/fixtures/tempo/README.md) and the run id of its trace.
TEMPO_V2 = (FIXTURES / "api_v2_traces_response.json").read_bytes()
TEMPO_V2_RUN = "5b8efff798038103d269b633813fc700"
#: Where its one span's attribute list opens, to splice attributes into.
_ATTRIBUTES = b'"attributes":['


def _with_attributes(attribute: bytes, count: int) -> bytes:
    """The real v2 answer with ``count`` more attributes ``attribute`` (each followed by a
    comma) on its span, ahead of its own."""
    head, _, tail = TEMPO_V2.rpartition(_ATTRIBUTES)
    return head + _ATTRIBUTES + attribute * count + tail


#: Answers of a few megabytes that each decode to tens or hundreds of megabytes: 2 million
#: empty lists, lists nested 90 deep (within the depth limit) side by side, and a million
#: attributes of 23 bytes on the real answer's span.
DENSE_ANSWERS = {
    "empty lists": b"[" + b"[]," * 2_000_000 + b"[]]",
    "nested lists": b"[" + (b"[" * 90 + b"]" * 90 + b",") * 30_000 + b"[]]",
    "tiny attributes": _with_attributes(b'{"key":"k","value":{}},', 1_000_000),
}


@pytest.mark.parametrize("kind", ["tempo", "jaeger"])
@pytest.mark.parametrize("answer", sorted(DENSE_ANSWERS))
def test_an_answer_dense_in_values_is_refused_before_it_is_decoded(kind: str, answer: str) -> None:
    """Tempo and Jaeger alike refuse an answer with more values than one per 8 bytes, in one
    line naming the URL and the count, whatever its shape."""
    body = DENSE_ANSWERS[answer]
    opened = TempoSource if kind == "tempo" else JaegerSource
    with serving(answering(body)) as server, opened(server.url) as source:
        with pytest.raises(SpanSourceError) as caught:
            source.get_trace(TEMPO_V2_RUN)
        message = str(caught.value)
    expected = (True, True, 1)
    actual = (
        message.startswith(server.url),
        f"JSON body holds {_values(body)} values in {len(body)} bytes" in message,
        len(message.splitlines()),
    )
    assert expected == actual, message


def _values(body: bytes) -> int:
    """The values of one of the answers above (its strings hold no bracket nor comma)."""
    return body.count(b"[") + body.count(b"{") + body.count(b",")


def test_a_real_answer_with_many_real_attributes_is_read_within_the_bound() -> None:
    """The real answer with 50,000 more attributes as Tempo writes them (a key and a string
    value each) is not refused: it is read, its span keeping the first ``MAX_SPAN_ITEMS``
    attributes (``spans.bounded``); the span's own one, after them, is counted as not read."""
    attribute = b'{"key":"stage.output.field","value":{"stringValue":"a value, of text"}},'
    body = _with_attributes(attribute, 50_000)
    with serving(answering(body)) as server, TempoSource(server.url) as source:
        (span,) = source.get_trace(TEMPO_V2_RUN)
    assert ({"stage.output.field": "a value, of text"}, 50_001 - MAX_SPAN_ITEMS) == (
        dict(span.attributes),
        span.dropped_attributes,
    )


@pytest.mark.slow
def test_runs_show_refuses_a_dense_answer_in_one_line(home: Path) -> None:
    """``runs show`` against an answer of 2 million empty lists exits 1 with one line."""
    body = DENSE_ANSWERS["empty lists"]
    with serving(answering(body)) as server:
        done = show_run(home, server, TEMPO_V2_RUN)
    expected = (1, 1, True)
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        f"holds {_values(body)} values in {len(body)} bytes" in done.stderr,
    )
    assert expected == actual, done.stderr


@pytest.mark.slow
def test_runs_list_refuses_a_dense_otlp_json_file_in_one_line(home: Path) -> None:
    """An OTLP-JSON file holding a span with a million tiny attributes is refused by ``runs
    list`` in one line (a line of JSON lines that dense is skipped with a warning, as any
    undecodable line)."""
    path = home / "dense.json"
    body = DENSE_ANSWERS["tiny attributes"]
    path.write_bytes(body)
    done = taskdaemon(home, "runs", "list", "--source", f"otlp-json://{path}", timeout=60)
    expected = (1, 1, True)
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        f"{path}: holds {_values(body)} values in {len(body)} bytes" in done.stderr,
    )
    assert expected == actual, done.stderr


@pytest.mark.parametrize("value", ["0", "-1", "abc", "inf", "nan"])
def test_invalid_limits_are_one_line_errors(value: str) -> None:
    """A limit that is not a finite positive number is a wrong setting, naming the variable."""
    with pytest.raises(SettingsError, match="TASKDAEMON_SOURCE_TIMEOUT"):
        RemoteLimits.from_env({"TASKDAEMON_SOURCE_TIMEOUT": value})


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "1e3", "many"])
def test_an_invalid_size_cap_is_a_one_line_error(value: str) -> None:
    """A size cap that is not a whole number above 0 is a wrong setting, naming the variable."""
    with pytest.raises(SettingsError, match="TASKDAEMON_SOURCE_MAX_BYTES"):
        RemoteLimits.from_env({"TASKDAEMON_SOURCE_MAX_BYTES": value})


def test_limits_are_read_from_their_variables_below_one_too() -> None:
    """Both limits are taken from their variables (a deadline under a second and a cap of one
    byte included); unset or blank is the default."""
    given = {"TASKDAEMON_SOURCE_TIMEOUT": " 0.25 ", "TASKDAEMON_SOURCE_MAX_BYTES": "1"}
    blank = {"TASKDAEMON_SOURCE_TIMEOUT": " ", "TASKDAEMON_SOURCE_MAX_BYTES": ""}
    assert (
        RemoteLimits.from_env(given),
        RemoteLimits.from_env(blank),
        RemoteLimits.from_env({}),
    ) == (RemoteLimits(deadline=0.25, max_bytes=1), RemoteLimits(), RemoteLimits())


# --- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("tempo+http://user:s3cret@tempo:3200/x", "tempo+http://user:[REDACTED]@tempo:3200/x"),
        ("tempo+https://u:p%40ss@[::1]:3200", "tempo+https://u:[REDACTED]@[::1]:3200"),
        ("jaeger+http://u:a@b@host?org=1", "jaeger+http://u:[REDACTED]@host?org=1"),
        ("tempo+http://user@tempo:3200", "tempo+http://user@tempo:3200"),
        ("tempo+http://user:pa:ss@tempo", "tempo+http://user:[REDACTED]@tempo"),
        ("tempo+http://Xu:s3cret@tempo/a@b/c", "tempo+http://Xu:[REDACTED]@tempo/a@b/c"),
        (
            "tempo+http://u:s3cret@tempo/x?to=http://a:b@c",
            "tempo+http://u:[REDACTED]@tempo/x?to=http://a:b@c",
        ),
        ("://user:s3cret@tempo", "://user:[REDACTED]@tempo"),
        ("tempo+http://tempo:3200/a@b", "tempo+http://tempo:3200/a@b"),
        ("sqlite:///var/spans.db", "sqlite:///var/spans.db"),
    ],
)
def test_display_url_hides_only_the_password(url: str, shown: str) -> None:
    """A password in a URL's user information is shown as ``[REDACTED]``; the rest stays."""
    assert shown == display_url(url)


def test_credentials_go_as_basic_auth_and_never_into_messages() -> None:
    """A source URL's user and password reach the backend as HTTP basic auth; the error a
    failing backend causes names the URL without them."""

    def failing(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        _reply(server, handler, 500, {"error": "boom"})

    with serving(failing) as server:
        url = server.url.replace("http://", "tempo+http://user:s3cret@")
        source = open_source(url, backoff=0.0)
        with source, pytest.raises(SpanSourceError) as caught:
            source.get_trace(RUN_ID)
        authorizations = {auth for _, auth in server.requests}
    expected_auth = "Basic " + base64.b64encode(b"user:s3cret").decode()
    expected = ({expected_auth}, False, True)
    actual = (authorizations, "s3cret" in str(caught.value), "HTTP 500" in str(caught.value))
    assert expected == actual


@pytest.mark.parametrize(
    "url",
    [
        "tempo+http://user:s3cret@host:99999",
        "tempo+http://user:s3cret@",
        "nosuch://user:s3cret@host",
    ],
)
def test_bad_source_urls_are_refused_without_their_password(url: str) -> None:
    """A source URL refused as malformed or unknown is echoed without its password, its user
    still shown (``user:[REDACTED]@``, for an unknown scheme as for a bad host or port)."""
    with pytest.raises(SpanSourceError) as caught:
        open_source(url)
    assert ("s3cret" in str(caught.value), "user:" in str(caught.value)) == (False, True)


@pytest.mark.parametrize(
    ("url", "split"),
    [
        ("http://user:p%40ss@tempo:3200/x", ("http://tempo:3200/x", ("user", "p@ss"))),
        ("http://us%40er:pw@tempo", ("http://tempo", ("us@er", "pw"))),
        ("http://u:a@b@tempo/x@y", ("http://tempo/x@y", ("u", "a@b"))),
        ("http://:p:w@tempo", ("http://tempo", ("", "p:w"))),
        ("http://tempo/x@y", ("http://tempo/x@y", None)),
    ],
)
def test_split_credentials_decodes_percent_escapes(
    url: str, split: tuple[str, tuple[str, str] | None]
) -> None:
    """The URL without its user information, and the user and password it held, decoded as
    the HTTP client reads them: the last ``@`` of the authority ends them, the first ``:``
    parts them (``user:p%40ss@host`` gives ``("user", "p@ss")``)."""
    assert split == split_credentials(url)
