"""The SDK's own variables (``otel_variables``; docs/architecture.md, "Settings"): a value
the SDK would raise on, warn about or misread stops ``taskdaemon run`` at start, in one line
naming the variable, what it takes and the value; what the SDK takes passes, and a gRPC
exporter gets every compression the specification names."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from cli_support import (
    BEARER_SESSION,
    NOT_CREDENTIALS,
    ONE_STAGE_PIPELINE,
    credential_provider,
    taskdaemon,
    write,
)
from taskdaemon.pipeline.otel_variables import (
    GRPC_STATUS_CODES,
    VARIABLES,
    compression,
    sdk_problems,
)
from taskdaemon.pipeline.telemetry import run_span_name, stage_span_name

#: Per variable, a value refused and what the one line must say (besides the variable).
REFUSED = [
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc", "valid number, unable to parse string"),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10000", "less than or equal to 300, not '10000'"),
    ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "", "(seconds: the Python SDK's unit"),
    ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "0", "greater than 0, not '0'"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zip", "must be gzip, deflate or none, not 'zip'"),
    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "", "must be gzip, deflate or none, not ''"),
    ("OTEL_BSP_SCHEDULE_DELAY", "abc", "whole number more than 0, of at most 18 digits"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", "whole number more than 0, of at most 18 digits"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "0", "whole number more than 0, of at most 18 digits"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "５", "whole number more than 0"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "1.5", "whole number of 0 or more"),
    ("OTEL_BLRP_EXPORT_TIMEOUT", "1" + "0" * 18, "of at most 18 digits, not '1000000000000000000'"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096", "at most the queue's size (OTEL_BSP_MAX_QUEUE_SIZE"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "inf", "finite number of milliseconds, not 'inf'"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "-5", "greater than 0, not '-5'"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "readable file, not '/nonexistent"),
    ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "", "must name a readable file, not ''"),
    ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/", "must name a readable file, not '/'"),
    ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "1", "must be true or false, not '1'"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "foo", "must be grpc or http/protobuf, not 'foo'"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "Bearer S3cr3tT0ken9f8e7d", "member 1 of 1 is not one"),
    (
        "OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES",
        "unavailable, BUSY",
        "gRPC status codes separated by commas (UNAVAILABLE, ...), not 'unavailable, BUSY'",
    ),
    (
        "OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER",
        "S3cr3tT0ken9f8e7d",
        "names no installed credential provider (entry points opentelemetry_otlp_credential_",
    ),
    ("OTEL_PYTHON_EXPORTER_OTLP_GRPC_LOGS_CREDENTIAL_PROVIDER", " ", "names no installed"),
    (
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
        "S3cr3tT0ken9f8e7d",
        "names no installed credential provider (entry points opentelemetry_otlp_credential_",
    ),
]


@pytest.mark.parametrize(("variable", "value", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_value_the_sdk_would_not_take_stops_a_run_in_one_line(
    tmp_path: Path, variable: str, value: str, why: str
) -> None:
    """Before, ``run`` went on without telemetry (a traceback's message in a warning, the run
    unrecorded), or the SDK logged a warning or a traceback and took its default; now the run
    never starts, and the line does not echo a header's text."""
    home = tmp_path / "home"
    pipeline = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, "run", str(pipeline), **{variable: value})
    lines = done.stderr.splitlines()
    prefix = f"taskdaemon: invalid setting {variable}: "
    assert (2, "", 1, True, True, False, False) == (
        done.returncode,
        done.stdout,
        len(lines),
        done.stderr.startswith(prefix),
        why in done.stderr,
        "S3cr3tT0ken9f8e7d" in done.stderr,
        home.exists(),
    ), done.stderr


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_TIMEOUT": " 2.5 ", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "300"},
        {"OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP", "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "none"},
        {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": " 100 "},
        {"OTEL_BLRP_SCHEDULE_DELAY": "1", "OTEL_BLRP_EXPORT_TIMEOUT": "0"},
        {"OTEL_METRIC_EXPORT_INTERVAL": "1.5", "OTEL_METRIC_EXPORT_TIMEOUT": "30000"},
        {"OTEL_SPAN_EVENT_COUNT_LIMIT": "", "OTEL_ATTRIBUTE_COUNT_LIMIT": "0"},
        {"OTEL_EXPORTER_OTLP_CLIENT_KEY": __file__, "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "False"},
        {"OTEL_EXPORTER_OTLP_TRACES_INSECURE": "TRUE", "OTEL_BSP_SCHEDULE_DELAY": "9" * 18},
        {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "2048"},
        {
            "OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES": " unavailable ,Data_Loss,",
            "OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER": "",
        },
    ],
)
def test_values_the_sdk_takes_pass(environ: dict[str, str]) -> None:
    """Spaces around a value, any case of a compression, a batch as large as its queue, a 0
    the SDK reads as a bound (an export timeout it does not use, a limit), an empty limit, a
    readable file, a boolean in any case, a whole number of 18 digits, a batch as large as
    the SDK's queue when none is set."""
    assert [] == sdk_problems(environ)


#: The rows of :data:`REFUSED` that ``sdk_problems`` checks (the others are ``settings``').
SDK_REFUSED = [row for row in REFUSED if row[0] in VARIABLES]


@pytest.mark.parametrize(("variable", "value", "why"), SDK_REFUSED, ids=[r[0] for r in SDK_REFUSED])
def test_sdk_problems_gives_the_variable_and_its_reason(
    variable: str, value: str, why: str
) -> None:
    """The reasons the run's line shows, from the check in-process (where mutation testing
    sees it, not in ``run``'s subprocess): one problem, the variable's, each refused alone (a
    batch size against the SDK's queue)."""
    problems = sdk_problems({variable: value})
    assert [(variable, True)] == [(name, why in said) for name, said in problems], problems


def test_the_status_codes_are_grpcs() -> None:
    assert tuple(code.name for code in grpc.StatusCode) == GRPC_STATUS_CODES


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES", "unavailable, BUSY"),
        ("OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES", " unavailable ,Data_Loss,"),
        ("OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES", ""),
        ("OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER", "no-such-provider"),
        ("OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER", ""),
    ],
)
@pytest.mark.usefixtures("clean_environment")
def test_a_value_is_refused_when_the_sdks_grpc_exporter_raises_on_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check agrees with the real gRPC exporter of an ``https://`` endpoint (which calls
    the credential provider), built with the value: refused when it raises, passed when it
    is built."""
    monkeypatch.setenv(variable, value)
    try:
        OTLPSpanExporter(endpoint="https://127.0.0.1:9").shutdown()
    except (KeyError, RuntimeError):
        raised = True
    else:
        raised = False
    assert raised == bool(sdk_problems({variable: value}))


@pytest.mark.parametrize("value", ["no-such-provider", ""])
@pytest.mark.usefixtures("clean_environment")
def test_a_provider_is_refused_when_the_sdks_http_exporter_raises_on_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP exporters load the provider in their constructor, for any endpoint: the check
    agrees with the real one built with the value (``RuntimeError`` for a name no entry point
    has; an empty value is no provider)."""
    variable = "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER"
    monkeypatch.setenv(variable, value)
    try:
        HttpSpanExporter(endpoint="http://127.0.0.1:9/v1/traces").shutdown()
    except RuntimeError:
        raised = True
    else:
        raised = False
    assert (value != "", raised) == (raised, bool(sdk_problems({variable: value})))


