"""What the run API answers, as pure views (``api_views``): a list route's ``limit``, the
``GET /api/runs`` query and its paging link, a run's JSON, the route index, and the view of a
real engine's run."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from pipeline_engine_support import Resolver, after, pipeline, retry, stage
from taskdaemon.pipeline.api_views import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    RunsQuery,
    RunView,
    StageView,
    api_index,
    parse_limit,
    run_json,
    run_view,
    runs_query,
)
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import ErrorStrategy, OnEvent, Pipeline, Stage

RUN_ID = "0123456789abcdef0123456789ABCDEF"


def test_a_limit_is_the_default_or_ascii_digits_naming_one_to_the_maximum() -> None:
    """No ``limit``: 100. Else 1 to 500, leading zeros allowed within six digits."""
    assert [100, 500, 1, 500, 7] == [
        parse_limit(None),
        MAX_LIMIT,
        parse_limit("1"),
        parse_limit("000500"),
        parse_limit("07"),
    ]
    assert DEFAULT_LIMIT == parse_limit(None)


@pytest.mark.parametrize(
    "text", ["", "0", "501", "-1", "+5", "1_0", " 7 ", "5.0", "²", "\u0663", "0000005"]
)
def test_anything_else_is_refused_naming_the_rule_and_the_value(text: str) -> None:
    """Zero, over 500, signs, underscores, blanks, a fraction, a superscript or an Arabic-Indic
    digit (which ``int`` would take), and seven digits even when they name a small number."""
    with pytest.raises(ValueError, match="limit must") as refused:
        parse_limit(text)
    assert f"limit must be a whole number 1-500, got {text!r}" == str(refused.value)


def test_a_long_refused_limit_is_quoted_cut_to_forty_characters() -> None:
    """Thousands of digits are not read, and the error quotes forty characters of them, the
    last an ellipsis, as every refused value is quoted."""
    with pytest.raises(ValueError, match="limit must") as refused:
        parse_limit("9" * 5000)
    assert f"limit must be a whole number 1-500, got '{'9' * 39}…'" == str(refused.value)


def test_the_run_list_query_reads_finished_limit_and_before() -> None:
    """``finished`` takes the usual words in any case and around blanks; ``before`` is a
    whole run id, kept in lower case; what is absent takes its default."""
    assert [
        runs_query({}),
        runs_query({"finished": " TRUE ", "limit": "3", "before": RUN_ID}),
        runs_query({"finished": "yes"}),
        runs_query({"finished": "1"}),
        runs_query({"finished": "No"}),
        runs_query({"finished": "0"}),
        runs_query({"finished": ""}),
    ] == [
        RunsQuery(False, 100, None),
        RunsQuery(True, 3, RUN_ID.lower()),
        RunsQuery(True, 100, None),
        RunsQuery(True, 100, None),
        RunsQuery(False, 100, None),
        RunsQuery(False, 100, None),
        RunsQuery(False, 100, None),
    ]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"finished": "maybe"}, "finished must be true or false, got 'maybe'"),
        ({"finished": "x" * 50}, f"finished must be true or false, got '{'x' * 39}…'"),
        ({"limit": "0"}, "limit must be a whole number 1-500, got '0'"),
        ({"before": RUN_ID[:8]}, "before: not a run id (32 hex digits): '01234567'"),
    ],
)
def test_a_run_list_query_outside_its_rules_is_refused(params: dict[str, str], says: str) -> None:
    """Each parameter's own reason; ``before`` must be a whole id, not a prefix."""
    with pytest.raises(ValueError, match=r"must|not a run id") as refused:
        runs_query(params)
    assert says == str(refused.value)


def test_the_next_page_link_keeps_the_query_and_pages_before_the_oldest_run() -> None:
    """The link names ``finished`` only when it was asked, the same ``limit``, and the
    oldest run of this page as ``before``."""
    assert [
        RunsQuery(True, 5).next_url("ab" * 16),
        RunsQuery(False, 100, "cd" * 16).next_url("ef" * 16),
    ] == [
        f"/api/runs?finished=true&limit=5&before={'ab' * 16}",
        f"/api/runs?limit=100&before={'ef' * 16}",
    ]


def test_a_runs_json_has_the_record_names_and_the_first_ones_as_aliases() -> None:
    """Every field of a run and of each stage view, under the record's names and, with the
    same values, under the names the list used first."""
    stage = StageView(
        stage="deploy",
        status="cancelled",
        instance=2,
        attempt=3,
        started_at=10.5,
        timeout=60.0,
        waiting_approval=True,
        ended_at=12.25,
        error="cancelled: build failed",
        cancel_cause="build",
    )
    run = RunView(RUN_ID, "ship", "failure", 10.0, (stage,), 13.0, "build failed", 1.25)
    assert {
        "run_id": RUN_ID,
        "pipeline": "ship",
        "status": "failure",
        "start": 10.0,
        "end": 13.0,
        "error": "build failed",
        "landing_delay": 1.25,
        "stages": [
            {
                "name": "deploy",
                "status": "cancelled",
                "instance": 2,
                "attempt": 3,
                "start": 10.5,
                "end": 12.25,
                "timeout": 60.0,
                "waiting_approval": True,
                "error": "cancelled: build failed",
                "cancel_cause": "build",
                "stage": "deploy",
                "started_at": 10.5,
                "ended_at": 12.25,
            }
        ],
        "started_at": 10.0,
        "finished_at": 13.0,
    } == run_json(run)


