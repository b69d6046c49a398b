"""``tracking.http_sources``: the Tempo and Jaeger sources against a local HTTP server, each
error branch's whole line (status boundaries, tries, the deadline, redirects, bodies that are
not JSON or not UTF-8), Tempo's old API remembered, the search's filters and window, and what
a search answer holds that is not a usable hit."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cli_support import free_port
from pipeline_tracking_support import T0, Backend, S, example_spans, serve
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.tracking import JaegerSource, TempoSource, encode_traces, open_source
from taskdaemon.pipeline.tracking._remote import RemoteLimits

RUN = "c" * 32
START = T0 / S  # the example run's start, in seconds


def _refusal(source: TempoSource | JaegerSource, run_id: str = RUN) -> str:
    """The one line ``source.get_trace`` fails with."""
    with pytest.raises(SpanSourceError) as caught:
        source.get_trace(run_id)
    return str(caught.value)


@pytest.mark.parametrize(("status", "tries"), [(400, 1), (499, 1), (500, 3)])
def test_a_server_error_is_tried_again_and_a_client_error_is_not(status: int, tries: int) -> None:
    """From 500 up an answer is tried three times, then said with its count; from 400 up it is
    said at once."""
    with serve(Backend()) as tempo, TempoSource(tempo.url, backoff=0.01) as source:
        tempo.route(f"/api/v2/traces/{RUN}", b"boom", status)
        message = _refusal(source)
        asked = len(tempo.requests)
    said = f"{tempo.url}/api/v2/traces/{RUN}: HTTP {status}: boom"
    expected = said + (f" (after {tries} tries)" if status >= 500 else "")
    assert (expected, tries) == (message, asked)


@pytest.mark.parametrize(("retries", "tries"), [(0, 1), (1, 1), (2, 2)])
def test_retries_below_one_still_ask_once(retries: int, tries: int) -> None:
    """``retries`` is the number of tries, at least one."""
    with (
        serve(Backend()) as tempo,
        TempoSource(tempo.url, retries=retries, backoff=0.01) as source,
    ):
        tempo.route(f"/api/v2/traces/{RUN}", b"boom", 502)
        message = _refusal(source)
        asked = len(tempo.requests)
    assert (f"HTTP 502: boom (after {tries} tries)", tries) == (
        message.partition(f"{RUN}: ")[2],
        asked,
    )


def test_a_backend_nobody_listens_on_is_said_with_the_error_and_the_tries() -> None:
    """A refused connection names the URL, the transport error's type, and the tries."""
    url = f"http://127.0.0.1:{free_port()}"
    with TempoSource(url, backoff=0.01) as source:
        message = _refusal(source)
    said = f"cannot reach {url}/api/v2/traces/{RUN}: ConnectError: "
    assert (True, True) == (message.startswith(said), message.endswith(" (after 3 tries)"))


@pytest.mark.parametrize(
    ("deadline", "backoff", "tries"),
    [(5.0, 10.0, 1), (2.5, 1.0, 2)],
    ids=["first-pause", "second-pause"],
)
def test_a_retry_that_would_end_past_the_deadline_is_not_made(
    deadline: float, backoff: float, tries: int
) -> None:
    """When the pause before the next try reaches past the query's deadline, the query ends
    at once, naming the deadline, its variable and the last error: after the first try when
    the first pause does, after two when the second (twice the first) does, never saying
    three tries it did not make."""
    limits = RemoteLimits(deadline=deadline)
    with (
        serve(Backend()) as tempo,
        TempoSource(tempo.url, backoff=backoff, limits=limits) as source,
    ):
        tempo.route(f"/api/v2/traces/{RUN}", b"boom", 503)
        message = _refusal(source)
        asked = len(tempo.requests)
    url = f"{tempo.url}/api/v2/traces/{RUN}"
    said = (
        f"{url}: no complete answer within {deadline:g} s (TASKDAEMON_SOURCE_TIMEOUT); "
        f"last error: {url}: HTTP 503: boom"
    )
    assert (said, tries) == (message, asked)


def test_a_query_whose_deadline_passed_before_it_asked_says_so_alone() -> None:
    """A query out of time before its first request sends none, and names no last error."""
    limits = RemoteLimits(deadline=1e-9)
    with serve(Backend()) as tempo, TempoSource(tempo.url, limits=limits) as source:
        message = _refusal(source)
        asked = tempo.requests
    url = f"{tempo.url}/api/v2/traces/{RUN}"
    said = f"{url}: no complete answer within 1e-09 s (TASKDAEMON_SOURCE_TIMEOUT)"
    assert (said, []) == (message, asked)


