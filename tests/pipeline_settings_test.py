"""Settings: each value a user gives is taken, normalised or refused with its exact reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import environment, taskdaemon
from settings_support import load_problems, refusal
from taskdaemon.pipeline.settings import _FIELDS, Secret, load_settings

TOKEN = "t" * 16  # the shortest token taken


pytestmark = pytest.mark.usefixtures("clean_environment")


def test_settings_with_the_same_token_are_equal() -> None:
    """Two loads with the same token compare equal: the token's value decides."""
    assert load_settings(api_token=TOKEN) == load_settings(api_token=TOKEN)


def test_settings_with_different_tokens_differ() -> None:
    """Loads whose tokens differ compare unequal, though both show the same mask."""
    assert load_settings(api_token=TOKEN) != load_settings(api_token="u" * 16)


def test_settings_with_a_token_differ_from_settings_without() -> None:
    """A token compared with no token is unequal (no error)."""
    assert load_settings(api_token=TOKEN) != load_settings()


def test_a_token_of_sixteen_characters_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen characters are enough for ``TASKDAEMON_API_TOKEN``."""
    monkeypatch.setenv("TASKDAEMON_API_TOKEN", TOKEN)
    token = load_settings().api_token
    assert TOKEN == (token.get_secret_value() if token is not None else None)


def test_a_shorter_token_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fifteen characters (blanks around them not counted) are refused."""
    problems = refusal(monkeypatch, "TASKDAEMON_API_TOKEN", "  " + "t" * 15 + "  ")
    assert [("TASKDAEMON_API_TOKEN", "must have at least 16 characters")] == problems


def test_a_token_override_may_be_a_secret_already() -> None:
    """``load_settings(api_token=Secret(...))`` keeps that token."""
    assert Secret(TOKEN) == load_settings(api_token=Secret(TOKEN)).api_token


def test_a_text_setting_given_another_type_is_refused() -> None:
    """An override that is no string, for a text setting, is refused with pydantic's words."""
    assert [("TASKDAEMON_API_USER", "Input should be a valid string")] == load_problems(api_user=5)


def test_a_home_that_is_no_text_is_refused() -> None:
    """``home`` takes a path or a text; a number is refused, not turned into an error."""
    assert [("TASKDAEMON_HOME", "Input should be a valid string")] == load_problems(home=5)


def test_a_list_setting_given_a_number_is_refused() -> None:
    """``api_allowed_hosts`` takes a comma list or a sequence of strings, not a number."""
    expected = [
        ("TASKDAEMON_API_ALLOWED_HOSTS", "Input should be a comma-separated list of strings")
    ]
    assert expected == load_problems(api_allowed_hosts=5)


def test_a_redact_list_of_non_strings_is_refused_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A JSON list holding a number is refused with the exact reason."""
    problems = refusal(monkeypatch, "TASKDAEMON_REDACT_PATTERNS", '["a", 1]')
    assert [("TASKDAEMON_REDACT_PATTERNS", "Input should be a JSON list of strings")] == problems


def test_a_wrong_source_bound_is_refused_with_the_other_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The span sources' bounds are read with the settings: a wrong one is listed with the
    other wrong settings, after them, naming its variable and the value quoted."""
    monkeypatch.setenv("TASKDAEMON_SOURCE_MAX_BYTES", "1kb")
    problems = refusal(monkeypatch, "TASKDAEMON_API_TOKEN", "short")
    assert [
        ("TASKDAEMON_API_TOKEN", "must have at least 16 characters"),
        ("TASKDAEMON_SOURCE_MAX_BYTES", "not a number: '1kb'"),
    ] == problems


