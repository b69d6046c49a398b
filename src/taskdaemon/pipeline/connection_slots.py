"""Which connection gives up its slot when a server is full: one rule for the HTTP server
(``http_limits``) and the control socket (``control``).

The connection that has waited longest for a request makes room for the new one; a connection
with a request in progress (being read, handled, or its answer written) never does, so a full
server refuses a newcomer only when every slot is busy. Without this, a cap's worth of clients
that connect and send nothing hold every slot until their idle timeout, and refuse everyone
else meanwhile. The caller closes the chosen connection at once (aborts its transport, not a
graceful close): a graceful close waits for the client to take what is left of its last answer,
and a client that never reads would keep the slot it was told to give up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["longest_idle"]

Connection = TypeVar("Connection")


def longest_idle(
    connections: Iterable[Connection], idle_since: Callable[[Connection], float | None]
) -> Connection | None:
    """The connection whose wait for a request began first, by ``idle_since`` (None for a
    connection that is busy, or already closing); None when no connection waits."""
    waiting = [(since, c) for c in connections if (since := idle_since(c)) is not None]
    return min(waiting, key=lambda pair: pair[0])[1] if waiting else None