def test_the_requests_of_one_query_share_its_deadline() -> None:
    """An old Tempo's answers (v2's 404, then v1's trace) that each come within the deadline
    but not both end the query at the deadline (``TASKDAEMON_SOURCE_TIMEOUT`` bounds a query,
    every request included)."""
    spans = example_spans()
    run_id = spans[0].trace_id
    limits = RemoteLimits(deadline=1.0)
    with serve(Backend(delay=0.6)) as tempo, TempoSource(tempo.url, limits=limits) as source:
        tempo.route(f"/api/traces/{run_id}", {"batches": encode_traces(spans)["resourceSpans"]})
        message = _refusal(source, run_id)
    assert "no complete answer within 1 s (TASKDAEMON_SOURCE_TIMEOUT)" in message


def test_a_last_try_the_deadline_cut_says_the_deadline() -> None:
    """A query whose one try is cut by the deadline names the deadline, not its tries."""
    limits = RemoteLimits(deadline=0.5)
    with (
        serve(Backend(delay=5)) as tempo,
        TempoSource(tempo.url, retries=1, limits=limits) as source,
    ):
        message = _refusal(source)
    said = f"{tempo.url}/api/v2/traces/{RUN}: no complete answer within 0.5 s"
    assert message.startswith(f"{said} (TASKDAEMON_SOURCE_TIMEOUT); last error: "), message


@pytest.mark.parametrize(
    ("scheme", "path", "key", "tenant"),
    [
        ("tempo+", "/api/v2/traces/", "trace", {"x-scope-orgid": "acme"}),
        ("jaeger+", "/api/v3/traces/", "result", {}),
    ],
)
def test_a_source_asks_for_json_and_for_the_tenant_its_url_names(
    scheme: str, path: str, key: str, tenant: dict[str, str]
) -> None:
    """A request asks for JSON; Tempo's carries the tenant of ``?org=`` (``X-Scope-OrgID``),
    Jaeger's none."""
    spans = example_spans()
    run_id = spans[0].trace_id
    with serve(Backend()) as backend, open_source(f"{scheme}{backend.url}?org=acme") as source:
        backend.route(path + run_id, {key: encode_traces(spans)})
        source.get_trace(run_id)
    asked = [
        {name: value for name, value in headers.items() if name in ("accept", "x-scope-orgid")}
        for headers in backend.headers
    ]
    assert [{"accept": "application/json", **tenant}] == asked


def test_an_answer_past_the_size_cap_is_refused_naming_its_url() -> None:
    """A body larger than ``TASKDAEMON_SOURCE_MAX_BYTES`` is refused in one line naming the
    URL asked."""
    limits = RemoteLimits(max_bytes=10)
    with serve(Backend()) as tempo, TempoSource(tempo.url, limits=limits) as source:
        tempo.route(f"/api/v2/traces/{RUN}", b"x" * 11)
        message = _refusal(source)
    url = f"{tempo.url}/api/v2/traces/{RUN}"
    assert f"{url}: response larger than 10 bytes (TASKDAEMON_SOURCE_MAX_BYTES); refused" == message


@pytest.mark.parametrize(
    ("body", "says"), [(b"", "Bad Request"), (b"\xffdenied", "\N{REPLACEMENT CHARACTER}denied")]
)
def test_an_error_answer_is_said_by_its_body_or_else_its_reason(body: bytes, says: str) -> None:
    """An empty error body is said by the status's reason; one not UTF-8 as far as it reads."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/v2/traces/{RUN}", body, 400)
        message = _refusal(source)
    assert f"HTTP 400: {says}" == message.partition(f"{RUN}: ")[2]


@pytest.mark.parametrize(
    ("status", "location", "target"),
    [
        (300, None, "nowhere"),
        (399, "/login", "/login"),
        (307, "http://elsewhere.invalid/" + "a" * 1000, "http://elsewhere.invalid/" + "a" * 174),
    ],
)
def test_a_redirect_is_one_line_with_its_target_cut(
    status: int, location: str | None, target: str
) -> None:
    """Every 3xx is a redirect not followed; without a Location it goes nowhere, and a long
    one is cut to 200 characters."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/v2/traces/{RUN}", b"", status)
        tempo.location = location
        message = _refusal(source)
    cut = "…" if len(target) < len(location or "nowhere") else ""
    expected = f"HTTP {status}, a redirect not followed, to {target}{cut}"
    assert expected == message.partition(f"{RUN}: ")[2]


