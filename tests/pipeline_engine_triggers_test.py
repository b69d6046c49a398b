"""Engine triggers: completion, events and fan-out, conditions, approvals, ANY/ALL, slots."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline_engine_support import (
    FakeSleep,
    Recorder,
    Resolver,
    after,
    entry,
    fail,
    pipeline,
    stage,
)
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    StageSkipped,
    StageStarted,
    TriggerEvaluated,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    InputMapping,
    Manual,
    OnCondition,
    OnEvent,
    TriggerMode,
)
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)

ALL = TriggerMode.ALL
APPROVAL = Manual(approval_required=True)


async def turns(n: int = 20) -> None:
    """Let the event loop run every ready callback a few times (no wall-clock wait)."""
    for _ in range(n):
        await asyncio.sleep(0)


class Gauge:
    """A handler that counts how many of its calls run at once, blocked until released."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, ctx: StageContext) -> dict[str, Any]:
        self.running += 1
        self.calls += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return {"instance": ctx.instance}


async def test_on_completion_success_only_skips_after_a_failure() -> None:
    """success_only stages are skipped when the upstream failed; any-result stages run."""
    p = pipeline(
        stage("a"),
        stage("strict", *after("a")),
        stage("lenient", *after("a", success_only=False)),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    recorder = Recorder()
    async with Engine(resolver=Resolver({"a": fail}), observers=[recorder]) as engine:
        result = await engine.run(p)
    assert StageStatus.SKIPPED == result.stage_status["strict"]
    assert StageStatus.SUCCESS == result.stage_status["lenient"]
    (skipped,) = recorder.of(StageSkipped)
    assert "triggers can no longer fire: on completion of a" == skipped.reason


async def test_mode_all_waits_for_every_upstream() -> None:
    """trigger_mode all starts the stage only after all its upstream stages succeeded."""
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}
    started: list[str] = []

    async def handler(ctx: StageContext) -> None:
        started.append(ctx.stage)
        if ctx.stage in gates:
            await gates[ctx.stage].wait()

    p = pipeline(stage("a"), stage("b"), stage("join", *after("a", "b"), trigger_mode=ALL))
    async with Engine(resolver=Resolver({"python": handler})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        gates["a"].set()
        await turns()
        assert ["a", "b"] == sorted(started)
        gates["b"].set()
        result = await handle.wait()
    assert ["a", "b", "join"] == sorted(started)
    assert "join" == started[-1]
    assert RunStatus.SUCCESS == result.status


async def test_mode_any_fires_on_the_first_upstream() -> None:
    """trigger_mode any starts the stage when the first upstream succeeds, and only once."""
    gate = asyncio.Event()
    started: list[str] = []

    async def slow(ctx: StageContext) -> None:
        await gate.wait()

    async def record(ctx: StageContext) -> None:
        started.append(ctx.stage)

    p = pipeline(stage("fast"), stage("slow"), stage("either", *after("fast", "slow")))
    resolver = Resolver({"slow": slow, "either": record})  # type: ignore[dict-item]
    async with Engine(resolver=resolver) as engine:
        handle = await engine.start_run(p)
        await turns()
        assert ["either"] == started
        gate.set()
        result = await handle.wait()
    assert ["either"] == started
    assert 1 == len(result.executions["either"])


async def test_started_names_the_satisfied_triggers_in_their_order() -> None:
    """``StageStarted.triggers``: every non-event trigger when all are satisfied (mode all),
    only the satisfied ones when the stage fires on some (mode any), in trigger order."""
    gate = asyncio.Event()

    async def slow(ctx: StageContext) -> None:
        await gate.wait()

    p = pipeline(
        stage("a"),
        stage("slow"),
        stage("join", *after("slow", "a"), trigger_mode=ALL),
        stage("either", *after("slow", "a")),
    )
    recorder = Recorder()
    resolver = Resolver({"slow": slow})  # type: ignore[dict-item]
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        handle = await engine.start_run(p)
        await turns()
        gate.set()
        await handle.wait()
    started = {e.stage: e.triggers for e in recorder.of(StageStarted)}
    assert ("on completion of slow", "on completion of a") == started["join"]
    assert ("on completion of a",) == started["either"]


async def test_on_condition_fires_when_it_becomes_true() -> None:
    """An on_condition stage starts once the stages it reads make the expression true."""

    async def count(ctx: StageContext) -> dict[str, int]:
        return {"n": 2}

    p = pipeline(
        stage("a"),
        stage("big", OnCondition("stages.a.outputs.n > 1")),
        stage("huge", OnCondition("stages.a.outputs.n > 5")),
    )
    recorder = Recorder()
    async with Engine(resolver=Resolver({"a": count}), observers=[recorder]) as engine:
        result = await engine.run(p)
    assert StageStatus.SUCCESS == result.stage_status["big"]
    assert StageStatus.SKIPPED == result.stage_status["huge"]
    assert (
        "triggers can no longer fire: on condition stages.a.outputs.n > 5"
        == (result.skip_reasons["huge"])
    )
    details = [e.detail for e in recorder.of(TriggerEvaluated) if e.stage == "big"]
    assert details[0].startswith("error: ")  # before a finished: no such key, counted false
    assert "value: True" == details[-1]


async def test_on_condition_reads_the_request() -> None:
    """A condition over the request alone is evaluated when the run starts."""
    p = pipeline(
        stage("yes", OnCondition("request.go == true")),
        stage("no", OnCondition("request.go == false")),
    )
    async with Engine(resolver=Resolver()) as engine:
        result = await engine.run(p, {"go": True})
    assert (StageStatus.SUCCESS, StageStatus.SKIPPED) == (
        result.stage_status["yes"],
        result.stage_status["no"],
    )


async def test_a_skip_reason_quoting_a_condition_names_its_secrets_redacted() -> None:
    """A stage skipped because its condition can no longer hold is skipped with a reason that
    quotes the condition, and the condition's error: both may name a secret (a token compared
    with its literal, a request value quoted by CEL's error). The reason observers, the run's
    result, ``run``'s lines and the live ``/api`` get is redacted, as the stored one was."""
    p = pipeline(
        stage("a"),
        stage("b", OnCondition("request.api_key == 'Lit3ralSecret-99' && stages.a.status == ''")),
        stage("c", OnCondition("duration(request.password) > duration('1s')")),
    )
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        result = await engine.run(p, {"api_key": "other", "password": "Pa55-Given-4411"})
    reasons = [e.reason for e in recorder.events if isinstance(e, StageSkipped)]
    shown = " ".join([*reasons, *result.skip_reasons.values()])
    assert (2, True, False, False) == (
        len(reasons),
        "[REDACTED]" in shown,
        "Lit3ralSecret" in shown,
        "Pa55-Given" in shown,
    ), shown


async def test_on_event_filter_selects_events_and_event_feeds_inputs() -> None:
    """Only events whose filter holds start instances; event.* is visible to inputs."""
    seen: list[int] = []

    async def emitter(ctx: StageContext) -> None:
        for n in range(5):
            ctx.publish("item", {"n": n})

    async def consumer(ctx: StageContext) -> None:
        seen.append(ctx.inputs["n"])

    p = pipeline(
        stage("src", emits=("item",)),
        stage(
            "even",
            OnEvent("item", "event.n % 2 == 0"),
            parallel_instances=10,
            inputs=(InputMapping("n", "event.n"),),
        ),
    )
    resolver = Resolver({"src": emitter, "even": consumer})  # type: ignore[dict-item]
    async with Engine(resolver=resolver) as engine:
        result = await engine.run(p)
    assert [0, 2, 4] == seen
    assert 3 == len(result.executions["even"])
    assert StageStatus.SUCCESS == result.stage_status["even"]


async def test_event_whose_filter_fails_to_evaluate_starts_nothing() -> None:
    """An event the filter cannot be evaluated on (the field it reads is missing) is rejected,
    not accepted: only the event whose filter holds starts an instance."""
    seen: list[Any] = []

    async def emitter(ctx: StageContext) -> None:
        for payload in ({"n": 1}, {"other": 9}, {"n": 4}):
            ctx.publish("item", payload)

    async def consumer(ctx: StageContext) -> None:
        seen.append(ctx.inputs["event"])

    p = pipeline(
        stage("src", emits=("item",)),
        stage(
            "big",
            OnEvent("item", "event.n > 2"),
            parallel_instances=10,
            inputs=(InputMapping("event", "event"),),
        ),
    )
    resolver = Resolver({"src": emitter, "big": consumer})  # type: ignore[dict-item]
    recorder = Recorder()
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        result = await engine.run(p)
    started = [e.triggers for e in recorder.of(StageStarted) if e.stage == "big"]
    assert ([{"n": 4}], 1, [("on event item if event.n > 2",)]) == (
        seen,
        len(result.executions["big"]),
        started,
    )


async def test_condition_reading_the_whole_stages_map_fires_when_it_holds(
    cel_worker: None,
) -> None:
    """A condition over every stage (``stages.all(...)``, not one named stage) sees the whole,
    current map: it fires only after every other stage succeeded."""
    p = pipeline(
        stage("a"),
        stage("b", *after("a")),
        stage(
            "last",
            OnCondition(
                "size(stages) == 3 && stages.all(s, s == 'last' || stages[s].status == 'success')"
            ),
        ),
    )
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        result = await engine.run(p)
    details = [e.detail for e in recorder.of(TriggerEvaluated) if e.stage == "last"]
    assert (["a", "b", "last"], "value: False", "value: True", RunStatus.SUCCESS) == (
        [e.stage for e in recorder.of(StageStarted)],
        details[0],
        details[-1],
        result.status,
    )


async def test_parallel_instances_bound_is_observed() -> None:
    """At most parallel_instances instances of an event stage run at once; the rest wait."""
    gauge = Gauge()

    async def emitter(ctx: StageContext) -> None:
        for n in range(6):
            ctx.publish("job", {"n": n})

    p = pipeline(
        stage("src", emits=("job",)),
        stage("work", OnEvent("job"), parallel_instances=2),
        concurrency=8,
    )
    async with Engine(resolver=Resolver({"src": emitter, "work": gauge})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        await turns()
        assert (2, 2) == (gauge.running, gauge.calls)
        gauge.release.set()
        result = await handle.wait()
    assert (2, 6) == (gauge.peak, gauge.calls)
    assert list(range(6)) == [e.instance for e in result.executions["work"]]


async def test_concurrency_bound_is_observed() -> None:
    """No more than pipeline.concurrency executions of a run hold a worker slot at once."""
    gauge = Gauge()
    p = pipeline(*(stage(f"s{i}") for i in range(7)), concurrency=3)
    async with Engine(resolver=Resolver({"python": gauge})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        await turns()
        assert 3 == gauge.running
        gauge.release.set()
        await handle.wait()
    assert (3, 7) == (gauge.peak, gauge.calls)


async def test_event_stage_without_events_is_skipped() -> None:
    """An on_event stage whose emitters finished without publishing is skipped."""
    p = pipeline(stage("src", emits=("x",)), stage("sink", OnEvent("x")))
    async with Engine(resolver=Resolver()) as engine:
        result = await engine.run(p)
    assert StageStatus.SKIPPED == result.stage_status["sink"]
    assert "no event arrived" == result.skip_reasons["sink"]
    assert RunStatus.SUCCESS == result.status


async def test_external_events_feed_a_stage_while_the_run_is_open() -> None:
    """Events published from outside start instances while something keeps the run open."""
    gate = asyncio.Event()

    async def blocker(ctx: StageContext) -> None:
        await gate.wait()

    p = pipeline(stage("hold"), stage("react", OnEvent("ping")), external_events=("ping",))
    async with Engine(resolver=Resolver({"hold": blocker})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        engine.publish(handle.run_id, "ping", {"k": 1})
        handle.publish("ping", {"k": 2})
        gate.set()
        result = await handle.wait()
    assert 2 == len(result.executions["react"])
    assert StageStatus.SUCCESS == result.stage_status["react"]


async def test_approval_approve_starts_the_stage() -> None:
    """approve() fires a stage that waits for approval; ApprovalResolved records who."""
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        handle = await engine.start_run(pipeline(stage("gate", APPROVAL)))
        assert [("gate", None)] == [(e.stage, e.timeout) for e in recorder.of(ApprovalRequested)]
        assert not handle.done
        handle.approve("gate", by="alice")
        result = await handle.wait()
    assert StageStatus.SUCCESS == result.stage_status["gate"]
    (resolved,) = recorder.of(ApprovalResolved)
    assert (True, "alice", False) == (resolved.approved, resolved.by, resolved.timed_out)


async def test_approval_reject_skips_the_stage_and_its_dependents() -> None:
    """reject() skips the stage and every stage that needed it."""
    async with Engine(resolver=Resolver()) as engine:
        handle = await engine.start_run(
            pipeline(stage("gate", APPROVAL), stage("after", *after("gate")), stage("free"))
        )
        engine.reject(handle.run_id, "gate", by="bob")
        result = await handle.wait()
    assert {
        "gate": StageStatus.SKIPPED,
        "after": StageStatus.SKIPPED,
        "free": StageStatus.SUCCESS,
    } == dict(result.stage_status)
    assert "approval rejected by bob" == result.skip_reasons["gate"]
    assert RunStatus.SUCCESS == result.status


async def test_approval_timeout_rejects_with_timed_out() -> None:
    """An approval timeout, counted with the injected sleep, rejects with timed_out=True."""
    sleep = FakeSleep()
    recorder = Recorder()
    p = pipeline(stage("gate", Manual(approval_required=True, timeout=90)))
    async with Engine(resolver=Resolver(), observers=[recorder], sleep=sleep) as engine:
        result = await engine.run(p)
    assert [90] == sleep.delays
    (resolved,) = recorder.of(ApprovalResolved)
    assert (False, True) == (resolved.approved, resolved.timed_out)
    assert "approval timed out after 90s" == result.skip_reasons["gate"]


async def test_mode_all_requests_approval_only_after_other_triggers() -> None:
    """In mode all the approval is requested once the other triggers are satisfied."""
    gate = asyncio.Event()
    recorder = Recorder()

    async def slow(ctx: StageContext) -> None:
        await gate.wait()

    p = pipeline(stage("build"), stage("release", *after("build"), APPROVAL, trigger_mode=ALL))
    async with Engine(resolver=Resolver({"build": slow}), observers=[recorder]) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        await turns()
        assert [] == recorder.of(ApprovalRequested)
        gate.set()
        await turns()
        assert ["release"] == [e.stage for e in recorder.of(ApprovalRequested)]
        handle.approve("release")
        result = await handle.wait()
    assert StageStatus.SUCCESS == result.stage_status["release"]


async def test_approving_twice_is_an_approval_error() -> None:
    """A second approval of the same stage raises ApprovalError."""
    from taskdaemon.pipeline.errors import ApprovalError

    gate = asyncio.Event()

    async def slow(ctx: StageContext) -> None:
        await gate.wait()

    async with Engine(resolver=Resolver({"python": slow})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(pipeline(stage("g", APPROVAL)))
        handle.approve("g")
        with pytest.raises(ApprovalError, match="approval approved"):
            handle.approve("g")
        gate.set()
        await handle.wait()


async def test_mode_any_with_entry_fires_once_and_withdraws_the_approval() -> None:
    """Mode any: the entry trigger fires the stage and its pending approval is withdrawn."""
    recorder = Recorder()
    p = pipeline(stage("a", entry(), APPROVAL))
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        result = await engine.run(p)
    assert 1 == len(result.executions["a"])
    (resolved,) = recorder.of(ApprovalResolved)
    assert (False, "engine") == (resolved.approved, resolved.by)


async def test_mode_all_event_stage_waits_for_its_gate() -> None:
    """Mode all: events wait until the stage's other triggers hold, then all run."""
    recorder = Recorder()

    async def emitter(ctx: StageContext) -> None:
        ctx.publish("e", {"n": 1})
        ctx.publish("e", {"n": 2})

    p = pipeline(
        stage("src", emits=("e",)),
        stage("sink", OnEvent("e"), APPROVAL, trigger_mode=ALL, parallel_instances=5),
    )
    async with Engine(resolver=Resolver({"src": emitter}), observers=[recorder]) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        await turns()
        assert [] == recorder.of(StageStarted)[1:]
        handle.approve("sink")
        result = await handle.wait()
    assert 2 == len(result.executions["sink"])


async def test_stage_fires_at_most_once() -> None:
    """A stage with several satisfied triggers in mode any still runs once."""
    p = pipeline(stage("a"), stage("b"), stage("c", *after("a", "b"), entry()))
    async with Engine(resolver=Resolver()) as engine:
        result = await engine.run(p)
    assert 1 == len(result.executions["c"])
