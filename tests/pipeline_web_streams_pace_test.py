"""A feed of ``web/_streams.py`` paces a big document by what rendering it costs ("Render
cost"), on the hub's objects; the render's CPU time comes from a clock the test drives."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

from taskdaemon.pipeline.web._streams import Pace, StreamHub


async def _items(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    """Each item put, until None."""
    while (item := await queue.get()) is not None:
        yield item


def _events(text: bytes) -> list[Any]:
    """The ``seed`` of each event's document in a stream's text (``end`` for the end)."""
    out: list[Any] = []
    for block in text.decode().split("\n\n"):
        if block.startswith("event: end"):
            out.append("end")
        elif "data: " in block:
            out.append(json.loads(block.split("data: ", 1)[1])["seed"])
    return out


class CpuClock:
    """A CPU clock that reads ``cost`` seconds later at each reading."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.cost
        return self.now


async def test_a_big_document_small_on_the_wire_is_paced_by_its_render_cost() -> None:
    """A big run's state gzips far under the byte pace, so its feed rendered the whole state
    at every change, as fast as the run changed. After a document of more than ``over``
    bytes rendered the feed now waits until its render has cost ``cpu_share`` of a core
    (0.02 s of CPU at a tenth: 0.18 s more); a small document is not paced, and every
    document and the end still arrive."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    pace = Pace(
        over=1000, rate=1e12, sleep=sleep, cpu_share=0.1, cpu_clock=CpuClock(0.02), send_rate=0
    )
    hub = StreamHub(pace=pace)
    subscription = hub.subscribe("run", lambda item: item, lambda: _items(queue), gzip=True)
    unzip = zlib.decompressobj(31)
    unzip.decompress(subscription.preamble)
    sizes, seen = [], []
    for document in ({"seed": 0, "pad": "x" * 50_000}, {"seed": 1}, None):
        queue.put_nowait(document)
        chunk = await subscription.next(5.0)
        assert chunk is not None
        sizes.append(len(chunk))
        seen += _events(unzip.decompress(chunk))
    subscription.close()
    assert ([0, 1, "end"], True) == (seen, sizes[0] < 1000), "small on the wire"
    assert [0.18] == [round(seconds, 9) for seconds in asked]


async def test_big_feeds_share_one_render_budget() -> None:
    """Two runs of big documents watched at once: the second feed renders while the first's
    last document is big, so each waits as if it had half the share (0.38 s after 0.02 s of
    CPU), and together they cost a tenth of a core. Before, each feed had a tenth of its own:
    ``[0.18, 0.18]``, and ten such runs kept the loop thread rendering all the time."""
    queues: dict[str, asyncio.Queue[Any]] = {"a": asyncio.Queue(), "b": asyncio.Queue()}
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    pace = Pace(
        over=1000, rate=1e12, sleep=sleep, cpu_share=0.1, cpu_clock=CpuClock(0.02), send_rate=0
    )
    hub = StreamHub(pace=pace)
    subscriptions = {
        key: hub.subscribe(key, lambda item: item, lambda key=key: _items(queues[key]))
        for key in queues
    }
    for key, queue in queues.items():
        queue.put_nowait({"seed": key, "pad": "x" * 50_000})
        assert await subscriptions[key].next(5.0) is not None
    for key, subscription in subscriptions.items():
        queues[key].put_nowait(None)
        while (chunk := await subscription.next(5.0)) is not None and b"event: end" not in chunk:
            pass
        subscription.close()
    assert [0.18, 0.38] == [round(seconds, 9) for seconds in asked]


async def test_a_feed_waits_its_share_of_the_hubs_send_rate_after_each_event() -> None:
    """Every event is one send on each open stream, small or not. 200 viewers of a run of
    this process that changed hundreds of times a second kept the server's thread sending and
    slowed the run (``run --serve``); before, no small document was paced (``asked`` stayed
    empty). Now the feed waits ``streams / send_rate`` seconds after each
    event: the hub sends at most ``send_rate`` events a second in all, and one viewer waits
    200 times less than 200 do. The final state and the end still follow unpaced."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    pace = Pace(over=1000, rate=1e12, sleep=sleep, send_rate=4000)
    hub = StreamHub(pace=pace)
    viewers = [
        hub.subscribe("run", lambda item: item, lambda: _items(queue), lambda item: item["end"])
        for _ in range(200)
    ]
    for seed in range(3):
        queue.put_nowait({"seed": seed, "end": seed == 2})
        for viewer in viewers:
            assert _events(await viewer.next(5.0) or b"") == [seed]
    for viewer in viewers[1:]:
        viewer.close()
    alone: asyncio.Queue[Any] = asyncio.Queue()
    one = hub.subscribe("other", lambda item: item, lambda: _items(alone))
    alone.put_nowait({"seed": 9})
    assert _events(await one.next(5.0) or b"") == [9]
    queue.put_nowait(None)
    assert _events(await viewers[0].next(5.0) or b"") == ["end"]
    one.close()
    viewers[0].close()
    # 200 streams after the first two events, none after the final one; then two streams.
    assert [0.05, 0.05, 0.0005] == [round(seconds, 9) for seconds in asked]
