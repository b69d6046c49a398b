"""Settings: TASKDAEMON_* and OTEL_* variables parsed, defaulted and rejected with their names."""

from __future__ import annotations

import json

import pytest

from settings_support import load_problems, refusal
from taskdaemon.pipeline.settings import DEFAULT_REDACT_PATTERNS, SPAN_SOURCE_SCHEMES, load_settings

pytestmark = pytest.mark.usefixtures("clean_environment")


def test_defaults_match_the_documented_contract() -> None:
    """With nothing set, the defaults are those of docs/architecture.md, "Settings"."""
    settings = load_settings()
    expected = (
        "sqlite:///.taskdaemon/spans.db",
        "127.0.0.1",
        9090,
        (),
        ("prometheus",),
        (),
        "taskdaemon",
        "text",
        "INFO",
        DEFAULT_REDACT_PATTERNS,
    )
    actual = (
        settings.span_source,
        settings.metrics_host,
        settings.metrics_port,
        settings.traces_exporters,
        settings.metrics_exporters,
        settings.logs_exporters,
        settings.service_name,
        settings.log_format,
        settings.log_level,
        settings.redact_patterns,
    )
    assert expected == actual


def test_span_source_defaults_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default span source is the SQLite file inside TASKDAEMON_HOME."""
    monkeypatch.setenv("TASKDAEMON_HOME", "/var/lib/td")
    expected = "sqlite:////var/lib/td/spans.db"
    assert expected == load_settings().span_source


def test_explicit_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TASKDAEMON_* variable is read and normalised."""
    monkeypatch.setenv("TASKDAEMON_SPAN_SOURCE", "tempo+http://127.0.0.1:3200")
    monkeypatch.setenv("TASKDAEMON_METRICS_PORT", "9191")
    monkeypatch.setenv("TASKDAEMON_LOG_FORMAT", "JSON")
    monkeypatch.setenv("TASKDAEMON_LOG_LEVEL", "debug")
    monkeypatch.setenv("TASKDAEMON_EXPORT_TIMEOUT", "1.5")
    monkeypatch.setenv("TASKDAEMON_REDACT_PATTERNS", '["a,b", "^x$"]')
    settings = load_settings()
    expected = ("tempo+http://127.0.0.1:3200", 9191, "json", "DEBUG", 1.5, ("a,b", "^x$"))
    actual = (
        settings.span_source,
        settings.metrics_port,
        settings.log_format,
        settings.log_level,
        settings.export_timeout,
        settings.redact_patterns,
    )
    assert expected == actual


def test_redact_patterns_accept_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain comma-separated list of patterns is accepted too."""
    monkeypatch.setenv("TASKDAEMON_REDACT_PATTERNS", "ssn, card_number")
    expected = ("ssn", "card_number")
    assert expected == load_settings().redact_patterns


def test_an_otlp_endpoint_turns_trace_export_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting an OTLP endpoint without OTEL_TRACES_EXPORTER selects the otlp exporter."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    expected = ("otlp",)
    assert expected == load_settings().traces_exporters


@pytest.mark.parametrize(
    "endpoint", ["http://[::1]:4317", "https://collector.example:443/otlp", "http://collector:0"]
)
def test_an_endpoint_of_any_valid_host_and_port_is_kept(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    """The endpoint checks refuse only what no exporter could reach: an IPv6 address, a
    path and port 0 are kept as given."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    assert endpoint == load_settings().otel_exporter_otlp_traces_endpoint


def test_explicit_none_wins_over_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_TRACES_EXPORTER=none keeps export off even with an endpoint set."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    expected: tuple[str, ...] = ()
    assert expected == load_settings().traces_exporters


def test_signal_protocol_overrides_the_general_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL wins over OTEL_EXPORTER_OTLP_PROTOCOL for traces."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    settings = load_settings()
    expected = ("grpc", "http/protobuf")
    assert expected == (settings.otlp_protocol("traces"), settings.otlp_protocol("metrics"))


