"""The debugger's requests (``debug_ops.py``) with several runs on one engine: each action
(``continue``, ``skip``, ``retry``, ``set``, ``detach``, ``delete``, ``wait``) acts on its own
run only, even where another run paused at the same stage first."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline_debug_ops_support import Hits, debugged_runs
from pipeline_engine_support import fail


async def test_continue_resumes_this_runs_pauses_only() -> None:
    """``continue`` resumes the pause of its own run, not another run's at the same stage."""
    async with debugged_runs(2) as (mine, other):
        await other.paused_at("a")
        await mine.paused_at("a")
        answer = await mine.ops({"action": "continue"})
        await mine.handle.wait()
        left = [p.run_id for p in mine.session.paused()]
    assert ({"ok": True, "resumed": 1}, [other.run_id]) == (answer, left)


async def test_set_overrides_this_runs_input_only() -> None:
    """``set`` changes the input of its own run's paused stage, not another run's."""
    seen: list[Any] = []

    async def a(ctx: Any) -> None:
        seen.append(ctx.inputs["n"])

    async with debugged_runs(2, handlers={"a": a}) as (mine, other):
        await other.paused_at("a")
        await mine.paused_at("a")
        await mine.ops({"action": "set", "stage": "a", "input": "n", "value": 7})
        await mine.ops({"action": "continue"})
        await mine.handle.wait()
        await other.ops({"action": "continue"})
        await other.handle.wait()
    assert [7, 1] == seen


async def test_detach_resumes_this_run_only() -> None:
    """``detach`` resumes its own run and leaves another run paused."""
    async with debugged_runs(2) as (mine, other):
        await other.paused_at("a")
        await mine.paused_at("a")
        answer = await mine.ops({"action": "detach", "client": "me"})
        await mine.handle.wait()
        left = [p.run_id for p in mine.session.paused()]
    assert ({"ok": True, "deleted": 0, "resumed": 1}, [other.run_id]) == (answer, left)


async def test_a_prompts_detach_deletes_only_its_breakpoints_in_this_run() -> None:
    """A prompt's ``detach`` leaves the breakpoints another run's prompt of the same name set
    through that run's DebugOps."""
    async with debugged_runs(2) as (mine, other):
        await other.ops({"action": "break", "stage": "a", "client": "me"})
        await mine.ops({"action": "break", "stage": "a", "client": "me"})
        answer = await mine.ops({"action": "detach", "client": "me"})
        left = [bp.run_id for bp in mine.session.breakpoints()]
    assert ({"ok": True, "deleted": 1, "resumed": 0}, [other.run_id]) == (answer, left)


async def test_delete_without_id_leaves_other_runs_breakpoints() -> None:
    """``delete`` without an id deletes this run's breakpoints only."""
    async with debugged_runs(2) as (mine, other):
        await other.ops({"action": "break", "stage": "a"})
        await mine.ops({"action": "break", "stage": "a"})
        answer = await mine.ops({"action": "delete"})
        left = [bp.run_id for bp in mine.session.breakpoints()]
    assert ({"ok": True, "deleted": 1}, [other.run_id]) == (answer, left)


async def test_wait_answers_this_runs_pauses_only() -> None:
    """``wait`` lists the pauses of its own run, not another run's."""
    async with debugged_runs(2) as (mine, other):
        await other.paused_at("a")
        answer = await mine.ops({"action": "wait", "timeout": 0})
    assert [] == answer["paused"]


async def test_wait_is_not_ended_by_another_runs_pause() -> None:
    """``wait`` goes on while only another run is paused (and that run then ends), and
    returns with its own run's pause."""
    async with debugged_runs(2) as (mine, other):
        await other.paused_at("a")
        await mine.ops({"action": "break", "stage": "a"})
        waiting = asyncio.ensure_future(mine.ops({"action": "wait"}))
        await mine.ops({"action": "sync"})  # a round trip to a thread: the wait has begun
        await other.ops({"action": "continue"})
        await other.handle.wait()
        ended_early = waiting.done()
        mine.release()
        answer = await waiting
    assert (False, [mine.run_id]) == (ended_early, [p["run_id"] for p in answer["paused"]])


async def test_skip_skips_this_runs_pause_not_one_paused_before_it() -> None:
    """``skip`` of a stage skips its own run's pause, though another run paused there first."""
    async with debugged_runs(2) as (mine, other):
        await other.paused_at("a")
        await mine.paused_at("a")
        answer = await mine.ops({"action": "skip", "stage": "a"})
    assert mine.run_id == answer["resumed"]["run_id"]


async def test_retry_retries_this_runs_failure_not_one_paused_before_it() -> None:
    """``retry`` of a stage retries its own run's failed execution, though another run paused
    at the same failure first."""
    async with debugged_runs(2, handlers={"a": fail}) as (mine, other):
        for run in (other, mine):
            hits = Hits(run.run_id, 1)
            run.engine.add_observer(hits)
            await run.ops({"action": "break", "stage": "a", "on": "failure"})
            run.release()
            await hits.reached.wait()
        answer = await mine.ops({"action": "retry", "stage": "a"})
    assert mine.run_id == answer["resumed"]["run_id"]
