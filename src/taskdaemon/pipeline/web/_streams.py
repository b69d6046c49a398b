"""Server-Sent Event streams of live run state, bounded per client and in number.

One :class:`Feed` per watched run turns snapshots into encoded events once, however many clients
watch; each client has a :class:`Subscription` with a queue of at most ``queue_size`` events.
A client whose queue is full (it reads slower than the run changes) is dropped: its queue is
emptied and its response ended, and the browser reconnects (after ``retry``) to a fresh full
snapshot, so it loses nothing but the intermediate states. A send that does not complete within
``send_timeout`` drops the client too, so a client that stops reading holds neither memory nor
a stream slot for long. A dropped client's send still waiting on its full socket is cut at once
(its connection aborted: ``http_limits``), and a stopping server's within ``close_timeout``
(half a second: a client that reads takes the final state and ``end`` in far less, and the
server's grace, a second at least, then never has to cancel a stream, which logged an error
and a traceback for each). At most ``max_streams`` streams are open at once; one more is
answered 503 with ``Retry-After``.

Big documents are paced: after an event of more than ``pace_over`` bytes on the wire (see
"Compression") a feed waits until it has had its share of ``pace_rate`` bytes a second before
it takes the next snapshot, so a viewer of a run of thousands of stages gets at most that many
bytes a second, not a half-megabyte snapshot at every change. Nothing is lost: a feed's sources
coalesce (the engine's ``DagWatcher.watch`` snapshots every change made meanwhile, a stored run
is polled afresh), so the snapshot taken after the pause is the current one, and the run's last
one is always sent, then ``end``. A feed's ``final`` item (the run ended) is not paced after:
nothing comes after it but ``end``, which a pause only delayed (seconds for a run of thousands
of stages, whose page said it was still live meanwhile).

Fan-out: every event a feed makes is one send on each of its streams, and a send costs the
server's loop thread the same whatever it holds (ASGI, HTTP framing, the transport), so a
run of this process that changes hundreds of times a second, watched by 200 viewers, kept
that thread busy and took the interpreter from the engine it shares it with (``run --serve``:
``benchmarks/README.md``, viewers60). After each event a feed waits ``streams / send_rate``
seconds, ``streams`` the streams open on the hub: the hub then sends at most ``send_rate``
events a second in all, however many watch, while one viewer still waits a fraction of a
millisecond. The rate is a count, not a CPU share as for big documents: a send is small and
its cost is in the loop's machinery, not in the feed, where no clock can see it. The rate
is a decision: each of 200 viewers still gets an event every twentieth of a second, with every
change made meanwhile, which is as often as a person watching a page can use; what the sends
cost at that rate is measured, not assumed (``sse_streams.py --run-cost``).

Framing (the HTML standard's ``text/event-stream``): the first event carries ``retry:``; every
event has an ``id:`` (a counter of its feed); a comment line (``: ping``) is sent after
``heartbeat`` seconds without an event, so proxies and the browser keep the connection. A client
reconnecting with ``Last-Event-ID`` is sent the current full snapshot (there is nothing to
replay: every stream starts with one). A subscriber that asked for deltas gets, after it, an
``event: delta`` of what changed at each change (``_deltas``; made once a change for all of
them), or the whole snapshot when there is no delta. When the run ends the stream sends
``event: end`` and closes; the page then stops reconnecting.

Compression: a client that accepts ``gzip`` (``Accept-Encoding``, not ``q=0``) gets its stream
as one gzip member, each chunk flushed (``Z_SYNC_FLUSH``), so every event and ping still reaches
the page whole when it is sent; the stream's end finishes the member. A run's state is
repetitive JSON that gzip shrinks many times over, and a slow line waited for the whole of each
event. Each chunk is compressed once for all the streams that send it (``_gzip_members``; a
compressor of each client's put every event through deflate once a client, on the server's
loop). A chunk is compressed as it is queued, and a pace is the share of the largest one any
client was queued (wire bytes: a feed with one plain client paces by the plain size). A client
dropped mid-stream leaves a cut gzip member, as it left a cut stream before; its browser
reconnects either way.

Render cost: a feed renders each snapshot on the server's loop (a run of this process, only
the stages that changed, its view keeping the rest: ``_live_document``), whose thread shares the
interpreter with the engine (``serve``, ``run --serve``). Gzipped, the state of a run of
hundreds of stages is a few kilobytes on the wire, under the byte pace, so the feed of such a
run rendered the whole state at every change, as fast as the run changed. After a document of
more than ``pace_over`` bytes (rendered, before compression) the feed also waits until its
render (and compression) has cost at most ``cpu_share`` of a core, by the loop thread's CPU time
(a loaded machine does not stretch it). A viewer of a big run expects to see each change within
a fraction of a second, not every change: the snapshot after the pause holds every change made
meanwhile, the run's last state is sent at once, and a run whose render takes a hundredth of a
second still updates ten times a second, while one whose render takes a tenth updates about
once a second rather than keeping a core busy. The share is the hub's, not each feed's: with
N feeds whose last document was big, each waits N times as long (:meth:`Pace.pause`), so that
together they cost a tenth of a core; a tenth for each made ten big runs watched at once keep
the loop thread rendering all the time. Small documents are sent at every change.

The hub lives on the HTTP server's event loop; feeds run there as tasks and end when their last
subscriber leaves. :meth:`StreamHub.close` (thread-safe) ends every stream, so a server stops
without waiting for its streams' grace period; a feed whose run has ended by then (``run
--serve`` closes its server as its run ends, before the feed has woken to the last change) is
given its final item first, so its clients get the finished run and ``event: end`` rather than a
cut stream they would reconnect to for ever.

A feed whose source raises (a span source gone) sends its streams ``event: problem`` and ends
them; the page reconnects. A stream opened while that source still closes starts a feed of its
own: it joined the failed one before, which sent it the old snapshot and then only heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from taskdaemon.pipeline.http_answers import accepts_gzip
from taskdaemon.pipeline.http_limits import ABORT_EXTENSION
from taskdaemon.pipeline.web._gzip_members import GzipMember, keep

__all__ = [
    "Feed",
    "FeedView",
    "Pace",
    "Rendered",
    "StreamHub",
    "StreamLimitError",
    "Subscription",
    "accepts_gzip",
    "encode_event",
]

_log = logging.getLogger("taskdaemon.http")

_END = b"event: end\ndata: {}\n\n"
_PING = b": ping\n\n"
keep(_END)
keep(_PING)


class StreamLimitError(Exception):
    """As many streams are open as the hub allows."""


def encode_event(event_id: int, data: Any, *, event: str | None = None) -> bytes:
    """One SSE event: ``id:``, optional ``event:``, and ``data:`` lines of compact JSON (JSON
    text has no newline, so it is a single data line)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    head = f"id: {event_id}\n" + (f"event: {event}\n" if event else "")
    return f"{head}data: {text}\n\n".encode()


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Counters of a hub: open streams and how many were dropped for being slow."""

    open: int
    feeds: int
    dropped: int
    refused: int


class Subscription:
    """One client's bounded queue of its stream's bytes, gzipped (``gzip``) or not, after its
    ``preamble`` (the ``retry:`` line, compressed first)."""

    def __init__(
        self, hub: StreamHub, feed: Feed, queue_size: int, gzip: bool = False, deltas: bool = False
    ) -> None:
        self.hub = hub
        self.feed = feed
        self.gzip = gzip  # its response says ``Content-Encoding: gzip``
        self.deltas = deltas  # it takes ``event: delta`` after its first state (``_deltas``)
        self._zip = GzipMember() if gzip else None
        self.preamble = self.wire(f"retry: {hub.retry_ms}\n\n".encode())
        self._queue: deque[bytes] = deque()
        self._size = queue_size
        self._ready = asyncio.Event()
        self.ended = False  # the feed ended (run finished) or the hub closed
        self.dropped = False  # too slow: the queue overflowed or a send timed out
        self.sending: asyncio.Timeout | None = None  # the bound of the send under way

    def wire(self, chunk: bytes) -> bytes:
        """``chunk`` as the stream sends it, compressed and flushed whole if gzipped. Call it in
        the order the chunks go out (the member's checksum is the stream's)."""
        return chunk if self._zip is None else self._zip.wire(chunk)

    def finish(self) -> bytes:
        """The stream's last bytes: the gzip member's end, or nothing."""
        zipper, self._zip = self._zip, None
        return b"" if zipper is None else zipper.finish()

    def offer(self, chunk: bytes) -> int:
        """Queue ``chunk``; drop the client instead when its queue is full. Returns the bytes
        queued (0: none)."""
        if self.ended or self.dropped:
            return 0
        if len(self._queue) >= self._size:
            self.drop()
            return 0
        self._queue.append(self.wire(chunk))
        self._ready.set()
        return len(self._queue[-1])

    def end(self, last: bytes | None = _END) -> None:
        """Deliver ``last`` (past the bound: it is the final one), then end the stream."""
        if self.ended or self.dropped:
            return
        if last is not None:
            self._queue.append(self.wire(last))
        self.ended = True
        self._ready.set()

    def drop(self) -> None:
        """Forget queued events and end the stream (the client reconnects to a fresh one),
        cutting a send under way: the client is not taking it."""
        if not self.dropped:
            self.dropped = True
            self._queue.clear()
            self.hub.dropped += 1
            self._ready.set()
            self.hasten(0.0)

    def hasten(self, within: float) -> None:
        """Bound a send under way to ``within`` seconds from now, when that is sooner."""
        if self.sending is not None:
            deadline = asyncio.get_running_loop().time() + within
            when = self.sending.when()
            if when is None or deadline < when:
                self.sending.reschedule(deadline)

    async def next(self, idle: float) -> bytes | None:
        """The next chunk of the stream's bytes; a ping (``: ping``) after ``idle`` seconds
        without one; None when the stream is over."""
        while not self._queue:
            if self.ended or self.dropped:
                return None
            self._ready.clear()
            try:
                # asyncio.timeout, not wait_for: no task per wait (200 streams wake per change)
                async with asyncio.timeout(idle):
                    await self._ready.wait()
            except TimeoutError:
                return self.wire(_PING)  # nothing queued: it goes out in its order
        if self.dropped:
            return None
        return self._queue.popleft()

    def close(self) -> None:
        """Unsubscribe (the client left)."""
        self.hub._leave(self)


@dataclass(frozen=True, slots=True)
class Pace:
    """After an event of more than ``over`` bytes on the wire, wait ``size / rate`` seconds
    (``sleep``); after one rendered as more than ``over`` bytes, at least until its making has
    cost ``cpu_share`` of a core by ``cpu_clock`` (the module docstring, "Render cost"); after
    any event, at least ``streams / send_rate`` seconds ("Fan-out"; 0: no such pause)."""

    over: int
    rate: float
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    cpu_share: float = 0.1
    cpu_clock: Callable[[], float] = time.thread_time
    send_rate: float = 4000.0

    def pause(
        self, rendered: int, wire: int, cpu: float, big_feeds: int = 1, streams: int = 0
    ) -> float:
        """Seconds to wait after an event ``rendered`` bytes long, ``wire`` bytes on the wire
        of the client it cost most, whose render and compression took ``cpu`` seconds, while
        ``big_feeds`` feeds (this one among them) share ``cpu_share`` and ``streams`` streams
        are open on the hub."""
        by_bytes = wire / self.rate if wire > self.over else 0.0
        share = self.cpu_share / max(1, big_feeds)
        by_cpu = cpu / share - cpu if rendered > self.over and self.cpu_share > 0 else 0
        by_sends = streams / self.send_rate if self.send_rate > 0 else 0.0
        return max(by_bytes, by_cpu, by_sends)


class FeedView(Protocol):
    """What a feed keeps of its run between items: ``update(item, base, deltas)`` takes the
    next item and returns the delta (``_deltas``) from the document before, applied to event
    ``base``, or None when the whole document goes (``deltas``: a subscriber takes deltas);
    ``whole()`` is the document now."""

    def update(self, item: Any, base: int, deltas: bool) -> Any | None: ...

    def whole(self) -> Any: ...


class Rendered:
    """The view that renders each item whole (``render``) and, when a subscriber takes
    deltas, diffs it with the last (``diff(old, new, base)``, None: no deltas)."""

    def __init__(
        self, render: Callable[[Any], Any], diff: Callable[[Any, Any, int], Any] | None = None
    ) -> None:
        self._render = render
        self._diff = diff
        self._document: Any = None

    def update(self, item: Any, base: int, deltas: bool) -> Any | None:
        last, self._document = self._document, self._render(item)
        if self._diff is None or last is None or not deltas:
            return None
        return self._diff(last, self._document, base)

    def whole(self) -> Any:
        return self._document


class Feed:
    """The snapshots of one run, encoded once and offered to every subscriber (paced by
    ``pace``: see the module docstring); ``view`` keeps the run's document (default: each
    item rendered whole by ``render``, diffed by ``diff``)."""

    def __init__(
        self,
        key: str,
        render: Callable[[Any], Any],
        source: AsyncIterator[Any],
        pace: Pace | None = None,
        final: Callable[[Any], bool] | None = None,
        *,
        diff: Callable[[Any, Any, int], Any] | None = None,
        big_feeds: Callable[[], int] = lambda: 1,
        streams: Callable[[], int] = lambda: 0,
        view: FeedView | None = None,
    ):
        self.key = key
        self._big_feeds = big_feeds
        self._streams = streams
        self.render = render
        self._source = source
        self._pace = pace
        self._final = final
        self._view: FeedView = view if view is not None else Rendered(render, diff)
        self._latest: bytes | None = None  # the whole document's event, made when needed
        self._latest_id = 0  # the id of the last item's event, 0 before the first
        self.rendered = 0  # bytes of the last event made (whole or delta): the render's size
        self.subscribers: set[Subscription] = set()
        self.counter = 0
        self.done = False
        # Its source raised: its streams were ended, and one opened while its source still
        # closes must start a feed of its own, not wait on this one for good.
        self.failed = False
        self.task: asyncio.Task[None] | None = None

    @property
    def latest(self) -> bytes | None:
        """The event of the whole document now (None before the first item): encoded once a
        change, and only when a client needs it (one joins, takes no deltas, or no delta)."""
        if self._latest is None and self._latest_id:
            self._latest = encode_event(self._latest_id, self._view.whole())
        return self._latest

    async def run(self) -> None:
        try:
            async for item in self._source:
                pace = self._pace
                started = 0.0 if pace is None else pace.cpu_clock()
                self.counter += 1
                sent = self._offer(item)
                if pace is None or (self._final is not None and self._final(item)):
                    continue
                size = max(sent, default=0)  # the most bytes a client of it has to take
                cpu = pace.cpu_clock() - started
                pause = pace.pause(self.rendered, size, cpu, self._big_feeds(), self._streams())
                if pause > 0:
                    # The source coalesces what changes meanwhile into its next snapshot.
                    await pace.sleep(pause)
            self.done = True
            for subscriber in list(self.subscribers):
                subscriber.end()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a span source failing: tell the page, let it reconnect
            self.failed = True
            _log.warning("live view of %s stopped: %s", self.key, exc)
            self.counter += 1
            problem = encode_event(self.counter, {"error": str(exc)}, event="problem")
            for subscriber in list(self.subscribers):
                subscriber.offer(problem)
                subscriber.end(None)
        finally:
            with contextlib.suppress(Exception):
                await self._source.aclose()  # type: ignore[attr-defined]

    def _offer(self, item: Any) -> list[int]:
        """Offer ``item``'s event (this feed's ``counter``) to every subscriber: the delta
        (``_deltas``) from the last one to those that take deltas, when there is one, else
        the whole document. Returns the bytes queued for each."""
        subscribers = list(self.subscribers)
        base, self._latest_id, self._latest = self._latest_id, self.counter, None
        change = self._view.update(item, base, any(s.deltas for s in subscribers))
        delta = None if change is None else encode_event(self.counter, change, event="delta")
        if delta is None or not all(s.deltas for s in subscribers):
            self.rendered = len(self.latest or b"")
        else:
            self.rendered = len(delta)
        return [s.offer(delta if s.deltas and delta else self.latest or b"") for s in subscribers]


class StreamHub:
    """Feeds by run and the subscriptions to them, within ``max_streams``; each feed paced by
    ``pace`` (None: not paced)."""

    def __init__(
        self,
        *,
        max_streams: int = 256,
        queue_size: int = 32,
        heartbeat: float = 15.0,
        retry_ms: int = 2000,
        send_timeout: float = 10.0,
        close_timeout: float = 0.5,
        pace: Pace | None = None,
    ) -> None:
        self.max_streams = max_streams
        self.pace = pace
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.retry_ms = retry_ms
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self._feeds: dict[str, Feed] = {}
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.dropped = 0
        self.refused = 0

    def stats(self) -> StreamStats:
        """Open streams, live feeds, dropped and refused clients so far."""
        return StreamStats(self._open, len(self._feeds), self.dropped, self.refused)

    def _big_feeds(self) -> int:
        """Live feeds whose last document was more than the pace's ``over`` bytes: they share
        its render budget (the module docstring, "Render cost")."""
        over = self.pace.over if self.pace is not None else 0
        return sum(
            1
            for feed in self._feeds.values()
            if not (feed.done or feed.failed) and feed.rendered > over
        )

    def subscribe(
        self,
        key: str,
        render: Callable[[Any], Any],
        source: Callable[[], AsyncIterator[Any]],
        final: Callable[[Any], bool] | None = None,
        *,
        gzip: bool = False,
        diff: Callable[[Any, Any, int], Any] | None = None,
        deltas: bool = False,
        view: Callable[[], FeedView] | None = None,
    ) -> Subscription:
        """A subscription to the feed of ``key`` (started from ``source()`` if none runs;
        ``final(item)``: the source yields nothing after ``item``, so no pause follows it),
        gzipped if ``gzip``. With ``deltas``, each event after the first is ``diff(old, new,
        base)`` of the documents when that is not None (``_deltas``); a feed's ``diff`` is the
        one its first subscriber gave, and so is ``view()``, what it keeps of the run between
        items (:class:`FeedView`; default: each item rendered whole, then diffed).

        The current snapshot, when the feed has one, is queued at once. Raises
        :class:`StreamLimitError` at ``max_streams``. Call it on the server's loop.
        """
        if self._closed or self._open >= self.max_streams:
            self.refused += 1
            raise StreamLimitError(f"{self._open} event streams are open (the limit)")
        self._loop = asyncio.get_running_loop()
        feed = self._feeds.get(key)
        if (
            feed is None
            or feed.failed
            or (feed.task is not None and feed.task.done() and not feed.done)
        ):
            feed = Feed(
                key,
                render,
                source(),
                self.pace,
                final,
                diff=diff,
                big_feeds=self._big_feeds,
                streams=lambda: self._open,
                view=None if view is None else view(),
            )
            self._feeds[key] = feed
            feed.task = self._loop.create_task(feed.run(), name=f"sse-feed-{key}")
        subscription = Subscription(self, feed, self.queue_size, gzip, deltas)
        feed.subscribers.add(subscription)
        self._open += 1
        if feed.latest is not None:
            subscription.offer(feed.latest)
        if feed.done:
            subscription.end()
        return subscription

    def _leave(self, subscription: Subscription) -> None:
        feed = subscription.feed
        if subscription not in feed.subscribers:
            return
        feed.subscribers.discard(subscription)
        self._open -= 1
        if not feed.subscribers and self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]
            if feed.task is not None and not feed.task.done():
                feed.task.cancel()

    def close(self, final: Callable[[str], Any] | None = None) -> None:
        """End every stream and refuse new ones (thread-safe; idempotent).

        ``final(key)``, called on the hub's loop, is the last item of a feed whose source has
        ended (a finished run), else None: it is sent before ``event: end``. Any other stream
        ends without ``end``, so its client reconnects.
        """
        self._closed = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._end_all(final)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end_all, final)

    def _end_all(self, final: Callable[[str], Any] | None) -> None:
        for feed in list(self._feeds.values()):
            last = None
            if final is not None and not feed.done:
                try:
                    item = final(feed.key)
                    if item is not None:
                        feed.counter += 1
                        last = encode_event(feed.counter, feed.render(item))
                except Exception as exc:  # a failing render must not keep the server up
                    _log.warning("final state of %s not sent: %s", feed.key, exc)
            for subscriber in list(feed.subscribers):
                if last is not None:
                    subscriber.offer(last)
                    subscriber.end()
                else:
                    subscriber.end(None)
                subscriber.hasten(self.close_timeout)
            if feed.task is not None:
                feed.task.cancel()


class EventStreamResponse:
    """An ASGI response sending a :class:`Subscription` as ``text/event-stream``.

    It ends when the subscription does, when the client disconnects, or when a send takes
    longer than the hub's ``send_timeout`` (the client is dropped, its connection aborted:
    :func:`_cut`).
    """

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        sub = self.subscription
        hub = sub.hub
        gone = asyncio.Event()

        async def watch_disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    sub.end(None)
                    return

        watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                        (b"vary", b"accept-encoding"),
                        *([(b"content-encoding", b"gzip")] if sub.gzip else []),
                    ],
                }
            )
            if not await self._send(send, sub.preamble):
                return await _cut(scope, gone)
            while not gone.is_set():
                chunk = await sub.next(hub.heartbeat)
                if chunk is None:
                    break
                if not await self._send(send, chunk):
                    return await _cut(scope, gone)
            if not gone.is_set() and not await self._send(send, sub.finish(), more=False):
                return await _cut(scope, gone)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            sub.close()

    async def _send(self, send: Any, chunk: bytes, *, more: bool = True) -> bool:
        sub = self.subscription
        hub = sub.hub
        limit = hub.close_timeout if hub._closed else hub.send_timeout
        try:
            try:
                async with asyncio.timeout(limit) as sub.sending:
                    await send({"type": "http.response.body", "body": chunk, "more_body": more})
            finally:
                sub.sending = None  # ended: nothing to hasten
        except TimeoutError:
            if sub.dropped:  # its queue overflowed meanwhile (counted then)
                _log.warning(
                    "dropped a slow event-stream client (%d events behind)", hub.queue_size
                )
            elif hub._closed:
                _log.debug("cut an event-stream client that took nothing as the server stopped")
            else:
                _log.warning(
                    "dropped a slow event-stream client (send took over %gs)", hub.send_timeout
                )
            sub.drop()
            return False
        except OSError:
            return False
        return True


async def _cut(scope: Any, gone: asyncio.Event) -> None:
    """End a response whose send was given up (already logged and counted): abort its
    connection through the server's ``ABORT_EXTENSION`` and wait, at most a second, for the
    server to report it gone, so the response ends as a disconnect, not as an answer left
    unfinished (uvicorn's error line). Under a server without the extension, just return."""
    abort = scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
    if abort is None:
        return
    abort()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            await gone.wait()
