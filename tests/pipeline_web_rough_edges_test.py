"""Rough edges of the HTTP side a user met with a real server: the runs page of a pipeline
nobody ran says the name it was likely meant to be, as ``runs list --pipeline`` does, in
Debian's headless chromium (Playwright); the session cookie behind a proxy ending TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    environment,
    server_url,
    stored_runs_server,
)
from cli_support import ended_at_exit, taskdaemon
from pipeline_tracking_support import store_with
from server_support import serving
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import ApiAuth

pytestmark = pytest.mark.slow


@SHARED_BROWSER_LOOP
async def test_the_runs_page_of_a_typo_says_the_pipeline_meant_as_runs_list_does(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """``?pipeline=etll`` over a store holding runs of ``etl``: the page said only that no run
    of ``etll`` was known, where ``runs list --pipeline etll`` says ``did you mean 'etl'?``.
    The page says it too, in the table the browser shows once its script has refreshed it;
    a name close to none says no more than before. A misspelt ``?status=`` (a URL edited by
    hand) is said with its "did you mean" too, as ``runs list --status`` says it."""
    db = tmp_path / "spans.db"
    await asyncio.to_thread(store_with, db, [10])  # a run of "etl"
    cli = taskdaemon(tmp_path, "runs", "list", "--pipeline", "etll", "--source", f"sqlite:///{db}")
    async with (
        stored_runs_server(db) as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        said = []
        for name in ("etll", "zzzzzz"):
            await page.goto(f"{url}/?pipeline={name}")
            await page.wait_for_load_state("networkidle")
            said.append(await page.text_content("#runs tr.empty td"))
        before = list(errors)  # a 400 page is a console error of its own
        await page.goto(f"{url}/?status=sucess")
        status = await page.text_content("#runs-error")
    meant = "No run of pipeline 'etll' is known to this source; did you mean 'etl'?"
    assert [meant, "No run of pipeline 'zzzzzz' is known to this source."] == said
    assert status == (
        "unknown status 'sucess', did you mean 'success'? (one of running, success, failure,"
        " cancelled, interrupted, paused)"
    )
    assert (1, f"taskdaemon runs list: {meant[:1].lower()}{meant[1:]}\n") == (
        cli.returncode,
        cli.stderr,
    )
    assert [] == before


@contextlib.contextmanager
def served(home: Path, **variables: str) -> Iterator[str]:
    """``taskdaemon serve --port 0`` with the test's token and ``variables``; its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "serve", "--port", "0"],
        cwd=home.parent,
        env={**environment(home), **variables},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with ended_at_exit(process):
        yield server_url(process)


def test_behind_a_proxy_ending_tls_the_session_cookie_is_secure(tmp_path: Path) -> None:
    """The cookie was ``Secure`` only when the request's scheme was https, which a server
    behind nginx or Caddy ending TLS never sees, unless Uvicorn took it from
    ``X-Forwarded-Proto``, which it trusted from any loopback client. Now the operator says
    ``TASKDAEMON_API_PUBLIC_URL=https://...``: the cookie is ``Secure`` and the proxy's
    ``Host`` and the browser's ``Origin`` (the public host) are allowed; without it, no
    forwarded header makes it ``Secure``."""
    public = {"TASKDAEMON_API_PUBLIC_URL": "https://tasks.example.org"}
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-host": "tasks.example.org"}
    said = []
    for variables in (public, {}):
        with served(tmp_path / "home", **variables) as url, httpx.Client(base_url=url) as client:
            start = client.get("/", params={"token": TOKEN}, headers=forwarded)
            named = client.get(
                "/api/runs",
                headers={
                    "host": "tasks.example.org",
                    "origin": "https://tasks.example.org",
                    "authorization": f"Bearer {TOKEN}",
                },
            )
            said.append((start.status_code, start.headers["set-cookie"], named.status_code))
    (secure, cookie, named), (plain, plain_cookie, refused) = said
    assert (secure, cookie.endswith("; HttpOnly; SameSite=Strict; Secure"), named) == (
        303,
        True,
        200,
    )
    assert (plain, plain_cookie.endswith("; HttpOnly; SameSite=Strict"), refused) == (
        303,
        True,
        403,
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (
            "https://tasks.example.org/taskdaemon",
            "must be the scheme, host and port alone, not 'https://tasks.example.org/taskdaemon':"
            " the pages link from /, so serve them at the root of that host",
        ),
        ("https://me:pw@tasks.example.org", "must hold no user or password (user:password@)"),
        ("tasks.example.org", "must be an http:// or https:// URL, not 'tasks.example.org'"),
    ],
)
def test_a_public_url_the_pages_cannot_be_served_at_is_refused_in_one_line(
    tmp_path: Path, url: str, why: str
) -> None:
    """A path (the pages link from ``/``), a user or no scheme: one line, exit 2, at start."""
    done = subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env={**environment(tmp_path / "home"), "TASKDAEMON_API_PUBLIC_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = f"taskdaemon: invalid setting TASKDAEMON_API_PUBLIC_URL: {why}\n"
    assert (2, "", line) == (done.returncode, done.stdout, done.stderr)


async def test_forwarded_headers_choose_no_client_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Uvicorn took the client address from ``X-Forwarded-For`` when the peer was loopback:
    a local guesser sending a new one with each wrong token had a fresh budget each time,
    and the log blamed addresses it made up. The socket's peer counts: loopback, refused past
    its bound whatever the header says."""
    caplog.set_level(logging.WARNING, "taskdaemon.http")
    limits = HttpLimits(token_failures=3, token_window=60.0)
    async with (
        serving(auth=ApiAuth.configured(TOKEN), limits=limits) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        codes = [
            (
                await client.get(
                    "/api",
                    headers={
                        "authorization": f"Bearer wrong-token-{n:04d}-xxxxxxxx",
                        "x-forwarded-for": f"198.51.100.{n}",
                        "forwarded": f"for=198.51.100.{n}",
                    },
                )
            ).status_code
            for n in range(5)
        ]
    assert [401, 401, 401, 429, 429] == codes
    said = [r.getMessage() for r in caplog.records if r.name == "taskdaemon.http"]
    assert ["3 wrong API tokens from loopback in 60 s, then 2 refused (429)"] == said
