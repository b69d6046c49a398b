"""Wrong API tokens counted per client address: refused past a bound, said in the log.

Without this, one keep-alive connection could try about as many tokens a second as the server
answers, all 401 and none logged; a configured token may be as short as 16 characters. Jupyter
Server, whose access model ``http_security`` follows, neither slows nor refuses failed token
checks: it counts on its long generated token, and logs each 4xx request at warning level.
taskdaemon serves a token the operator may have chosen short, so it goes further:

* **Counted per address, in fixed windows.** Each client address (an IPv6 one by its /64, the
  block one host is usually given; a link-local one by itself, below) has a window of
  ``window`` seconds (60) from its first failure. Past ``limit`` failures in it (10), every
  request of that address that needs a credential is answered 429 with ``Retry-After`` (the
  seconds left in the window) before its token is compared, so that a guess past the bound
  learns nothing, the right token included. A valid session cookie still passes: nobody
  guesses its signature, and a browser signed in behind the same address as a bad client keeps
  working.
* **Nobody else is locked out.** Only the failing address is refused; the right token works at
  once from any other. A success does not clear an address's count: a client that holds the
  token, behind one address with a bad one, would otherwise reset the bad one's budget with
  each of its own requests. A user who mistyped the token ``limit`` times waits the window out.
* **Loopback is one client.** Every loopback address (``127.0.0.0/8``, ``::1``, and those
  mapped into IPv6) counts under one key, ``loopback``: any local user may bind a connection to
  any of the sixteen million ``127.x.y.z``, so counted apart they gave a local guesser ``limit``
  tries a minute per address, that is, no bound. Decision: the price is that a local guesser
  also refuses the other local clients that send the token (not a browser signed in, whose
  cookie passes); a token guessed is the server's control, a refusal is a wait.
* **A site counts too.** An IPv6 address also counts under its /48 (the block a site is
  usually given: RFC 6177's end-site assignment), past ``site_limit`` failures in a window (30)
  refused like an address. Without it, a host holding a /48 failed from each of its 65,536
  /64s: ``limit`` guesses a minute each, about 41,000 a minute once the table was full. The
  hosts of one site that each mistype the token a few times stay under it; a guesser holding
  a whole /48 gets 30 a minute.
* **A link is a site.** A link-local IPv6 address (``fe80::/10``) counts as itself, and its
  link, ``fe80::/10`` with the zone, counts as its site (``site_limit``). Their /64 and /48
  are the same ``fe80::`` on every link and every interface, so counted by them every
  link-local client of the server shared one address's budget: one host mistyping the token
  refused all the others, on any link. Decision: by address, not per link alone, since a
  link's hosts are as many clients as a site's; the link bounds a host that takes many
  addresses (any host on a link may) as a /48 bounds a site's /64s. The zone keeps two links
  apart when the server is told it; Uvicorn's ``scope["client"]`` holds no zone (the peer's
  scope id is not in it), so there every link-local client shares the one ``fe80::/10``
  site window: 30 a minute, not 10.
* **Newcomers share a cap.** Every wrong token, from any address, also counts in one window of
  the whole server, ``all addresses``. Past ``total_limit`` in it (1000, a hundred addresses'
  bound), a newcomer, an address that has not shown the right token (or a valid session cookie)
  since the server started, is refused before its token is compared. An address that has shown
  it keeps its own budget, so the API clients already at work go on during a flood from many
  addresses, whose guesses are so 1000 a minute at most, whatever blocks it holds. Decision: the
  price is that a new client holding the right token waits out the flood's window
  (``Retry-After``, as for an address), which the flood's line says; a token guessed is the
  server's control. Loopback and ``unknown`` (a Unix socket) are never newcomers: a remote flood
  does not refuse the local clients, bounded as one already. The addresses that showed the token
  are remembered as the table: ``max_clients`` at most, the one seen longest ago forgotten
  first.
* **Bounded bookkeeping.** At most ``max_clients`` addresses and sites (4096) are followed at
  once. An address or site not followed while the table is full counts under one shared key,
  ``other addresses``, for as long as that window lasts; no window is ended early to make
  room, or a guesser could end its own by failing once from each of ``max_clients`` other
  addresses (a host with an IPv6 /52 has that many /64s). A flood from many addresses so
  costs fixed memory, ``max_clients + 2`` entries at most (with ``other addresses`` and ``all
  addresses``); the newcomers of a flood share one budget while it lasts.
* **Every token tried counts.** A request holding both a header token and a ``?token=`` has
  both compared (``http_security``), so a wrong pair counts two failures, not one.
* **One log line per address per window.** When a window ends (a timer on the server's loop),
  one warning counts its failures and the requests refused after them: ``10 wrong API tokens
  from loopback in 60 s, then 1650 refused (429)``. A site's and the server's window are said
  only when they reached their bound: below it, their failures are each an address's line. The
  line never holds a token: none is ever given to this class. The lines go to
  ``taskdaemon.http``, so the server's log budget (``http_limits.RateLimitFilter``) bounds them
  as a whole: a flood from many addresses is a few lines a minute, the rest counted. The windows
  still open when the server stops are said then (:meth:`TokenFailures.close`, from the server's
  shutdown on its loop), each in its own line: a guesser stopped by a restart is still on
  record.

Bad input: the address is the socket's peer (``scope["client"]``, never a header such as
``X-Forwarded-For``, which any client writes), but for a peer the operator named as a proxy,
whose forwarded last hop counts (``forwarded_for``); a request without one (a Unix socket)
counts under ``unknown``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["TokenFailures", "client_key", "ip_of", "site_key"]

_log = logging.getLogger("taskdaemon.http")

_UNKNOWN: Final = "unknown"
_LOOPBACK: Final = "loopback"
#: The key of the addresses a full table does not follow (a space: no address holds one).
_OTHERS: Final = "other addresses"
#: The key of the window every wrong token counts in.
_ALL: Final = "all addresses"
#: Every link-local IPv6 address: one link's site (with the link's zone, when known).
_LINK_LOCAL: Final = "fe80::/10"


def ip_of(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``address`` parsed without its zone, an IPv4-mapped one as its IPv4; None if it is
    not an address (``forwarded_for`` reads a proxy's hops with it too)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _zone(address: str) -> str:
    """``address``'s ``%zone`` (the interface a link-local address is on), or ``""``."""
    _, sep, zone = address.partition("%")
    return f"%{zone}" if sep else ""


