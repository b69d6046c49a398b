"""Wrong API tokens counted per client address (``token_failures``): the bound, the 429 with
``Retry-After``, the one log line per address and window, the bounded bookkeeping, and a real
server on which one failing address does not lock out a client elsewhere."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from server_support import serving
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.token_failures import TokenFailures, client_key

TOKEN = "weak-but-16-char"
WRONG = "wrong-token-guess"
LOGGER = "taskdaemon.http"


class _Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_an_address_past_the_bound_is_refused_until_its_window_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three failures pass (each is a 401 of the caller's); the next request of that address
    is refused with the seconds left in the window, another address is not; the window's end
    says the count and the refusals in one line, and the address starts afresh."""
    caplog.set_level(logging.WARNING, LOGGER)
    clock = _Clock()
    failures = TokenFailures(limit=3, window=60.0, clock=clock)
    for _ in range(3):
        assert failures.retry_after("10.0.0.1") is None
        failures.failed("10.0.0.1")
    clock.now += 20.5
    assert failures.retry_after("10.0.0.1") == 40
    assert failures.retry_after("10.0.0.1") == 40
    assert failures.retry_after("10.0.0.2") is None
    assert _lines(caplog) == []
    clock.now += 40
    assert failures.retry_after("10.0.0.1") is None
    assert _lines(caplog) == ["3 wrong API tokens from 10.0.0.1 in 60 s, then 2 refused (429)"]
    failures.failed("10.0.0.1")
    assert len(failures) == 1


def test_a_flood_from_many_addresses_keeps_the_bookkeeping_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past ``max_clients`` addresses the one followed longest ends (in its line): the table
    never grows past the bound, and the newest addresses are still counted."""
    caplog.set_level(logging.WARNING, LOGGER)
    failures = TokenFailures(limit=1, max_clients=50, clock=_Clock())
    for n in range(1000):
        failures.failed(f"10.1.{n // 256}.{n % 256}")
    assert len(failures) == 50
    assert len(_lines(caplog)) == 950
    assert _lines(caplog)[0] == "1 wrong API token from 10.1.0.0 in 60 s"
    assert failures.retry_after("10.1.3.231") is not None  # the last one, still followed
    assert failures.retry_after("10.1.0.0") is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        (None, "unknown"),
        ("not an address", "not an address"),
    ],
)
def test_the_key_an_address_counts_under(address: str | None, key: str) -> None:
    """An IPv6 host counts by its /64 (one host's usual block), so that its many addresses
    share one budget; a mapped IPv4 counts as the IPv4."""
    assert client_key(address) == key


@pytest.mark.slow
async def test_a_real_server_refuses_a_guessing_client_and_serves_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a real socket: the guessing client (127.0.0.1) gets 401s, then 429 with
    ``Retry-After``, its right token too; a client from 127.0.0.2 is served with the right
    token at once and still gets its own 401 for a wrong one; a browser signed in from the
    refused address keeps its session. The window's end is one warning counting both,
    holding no token; then the first client is served again."""
    caplog.set_level(logging.WARNING, LOGGER)
    limits = HttpLimits(token_failures=3, token_window=2.0)
    async with serving(auth=ApiAuth.configured(TOKEN), limits=limits) as server:
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with (
            httpx.AsyncClient(base_url=server.url) as guesser,
            httpx.AsyncClient(base_url=server.url, transport=other) as good,
            httpx.AsyncClient(base_url=server.url) as browser,
        ):
            signed_in = await browser.get("/", params={"token": TOKEN})
            assert (signed_in.status_code, len(browser.cookies)) == (303, 1)

            async def status(client: httpx.AsyncClient, token: str) -> int:
                answer = await client.get("/api", headers={"Authorization": f"Bearer {token}"})
                return answer.status_code

            guesses = [await status(guesser, f"{WRONG}-{n}") for n in range(3)]
            refused = await guesser.get("/api", headers={"Authorization": f"Bearer {WRONG}"})
            right_from_guesser = await status(guesser, TOKEN)
            by_query = await guesser.get("/api", params={"token": TOKEN})
            assert guesses == [401, 401, 401]
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 2
            assert "too many wrong tokens" in refused.json()["error"]
            assert (right_from_guesser, by_query.status_code) == (429, 429)
            assert await status(good, TOKEN) == 200
            assert await status(good, WRONG) == 401
            assert (await browser.get("/api")).status_code == 200
            assert _lines(caplog) == []
            for _ in range(100):
                if len(_lines(caplog)) == 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(_lines(caplog)) == [
                "1 wrong API token from 127.0.0.2 in 2 s",
                "3 wrong API tokens from 127.0.0.1 in 2 s, then 3 refused (429)",
            ]
            assert await status(guesser, TOKEN) == 200
    assert not [r for r in caplog.records if TOKEN in r.getMessage() or WRONG in r.getMessage()]


@pytest.mark.slow
async def test_a_browser_from_a_refused_address_gets_a_page_and_a_stop_says_the_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A browser opening a page from a refused address gets the sign-in page, 429 with
    ``Retry-After``, saying when to try again (not the API's JSON); the API still answers
    JSON. The window still open when the server stops is said at its stop."""
    caplog.set_level(logging.WARNING, LOGGER)
    limits = HttpLimits(token_failures=2, token_window=600.0)
    async with serving(auth=ApiAuth.configured(TOKEN), limits=limits) as server:
        async with httpx.AsyncClient(base_url=server.url) as guesser:
            for n in range(2):
                wrong = await guesser.get("/api", headers={"Authorization": f"Bearer {WRONG}{n}"})
                assert wrong.status_code == 401
            page = await guesser.get("/", headers={"Accept": "text/html"})
            api = await guesser.get("/api", headers={"Accept": "text/html"})
        assert page.status_code == 429
        assert page.headers["content-type"].startswith("text/html")
        assert 590 <= int(page.headers["retry-after"]) <= 600
        assert f"try again in {page.headers['retry-after']} s" in page.text
        assert '<input name="token"' in page.text
        assert (api.status_code, api.headers["content-type"]) == (429, "application/json")
        assert _lines(caplog) == []
    assert _lines(caplog) == ["2 wrong API tokens from 127.0.0.1 in 600 s, then 2 refused (429)"]


def test_close_says_every_open_window(caplog: pytest.LogCaptureFixture) -> None:
    """``close`` ends the open windows, one line each, and leaves nothing followed."""
    caplog.set_level(logging.WARNING, LOGGER)
    failures = TokenFailures(limit=5, clock=_Clock())
    failures.failed("10.0.0.1")
    failures.failed("10.0.0.2")
    failures.close()
    assert len(failures) == 0
    assert _lines(caplog) == [
        "1 wrong API token from 10.0.0.1 in 60 s",
        "1 wrong API token from 10.0.0.2 in 60 s",
    ]