def test_the_metrics_host_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blanks around ``TASKDAEMON_METRICS_HOST`` are dropped."""
    monkeypatch.setenv("TASKDAEMON_METRICS_HOST", " 0.0.0.0 ")
    assert "0.0.0.0" == load_settings().metrics_host


def test_a_blank_metrics_host_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blank host is refused, the reason naming how to listen everywhere."""
    problems = refusal(monkeypatch, "TASKDAEMON_METRICS_HOST", "  ")
    expected = "must not be empty (use 0.0.0.0 to listen on every interface)"
    assert [("TASKDAEMON_METRICS_HOST", expected)] == problems


def test_port_zero_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 0 (any free port) is within the bounds."""
    monkeypatch.setenv("TASKDAEMON_METRICS_PORT", "0")
    assert 0 == load_settings().metrics_port


def test_port_65535_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The highest port is within the bounds."""
    monkeypatch.setenv("TASKDAEMON_METRICS_PORT", "65535")
    assert 65535 == load_settings().metrics_port


def test_a_negative_port_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port under 0 is refused with pydantic's words for the lower bound."""
    problems = refusal(monkeypatch, "TASKDAEMON_METRICS_PORT", "-1")
    expected = [("TASKDAEMON_METRICS_PORT", "Input should be greater than or equal to 0, not '-1'")]
    assert expected == problems


def test_a_port_too_high_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port over 65535 is refused with pydantic's words for the upper bound."""
    problems = refusal(monkeypatch, "TASKDAEMON_METRICS_PORT", "65536")
    why = "Input should be less than or equal to 65535, not '65536'"
    expected = [("TASKDAEMON_METRICS_PORT", why)]
    assert expected == problems


def test_a_zero_export_timeout_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """The export timeout must be above 0."""
    problems = refusal(monkeypatch, "TASKDAEMON_EXPORT_TIMEOUT", "0")
    assert [("TASKDAEMON_EXPORT_TIMEOUT", "Input should be greater than 0, not '0'")] == problems


def test_an_empty_grafana_url_means_no_link(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blank ``TASKDAEMON_GRAFANA_URL`` is no URL at all."""
    monkeypatch.setenv("TASKDAEMON_GRAFANA_URL", "  ")
    assert None is load_settings().grafana_url


@pytest.mark.parametrize(
    "url", ["http://grafana:3000", "HTTPS://grafana.example/", "https://ops.example/grafana"]
)
def test_a_grafana_url_of_either_scheme_in_any_case_is_kept(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """An http or https URL, its scheme in any case, a path prefix (Grafana behind a proxy)
    included, is kept as given (stripped)."""
    monkeypatch.setenv("TASKDAEMON_GRAFANA_URL", f" {url} ")
    assert url == load_settings().grafana_url


def test_a_grafana_url_of_another_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Grafana URL that is not http or https is refused with the reason."""
    problems = refusal(monkeypatch, "TASKDAEMON_GRAFANA_URL", "ftp://grafana")
    expected = "must be an http:// or https:// URL, not 'ftp://grafana'"
    assert [("TASKDAEMON_GRAFANA_URL", expected)] == problems


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://grafana:30O0", "its port is not a number from 0 to 65535"),
        ("http://gra fana:3000", "it has white space inside"),
    ],
)
def test_a_mistyped_grafana_url_stops_a_command_in_one_line(
    tmp_path: Path, url: str, reason: str
) -> None:
    """A typo'd port or a space in ``TASKDAEMON_GRAFANA_URL`` is refused at start, in one
    line naming the variable, not shown later as a dead link on a run's page."""
    done = taskdaemon(tmp_path / "home", "runs", "list", TASKDAEMON_GRAFANA_URL=url)
    expected = f"taskdaemon: invalid setting TASKDAEMON_GRAFANA_URL: {reason}, in {url!r}\n"
    assert (2, "", expected) == (done.returncode, done.stdout, done.stderr)