def client_key(address: str | None) -> str:
    """The key an address counts under: the address itself, an IPv6 one's /64 block (an
    IPv4-mapped one as its IPv4), a link-local one itself with its zone, ``loopback`` for
    any loopback address, ``unknown`` for none."""
    if not address:
        return _UNKNOWN
    ip = ip_of(address)
    if ip is None:
        return address
    if ip.is_loopback:
        return _LOOPBACK
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_link_local:
        return f"{ip}{_zone(address)}"
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def site_key(address: str | None) -> str | None:
    """The /48 an IPv6 address also counts under (its site), ``fe80::/10`` with its zone for
    a link-local one (its link); None for any other address, loopback or not one."""
    if not address:
        return None
    ip = ip_of(address)
    if not isinstance(ip, ipaddress.IPv6Address) or ip.is_loopback:
        return None
    if ip.is_link_local:
        return f"{_LINK_LOCAL}{_zone(address)}"
    return str(ipaddress.IPv6Network(f"{ip}/48", strict=False))


@dataclass(slots=True)
class _Window:
    """One key's current window: when it started, its bound, its failures, how many were
    refused; a ``wide`` one (a site's, the server's) is said only once at its bound."""

    started: float
    limit: int
    wide: bool = False
    failures: int = 0
    refused: int = 0
    timer: asyncio.TimerHandle | None = None


