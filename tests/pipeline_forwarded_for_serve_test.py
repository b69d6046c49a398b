"""``TASKDAEMON_API_TRUSTED_PROXY`` with a real ``taskdaemon serve`` (``forwarded_for``): behind
a reverse proxy every client was the proxy's address, one budget of wrong tokens for all of
them; the operator now names the proxy, and a request from it counts under the last hop of its
``X-Forwarded-For``. The proxy here is a client bound to ``127.0.0.2`` (any 127.x address is
this machine's), so a client on ``127.0.0.1`` is a local one that connects past the proxy.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from browser_support import environment
from cli_support import ended_at_exit, line_with

pytestmark = pytest.mark.slow

PROXY = "127.0.0.2"


def _wrong_tokens(url: str, local: str, forwarded: list[str]) -> list[int]:
    """The statuses of a wrong token sent from ``local`` with each ``X-Forwarded-For``."""
    transport = httpx.HTTPTransport(local_address=local)
    with httpx.Client(base_url=url, transport=transport) as client:
        return [
            client.get(
                "/api/runs",
                headers={
                    "authorization": f"Bearer wrong-{n:04d}-token-xxxxxx",
                    "x-forwarded-for": hop,
                },
            ).status_code
            for n, hop in enumerate(forwarded)
        ]


def _serve(home: Path, **variables: str) -> subprocess.Popen[str]:
    """``taskdaemon serve`` on a free port with the test's token and ``variables``."""
    return subprocess.Popen(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "serve", "--port", "0"],
        cwd=home.parent,
        env={**environment(home), **variables},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _guessed(home: Path, **variables: str) -> tuple[list[list[int]], list[str]]:
    """Eleven wrong tokens through the proxy from one client, each with a first hop of its
    own (the client writes those), one from another client behind it, eleven from a local
    client that connects past the proxy, each claiming an address of its own; then the
    wrong-token lines the server said as it stopped."""
    with ended_at_exit(_serve(home, **variables)) as process:
        line = line_with(process.stderr, "API: http")
        found = re.search(r"API: (http://[\d.:]+)/", line)
        assert found is not None, line
        url = found.group(1)
        statuses = [
            _wrong_tokens(url, PROXY, [f"198.51.100.{n}, 203.0.113.7" for n in range(11)]),
            _wrong_tokens(url, PROXY, ["203.0.113.8"]),
            _wrong_tokens(url, "127.0.0.1", [f"203.0.113.{n}" for n in range(20, 31)]),
        ]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    return statuses, [
        line.partition("taskdaemon.http: ")[2]
        for line in stderr.splitlines()
        if "wrong API token" in line
    ]


def test_a_named_proxy_has_each_client_it_forwards_counted_apart(tmp_path: Path) -> None:
    """From the named proxy, the last hop counts: the client behind it that guessed is
    refused after ten, whatever first hops it wrote, and the other client is not. A local
    client that connects past the proxy counts as loopback, whatever it claims."""
    statuses, said = _guessed(tmp_path / "home", TASKDAEMON_API_TRUSTED_PROXY=f"{PROXY}, ::1")
    assert [[401] * 10 + [429], [401], [401] * 10 + [429]] == statuses
    assert [
        "1 wrong API token from 203.0.113.8 in 60 s",
        "10 wrong API tokens from 203.0.113.7 in 60 s, then 1 refused (429)",
        "10 wrong API tokens from loopback in 60 s, then 1 refused (429)",
    ] == sorted(said)


def test_without_the_setting_every_client_behind_the_proxy_is_one(tmp_path: Path) -> None:
    """Unset (the default), no header is trusted from anyone: the proxy's clients and the
    local one share the loopback budget, refused from the eleventh wrong token on."""
    statuses, said = _guessed(tmp_path / "home")
    assert [[401] * 10 + [429], [429], [429] * 11] == statuses
    assert ["10 wrong API tokens from loopback in 60 s, then 13 refused (429)"] == said


def test_a_proxy_named_by_host_name_is_refused_in_one_line_at_start(tmp_path: Path) -> None:
    """Trust by a name would hang on DNS at start-up: one line, exit 2."""
    process = _serve(tmp_path / "home", TASKDAEMON_API_TRUSTED_PROXY="127.0.0.1, proxy.local")
    with ended_at_exit(process):
        _, stderr = process.communicate(timeout=60)
    line = (
        "taskdaemon: invalid setting TASKDAEMON_API_TRUSTED_PROXY: must be IP addresses or"
        " networks separated by commas, not 'proxy.local'\n"
    )
    assert (2, line) == (process.returncode, stderr)
