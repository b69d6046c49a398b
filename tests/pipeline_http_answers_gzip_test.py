"""Whether an answer is gzipped: one rule, ``http_answers.accepts_gzip``, for ``/metrics``, the
page's answers and its event streams, over a real server and a real client (httpx).

``gzip;q=0`` says gzip is not acceptable (RFC 9110, 12.5.3), as Prometheus's own ``/metrics``
(Go's client_golang) reads it; Starlette's middleware and prometheus_client looked for the
word alone."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from taskdaemon.pipeline.http_answers import accepts_gzip
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.web import WebOptions

TOKEN = "gzip-negotiation-token-0123456789"


@pytest.mark.slow
async def test_metrics_and_the_page_honour_gzip_q_0() -> None:
    """``/metrics`` and a static file of the page are gzipped for ``gzip`` and ``*``, plain
    for ``gzip;q=0`` (the client refuses it) and for ``identity``; each decodes to the same
    bytes (httpx decodes gzip)."""
    registry = CollectorRegistry()
    counter = Counter("scraped_total", "a counter", ["n"], registry=registry)
    for n in range(50):  # an exposition over GZIP_FROM
        counter.labels(str(n)).inc()
    app = create_app(
        registry=registry,
        auth=ApiAuth(token=TOKEN, principal="gzip"),
        limits=HttpLimits(metrics_per_second=0.0),
        web=WebOptions(),
    )
    asked = ("gzip", "*", "gzip;q=0, identity", "GZIP; Q=0.000", "identity")
    answers: dict[str, list[str | None]] = {}
    async with (
        MonitorServer(app, host="127.0.0.1", port=0) as server,
        httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client,
    ):
        for path in ("/metrics", "/static/app.js"):
            bodies = set()
            for encoding in asked:
                response = await client.get(
                    f"{server.url}{path}", headers={"accept-encoding": encoding}
                )
                assert 200 == response.status_code, response.text
                answers.setdefault(path, []).append(response.headers.get("content-encoding"))
                bodies.add(response.content)
            assert 1 == len(bodies), f"{path}: the same bytes, decoded"
    expected = ["gzip", "gzip", None, None, None]
    assert {"/metrics": expected, "/static/app.js": expected} == answers


def test_accepts_gzip_reads_q_values() -> None:
    """Named or ``*`` without ``q=0`` is an acceptance; ``q=0``, a ``q`` that is no number, or
    no mention is not, and gzip named with ``q=0`` is refused whatever ``*`` says."""
    said = {
        value: accepts_gzip(value)
        for value in (
            "gzip",
            "br, gzip;q=0.5",
            "*",
            "gzip;q=0",
            "gzip; q=0.0",
            "gzip;q=x",
            "br",
            "*, gzip;q=0",
            "gzip;q=0, *",
            "",
        )
    }
    assert {
        "gzip": True,
        "br, gzip;q=0.5": True,
        "*": True,
        "gzip;q=0": False,
        "gzip; q=0.0": False,
        "gzip;q=x": False,
        "br": False,
        "*, gzip;q=0": False,
        "gzip;q=0, *": False,
        "": False,
    } == said