def test_an_installed_credential_provider_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any installed provider's name passes: whether it answers credentials is known only by
    calling it, which is the exporter's to do (``cli/unbuilt_exporters.py``)."""
    monkeypatch.syspath_prepend(str(credential_provider(tmp_path)))
    environ = {
        "OTEL_PYTHON_EXPORTER_OTLP_GRPC_TRACES_CREDENTIAL_PROVIDER": NOT_CREDENTIALS,
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER": BEARER_SESSION,
    }
    assert [] == sdk_problems(environ)


def test_a_batch_is_held_to_the_queue_it_is_given_or_the_sdks() -> None:
    """The batch over the queue is refused against the queue set beside it, else the SDK's
    2048; a queue refused on its own is not compared with (one line a variable)."""
    environ = {
        "OTEL_BSP_MAX_QUEUE_SIZE": "10",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "11",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "x",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "4096",
    }
    assert [
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: must be at most the queue's size"
        " (OTEL_BSP_MAX_QUEUE_SIZE, 10), not '11'",
    ] == [
        variable if "QUEUE_SIZE" in variable else f"{variable}: {why}"
        for variable, why in sdk_problems(environ)
    ]


def test_a_signals_compression_wins_over_the_general_one() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": " None",
    }
    assert ["gzip", "none", None] == [
        compression("traces", environ),
        compression("logs", environ),
        compression("traces", {}),
    ]


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps the name of every span it is sent."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.names.extend(span.name for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def _receiving() -> Iterator[tuple[str, Sequence[str]]]:
    """A real gRPC server on loopback with :class:`_Receiver`; yields its endpoint and the
    span names received, and stops the server and its threads on exit."""
    receiver = _Receiver()
    with ThreadPoolExecutor(max_workers=2) as pool:
        server = grpc.server(pool)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield f"http://127.0.0.1:{port}", receiver.names
        finally:
            server.stop(None).wait()


@pytest.mark.parametrize("chosen", ["none", "deflate"])
def test_the_grpc_exporter_sends_with_every_compression_the_specification_names(
    home: Path, tmp_path: Path, chosen: str
) -> None:
    """The gRPC exporters, reading the variable themselves, raised on ``none`` and
    ``deflate``, and ``run`` went on without telemetry: no span sent, none stored."""
    pipeline = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    with _receiving() as (endpoint, names):
        done = taskdaemon(
            home,
            "run",
            "-q",
            str(pipeline),
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=chosen,
        )
        sent = set(names)
    shown = taskdaemon(home, "runs", "show", done.stdout.strip())
    expected = {run_span_name("one"), stage_span_name("only")}
    assert (0, 0, expected) == (done.returncode, shown.returncode, expected & sent), (
        done.stderr + shown.stderr
    )
