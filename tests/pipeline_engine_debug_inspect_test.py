"""What the debug session shows (``inspect``, ``state``) and its event breakpoints."""

from __future__ import annotations

import asyncio

from pipeline_engine_debug_support import chain, paused_at, session, two_paused
from pipeline_engine_support import Recorder, after, pipeline, stage
from taskdaemon.pipeline.events import BreakpointHit
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import InputMapping, OnEvent, Pipeline

# ---------------------------------------------------------------------- inspecting


async def test_inspect_resolves_the_inputs_of_a_stage_that_is_not_paused() -> None:
    """``inspect`` of a stage not paused shows its inputs as they resolve now."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("c")
        paused = await paused_at(debug, chain())
        seen = debug.inspect(paused.run_id, "b")
        debug.continue_()
    assert ({"x": 1}, []) == (seen["inputs"], seen["paused"])


async def test_inspect_shows_an_input_that_cannot_resolve_yet() -> None:
    """An input whose expression fails now is shown as not resolvable, with the reason."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, chain())
        seen = debug.inspect(paused.run_id, "b")
        debug.continue_()
    assert seen["inputs"]["x"].startswith("<not resolvable now: ")


async def test_inspect_shows_the_stage_its_status_outputs_and_instances() -> None:
    """``inspect`` of a finished stage: its name, status, outputs, one instance with one
    attempt, fired, and no approval asked."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        seen = debug.inspect(paused.run_id, "a")
        debug.continue_()
    expected = {
        "stage": "a",
        "status": "success",
        "outputs": {"x": 1},
        "instances": [{"instance": 0, "status": "success", "attempts": 1}],
        "fired": True,
        "approval": "not_requested",
    }
    assert expected == {key: seen[key] for key in expected}


async def test_inspect_shows_a_paused_stage_with_its_pause_and_triggers() -> None:
    """``inspect`` of a paused stage lists its pause and each trigger's description and state."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        seen = debug.inspect(paused.run_id, "b")
        debug.continue_()
    expected = (
        [paused.as_dict()],
        [{"index": 0, "description": "on completion of a", "state": "satisfied"}],
    )
    assert expected == (seen["paused"], seen["triggers"])


async def test_inspect_shows_an_event_trigger_as_by_event_and_the_events_waiting() -> None:
    """An ``on_event`` trigger has no state (``by event``); events not yet taken are listed."""

    async def publish(ctx: StageContext) -> None:
        for n in (1, 2):
            ctx.publish("go", {"n": n})

    p = pipeline(stage("a", emits=("go",)), stage("b", OnEvent("go")))
    async with session(handlers={"a": publish}) as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, p)
        seen = debug.inspect(paused.run_id, "b")
        debug.continue_()
    assert ("by event", [{"n": 2}]) == (seen["triggers"][0]["state"], seen["pending_events"])


async def test_inspect_of_an_event_stage_not_paused_names_its_events_input() -> None:
    """An input read from the event that starts each instance has no value outside one: it
    is shown as coming from each event, not as the CEL error of an undefined ``event``."""
    p = pipeline(
        stage("a", emits=("go",)),
        stage("b", OnEvent("go"), inputs=(InputMapping("n", "event.n"),)),
    )
    async with session(handlers={"a": publish_go}) as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, p)
        seen = debug.inspect(paused.run_id, "b")
        debug.continue_()
    assert {"n": "<from each event: event.n>"} == seen["inputs"]


async def test_inspect_of_a_finished_run_is_allowed() -> None:
    """``inspect`` reads a run that has ended."""
    async with session() as (_engine, debug):
        handle = await debug.start(chain())
        await handle.wait()
        seen = debug.inspect(handle.run_id, "c")
    assert "success" == seen["status"]


async def test_state_shows_each_stage_and_the_breakpoints_of_the_run() -> None:
    """``state`` gives the run, its pipeline, step mode, each stage's status and instances,
    and the breakpoints that apply to it."""
    async with session() as (_engine, debug):
        bp = debug.set_breakpoint("b")
        debug.set_breakpoint("b", pipeline="other")
        paused = await paused_at(debug, chain())
        state = debug.state(paused.run_id)
        debug.continue_()
    expected = {
        "run_id": paused.run_id,
        "pipeline": "p",
        "stepping": False,
        "breakpoints": [bp.as_dict()],
        "stages": {
            "a": {
                "status": "success",
                "instances": ["success"],
                "pending_events": 0,
                "approval": "not_requested",
            },
            "b": {
                "status": "paused",
                "instances": ["paused"],
                "pending_events": 0,
                "approval": "not_requested",
            },
            "c": {
                "status": "pending",
                "instances": [],
                "pending_events": 0,
                "approval": "not_requested",
            },
        },
    }
    assert expected == {key: state[key] for key in expected}


async def test_state_counts_the_slots_of_the_pipeline() -> None:
    """``state`` gives the worker slots of the run's pipeline and how many are free."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        p = pipeline(*chain().stages, concurrency=3)
        paused = await paused_at(debug, p)
        state = debug.state(paused.run_id)
        debug.continue_()
    assert {"size": 3, "free": 2} == state["slots"]


# ---------------------------------------------------------------------- event breakpoints


def two_listeners() -> Pipeline:
    """a publishes ``go`` once; b and c both listen for it."""
    return pipeline(
        stage("a", emits=("go",)),
        stage("b", OnEvent("go")),
        stage("c", OnEvent("go")),
        concurrency=3,
    )


async def publish_go(ctx: StageContext) -> None:
    """a's handler: one ``go`` event with ``n`` 1."""
    ctx.publish("go", {"n": 1})


