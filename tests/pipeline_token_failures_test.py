"""Wrong API tokens counted per client address (``token_failures``): the bound, the 429 with
``Retry-After``, the one log line per address and window, the bounded bookkeeping that a
guesser cannot use to end its own window, and a real server on which a local guesser cannot
dodge the bound by binding another loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator

import httpx
import pytest

from server_support import serving
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.token_failures import TokenFailures, client_key, site_key

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
    """Past ``max_clients`` addresses the newcomers share one window, ``other addresses``:
    the table never grows past the bound plus that one, no window is ended early, and the
    newcomers are refused together past the bound. Once the windows are over there is room
    again."""
    caplog.set_level(logging.WARNING, LOGGER)
    clock = _Clock()
    failures = TokenFailures(limit=3, max_clients=50, total_limit=10_000, clock=clock)
    for n in range(1000):
        failures.failed(f"10.1.{n // 256}.{n % 256}")
    assert len(failures) == 51
    assert _lines(caplog) == []
    assert failures.retry_after("10.1.0.0") is None  # 1 failure of its own: under the bound
    assert failures.retry_after("10.9.9.9") == 60  # a newcomer: the others' 950
    clock.now += 60
    failures.failed("10.9.9.9")
    assert len(failures) == 1
    assert len(_lines(caplog)) == 51
    assert "950 wrong API tokens from other addresses in 60 s, then 1 refused (429)" in _lines(
        caplog
    )


def test_a_guesser_cannot_end_its_own_window_by_filling_the_table() -> None:
    """A guesser refused, then one failure from each of ``max_clients`` other addresses (a
    host with an IPv6 /52 has 4,096 /64s): still refused. Before, the newcomers ended the
    window followed longest, its own, and it guessed afresh. Their site's bound is out of
    reach, so that the refusal is its own window's: the whole window, as the clock stands."""
    failures = TokenFailures(limit=3, max_clients=50, site_limit=1000, clock=_Clock())
    for _ in range(3):
        failures.failed("2001:db8:0:1::1")
    for n in range(50):
        failures.failed(f"2001:db8:0:{n + 2:x}::1")
    assert failures.retry_after("2001:db8:0:1::7") == 60


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("fe80::1:2", "fe80::1:2"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("127.0.0.1", "loopback"),
        ("127.255.3.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.2", "loopback"),
        (None, "unknown"),
        ("not an address", "not an address"),
    ],
)
def test_the_key_an_address_counts_under(address: str | None, key: str) -> None:
    """An IPv6 host counts by its /64 (one host's usual block), so that its many addresses
    share one budget; a mapped IPv4 counts as the IPv4; every loopback address, which any
    local user may bind, counts as one."""
    assert client_key(address) == key


