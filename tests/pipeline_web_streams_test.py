"""The event-stream hub's pacing of big documents and its failed feeds (``web/_streams.py``),
on its objects.

The hub is given a sleep the test controls, so each test says when a pause ends; the source
coalesces as the feeds' real sources do (each pull yields the latest item put).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

from taskdaemon.pipeline.web._streams import Pace, StreamHub


class Latest:
    """A coalescing source: a pull waits for an item and yields the last one put since the
    previous pull; ``None`` ends it."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[int | None] = asyncio.Queue()

    async def __call__(self) -> AsyncIterator[int]:
        while True:
            item = await self.items.get()
            while not self.items.empty():
                item = self.items.get_nowait()
            if item is None:
                return
            yield item


class Pauses:
    """A sleep that records each pause and ends it when the test says."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.started.set()
        await self.release.wait()
        self.release.clear()


def render(size: int) -> dict[str, Any]:
    """A document of about ``size`` bytes, saying its size."""
    return {"size": size, "pad": "x" * size}


def size_of(chunk: bytes | None) -> Any:
    """The size an event's document says, or ``end`` for the end event."""
    assert chunk is not None
    text = chunk.decode()
    return "end" if "event: end" in text else json.loads(text.split("data: ", 1)[1])["size"]


async def test_changes_during_a_big_documents_pause_are_sent_as_the_last_one() -> None:
    """After an event over ``over`` bytes the feed pauses before its next snapshot: the
    changes made meanwhile arrive as one event, the latest, then the end."""
    source, pauses = Latest(), Pauses()
    hub = StreamHub(pace=Pace(over=1000, rate=100_000, sleep=pauses, send_rate=0))
    subscription = hub.subscribe("run", render, source)
    source.items.put_nowait(2000)
    first = size_of(await subscription.next(5.0))
    await asyncio.wait_for(pauses.started.wait(), 5.0)
    for size in (2001, 2002, 2003):
        source.items.put_nowait(size)
    pauses.release.set()
    second = size_of(await subscription.next(5.0))
    source.items.put_nowait(None)
    pauses.release.set()
    last = size_of(await subscription.next(5.0))
    subscription.close()
    assert [2000, 2003, "end"] == [first, second, last]


async def test_a_big_documents_pause_is_its_share_of_the_byte_rate() -> None:
    """The pause after an event is its size over ``rate`` bytes a second."""
    source, pauses = Latest(), Pauses()
    hub = StreamHub(pace=Pace(over=1000, rate=100_000, sleep=pauses, cpu_share=0, send_rate=0))
    subscription = hub.subscribe("run", render, source)
    source.items.put_nowait(5000)
    chunk = await subscription.next(5.0)
    await asyncio.wait_for(pauses.started.wait(), 5.0)
    source.items.put_nowait(None)
    pauses.release.set()
    subscription.close()
    assert chunk is not None
    assert [len(chunk) / 100_000] == pauses.asked


async def test_small_documents_are_sent_without_a_pause() -> None:
    """Events of at most ``over`` bytes are sent as the source yields them, none paused."""
    source, pauses = Latest(), Pauses()
    hub = StreamHub(pace=Pace(over=1000, rate=100_000, sleep=pauses, send_rate=0))
    subscription = hub.subscribe("run", render, source)
    sizes = []
    for size in (10, 11, 12, None):
        source.items.put_nowait(size)
        sizes.append(size_of(await subscription.next(5.0)))
    subscription.close()
    assert ([10, 11, 12, "end"], []) == (sizes, pauses.asked)