def test_a_span_source_that_is_only_a_scheme_name_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sqlite`` without ``://`` is no URL: refused with the forms a source takes."""
    problems = refusal(monkeypatch, "TASKDAEMON_SPAN_SOURCE", "sqlite")
    expected = (
        "must be sqlite:///PATH, tempo+http://HOST:PORT, jaeger+http://HOST:PORT, "
        "otlp-json:///PATH or dump:///PATH.tar.gz"
    )
    assert [("TASKDAEMON_SPAN_SOURCE", expected)] == problems


def test_a_span_source_scheme_is_read_before_its_first_separator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A URL holding another URL in its query is judged by its own scheme."""
    url = "tempo+http://tempo:3200/?next=http://elsewhere"
    monkeypatch.setenv("TASKDAEMON_SPAN_SOURCE", url)
    assert url == load_settings().span_source


def test_an_unknown_log_format_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log format other than json or text is refused with pydantic's words."""
    problems = refusal(monkeypatch, "TASKDAEMON_LOG_FORMAT", "xml")
    assert [("TASKDAEMON_LOG_FORMAT", "Input should be 'json' or 'text'")] == problems


def test_http_json_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """``http/json`` is refused, naming the protocol to use instead."""
    problems = refusal(monkeypatch, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    expected = "http/json is not supported by the Python SDK; use http/protobuf"
    assert [("OTEL_EXPORTER_OTLP_PROTOCOL", expected)] == problems


def test_an_unknown_protocol_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A protocol other than grpc or http/protobuf is refused, quoting the value given."""
    problems = refusal(monkeypatch, "OTEL_EXPORTER_OTLP_PROTOCOL", "udp")
    assert [("OTEL_EXPORTER_OTLP_PROTOCOL", "must be grpc or http/protobuf, not 'udp'")] == problems


def test_a_resource_attribute_without_a_value_is_refused_among_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each comma-separated part must be ``key=value``: the bad one is quoted."""
    problems = refusal(monkeypatch, "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,team")
    expected = "expected key=value pairs separated by commas, got 'team'"
    assert [("OTEL_RESOURCE_ATTRIBUTES", expected)] == problems


def test_unknown_overrides_are_all_named() -> None:
    """Every override naming no setting is listed, sorted, in the ``TypeError``."""
    with pytest.raises(TypeError) as caught:
        load_settings(metric_port=1, colour=2)
    assert "load_settings: no such setting colour, metric_port" == str(caught.value)


def test_the_settings_as_json_show_every_field_as_a_json_value() -> None:
    """Paths become text, tuples lists and the token its mask; every setting is shown, and
    nothing else (not ``fields_set``)."""
    shown = load_settings(
        home=Path("/srv/td"), api_token=TOKEN, api_allowed_hosts="a.example, b.example"
    ).as_json()
    picked = {
        name: shown[name] for name in ("home", "api_token", "api_allowed_hosts", "metrics_port")
    }
    assert (
        {
            "home": "/srv/td",
            "api_token": "**********",
            "api_allowed_hosts": ["a.example", "b.example"],
            "metrics_port": 9090,
        },
        sorted(_FIELDS),
    ) == (picked, sorted(shown))


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", [True, True, True]),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", [False, True, False]),
    ],
)
def test_an_otlp_timeout_is_set_for_the_signals_its_variable_names(
    monkeypatch: pytest.MonkeyPatch, variable: str, expected: list[bool]
) -> None:
    """The general OTLP timeout counts for every signal, a signal's own for that one only."""
    monkeypatch.setenv(variable, "30")
    settings = load_settings()
    signals = ("traces", "metrics", "logs")
    assert expected == [settings.otlp_timeout_is_set(signal) for signal in signals]  # type: ignore[arg-type]