def test_the_index_lists_each_route_with_its_methods_query_and_description() -> None:
    """Starlette's own routes: methods sorted without HEAD, a mount listed as GET, the query
    parameters a route reads (sorted), its line of description (empty when it has none); a
    route without a path of its own is left out."""

    async def endpoint() -> None:
        raise AssertionError("not called")

    class Pathless:
        path = None

    routes = [
        Route("/api/runs", endpoint, methods=["GET"]),
        Pathless(),
        Route("/api/runs/{run_id}/cancel", endpoint, methods=["POST"]),
        object(),
        Mount("/static", StaticFiles(directory=".", check_dir=False)),
        WebSocketRoute("/ws", endpoint),
    ]
    listed = api_index(routes)["routes"]
    assert [
        (["GET"], "/api/runs", ["before", "finished", "limit"]),
        (["POST"], "/api/runs/{run_id}/cancel", []),
        (["GET"], "/static", []),
        (["GET"], "/ws", []),
    ] == [(route["methods"], route["path"], route["query"]) for route in listed]
    assert ["cancel the run", ""] == [listed[1]["doc"], listed[3]["doc"]]
    assert all(listed[n]["doc"] for n in (0, 2))


class _Handlers:
    """``flaky`` fails its first attempt; ``slow`` runs until the stop cancels it; ``fail``
    raises once ``flaky`` has succeeded and ``slow`` is running; the rest return at once."""

    def __init__(self) -> None:
        self.slow_started = asyncio.Event()
        self.flaky_done = asyncio.Event()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def flaky(ctx: StageContext) -> Mapping[str, Any]:
            if ctx.attempt == 1:
                raise RuntimeError("first try")
            self.flaky_done.set()
            return {}

        async def slow(ctx: StageContext) -> Mapping[str, Any]:
            self.slow_started.set()
            await asyncio.Event().wait()
            return {}

        async def fail(ctx: StageContext) -> Mapping[str, Any]:
            await self.slow_started.wait()
            await self.flaky_done.wait()
            raise RuntimeError("boom")

        async def noop(ctx: StageContext) -> Mapping[str, Any]:
            return {}

        return {"flaky": flaky, "slow": slow, "fail": fail}.get(stage.name, noop)


async def test_the_view_of_a_run_has_each_stages_latest_attempt_or_its_skip() -> None:
    """A real run: a retried stage shows its second attempt, a cancelled one its reason and
    the stage that caused it, a skipped one its reason as the error; each has its timeout
    (its own, else the pipeline's) and only the stages named as waiting say so."""
    ship = pipeline(
        stage("flaky", retry=retry(2, initial=0.0)),
        stage("slow", timeout=100.0),
        stage("fail"),
        stage("follow", *after("slow")),
        name="ship",
        error_strategy=ErrorStrategy.FAIL,
        timeout=30.0,
    )
    async with Engine(resolver=_Handlers()) as engine:
        handle = await engine.start_run(ship)
        result = await handle.wait()
    view = run_view(handle.pipeline, result, {"follow"})
    stages = {
        s.stage: (s.status, s.instance, s.attempt, s.timeout, s.waiting_approval, s.error)
        for s in view.stages
    }
    cancelled = "cancelled: stage 'fail' failed (error_strategy: fail)"
    assert (view.run_id, view.pipeline, view.status, view.error, stages) == (
        result.run_id,
        "ship",
        "failure",
        result.error,
        {
            "flaky": ("success", 0, 2, 30.0, False, None),
            "slow": ("cancelled", 0, 1, 100.0, False, cancelled),
            "fail": ("failure", 0, 1, 30.0, False, "boom"),
            "follow": ("skipped", 0, 1, 30.0, True, result.skip_reasons["follow"]),
        },
    )
    by_name = {s.stage: s for s in view.stages}
    flaky = result.executions["flaky"][-1]
    assert (
        by_name["slow"].cancel_cause,
        (by_name["flaky"].started_at, by_name["flaky"].ended_at),
        (view.started_at, view.finished_at),
        [type(by_name["flaky"].started_at), type(view.finished_at)],
        isinstance(result.skip_reasons["follow"], str),
    ) == (
        "fail",
        (flaky.times.running, flaky.times.ended),
        (result.started_at, result.finished_at),
        [float, float],
        True,
    )


async def test_each_instance_of_an_event_stage_is_a_view_of_its_own() -> None:
    """An event stage fired twice is two views, instance 0 and instance 1."""

    async def emitter(ctx: StageContext) -> None:
        for n in range(2):
            ctx.publish("item", {"n": n})

    fed = pipeline(stage("src", emits=("item",)), stage("each", OnEvent("item")), name="fed")
    async with Engine(resolver=Resolver({"src": emitter})) as engine:
        handle = await engine.start_run(fed)
        result = await handle.wait()
    view = run_view(handle.pipeline, result, ())
    assert [("src", 0, "success"), ("each", 0, "success"), ("each", 1, "success")] == [
        (s.stage, s.instance, s.status) for s in view.stages
    ]