@pytest.mark.slow
async def test_a_real_server_refuses_a_guessing_client_from_any_loopback_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a real socket: the guessing client (127.0.0.1) gets 401s, then 429 with
    ``Retry-After``, its right token too, and so does a guess bound to 127.0.0.2 or
    127.8.9.10 (before, each of the sixteen million loopback addresses had a budget of its
    own: a local guesser was not bounded); a browser signed in keeps its session. The
    window's end is one warning, holding no token; then the right token is served again."""
    caplog.set_level(logging.WARNING, LOGGER)
    limits = HttpLimits(token_failures=3, token_window=2.0)
    async with serving(auth=ApiAuth.configured(TOKEN), limits=limits) as server:
        elsewhere = [
            httpx.AsyncHTTPTransport(local_address=address)
            for address in ("127.0.0.2", "127.8.9.10")
        ]
        async with (
            httpx.AsyncClient(base_url=server.url) as guesser,
            httpx.AsyncClient(base_url=server.url, transport=elsewhere[0]) as second,
            httpx.AsyncClient(base_url=server.url, transport=elsewhere[1]) as third,
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
            assert [await status(second, WRONG), await status(third, TOKEN)] == [429, 429]
            assert (await browser.get("/api")).status_code == 200
            assert _lines(caplog) == []
            for _ in range(100):
                if _lines(caplog):
                    break
                await asyncio.sleep(0.05)
            assert _lines(caplog) == [
                "3 wrong API tokens from loopback in 2 s, then 5 refused (429)"
            ]
            assert await status(second, TOKEN) == 200
    assert not [r for r in caplog.records if TOKEN in r.getMessage() or WRONG in r.getMessage()]


@pytest.mark.slow
async def test_a_request_with_a_header_token_and_a_query_token_counts_two_guesses() -> None:
    """Both tokens of a request are compared, so both count: two such requests reach a bound
    of 4 (before, each counted one, and a guesser tried twice as many)."""
    limits = HttpLimits(token_failures=4, token_window=60.0)
    async with (
        serving(auth=ApiAuth.configured(TOKEN), limits=limits) as server,
        httpx.AsyncClient(base_url=server.url) as guesser,
    ):
        answers = [
            await guesser.get(
                "/api",
                params={"token": f"{WRONG}-q{n}"},
                headers={"Authorization": f"Bearer {WRONG}-h{n}"},
            )
            for n in range(3)
        ]
    assert [answer.status_code for answer in answers] == [401, 401, 429]


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
    assert _lines(caplog) == ["2 wrong API tokens from loopback in 600 s, then 2 refused (429)"]


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


def test_the_defaults_are_ten_failures_a_minute_and_4096_addresses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a server without its own limits gets (``ApiAuth``'s own count): an address is
    refused past its tenth failure, and the 4097th address shares the newcomers' window,
    the first's still running."""
    caplog.set_level(logging.WARNING, LOGGER)
    clock = _Clock()
    failures = TokenFailures(clock=clock)
    for _ in range(9):
        failures.failed("10.0.0.1")
    assert failures.retry_after("10.0.0.1") is None
    failures.failed("10.0.0.1")
    assert failures.retry_after("10.0.0.1") == 60
    for n in range(1, 4096):
        failures.failed(f"10.2.{n // 256}.{n % 256}")
    assert (4096, []) == (len(failures), _lines(caplog))
    failures.failed("10.3.0.0")
    assert (4097, [], 60) == (len(failures), _lines(caplog), failures.retry_after("10.0.0.1"))


def test_a_window_ends_at_its_last_second(caplog: pytest.LogCaptureFixture) -> None:
    """Half a second before the window's end a refused address is told 1 s (not less, never
    0); at the end itself the window is over and the address tries afresh."""
    caplog.set_level(logging.WARNING, LOGGER)
    clock = _Clock()
    failures = TokenFailures(limit=1, window=60.0, clock=clock)
    failures.failed("10.0.0.1")
    clock.now += 59.5
    assert failures.retry_after("10.0.0.1") == 1
    clock.now += 0.5
    assert failures.retry_after("10.0.0.1") is None
    assert _lines(caplog) == ["1 wrong API token from 10.0.0.1 in 60 s, then 1 refused (429)"]


def test_link_local_addresses_count_apart_and_their_link_as_a_site() -> None:
    """Every link-local address is in ``fe80::/64``, on every link: counted by its /64, all
    the link-local clients of a server shared one address's budget. Each counts as itself
    now, its zone keeping two links apart when the address has one, and the link is the
    site: 30 a minute from all its addresses, not 10."""
    failures = TokenFailures(limit=2, site_limit=5)
    assert (client_key("fe80::1:2%eth0"), client_key("fe80::1:2%eth1")) == (
        "fe80::1:2%eth0",
        "fe80::1:2%eth1",
    )
    for _ in range(2):
        failures.failed("fe80::1%eth0")
    assert failures.retry_after("fe80::1%eth0") is not None
    assert failures.retry_after("fe80::2%eth0") is None
    for n in range(3):
        failures.failed(f"fe80::{n + 3:x}%eth0")
    assert failures.retry_after("fe80::99%eth0") is not None  # the link at its bound
    assert failures.retry_after("fe80::99%eth1") is None  # another link


def _compared(failures: TokenFailures, addresses: Iterable[str]) -> int:
    """How many of one wrong guess from each of ``addresses`` get their token compared (each
    one then counted), as the server does."""
    compared = 0
    for address in addresses:
        if failures.retry_after(address) is None:
            failures.failed(address)
            compared += 1
    return compared


def test_a_host_with_a_48_gets_the_sites_bound_not_one_per_64() -> None:
    """One guess from each /64 of a /48 (65,536 of them), in one window, with the defaults:
    30 are compared (before, 10 per /64 followed and 10 for the rest: one pass 4,106, ten
    passes 40,970), the rest refused; another site is not refused."""
    failures = TokenFailures(clock=_Clock())
    site = [f"2001:db8:7:{n:x}::1" for n in range(65_536)]
    assert _compared(failures, site) == 30
    assert _compared(failures, site[:1000]) == 0
    assert failures.retry_after("2001:db8:7:ffff::9") is not None
    assert failures.retry_after("2001:db8:8::1") is None


def test_past_the_total_newcomers_are_refused_and_known_clients_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood from many addresses (here sites of their own, and IPv4): past ``total_limit``
    wrong tokens in the window, an address that never showed the right token is refused;
    one that did keeps its own budget, and loopback too. The server's window says the
    flood and its refusals in one line."""
    caplog.set_level(logging.WARNING, LOGGER)
    clock = _Clock()
    failures = TokenFailures(limit=3, total_limit=20, clock=clock)
    failures.succeeded("192.0.2.1")
    flood = [f"2001:db8:{n:x}::1" for n in range(10)] + [f"198.51.100.{n}" for n in range(100)]
    assert _compared(failures, flood) == 20
    assert failures.retry_after("203.0.113.5") is not None  # a newcomer
    assert failures.retry_after("192.0.2.1") is None  # showed the token before
    assert failures.retry_after("127.0.0.1") is None
    clock.now += 60
    assert failures.retry_after("203.0.113.5") is None
    assert "20 wrong API tokens from all addresses in 60 s, then 91 refused (429)" in _lines(caplog)


def test_a_site_and_the_server_under_their_bounds_say_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Below its bound a wide window (a /48's, the server's) ends without a line: one
    failure is one line, its address's."""
    caplog.set_level(logging.WARNING, LOGGER)
    failures = TokenFailures(clock=_Clock())
    failures.failed("2001:db8:1:2::3")
    assert len(failures) == 2
    failures.close()
    assert _lines(caplog) == ["1 wrong API token from 2001:db8:1:2::/64 in 60 s"]


def test_the_known_clients_are_bounded_like_the_table() -> None:
    """Past ``max_clients`` addresses that showed the token, the one seen longest ago is
    forgotten: a newcomer again."""
    failures = TokenFailures(limit=3, max_clients=4, total_limit=1, clock=_Clock())
    for n in range(5):
        failures.succeeded(f"192.0.2.{n}")
    failures.succeeded("192.0.2.1")
    failures.failed("198.51.100.1")
    assert failures.retry_after("192.0.2.0") is not None
    assert [failures.retry_after(f"192.0.2.{n}") for n in range(1, 5)] == [None] * 4


@pytest.mark.parametrize(
    ("address", "site"),
    [
        ("2001:db8:1:2:aaaa::1", "2001:db8:1::/48"),
        ("2001:db8:1:ffff::1%eth0", "2001:db8:1::/48"),
        ("fe80::1:2%eth0", "fe80::/10%eth0"),
        ("fe80:0:0:7::1", "fe80::/10"),
        ("192.0.2.7", None),
        ("::ffff:192.0.2.7", None),
        ("::1", None),
        (None, None),
        ("not an address", None),
    ],
)
def test_the_site_an_address_counts_under(address: str | None, site: str | None) -> None:
    """Only an IPv6 address that is not loopback has a site, its /48, or a link-local one's
    link."""
    assert site_key(address) == site


@contextlib.contextmanager
def _addresses_on_lo(addresses: list[str]) -> Iterator[None]:
    """``addresses`` added to ``lo`` (without duplicate address detection, so that they can be
    bound at once) and removed on exit; the test is skipped, saying why, where the machine
    does not allow it (not root, no ``ip``, no IPv6)."""
    if not socket.has_ipv6 or not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("IPv6 is unavailable on this machine")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("adding IPv6 addresses to lo needs root and iproute2's ip")
    added: list[str] = []
    try:
        for address in addresses:
            done = subprocess.run(
                ["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                pytest.skip(f"cannot add {address} to lo: {done.stderr.strip()}")
            added.append(address)
        yield
    finally:
        for address in added:
            subprocess.run(
                ["ip", "-6", "addr", "del", f"{address}/128", "dev", "lo"],
                capture_output=True,
                check=False,
            )


@pytest.mark.slow
async def test_a_real_server_bounds_a_site_and_the_newcomers_of_a_flood(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real requests from IPv6 source addresses on ``lo`` (unique local ones, a prefix of
    this run's own) to a server on ``::1``. Six /64s of one /48, one guess each: the sixth
    is refused, the site past its bound (before, each /64 had a budget of its own). Then new
    sites guess until the server's bound: a newcomer is refused, its right token too, while a
    client that showed the token before and a local one are served. Both wide windows are
    said at the stop."""
    caplog.set_level(logging.WARNING, LOGGER)
    gid = secrets.randbits(40)

    def site(n: int) -> str:
        prefix = (0xFD << 40 | (gid + n) % (1 << 40)).to_bytes(6, "big").hex()
        return ":".join(prefix[i : i + 4] for i in range(0, 12, 4))

    one_site = [f"{site(0)}:{n:x}::1" for n in range(6)]
    known, *guessers = [f"{site(n)}::1" for n in range(1, 5)]
    newcomer = guessers.pop()
    limits = HttpLimits(
        token_failures=2, token_site_failures=5, token_total_failures=9, token_window=60.0
    )
    with _addresses_on_lo([*one_site, known, *guessers, newcomer]):
        async with serving(auth=ApiAuth.configured(TOKEN), limits=limits, host="::1") as server:

            async def status(source: str | None, token: str) -> int:
                transport = httpx.AsyncHTTPTransport(local_address=source)
                async with httpx.AsyncClient(base_url=server.url, transport=transport) as c:
                    answer = await c.get("/api", headers={"Authorization": f"Bearer {token}"})
                return answer.status_code

            assert [await status(a, WRONG) for a in one_site] == [401] * 5 + [429]
            assert await status(known, TOKEN) == 200
            flood = [await status(a, WRONG) for a in guessers for _ in range(2)]
            assert flood == [401] * 4
            assert [await status(newcomer, WRONG), await status(newcomer, TOKEN)] == [429, 429]
            assert [await status(known, TOKEN), await status(None, TOKEN)] == [200, 200]
    lines = _lines(caplog)
    said = ipaddress.ip_network(f"{site(0)}::/48")  # as written: leading zeros dropped
    assert f"5 wrong API tokens from {said} in 60 s, then 1 refused (429)" in lines
    assert "9 wrong API tokens from all addresses in 60 s, then 2 refused (429)" in lines


def _link_local_status(source: str, port: int, token: str) -> int:
    """The status of ``GET /api`` with ``token`` sent to ``[::1]:port`` from the link-local
    ``source`` on ``lo``, over a socket of its own: the HTTP clients cannot bind a link-local
    address, which needs the interface's index beside it."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.bind((source, 0, 0, socket.if_nametoindex("lo")))
        client.connect(("::1", port))
        head = f"GET /api HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
        client.sendall(f"{head}Connection: close\r\n\r\n".encode())
        answer = b""
        while b"\r\n" not in answer and (chunk := client.recv(4096)):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.slow
async def test_a_real_server_counts_link_local_clients_apart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real requests from link-local addresses on ``lo`` to a server on ``::1``: a client
    past its bound is refused, its right token too, and another link-local client is
    served, where before every link-local client counted under ``fe80::/64``, one budget;
    clients taking address after address are refused at the link's bound. Each address's
    window and the link's are said at the stop."""
    caplog.set_level(logging.WARNING, LOGGER)
    tag = secrets.randbits(16)
    mistyper, neighbour, *many = [f"fe80::{tag:x}:{n + 1:x}" for n in range(6)]
    limits = HttpLimits(token_failures=2, token_site_failures=5, token_window=60.0)
    with _addresses_on_lo([mistyper, neighbour, *many]):
        async with serving(auth=ApiAuth.configured(TOKEN), limits=limits, host="::1") as server:
            port = int(server.url.rsplit(":", 1)[1])

            async def status(source: str, token: str) -> int:
                return await asyncio.to_thread(_link_local_status, source, port, token)

            mistyped = [await status(mistyper, WRONG) for _ in range(3)]
            assert [*mistyped, await status(mistyper, TOKEN)] == [401, 401, 429, 429]
            assert await status(neighbour, TOKEN) == 200
            assert [await status(a, WRONG) for a in many] == [401, 401, 401, 429]
            assert await status(neighbour, TOKEN) == 429  # the link is at its bound
    lines = _lines(caplog)
    assert f"2 wrong API tokens from {mistyper} in 60 s, then 2 refused (429)" in lines
    assert "5 wrong API tokens from fe80::/10 in 60 s, then 2 refused (429)" in lines