#: Runs ``taskdaemon ARGS`` in this process, counting how often the environment's settings are
#: parsed (each parse reads ``TASKDAEMON_HOME`` once), and prints the count last.
_COUNTING = """
import sys
from taskdaemon.pipeline import settings
from taskdaemon.pipeline.cli import main

variable, parse = settings._FIELDS["home"]
parses = []
settings._FIELDS["home"] = (variable, lambda value: parses.append(value) or parse(value))
code = main(sys.argv[1:])
print(f"exit {code}, {len(parses)} parses", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args", [("run", "p.yaml", "--log-level", "debug"), ("ui",)], ids=["run", "ui"]
)
def test_a_command_parses_the_environment_once(args: tuple[str, ...], tmp_path: Path) -> None:
    """``run`` parsed every setting three times before its first stage (the command line's
    check, its observers, its breakpoints, read even when there are none), ``ui`` twice: the
    environment is now parsed once while it stays the same, an override (``--log-level``) on
    top of it."""
    (tmp_path / "p.yaml").write_text(
        "name: one\nstages:\n  - name: only\n    command: 'true'\n"
        "    triggers: [{manual: {approval_required: false}}]\n"
    )
    env = environment(tmp_path / "home")
    if args == ("ui",):  # a source that cannot answer: ui stops after its settings
        args = ("ui", "--source", f"sqlite:///{tmp_path}/absent/spans.db")
    done = subprocess.run(
        [sys.executable, "-c", _COUNTING, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    expected = 1 if args[0] == "ui" else 0
    assert done.stderr.splitlines()[-1] == f"exit {expected}, 1 parses", done.stderr


def test_a_text_setting_of_bytes_that_are_not_utf8_stops_a_command_in_one_line(
    tmp_path: Path,
) -> None:
    """Such a service name made the store refuse every span of the run (exit 0, two warnings,
    no run in ``runs list``); it is now refused at start. A home of such bytes is a path and
    is taken."""
    home = os.fsdecode(bytes(tmp_path) + b"/h\xff")
    named = taskdaemon(tmp_path, "runs", "list", OTEL_SERVICE_NAME=os.fsdecode(b"x\xff"))
    homed = taskdaemon(tmp_path, "runs", "list", TASKDAEMON_HOME=home)
    expected = (
        "taskdaemon: invalid setting OTEL_SERVICE_NAME: holds bytes that are not UTF-8 text\n"
    )
    assert ((2, "", expected), (0, "no runs\n", "")) == (
        (named.returncode, named.stdout, named.stderr),
        (homed.returncode, homed.stdout, homed.stderr),
    )


def _run_with_span_event_limit(tmp_path: Path, value: str) -> subprocess.CompletedProcess[str]:
    pipeline = tmp_path / "p.yaml"
    first = "triggers: [{manual: {approval_required: false}}]"
    pipeline.write_text(f"name: p\nstages: [{{name: a, command: 'true', {first}}}]\n")
    home = tmp_path / "home"
    return taskdaemon(home, "run", str(pipeline), OTEL_SPAN_EVENT_COUNT_LIMIT=value, cwd=tmp_path)


@pytest.mark.parametrize("value", ["x", "-5", "1.5", "５", "9" * 19])
def test_a_span_limit_the_sdk_would_refuse_stops_a_run_in_one_line(
    tmp_path: Path, value: str
) -> None:
    """The SDK read ``OTEL_SPAN_EVENT_COUNT_LIMIT`` as the tracer was made, after ``run``
    announced the run, and refused such a value with a traceback (exit 1); it is now an
    invalid setting, before anything starts."""
    done = _run_with_span_event_limit(tmp_path, value)
    why = f"must be a whole number of 0 or more, of at most 18 digits, not {value!r}"
    expected = f"taskdaemon: invalid setting OTEL_SPAN_EVENT_COUNT_LIMIT: {why}\n"
    assert (2, "", expected) == (done.returncode, done.stdout, done.stderr)


def test_a_span_limit_with_spaces_or_empty_is_the_sdks_to_read(tmp_path: Path) -> None:
    """The SDK takes a limit with spaces around it, and an empty one as no limit."""
    codes = [_run_with_span_event_limit(tmp_path, value).returncode for value in (" 50 ", "")]
    assert [0, 0] == codes