@pytest.mark.parametrize(
    ("location", "target"),
    [
        ("https://sso.invalid/login?code=4%2F0AX&state=s3cr3t#frag", "https://sso.invalid/login?…"),
        ("/login#session=abc", "/login?…"),
        ("http://evil.invalid/x?pw=secret", "http://evil.invalid/x?…"),
    ],
)
def test_a_redirect_target_is_said_without_its_query(location: str, target: str) -> None:
    """A sign-in page's redirect carries a code, a state or a token in its query or fragment
    under names no redaction knows: the line names the host and path only. The target ends the
    line: ``?pw=secret: not followed`` was redacted to ``?pw=secret: [REDACTED] followed``."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/v2/traces/{RUN}", b"", 302)
        tempo.location = location
        message = _refusal(source)
    assert f"HTTP 302, a redirect not followed, to {target}" == message.partition(f"{RUN}: ")[2]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            b'{"traces": [{"traceID": "\xff"}]}',
            "(30 bytes): not UTF-8 (invalid start byte at byte 25)",
        ),
        (b'{"traces": [', """(12 bytes): '{"traces": ['"""),
        (b"\n \n", '(3 bytes): "\\n \\n"'),
    ],
    ids=["not-utf8", "cut", "blank-lines"],
)
def test_a_body_that_is_not_json_names_its_size_and_why(body: bytes, says: str) -> None:
    """A body that is not UTF-8 says where it stops being so; one that is not JSON (nor JSON
    lines) is quoted."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route("/api/search", body)
        with pytest.raises(SpanSourceError) as caught:
            source.search()
    assert f"malformed JSON body {says}" == str(caught.value).partition(": ")[2]


def test_json_lines_with_blank_lines_between_are_read_as_one_answer() -> None:
    """A stream of JSON lines (grpc-gateway's) with blank lines between its chunks is read
    whole; a chunk holding a result beside an error is read for its result."""
    spans = example_spans()
    run_id = spans[0].trace_id
    first = {"result": encode_traces(spans[:2]), "error": {"message": "partial"}}
    rest = {"result": encode_traces(spans[2:])}
    body = f"{json.dumps(first)}\n\n  \n{json.dumps(rest)}\n".encode()
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        jaeger.route(f"/api/v3/traces/{run_id}", body)
        read = source.get_trace(run_id)
    assert sorted(span.span_id for span in spans) == sorted(span.span_id for span in read)


def _read_warned(
    caplog: pytest.LogCaptureFixture, document: dict[str, Any], run_id: str
) -> tuple[int, list[str], str]:
    """``get_trace(run_id)`` of a Tempo answering ``{"trace": document}``: how many spans it
    read, the warnings said meanwhile, and the URL of the answer."""
    with (
        caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"),
        serve(Backend()) as tempo,
        TempoSource(tempo.url) as source,
    ):
        tempo.route(f"/api/v2/traces/{run_id}", {"trace": document})
        read = source.get_trace(run_id)
    warnings = [record.getMessage() for record in caplog.records]
    return len(read), warnings, f"{tempo.url}/api/v2/traces/{run_id}"


def test_a_malformed_span_in_an_answer_is_one_warning_naming_its_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The spans of an answer that can be read are; the one that cannot is said in a warning
    naming the answer's URL."""
    spans = example_spans()
    document = encode_traces(spans)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"].append({"spanId": "zz"})
    read, warnings, url = _read_warned(caplog, document, spans[0].trace_id)
    said = f"{url}: skipped 1 malformed span (the first, zz: "
    assert (len(spans), [True]) == (read, [w.startswith(said) for w in warnings]), warnings


