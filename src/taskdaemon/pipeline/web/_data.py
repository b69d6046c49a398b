"""Where the web page reads runs from: the engine of this process, and a span source.

* **Live** (``serve``, ``run --serve``): a :class:`~taskdaemon.pipeline.visualization.DagWatcher`
  registered on the engine holds every open run's state (and the last finished ones); live
  updates come straight from it, and only such runs can be approved or rejected.
* **Stored** (any process, ``taskdaemon ui --source URL``): the span source (the embedded store,
  Tempo, Jaeger, OTLP-JSON files). Live updates follow it by polling
  (:func:`~taskdaemon.pipeline.visualization.follow_stored_run`). A remote source cannot tell a
  run whose process died from a live one (``visualization/_stored.py``), so a run it has had
  nothing new of for ``quiet_polls`` polls comes with when the newest span it holds ended: the
  page says the run has been quiet since then and that its process may be gone, and no more
  once a span arrives. That time is the source's own word, not when this server began to poll.
  A run that such a source has ended while a stage the run span names has no span there is
  followed as ``watch`` follows it, for up to 30 s (``visualization/_stored.py``); if the span
  never comes, the page says which stages have none (:meth:`RunData.no_span`), as ``watch``
  says it in one line.

An ended run read from the source is kept ``kept_for`` seconds (the last few runs): one view
of a run asks for it several times (the page, its stream, a stage's details and logs), and
each read rebuilt the whole run from its spans, seconds for thousands of stages, for a run
that no longer changes. Its stream's follower takes it too, as its first poll, which ends
the stream (the run has ended). A running run is read afresh each time, and so is an ended one
that a remote source still lacks a stage span of while the follower waits for it (up to 30 s
after the run's end): kept, the stage panel and a reload read the run without that stage's
span for a minute after the page showed it whole.

A run the engine knows is drawn from the engine; its stage details (inputs, outputs, CPU,
memory) come from its spans, which hold them redacted and capped as captured. Blocking source
calls run in worker threads; the source is opened on first use and closed by :meth:`close`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.records import RunRecord, RunSummary
from taskdaemon.pipeline.status_rules import (
    GOING_RUN_STATUSES,
    OPEN_RUN_STATUSES,
    RUN_RECORD_STATUSES,
)
from taskdaemon.pipeline.tracking.reconstruct import summarize_run
from taskdaemon.pipeline.visualization import DagSnapshot, DagWatcher, dag_snapshot
from taskdaemon.pipeline.wording import close_match, quote_meant, unknown_pipeline

__all__ = ["RunData", "check_status"]

_STATUSES = RUN_RECORD_STATUSES

#: Ended runs kept at most (the module docstring).
_KEPT_RUNS = 4


class RunData:
    """Runs from ``live`` (a DagWatcher on this process's engine) and/or the span source
    ``source_url`` (None: no source)."""

    def __init__(
        self,
        *,
        live: DagWatcher | None = None,
        source_url: str | None = None,
        opener: Callable[[str], Any] | None = None,
        poll_interval: float = 0.5,
        quiet_polls: int = 120,
        clock: Callable[[], float] = time.time,
        kept_for: float = 60.0,
    ) -> None:
        self.live = live
        self.source_url = source_url
        self._opener = opener
        self._source: Any = None
        self._lock = threading.Lock()
        self.poll_interval = poll_interval
        self.quiet_polls = quiet_polls
        self.clock = clock
        self.kept_for = kept_for
        # run id -> (when it was read, time.monotonic(); the ended run read)
        self._kept: OrderedDict[str, tuple[float, RunRecord]] = OrderedDict()

    # --- the span source --------------------------------------------------------------------

    def source(self) -> Any:
        """The span source, opened on first use; None without one."""
        if self.source_url is None:
            return None
        with self._lock:
            if self._source is None:
                opener = self._opener
                if opener is None:
                    from taskdaemon.pipeline.tracking.sources import (  # noqa: PLC0415
                        open_source,
                    )

                    # A store file still missing reads as no runs, and is looked for again
                    # at each query: a run started after the page shows up on it. A path the
                    # user named was checked when the command started (``cli/ui.py``).
                    opener = functools.partial(open_source, missing_ok=True)
                self._source = opener(self.source_url)
            return self._source

    def close(self) -> None:
        """Close the span source (idempotent)."""
        with self._lock:
            source, self._source = self._source, None
        if source is not None:
            source.close()

    def _kept_run(self, run_id: str, now: float) -> RunRecord | None:
        """The ended run kept from a read less than ``kept_for`` seconds before ``now``."""
        kept = self._kept.get(run_id)
        return kept[1] if kept is not None and now - kept[0] < self.kept_for else None

    async def _stored(self, run_id: str) -> RunRecord | None:
        """The run from the source (an ended one as kept: module docstring); None when it
        has none (or there is no source)."""
        now = time.monotonic()
        kept = self._kept_run(run_id, now)
        if kept is not None:
            return kept
        source = await asyncio.to_thread(self.source)
        if source is None:
            return None
        try:
            record: RunRecord = await asyncio.to_thread(source.get_run, run_id)
        except RunNotFoundError:
            return None
        if record.status not in OPEN_RUN_STATUSES and not self._awaits_spans(record):
            self._kept[run_id] = (now, record)
            self._kept.move_to_end(run_id)
            while len(self._kept) > _KEPT_RUNS:
                self._kept.popitem(last=False)
        return record

    def _awaits_spans(self, run: RunRecord) -> bool:
        """Whether ``run``, ended, may yet gain a stage span: the source receives spans late, a
        stage the run span names has none, and the run ended less than ``SETTLE_TIMEOUT`` ago
        (``visualization/_stored.py``)."""
        from taskdaemon.pipeline.visualization._stored import (  # noqa: PLC0415
            spans_arrive_late,
            stages_without_span,
        )

        return (
            self._settling(run)
            and bool(stages_without_span(run))
            and spans_arrive_late(self.source())
        )

    def _settling(self, run: RunRecord) -> bool:
        """Whether ``run`` ended less than ``SETTLE_TIMEOUT`` ago, the wait for late spans."""
        from taskdaemon.pipeline.visualization._stored import SETTLE_TIMEOUT  # noqa: PLC0415

        return self.clock() < (run.end or run.start) + SETTLE_TIMEOUT

    # --- what the routes ask ----------------------------------------------------------------

    def is_live(self, run_id: str) -> bool:
        """The engine of this process holds the run."""
        return self.live is not None and run_id in self.live.runs()

    async def record(self, run_id: str) -> RunRecord:
        """The run record (engine state with span details, or the spans' alone)."""
        from taskdaemon.pipeline.web._views import merge_details  # noqa: PLC0415

        stored = await self._stored(run_id)
        if self.live is not None:
            try:
                live = self.live.record(run_id)
            except KeyError:
                live = None
            if live is not None:
                return merge_details(live, stored)
        if stored is None:
            raise RunNotFoundError(f"no run {quote(run_id)} here or in the span source")
        return stored

    async def snapshot(self, run_id: str) -> DagSnapshot:
        """The DAG snapshot of the run (the definition too, when the engine has it)."""
        if self.live is not None:
            try:
                return self.live.snapshot(run_id)
            except KeyError:
                pass
        stored = await self._stored(run_id)
        if stored is None:
            raise RunNotFoundError(f"no run {quote(run_id)} here or in the span source")
        return dag_snapshot(None, stored)

    def follow(self, run_id: str) -> AsyncIterator[tuple[DagSnapshot, float | None]]:
        """Snapshots of the run as it changes, each with the time the newest span of a quiet
        run ended (None while it is not quiet: see the module docstring): from the engine when
        it holds the run (never quiet), else by polling the span source."""
        if self.is_live(run_id):
            assert self.live is not None
            return _never_quiet(self.live.watch(run_id))
        return self._poll(run_id)

    def follow_changes(
        self, run_id: str
    ) -> AsyncIterator[tuple[DagSnapshot, frozenset[str] | None]]:
        """A run of this process's changes (``DagWatcher.changes``: ``(snapshot, stages)``,
        ``stages`` None for a whole snapshot, else the stages it holds, all that changed since
        the item before); a live run is never quiet. One the engine no longer holds (let go
        since the stream was asked for) is polled from the source, whole."""
        if self.is_live(run_id):
            assert self.live is not None
            return self.live.changes(run_id)
        return _whole(self._poll(run_id))

    def no_span(self, run: RunRecord | None, *, first: bool = False) -> str | None:
        """What the page says of ``run``, ended, when the source may receive spans late (any
        but the embedded store) and has no span of stages the run span names: which stages,
        in ``watch``'s words (``visualization/_stored.py``); None otherwise. The follower has
        waited for those spans before it yielded such a run (``follow_stored_run``), or the
        run ended long ago and they are lost. ``first``: for the page's first rendering, which
        comes before the follower's wait: while the wait is on (``_awaits_spans``), it says
        that the page waits for those spans; the stream's next state says what came of it."""
        from taskdaemon.pipeline.visualization._stored import (  # noqa: PLC0415
            awaited_span_text,
            no_span_text,
            spans_arrive_late,
            stages_without_span,
        )

        if run is None or run.status in GOING_RUN_STATUSES:
            return None
        missing = stages_without_span(run)
        if not missing or not spans_arrive_late(self.source()):
            return None
        waiting = first and self._settling(run)  # the rest of ``_awaits_spans`` holds
        said = (awaited_span_text if waiting else no_span_text)(missing)
        return f"{said[:1].upper()}{said[1:]}."

    async def _poll(self, run_id: str) -> AsyncIterator[tuple[DagSnapshot, float | None]]:
        from taskdaemon.pipeline.visualization import follow_stored_run  # noqa: PLC0415

        source = await asyncio.to_thread(self.source)
        if source is None:
            raise RunNotFoundError(f"no run {quote(run_id)} here")
        stream = follow_stored_run(
            source,
            run_id,
            interval=self.poll_interval,
            appear_timeout=0.0,
            quiet_polls=self.quiet_polls,
            first=self._kept_run(run_id, time.monotonic()),
        )
        async for item in stream:
            yield item

    async def recent(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[tuple[RunSummary, bool]]:
        """Runs newest first as ``(summary, live)``: the engine's, then the source's others.

        Runs of one start (imported, replayed) come by descending run id, so ``(start,
        run_id)`` orders them all: ``before``, a page's last run, asks for the runs after it
        (the next page), and RunNotFoundError when neither the engine nor the source has it.
        The embedded store pages by that key in SQL; another source is asked for twice a
        page up to the cursor's start, and the runs at or above the cursor are dropped."""
        source = await asyncio.to_thread(self.source)
        cursor = None if before is None else (await self._start(before, source), before)

        rows: dict[str, tuple[RunSummary, bool]] = {}
        if self.live is not None:
            for run_id in self.live.runs():
                try:
                    record = self.live.record(run_id)
                except KeyError:
                    continue
                summary = summarize_run(record)
                after = cursor is None or (summary.start, run_id) < cursor
                if after and _matches(summary, pipeline, status, since, until):
                    rows[run_id] = (summary, True)
        if source is not None:
            found: list[RunSummary] = await asyncio.to_thread(
                _search,
                source,
                cursor,
                pipeline=pipeline,
                status=status,
                since=since,
                until=until,
                limit=limit,
            )
            for summary in found:
                rows.setdefault(summary.run_id, (summary, False))
        ordered = sorted(rows.values(), key=lambda row: (row[0].start, row[0].run_id), reverse=True)
        return ordered[:limit]

    async def unknown_pipeline(self, pipeline: str) -> str | None:
        """What the runs page says when neither the engine nor the source holds any run of
        ``pipeline``, whatever its status and start, with the name it is close to, as ``runs
        list`` says it (``wording.unknown_pipeline``, the engine's runs' names compared too):
        a page filtered by a name nobody ran says so rather than that no run matches. None
        when one of them holds one."""
        names: set[str] = set()
        if self.live is not None:
            for run_id in self.live.runs():
                try:
                    names.add(self.live.record(run_id).pipeline)
                except KeyError:
                    continue
        if pipeline in names:
            return None
        source = await asyncio.to_thread(self.source)
        return await asyncio.to_thread(unknown_pipeline, source, pipeline, names)

    async def _start(self, run_id: str, source: Any) -> float:
        """The start of a run the engine or the source holds; RunNotFoundError otherwise."""
        if self.live is not None:
            try:
                return self.live.record(run_id).start
            except KeyError:
                pass
        if source is None:
            raise RunNotFoundError(f"no run {quote(run_id)} here")
        start_of = getattr(source, "run_start", None)  # the embedded store's: one row read
        if start_of is not None:
            start: float = await asyncio.to_thread(start_of, run_id)
            return start
        record: RunRecord = await asyncio.to_thread(source.get_run, run_id)
        return record.start

    async def pipelines(
        self, limit: int = 1000
    ) -> tuple[list[RunSummary], dict[str, Any], dict[str, int] | None]:
        """Runs for their pipelines, the definitions the engine has seen, and each stored
        pipeline's run count when the source can tell (the embedded store; else None).

        The runs are the newest ``limit``, plus, from a source that counts, the newest run of
        each pipeline that has none among them: a pipeline that last ran long ago is listed
        too, with its true count, not only those of the recent runs."""
        known = self.live.pipelines() if self.live is not None else {}
        summaries = [row[0] for row in await self.recent(limit=limit)]
        source = await asyncio.to_thread(self.source)
        counter = getattr(source, "pipeline_counts", None)
        if counter is None:
            return summaries, known, None
        counts: dict[str, int] = await asyncio.to_thread(counter)
        listed = {summary.pipeline for summary in summaries}
        for name in counts.keys() - listed:
            summaries += await asyncio.to_thread(source.search, name, None, None, None, 1)
        return summaries, known, counts


async def _never_quiet(
    snapshots: AsyncIterator[DagSnapshot],
) -> AsyncIterator[tuple[DagSnapshot, float | None]]:
    """A run of this process's stream, as ``RunData.follow`` yields it; closed with it, so
    the engine's watcher lets its subscription go when the page's feed ends."""
    try:
        async for snapshot in snapshots:
            yield snapshot, None
    finally:
        await snapshots.aclose()  # type: ignore[attr-defined]


async def _whole(
    polled: AsyncIterator[tuple[DagSnapshot, float | None]],
) -> AsyncIterator[tuple[DagSnapshot, frozenset[str] | None]]:
    """A polled run's snapshots as ``RunData.follow_changes`` yields them: each whole."""
    try:
        async for snapshot, _quiet in polled:
            yield snapshot, None
    finally:
        await polled.aclose()  # type: ignore[attr-defined]


def _search(
    source: Any,
    cursor: tuple[float, str] | None,
    *,
    pipeline: str | None,
    status: str | None,
    since: float | None,
    until: float | None,
    limit: int,
) -> list[RunSummary]:
    """``source.search``, the runs after ``cursor`` (``RunData.recent``) when there is one:
    the store's key is exact to the nanosecond, where epoch-second floats may tie."""
    from taskdaemon.pipeline.tracking.store import SpanStore  # noqa: PLC0415

    if cursor is None:
        return list(source.search(pipeline, status, since, until, limit))
    if isinstance(source, SpanStore):
        return source.search(pipeline, status, since, until, limit, before=cursor[1])
    until = cursor[0] if until is None else min(until, cursor[0])
    found = source.search(pipeline, status, since, until, 2 * limit)
    return [summary for summary in found if (summary.start, summary.run_id) < cursor]


def _matches(
    summary: RunSummary,
    pipeline: str | None,
    status: str | None,
    since: float | None,
    until: float | None,
) -> bool:
    return (
        (pipeline is None or summary.pipeline == pipeline)
        and (status is None or summary.status == status)
        and (since is None or summary.start >= since)
        and (until is None or summary.start <= until)
    )


def check_status(status: str | None) -> str | None:
    """``status`` if it is a run status the filters know; ValueError otherwise, with the one
    it was likely meant to be, as ``runs list --status`` says it (``wording.close_match``)."""
    if status in (None, ""):
        return None
    if status not in _STATUSES:
        close = close_match(status, _STATUSES)
        meant = f", did you mean {quote_meant(close[0])}?" if close else ""
        raise ValueError(f"unknown status {quote(status)}{meant} (one of {', '.join(_STATUSES)})")
    return status
