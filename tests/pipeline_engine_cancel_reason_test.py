"""A stage cancelled because another failed says why, everywhere: engine events, spans and the
runs rebuilt from them, ``runs show`` (table and JSON), the run API, the DAG formats (DOT, JSON,
Mermaid) and the ``taskdaemon run`` output.

The pipeline: ``fail`` fails once ``slow`` is running (no sleep orders them: ``slow`` sets an
event ``fail`` waits for); ``slow`` then never ends by itself, so the stop cancels it; ``follow``
waits for ``slow`` and is skipped.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import taskdaemon
from pipeline_engine_support import Recorder, after, pipeline, stage
from pipeline_tracking_support import run_into_store
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import StageFinished, StageSkipped
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import ErrorStrategy, Pipeline, Stage
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.server import create_app
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.visualization import (
    DagWatcher,
    render_dot,
    render_json,
    render_mermaid,
)

REASON = "stage 'fail' failed (error_strategy: fail)"
CANCELLED = f"cancelled: {REASON}"

PIPELINE = pipeline(
    stage("fail"),
    stage("slow"),
    stage("follow", *after("slow")),
    name="cancels",
    error_strategy=ErrorStrategy.FAIL,
)


class Handlers:
    """``slow`` runs until cancelled; ``fail`` raises once ``slow`` has started."""

    def __init__(self) -> None:
        self.slow_started = asyncio.Event()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def slow(ctx: StageContext) -> Mapping[str, Any]:
            self.slow_started.set()
            await asyncio.Event().wait()  # ended only by the stop's cancellation
            return {}

        async def fail(ctx: StageContext) -> Mapping[str, Any]:
            await self.slow_started.wait()
            raise RuntimeError("boom")

        async def noop(ctx: StageContext) -> Mapping[str, Any]:
            return {}

        return {"slow": slow, "fail": fail}.get(stage.name, noop)


async def test_engine_events_carry_the_reason_and_the_causing_stage() -> None:
    """Without any telemetry, the cancelled attempt's event, its result and the skip event name
    the failed stage and the error strategy."""
    recorder = Recorder()
    async with Engine(resolver=Handlers(), observers=[recorder]) as engine:
        result = await (await engine.start_run(PIPELINE)).wait()
    (finished,) = [e for e in recorder.of(StageFinished) if e.stage == "slow"]
    (skipped,) = recorder.of(StageSkipped)
    (execution,) = result.executions["slow"]
    assert (
        finished.status.value,
        finished.error,
        finished.cancel_reason,
        finished.cancel_cause,
        skipped.stage,
        skipped.cancel_reason,
        skipped.cancel_cause,
        execution.error,
        execution.cancel_cause,
    ) == ("cancelled", CANCELLED, REASON, "fail", "follow", REASON, "fail", CANCELLED, "fail")


async def test_a_cancel_from_outside_has_a_reason_and_no_cause() -> None:
    """A run cancelled by its owner says so on the cancelled attempt, with no causing stage."""
    handlers, recorder = Handlers(), Recorder()
    solo = pipeline(stage("slow"), name="solo")
    async with Engine(resolver=handlers, observers=[recorder]) as engine:
        handle = await engine.start_run(solo)
        await handlers.slow_started.wait()
        handle.cancel()
        await handle.wait()
    (finished,) = recorder.of(StageFinished)
    assert (finished.error, finished.cancel_reason, finished.cancel_cause) == (
        "cancelled: run cancelled",
        "run cancelled",
        None,
    )


async def _stored_run(db: Path) -> RunRecord:
    run_id = await run_into_store(db, PIPELINE, Handlers())
    with SpanStore(db) as store:
        return store.get_run(run_id)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, RunRecord]:
    """The pipeline run through the real monitor into an embedded store, then rebuilt."""
    db = tmp_path / "spans.db"
    return db, asyncio.run(_stored_run(db))


def test_the_reason_survives_the_round_trip_through_spans(stored: tuple[Path, RunRecord]) -> None:
    """The spans carry the schema's cancel attributes; the rebuilt run has them on the cancelled
    stage and its attempt, and on the skipped stage."""
    db, run = stored
    with SpanStore(db) as store:
        spans = store.get_trace(run.run_id)
    attributes = {
        s.attributes.get(t.CICD_TASK_NAME): (
            s.attributes.get(t.STAGE_CANCEL_REASON),
            s.attributes.get(t.STAGE_CANCEL_CAUSE),
        )
        for s in spans
    }
    slow, follow = run.stage("slow"), run.stage("follow")
    assert (
        attributes["slow"],
        attributes["follow"],
        attributes["fail"],
        slow.status,
        slow.cancel_reason,
        slow.cancel_cause,
        slow.attempts[0].error,
        slow.attempts[0].cancel_cause,
        follow.status,
        follow.cancel_cause,
    ) == (
        (REASON, "fail"),
        (REASON, "fail"),
        (None, None),
        "cancelled",
        REASON,
        "fail",
        CANCELLED,
        "fail",
        "skipped",
        "fail",
    )


def test_runs_show_says_why_in_the_table_and_json(
    stored: tuple[Path, RunRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    """The slow stage's row ends with the reason; the JSON has it on the stage and attempt."""
    db, run = stored
    assert main(["runs", "show", run.run_id, "--source", f"sqlite:///{db}"]) == 0
    table = capsys.readouterr().out
    assert main(["runs", "show", run.run_id, "--json", "--source", f"sqlite:///{db}"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = [line for line in table.splitlines() if line.startswith("slow ")]
    (slow,) = [s for s in data["stages"] if s["name"] == "slow"]
    assert (row.endswith(CANCELLED), slow["cancel_reason"], slow["cancel_cause"]) == (
        True,
        REASON,
        "fail",
    )
    assert (slow["attempts"][0]["error"], slow["attempts"][0]["cancel_cause"]) == (
        CANCELLED,
        "fail",
    )


def test_dag_formats_draw_an_edge_from_the_cause(stored: tuple[Path, RunRecord]) -> None:
    """DOT and Mermaid draw a dotted edge fail → slow labelled with the reason; JSON names both;
    Graphviz accepts the DOT."""
    _, run = stored
    dot = render_dot(PIPELINE, run)
    mermaid = render_mermaid(PIPELINE, run)
    nodes = {n["name"]: n for n in json.loads(render_json(PIPELINE, run))["nodes"]}
    (dot_edge,) = [line for line in dot.splitlines() if line.startswith('  "fail" -> "slow"')]
    (mermaid_edge,) = [line for line in mermaid.splitlines() if line.startswith("  s0 -.->")]
    graphviz = subprocess.run(
        ["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=False, timeout=30
    )
    assert ("style=dotted" in dot_edge, "cancelled: stage" in dot_edge) == (True, True)
    assert mermaid_edge == (
        """  s0 -.->|"cancelled: stage 'fail' failed<br/>(error_strategy: fail)"| s1"""
    )
    assert (nodes["slow"]["cancel_reason"], nodes["slow"]["cancel_cause"]) == (REASON, "fail")
    assert (graphviz.returncode, graphviz.stderr) == (0, "")


async def test_the_live_dag_shows_the_cause_too() -> None:
    """A DagWatcher fed by engine events gives the same edge as the stored run."""
    watcher = DagWatcher()
    async with Engine(resolver=Handlers(), observers=[watcher]) as engine:
        run_id = (await (await engine.start_run(PIPELINE)).wait()).run_id
    node = watcher.snapshot(run_id).node("slow")
    assert (node.state, node.cancel_reason, node.cancel_cause) == ("cancelled", REASON, "fail")


async def test_the_api_shows_the_reason_of_a_cancelled_stage() -> None:
    """GET /api/runs?finished=true lists the ended run with the slow stage's reason and cause."""
    async with Engine(resolver=Handlers()) as engine:
        app = create_app(engine=engine)
        handle = await engine.start_run(PIPELINE)
        await handle.wait()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1",
            headers={"authorization": f"Bearer {app.state.auth.token}"},
        ) as client:
            active = (await client.get("/api/runs")).json()
            listed = (await client.get("/api/runs?finished=true")).json()
    (run,) = listed["runs"]
    (slow,) = [s for s in run["stages"] if s["stage"] == "slow"]
    assert (active["runs"], run["run_id"], slow["error"], slow["cancel_cause"]) == (
        [],
        handle.run_id,
        CANCELLED,
        "fail",
    )


@pytest.mark.slow
def test_run_output_says_why(home: Path, tmp_path: Path) -> None:
    """``taskdaemon run`` prints the reason in the progress line and the summary row."""
    path = tmp_path / "cancels.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: cancels
            error_strategy: fail
            stages:
              - name: slow
                loop: command
                command: "sh -c 'touch started; sleep 60'"
                triggers: [{manual: {approval_required: false}}]
              - name: fail
                loop: command
                command: "sh -c 'while [ ! -e started ]; do sleep 0.01; done; exit 3'"
                triggers: [{manual: {approval_required: false}}]
            """
        )
    )
    done = taskdaemon(home, "run", str(path), "--workspace", str(tmp_path / "ws"))
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("slow ")]
    (progress,) = [
        line for line in done.stderr.splitlines() if " slow " in line and "cancel" in line
    ]
    assert (done.returncode, row.split()[1], row.endswith(CANCELLED)) == (1, "cancelled", True)
    assert re.search(rf"cancelled in \S+: {re.escape(REASON)}$", progress)