def test_service_name_comes_from_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """service.name in OTEL_RESOURCE_ATTRIBUTES names the service if OTEL_SERVICE_NAME is unset."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,service.name=td-ci")
    expected = "td-ci"
    assert expected == load_settings().service_name


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TASKDAEMON_METRICS_PORT", "99999", "less than or equal to 65535"),
        ("TASKDAEMON_METRICS_PORT", "http", "valid integer"),
        ("TASKDAEMON_LOG_FORMAT", "xml", "'json' or 'text'"),
        ("TASKDAEMON_LOG_LEVEL", "LOUD", "must be one of"),
        ("TASKDAEMON_EXPORT_TIMEOUT", "0", "greater than 0"),
        ("TASKDAEMON_EXPORT_TIMEOUT", "nan", "a number, not NaN"),
        ("TASKDAEMON_SPAN_SOURCE", "ftp://spans.example/x", "must be sqlite:///PATH"),
        ("TASKDAEMON_SPAN_SOURCE", "spans.db", "must be sqlite:///PATH"),
        ("TASKDAEMON_REDACT_PATTERNS", "(unclosed", "invalid regular expression"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "unknown exporter 'zipkin'"),
        ("OTEL_METRICS_EXPORTER", "statsd", "unknown exporter 'statsd'"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "not supported by the Python SDK"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317", "http:// or https:// URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127..1:4318", "labels are 1 to 63 characters"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:43l7", "port is not a number from 0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x:65536/", "port is not a number from 0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1:4317", "IPv6 address in brackets"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://:4317", "has no host"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col lector:4317", "white space inside"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://a:4318/v1/\tlogs", "white space inside"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team", "key=value"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    """An invalid value fails with the variable's name and the reason."""
    ((name, message),) = refusal(monkeypatch, variable, value)
    assert (variable, True) == (name, reason in message)


@pytest.mark.parametrize("scheme", SPAN_SOURCE_SCHEMES)
def test_every_span_source_scheme_the_settings_take_is_one_a_source_opens(scheme: str) -> None:
    """The schemes ``TASKDAEMON_SPAN_SOURCE`` accepts are schemes ``open_source`` knows: a
    URL of each is refused, if at all, for its host or path, never as an unknown source, in
    the words a scheme nobody knows is refused with (so that the test follows those words)."""
    from taskdaemon.pipeline.errors import SpanSourceError
    from taskdaemon.pipeline.tracking.sources import open_source

    def unknown(url: str) -> bool:
        try:
            open_source(url).close()
        except SpanSourceError as error:
            return str(error).startswith("unknown span source")
        return False

    assert (False, True) == (unknown(f"{scheme}://"), unknown("nosuch://"))


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several invalid variables are reported together, not one per attempt."""
    monkeypatch.setenv("TASKDAEMON_METRICS_PORT", "-1")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "syslog")
    expected = ["OTEL_LOGS_EXPORTER", "TASKDAEMON_METRICS_PORT"]
    assert expected == sorted(name for name, _ in load_problems())


def test_the_api_token_is_masked_everywhere_but_its_getter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token reads back through ``get_secret_value`` only: repr, str and the dump's JSON of
    the settings show a mask."""
    token = "s3cr3t-token-of-20-chars"
    monkeypatch.setenv("TASKDAEMON_API_TOKEN", token)
    settings = load_settings()
    assert settings.api_token is not None
    shown = (repr(settings), str(settings.api_token), json.dumps(settings.as_json()))
    assert (token, [False, False, False]) == (
        settings.api_token.get_secret_value(),
        [token in text for text in shown],
    )


def test_variables_are_matched_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable spelt in lower case is read, and the exact upper-case name wins over it."""
    monkeypatch.setenv("taskdaemon_metrics_port", "9191")
    monkeypatch.setenv("Taskdaemon_Log_Format", "json")
    monkeypatch.setenv("TASKDAEMON_LOG_FORMAT", "text")
    settings = load_settings()
    assert (9191, "text") == (settings.metrics_port, settings.log_format)


@pytest.mark.parametrize(
    ("value", "reason"),
    [('["a", 1]', "JSON list of strings"), ("[unclosed", "invalid JSON list")],
)
def test_a_redact_list_must_be_strings(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    """A JSON list of patterns holding a non-string, or broken JSON, is refused with its reason."""
    ((name, message),) = refusal(monkeypatch, "TASKDAEMON_REDACT_PATTERNS", value)
    assert ("TASKDAEMON_REDACT_PATTERNS", True) == (name, reason in message)


def test_overrides_are_validated_and_unknown_ones_refused() -> None:
    """An override goes through the variable's validation (reported under the variable's name);
    an override naming no setting is a TypeError, not silently ignored."""
    assert ["TASKDAEMON_METRICS_PORT"] == [name for name, _ in load_problems(metrics_port=70000)]
    with pytest.raises(TypeError, match="metric_port"):
        load_settings(metric_port=1)


def test_only_the_older_capture_variable_set_is_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TASKDAEMON_PAYLOAD_MAX_BYTES`` alone is the capture cap; with the newer one set too,
    the newer one is."""
    monkeypatch.setenv("TASKDAEMON_PAYLOAD_MAX_BYTES", "100")
    older = load_settings().capture_limit
    monkeypatch.setenv("TASKDAEMON_CAPTURE_MAX_BYTES", "200")
    assert (100, 200) == (older, load_settings().capture_limit)
