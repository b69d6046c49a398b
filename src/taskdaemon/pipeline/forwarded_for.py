"""The address a request's wrong tokens count under: the socket's peer, or, when that peer is a
proxy the operator named (``TASKDAEMON_API_TRUSTED_PROXY``), the client that proxy says it
served, from ``X-Forwarded-For``.

Behind a reverse proxy on the same machine every request comes from loopback, so every client
shared one budget of wrong tokens (``token_failures``): one guesser locked everyone out for a
minute. Trusting the header from anyone was the hole web59 closed (uvicorn trusted it from any
loopback peer, so a local guesser wrote a fresh address with each wrong token). Decisions:

* **Opt-in, by address.** The operator names the proxy's addresses or networks, comma-separated
  (``127.0.0.1``, ``::1``, ``10.0.0.0/8``); nothing is trusted by default. A host name is
  refused at start: resolving it would make the trust depend on DNS at start-up.
* **Only from that peer.** A request whose socket peer is not a named proxy counts under its
  peer, whatever headers it holds.
* **The last hop, not the first.** A proxy appends the address it was connected from to the
  header it was sent (nginx's ``$proxy_add_x_forwarded_for``, Caddy's and HAProxy's default):
  the leftmost entries are whatever the client wrote. The header (its lines joined, in order)
  is read from the right, passing over hops that are themselves named proxies (a chain of
  them), and the first other address is the client. At most :data:`MAX_HOPS` hops are read,
  each of at most :data:`MAX_HOP_CHARS` characters: a head is bounded (16 KiB, ``http_limits``)
  and so is the work on it.
* **Anything else counts under the peer.** No header, a hop that is not a bare IP address (a
  port, ``unknown``, an obfuscated name), or only named proxies within the hops read: the
  proxy's own budget, as without the setting. A proxy writes what it saw, so such a header
  means a proxy set up otherwise, never a client's choice.
* **Local users.** On a machine whose loopback other users share, any of them can connect
  from the named proxy's address too (any local process may bind any 127.x source address)
  and write the header: its guesses then count under addresses it chooses, bounded by the
  server-wide bound (``token_total_failures``) rather than the per-address one. Name a proxy
  only where the machine's other users are trusted, or there are none (a container holding
  the proxy and the server); otherwise leave it unset and let the proxy bound its clients.

Only the wrong-token limits use this address: the connection cap is one for all
(``connection_slots``), the Host and Origin checks read their own headers, and the server's
log lines name the socket's peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.token_failures import ip_of

__all__ = ["MAX_HOPS", "MAX_HOP_CHARS", "NO_PROXIES", "TrustedProxies", "proxy_networks"]

#: The hops of ``X-Forwarded-For`` read from its right: a chain of proxies is short.
MAX_HOPS: Final = 8
#: The longest hop read: an IPv6 address with an IPv4 tail is 45 characters.
MAX_HOP_CHARS: Final = 64

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(items: Iterable[str]) -> tuple[_Network, ...]:
    """``items`` (addresses or networks, ``127.0.0.1``, ``10.0.0.0/8``) as networks; a
    ValueError in one line for the first that is neither."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"must be IP addresses or networks separated by commas, not {quote(item)}"
            ) from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` names the client (the module docstring)."""

    networks: tuple[_Network, ...] = ()

    def _named(self, ip: _Address) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)

    def client(self, scope: Mapping[str, Any]) -> str | None:
        """The address ``scope``'s request counts under; None without a peer (a Unix socket)."""
        peer: str | None = (scope.get("client") or (None, 0))[0]
        if not self.networks or peer is None:
            return peer
        ip = ip_of(peer)
        if ip is None or not self._named(ip):
            return peer
        lines = [value for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
        hops = b",".join(lines).rsplit(b",", MAX_HOPS)[-MAX_HOPS:]
        for hop in reversed(hops):
            text = hop.strip().decode("latin-1")
            hop_ip = ip_of(text) if len(text) <= MAX_HOP_CHARS else None
            if hop_ip is None:
                return peer
            if not self._named(hop_ip):
                _, sep, zone = text.partition("%")  # a link-local one's link counts apart
                return f"{hop_ip}{sep}{zone}"
        return peer


#: No proxy trusted: every request counts under its socket's peer (the default).
NO_PROXIES: Final = TrustedProxies()