class TokenFailures:
    """The failed token checks of one server (see the module docstring). Used from the
    server's event loop only: no lock."""

    def __init__(
        self,
        *,
        limit: int = 10,
        window: float = 60.0,
        max_clients: int = 4096,
        site_limit: int = 30,
        total_limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self.site_limit = site_limit
        self.total_limit = total_limit
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._known: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        """The addresses and sites followed (``other addresses`` among them, the server's
        window not)."""
        return len(self._windows) - (_ALL in self._windows)

    def retry_after(self, address: str | None) -> int | None:
        """Seconds until ``address`` may try again when it is past a bound (counting this
        request as refused, in the window that refuses it longest), else None."""
        keys = [self._key(client_key(address))]
        site = site_key(address)
        if site is not None:
            keys.append(self._key(site))
        if not self._known_key(client_key(address)):
            keys.append(_ALL)
        over = [w for w in map(self._live, keys) if w is not None and w.failures >= w.limit]
        if not over:
            return None
        last = max(over, key=lambda w: w.started)
        last.refused += 1
        return max(1, math.ceil(last.started + self.window - self._clock()))

    def failed(self, address: str | None, tokens: int = 1) -> None:
        """Count ``tokens`` wrong tokens from ``address`` (one request's): in its own window,
        its site's, and the server's; a full table's newcomers once in ``other addresses``."""
        site = site_key(address)
        counted: set[str] = set()
        for raw, limit in ((client_key(address), self.limit), (site, self.site_limit)):
            key = None if raw is None else self._key(raw)
            if key is not None and key not in counted:
                counted.add(key)
                bound = self.limit if key == _OTHERS else limit
                self._window(key, bound, wide=raw == site).failures += tokens
        self._window(_ALL, self.total_limit, wide=True).failures += tokens

    def succeeded(self, address: str | None) -> None:
        """``address`` showed the right token or a valid session: no newcomer any more."""
        key = client_key(address)
        self._known[key] = None
        self._known.move_to_end(key)
        if len(self._known) > self.max_clients:
            self._known.popitem(last=False)

    def _known_key(self, key: str) -> bool:
        """Whether ``key`` is no newcomer: it showed the right token, or it is local (a
        remote flood does not refuse the local clients, bounded as one already)."""
        return key in self._known or key in (_LOOPBACK, _UNKNOWN)

    def _window(self, key: str, limit: int, *, wide: bool = False) -> _Window:
        """``key``'s live window, begun when there is none (its end timed on the loop)."""
        current = self._live(key)
        if current is None:
            current = _Window(started=self._clock(), limit=limit, wide=wide)
            self._windows[key] = current
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass  # no loop to end it on time: it ends when next looked at
            else:
                current.timer = loop.call_later(self.window, self._end, key)
        return current

    def _key(self, key: str) -> str:
        """The key ``key`` counts under now: itself when it is followed or there is room for
        it (windows over are ended first, the oldest at the front), else ``_OTHERS``."""
        if self._live(key) is not None:
            return key
        while self._windows and self._live(next(iter(self._windows))) is None:
            pass  # the oldest window was over, and is ended: the next
        if len(self) < self.max_clients and self._live(_OTHERS) is None:
            return key
        return _OTHERS

    def _live(self, key: str) -> _Window | None:
        """``key``'s window, ended first when its time is over (its timer may be late)."""
        current = self._windows.get(key)
        if current is not None and self._clock() - current.started >= self.window:
            self._end(key)
            return None
        return current

    def _end(self, key: str) -> None:
        """End ``key``'s window, saying it in one line (a wide one only if at its bound)."""
        current = self._windows.pop(key, None)
        if current is None:
            return
        if current.timer is not None:
            current.timer.cancel()
        if current.wide and current.failures < current.limit:
            return
        refused = f", then {current.refused} refused (429)" if current.refused else ""
        noun = "token" if current.failures == 1 else "tokens"
        _log.warning(
            "%d wrong API %s from %s in %g s%s", current.failures, noun, key, self.window, refused
        )

    def close(self) -> None:
        """End every window still open, each said in its line (the server is stopping)."""
        for key in list(self._windows):
            self._end(key)
