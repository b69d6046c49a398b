"""One URL with a password, ``user:secret@``, through every path that shows a URL to a person:
each shows the same mask, ``user:[REDACTED]@``, and never the password."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskdaemon.pipeline.dump import _environment
from taskdaemon.pipeline.errors import SettingsError, SpanSourceError
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.tracking._remote import display_url
from taskdaemon.pipeline.tracking.source_urls import sqlite_path
from taskdaemon.pipeline.tracking.sources import open_source

#: The mask every path shows in place of the password.
MASKED = "user:[REDACTED]@"


pytestmark = pytest.mark.usefixtures("clean_environment")


def _refused_setting(variable: str, value: str) -> Callable[[pytest.MonkeyPatch], str]:
    def shown(monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.setenv(variable, value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        return str(caught.value)

    return shown


def _refused_source(url: str) -> Callable[[pytest.MonkeyPatch], str]:
    def shown(monkeypatch: pytest.MonkeyPatch) -> str:
        with pytest.raises(SpanSourceError) as caught:
            open_source(url)
        return str(caught.value)

    return shown


def _refused_sqlite(monkeypatch: pytest.MonkeyPatch) -> str:
    with pytest.raises(SpanSourceError) as caught:
        sqlite_path("sqlite://user:secret@host/spans.db")
    return str(caught.value)


def _dumped(monkeypatch: pytest.MonkeyPatch) -> str:
    settings = load_settings(span_source_url="tempo+http://user:secret@tempo:3200")
    return str(_environment(settings, PayloadCapture())["settings"]["span_source_url"])


PATHS = {
    # http_url's refusal, quoted by quoting.quote (an OTLP endpoint's credentials are
    # refused before, quoting nothing: tests/pipeline_settings_otlp_credentials_test.py)
    "tempo source": _refused_source("tempo+http://user:secret@x:9x"),
    # display_url: an unknown source, a sqlite URL with a host, the ui's log line, a redirect
    "unknown source": _refused_source("nosuch://user:secret@host"),
    "sqlite source": _refused_sqlite,
    "display_url": lambda _: display_url("tempo+http://user:secret@tempo:3200"),
    # the redaction of every log line, span and export; a debug dump's settings
    "redaction": lambda _: redact_text("GET http://user:secret@tempo:3200/api failed"),
    "dump": _dumped,
}


@pytest.mark.parametrize("path", PATHS)
def test_every_path_shows_a_url_password_as_the_same_mask(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The URL is shown with ``user:[REDACTED]@`` in place of its user information."""
    shown = PATHS[path](monkeypatch)
    assert (True, False) == (MASKED in shown, "secret" in shown), shown
