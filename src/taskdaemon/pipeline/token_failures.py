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
* **Bounded bookkeeping.** At most ``max_clients`` addresses (4096) are followed at once; a new
  one past that ends the window of the address followed longest (said in the log as any other
  ending). A flood from many addresses so costs fixed memory and gives each address its
  ``limit`` guesses per window at most, as long as it keeps its entry.
* **One log line per address per window.** When a window ends (a timer on the server's loop),
  one warning counts its failures and the requests refused after them: ``10 wrong API tokens
  from 127.0.0.1 in 60 s, then 1650 refused (429)``. The line never holds a token: none is ever
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


def client_key(address: str | None) -> str:
    """The key an address counts under: the address itself, an IPv6 one's /64 block (an
    IPv4-mapped one as its IPv4), ``unknown`` for none."""
    if not address:
        return _UNKNOWN
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
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
        key = client_key(address)
        current = self._live(key)
        if current is None or current.failures < self.limit:
            return None
        current.refused += 1
        return max(1, math.ceil(current.started + self.window - self._clock()))

    def failed(self, address: str | None) -> None:
        """Count a wrong token from ``address``."""
        key = client_key(address)
        current = self._live(key)
        if current is None:
            while len(self._windows) >= self.max_clients:
                self._end(next(iter(self._windows)))
            current = _Window(started=self._clock())
            self._windows[key] = current
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass  # no loop to end it on time: it ends when next looked at, or evicted
            else:
                current.timer = loop.call_later(self.window, self._end, key)
        current.failures += 1

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
