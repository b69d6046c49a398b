"""A remote source's host name whose look-up hangs: the query's deadline bounds it too.

``getaddrinfo`` takes its name servers from ``/etc/resolv.conf``, which a test cannot change
(no variable names a server; ``RES_OPTIONS`` only sets options), and no name can be made slow
without one. Decision: the command runs with a ``sitecustomize`` of the test's on its path that
has ``socket.getaddrinfo`` resolve the names under ``.test`` (RFC 6761's names for tests) by a
real DNS query over UDP to a server the test runs on 127.0.0.1, waiting for its answer as long
as it takes, as the C resolver blocks; every other name goes to the real ``getaddrinfo``. The
code under test calls ``socket.getaddrinfo`` as it would with any resolver.
"""

from __future__ import annotations

import socket
import struct
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reliability_sources_support import answering, serving
from reliability_support import taskdaemon

#: What the command's ``sitecustomize`` holds (module docstring).
_SITECUSTOMIZE = textwrap.dedent(
    """\
    import os
    import socket
    import struct

    _real = socket.getaddrinfo
    _host, _, _port = os.environ["TEST_DNS_SERVER"].rpartition(":")


    def getaddrinfo(host, port, *args, **kwargs):
        if not (isinstance(host, str) and host.endswith(".test")):
            return _real(host, port, *args, **kwargs)
        labels = b"".join(bytes([len(part)]) + part.encode() for part in host.split("."))
        query = struct.pack(">6H", 0x5157, 0x0100, 1, 0, 0, 0) + labels + b"\\0\\0\\1\\0\\1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(query, (_host, int(_port)))
            answer = udp.recv(512)  # no timeout, as the C resolver's wait
        return _real(socket.inet_ntoa(answer[-4:]), port, *args, **kwargs)


    socket.getaddrinfo = getaddrinfo
    """
)


class _Resolver:
    """A DNS server on 127.0.0.1 (UDP) answering every query with one A record, 127.0.0.1,
    ``delay`` seconds after it came (or at once when the test ends)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.names: list[str] = []
        self.stop = threading.Event()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                query, client = self.socket.recvfrom(512)
            except TimeoutError:
                continue
            labels, at = [], 12
            while query[at]:
                labels.append(query[at + 1 : at + 1 + query[at]].decode())
                at += 1 + query[at]
            self.names.append(".".join(labels))
            self.stop.wait(self.delay)
            question = query[12 : at + 5]
            header = struct.pack(">6H", *struct.unpack(">H", query[:2]), 0x8180, 1, 1, 0, 0)
            record = struct.pack(">3HIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
            self.socket.sendto(header + question + record, client)


@contextmanager
def resolving(delay: float) -> Iterator[_Resolver]:
    """A :class:`_Resolver` serving in a thread for the block, stopped and closed after it."""
    resolver = _Resolver(delay)
    thread = threading.Thread(target=resolver.serve, name="test-resolver")
    thread.start()
    try:
        yield resolver
    finally:
        resolver.stop.set()
        thread.join()
        resolver.socket.close()


def _runs_list(home: Path, tmp_path: Path, resolver: _Resolver, port: int) -> tuple[float, Any]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    started = time.monotonic()
    done = taskdaemon(
        home,
        "runs",
        "list",
        "--source",
        f"tempo+http://slow-dns.test:{port}",
        timeout=60,
        TASKDAEMON_SOURCE_TIMEOUT="2",
        TEST_DNS_SERVER=resolver.address,
        PYTHONPATH=f"{site}:{Path(__file__).resolve().parent.parent / 'src'}",
    )
    return time.monotonic() - started, done


@pytest.mark.slow
def test_a_look_up_that_hangs_ends_runs_list_at_its_deadline(home: Path, tmp_path: Path) -> None:
    """The resolver answers after 30 s: ``runs list`` ends with one line naming the host and
    the deadline, well before that answer (its 2 s deadline, plus the command's start-up and
    exit, which are no part of the query)."""
    with serving(answering(b'{"metrics": {}}')) as server, resolving(30.0) as resolver:
        port = int(server.url.rpartition(":")[2])
        took, done = _runs_list(home, tmp_path, resolver, port)
    expected = (1, 1, True, True, False, True, [])
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        "no complete answer within 2 s" in done.stderr,
        "the address of slow-dns.test not found within" in done.stderr,
        "Traceback" in done.stderr,
        took < 15,
        server.requests,
    )
    assert expected == actual, (took, done.stderr)
    assert "slow-dns.test" in resolver.names  # the look-up went to the test's resolver


@pytest.mark.slow
def test_a_name_resolved_in_time_is_connected_to(home: Path, tmp_path: Path) -> None:
    """The resolver answers at once: the source is reached at the address it gave, and Tempo's
    answer of nothing found is ``no runs``."""
    with serving(answering(b'{"metrics": {}}')) as server, resolving(0.0) as resolver:
        port = int(server.url.rpartition(":")[2])
        _, done = _runs_list(home, tmp_path, resolver, port)
    expected = (0, "", 1, ["slow-dns.test"])
    actual = (done.returncode, done.stderr, len(server.requests), resolver.names)
    assert expected == actual, done.stderr
