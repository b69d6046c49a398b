"""What the run API answers: run and stage views of engine snapshots, and the ``GET /api`` index.

Pure functions over engine values (``RunResult``, ``Pipeline``); ``server.py`` serves them.

* A stage that ran has one :class:`StageView` per instance: the instance's latest attempt, with
  when it started and ended and its error (``cancelled: <why>`` when a stop of the run cancelled
  it, with the causing stage in ``cancel_cause``). A stage that did not run has one view with
  its status and, when skipped, the skip reason as ``error``.
* ``GET /api/runs`` names times and stages as the run record (``GET /api/runs/{id}``) does:
  a run's ``start`` and ``end``, a stage's ``name`` and its attempt's ``start`` and ``end``
  (:func:`run_json`). The names it used first (``started_at``, ``finished_at``; ``stage``,
  ``started_at``, ``ended_at``) are still sent, as deprecated aliases (docs/http-api.md,
  "Field names").
* ``GET /api/runs`` is bounded by default (:data:`DEFAULT_LIMIT` runs, at most
  :data:`MAX_LIMIT`) and pages back in the engine's start order: ``before=<run id>`` lists the
  runs started before that one, and the answer's ``next`` is the link to the next page
  (:class:`RunsQuery`), ``null`` on the last.
* ``GET /api`` lists every route of the app with its methods, the query parameters it reads
  (:data:`API_QUERY`) and a one-line description, read from the app's own routing table so it
  cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.landing import late_by
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.run_id_form import run_id_problem

__all__ = [
    "API_DOCS",
    "API_QUERY",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "RunView",
    "RunsQuery",
    "StageView",
    "api_index",
    "parse_limit",
    "query_flag",
    "run_json",
    "run_view",
    "runs_query",
]

#: The largest ``limit`` a list route takes (``/api/runs``, ``/api/runs/recent``).
MAX_LIMIT = 500
#: Runs a list route answers when the client names no ``limit`` (``/api/runs/recent`` too).
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class StageView:
    """One stage execution of a run (its instance's latest attempt), as the API shows it."""

    stage: str
    status: str
    instance: int = 0
    attempt: int = 1
    started_at: float | None = None  # epoch seconds the attempt started running
    timeout: float | None = None  # seconds
    waiting_approval: bool = False
    ended_at: float | None = None
    error: str | None = None  # the error, the skip reason, or "cancelled: <why>"
    cancel_cause: str | None = None  # the stage whose failure cancelled this one


@dataclass(frozen=True, slots=True)
class RunView:
    """One run, as the API shows it."""

    run_id: str
    pipeline: str
    status: str
    started_at: float | None = None
    stages: tuple[StageView, ...] = ()
    finished_at: float | None = None
    error: str | None = None
    landing_delay: float | None = None  # seconds late against its schedule (``landing``)


#: One line per route path for ``GET /api``; a route without one is listed with an empty text.
API_DOCS: Mapping[str, str] = {
    "/api": "this index of routes",
    "/api/runs": (
        "active runs, the 100 newest (?limit=N, at most 500); ?finished=true adds the ended runs"
        " the engine remembers; ?before=RUN_ID pages back (the answer's next)"
    ),
    "/": "the web page: recent runs; /?token=T signs a browser in",
    "/runs/{run_id}": "the web page of one run, live",
    "/static": "the web page's script and style sheet",
    "/api/runs/recent": "recent runs (filters pipeline, status, since, until, limit, before)",
    "/api/runs/{run_id}": "the run record",
    "/api/runs/{run_id}/dag": "the DAG; ?format=dot|json|mermaid|svg",
    "/api/runs/{run_id}/stream": (
        "live run state as Server-Sent Events; ?delta=true: what changed, after the first"
    ),
    "/api/runs/{run_id}/logs": "a stage's last log records; ?stage=S",
    "/api/runs/{run_id}/logs/stream": "a stage's log tail, live, as Server-Sent Events; ?stage=S",
    "/api/pipelines": "pipelines with runs or a known definition",
    "/api/runs/{run_id}/approve/{stage}": 'grant a pending approval; body {"comment": "..."}',
    "/api/runs/{run_id}/reject/{stage}": 'reject it; body {"reason": "...", "comment": "..."}',
    "/api/runs/{run_id}/events": 'publish an event; body {"type": "...", "payload": {...}}',
    "/api/runs/{run_id}/debug": "the debugger's view of a run: what is paused, breakpoints",
    "/api/runs/{run_id}/debug/{action}": "continue, step, skip, retry, or set an input",
    "/api/runs/{run_id}/debug/env": "the environment the paused stage will see",
    "/api/runs/{run_id}/debug/env/{stage}": "the environment a paused stage will see",
    "/api/runs/{run_id}/debug/breakpoints": 'PUT {"stage", "when", "on"}; DELETE: all',
    "/api/runs/{run_id}/debug/breakpoints/{number:int}": "DELETE one breakpoint",
    "/api/runs/{run_id}/dump": "write a debug dump (.tar.gz) of the run; answers its path",
    "/api/runs/{run_id}/cancel": "cancel the run",
    "/metrics": "Prometheus metrics",
    "/healthz": "liveness",
    "/readyz": "readiness",
}


#: The query parameters each ``/api`` route reads; any other is refused with a 400
#: (``http_answers.RequestCheckMiddleware``). ``token`` is accepted everywhere.
API_QUERY: Mapping[str, frozenset[str]] = {
    "/api/runs": frozenset({"finished", "limit", "before"}),
    "/api/runs/recent": frozenset({"pipeline", "status", "since", "until", "limit", "before"}),
    "/api/runs/{run_id}": frozenset({"stage"}),
    "/api/runs/{run_id}/dag": frozenset({"format"}),
    "/api/runs/{run_id}/stream": frozenset({"delta"}),
    "/api/runs/{run_id}/logs": frozenset({"stage"}),
    "/api/runs/{run_id}/logs/stream": frozenset({"stage"}),
}

_TRUE, _FALSE = frozenset({"1", "true", "yes"}), frozenset({"", "0", "false", "no"})


@dataclass(frozen=True, slots=True)
class RunsQuery:
    """What ``GET /api/runs`` was asked: the ended runs too (``finished``), how many at most
    (``limit``), and the run whose older runs are wanted (``before``, a full run id: the
    first run of the previous page)."""

    finished: bool = False
    limit: int = DEFAULT_LIMIT
    before: str | None = None

    def next_url(self, oldest: str) -> str:
        """The link to the page after one whose first (oldest) run is ``oldest``."""
        params = {"finished": "true"} if self.finished else {}
        return "/api/runs?" + urlencode({**params, "limit": self.limit, "before": oldest})


def runs_query(params: Mapping[str, str]) -> RunsQuery:
    """``GET /api/runs``'s parameters: ``finished`` (a boolean), ``limit`` (1 to
    :data:`MAX_LIMIT`, default :data:`DEFAULT_LIMIT`), ``before`` (a full run id); ValueError
    with the reason for anything else."""
    finished = query_flag(params, "finished")
    limit = parse_limit(params.get("limit"))
    before = params.get("before")
    if before is not None and (problem := run_id_problem(before, full=True)) is not None:
        raise ValueError(f"before: {problem}")
    return RunsQuery(finished, limit, None if before is None else before.lower())


def query_flag(params: Mapping[str, str], name: str) -> bool:
    """The boolean query parameter ``name`` (``true``/``1``/``yes`` or ``false``/``0``/``no``,
    absent: false); ValueError naming it for anything else."""
    value = params.get(name, "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(f"{name} must be true or false, got {quote(params[name])}")
    return value in _TRUE


def parse_limit(text: str | None) -> int:
    """A list route's ``limit`` (``/api/runs``, ``/api/runs/recent``, the runs page):
    :data:`DEFAULT_LIMIT` when absent, else ASCII digits naming 1 to :data:`MAX_LIMIT`;
    ValueError otherwise, quoting ``text`` as ``quoting.quote`` does. ``int()`` alone would
    take ``+5``, ``1_0``, `` 7 `` and non-ASCII digits, and read thousands of digits first."""
    if text is None:
        return DEFAULT_LIMIT
    if not (ascii_digits(text) and len(text) <= 6 and 1 <= int(text) <= MAX_LIMIT):
        raise ValueError(f"limit must be a whole number 1-{MAX_LIMIT}, got {quote(text)}")
    return int(text)


def run_json(run: RunView) -> dict[str, Any]:
    """One run of ``GET /api/runs`` as JSON: the record's names (``start``, ``end``; a stage's
    ``name``), then the deprecated aliases of the first version of the route."""
    return {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "status": run.status,
        "start": run.started_at,
        "end": run.finished_at,
        "error": run.error,
        # seconds, as ``/api/runs/recent`` gives it; None for a run no schedule started
        "landing_delay": None if run.landing_delay is None else round(run.landing_delay, 6),
        "stages": [_stage_json(stage) for stage in run.stages],
        "started_at": run.started_at,  # deprecated: start
        "finished_at": run.finished_at,  # deprecated: end
    }


def _stage_json(stage: StageView) -> dict[str, Any]:
    return {
        "name": stage.stage,
        "status": stage.status,
        "instance": stage.instance,
        "attempt": stage.attempt,
        "start": stage.started_at,
        "end": stage.ended_at,
        "timeout": stage.timeout,
        "waiting_approval": stage.waiting_approval,
        "error": stage.error,
        "cancel_cause": stage.cancel_cause,
        "stage": stage.stage,  # deprecated: name
        "started_at": stage.started_at,  # deprecated: start
        "ended_at": stage.ended_at,  # deprecated: end
    }


def api_index(routes: Iterable[Any]) -> dict[str, Any]:
    """``{"routes": [{"methods", "path", "query", "doc"}, ...]}`` of Starlette ``routes``."""
    listed = []
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        # A mount (the page's static files) has no methods of its own: it answers GET.
        methods = sorted(m for m in getattr(route, "methods", None) or ("GET",) if m != "HEAD")
        query = sorted(API_QUERY.get(path, ()))
        listed.append(
            {"methods": methods, "path": path, "query": query, "doc": API_DOCS.get(path, "")}
        )
    return {"routes": listed}


def run_view(
    pipeline: Any, result: Any, approvals: Collection[str], scheduled_at: float | None = None
) -> RunView:
    """The view of one run: ``result`` a ``RunResult`` snapshot of ``pipeline``; ``approvals``
    the stages of the run waiting for an approval (``run_state.RunState.awaiting_approval``);
    ``scheduled_at`` when a schedule meant the run to start (None: no schedule started it)."""
    stages_by_name = {stage.name: stage for stage in pipeline.stages}
    stages: list[StageView] = []
    for name, status in result.stage_status.items():
        stage_def = stages_by_name.get(name)
        timeout = pipeline.effective_timeout(stage_def) if stage_def else None
        latest: dict[int, Any] = {}
        for ex in result.executions.get(name, ()):
            latest[ex.instance] = ex  # attempts come in order: the last one wins
        if not latest:
            stages.append(
                StageView(
                    stage=name,
                    status=str(status),
                    timeout=timeout,
                    waiting_approval=name in approvals,
                    error=result.skip_reasons.get(name),
                )
            )
        stages.extend(
            StageView(
                stage=name,
                status=str(ex.status),
                instance=ex.instance,
                attempt=ex.attempt,
                started_at=ex.times.running,
                timeout=timeout,
                ended_at=ex.times.ended,
                error=ex.error,
                cancel_cause=ex.cancel_cause,
            )
            for ex in latest.values()
        )
    return RunView(
        run_id=result.run_id,
        pipeline=result.pipeline,
        status=str(result.status),
        started_at=result.started_at,
        stages=tuple(stages),
        finished_at=result.finished_at,
        error=result.error,
        landing_delay=late_by(scheduled_at, result.started_at),
    )
