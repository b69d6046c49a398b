"""``JaegerSource`` against answers shaped exactly as Jaeger sends them (tests/fixtures/jaeger/,
its README says from which of Jaeger's source files), served by a local HTTP server: every
command reads from them what it reads from the embedded store for the same spans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from pipeline_remote_run_support import held_run_spans, jaeger_trace
from pipeline_tracking_support import T0, Backend, S, serve, write_example_run
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.tracking import JaegerSource, SpanStore, SqliteSpanProcessor

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "jaeger"
RUN_128 = "4bf92f3577b34da6a3ce929d0e0e4736"
RUN_64 = "000000000000000000f067aa0ba902b7"  # a 64-bit trace id, as API v3 spells it
ABSENT = "0123456789abcdef0123456789abcdef"
ERROR_TYPE = "text/plain; charset=utf-8"  # Go's http.Error, whatever the body holds
SINCE, UNTIL = "2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z"


class FixtureIds(IdGenerator):
    """The ids the fixtures were written with: the two runs' trace ids in turn, then span ids
    counting up from one base."""

    def __init__(self) -> None:
        self._traces = [int(RUN_128, 16), int(RUN_64, 16)]
        self._span = 0x51E0000000000000

    def generate_trace_id(self) -> int:
        return self._traces.pop(0)

    def generate_span_id(self) -> int:
        self._span += 0x0101
        return self._span


def _store_of_the_fixture_runs(db: Path) -> None:
    """The fixtures' two runs, written by the real store writer."""
    resource = Resource({"service.name": "taskdaemon", "service.version": "0.1.0"})
    provider = TracerProvider(resource=resource, id_generator=FixtureIds())
    provider.add_span_processor(SqliteSpanProcessor(db))
    assert RUN_128 == write_example_run(provider)
    assert RUN_64 == write_example_run(provider, t0=T0 + 60 * S, result=t.RESULT_FAILURE)
    provider.shutdown()


def _body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@contextmanager
def _jaeger(**routes: str) -> Iterator[Backend]:
    """A Jaeger v2 answering with the fixtures (``routes``: path → another fixture)."""
    with serve(Backend()) as backend:
        backend.route(f"/api/v3/traces/{RUN_128}", _body("api_v3_trace_128bit.json"))
        backend.route(f"/api/v3/traces/{RUN_64}", _body("api_v3_trace_64bit.json"))
        backend.route("/api/v3/traces", _body("api_v3_find_traces.json"))
        for path, name in routes.items():
            status = 400 if "bad_request" in name else 200
            content_type = "application/json" if status == 200 else ERROR_TYPE
            backend.route(path, _body(name), status, content_type)
        yield backend


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


#: Each command with the runs it reads; a JSON answer is compared decoded, so that a report's
#: ``source`` can be set aside (the bytes of every command are compared across every source by
#: ``pipeline_tracking_reconstruct_sources_test.py``).
COMMANDS = [
    ("runs", "list", "--json", "--since", SINCE, "--until", UNTIL),
    ("runs", "list", "--json", "--status", "failure", "--since", SINCE),
    ("runs", "list", "--since", SINCE, "--until", UNTIL),
    ("runs", "show", "--json", RUN_128),
    ("runs", "show", "--json", RUN_64),
    ("runs", "show", RUN_64),
    ("report", "--format", "json", "--since", SINCE, "--until", UNTIL),
    ("dag", "--run", RUN_128, "--format", "json"),
    ("dag", "--run", RUN_64, "--format", "mermaid"),
]


def _read(capsys: pytest.CaptureFixture[str], command: tuple[str, ...], source: str) -> object:
    """What ``command`` printed reading ``source`` (decoded when JSON, a report without the
    source it names), after checking that it succeeded and said nothing on stderr."""
    code, out, err = _cli(capsys, *command, "--source", source)
    assert (0, "") == (code, err), command
    if "--json" not in command and "json" not in command:
        return out
    document = json.loads(out)
    if command[0] == "report":
        assert source == document.pop("source")
    return document


@pytest.mark.slow
def test_every_command_reads_from_jaeger_what_it_reads_from_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``runs list``/``show``, ``report`` and ``dag`` give the same records whether the two
    runs come from the store or from Jaeger's answers."""
    db = tmp_path / "spans.db"
    _store_of_the_fixture_runs(db)
    with _jaeger() as jaeger:
        for command in COMMANDS:
            from_store = _read(capsys, command, f"sqlite:///{db}")
            assert from_store == _read(capsys, command, f"jaeger+{jaeger.url}"), command
    listed = _read(capsys, COMMANDS[0], f"sqlite:///{db}")
    assert isinstance(listed, list)
    assert [(RUN_64, "failure"), (RUN_128, "success")] == [
        (run["run_id"], run["status"]) for run in listed
    ]


