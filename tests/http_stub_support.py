"""A stdlib ``http.server`` stand-in (a Tempo, a Jaeger, a collector) served in a thread.

``serve_forever`` reads its shutdown flag only between two waits on the listening socket, each
``poll_interval`` long: at the default 0.5 s, each ``shutdown()`` waited up to half a second,
and the hundreds of tests that start such a server spent minutes in it. The stdlib offers no
way to wake that wait, so it is made short instead: a wake-up every 10 ms of an idle loopback
server costs nothing measurable.
"""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator

#: How long ``serve_forever`` waits on the socket before it looks at its shutdown flag.
POLL_INTERVAL = 0.01


@contextlib.contextmanager
def serving_in_thread(server: socketserver.BaseServer) -> Iterator[None]:
    """Serve ``server`` in a thread for the block; then stop it, close its socket (joining
    its handler threads, if it keeps them) and join the thread."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
