"""One stage's attempts (``engine/_attempt.py``) as their records and the run's result show
them: every field of the queued, started, retrying and finished records, the handler resolved
once a run, timeouts told apart from a handler's own TimeoutError, the pause gate's answers,
and the values a stage's inputs and outputs make secret."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from pipeline_engine_support import (
    Clock,
    FakeSleep,
    Recorder,
    Resolver,
    after,
    pipeline,
    retry,
    stage,
)
from taskdaemon.pipeline.engine import Engine, GateDecision, StageGateRequest
from taskdaemon.pipeline.events import (
    StageFinished,
    StageQueued,
    StageRetrying,
    StageStarted,
    TaskRunRef,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    InputMapping,
    OnEvent,
    OutputMapping,
    Pipeline,
    Stage,
)
from taskdaemon.pipeline.redaction import REDACTED, redact_text
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)


class FailsOnce:
    """Fails its first call with ``RuntimeError("attempt N failed")``, then returns
    ``{"attempt": N}``."""

    def __init__(self) -> None:
        self.error: RuntimeError | None = None

    async def __call__(self, ctx: StageContext) -> dict[str, Any]:
        if self.error is None:
            self.error = RuntimeError(f"attempt {ctx.attempt} failed")
            raise self.error
        return {"attempt": ctx.attempt}


async def test_the_records_of_a_retried_stage_agree_with_its_result() -> None:
    """A stage failing once under a retry policy: each record names the run, the pipeline,
    the stage, its instance, attempt and execution id, and carries the times the result
    holds for that execution."""
    handler = FailsOnce()
    recorder = Recorder()
    sleep = FakeSleep()
    p = pipeline(stage("a", retry=retry(2, initial=0.5)), name="pipe")
    engine = Engine(
        resolver=Resolver({"a": handler}), observers=[recorder], clock=Clock(), sleep=sleep
    )
    async with engine:
        result = await engine.run(p)
    first, second = result.executions["a"]
    run = result.run_id
    names = {"run_id": run, "pipeline": "pipe", "stage": "a", "instance": 0}
    queued = [
        StageQueued(**names, attempt=n, at=ex.times.queued, task_run_id=f"a.0.{n}")
        for n, ex in ((1, first), (2, second))
    ]
    started = recorder.of(StageStarted)
    triggers = started[0].triggers
    expected_started = [
        StageStarted(
            **names,
            attempt=n,
            task_run_id=f"a.0.{n}",
            loop="python",
            at=ex.times.running,
            queued_at=ex.times.queued,
            considered_at=result.started_at,
            inputs={},
            previous_attempt=previous,
            triggers=triggers,
        )
        for n, ex, previous in ((1, first, None), (2, second, TaskRunRef("a", 0, 1)))
    ]
    finished = [
        StageFinished(
            **names,
            attempt=1,
            task_run_id="a.0.1",
            status=StageStatus.FAILURE,
            at=first.times.ended,
            error="attempt 1 failed",
            error_type="RuntimeError",
            exception=handler.error,
            will_retry=True,
        ),
        StageFinished(
            **names,
            attempt=2,
            task_run_id="a.0.2",
            status=StageStatus.SUCCESS,
            at=second.times.ended,
            outputs={"attempt": 2},
        ),
    ]
    [retrying] = recorder.of(StageRetrying)
    assert (RunStatus.SUCCESS, ("on run start",), [0.5]) == (result.status, triggers, sleep.delays)
    assert queued == recorder.of(StageQueued)
    assert expected_started == started
    assert finished == recorder.of(StageFinished)
    assert (
        StageRetrying(
            **names,
            attempt=1,
            task_run_id="a.0.1",
            delay=0.5,
            error="attempt 1 failed",
            error_type="RuntimeError",
            at=retrying.at,
        )
        == retrying
    )
    assert first.times.ended < retrying.at < second.times.queued


class CountingResolver(Resolver):
    """A Resolver that notes the pipeline and stage of every ``resolve`` call."""

    def __init__(self, handlers: Mapping[str, Any]) -> None:
        super().__init__(handlers)
        self.calls: list[tuple[str, str]] = []

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        self.calls.append((pipeline.name, stage.name))
        return super().resolve(pipeline, stage)


async def test_a_stage_handler_is_resolved_once_a_run_with_its_pipeline() -> None:
    """Three attempts of one stage and one of another: the resolver is asked once per stage,
    and given the run's pipeline."""
    attempts: list[int] = []

    async def twice_failing(ctx: StageContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("not yet")

    resolver = CountingResolver({"a": twice_failing})
    p = pipeline(stage("a", retry=retry(3, initial=0)), stage("b", *after("a")), name="pipe")
    async with Engine(resolver=resolver, sleep=FakeSleep()) as engine:
        result = await engine.run(p)
    assert (RunStatus.SUCCESS, [1, 2, 3], [("pipe", "a"), ("pipe", "b")]) == (
        result.status,
        attempts,
        resolver.calls,
    )


class Unresolvable(Resolver):
    """A resolver that knows no loop."""

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        raise LookupError(f"no loop named {stage.loop}")


async def test_an_unresolvable_loop_fails_its_stage_once_naming_the_loop() -> None:
    """A loop the resolver cannot give fails the stage at once (a data error: not retried),
    and the error names the loop and the resolver's reason."""
    p = pipeline(stage("a", loop="nowhere", retry=retry(3, initial=0)))
    async with Engine(resolver=Unresolvable(), sleep=FakeSleep()) as engine:
        result = await engine.run(p)
    [only] = result.executions["a"]
    assert (
        StageStatus.FAILURE,
        "cannot resolve loop 'nowhere': no loop named nowhere",
        "PipelineError",
    ) == (only.status, only.error, only.error_type)


async def test_a_timed_out_attempt_says_after_how_long() -> None:
    """The stage's timeout ends an attempt ``timeout`` with an error naming the limit; a
    ``TimeoutError`` the handler raises itself, before its limit, is a failure."""

    async def slow(ctx: StageContext) -> None:
        await asyncio.Event().wait()

    async def own(ctx: StageContext) -> None:
        raise TimeoutError("upstream service timed out")

    p = pipeline(
        stage("slow", timeout=0.01),
        stage("own", timeout=60),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    recorder = Recorder()
    async with Engine(resolver=Resolver({"slow": slow, "own": own}), observers=[recorder]) as e:
        result = await e.run(p)
    ended = {
        name: (ex.status, ex.error, ex.error_type) for name, (ex,) in result.executions.items()
    }
    assert {
        "slow": (StageStatus.TIMEOUT, "timed out after 0.01s", "TimeoutError"),
        "own": (StageStatus.FAILURE, "upstream service timed out", "TimeoutError"),
    } == ended


@pytest.mark.parametrize(
    ("error", "text"),
    [(KeyError(), "KeyError"), (TimeoutError("service timed out"), "service timed out")],
    ids=["no-text", "own-timeout-error"],
)
async def test_a_handler_error_is_its_text_else_its_type(error: Exception, text: str) -> None:
    """A handler's exception gives its message as the error, or its type's name when it has
    none; a ``TimeoutError`` it raises in a stage without any timeout is a failure like any."""

    async def failing(ctx: StageContext) -> None:
        raise error

    async with Engine(resolver=Resolver({"a": failing})) as engine:
        result = await engine.run(pipeline(stage("a")))
    [only] = result.executions["a"]
    assert (StageStatus.FAILURE, text, type(error).__name__) == (
        only.status,
        only.error,
        only.error_type,
    )


async def test_a_stage_inputs_and_outputs_under_secret_keys_are_masked_from_then_on() -> None:
    """An input named ``api_key`` and an output named ``token``: both values are masked in any
    text after the run, and the next stage gets the output unmasked (it is the stage's data)."""
    seen: list[Any] = []

    async def issue(ctx: StageContext) -> dict[str, Any]:
        return {"token": "issued-token-4711"}

    async def use(ctx: StageContext) -> None:
        seen.append(ctx.inputs["given"])

    p = pipeline(
        stage("a", inputs=(InputMapping("api_key", "request.key"),)),
        stage("b", *after("a"), inputs=(InputMapping("given", "stages.a.outputs.token"),)),
    )
    async with Engine(resolver=Resolver({"a": issue, "b": use})) as engine:
        result = await engine.run(p, {"key": "request-key-0815"})
    shown = redact_text("request-key-0815 issued-token-4711")
    assert (RunStatus.SUCCESS, ["issued-token-4711"], f"{REDACTED} {REDACTED}") == (
        result.status,
        seen,
        shown,
    )


async def test_the_pause_gate_is_asked_about_each_execution_and_its_answers_hold() -> None:
    """The gate gets every field of the execution about to start; its answers: ``skip`` ends
    the execution skipped without its handler, ``inputs`` replace the resolved ones (a
    missing required input is then forgiven) and are secrets when under a secret key,
    ``paused`` is recorded as the execution's pause."""
    requests: list[StageGateRequest] = []
    ran: list[tuple[str, Mapping[str, Any]]] = []

    async def gate(request: StageGateRequest) -> GateDecision | None:
        requests.append(request)
        if request.stage == "a":
            return GateDecision(skip=True, paused=1.5)
        if request.stage == "b":
            return GateDecision(inputs={"password": "gate-given-secret"}, paused=2.5)
        return None

    async def record(ctx: StageContext) -> None:
        ran.append((ctx.stage, dict(ctx.inputs)))

    recorder = Recorder()
    p = pipeline(
        stage("a", loop="shell"),
        stage("b", inputs=(InputMapping("password", "request.missing"),)),
        stage("c", inputs=(InputMapping("n", "request.n"),)),
        name="pipe",
        error_strategy=ErrorStrategy.CONTINUE,
    )
    resolver = Resolver({"a": record, "b": record, "c": record})
    async with Engine(resolver=resolver, observers=[recorder], pause_gate=gate) as engine:
        result = await engine.run(p, {"n": 3})
    run = result.run_id
    asked = [
        StageGateRequest(run, "pipe", name, 0, 1, f"{name}.0.1", loop, inputs)
        for name, loop, inputs in (
            ("a", "shell", {}),
            ("b", "python", {}),
            ("c", "python", {"n": 3}),
        )
    ]
    paused = {e.stage: e.paused for e in recorder.of(StageStarted)}
    times = {name: ex.times.paused for name, (ex,) in result.executions.items()}
    assert asked == sorted(requests, key=lambda r: r.stage)
    assert [("b", {"password": "gate-given-secret"}), ("c", {"n": 3})] == sorted(ran)
    assert {"a": StageStatus.SKIPPED, "b": StageStatus.SUCCESS, "c": StageStatus.SUCCESS} == (
        dict(result.stage_status)
    )
    assert ({"b": 2.5, "c": 0.0}, {"a": 1.5, "b": 2.5, "c": 0.0}) == (paused, times)
    assert REDACTED == redact_text("gate-given-secret")


async def test_a_retry_from_a_failure_breakpoint_runs_again_at_once() -> None:
    """The debugger's ``retry`` of a failed attempt runs the next one without the policy's
    backoff, also for a stage without a retry policy, whose one failure is then not the last."""
    recorder = Recorder()
    sleep = FakeSleep()
    calls: dict[str, int] = {}
    b_called = asyncio.Event()

    async def once(ctx: StageContext) -> dict[str, int]:
        calls[ctx.stage] = calls.get(ctx.stage, 0) + 1
        if ctx.stage == "b":
            b_called.set()  # a's pause has ended: the next one is b's
        if ctx.attempt == 1:
            raise RuntimeError(f"{ctx.stage} broke")
        return {"attempt": ctx.attempt}

    p = pipeline(stage("a", retry=retry(3, initial=5.0)), stage("b", *after("a")))
    engine = Engine(resolver=Resolver({"a": once, "b": once}), observers=[recorder], sleep=sleep)
    async with engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint(None, on="failure")
        handle = await debug.start(p)
        first = await debug.wait_paused(handle.run_id)
        debug.retry(handle.run_id, "a")
        await b_called.wait()
        second = await debug.wait_paused(handle.run_id)
        debug.retry(handle.run_id, "b")
        result = await handle.wait()
    delays = [(e.stage, e.attempt, e.delay) for e in recorder.of(StageRetrying)]
    paused = [(pause.stage, pause.attempt) for pause in (first, second) if pause is not None]
    assert ([("a", 1), ("b", 1)], RunStatus.SUCCESS, {"a": 2, "b": 2}) == (
        paused,
        result.status,
        calls,
    )
    assert ([("a", 1, 0.0), ("b", 1, 0.0)], [0.0, 0.0]) == (delays, sleep.delays)


async def test_a_cancelled_attempt_is_finished_once_with_the_runs_reason() -> None:
    """Cancelling a run ends its running attempt with one ``StageFinished``: cancelled, not to
    be retried (whatever its policy), with the run's reason as its error and cancel reason."""
    started = asyncio.Event()

    async def blocked(ctx: StageContext) -> None:
        started.set()
        await asyncio.Event().wait()

    recorder = Recorder()
    p = pipeline(stage("a", retry=retry(3, initial=0)), name="pipe")
    async with Engine(resolver=Resolver({"a": blocked}), observers=[recorder]) as engine:
        handle = await engine.start_run(p)
        await started.wait()
        handle.cancel()
        result = await handle.wait()
    [only] = result.executions["a"]
    assert [
        StageFinished(
            run_id=result.run_id,
            pipeline="pipe",
            stage="a",
            instance=0,
            attempt=1,
            task_run_id="a.0.1",
            status=StageStatus.CANCELLED,
            at=only.times.ended,
            error="cancelled: run cancelled",
            error_type="CancelledError",
            will_retry=False,
            cancel_reason="run cancelled",
        )
    ] == recorder.of(StageFinished)


async def test_an_error_outside_the_handler_fails_the_stage_and_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error the engine's own code meets while running a stage's attempts (here the injected
    sleep before a retry) fails the stage with it and stops the run, which names the stage; it
    is logged with the stage and run, and the other running stage is cancelled for it."""
    started = asyncio.Event()

    async def blocked(ctx: StageContext) -> None:
        started.set()
        await asyncio.Event().wait()

    async def failing(ctx: StageContext) -> None:
        await started.wait()
        raise RuntimeError("first attempt")

    async def broken_sleep(delay: float) -> None:
        raise RuntimeError("sleep broke")

    p = pipeline(stage("a", retry=retry(2, initial=1)), stage("busy"))
    resolver = Resolver({"a": failing, "busy": blocked})
    with caplog.at_level("ERROR", logger="taskdaemon.pipeline.engine._attempt"):
        async with Engine(resolver=resolver, sleep=broken_sleep) as engine:
            result = await engine.run(p)
    error = "internal error: RuntimeError('sleep broke')"
    [a] = result.executions["a"]
    [busy] = result.executions["busy"]
    assert (RunStatus.FAILURE, f"stage 'a': {error}") == (result.status, result.error)
    assert (StageStatus.FAILURE, error, "RuntimeError") == (a.status, a.error, a.error_type)
    assert (StageStatus.CANCELLED, "a") == (busy.status, busy.cancel_cause)
    assert [f"internal error in stage 'a' of run {result.run_id}"] == [
        r.getMessage() for r in caplog.records
    ]


async def test_a_handler_sees_its_execution_in_its_context(tmp_path: Any) -> None:
    """Every field of the context a handler is given: its run, pipeline, stage, loop,
    instance, attempt, inputs, timeout, workspace and command; ``event`` for an event stage."""
    seen: list[tuple[Any, ...]] = []

    async def record(ctx: StageContext) -> dict[str, Any]:
        seen.append(
            (
                ctx.run_id,
                ctx.pipeline,
                ctx.stage,
                ctx.loop,
                ctx.instance,
                ctx.attempt,
                dict(ctx.inputs),
                ctx.timeout,
                ctx.event,
                ctx.workspace,
                ctx.command,
            )
        )
        if ctx.stage == "pub":
            ctx.publish("go", {"n": 7})
        return {}

    p = pipeline(
        stage("pub", emits=("go",)),
        stage(
            "ev",
            OnEvent("go"),
            loop="shell",
            command="true",
            inputs=(InputMapping("n", "event.n"),),
        ),
        name="pipe",
        timeout=30,
    )
    async with Engine(resolver=Resolver({"pub": record, "ev": record}), workspace=tmp_path) as e:
        result = await e.run(p)
    run = result.run_id
    where = str(tmp_path / run)
    assert [
        (run, "pipe", "pub", "python", 0, 1, {}, 30, None, where, None),
        (run, "pipe", "ev", "shell", 0, 1, {"n": 7}, 30, {"n": 7}, where, "true"),
    ] == seen


async def test_a_later_stage_started_record_has_the_time_it_was_considered() -> None:
    """A stage after another is considered when the first one starts, not when the run did:
    its ``StageStarted`` says so, as its result's times do."""
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder], clock=Clock()) as engine:
        result = await engine.run(pipeline(stage("a"), stage("b", *after("a"))))
    considered = {e.stage: e.considered_at for e in recorder.of(StageStarted)}
    times = {name: ex.times.considered for name, (ex,) in result.executions.items()}
    assert result.started_at < considered["b"]
    assert times == considered


