"""A ``TASKDAEMON_GRAFANA_URL`` holding a user or password is refused at start, in one line that
names the variable and never the credential (``settings_parsers.grafana_url``): the URL is
only a link on the run pages, so the password would have reached every page and the API's
readers. The commands that show the link (``serve``, ``ui``) and ``run`` run for real, each
in its own process; none gets as far as serving a page or an ``/api`` answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write
from settings_support import load_problems, refusal
from taskdaemon.pipeline.settings import load_settings

VARIABLE = "TASKDAEMON_GRAFANA_URL"
REFUSED = (
    "must hold no user or password (user:password@): it is only a link on the run pages,"
    " and Grafana signs its users in itself"
)
#: A user and password, a user alone (a service account token pasted as the user), and a
#: credential beside a port typo that ``http_url`` would refuse quoting the URL.
CREDENTIALS = {
    "user and password": "http://admin:s3cret-pw@grafana:3000",
    "user alone": "https://glsa_s3cret-pw@grafana.example/grafana",
    "and a bad port": "HTTP://admin:s3cret-pw@grafana:30O0",
}


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.mark.parametrize("url", CREDENTIALS.values(), ids=CREDENTIALS)
def test_a_grafana_url_with_credentials_is_refused_without_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """The variable and the override alike are refused with the one reason, which quotes
    nothing of the URL."""
    from_variable = refusal(monkeypatch, VARIABLE, url)
    monkeypatch.delenv(VARIABLE)
    expected = [(VARIABLE, REFUSED)]
    assert (expected, expected) == (from_variable, load_problems(grafana_url=url))


@pytest.mark.parametrize(
    "url", ["https://ops.example/grafana?login=a@b", "http://grafana:3000/d/x#@panel"]
)
def test_an_at_sign_after_the_host_is_no_credential(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """An ``@`` in the path, query or fragment is not user information: the URL is kept."""
    monkeypatch.setenv(VARIABLE, url)
    assert url == load_settings().grafana_url


@pytest.mark.parametrize(
    "args", [("run", "PIPELINE"), ("serve",), ("ui",)], ids=["run", "serve", "ui"]
)
def test_no_command_shows_the_password(args: tuple[str, ...], home: Path, tmp_path: Path) -> None:
    """``run`` and the two commands serving the web page and ``/api`` stop at start, in one
    line naming the variable, with neither the password nor the user in any output, and
    nothing done (no store, no token file)."""
    pipeline = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    argv = [str(pipeline) if arg == "PIPELINE" else arg for arg in args]
    url = CREDENTIALS["user and password"]
    done = taskdaemon(home, *argv, timeout=120, **{VARIABLE: url})
    expected = f"taskdaemon: invalid setting {VARIABLE}: {REFUSED}\n"
    assert (2, "", expected) == (done.returncode, done.stdout, done.stderr)
    assert list(home.iterdir()) == []
