"""An OTLP endpoint holding a user or password (``OTEL_EXPORTER_OTLP_ENDPOINT`` and its
``_TRACES``, ``_METRICS`` and ``_LOGS`` forms) is refused at start, in one line that names the
variable, points to the header variables and never quotes the credential
(``settings_parsers.endpoint``): the gRPC exporter dialled it as a host name and named it in its
lines. The commands run for real, each in its own process; none gets as far as exporting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write
from settings_support import load_problems, refusal
from taskdaemon.pipeline.settings import load_settings

VARIABLES = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "otel_exporter_otlp_endpoint",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "otel_exporter_otlp_traces_endpoint",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "otel_exporter_otlp_metrics_endpoint",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "otel_exporter_otlp_logs_endpoint",
}
REFUSED = (
    "must hold no user or password (user:password@): send credentials in"
    " OTEL_EXPORTER_OTLP_HEADERS (Authorization=Basic ...)"
)
SECRET = "s3cret-pw"
#: A user and password, a user alone (a token pasted as the user), and a credential beside a
#: port typo that ``http_url`` would refuse quoting the URL.
CREDENTIALS = {
    "user and password": f"http://otel:{SECRET}@collector:4318",
    "user alone": f"https://{SECRET}@collector.example/v1/traces",
    "and a bad port": f"HTTP://otel:{SECRET}@collector:43l7",
}


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.mark.parametrize("variable", VARIABLES)
@pytest.mark.parametrize("url", CREDENTIALS.values(), ids=CREDENTIALS)
def test_an_endpoint_with_credentials_is_refused_without_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    """The variable and the override alike are refused with the one reason, which quotes
    nothing of the URL."""
    from_variable = refusal(monkeypatch, variable, url)
    monkeypatch.delenv(variable)
    expected = [(variable, REFUSED)]
    assert (expected, expected) == (from_variable, load_problems(**{VARIABLES[variable]: url}))


def test_an_at_sign_after_the_host_is_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``@`` in the path or query is not user information: the endpoint is kept."""
    url = "http://collector:4318/v1/traces?tenant=a@b"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)
    assert url == load_settings().otel_exporter_otlp_traces_endpoint


@pytest.mark.parametrize(
    ("args", "variable"),
    [
        (("run", "PIPELINE"), "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (("run", "--log-level", "debug", "PIPELINE"), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        (("serve",), "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
        (("ui",), "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
    ],
    ids=["run", "run debug", "serve", "ui"],
)
def test_no_command_shows_the_credential(
    args: tuple[str, ...], variable: str, home: Path, tmp_path: Path
) -> None:
    """``run`` (at ``--log-level debug`` too, where the exporters' own lines are shown), and
    the two serving commands stop at start, in one line naming the variable, with neither the
    password nor the user in any output, and nothing done (no store, no token file)."""
    pipeline = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    argv = [str(pipeline) if arg == "PIPELINE" else arg for arg in args]
    url = CREDENTIALS["user and password"]
    done = taskdaemon(
        home, *argv, timeout=120, OTEL_EXPORTER_OTLP_PROTOCOL="grpc", **{variable: url}
    )
    expected = f"taskdaemon: invalid setting {variable}: {REFUSED}\n"
    assert (2, "", expected) == (done.returncode, done.stdout, done.stderr)
    assert list(home.iterdir()) == []
