"""A host name whose look-up hangs, polled again and again (``watch``): one look-up per name in
flight, a cap on the names looked up at once (``tracking/_deadline_io.py``).

The resolver is ``socket.getaddrinfo`` replaced for names under ``.test`` (RFC 6761) by one that
blocks until the test lets it answer, as the C resolver blocks on a name server that does not
answer (``tests/reliability_sources_dns_test.py`` does the same through a real DNS server in a
subprocess); every other name goes to the real one. Each test lets its look-ups answer and
waits for their threads to end.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpcore
import pytest

from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import TempoSource
from taskdaemon.pipeline.tracking._deadline_io import MAX_LOOK_UPS, _resolve
from taskdaemon.pipeline.tracking._remote import RemoteLimits


class _HangingResolver:
    """``getaddrinfo`` for ``.test`` names: 127.0.0.1, once ``answer`` is set; counts calls."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.asked: list[str] = []
        self._real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not (isinstance(host, str) and host.endswith(".test")):
            return self._real(host, port, *args, **kwargs)
        self.asked.append(host)
        self.answer.wait()
        return self._real("127.0.0.1", port, *args, **kwargs)


#: The one line of a poll whose name did not resolve by its 0.2 s deadline.
_DEADLINE_LINE = r"no complete answer within 0\.2 s .*slow-dns\.test not found within"


def _resolving() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "taskdaemon-resolve"]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[_HangingResolver]:
    assert not _resolving()  # no other test's look-up left in flight
    hanging = _HangingResolver()
    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        yield hanging
    finally:
        hanging.answer.set()
        for thread in _resolving():
            thread.join(5)
        assert not _resolving()


def test_a_hanging_name_polled_fifty_times_from_five_threads_has_one_look_up(
    resolver: _HangingResolver,
) -> None:
    """Every try waits for the one look-up in flight and gives up at its own timeout; once the
    resolver answers, the next try asks it afresh (the answer is not kept)."""
    failures: list[str] = []

    def poll() -> None:
        for _ in range(10):
            try:
                _resolve("hang.test", 80, 0.01)
            except httpcore.ConnectTimeout as exc:
                failures.append(str(exc))

    pollers = [threading.Thread(target=poll) for _ in range(5)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join()
    assert len(failures) == 50
    assert failures[0] == "the address of hang.test not found within 0.01 s (name resolution)"
    assert (resolver.asked, len(_resolving())) == (["hang.test"], 1)
    (thread,) = _resolving()
    resolver.answer.set()
    thread.join(5)
    assert _resolve("hang.test", 80, 5.0) == ["127.0.0.1"]
    assert resolver.asked == ["hang.test", "hang.test"]


def test_past_the_cap_a_new_name_fails_at_once_and_one_in_flight_is_still_awaited(
    resolver: _HangingResolver,
) -> None:
    for n in range(MAX_LOOK_UPS):
        with pytest.raises(httpcore.ConnectTimeout):
            _resolve(f"hang{n}.test", 80, 0.01)
    with pytest.raises(httpcore.ConnectError) as refused:
        _resolve("one-more.test", 80, 30.0)  # at once: no wait for the 30 s
    assert str(refused.value) == (
        f"one-more.test not looked up: {MAX_LOOK_UPS} names' look-ups still pending "
        f"(hang0.test, hang1.test, hang2.test…), at most {MAX_LOOK_UPS} at once (name resolution)"
    )
    with pytest.raises(httpcore.ConnectTimeout):
        _resolve("hang0.test", 80, 0.01)
    assert len(_resolving()) == MAX_LOOK_UPS
    assert "one-more.test" not in resolver.asked
    threads = _resolving()
    resolver.answer.set()
    for thread in threads:
        thread.join(5)
    assert _resolve("one-more.test", 80, 5.0) == ["127.0.0.1"]  # room again


@pytest.mark.slow
def test_a_source_polled_twenty_times_leaves_one_resolver_thread(
    resolver: _HangingResolver,
) -> None:
    """``watch`` polls a Tempo whose name hangs: each poll ends at its deadline with its one
    line, and one thread looks the name up however many polls came. Once the resolver answers,
    the next poll reaches the real local server behind the name."""
    limits = RemoteLimits(deadline=0.2)
    with serve(Backend()) as tempo:
        tempo.route("/api/search", b'{"metrics": {}}')
        url = tempo.url.replace("127.0.0.1", "slow-dns.test")
        with TempoSource(url, limits=limits) as source:
            for _ in range(20):
                with pytest.raises(SpanSourceError, match=_DEADLINE_LINE):
                    source.search(since=0)
                assert len(_resolving()) == 1
            assert resolver.asked == ["slow-dns.test"]
            assert tempo.requests == []
            (thread,) = _resolving()
            resolver.answer.set()
            thread.join(5)
            assert source.search(since=0) == []
    assert [path.partition("?")[0] for path in tempo.requests] == ["/api/search"]
    assert resolver.asked == ["slow-dns.test", "slow-dns.test"]


@pytest.mark.slow
def test_a_forked_child_looks_the_name_up_itself(resolver: _HangingResolver) -> None:
    """A child forked while its parent's look-up hangs has no such thread: it starts its own
    (its parent's in-flight table would have had it wait for nothing, every try)."""
    with pytest.raises(httpcore.ConnectTimeout):
        _resolve("hang.test", 80, 0.01)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the resolver answers here, the parent's look-up never does
        try:
            resolver.answer.set()
            os.write(write, repr(_resolve("hang.test", 80, 5.0)).encode())
        except BaseException as exc:
            os.write(write, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        assert answer.read() == "['127.0.0.1']"
    assert os.waitpid(pid, 0)[1] == 0
    assert len(_resolving()) == 1  # the parent's, still in flight