async def test_an_event_breakpoint_of_one_stage_pauses_only_that_listener() -> None:
    """``on="event:go"`` for stage c pauses c's execution, not b's, and counts one hit."""
    recorder = Recorder()
    async with session(recorder, {"a": publish_go}) as (engine, debug):
        bp = debug.set_breakpoint("c", on="event:go")
        paused = await paused_at(debug, two_listeners())
        debug.continue_()
        await engine.get_run(paused.run_id).wait()
    hits = [(e.stage, e.reason) for e in recorder.of(BreakpointHit)]
    assert ([("c", "event go: #1 on event go (c)")], 1) == (hits, bp.hits)


async def test_an_event_breakpoint_condition_reads_the_event() -> None:
    """An event breakpoint whose ``when`` is false for the event pauses nothing."""
    async with session(handlers={"a": publish_go}) as (_engine, debug):
        debug.set_breakpoint(None, when="event.n == 2", on="event:go")
        result = await debug.execute(two_listeners())
        paused = debug.paused()
    assert (True, []) == (result.succeeded, paused)


async def test_an_event_breakpoint_of_another_type_pauses_nothing() -> None:
    """``on="event:stop"`` leaves the executions a ``go`` event starts alone."""
    async with session(handlers={"a": publish_go}) as (_engine, debug):
        debug.set_breakpoint(None, on="event:stop")
        result = await debug.execute(two_listeners())
        paused = debug.paused()
    assert (True, []) == (result.succeeded, paused)


async def test_an_event_breakpoint_of_another_run_pauses_nothing() -> None:
    """An event breakpoint of one run does not mark the events of another."""
    async with session(handlers={"a": publish_go}) as (_engine, debug):
        debug.set_breakpoint(None, on="event:go", run_id="another")
        result = await debug.execute(two_listeners())
        paused = debug.paused()
    assert (True, []) == (result.succeeded, paused)


async def test_an_event_breakpoint_pauses_the_events_of_a_later_run_too() -> None:
    """After a run whose event was marked has ended, the next run's event is marked again."""
    async with session(handlers={"a": publish_go}) as (engine, debug):
        debug.set_breakpoint("b", on="event:go")
        stages = []
        for _ in range(2):
            paused = await paused_at(debug, two_listeners())
            stages.append(paused.stage)
            debug.continue_()
            await engine.get_run(paused.run_id).wait()
    assert ["b", "b"] == stages


async def test_an_event_breakpoint_condition_reads_the_request_stages_inputs_and_error() -> None:
    """An event breakpoint's ``when`` sees the request, the stages, no inputs and no error."""
    when = "request.n == 1 && stages.a.status == 'running' && size(inputs) == 0 && error == ''"
    async with session(handlers={"a": publish_go}) as (_engine, debug):
        debug.set_breakpoint("b", when=when, on="event:go")
        paused = await paused_at(debug, two_listeners(), request={"n": 1})
        debug.continue_()
    assert ("b", "event go: #1 on event go (b) if " + when) == (paused.stage, paused.reason)


async def test_inspect_shows_the_pauses_of_its_own_run_only() -> None:
    """With two runs paused at the same stage, ``inspect`` of one lists its own pause."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        first = await paused_at(debug, chain())
        await paused_at(debug, chain())
        seen = debug.inspect(first.run_id, "b")
        debug.continue_()
    assert [first.as_dict()] == seen["paused"]


async def test_inspect_resolves_an_input_from_the_request() -> None:
    """An input read from the request is resolved for a stage that is not paused."""
    p = pipeline(stage("a"), stage("b", *after("a"), inputs=(InputMapping("n", "request.n"),)))
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, p, request={"n": 3})
        seen = debug.inspect(paused.run_id, "b")
        debug.continue_()
    assert {"n": 3} == seen["inputs"]


async def test_inspect_shows_an_upstream_stage_that_waits_as_waiting() -> None:
    """While a runs, ``inspect`` of c shows its upstream b (which waits for a) as waiting."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def hold(ctx: StageContext) -> None:
        started.set()
        await release.wait()

    async with session(handlers={"a": hold}) as (_engine, debug):
        handle = await debug.start(chain())
        await started.wait()
        seen = debug.inspect(handle.run_id, "c")
        release.set()
        await handle.wait()
    assert {"b": {"status": "waiting", "outputs": {}}} == seen["upstream"]


async def test_an_event_breakpoint_counts_each_execution_it_pauses() -> None:
    """An event breakpoint that pauses the executions of two events has two hits."""

    async def publish_two(ctx: StageContext) -> None:
        ctx.publish("go", {"n": 1})
        ctx.publish("go", {"n": 2})

    p = pipeline(stage("a", emits=("go",)), stage("b", OnEvent("go"), parallel_instances=2))
    async with session(handlers={"a": publish_two}) as (_engine, debug):
        bp = debug.set_breakpoint("b", on="event:go")
        handle = await two_paused(debug, p)
        debug.continue_()
        await handle.wait()
    assert 2 == bp.hits
