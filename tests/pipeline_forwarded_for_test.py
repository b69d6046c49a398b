"""The address a request's wrong tokens count under (``forwarded_for``): the socket's peer, or
from a named proxy the last hop of ``X-Forwarded-For`` that is not a named proxy itself."""

from __future__ import annotations

import time
from typing import Any

import pytest

from taskdaemon.pipeline.forwarded_for import (
    MAX_HOPS,
    NO_PROXIES,
    TrustedProxies,
    proxy_networks,
)

PROXIES = TrustedProxies(proxy_networks(["127.0.0.1", "::1", "10.0.0.0/8"]))


def _scope(peer: str | None, *forwarded: str, other: str = "x") -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode("latin-1")) for value in forwarded]
    return {
        "client": None if peer is None else (peer, 40000),
        "headers": [(b"host", b"127.0.0.1"), *headers, (b"x-other", other.encode())],
    }


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # The last hop is the client the proxy served; the first ones are the client's words.
        ("127.0.0.1", ["198.51.100.1, 203.0.113.7"], "203.0.113.7"),
        # Header lines are one list, in order.
        ("127.0.0.1", ["198.51.100.1", "203.0.113.7"], "203.0.113.7"),
        # A chain: hops that are named proxies are passed over, right to left.
        ("127.0.0.1", ["198.51.100.1, 203.0.113.7, 10.1.2.3"], "203.0.113.7"),
        # IPv6, and a peer written as an IPv4-mapped IPv6 address.
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("::ffff:127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("127.0.0.1", ["::ffff:203.0.113.7"], "203.0.113.7"),
        # Not a named proxy: its own address, whatever it writes.
        ("127.0.0.2", ["203.0.113.7"], "127.0.0.2"),
        ("192.0.2.9", ["203.0.113.7"], "192.0.2.9"),
        # No header, an empty one, a hop that is no bare address, only named proxies: the peer.
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", [""], "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.7:5555"], "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.7, unknown"], "127.0.0.1"),
        ("127.0.0.1", ["10.0.0.1, 127.0.0.1"], "127.0.0.1"),
        # A hop over MAX_HOP_CHARS (an address with a zone of 70 letters) is not read.
        ("127.0.0.1", ["fe80::1%" + "e" * 70], "127.0.0.1"),
        ("127.0.0.1", ["fe80::1%eth0"], "fe80::1%eth0"),
    ],
)
def test_the_client_a_request_counts_under(peer: str, forwarded: list[str], client: str) -> None:
    assert client == PROXIES.client(_scope(peer, *forwarded))


def test_without_a_named_proxy_or_a_peer_no_header_counts() -> None:
    """The default trusts nobody; a request without a peer (a Unix socket) has none."""
    assert ("127.0.0.1", None) == (
        NO_PROXIES.client(_scope("127.0.0.1", "203.0.113.7")),
        PROXIES.client(_scope(None, "203.0.113.7")),
    )


def test_a_chain_longer_than_the_hops_read_counts_under_the_peer() -> None:
    """Past ``MAX_HOPS`` named proxies the client is not looked for further."""
    chain = ", ".join(["203.0.113.7"] + ["10.0.0.1"] * MAX_HOPS)
    shorter = ", ".join(["203.0.113.7"] + ["10.0.0.1"] * (MAX_HOPS - 1))
    assert ("127.0.0.1", "203.0.113.7") == (
        PROXIES.client(_scope("127.0.0.1", chain)),
        PROXIES.client(_scope("127.0.0.1", shorter)),
    )


def test_a_header_of_a_whole_head_is_read_in_bounded_time() -> None:
    """Sixteen kilobytes of hops (a head's bound) in many lines: the last ones alone are read."""
    lines = [", ".join(["198.51.100.1"] * 100)] * 14 + ["203.0.113.7"]
    scope = _scope("127.0.0.1", *lines)
    started = time.perf_counter()
    for _ in range(100):
        assert PROXIES.client(scope) == "203.0.113.7"
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("item", ["proxy.local", "127.0.0.1/33", "*", ""])
def test_a_proxy_that_is_no_address_or_network_is_refused_in_one_line(item: str) -> None:
    with pytest.raises(ValueError, match="must be IP addresses or networks") as caught:
        proxy_networks(["::1", item])
    assert "\n" not in str(caught.value)
