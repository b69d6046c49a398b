"""The live view's rows and table (``visualization/_terminal``), from run records and live
runs in process: fan-out progress, elapsed times, what a stage waits for, plain lines of
changes, names escaped, a failed stage's error, and the table fitted to a narrow or short
terminal."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import pytest

from pipeline_engine_support import Resolver
from pipeline_visualization_support import feature_delivery
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnCondition,
    Pipeline,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.visualization import dag_snapshot, watch_run
from taskdaemon.pipeline.visualization._terminal import (
    _fit,
    changes,
    render_table,
    stage_rows,
    summary_line,
)


def attempt(stage: str, instance: int, start: float, end: float | None) -> AttemptRecord:
    """A first attempt of one instance, ``success`` once it ended."""
    status = "running" if end is None else "success"
    return AttemptRecord(f"{stage}.{instance}", instance, 1, status, start, end)


def _fan_out_run() -> RunRecord:
    """A run of feature_delivery whose ``implementation`` stage has three instances, two
    ended, and whose ``release`` has not started."""
    t0 = 1_700_000_000.0
    return RunRecord(
        run_id="ab" * 16,
        pipeline="feature_delivery",
        status="running",
        start=t0,
        end=None,
        stages=(
            StageRecord("planning", "plan", "success", (attempt("planning", 0, t0, t0 + 1),)),
            StageRecord(
                "specification", "spec", "success", (attempt("specification", 0, t0 + 1, t0 + 2),)
            ),
            StageRecord(
                "implementation",
                "phase",
                "running",
                (
                    attempt("implementation", 0, t0 + 2, t0 + 5),
                    attempt("implementation", 1, t0 + 2, t0 + 6),
                    attempt("implementation", 2, t0 + 2, None),
                ),
            ),
        ),
        edges=(),
    )


def test_rows_show_fan_out_progress_elapsed_time_and_waits() -> None:
    """A fan-out shows instances ended/started, a running stage its time so far, a pending
    stage the upstream and condition it waits for, then (mode ``all``) its approval."""
    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    rows = {row.stage: row for row in stage_rows(snapshot, now=1_700_000_010.0)}
    implementation = rows["implementation"]
    assert ("running", "2/3", 8.0) == (
        implementation.state,
        implementation.progress,
        implementation.elapsed,
    )
    planning = rows["planning"]
    assert ("success", "", 1.0) == (planning.state, planning.progress, planning.elapsed)
    release = rows["release"]
    assert ("pending", None) == (release.state, release.elapsed)
    # Cut to 60 columns: the approval, asked for once the others held, is the part that goes.
    assert release.waiting_for.startswith("implementation, condition size(")
    assert release.waiting_for.endswith("…")


async def _waits_of_c_while_a_runs(go: int) -> str:
    """What stage c (mode all: a's completion and the condition ``request.go == 1``) waits
    for while a runs, in a real engine's run with ``go`` in its request."""
    gate = asyncio.Event()

    async def blocked(ctx: StageContext) -> dict[str, Any]:
        await gate.wait()
        return {}

    triggers = (OnCompletion("a"), OnCondition("request.go == 1"))
    pipeline = Pipeline(
        "held",
        (
            Stage("a", "python", (Manual(),)),
            Stage("c", "python", triggers, trigger_mode=TriggerMode.ALL),
        ),
    )
    waits = ""
    async with Engine(resolver=Resolver({"a": blocked})) as engine:
        stream = watch_run(engine)
        await engine.start_run(pipeline, {"go": go})
        async for snapshot in stream:
            if (snapshot.node("a").state, snapshot.node("c").state) == ("running", "waiting"):
                waits = {r.stage: r for r in stage_rows(snapshot, 0.0)}["c"].waiting_for
                gate.set()
    return waits


async def _waits_of_deploy(mode: TriggerMode) -> list[str]:
    """What deploy (a's completion and an approval, in ``mode``) waits for before it starts,
    each distinct wait in turn, in a real engine's run: a runs until deploy's wait was seen,
    and deploy is approved once its approval is all it waits for."""
    gate = asyncio.Event()

    async def blocked(ctx: StageContext) -> dict[str, Any]:
        await gate.wait()
        return {}

    triggers = (OnCompletion("a"), Manual(approval_required=True))
    pipeline = Pipeline(
        "held",
        (
            Stage("a", "python", (Manual(),)),
            Stage("deploy", "python", triggers, trigger_mode=mode),
        ),
    )
    waits: dict[str, None] = {}
    async with Engine(resolver=Resolver({"a": blocked})) as engine:
        stream = watch_run(engine)
        handle = await engine.start_run(pipeline)
        async for snapshot in stream:
            row = {r.stage: r for r in stage_rows(snapshot, 0.0)}["deploy"]
            wait = row.waiting_for if row.state in ("pending", "waiting") else ""
            waits.update({wait: None} if wait else {})
            if snapshot.node("a").state == "running" and wait:
                gate.set()
            if wait == "approval" and snapshot.node("a").state == "success":
                handle.approve("deploy", by="test")
    return list(waits)


async def test_in_mode_all_an_approval_is_waited_for_after_the_other_triggers() -> None:
    """Mode ``all`` asks for the approval once a ended (docs/architecture.md, "Run
    semantics"): deploy waits for a, then approval, then for the approval alone. Mode ``any``
    asks for it at once, and a's end fires deploy without it: the approval comes first."""
    assert (["a, then approval", "approval"], ["approval, a"]) == (
        await _waits_of_deploy(TriggerMode.ALL),
        await _waits_of_deploy(TriggerMode.ANY),
    )


async def test_a_trigger_that_already_holds_is_not_listed_as_waited_for() -> None:
    """A condition found true while the upstream still runs is no longer waited for: the row
    listed it all the same, read as "still waiting for it". One not true yet still is."""
    assert ("a", "a, condition request.go == 1") == (
        await _waits_of_c_while_a_runs(1),
        await _waits_of_c_while_a_runs(2),
    )


def test_a_wait_on_a_cjk_condition_is_cut_in_screen_columns() -> None:
    """A condition comparing with a CJK string is cut to 60 terminal columns (each CJK
    character takes two), not 60 characters."""
    from taskdaemon.pipeline.model import OnCondition, Pipeline, Stage
    from taskdaemon.pipeline.table_fit import text_columns

    title = "数据仓库刷新失败磁盘空间不足请联系管理员清理空间后再重试cafe\u0301"
    expression = f'stages.specification.outputs.title == "{title}"'
    release = Stage("release", "command", (OnCondition(expression),))
    pipeline = Pipeline(name="p", stages=(*feature_delivery().stages[:3], release))
    snapshot = dag_snapshot(pipeline, _fan_out_run())
    rows = {row.stage: row for row in stage_rows(snapshot, now=1_700_000_010.0)}
    waiting = rows["release"].waiting_for
    assert (True, True) == (text_columns(waiting) in (59, 60), waiting.endswith("…")), waiting


def test_plain_lines_say_each_change_once() -> None:
    """The fallback writes one line per stage whose state changed, none for unchanged ones."""
    first = dag_snapshot(feature_delivery(), _fan_out_run())
    assert [
        "planning: success, 1.0s",
        "specification: success, 1.0s",
        "implementation: running, instances 2/3",
    ] == changes(None, first, 1_700_000_010.0)
    assert [] == changes(first, first, 1_700_000_011.0)


def test_names_from_a_span_source_are_shown_escaped() -> None:
    """A run read from a span source (an OTLP JSON file, Tempo) names its pipeline and stages
    with anyone's text: ESC in them reached the terminal through ``watch``'s lines."""
    t0 = 1_700_000_000.0
    stage = "a\x1b]0;title\x07"
    run = RunRecord(
        "ab" * 16,
        "p\x1b[2J\u202e",
        "success",
        t0,
        t0 + 1,
        (StageRecord(stage, "command", "success", (attempt(stage, 0, t0, t0 + 1),)),),
        (),
    )
    lines = changes(None, dag_snapshot(None, run), t0 + 2)
    assert [
        "a\\x1b]0;title\\x07: success, 1.0s",
        f"run {'ab' * 16} of p\\x1b[2J\\u202e: success, 1.0s, 1/1 stage done",
    ] == lines


@pytest.mark.parametrize("width", [80, 56, 40])
def test_a_narrow_terminal_cuts_the_free_text_columns_only(width: int) -> None:
    """However narrow the terminal, every state, elapsed time and instance count is whole and
    each stage is one line: the waits, then the stage names, are cut with an ellipsis."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=width, record=True, force_terminal=False, file=io.StringIO())
    console.print(render_table(snapshot, 1_700_000_010.0))
    lines = console.export_text().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("STAGE")) :]
    assert ["STAGE", "STATE", "ELAPSED", "INST"] == table[0].split()[:4]
    cells = [line.split() for line in table[1:]]
    expected = [["success", "1.0s"], ["success", "1.0s"], ["running", "8.0s", "2/3"], "pending"]
    assert (expected, True, True) == (
        [*(row[1:] for row in cells[:3]), cells[3][1]],
        all(len(line) <= width for line in lines),
        table[4].rstrip().endswith("…"),
    )
    names = ("planning", "specification", "implementation", "release")
    assert all(
        cell == name or (cell.endswith("…") and name.startswith(cell[:-1]))
        for cell, name in zip((row[0] for row in cells), names, strict=True)
    )


def test_a_short_terminal_keeps_the_active_stages() -> None:
    """Cut to fewer rows than stages, the table keeps running stages and counts the rest."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=100, record=True, force_terminal=False)
    console.print(render_table(snapshot, 1_700_000_010.0, height=5))
    text = console.export_text()
    assert "implementation" in text
    assert re.search(r"… \d+ more stages \(.*pending", text)


@pytest.mark.parametrize("height", [6, 7])
def test_a_wrapped_summary_takes_its_lines_from_the_stage_rows(height: int) -> None:
    """On a short, narrow terminal the summary wraps; the frame still fits in ``height`` lines,
    the count of the stages left out last, in view (a summary counted as one line pushed it
    off the screen)."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=40, record=True, force_terminal=False, file=io.StringIO())
    console.print(render_table(snapshot, 1_700_000_010.0, height=height, width=40))
    lines = console.export_text().splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("STAGE"))
    assert (True, len(lines), True) == (
        heading > 1,
        height,
        lines[-1].startswith("… ") and "more stages" in lines[-1],
    ), lines


def test_a_short_terminal_shows_running_stages_before_queued_ones() -> None:
    """With more stages queued than the terminal has rows, the running and failed stages are
    the ones shown (in DAG order), and the queued ones are counted: a wide pipeline's workers
    stay in view."""

    def stage(name: str, status: str) -> StageRecord:
        attempt = AttemptRecord(f"{name}.0.1", 0, 1, status, start=1.0, end=None)
        return StageRecord(name, "work", status, attempts=(attempt,))

    names = [("q1", "queued"), ("q2", "queued"), ("failed", "failure"), ("q3", "queued")]
    run = RunRecord(
        run_id="r" * 32,
        pipeline="p",
        status="running",
        start=0.0,
        end=None,
        stages=(*(stage(n, s) for n, s in names), stage("busy", "running")),
        edges=(),
    )
    rows, more = _fit(stage_rows(dag_snapshot(None, run), 5.0), 3)
    expected = ([("failed", "failure"), ("busy", "running")], "… 3 more stages (3 queued)")
    assert expected == ([(r.stage, r.state) for r in rows], more)


def _failed_run() -> RunRecord:
    """A run of feature_delivery whose ``specification`` failed (its error on two lines) and
    whose ``implementation`` was skipped for it."""
    t0 = 1_700_000_000.0
    failed = AttemptRecord(
        "specification.0", 0, 1, "failure", t0 + 1, t0 + 2, error="schema invalid:\n  id missing"
    )
    return RunRecord(
        run_id="cd" * 16,
        pipeline="feature_delivery",
        status="running",
        start=t0,
        end=None,
        stages=(
            StageRecord("planning", "plan", "success", (attempt("planning", 0, t0, t0 + 1),)),
            StageRecord("specification", "spec", "failure", (failed,)),
            StageRecord("implementation", "phase", "skipped", skip_reason="upstream failed"),
        ),
        edges=(),
    )


def test_a_failed_stage_shows_its_error_and_a_skipped_one_why_while_the_run_goes() -> None:
    """Rows carry a failed stage's error on one line and a skipped stage's reason, before the
    run has ended; a stage that succeeded carries none."""
    snapshot = dag_snapshot(feature_delivery(), _failed_run())
    rows = {row.stage: row for row in stage_rows(snapshot, now=1_700_000_010.0)}
    expected = ("schema invalid: id missing", "upstream failed", "")
    assert expected == (
        rows["specification"].error,
        rows["implementation"].error,
        rows["planning"].error,
    )


def test_the_table_and_the_plain_lines_show_a_failed_stage_error() -> None:
    """The live table shows the error in the stage's row; the plain line of its change ends
    with it."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _failed_run())
    console = Console(width=120, record=True, force_terminal=False)
    console.print(render_table(snapshot, 1_700_000_010.0))
    row = next(line for line in console.export_text().splitlines() if "specification" in line)
    lines = changes(None, snapshot, 1_700_000_010.0)
    expected = (True, "specification: failure, 1.0s, schema invalid: id missing")
    assert expected == (row.rstrip().endswith("schema invalid: id missing"), lines[1])


@pytest.mark.parametrize("width", [79, 56, 40])
def test_the_summary_wraps_between_words_without_a_trailing_blank(width: int) -> None:
    """The summary over the table, wider than the terminal, wraps between words, its later
    lines indented by four, and no line ends in the blank where it broke (``rich`` left one:
    ``4/5 `` over ``stages done``)."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=width, record=True, force_terminal=False, file=io.StringIO())
    console.print(render_table(snapshot, 1_700_000_010.0, width=width))
    lines = console.export_text().splitlines()
    heading = lines[: next(i for i, line in enumerate(lines) if line.startswith("STAGE"))]
    words = summary_line(snapshot, 1_700_000_010.0).split(" ")
    assert (True, [], words) == (
        len(heading) > 1,
        [line for line in heading if line.endswith(" ") or len(line) > width],
        " ".join(heading).split(),
    ), heading
