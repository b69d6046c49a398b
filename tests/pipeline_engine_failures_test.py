"""Engine failures: error strategies, retries with exact backoff, timeouts, cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from pipeline_engine_support import (
    FakeSleep,
    Recorder,
    Resolver,
    after,
    fail,
    pipeline,
    retry,
    stage,
)
from pipeline_monitor_support import Telemetry
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import ERROR_MAX_CHARS, StageTimeoutError
from taskdaemon.pipeline.events import (
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    TaskRunRef,
)
from taskdaemon.pipeline.loops import StageContext, python_handler
from taskdaemon.pipeline.model import ErrorStrategy
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)


class Flaky:
    """Fails the first ``failures`` calls, then succeeds; counts calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self, ctx: StageContext) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"attempt {ctx.attempt} failed")
        return {"attempt": ctx.attempt}


class Blocked:
    """Blocks until cancelled; records that it started and that it cleaned up."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cleaned = 0

    async def __call__(self, ctx: StageContext) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cleaned += 1
            raise


async def test_fail_strategy_cancels_running_and_skips_the_rest() -> None:
    """error_strategy fail: one attempt, running stages cancelled, the rest skipped."""
    blocked = Blocked()
    flaky = Flaky(failures=99)
    gate = asyncio.Event()

    async def failing(ctx: StageContext) -> None:
        await blocked.started.wait()
        await gate.wait()
        await flaky(ctx)

    p = pipeline(stage("bad"), stage("busy"), stage("next", *after("bad")))
    recorder = Recorder()
    resolver = Resolver({"bad": failing, "busy": blocked})  # type: ignore[dict-item]
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        handle = await engine.start_run(p)
        await blocked.started.wait()
        gate.set()
        result = await handle.wait()
    assert RunStatus.FAILURE == result.status
    assert {
        "bad": StageStatus.FAILURE,
        "busy": StageStatus.CANCELLED,
        "next": StageStatus.SKIPPED,
    } == dict(result.stage_status)
    assert (1, 1) == (flaky.calls, blocked.cleaned)
    assert "stage 'bad' failure: attempt 1 failed" == result.error
    assert ["next"] == [e.stage for e in recorder.of(StageSkipped)]


async def test_retry_strategy_retries_with_exact_backoff_then_succeeds() -> None:
    """error_strategy retry: the pipeline policy retries with backoff.delay(n) between."""
    flaky = Flaky(failures=2)
    sleep = FakeSleep()
    recorder = Recorder()
    p = pipeline(
        stage("a"),
        error_strategy=ErrorStrategy.RETRY,
        retry=retry(3, initial=1.5, factor=2.0),
    )
    engine = Engine(resolver=Resolver({"a": flaky}), sleep=sleep, observers=[recorder])
    async with engine:
        result = await engine.run(p)
    assert RunStatus.SUCCESS == result.status
    assert [1.5, 3.0] == sleep.delays
    assert [
        (1, StageStatus.FAILURE),
        (2, StageStatus.FAILURE),
        (3, StageStatus.SUCCESS),
    ] == [(e.attempt, e.status) for e in result.executions["a"]]
    assert [True, True, False] == [e.will_retry for e in recorder.of(StageFinished)]
    assert [(1, 1.5), (2, 3.0)] == [(e.attempt, e.delay) for e in recorder.of(StageRetrying)]
    assert [1, 2, 3] == [e.attempt for e in recorder.of(StageQueued)]
    started = recorder.of(StageStarted)
    assert [None, TaskRunRef("a", 0, 1), TaskRunRef("a", 0, 2)] == [
        e.previous_attempt for e in started
    ]
    names = [n for n in recorder.names() if n.startswith("Stage")]
    assert [
        "StageWaiting",
        "StageQueued",
        "StageStarted",
        "StageFinished",
        "StageRetrying",
        "StageQueued",
        "StageStarted",
        "StageFinished",
        "StageRetrying",
        "StageQueued",
        "StageStarted",
        "StageFinished",
    ] == names


async def test_retries_exhausted_fail_the_run() -> None:
    """After max_attempts failed attempts the stage fails and so does the run."""
    flaky = Flaky(failures=99)
    sleep = FakeSleep()
    p = pipeline(
        stage("a"),
        stage("b", *after("a")),
        error_strategy=ErrorStrategy.RETRY,
        retry=retry(4, initial=10, factor=10, maximum=50),
    )
    async with Engine(resolver=Resolver({"a": flaky}), sleep=sleep) as engine:
        result = await engine.run(p)
    assert 4 == flaky.calls
    assert [10, 50, 50] == sleep.delays
    assert RunStatus.FAILURE == result.status
    assert StageStatus.SKIPPED == result.stage_status["b"]


async def test_stage_retry_policy_applies_under_fail_strategy() -> None:
    """A stage's own retry policy is used whatever the error strategy."""
    flaky = Flaky(failures=1)
    sleep = FakeSleep()
    p = pipeline(stage("a", retry=retry(2, initial=0.25)), error_strategy=ErrorStrategy.FAIL)
    async with Engine(resolver=Resolver({"a": flaky}), sleep=sleep) as engine:
        result = await engine.run(p)
    assert (RunStatus.SUCCESS, 2, [0.25]) == (result.status, flaky.calls, sleep.delays)


