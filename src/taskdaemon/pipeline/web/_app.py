"""The web page's routes: the runs page, the run page, and their JSON and event-stream API.

=============================================== ================================================
``GET /``                                       the runs page: recent runs, filterable by
                                                ``pipeline``, ``status`` and ``since``; it
                                                refreshes itself from ``/api/runs/recent``
``GET /runs/{id}``                              the run page: DAG, timeline, stage panel, live;
                                                a prefix redirects to the run's whole id
``GET /static/...``                             the page's CSS and JavaScript (in the package)
``GET /api/runs/recent``                        the runs page's rows (``pipeline``, ``status``,
                                                ``since``, ``until``: an age such as ``1h`` or
                                                ISO 8601; ``limit`` up to 500; ``before``: a
                                                run id, the runs listed after it); a replay's
                                                row has ``replay_of``, the run it replayed
``GET /api/runs/{id}``                          the run record (JSON); ``?stage=S``: with
                                                that stage's record and edges alone
``GET /api/runs/{id}/dag?format=F``             the DAG: ``dot``, ``json``, ``mermaid``,
                                                ``svg`` (``dot -Tsvg``; every state in words)
``GET /api/runs/{id}/stream``                   live state as Server-Sent Events (``_streams``)
``GET /api/runs/{id}/logs?stage=S``             the stage's last log records (``_logs``)
``GET /api/runs/{id}/logs/stream?stage=S``      the same tail, live, as Server-Sent Events
``GET /api/pipelines``                          pipelines with runs or a known definition
=============================================== ================================================

Every route sits behind the server's access rules (``http_security.py``): the token or the
session cookie, Host and Origin checks. ``EventSource`` cannot send an ``Authorization`` header,
so the page's stream authenticates by the cookie that ``/?token=T`` set.

Pages are Jinja2 templates (``_pages``) with autoescaping on and no ``|safe`` filter; the
JavaScript fills the page with ``textContent`` only. Every HTML response carries a strict
Content Security Policy (scripts and styles from this server's ``/static`` only, no inline
script), so even a hostile stage name reaching the page cannot run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from taskdaemon.pipeline.api_views import DEFAULT_LIMIT, query_flag
from taskdaemon.pipeline.errors import (
    RunNotFoundError,
    SpanSourceError,
    SpanStoreError,
    no_such_stage,
)
from taskdaemon.pipeline.http_answers import StaticFolder
from taskdaemon.pipeline.http_json import error_response
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.run_id_form import run_id_problem
from taskdaemon.pipeline.status_rules import GOING_RUN_STATUSES
from taskdaemon.pipeline.tracking.source_urls import LogsPlace, logs_place
from taskdaemon.pipeline.visualization import DagWatcher, visualize
from taskdaemon.pipeline.visualization._dot import render_dot_snapshot
from taskdaemon.pipeline.web._data import RunData
from taskdaemon.pipeline.web._deltas import state_delta
from taskdaemon.pipeline.web._drawings import RunDrawings
from taskdaemon.pipeline.web._live_document import LiveDocument
from taskdaemon.pipeline.web._logs import (
    MAX_STAGE_NAME,
    dump_stage_log_tail,
    dump_stage_logs,
    follow_stage_logs,
    stage_log_tail,
)
from taskdaemon.pipeline.web._pages import Pages
from taskdaemon.pipeline.web._runs_query import (
    NARROWING,
    NO_MATCH,
    NO_RUN_YET,
    NONE_SHOWN,
    PAGED,
    page_url,
    raw_filters,
    read_filters,
)
from taskdaemon.pipeline.web._streams import (
    EventStreamResponse,
    Pace,
    StreamHub,
    StreamLimitError,
    accepts_gzip,
)
from taskdaemon.pipeline.web._svg import GraphvizError, SvgRenderer
from taskdaemon.pipeline.web._views import (
    MAX_ROWS,
    dag_words,
    grafana_trace_url,
    labelled,
    pipelines_json,
    record_json,
    run_state,
    summary_json,
)

__all__ = ["WebApp", "WebOptions"]

_HERE = Path(__file__).resolve().parent

_DAG_TYPES = {
    "dot": "text/vnd.graphviz; charset=utf-8",
    "json": "application/json",
    "mermaid": "text/plain; charset=utf-8",
    "svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class WebOptions:
    """How the page is served.

    ``source_url``: the span source of stored runs (None: only this process's runs).
    ``grafana_url``: ``TASKDAEMON_GRAFANA_URL``, for a link to each run's trace.
    ``read_only``: no approve/reject buttons even for runs of this process (``taskdaemon ui``).
    Streams: at most ``max_streams`` at once, ``queue_size`` events queued per client,
    a heartbeat comment every ``heartbeat`` seconds, browsers reconnect after ``retry_ms``;
    a stored run is polled every ``poll_interval`` seconds, and said quiet after ``quiet_polls``
    polls in a row with nothing new from a remote source (``_data``); after an event of more than
    ``pace_over`` bytes on the wire a stream waits for its share of ``pace_rate`` bytes a
    second before it takes the next snapshot, and after one rendered as more than that, until
    its render has cost a tenth of a core (``_streams``).
    """

    source_url: str | None = None
    grafana_url: str | None = None
    read_only: bool = False
    max_streams: int = 256
    queue_size: int = 32
    heartbeat: float = 15.0
    retry_ms: int = 2000
    send_timeout: float = 10.0
    poll_interval: float = 0.5
    quiet_polls: int = 120
    pace_over: int = 64 * 1024
    pace_rate: float = 512 * 1024


class WebApp:
    """The page's routes over ``live`` (this process's runs) and the options' span source.

    ``can_control``: an engine serves the approve/reject routes (``serve``, ``run --serve``).
    ``debug``: the debugger's routes are served too (continue and step buttons).
    """

    def __init__(
        self,
        options: WebOptions | None = None,
        *,
        live: DagWatcher | None = None,
        can_control: bool = False,
        debug: bool = False,
        clock: Any = time.time,
    ) -> None:
        self.options = options or WebOptions()
        self.data = RunData(
            live=live,
            source_url=self.options.source_url,
            poll_interval=self.options.poll_interval,
            quiet_polls=self.options.quiet_polls,
        )
        self.can_control = can_control and not self.options.read_only
        self.debug = debug
        self.clock = clock
        self.hub = StreamHub(
            max_streams=self.options.max_streams,
            queue_size=self.options.queue_size,
            heartbeat=self.options.heartbeat,
            retry_ms=self.options.retry_ms,
            send_timeout=self.options.send_timeout,
            pace=Pace(self.options.pace_over, self.options.pace_rate),
        )
        self.svg = SvgRenderer()
        self.drawings = RunDrawings()  # one drawing per run's states, for every viewer
        self.pages = Pages(clock)

    def close(self) -> None:
        """End every stream and close the span source (idempotent, thread-safe); the stream
        of a run of this process that has ended gets its final state and ``event: end``."""
        self.hub.close(final=self._final_snapshot)
        self.data.close()

    def _final_snapshot(self, key: str) -> Any:
        """The last item of a stream whose run (of this process) has ended, else None: the
        run's last snapshot, or its stage's log tail read from the store now (``run --serve``
        stores the run's last records before it closes the server)."""
        kind, _, rest = key.partition(":")
        run_id, _, stage = rest.partition(":")
        live = self.data.live
        if live is None or kind not in ("live", "logs") or not self._held_ended(run_id):
            return None
        if kind == "logs":
            place = self._logs_place()
            if place is None or place.dump:
                return None
            return stage_log_tail(place.path, run_id, stage, ended=True)
        return live.snapshot(run_id), None  # as the run's feed has it (``RunData.follow``)

    def _held_ended(self, run_id: str) -> bool | None:
        """Whether the run this process's engine holds has ended; None when it holds no such
        run (the span source then has the only word)."""
        live = self.data.live
        if live is None:
            return None
        try:
            return live.record(run_id).end is not None
        except KeyError:
            return None

    def routes(self) -> list[BaseRoute]:
        """The routes to add to the server's app (``/`` among them)."""
        return [
            Route("/", self.runs_page, methods=["GET"]),
            Route("/runs/{run_id}", self.run_page, methods=["GET"]),
            Mount("/static", app=StaticFolder(directory=_HERE / "static"), name="static"),
            Route("/api/runs/recent", self.api_recent, methods=["GET"]),
            Route("/api/pipelines", self.api_pipelines, methods=["GET"]),
            Route("/api/runs/{run_id}", self.api_run, methods=["GET"]),
            Route("/api/runs/{run_id}/dag", self.api_dag, methods=["GET"]),
            Route("/api/runs/{run_id}/stream", self.api_stream, methods=["GET"]),
            Route("/api/runs/{run_id}/logs", self.api_logs, methods=["GET"]),
            Route("/api/runs/{run_id}/logs/stream", self.api_logs_stream, methods=["GET"]),
        ]

    # --- pages ----------------------------------------------------------------------------

    def nothing_page(self, message: str) -> Response:
        """The 404 a browser gets for a path no route serves (``server.py`` chooses it over the
        JSON error when the request asks for HTML): the message and a link to the runs."""
        return self.pages.page("missing.html", status=404, heading="Page not found", error=message)

    async def runs_page(self, request: Request) -> Response:
        """The runs page, its first rows rendered here (a bad filter: 400 with the reason)."""
        error, status, rows, older, empty = None, 200, [], None, None
        try:
            filters = read_filters(request)
            rows = await self._recent(filters)
            empty = await self._empty(filters, rows)
        except (ValueError, RunNotFoundError) as exc:
            error, status, empty = str(exc), 400, NONE_SHOWN
        except SpanSourceError as exc:
            error, status, empty = _failed("span source", exc), 502, NONE_SHOWN
        else:
            if len(rows) == filters["limit"]:  # maybe more: a link to the runs after the last
                older = page_url(request, rows[-1]["run_id"])
        return self.pages.page(
            "runs.html",
            status=status,
            rows=rows,
            filters=raw_filters(request),
            older=older,
            empty=empty or NO_MATCH,
            limit=filters["limit"] if status == 200 else DEFAULT_LIMIT,
            newest=page_url(request, None) if PAGED & request.query_params.keys() else None,
            error=error,
            # The URL may carry a password or a token for the backend: named, never shown.
            source=redact_text(self.data.source_url or ""),
        )

    async def run_page(self, request: Request) -> Response:
        """The run page: the current state rendered here, then kept live by the stream."""
        run_id = request.path_params["run_id"]
        if (problem := run_id_problem(run_id)) is not None:  # as the API's routes refuse it
            return self.pages.page("missing.html", status=404, heading=_NO_RUN, error=problem)
        try:
            snapshot = await self.data.snapshot(run_id)
        except RunNotFoundError as exc:
            # A whole run id may name a run that has just started, its first span not yet in
            # the source (a run id copied from ``run``'s first line): the page looks again.
            awaited = run_id if run_id_problem(run_id, full=True) is None else None
            return self.pages.page(
                "missing.html", status=404, heading=_NO_RUN, error=str(exc), awaited=awaited
            )
        except SpanSourceError as exc:
            # Not "Run not found" (404): the run may well be there, behind a source that did
            # not answer, and reloading later is what to do.
            return self.pages.page(
                "missing.html", status=502, heading=_NO_SOURCE, error=_failed("span source", exc)
            )
        if snapshot.run is not None and snapshot.run.run_id != run_id:
            # A prefix (`runs list` prints 12 digits) opens the run's own page: drawn under the
            # prefix, a run of this engine read "from stored spans, read-only", without its
            # Approve, and every request of the page resolved the prefix again.
            return RedirectResponse(f"/runs/{snapshot.run.run_id}", status_code=303)
        live = self.data.is_live(run_id)
        state = run_state(
            snapshot,
            now=self.clock(),
            can_control=self.can_control and live,
            debug=self.debug,
            no_span=None if live else self.data.no_span(snapshot.run, first=True),
        )
        grafana = (
            grafana_trace_url(self.options.grafana_url, run_id)
            if self.options.grafana_url
            else None
        )
        return self.pages.page(
            "run.html",
            run_id=run_id,
            state=state,
            dag=dag_words(state),
            grafana=grafana,
            live=live,
            control=self.can_control and live,
            logs=self._logs_place() is not None,
        )

    # --- API ------------------------------------------------------------------------------

    async def _recent(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        rows = await self.data.recent(**filters)
        return [summary_json(summary, live=live) for summary, live in rows]

    async def _empty(self, filters: dict[str, Any], rows: list[dict[str, Any]]) -> str | None:
        """What the runs table says when it has no row (None when it has some): that the
        engine and the source hold no run at all when nothing was filtered, that they hold
        no run of the pipeline asked for, as ``runs list`` says, else that no run matches
        the filters."""
        if rows:
            return None
        if all(filters[name] is None for name in NARROWING):
            return NO_RUN_YET
        pipeline = filters["pipeline"]
        said = None if pipeline is None else await self.data.unknown_pipeline(pipeline)
        if said is not None:  # a sentence: "No run ... source." or "...; did you mean 'x'?"
            return said[:1].upper() + said[1:] + ("" if said.endswith("?") else ".")
        return NO_MATCH

    async def api_recent(self, request: Request) -> Response:
        """``{"runs": [...], "empty": ...}`` newest first; ``empty``: what the page says when
        no run is listed (``_empty``), null when some are."""
        try:
            filters = read_filters(request)
            rows = await self._recent(filters)
            return JSONResponse({"runs": rows, "empty": await self._empty(filters, rows)})
        except (ValueError, RunNotFoundError) as exc:
            return error_response(400, str(exc))
        except SpanSourceError as exc:
            return error_response(502, _failed("span source", exc))

    async def api_pipelines(self, request: Request) -> Response:
        """``{"pipelines": [...]}``."""
        try:
            summaries, known, counts = await self.data.pipelines()
        except SpanSourceError as exc:
            return error_response(502, _failed("span source", exc))
        return JSONResponse({"pipelines": pipelines_json(summaries, known, counts)})

    async def api_run(self, request: Request) -> Response:
        """The run record; with ``?stage=S``, what the stage panel shows: the run's fields with
        that stage's record and edges alone, and no run attributes (a run of thousands of
        stages is megabytes whole, its definition and edge list among them)."""
        try:
            record = await self.data.record(request.path_params["run_id"])
        except RunNotFoundError as exc:
            return error_response(404, str(exc))
        except SpanSourceError as exc:
            return error_response(502, _failed("span source", exc))
        stage = request.query_params.get("stage")
        if stage is not None:
            stages = tuple(s for s in record.stages if s.name == stage)
            if not stages:
                names = [s.name for s in record.stages]
                return error_response(404, f"run {record.run_id} {no_such_stage(stage, names)}")
            edges = tuple(e for e in record.edges if stage in (e.source, e.target))
            record = replace(record, stages=stages, edges=edges, attributes={})
        return JSONResponse({**record_json(record), "live": self.data.is_live(record.run_id)})

    async def api_dag(self, request: Request) -> Response:
        """The DAG with the run's states, in ``?format=`` (default ``json``)."""
        fmt = request.query_params.get("format", "json")
        if fmt not in _DAG_TYPES:
            known = ", ".join(_DAG_TYPES)
            return error_response(400, f"unknown format {quote(fmt)}: one of {known}")
        try:
            snapshot = await self.data.snapshot(request.path_params["run_id"])
        except RunNotFoundError as exc:
            return error_response(404, str(exc))
        except SpanSourceError as exc:
            return error_response(502, _failed("span source", exc))
        if fmt != "svg":
            return Response(visualize(snapshot, fmt), media_type=_DAG_TYPES[fmt])
        try:
            svg = await self.drawings.draw(
                request.path_params["run_id"],
                snapshot,
                lambda: self.svg.render(render_dot_snapshot(labelled(snapshot))),
            )
        except GraphvizError as exc:
            return error_response(503, str(exc))
        return Response(
            svg,
            media_type=_DAG_TYPES["svg"],
            headers={
                "content-security-policy": "default-src 'none'",
                "x-content-type-options": "nosniff",
            },
        )

    async def api_stream(self, request: Request) -> Response | EventStreamResponse:
        """Live state of the run as Server-Sent Events (see ``_streams``)."""
        run_id = request.path_params["run_id"]
        try:
            deltas = query_flag(request.query_params, "delta")
        except ValueError as exc:
            return error_response(400, str(exc))
        try:
            await self.data.snapshot(run_id)  # 404 now, not an empty stream
        except RunNotFoundError as exc:
            return error_response(404, str(exc))
        except SpanSourceError as exc:
            return error_response(502, _failed("span source", exc))
        live = self.data.is_live(run_id)
        control = self.can_control and live

        def render_state(item: tuple[Any, float | None], max_rows: int = MAX_ROWS) -> Any:
            snapshot, quiet_since = item
            return run_state(
                snapshot,
                now=self.clock(),
                can_control=control,
                debug=self.debug,
                quiet_since=quiet_since,
                no_span=None if live else self.data.no_span(snapshot.run),
                max_rows=max_rows,
            )

        # Last-Event-ID needs no branch: a new subscription starts with the current full
        # snapshot, deltas (``_deltas``) or not. A run of this process comes as what changed,
        # kept by a ``LiveDocument``; a stored one is polled whole.
        try:
            subscription = self.hub.subscribe(
                f"{'live' if live else 'stored'}:{run_id}",
                render_state,
                (lambda: self.data.follow_changes(run_id))
                if live
                else lambda: self.data.follow(run_id),
                # The follower's own rule for its last item (``visualization._stored``): an
                # ``interrupted`` run ends it too, and is not paced before its ``end``.
                lambda item: (
                    item[0].run is not None and item[0].run.status not in GOING_RUN_STATUSES
                ),
                gzip=_gzip(request),
                diff=state_delta,
                deltas=deltas,
                view=(
                    (lambda: LiveDocument(lambda s, q, rows: render_state((s, q), rows)))
                    if live
                    else None
                ),
            )
        except StreamLimitError as exc:
            response = error_response(503, str(exc))
            response.headers["retry-after"] = "5"
            return response
        return EventStreamResponse(subscription)

    # --- the stage panel's logs ------------------------------------------------------------

    def _logs_place(self) -> LogsPlace | None:
        """Where the source's run logs are kept (``source_urls.logs_place``)."""
        return logs_place(self.data.source_url or "")

    async def _logs_request(self, request: Request) -> tuple[Path, bool, str, str] | Response:
        """(store or dump, whether a dump, run, stage) of a logs request, or the error
        response to send."""
        stage = request.query_params.get("stage", "")
        if not stage or len(stage) > MAX_STAGE_NAME:
            return error_response(400, f"?stage= must name a stage (1-{MAX_STAGE_NAME} chars)")
        place = self._logs_place()
        if place is None:
            return error_response(
                404, "run logs are kept in the embedded span store and in debug dumps only"
            )
        run_id = request.path_params["run_id"]
        try:
            snapshot = await self.data.snapshot(run_id)
        except RunNotFoundError as exc:
            return error_response(404, str(exc))
        except SpanSourceError as exc:
            return error_response(502, _failed("span source", exc))
        full_id = snapshot.run.run_id if snapshot.run is not None else run_id
        stages = [node.name for node in snapshot.nodes]
        if stage not in stages:  # a typo's empty tail would look like a stage that is silent
            return error_response(404, f"run {full_id} {no_such_stage(stage, stages)}")
        return place.path, place.dump, full_id, stage

    async def api_logs(self, request: Request) -> Response:
        """The stage's last ``TAIL`` records and how many it has (``web._logs``)."""
        found = await self._logs_request(request)
        if isinstance(found, Response):
            return found
        path, in_dump, run_id, stage = found
        try:
            if in_dump:
                tail = await asyncio.to_thread(dump_stage_log_tail, path, run_id, stage)
            else:
                ended = self._held_ended(run_id)
                tail = await asyncio.to_thread(stage_log_tail, path, run_id, stage, ended=ended)
            return JSONResponse(tail)
        except (SpanSourceError, sqlite3.Error) as exc:
            return error_response(502, _failed("dump" if in_dump else "span store", exc))

    async def api_logs_stream(self, request: Request) -> Response | EventStreamResponse:
        """The stage's tail as Server-Sent Events, a new one as records arrive (one feed per
        run and stage; bounded like the run's stream)."""
        found = await self._logs_request(request)
        if isinstance(found, Response):
            return found
        path, in_dump, run_id, stage = found
        interval = self.options.poll_interval
        # The engine's word on the run's end, while it holds the run (``follow_stage_logs``).
        # A run it no longer holds (None) has ended.
        ended = (
            None
            if self._held_ended(run_id) is None
            else lambda: self._held_ended(run_id) is not False
        )
        try:
            subscription = self.hub.subscribe(
                f"logs:{run_id}:{stage}",
                lambda tail: tail,
                lambda: (
                    dump_stage_logs(path, run_id, stage)
                    if in_dump
                    else follow_stage_logs(path, run_id, stage, interval=interval, ended=ended)
                ),
                gzip=_gzip(request),
            )
        except StreamLimitError as exc:
            response = error_response(503, str(exc))
            response.headers["retry-after"] = "5"
            return response
        return EventStreamResponse(subscription)


def _gzip(request: Request) -> bool:
    """Whether the client takes its event stream gzipped (``_streams``, "Compression")."""
    return accepts_gzip(request.headers.get("accept-encoding", ""))


_NO_RUN = "Run not found"
#: A run page's heading when its source did not answer (502).
_NO_SOURCE = "Cannot read the run"


def _failed(what: str, error: Exception) -> str:
    """``what: error`` for a route's 502, unless the error is an embedded store's
    (``SpanStoreError``: its message names the file and what is wrong with it as a span store,
    as every command prints it), shown as it is: prefixed, a file that is not a database read
    ``span store: PATH: cannot open span store: ...``. Decided by the error's type, not its
    words: a backend's answer that quotes "span store" is still named a span source's."""
    return str(error) if isinstance(error, SpanStoreError) else f"{what}: {error}"