def test_a_run_in_two_chunks_and_a_64_bit_run_are_read_whole(tmp_path: Path) -> None:
    """Both trace answers, and the search's one body holding both runs, rebuild the runs the
    store holds; the 16 leading zeros of a 64-bit id are kept, not taken for a short id."""
    db = tmp_path / "spans.db"
    _store_of_the_fixture_runs(db)
    with SpanStore(db) as store, _jaeger() as jaeger, JaegerSource(jaeger.url) as source:
        for run_id in (RUN_128, RUN_64):
            stored = sorted(store.get_trace(run_id), key=lambda span: span.span_id)
            assert stored == sorted(source.get_trace(run_id), key=lambda span: span.span_id)
            assert 7 == len(stored)
            assert store.get_run(run_id) == source.get_run(run_id)
        assert store.search(since=0) == source.search(since=0)


def test_the_grpc_gateway_stream_of_jaeger_1_reads_as_the_same_run() -> None:
    """Jaeger 1.x's grpc-gateway answer, one ``{"result": ...}`` chunk a line in proto-JSON,
    rebuilds the same run as Jaeger v2's one object."""
    stream = {f"/api/v3/traces/{RUN_128}": "grpc_gateway_trace_stream.jsonl"}
    with (
        _jaeger() as v2,
        _jaeger(**stream) as v1,
        JaegerSource(v2.url) as new,
        JaegerSource(v1.url) as old,
    ):
        assert new.get_run(RUN_128) == old.get_run(RUN_128)
        assert 7 == len(old.get_trace(RUN_128))


def test_a_stream_ending_in_an_error_is_one_line_with_jaegers_message() -> None:
    """A stream whose last chunk is an error object fails the read with that error's message,
    not the chunks before it as if they were the whole run."""
    stream = {f"/api/v3/traces/{RUN_128}": "grpc_gateway_stream_error.jsonl"}
    with (
        _jaeger(**stream) as jaeger,
        JaegerSource(jaeger.url) as source,
        pytest.raises(SpanSourceError) as caught,
    ):
        source.get_run(RUN_128)
    assert str(caught.value) == (
        f"{jaeger.url}/api/v3/traces/{RUN_128}: backend error: context deadline exceeded"
    )


@pytest.mark.parametrize(
    ("body", "status", "content_type"),
    [
        (_body("api_v3_not_found.txt"), 404, ERROR_TYPE),  # Jaeger v2, and 1.x from 1.53
        (b"", 200, "application/json"),  # 1.x's grpc-gateway: a stream of no chunk
    ],
    ids=["v2", "grpc-gateway"],
)
def test_nothing_found_is_no_run_and_an_empty_list(
    body: bytes, status: int, content_type: str
) -> None:
    """Jaeger's "nothing found", for a trace no such run, for a search no runs."""
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        jaeger.route(f"/api/v3/traces/{ABSENT}", body, status, content_type)
        jaeger.route("/api/v3/traces", body, status, content_type)
        with pytest.raises(RunNotFoundError) as caught:
            source.get_run(ABSENT)
        assert [] == source.search(since=0)
    assert f"no run {ABSENT} in Jaeger at {jaeger.url}" == str(caught.value)


def test_a_404_that_is_not_jaegers_says_the_address_is_wrong() -> None:
    """A 404 without Jaeger's error body (a wrong base path, a server without API v3) is not
    "no such run" nor "no runs": one line says what answered."""
    with serve(Backend()) as elsewhere, JaegerSource(f"{elsewhere.url}/jaeger") as source:
        for query in (lambda: source.get_run(RUN_128), lambda: source.search(since=0)):
            with pytest.raises(SpanSourceError) as caught:
                query()
            assert "HTTP 404: not found: not an answer of Jaeger's query API v3" in str(
                caught.value
            )


