"""The runs page's query: its filters read from the request, the links that page through
the runs, and what the runs table says when it has no row (``_app``'s routes use them)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from taskdaemon.pipeline.api_views import parse_limit
from taskdaemon.pipeline.run_id_form import run_id_problem
from taskdaemon.pipeline.web._data import check_status

__all__ = [
    "NARROWING",
    "NONE_SHOWN",
    "NO_MATCH",
    "NO_RUN_YET",
    "PAGED",
    "page_url",
    "raw_filters",
    "read_filters",
]

#: The runs table's one line when filters that name a pipeline with runs match none.
NO_MATCH = "No runs match."
#: Its line when nothing was filtered (a fresh home, a store not made yet): "No runs match."
#: sent the reader to look for a filter there was none of.
NO_RUN_YET = "No runs in this source yet."
#: The filters that narrow the runs listed (``limit`` only cuts them).
NARROWING = ("pipeline", "status", "since", "until", "before")
#: The empty list's line under a refused filter or a source that did not answer: "No runs
#: match." sent the reader to widen filters that were not the cause.
NONE_SHOWN = "No runs shown: see the error above."

#: The query parameters that page back: ``before``, the page's; ``until``, as older links
#: paged (by start alone: runs of one start were lost), still followed.
PAGED = {"before", "until"}


def page_url(request: Request, before: str | None) -> str:
    """The runs page with the request's filters, listing the runs after run ``before`` (the
    last row of a page); None: the newest."""
    query = {k: v for k, v in request.query_params.items() if k not in PAGED}
    if before is not None:
        query["before"] = before
    return "/?" + urlencode(query)


def raw_filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in ("pipeline", "status", "since")}


def read_filters(request: Request) -> dict[str, Any]:
    """The query's filters for ``RunData.recent``; ValueError with the reason."""
    from taskdaemon.pipeline.durations import parse_when  # noqa: PLC0415

    query = request.query_params
    limit = parse_limit(query.get("limit"))
    since, until = query.get("since") or None, query.get("until") or None
    before = query.get("before") or None
    if before is not None and (problem := run_id_problem(before, full=True)) is not None:
        raise ValueError(f"before: {problem}")
    return {
        "pipeline": query.get("pipeline") or None,
        "status": check_status(query.get("status")),
        "since": parse_when(since) if since else None,
        "until": parse_when(until) if until else None,
        "limit": limit,
        "before": before,
    }
