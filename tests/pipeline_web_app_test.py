"""The web page's app (``web/_app.py``): what its pages say about where runs come from."""

from __future__ import annotations

import httpx

from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.web import WebOptions

TOKEN = "qa-web-app-token-0123456789"


async def test_the_runs_page_names_its_source_without_its_secrets() -> None:
    """A span source URL holding a password and a ``token=`` query is named on the runs page
    with both redacted."""
    source = "tempo+http://alice:hunter2pw@127.0.0.1:9?org=acme&token=qtokensecret"
    app = create_app(
        auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=source, read_only=True)
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            page = (await client.get("/")).text
    finally:
        await server.aclose()
        app.state.web.close()
    expected = (True, False, False)
    actual = (
        "Stored runs from <code>tempo+http://alice:" in page,
        "hunter2pw" in page,
        "qtokensecret" in page,
    )
    assert expected == actual