def test_a_refused_query_is_one_line_with_jaegers_message_and_no_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Jaeger's 400 to a search shows as its message on one line, and the URL's password
    nowhere."""
    refused = {"/api/v3/traces": "api_v3_bad_request.txt"}
    with _jaeger(**refused) as jaeger:
        source = jaeger.url.replace("http://", "jaeger+http://alice:s3cretpw@")
        code, out, err = _cli(capsys, "runs", "list", "--source", source)
    assert (1, "") == (code, out)
    assert 1 == err.count("\n")
    assert err.startswith("taskdaemon")
    assert "HTTP 400: malformed parameter query.start_time_min: parsing time" in err
    assert "s3cretpw" not in err
    assert '{"error"' not in err


def test_the_search_asks_what_every_jaeger_reads() -> None:
    """The search names the service, the run span's operation, the window in RFC 3339 and
    the number of traces under both names Jaeger has read it by."""
    with _jaeger() as jaeger, JaegerSource(jaeger.url, service="ci") as source:
        found = source.search(pipeline="demo", since=T0 / 1e9, until=T0 / 1e9 + 3600, limit=7)
        (request,) = jaeger.requests
    params = parse_qs(urlsplit(request).query)
    assert {
        "query.service_name": ["ci"],
        "query.operation_name": ["RUN demo"],
        "query.start_time_min": ["2023-11-14T22:13:20Z"],
        "query.start_time_max": ["2023-11-14T23:13:21Z"],
        "query.search_depth": ["7"],
        "query.num_traces": ["7"],
    } == params
    assert [RUN_64, RUN_128] == [summary.run_id for summary in found]


def test_an_empty_window_is_no_runs_without_asking() -> None:
    """``since`` after ``until``: no runs, as the store answers, where Jaeger would refuse the
    window with a 400."""
    with _jaeger() as jaeger, JaegerSource(jaeger.url) as source:
        assert [] == source.search(since=T0 / 1e9 + 10, until=T0 / 1e9)
        assert [] == jaeger.requests


@pytest.mark.parametrize("body", [b'"not found"', b'[{"error": {"message": "gone"}}]', b"5"])
def test_a_404_of_json_that_is_no_error_object_is_not_jaegers(body: bytes) -> None:
    """A 404 whose body is JSON but not Jaeger's error object (a string, an array, a number)
    is no Jaeger answer either: one line naming the body, as for any other 404, not a
    traceback."""
    with serve(Backend()) as elsewhere, JaegerSource(elsewhere.url) as source:
        elsewhere.route(f"/api/v3/traces/{RUN_128}", body, 404, ERROR_TYPE)
        with pytest.raises(SpanSourceError) as caught:
            source.get_run(RUN_128)
    assert str(caught.value) == (
        f"{elsewhere.url}/api/v3/traces/{RUN_128}: HTTP 404: {body.decode()}: "
        "not an answer of Jaeger's query API v3 (is the address right?)"
    )


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ('"deadline exceeded"', "backend error: deadline exceeded"),
        ('{"httpCode": 504, "message": 42}', "backend error: {'httpCode': 504, 'message': 42}"),
    ],
    ids=["text", "message-not-text"],
)
def test_a_stream_error_that_is_not_jaegers_shape_is_shown_whole(error: str, says: str) -> None:
    """A stream's last chunk an error whose value is not Jaeger's ``{"message": "..."}``: the
    read fails with that value shown as it is, on one line."""
    chunk = _body("grpc_gateway_stream_error.jsonl").splitlines()[0]
    stream = chunk + b'\n{"error": ' + error.encode() + b"}\n"
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        jaeger.route(f"/api/v3/traces/{RUN_128}", stream)
        with pytest.raises(SpanSourceError) as caught:
            source.get_run(RUN_128)
    assert str(caught.value) == f"{jaeger.url}/api/v3/traces/{RUN_128}: {says}"


def test_a_search_for_no_runs_asks_for_one_trace_not_jaegers_default() -> None:
    """``limit=0`` asks Jaeger for one trace under both names: 0 would be its own default."""
    with _jaeger() as jaeger, JaegerSource(jaeger.url) as source:
        source.search(since=T0 / 1e9, until=T0 / 1e9 + 3600, limit=0)
        (request,) = jaeger.requests
    params = parse_qs(urlsplit(request).query)
    assert (["1"], ["1"]) == (params["query.search_depth"], params["query.num_traces"])


async def test_a_run_listed_running_is_listed_ended_once_its_run_span_is_in() -> None:
    """Jaeger's search by service finds a run whose run span has not come (HELD waits for its
    approval): it is listed ``running`` with the one stage ended so far. Each search reads
    afresh, so a listing asked again (the runs page refreshes itself) lists the run ended, its
    three stages counted, once Jaeger has its run span; nothing kept the old row."""
    run_id, held, ended = await held_run_spans()
    listed = []
    with serve(Backend()) as jaeger, JaegerSource(jaeger.url) as source:
        for spans in (held, ended):
            jaeger.route("/api/v3/traces", jaeger_trace(spans))
            listed.append([(s.run_id, s.status, s.stage_count) for s in source.search()])
    assert [[(run_id, "running", 1)], [(run_id, "success", 3)]] == listed


@pytest.mark.slow
async def test_a_report_counts_a_jaeger_run_without_its_run_span_as_still_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Jaeger's search lists a run whose run span has not come (HELD waits for its approval),
    so a report over Jaeger leaves it out of the figures and says so in its note, as from the
    embedded store (docs/reports.md, "Runs that had not ended"); once the run span is in, the
    run is counted and no note is given."""
    run_id, held, ended = await held_run_spans()
    reports = []
    with serve(Backend()) as jaeger:
        for spans in (held, ended):
            jaeger.route("/api/v3/traces", jaeger_trace(spans))
            jaeger.route(f"/api/v3/traces/{run_id}", jaeger_trace(spans))
            code, out, err = _cli(
                capsys, "report", "--format", "json", "--source", f"jaeger+{jaeger.url}"
            )
            assert (0, "") == (code, err)
            document = json.loads(out)
            reports.append((document["notes"], [p["runs"] for p in document["pipelines"]]))
    note = (
        "held: 1 run that had not ended left out of the figures: 1 still running; see "
        'docs/reports.md, "Runs that had not ended"'
    )
    assert [([note], []), ([], [1])] == reports