async def test_a_final_big_document_is_followed_by_the_end_without_a_pause() -> None:
    """An item ``final`` says is the last (the run ended) is sent and the end follows as the
    source ends, unpaced: a pause there only kept the page of a run of thousands of stages
    saying it was live."""
    source, pauses = Latest(), Pauses()
    hub = StreamHub(pace=Pace(over=1000, rate=100_000, sleep=pauses, send_rate=0))
    subscription = hub.subscribe("run", render, source, lambda size: size == 3000)
    source.items.put_nowait(2000)
    sizes = [size_of(await subscription.next(5.0))]
    await asyncio.wait_for(pauses.started.wait(), 5.0)
    pauses.release.set()
    source.items.put_nowait(3000)
    sizes.append(size_of(await subscription.next(5.0)))
    source.items.put_nowait(None)  # never released: a pause after 3000 would hold the end
    sizes.append(size_of(await subscription.next(5.0)))
    subscription.close()
    assert ([2000, 3000, "end"], 1) == (sizes, len(pauses.asked))


class FailsThenClosesSlowly:
    """A source whose iterators yield 1, then raise; closing one waits for ``closed`` (a
    span source's connection being shut)."""

    def __init__(self) -> None:
        self.started = 0
        self.closing = asyncio.Event()
        self.closed = asyncio.Event()

    def __call__(self) -> FailsThenClosesSlowly:
        self.started += 1
        self.pulled = 0
        return self

    def __aiter__(self) -> FailsThenClosesSlowly:
        return self

    async def __anext__(self) -> int:
        self.pulled += 1
        if self.pulled > 1:
            raise OSError("the span source went away")
        return 1

    async def aclose(self) -> None:
        self.closing.set()
        await self.closed.wait()


async def test_a_stream_opened_while_a_failed_feed_closes_gets_a_feed_of_its_own() -> None:
    """The failed feed's task ran on while its source closed, so a stream opened meanwhile
    joined it: its subscribers had been ended already, and the new one got the old snapshot,
    then only heartbeats, for good. It now starts a feed of its own."""
    source = FailsThenClosesSlowly()
    hub = StreamHub(heartbeat=0.01)
    first = hub.subscribe("run", render, source)
    assert 1 == size_of(await first.next(1))
    assert b"event: problem" in (await first.next(1) or b"")
    assert None is await first.next(1)
    await source.closing.wait()
    second = hub.subscribe("run", render, source)
    try:
        assert (2, 1) == (source.started, size_of(await second.next(1)))
        assert b"event: problem" in (await second.next(1) or b"")
        assert None is await second.next(1)
    finally:
        source.closed.set()
        first.close()
        second.close()
        await asyncio.sleep(0)


async def test_a_gzipped_stream_decodes_each_chunk_whole_as_it_is_queued() -> None:
    """A gzipped subscription's preamble, each event, ping and end decode whole from the
    bytes queued so far (flushed at each, ``Z_SYNC_FLUSH``: nothing waits in the compressor
    for the next), and its finish ends the gzip member. The pace is the event's size on the
    wire, here its gzipped size."""
    source, pauses = Latest(), Pauses()
    # Paced by bytes alone (``cpu_share=0``): the pause by render cost has its own test.
    pace = Pace(over=100, rate=100_000, sleep=pauses, cpu_share=0, send_rate=0)
    hub = StreamHub(pace=pace, heartbeat=0.01)
    subscription = hub.subscribe("run", render, source, gzip=True)
    unzip = zlib.decompressobj(31)
    texts = [unzip.decompress(subscription.preamble)]
    source.items.put_nowait(50_000)
    event = await subscription.next(5.0)
    assert event is not None
    texts.append(unzip.decompress(event))
    await asyncio.wait_for(pauses.started.wait(), 5.0)
    texts.append(unzip.decompress(await subscription.next(0.01) or b"?"))  # a ping
    source.items.put_nowait(None)
    pauses.release.set()
    texts.append(unzip.decompress(await subscription.next(5.0) or b"?"))
    texts.append(unzip.decompress(subscription.finish()))
    subscription.close()
    assert [b"retry: 2000\n\n", 50_000, b": ping\n\n", "end", b""] == [
        texts[0],
        size_of(texts[1]),
        texts[2],
        size_of(texts[3]),
        texts[4],
    ]
    assert unzip.eof
    assert [len(event) / 100_000] == pauses.asked
    assert len(event) * 50 < len(texts[1])