def test_spans_of_another_trace_in_an_answer_are_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A trace answer whose spans claim another trace id besides the run's own: the run is
    read from its own spans, and the others, once left out without a word, are counted in one
    warning naming the first and its trace."""
    spans = example_spans()
    document = encode_traces(spans)
    own = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    own.extend({**own[0], "traceId": "e" * 32, "spanId": f"{n:016x}"} for n in (1, 2))
    read, warnings, url = _read_warned(caplog, document, spans[0].trace_id)
    said = f"{url}: skipped 2 spans of other traces (the first, 0000000000000001, of trace "
    assert (len(spans), [said + "e" * 32 + ")"]) == (read, warnings)


def test_a_missing_run_names_the_backend_and_its_address_without_a_slash() -> None:
    """A run neither Tempo API has, and an answer holding only another run's spans, are both
    "no run", naming the address as given less its last slash (its path kept to the end, a
    last ``X`` too)."""
    spans = example_spans()
    with serve(Backend()) as tempo, TempoSource(f"{tempo.url}/tempo/X/") as source:
        tempo.route(f"/tempo/X/api/v2/traces/{RUN}", {"trace": encode_traces(spans)})
        said = []
        for run_id in (RUN, "d" * 32):
            with pytest.raises(RunNotFoundError) as caught:
                source.get_trace(run_id)
            said.append(str(caught.value))
    assert [f"no run {run} in Tempo at {tempo.url}/tempo/X" for run in (RUN, "d" * 32)] == said


def test_tempo_v1_is_remembered_once_it_answered_where_v2_did_not() -> None:
    """An old Tempo (v2 answers 404, v1 the trace) is asked v1 only from then on; a run that
    neither has teaches nothing."""
    spans = example_spans()
    run_id = spans[0].trace_id
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/traces/{run_id}", {"batches": encode_traces(spans)["resourceSpans"]})
        for _ in range(2):
            with pytest.raises(RunNotFoundError):
                source.get_trace(RUN)
        reads = [len(source.get_trace(run_id)) for _ in range(2)]
    v1, v2 = "/api/traces/", "/api/v2/traces/"
    assert (
        [v2 + RUN, v1 + RUN, v2 + RUN, v1 + RUN, v2 + run_id, v1 + run_id, v1 + run_id],
        [len(spans)] * 2,
    ) == (tempo.requests, reads)


@pytest.mark.parametrize(
    ("status", "condition"),
    [
        ("failure", 'span.cicd.pipeline.result =~ "failure|error|timeout"'),
        ("cancelled", 'span.cicd.pipeline.result =~ "cancellation|skip"'),
        ("other", None),
    ],
)
def test_tempo_search_asks_for_each_status_and_keeps_only_it(
    status: str, condition: str | None
) -> None:
    """Each finished status is a TraceQL condition; the runs found are kept only when they
    have that status (a successful run is not a failed one)."""
    spans = example_spans()
    run_id = spans[0].trace_id
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route("/api/search", {"traces": [{"traceID": run_id}]})
        tempo.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        found = source.search(status=status, since=START, until=START)
        query = parse_qs(urlsplit(tempo.requests[0]).query)["q"][0]
    conditions = ['span.cicd.pipeline.action.name = "RUN"', *([condition] if condition else [])]
    assert ("{ " + " && ".join(conditions) + " }", []) == (query, found)


@pytest.mark.parametrize("status", ["running", "paused", "interrupted", "pending"])
def test_tempo_search_for_an_open_run_asks_nothing(status: str) -> None:
    """A backend holds finished runs only: a search for an open one is empty, unasked."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        assert ([], []) == (source.search(status=status), tempo.requests)


@pytest.mark.parametrize(
    ("since", "until", "listed"),
    [
        (START, START, True),
        (START + 0.5, None, False),
        (None, START - 0.5, False),
    ],
)
def test_tempo_search_keeps_runs_started_within_its_bounds(
    since: float | None, until: float | None, listed: bool
) -> None:
    """A run found is listed when it started within ``since`` and ``until``, both included."""
    spans = example_spans()
    run_id = spans[0].trace_id
    with (
        serve(Backend()) as tempo,
        TempoSource(tempo.url, clock=lambda: START + 3600) as source,
    ):
        tempo.route("/api/search", {"traces": [{"traceID": run_id}]})
        tempo.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        found = source.search(since=since, until=until)
    assert ([run_id] if listed else []) == [summary.run_id for summary in found]


