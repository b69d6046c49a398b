"""Which connection gives up its slot when a server is full, and how a server stops accepting:
rules shared by the HTTP server (``http_limits``, ``http_thread``) and the control socket
(``control``).

The connection that has waited longest for a request makes room for the new one; a connection
with a request in progress (being read, handled, or its answer written) never does, so a full
server refuses a newcomer only when every slot is busy. Without this, a cap's worth of clients
that connect and send nothing hold every slot until their idle timeout, and refuse everyone
else meanwhile. The caller closes the chosen connection at once (aborts its transport, not a
graceful close): a graceful close waits for the client to take what is left of its last answer,
and a client that never reads would keep the slot it was told to give up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

__all__ = ["longest_idle", "stop_accepting"]

Connection = TypeVar("Connection")


def longest_idle(
    connections: Iterable[Connection], idle_since: Callable[[Connection], float | None]
) -> Connection | None:
    """The connection whose wait for a request began first, by ``idle_since`` (None for a
    connection that is busy, or already closing); None when no connection waits."""
    waiting = [(since, c) for c in connections if (since := idle_since(c)) is not None]
    return min(waiting, key=lambda pair: pair[0])[1] if waiting else None


#: Loop iterations from accepting a connection to its stream handler's first step: the
#: transport is made in the next, ``connection_made`` called in the one after, and a stream
#: server's handler task starts in the third.
_ACCEPTED_WITHIN: Final = 3


async def stop_accepting(server: asyncio.Server) -> None:
    """Stop ``server`` accepting, then let the connections it accepted already be made, before
    the caller closes it and ends its connections.

    Closing it at once leaked them: Python 3.11 drops, its socket open, a transport made after
    its server closed, and one made after the caller's pass over its connections is never told
    to close, and stays open once the loop ends.
    """
    loop = asyncio.get_running_loop()
    for listener in server.sockets:
        loop.remove_reader(listener)
    for _ in range(_ACCEPTED_WITHIN):
        await asyncio.sleep(0)
