"""/metrics under scrape load: one render shared by concurrent scrapers, its lifetime bound by
CPU time, the gzip form Prometheus asks for, and the pace of responses."""

from __future__ import annotations

import asyncio
import gzip
import time

import httpx
from prometheus_client import CollectorRegistry, Counter, generate_latest

from taskdaemon.pipeline.http_limits import HttpLimits, MetricsCache
from taskdaemon.pipeline.server import MonitorServer, create_app


def _registry(series: int = 50) -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    counter = Counter("scraped_total", "a counter", ["n"], registry=registry)
    for n in range(series):
        counter.labels(str(n)).inc()
    return registry, counter


async def test_concurrent_scrapes_share_one_render() -> None:
    """200 scrapes arriving together cost one render, and all get the same bytes."""
    registry, _counter = _registry()
    cache = MetricsCache(registry, max_age=60.0)
    answers = await asyncio.gather(*(cache.render(None) for _ in range(200)))
    assert (cache.renders, {a.body for a in answers}) == (1, {generate_latest(registry)})


async def test_a_render_lives_until_it_has_cost_its_cpu_share() -> None:
    """With a tiny CPU share a render outlives ``max_age``: a later scrape gets the old bytes."""
    registry, counter = _registry()
    cache = MetricsCache(registry, max_age=0.000_001, cpu_share=1e-12)
    first = (await cache.render(None)).body
    counter.labels("new").inc()
    assert ((await cache.render(None)).body, cache.renders) == (first, 1)


async def test_an_old_render_is_replaced() -> None:
    """Past both bounds a scrape gets a fresh render that shows the latest samples."""
    registry, counter = _registry()
    cache = MetricsCache(registry, max_age=0.000_001, cpu_share=1.0)
    await cache.render(None)
    counter.labels("new").inc()
    await asyncio.sleep(0.01)  # past max_age; the 1x CPU bound is shorter than the render
    answer = await cache.render(None)
    assert (b'n="new"' in answer.body, cache.renders) == (True, 2)


async def test_gzip_is_served_when_accepted_and_decodes_to_the_exposition() -> None:
    """Accept-Encoding: gzip gets the same exposition compressed; without it, plain text."""
    registry, _counter = _registry()
    cache = MetricsCache(registry, max_age=60.0)
    zipped = await cache.render(None, "deflate, gzip;q=0.9")
    plain = await cache.render(None, "identity")
    assert (zipped.encoding, plain.encoding) == ("gzip", None)
    assert gzip.decompress(zipped.body) == plain.body == generate_latest(registry)


async def test_openmetrics_and_text_are_cached_apart() -> None:
    """Each format has its own render: an OpenMetrics scraper never gets the text format."""
    registry, _counter = _registry()
    cache = MetricsCache(registry, max_age=60.0)
    text = await cache.render(None)
    open_metrics = await cache.render("application/openmetrics-text; version=1.0.0")
    assert open_metrics.content_type.startswith("application/openmetrics-text")
    assert (text.body.endswith(b"# EOF\n"), open_metrics.body.endswith(b"# EOF\n")) == (
        False,
        True,
    )


async def test_scrapes_are_paced() -> None:
    """With ``per_second=20`` five scrapes take at least four intervals (0.2 s)."""
    registry, _counter = _registry()
    cache = MetricsCache(registry, max_age=60.0, per_second=20.0)
    started = time.monotonic()
    await asyncio.gather(*(cache.render(None) for _ in range(5)))
    assert time.monotonic() - started >= 0.2 - 0.01


async def test_the_server_sends_gzip_with_its_headers() -> None:
    """Over a real socket, a gzip scrape carries Content-Encoding and Vary, and decodes right."""
    registry, _counter = _registry()
    app = create_app(registry=registry, limits=HttpLimits(metrics_per_second=0.0))
    async with (
        MonitorServer(app, host="127.0.0.1", port=0) as server,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"{server.url}/metrics", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert response.content == generate_latest(registry)  # httpx decoded the gzip
