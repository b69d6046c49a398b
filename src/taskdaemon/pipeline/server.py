"""HTTP: ``/metrics``, ``/healthz``, ``/readyz``, the JSON run API and a small web page.

Routes (all JSON unless stated):

========================================= ======================================================
``GET /metrics``                          the private Prometheus registry (text format 0.0.4, or
                                          OpenMetrics when the scraper asks for it); rendered
                                          off the event loops and shared by concurrent scrapes
                                          (bounds in ``http_limits.py``); gzip when asked
``GET /healthz``                          liveness: the *engine* loop's lag measured by a ticker
                                          task; 200 ``{"status": "ok", ...}`` or 503
``GET /readyz``                           readiness, one entry per component: ``span_export``
                                          and ``log_export`` (no failed export without a later
                                          success in the last 60 s, naming the exporter that
                                          failed last), ``span_store`` (the store's own
                                          ``health()``),
                                          ``stages`` (no stage running past its timeout plus a
                                          grace); 200 when all are ok, else 503
``GET /``, ``/runs/{id}``                 the web page (``web/``): runs, and each run live
                                          (``/?token=T`` signs the browser in with a session
                                          cookie)
``GET /api/runs/{id}[/dag|/stream]``      a run's record, DAG and live Server-Sent Events;
                                          ``/api/runs/recent``, ``/api/pipelines`` (``web/``)
``GET /api``                              this index of routes
``GET /api/runs``                         the engine's active runs (snapshots: every instance's
                                          latest attempt of each stage, with its times and error);
                                          ``?finished=true`` adds the ended runs it remembers;
                                          the 100 newest (``?limit=N``, at most 500), a page
                                          at a time (``?before=ID``, the answer's ``next``)
``POST /api/runs/{id}/approve/{stage}``   grant a pending approval (body ``{"comment": "..."}``,
                                          optional)
``POST /api/runs/{id}/reject/{stage}``    reject it (body ``{"reason": "...", "comment": "..."}``)
``POST /api/runs/{id}/events``            publish ``{"type": "...", "payload": {...}}``
``POST /api/runs/{id}/cancel``            cancel the run (409 once it has ended), for the
                                          token's principal
``/api/runs/{id}/debug[...]``, ``/dump``  the debugger (``server_debug.py``)
========================================= ======================================================

Access (``http_security.py``): ``/metrics``, ``/healthz`` and ``/readyz`` are open; everything
else needs the API token (``Authorization: Bearer T`` or the session cookie), a ``Host`` and
``Origin`` naming this server, and ``Content-Type: application/json`` on POST. The approver
recorded is the token's principal (``TASKDAEMON_API_USER``, else the server's OS user), never a
name from the body: a body with ``by`` is refused. A cancel, and the debugger's resumes and
overrides (``server_debug.py``), name the principal alike, as the run's error and its skipped
stages say: ``run cancelled by ops``. The approve or reject is logged as an audit
record *after* the engine accepted it, with the comment as a field of its own.

Errors are ``{"error": "<one line>"}`` (``http_answers.py`` makes every answer so, 404 and 405
included, but for a browser's unknown page outside ``/api``: a 404 page): 400 bad body or
query, 401, 403, 404 unknown run or stage, 408/413, 409 (the run cannot do that now), 415, 429
(too many events pending), 503 (no engine, or it did not answer in time); docs/http-api.md,
"Errors". Limits: ``http_limits.py``.

Shape: pure functions turn snapshots into reports (:func:`liveness`, :func:`readiness`,
:func:`render_metrics`, :func:`runs_json`); :func:`create_app` is a thin Starlette shell over
them; :class:`~taskdaemon.pipeline.http_thread.MonitorServer` runs it with Uvicorn in a thread
of its own and every engine call crosses to the engine's loop through a
:class:`~taskdaemon.pipeline.http_thread.LoopBridge`.

Decision: the server binds 127.0.0.1 by default (``TASKDAEMON_METRICS_HOST``), and refuses to
bind beyond loopback unless ``TASKDAEMON_API_TOKEN`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskdaemon.pipeline.api_views import (
    API_QUERY,
    RunsQuery,
    RunView,
    StageView,
    api_index,
    run_json,
    run_view,
    runs_query,
)
from taskdaemon.pipeline.approval_audit import log_approved, log_rejected
from taskdaemon.pipeline.errors import (
    ApprovalError,
    PipelineError,
    RunNotFoundError,
    StageNotFoundError,
    TaskdaemonError,
)
from taskdaemon.pipeline.events import EngineEvent
from taskdaemon.pipeline.http_answers import (
    GZIP_FROM,
    AnswerHeadersMiddleware,
    GzipMiddleware,
    RequestCheckMiddleware,
    http_error,
    nothing_at,
    relative_slash_redirects,
    server_error,
)
from taskdaemon.pipeline.http_health import (
    ComponentHealth,
    HealthReport,
    HealthSources,
    LoopLagMonitor,
    LoopLagSnapshot,
    liveness,
    readiness,
)
from taskdaemon.pipeline.http_json import (
    BadRequestError,
    bad_request,
    error_response,
    json_body,
    text_field,
)
from taskdaemon.pipeline.http_limits import HttpLimits, MetricsCache, RequestLimitMiddleware
from taskdaemon.pipeline.http_security import ApiAuth, SecurityMiddleware, wants_page
from taskdaemon.pipeline.http_thread import EngineUnavailableError, LoopBridge, MonitorServer
from taskdaemon.pipeline.redaction import DEFAULT_REDACT_PATTERNS
from taskdaemon.pipeline.token_failures import TokenFailures
from taskdaemon.pipeline.visualization import DagWatcher
from taskdaemon.pipeline.web import WebApp, WebOptions

__all__ = [
    "ApiAuth",
    "BacklogFullError",
    "ComponentHealth",
    "EngineController",
    "HealthReport",
    "HealthSources",
    "HttpLimits",
    "LoopLagMonitor",
    "LoopLagSnapshot",
    "MonitorServer",
    "RunController",
    "RunView",
    "StageView",
    "create_app",
    "liveness",
    "readiness",
    "render_metrics",
    "runs_json",
]

_log = logging.getLogger(__name__)


# --- snapshots -----------------------------------------------------------------------------------


class BacklogFullError(PipelineError):
    """A run already has as many events pending as the server accepts (HTTP 429)."""


@runtime_checkable
class RunController(Protocol):
    """What the API needs from an engine: snapshots and the four run commands.

    Commands raise :class:`RunNotFoundError` for an unknown run, :class:`ApprovalError` or
    :class:`PipelineError` when the run cannot do it now, :class:`BacklogFullError` when a run
    has too many events pending. ``by`` is the authenticated principal; ``comment`` is the
    caller's free text.
    """

    def runs(
        self,
        *,
        include_finished: bool = False,
        before: str | None = None,
        limit: int | None = None,
    ) -> Sequence[RunView]:
        """The active runs (and the ended ones still remembered, with ``include_finished``)
        in start order: of those started before run ``before`` (RunNotFoundError when it
        knows no such run), the ``limit`` newest (all of them without)."""

    async def approve(self, run_id: str, stage: str, *, by: str, comment: str = "") -> None:
        """Grant the approval ``stage`` waits for."""

    async def reject(
        self, run_id: str, stage: str, *, by: str, reason: str, comment: str = ""
    ) -> None:
        """Reject the approval ``stage`` waits for."""

    async def publish(self, run_id: str, event_type: str, payload: Mapping[str, Any]) -> None:
        """Publish an event into the run."""

    async def cancel(self, run_id: str, *, by: str) -> None:
        """Cancel the run for ``by``."""


# --- metrics and runs ----------------------------------------------------------------------------


def render_metrics(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry in the format the ``Accept`` header asks for, and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def runs_json(runs: Sequence[RunView], next_url: str | None = None) -> dict[str, Any]:
    """``{"runs": [...], "next": ...}``: every snapshot as plain JSON (``api_views.run_json``)
    and the link to the next (older) page, or None on the last."""
    return {"runs": [run_json(run) for run in runs], "next": next_url}


# --- the app -------------------------------------------------------------------------------------


def create_app(
    *,
    engine: Any = None,
    registry: CollectorRegistry | None = None,
    health: HealthSources | None = None,
    auth: ApiAuth | None = None,
    limits: HttpLimits | None = None,
    dump: Callable[[str, str | None], Awaitable[str]] | None = None,
    web: WebOptions | None = None,
    redact_patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS,
) -> Starlette:
    """The Starlette app over ``engine``, ``registry`` and ``health``; ``web`` configures the
    web page (its span source, Grafana link; ``app.state.web.close()`` releases them).

    ``engine`` is an :class:`~taskdaemon.pipeline.engine.Engine` (wrapped in an
    :class:`EngineController`) or any :class:`RunController`. Without a registry ``/metrics``
    answers 404; without an engine the API answers 503. Without ``auth`` a token is generated
    (``app.state.auth.token``): the API is never open. Engine calls go through
    ``app.state.bridge``, which :class:`MonitorServer` points at the engine's loop. The
    debugger's routes (``server_debug.py``) come with an engine; ``dump`` writes a run's dump;
    their answers hold run data redacted with ``redact_patterns``.
    """
    sources = health or HealthSources()
    limits = limits or HttpLimits()
    auth = auth or ApiAuth.generate()
    bridge = LoopBridge(timeout=limits.engine_timeout)
    metrics_cache = (
        MetricsCache(
            registry,
            max_age=limits.metrics_max_age,
            per_second=limits.metrics_per_second,
            cpu_share=limits.metrics_cpu_share,
        )
        if registry is not None
        else None
    )
    if engine is not None and hasattr(engine, "start_run"):
        engine = EngineController(engine)
    if isinstance(engine, EngineController):
        engine.max_pending_events = limits.max_pending_events
    page = WebApp(
        web,
        live=engine.live if isinstance(engine, EngineController) else None,
        can_control=engine is not None,
    )

    async def not_found(request: Request, exc: Exception) -> Response:
        """Starlette's 404 as a page to a browser opening a page (``wants_page``: not ``/api``,
        not ``/static``), where a link to the runs helps more than JSON; else ``http_error``."""
        if (
            isinstance(exc, HTTPException)
            and exc.status_code == 404
            and wants_page(request.scope, dict(request.headers))
        ):
            return page.nothing_page(nothing_at(request.url.path))
        return await http_error(request, exc)

    async def metrics(request: Request) -> Response:
        if metrics_cache is None:
            return error_response(
                404, "metrics are not enabled (OTEL_METRICS_EXPORTER has no prometheus)"
            )
        headers = request.headers
        answer = await metrics_cache.render(headers.get("accept"), headers.get("accept-encoding"))
        extra = {"vary": "Accept, Accept-Encoding"}
        if answer.encoding:
            extra["content-encoding"] = answer.encoding
        return Response(answer.body, media_type=answer.content_type, headers=extra)

    async def healthz(request: Request) -> Response:
        if sources.lag is None:
            report = HealthReport({"event_loop": ComponentHealth(True, "lag not measured")})
        else:
            report = liveness(
                sources.lag.snapshot(), now=sources.monotonic(), max_lag=sources.max_lag
            )
        return JSONResponse(report.to_json(), status_code=200 if report.ok else 503)

    async def readyz(request: Request) -> Response:
        def gather() -> HealthReport:  # on the engine's loop: sources are not thread-safe
            return readiness(
                export=_guarded(sources.export),
                log_export=_guarded(sources.log_export),
                store=_guarded(sources.store),
                runs=_guarded(engine.runs) or () if engine is not None else (),
                now=sources.wall_clock(),
                grace=sources.stage_grace,
            )

        try:
            report = await bridge.call(gather)
        except EngineUnavailableError as exc:
            report = HealthReport({"engine": ComponentHealth(False, str(exc))})
        return JSONResponse(report.to_json(), status_code=200 if report.ok else 503)

    async def list_runs(request: Request) -> Response:
        if engine is None:
            return error_response(503, "no engine attached to this server")
        try:
            query = runs_query(request.query_params)
        except ValueError as exc:
            return error_response(400, str(exc))
        return await _runs_page(query)

    async def _runs_page(query: RunsQuery) -> Response:
        def page() -> Sequence[RunView]:  # one more than asked: is there a next page?
            views: Sequence[RunView] = engine.runs(
                include_finished=query.finished, before=query.before, limit=query.limit + 1
            )
            return views

        try:
            views = await bridge.call(page)
        except EngineUnavailableError as exc:
            return error_response(503, str(exc))
        except RunNotFoundError as exc:
            return error_response(404, str(exc))
        shown = views[-query.limit :]
        more = len(views) > query.limit
        return JSONResponse(runs_json(shown, query.next_url(shown[0].run_id) if more else None))

    async def index(request: Request) -> Response:
        return JSONResponse(api_index(request.app.routes))

    async def approve(request: Request) -> Response:
        body = await json_body(request, approval=True)
        comment = text_field(body, "comment")
        run_id, stage = request.path_params["run_id"], request.path_params["stage"]
        return await _command(
            lambda e: e.approve(run_id, stage, by=auth.principal, comment=comment)
        )

    async def reject(request: Request) -> Response:
        body = await json_body(request, approval=True)
        reason, comment = text_field(body, "reason"), text_field(body, "comment")
        run_id, stage = request.path_params["run_id"], request.path_params["stage"]
        return await _command(
            lambda e: e.reject(run_id, stage, by=auth.principal, reason=reason, comment=comment)
        )

    async def publish(request: Request) -> Response:
        body = await json_body(request)
        event_type, payload = body.get("type"), body.get("payload", {})
        if not isinstance(event_type, str) or not event_type:
            return error_response(400, 'body must be {"type": "<event type>", "payload": {...}}')
        if not isinstance(payload, dict):
            return error_response(400, "payload must be a JSON object")
        return await _command(
            lambda e: e.publish(request.path_params["run_id"], event_type, payload)
        )

    async def cancel(request: Request) -> Response:
        await json_body(request)
        run_id = request.path_params["run_id"]
        return await _command(lambda e: e.cancel(run_id, by=auth.principal))

    async def _command(call: Callable[[RunController], Awaitable[None]]) -> Response:
        if engine is None:
            return error_response(503, "no engine attached to this server")
        try:
            await bridge.call(lambda: call(engine))
        except (RunNotFoundError, StageNotFoundError) as exc:
            return error_response(404, str(exc))
        except BacklogFullError as exc:
            return error_response(429, str(exc))
        except EngineUnavailableError as exc:
            return error_response(503, str(exc))
        except (ApprovalError, PipelineError) as exc:
            return error_response(409, str(exc))
        except TaskdaemonError as exc:
            return error_response(400, str(exc))
        return JSONResponse({"status": "accepted"}, status_code=202)

    failures = TokenFailures(
        limit=limits.token_failures,
        window=limits.token_window,
        max_clients=limits.token_clients,
        site_limit=limits.token_site_failures,
        total_limit=limits.token_total_failures,
    )
    app: Starlette  # the Host check reads the bound address from its state, per request
    app = Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/api", index, methods=["GET"]),
            Route("/api/runs", list_runs, methods=["GET"]),
            *page.routes(),
            Route("/api/runs/{run_id}/approve/{stage}", approve, methods=["POST"]),
            Route("/api/runs/{run_id}/reject/{stage}", reject, methods=["POST"]),
            Route("/api/runs/{run_id}/events", publish, methods=["POST"]),
            Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
            *_debug_routes(engine, dump, bridge, auth, redact_patterns),
        ],
        middleware=[
            Middleware(GzipMiddleware, minimum_size=GZIP_FROM),
            Middleware(AnswerHeadersMiddleware),
            Middleware(
                SecurityMiddleware,
                auth=auth,
                bind_host=lambda: app.state.bind_host,
                failures=failures,
            ),
            Middleware(RequestLimitMiddleware, limits=limits),
            Middleware(RequestCheckMiddleware, params=API_QUERY, routes=lambda: app.routes),
        ],
        exception_handlers={
            BadRequestError: bad_request,
            HTTPException: not_found,
            Exception: server_error,
        },
    )
    relative_slash_redirects(app.router)
    app.state.auth = auth
    app.state.token_failures = failures  # its open windows are said when the server stops
    app.state.bind_host = "127.0.0.1"  # MonitorServer sets the address it binds
    app.state.bridge = bridge
    app.state.limits = limits
    app.state.web = page
    page.debug = any("/debug" in getattr(route, "path", "") for route in app.routes)
    return app


def _debug_routes(
    controller: Any,
    dump: Any,
    bridge: LoopBridge,
    auth: ApiAuth,
    redact_patterns: tuple[str, ...],
) -> list[Route]:
    if not isinstance(controller, EngineController):
        return []
    from taskdaemon.pipeline.server_debug import debug_routes  # noqa: PLC0415 - see its doc

    return debug_routes(lambda: controller.engine, bridge, auth.principal, dump, redact_patterns)


def _guarded(source: Callable[[], Any] | None) -> Any | None:
    """A health source that raises is reported as missing data, never as a 500."""
    if source is None:
        return None
    try:
        return source()
    except Exception:
        _log.exception("health source failed")
        return None


# --- the engine adapter --------------------------------------------------------------------------


class EngineController:
    """A :class:`RunController` over an :class:`~taskdaemon.pipeline.engine.Engine`.

    It registers itself as an engine observer to know which stages wait for an approval (the
    engine's snapshots say only ``waiting``), so create it before starting runs: approvals
    requested earlier are not flagged (they can still be granted). Only open runs are listed.
    ``publish`` refuses (:class:`BacklogFullError`) while the run has ``max_pending_events``
    events waiting to start or running. Granted and rejected approvals are logged on
    ``taskdaemon.audit`` once the engine accepted them.
    """

    def __init__(self, engine: Any = None, *, max_pending_events: int = 1000) -> None:
        self.engine: Any = None
        self.max_pending_events = max_pending_events
        self.live = DagWatcher(keep_finished=32)  # the web page's live runs
        if engine is not None:
            self.bind(engine)

    def bind(self, engine: Any) -> None:
        """Serve ``engine`` (for owners that build the controller before the engine)."""
        self.engine = engine
        engine.add_observer(self)

    def _engine(self) -> Any:
        if self.engine is None:
            raise PipelineError("no engine is attached yet")
        return self.engine

    def on_event(self, event: EngineEvent) -> None:
        """Keep the live state of runs (the web page's, and which stages await approval)."""
        self.live.on_event(event)

    def runs(
        self,
        *,
        include_finished: bool = False,
        before: str | None = None,
        limit: int | None = None,
    ) -> Sequence[RunView]:
        """Snapshots of the engine's open runs (and, asked, of the ended ones it remembers),
        in start order: of those started before run ``before``, the ``limit`` newest. Only
        those are snapshotted: a page costs the engine's loop its own size, not the engine's.

        A stage that ran lists one view per instance: its latest attempt, with its start, end
        and error; a stage that did not run has one view with its status (and skip reason).
        RunNotFoundError when ``before`` names no run the engine remembers.
        """
        handles = self.engine.runs if self.engine is not None else ()
        end = len(handles)
        if before is not None:
            end = next((i for i in range(end - 1, -1, -1) if handles[i].run_id == before), -1)
            if end < 0:
                raise RunNotFoundError(
                    f"no run {before} in this engine: it never ran here, or ended long enough"
                    " ago to be forgotten; list again without before"
                )
        chosen: list[Any] = []  # newest first, from the cursor back, until the page is full
        for index in range(end - 1, -1, -1):
            if limit is not None and len(chosen) >= limit:
                break
            if include_finished or not handles[index].done:
                chosen.append(handles[index])
        return [
            run_view(
                h.pipeline, h.snapshot(), self.live.awaiting_approval(h.run_id), h.scheduled_at
            )
            for h in reversed(chosen)
        ]

    async def approve(self, run_id: str, stage: str, *, by: str, comment: str = "") -> None:
        """Grant the approval ``stage`` waits for, then log who did."""
        self._engine().approve(run_id, stage, by)
        log_approved(run_id, stage, by=by, comment=comment)

    async def reject(
        self, run_id: str, stage: str, *, by: str, reason: str, comment: str = ""
    ) -> None:
        """Reject it, then log who did and why (nothing is logged for a refused command)."""
        self._engine().reject(run_id, stage, by)
        log_rejected(run_id, stage, by=by, reason=reason, comment=comment)

    async def publish(self, run_id: str, event_type: str, payload: Mapping[str, Any]) -> None:
        """Publish an event into the run, unless too many are pending in it already."""
        engine = self._engine()
        pending = engine.get_run(run_id).backlog
        if pending >= self.max_pending_events:
            raise BacklogFullError(
                f"run {run_id} has {pending} events pending (limit {self.max_pending_events}); "
                "retry later"
            )
        engine.publish(run_id, event_type, payload)

    async def cancel(self, run_id: str, *, by: str) -> None:
        """Cancel the run for ``by``; PipelineError (409) once it has ended, as approving a
        stage that waits no more is refused, rather than an "accepted" that does nothing."""
        handle = self._engine().get_run(run_id)
        if handle.done:
            raise PipelineError(f"run {run_id} has already ended ({handle.status})")
        handle.cancel(by=by)