async def test_pipeline_retry_is_ignored_unless_strategy_is_retry() -> None:
    """Under error_strategy fail the pipeline's retry policy does not apply."""
    flaky = Flaky(failures=1)
    p = pipeline(stage("a"), error_strategy=ErrorStrategy.FAIL, retry=retry(5))
    async with Engine(resolver=Resolver({"a": flaky}), sleep=FakeSleep()) as engine:
        result = await engine.run(p)
    assert (RunStatus.FAILURE, 1) == (result.status, flaky.calls)


async def test_continue_strategy_runs_what_does_not_depend_on_the_failure() -> None:
    """error_strategy continue: dependents are skipped, independent stages run, run fails."""
    p = pipeline(
        stage("bad"),
        stage("dependent", *after("bad")),
        stage("independent"),
        stage("later", *after("independent")),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    async with Engine(resolver=Resolver({"bad": fail})) as engine:
        result = await engine.run(p)
    assert {
        "bad": StageStatus.FAILURE,
        "dependent": StageStatus.SKIPPED,
        "independent": StageStatus.SUCCESS,
        "later": StageStatus.SUCCESS,
    } == dict(result.stage_status)
    assert RunStatus.FAILURE == result.status


async def test_timeout_cancels_the_handler_and_ends_timeout() -> None:
    """A stage past its timeout has its handler cancelled and ends with status timeout."""
    blocked = Blocked()
    recorder = Recorder()
    p = pipeline(stage("slow", timeout=0.01), stage("next", *after("slow")))
    async with Engine(resolver=Resolver({"slow": blocked}), observers=[recorder]) as engine:
        result = await engine.run(p)
    assert (StageStatus.TIMEOUT, StageStatus.SKIPPED) == (
        result.stage_status["slow"],
        result.stage_status["next"],
    )
    assert 1 == blocked.cleaned
    (finished,) = recorder.of(StageFinished)
    assert ("timed out after 0.01s", "TimeoutError") == (finished.error, finished.error_type)
    assert RunStatus.FAILURE == result.status


async def test_timeout_counts_as_a_failed_attempt() -> None:
    """A timed-out attempt is retried like a failure, with the backoff in between."""
    blocked = Blocked()
    sleep = FakeSleep()
    p = pipeline(stage("slow", timeout=0.01, retry=retry(2, initial=3)))
    async with Engine(resolver=Resolver({"slow": blocked}), sleep=sleep) as engine:
        result = await engine.run(p)
    assert [StageStatus.TIMEOUT, StageStatus.TIMEOUT] == [
        e.status for e in result.executions["slow"]
    ]
    assert ([3], 2) == (sleep.delays, blocked.cleaned)


async def test_a_handler_s_own_deadline_ends_timeout_a_plain_timeout_error_fails() -> None:
    """``StageTimeoutError`` from a handler (a deadline of its own: a replay's fed timeout)
    ends its attempt ``timeout`` with its message, as the stage's timeout would; a plain
    ``TimeoutError`` (a socket's) is the handler's failure, not the stage's timeout."""

    async def own_deadline(ctx: StageContext) -> None:
        raise StageTimeoutError("timed out after 5s")

    async def socket_timeout(ctx: StageContext) -> None:
        raise TimeoutError("read timed out")

    recorder = Recorder()
    p = pipeline(stage("own"), stage("socket"), error_strategy=ErrorStrategy.CONTINUE)
    handlers = {"own": own_deadline, "socket": socket_timeout}
    async with Engine(resolver=Resolver(handlers), observers=[recorder]) as engine:
        await engine.run(p)
    assert {
        "own": (StageStatus.TIMEOUT, "timed out after 5s", "TimeoutError"),
        "socket": (StageStatus.FAILURE, "read timed out", "TimeoutError"),
    } == {e.stage: (e.status, e.error, e.error_type) for e in recorder.of(StageFinished)}


async def test_pipeline_timeout_is_the_default_stage_timeout() -> None:
    """Without a stage timeout the pipeline's timeout applies."""
    blocked = Blocked()
    p = pipeline(stage("slow"), timeout=0.01)
    async with Engine(resolver=Resolver({"slow": blocked})) as engine:
        result = await engine.run(p)
    assert StageStatus.TIMEOUT == result.stage_status["slow"]


async def test_cancel_ends_running_and_queued_executions_and_skips_the_rest() -> None:
    """cancel(): running and queued executions end cancelled; stages that never started are
    skipped, a queued one's as not reached (as the run's records say)."""
    blocked = Blocked()
    recorder = Recorder()
    p = pipeline(stage("run"), stage("queued"), stage("later", *after("run")), concurrency=1)
    async with Engine(resolver=Resolver({"python": blocked}), observers=[recorder]) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        await blocked.started.wait()
        handle.cancel()
        handle.cancel()  # idempotent
        result = await handle.wait()
    assert {
        "run": StageStatus.CANCELLED,
        "queued": StageStatus.SKIPPED,
        "later": StageStatus.SKIPPED,
    } == dict(result.stage_status)
    assert {
        "queued": "not reached: the run ended (cancelled)",
        "later": "run cancelled",
    } == dict(result.skip_reasons)
    assert RunStatus.CANCELLED == result.status
    # queued executions end at once; running ones when their handler has unwound
    assert [("queued", StageStatus.CANCELLED), ("run", StageStatus.CANCELLED)] == [
        (e.stage, e.status) for e in recorder.of(StageFinished)
    ]
    assert ["later"] == [e.stage for e in recorder.of(StageSkipped)]
    assert "run cancelled" == recorder.of(StageSkipped)[0].reason


async def test_cancel_during_backoff_ends_the_stage_cancelled() -> None:
    """Cancelling while a stage waits to retry ends it cancelled with no further attempt."""
    waiting = asyncio.Event()

    async def sleep(delay: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    flaky = Flaky(failures=99)
    p = pipeline(stage("a", retry=retry(3)))
    async with Engine(resolver=Resolver({"a": flaky}), sleep=sleep) as engine:
        handle = await engine.start_run(p)
        await waiting.wait()
        handle.cancel()
        result = await handle.wait()
    assert (StageStatus.CANCELLED, 1) == (result.stage_status["a"], flaky.calls)
    assert [StageStatus.FAILURE] == [e.status for e in result.executions["a"]]


async def test_cancelling_engine_run_cancels_the_run() -> None:
    """Cancelling the task awaiting engine.run() cancels the run it started."""
    blocked = Blocked()
    async with Engine(resolver=Resolver({"a": blocked})) as engine:  # type: ignore[dict-item]
        task = asyncio.create_task(engine.run(pipeline(stage("a"))))
        await blocked.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (handle,) = engine.runs
        result = await handle.wait()
    assert RunStatus.CANCELLED == result.status


class BrokenClock:
    """Reads like ``Clock`` until its ``broken_from``-th reading, then raises on every one."""

    def __init__(self, broken_from: int) -> None:
        self.broken_from = broken_from
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        if self.readings >= self.broken_from:
            raise RuntimeError("clock broke")
        return 1000.0 + self.readings


@pytest.mark.parametrize("handlers", [{}, {"a": fail}], ids=["succeeding", "failing"])
async def test_a_clock_that_breaks_at_any_reading_never_hangs_the_run(
    handlers: dict[str, Any],
) -> None:
    """Whichever reading of the clock raises first, ``Engine.run`` returns or raises the error
    at once, its run counts as done, and no task of it is left behind (it used to wait forever
    when the clock broke while a stage's end moved the run on)."""
    outcomes: set[str] = set()
    for broken_from in range(1, 60):
        clock = BrokenClock(broken_from)
        async with Engine(resolver=Resolver(handlers), clock=clock) as engine:
            p = pipeline(stage("a"), stage("b", *after("a")), stage("c", *after("b")))
            try:
                result = await asyncio.wait_for(engine.run(p), 2)
                outcomes.add(result.status.value)
            except RuntimeError as exc:
                outcomes.add(str(exc))
            assert all(handle.done for handle in engine.runs)
            for handle in engine.runs:
                tasks = [i.task for s in handle._run.stages.values() for i in s.instances]
                await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
    # the clock broke at every step of the run, and late enough for some runs to finish
    assert {"clock broke", "success" if not handlers else "failure"} == outcomes


async def test_an_aborted_run_ends_as_failed_for_its_observers() -> None:
    """Whenever the clock breaks after the run started, observers get one ``RunFinished`` of
    status failure naming the internal error, and the monitor ends the run span as an error
    and a span for every stage that started (the run used to stay open, "running", for ever)."""
    aborted = 0
    for broken_from in range(1, 60):
        telemetry = Telemetry()
        monitor = telemetry.monitor(resource_sampling=False)
        recorder = Recorder()
        try:
            async with Engine(
                resolver=Resolver({}), clock=BrokenClock(broken_from), observers=[recorder, monitor]
            ) as engine:
                p = pipeline(stage("a"), stage("b", *after("a")), stage("c", *after("b")))
                try:
                    await asyncio.wait_for(engine.run(p), 2)
                    continue  # the clock broke too late to matter
                except RuntimeError:
                    pass
            if not recorder.of(RunStarted):
                assert [] == recorder.of(RunFinished)
                continue
            aborted += 1
            (finished,) = recorder.of(RunFinished)
            assert RunStatus.FAILURE == finished.status
            assert "internal error: RuntimeError('clock broke')" == finished.error
            assert "RuntimeError" == finished.error_type
            monitor.close()
            (run_span,) = telemetry.by_name("RUN p")
            assert StatusCode.ERROR == run_span.status.status_code
            started = {event.stage for event in recorder.of(StageStarted)}
            assert started <= {span.name for span in telemetry.spans()}
        finally:
            telemetry.shutdown()
    assert aborted >= 5  # the clock broke at several points of a started run


class _Bare(BaseException):
    """A ``BaseException`` that is none of the built-in ones."""


@pytest.mark.parametrize(
    "raised",
    [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), _Bare("bare")],
    ids=["SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_handler_raising_a_base_exception_fails_its_stage(
    raised: BaseException, kind: str
) -> None:
    """A handler raising a ``BaseException`` that is no cancellation fails its stage, and the
    run ends (it used to wait for ever)."""

    def sync_handler(ctx: StageContext) -> None:
        raise raised

    async def async_handler(ctx: StageContext) -> None:
        raise raised

    handler = python_handler(sync_handler) if kind == "sync" else async_handler
    p = pipeline(stage("s"), stage("next", *after("s", success_only=False)))
    async with Engine(resolver=Resolver({"s": handler})) as engine:
        result = await asyncio.wait_for(engine.run(p), 5)
    (execution,) = result.executions["s"]
    assert (RunStatus.FAILURE, StageStatus.FAILURE, type(raised).__qualname__) == (
        result.status,
        execution.status,
        execution.error_type,
    )


class _UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise ValueError("no text")


async def test_an_exception_whose_str_raises_fails_the_stage_as_itself() -> None:
    """A handler's exception whose ``__str__`` raises fails its stage with its own type and a
    message saying so, not as an internal error of the engine."""

    async def handler(ctx: StageContext) -> None:
        raise _UnprintableError

    async with Engine(resolver=Resolver({"s": handler})) as engine:
        result = await engine.run(pipeline(stage("s")))
    (execution,) = result.executions["s"]
    assert (StageStatus.FAILURE, "_UnprintableError", "<_UnprintableError: str() failed>") == (
        execution.status,
        execution.error_type,
        execution.error,
    )


async def test_a_huge_error_message_is_kept_bounded_and_says_so() -> None:
    """A handler's 10 MB error message is kept as its first and last characters around a
    marker that says how much was cut."""
    message = "h" * 5_000 + "x" * 10_000_000 + "t" * 5_000

    async def handler(ctx: StageContext) -> None:
        raise RuntimeError(message)

    async with Engine(resolver=Resolver({"s": handler})) as engine:
        result = await engine.run(pipeline(stage("s")))
    (execution,) = result.executions["s"]
    cut = len(message) - ERROR_MAX_CHARS
    half = ERROR_MAX_CHARS // 2
    expected = "h" * half + f"…[{cut} characters cut]…" + "t" * half
    assert expected == execution.error