async def test_the_pause_gate_is_given_the_event_of_an_event_stage() -> None:
    """An execution started by an event is asked about with that event; one started otherwise
    with none."""
    requests: list[StageGateRequest] = []

    async def gate(request: StageGateRequest) -> None:
        requests.append(request)

    async def publish(ctx: StageContext) -> None:
        ctx.publish("go", {"n": 7})

    p = pipeline(stage("pub", emits=("go",)), stage("ev", OnEvent("go")))
    async with Engine(resolver=Resolver({"pub": publish}), pause_gate=gate) as engine:
        await engine.run(p)
    assert [None, {"n": 7}] == [r.event for r in requests]


async def test_a_running_attempt_shows_running_in_a_snapshot() -> None:
    """While its handler runs, the execution's status in the run's snapshot is ``running``."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def held(ctx: StageContext) -> None:
        started.set()
        await release.wait()

    async with Engine(resolver=Resolver({"a": held})) as engine:
        handle = await engine.start_run(pipeline(stage("a")))
        await started.wait()
        [running] = handle.snapshot().executions["a"]
        release.set()
        result = await handle.wait()
    [ended] = result.executions["a"]
    assert (StageStatus.RUNNING, StageStatus.SUCCESS) == (running.status, ended.status)


class Ready:
    """An awaitable that is no coroutine: it gives ``{"from": "awaitable"}``."""

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return {"from": "awaitable"}


@pytest.mark.parametrize("limit", [None, 30.0], ids=["no-timeout", "timeout"])
async def test_a_handler_may_return_its_outputs_or_an_awaitable_of_them(
    limit: float | None,
) -> None:
    """A plain function's mapping is the stage's outputs; an awaitable that is no coroutine is
    awaited first; with or without a timeout."""

    def plain(ctx: StageContext) -> dict[str, str]:
        return {"from": "plain"}

    def deferred(ctx: StageContext) -> Ready:
        return Ready()

    p = pipeline(stage("plain", timeout=limit), stage("deferred", timeout=limit))
    async with Engine(resolver=Resolver({"plain": plain, "deferred": deferred})) as engine:  # type: ignore[dict-item]
        result = await engine.run(p)
    assert {"plain": {"from": "plain"}, "deferred": {"from": "awaitable"}} == {
        name: dict(outputs) for name, outputs in result.outputs.items()
    }


async def test_outputs_mapped_from_the_request_and_the_result() -> None:
    """An ``outputs:`` mapping reads the handler's result and the run's request."""

    async def give(ctx: StageContext) -> dict[str, int]:
        return {"n": 2}

    p = pipeline(
        stage(
            "a",
            outputs=(OutputMapping("n", "result.n"), OutputMapping("who", "request.user")),
        )
    )
    async with Engine(resolver=Resolver({"a": give})) as engine:
        result = await engine.run(p, {"user": "ann"})
    assert {"n": 2, "who": "ann"} == dict(result.outputs["a"])


async def test_the_finished_record_has_the_cpu_the_handler_reported() -> None:
    """``cpu_seconds`` is the handler thread's reported CPU, unless a process tree's usage was
    reported: then that."""

    async def thread_only(ctx: StageContext) -> None:
        ctx.report_cpu(0.25)

    async def both(ctx: StageContext) -> None:
        ctx.report_cpu(0.25)
        ctx.report_usage(1.5, 4096)

    recorder = Recorder()
    resolver = Resolver({"thread": thread_only, "tree": both})
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        await engine.run(pipeline(stage("thread"), stage("tree")))
    assert {"thread": (0.25, None), "tree": (1.5, 4096)} == {
        e.stage: (e.cpu_seconds, e.peak_memory_bytes) for e in recorder.of(StageFinished)
    }


async def test_a_clock_breaking_after_the_handler_is_logged_with_the_stage_and_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A clock that breaks once the handler returned: the attempt's end and then the run's own
    end meet the error; each is logged once, naming the stage and the run, and the run ends
    failed rather than waiting for ever."""
    broken = False

    def clock() -> float:
        if broken:
            raise RuntimeError("clock broke")
        return 1000.0

    async def last(ctx: StageContext) -> None:
        nonlocal broken
        broken = True

    with caplog.at_level("ERROR", logger="taskdaemon.pipeline.engine._attempt"):
        async with Engine(resolver=Resolver({"a": last}), clock=clock) as engine:
            handle = await engine.start_run(pipeline(stage("a")))
            with pytest.raises(RuntimeError, match="clock broke"):
                await handle.wait()
    assert [
        f"internal error in stage 'a' of run {handle.run_id}",
        f"internal error ending stage 'a' of run {handle.run_id}",
    ] == [r.getMessage() for r in caplog.records]


async def test_an_attempt_that_outlives_the_cancel_has_no_cancel_reason() -> None:
    """A handler that swallows the run's cancellation and returns ends ``success``; its
    record carries no cancel reason nor cause: the stop did not end it."""
    started = asyncio.Event()

    async def swallow(ctx: StageContext) -> dict[str, bool]:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return {"swallowed": True}
        return {}

    recorder = Recorder()
    async with Engine(resolver=Resolver({"a": swallow}), observers=[recorder]) as engine:
        handle = await engine.start_run(pipeline(stage("a")))
        await started.wait()
        handle.cancel()
        result = await handle.wait()
    assert (RunStatus.CANCELLED, [(StageStatus.SUCCESS, None, None)]) == (
        result.status,
        [(e.status, e.cancel_reason, e.cancel_cause) for e in recorder.of(StageFinished)],
    )
