"""Gzipped event streams compress each chunk once, however many clients a run's feed has
(``web/_gzip_members.py``), and each client's stream is still one whole gzip member (its
CRC-32 and length checked by ``gzip.decompress``).

Counts of bytes put through deflate, not times."""

from __future__ import annotations

import asyncio
import gzip
import random
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskdaemon.pipeline.web._gzip_members import GzipMember, keep
from taskdaemon.pipeline.web._streams import StreamHub

#: The hub's bound on open streams.
CLIENTS = 256


class _Counted:
    """A zlib compressor that adds what it is given to ``deflated``."""

    def __init__(self, inner: Any, deflated: list[int]) -> None:
        self._inner, self._deflated = inner, deflated

    def compress(self, data: bytes) -> bytes:
        self._deflated.append(len(data))
        return bytes(self._inner.compress(data))

    def flush(self, mode: int = zlib.Z_FINISH) -> bytes:
        return bytes(self._inner.flush(mode))


@pytest.fixture
def deflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every chunk a zlib compressor is given during the test."""
    sizes: list[int] = []
    make = zlib.compressobj
    monkeypatch.setattr(zlib, "compressobj", lambda *a, **k: _Counted(make(*a, **k), sizes))
    return sizes


async def _states(items: asyncio.Queue[int | None]) -> AsyncIterator[int]:
    while (item := await items.get()) is not None:
        yield item


def _render(number: int) -> dict[str, Any]:
    """A run's state of about 100 KB, repetitive as JSON is."""
    return {
        "number": number,
        "nodes": [{"id": f"s{i:03d}", "status": "success"} for i in range(500)] * 6,
    }


async def test_a_feed_of_256_gzip_clients_deflates_each_event_once(deflated: list[int]) -> None:
    """256 gzip clients (the hub's bound) of one live run, three state changes: each change's
    event went through deflate once a client before, now once.
    Each client's bytes, pings among them at its own moments, decode to its plain stream."""
    hub = StreamHub(max_streams=CLIENTS, heartbeat=0.001)
    items: asyncio.Queue[int | None] = asyncio.Queue()
    subs = [
        hub.subscribe("run", _render, lambda: _states(items), gzip=True) for _ in range(CLIENTS)
    ]
    wires = [[sub.preamble] for sub in subs]
    for number in range(3):
        items.put_nowait(number)
        for index, (sub, wire) in enumerate(zip(subs, wires, strict=True)):
            wire.append(await sub.next(5.0) or b"")
            if (index + number) % 3 == 0:  # a ping, for some clients, after some events
                wire.append(await sub.next(0.0) or b"")
    items.put_nowait(None)
    plain = []
    for sub, wire in zip(subs, wires, strict=True):
        while (chunk := await sub.next(5.0)) is not None:
            wire.append(chunk)
        wire.append(sub.finish())
        sub.close()
        plain.append(gzip.decompress(b"".join(wire)).decode())
    event = len(plain[0].split("\n\n")[1])  # the first state's, after ``retry:``
    assert all(text.endswith("event: end\ndata: {}\n\n") for text in plain)
    assert all(text.count('"number":2') == 1 for text in plain)
    assert sum(deflated) < 4 * event, (sum(deflated), event)


@pytest.mark.parametrize("seed", range(5))
def test_members_of_shared_chunks_decode_whole_chunk_by_chunk(seed: int) -> None:
    """Members that send the same chunks in different orders and counts: every chunk decodes
    whole from the bytes so far, and each member checks out (CRC-32 and length)."""
    rng = random.Random(seed)
    chunks = [rng.randbytes(rng.randrange(0, 5000)) * rng.randrange(1, 4) for _ in range(6)]
    for _ in range(4):
        member, unzip, sent = GzipMember(), zlib.decompressobj(31), []
        wire = b""
        for chunk in rng.choices(chunks, k=rng.randrange(0, 12)):
            part = member.wire(chunk)
            wire += part
            sent.append(chunk)
            assert chunk == unzip.decompress(part)
        wire += member.finish()
        assert b"".join(sent) == gzip.decompress(wire)


def test_a_chunk_kept_is_never_deflated_again(deflated: list[int]) -> None:
    """A chunk every stream sends (the ping, ``end``) is compressed once when kept, then sent
    by any number of members, between other chunks, with no deflate at all; each member
    still decodes whole."""
    # Objects of this call's own: a feed's memo knows its last chunk by identity.
    ping, event = b": ping %d\n\n" % id(deflated), b"data: %d\n\n" % id(deflated)
    keep(ping)
    assert deflated == [len(ping)]
    for _ in range(3):
        member = GzipMember()
        wire = member.wire(ping) + member.wire(event) + member.wire(ping) + member.finish()
        assert gzip.decompress(wire) == ping + event + ping
    assert deflated == [len(ping), len(event)]
