"""Wrong API tokens counted per client address: refused past a bound, said in the log.

Without this, one keep-alive connection could try about as many tokens a second as the server
answers, all 401 and none logged; a configured token may be as short as 16 characters. Jupyter
Server, whose access model ``http_security`` follows, neither slows nor refuses failed token
checks: it counts on its long generated token, and logs each 4xx request at warning level.
taskdaemon serves a token the operator may have chosen short, so it goes further:

* **Counted per address, in fixed windows.** Each client address (an IPv6 one by its /64, the
  block one host is usually given) has a window of ``window`` seconds (60) from its first
  failure. Past ``limit`` failures in it (10), every request of that address that needs a
  credential is answered 429 with ``Retry-After`` (the seconds left in the window) before
  its token is compared, so that a guess past the bound learns nothing, the right token
  included. A valid session cookie still passes: nobody guesses its signature, and a browser
  signed in behind the same address as a bad client keeps working.
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
* **Bounded bookkeeping.** At most ``max_clients`` addresses (4096) are followed at once. An
  address not followed while the table is full counts under one shared key, ``other
  addresses``, for as long as that window lasts; no window is ended early to make room, or a
  guesser could end its own by failing once from each of ``max_clients`` other addresses (a
  host with an IPv6 /52 has that many /64s). A flood from many addresses so costs fixed memory
  and ``limit`` guesses per window per entry, ``max_clients + 1`` entries at most; the
  newcomers of a flood share one budget while it lasts.
* **Every token tried counts.** A request holding both a header token and a ``?token=`` has
  both compared (``http_security``), so a wrong pair counts two failures, not one.
* **One log line per address per window.** When a window ends (a timer on the server's loop),
  one warning counts its failures and the requests refused after them: ``10 wrong API tokens
  from loopback in 60 s, then 1650 refused (429)``. The line never holds a token: none is ever
  given to this class. The lines go to ``taskdaemon.http``, so the server's log budget
  (``http_limits.RateLimitFilter``) bounds them as a whole: a flood from many addresses is
  a few lines a minute, the rest counted. The windows still open when the server stops are
  said then (:meth:`TokenFailures.close`, from the server's shutdown on its loop), each in its
  own line: a guesser stopped by a restart is still on record.

Bad input: the address is the socket's peer (``scope["client"]``, never a header such as
``X-Forwarded-For``, which any client writes); a request without one (a Unix socket) counts
under ``unknown``.
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

__all__ = ["TokenFailures", "client_key"]

_log = logging.getLogger("taskdaemon.http")

_UNKNOWN: Final = "unknown"
_LOOPBACK: Final = "loopback"
#: The key of the addresses a full table does not follow (a space: no address holds one).
_OTHERS: Final = "other addresses"


def client_key(address: str | None) -> str:
    """The key an address counts under: the address itself, an IPv6 one's /64 block (an
    IPv4-mapped one as its IPv4), ``loopback`` for any loopback address, ``unknown`` for
    none."""
    if not address:
        return _UNKNOWN
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return _LOOPBACK
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(slots=True)
class _Window:
    """One address's current window: when it started, its failures, how many were refused."""

    started: float
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def retry_after(self, address: str | None) -> int | None:
        """Seconds until ``address`` may try again when it is past the bound (counting this
        request as refused), else None."""
        current = self._live(self._key(address))
        if current is None or current.failures < self.limit:
            return None
        current.refused += 1
        return max(1, math.ceil(current.started + self.window - self._clock()))

    def failed(self, address: str | None, tokens: int = 1) -> None:
        """Count ``tokens`` wrong tokens from ``address`` (one request's)."""
        key = self._key(address)
        current = self._live(key)
        if current is None:
            current = _Window(started=self._clock())
            self._windows[key] = current
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass  # no loop to end it on time: it ends when next looked at
            else:
                current.timer = loop.call_later(self.window, self._end, key)
        current.failures += tokens

    def _key(self, address: str | None) -> str:
        """The key ``address`` counts under now: its own when it is followed or there is room
        for it (windows over are ended first, the oldest at the front), else ``_OTHERS``."""
        key = client_key(address)
        if self._live(key) is not None:
            return key
        while self._windows and self._live(next(iter(self._windows))) is None:
            pass  # the oldest window was over, and is ended: the next
        if len(self._windows) < self.max_clients and self._live(_OTHERS) is None:
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
        """End ``key``'s window, saying it in one line."""
        current = self._windows.pop(key, None)
        if current is None:
            return
        if current.timer is not None:
            current.timer.cancel()
        refused = f", then {current.refused} refused (429)" if current.refused else ""
        noun = "token" if current.failures == 1 else "tokens"
        _log.warning(
            "%d wrong API %s from %s in %g s%s", current.failures, noun, key, self.window, refused
        )

    def close(self) -> None:
        """End every window still open, each said in its line (the server is stopping)."""
        for key in list(self._windows):
            self._end(key)