def test_tempo_search_without_bounds_asks_for_the_week_to_now() -> None:
    """Without ``since`` nor ``until`` the window is the week up to the clock's now (its end
    one second past it); Tempo's answer of nothing found (``metrics`` only) is no runs."""
    with serve(Backend()) as tempo, TempoSource(tempo.url, clock=lambda: 1_000_000.5) as source:
        tempo.route("/api/search", {"metrics": {}})
        found = source.search()
        params = parse_qs(urlsplit(tempo.requests[0]).query)
    expected = ([], ["395200"], ["1000001"], ["100"])
    assert expected == (found, params["start"], params["end"], params["limit"])


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"traces": {}},
        {"traces": None},
        "traces",
        {},
        {"trace": None},
        {"result": [1, 2, 3]},
        {"metrics": 5},
        {"data": [], "status": "success"},
    ],
)
def test_a_search_answer_of_another_shape_is_one_line(body: object) -> None:
    """A search answer that is not an object with a list of traces, nor Tempo's answer of
    nothing found (``metrics`` without ``traces``), says so in one line: ``{}`` or another
    service's JSON at the address was read as no runs, exit 0."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route("/api/search", body)
        with pytest.raises(SpanSourceError) as caught:
            source.search()
    said = "not a Tempo search response (an object with a list of traces, or metrics when none"
    assert said == str(caught.value).partition(": ")[2][: len(said)]


@pytest.mark.parametrize(
    "body",
    [
        {"metrics": {}},
        {"metrics": {"inspectedBytes": "292781", "completedJobs": 1, "totalJobs": 1}},
        {"traces": [], "metrics": {}},
    ],
)
def test_tempos_answer_of_nothing_found_is_no_runs(body: object) -> None:
    """Tempo leaves an empty ``traces`` out of its search answer (gogo ``jsonpb``, defaults
    not written) and always writes ``metrics``: such an answer is no runs, with no trace
    fetched."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route("/api/search", body)
        found = source.search()
        asked = [path.partition("?")[0] for path in tempo.requests]
    assert ([], ["/api/search"]) == (found, asked)


@pytest.mark.parametrize("start", [None, '"soon"', "null", "1e999", '"1e3"'])
def test_a_hit_without_a_usable_start_is_taken_as_the_oldest(start: str | None) -> None:
    """``limit`` keeps the newest hits: one whose start is missing or not an integer (too
    large for one included) comes after a hit that started at 1 ns."""
    older, unknown = "a" * 32, "f" * 32
    field = "" if start is None else f', "startTimeUnixNano": {start}'
    body = (
        f'{{"traces": [{{"traceID": "{older}", "startTimeUnixNano": "1"}}, '
        f'{{"traceID": "{unknown}"{field}}}]}}'
    )
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route("/api/search", body.encode())
        source.search(limit=1)
        fetched = {path.rpartition("/")[2] for path in tempo.requests[1:]}
    assert {older} == fetched


def test_a_tempo_search_for_no_runs_fetches_no_trace() -> None:
    """``limit=0`` fetches none of the hits."""
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route("/api/search", {"traces": [{"traceID": RUN, "startTimeUnixNano": "1"}]})
        found = source.search(limit=0)
        asked = [path.partition("?")[0] for path in tempo.requests]
    assert ([], ["/api/search"]) == (found, asked)


@pytest.mark.parametrize(
    ("given", "environment", "asked"),
    [("ci", "svc", "ci"), (None, "svc", "svc"), (None, "", "taskdaemon")],
)
def test_jaeger_is_asked_for_the_service_given_then_the_sdks_then_taskdaemon(
    monkeypatch: pytest.MonkeyPatch, given: str | None, environment: str, asked: str
) -> None:
    """The service searched is the one given, else ``OTEL_SERVICE_NAME``, else taskdaemon."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", environment)
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url, service=given) as source:
        jaeger.route("/api/v3/traces", b"")
        source.search(since=0)
        params = parse_qs(urlsplit(jaeger.requests[0]).query)
    assert [asked] == params["query.service_name"]


@pytest.mark.parametrize(("after", "asks"), [(1, False), (0.5, True), (0, True)])
def test_jaeger_searches_a_window_of_any_part_of_a_second(after: float, asks: bool) -> None:
    """Jaeger is asked for ``since`` to ``until`` plus one second: empty only when ``since``
    is a whole second or more after ``until``."""
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        jaeger.route("/api/v3/traces", b"")
        found = source.search(since=START + after, until=START)
    assert ([], asks) == (found, bool(jaeger.requests))


def test_jaeger_search_without_bounds_asks_for_the_week_to_now() -> None:
    """Without ``since`` nor ``until``, the week up to the clock's now, one second more."""
    with (
        serve(Backend()) as jaeger,
        JaegerSource(jaeger.url, clock=lambda: START + 3600) as source,
    ):
        jaeger.route("/api/v3/traces", b"")
        source.search()
        params = parse_qs(urlsplit(jaeger.requests[0]).query)
    assert (["2023-11-07T23:13:20Z"], ["2023-11-14T23:13:21Z"]) == (
        params["query.start_time_min"],
        params["query.start_time_max"],
    )
