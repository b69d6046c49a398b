"""PipelineMonitor attached to the real engine: the traces and metrics of real runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

from pipeline_monitor_support import Telemetry, chain_pipeline, example_pipeline
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent, RunStarted, StageStarted
from taskdaemon.pipeline.loops import LoopRegistry, StageContext
from taskdaemon.pipeline.model import ErrorStrategy, Manual, Pipeline, RetryPolicy, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.state import RunStatus


class Resolver:
    """Python handlers by stage name; everything else through the real loop registry."""

    def __init__(self, handlers: Mapping[str, Any]) -> None:
        self.handlers = dict(handlers)
        self.registry = LoopRegistry.default()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return self.handlers.get(stage.name) or self.registry.resolve(pipeline, stage)


class Waiter:
    """An observer that sets an asyncio.Event when a record of a given kind arrives."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.seen = asyncio.Event()

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, self.kind):
            self.seen.set()


async def _plan(ctx: StageContext) -> Mapping[str, Any]:
    return {"plan": ["a", "b"]}


async def _spec(ctx: StageContext) -> Mapping[str, Any]:
    for i in range(2):
        ctx.publish("spec.ready", {"spec": {"id": i, "dependencies_met": True}})
    return {"specs": [0, 1]}


async def _phase(ctx: StageContext) -> Mapping[str, Any]:
    return {"implementation": ctx.inputs}


def _monitor(tel: Telemetry) -> PipelineMonitor:
    return tel.monitor(resource_sampling=False)


def _example() -> Pipeline:
    base = example_pipeline()
    release = base.stage("release")
    stages = tuple(
        Stage(
            release.name,
            "command",
            release.triggers,
            trigger_mode=release.trigger_mode,
            command="sh -c 'echo $TRACEPARENT'",
        )
        if s.name == "release"
        else s
        for s in base.stages
    )
    return Pipeline(base.name, stages, concurrency=4)


@pytest.mark.slow
async def test_engine_example_run(tel: Telemetry) -> None:
    """A real run of the example shape gives the full tree, links, and TRACEPARENT in the
    command stage's environment equal to its span."""
    monitor = _monitor(tel)
    waiter = Waiter(ApprovalRequested)
    resolver = Resolver({"planning": _plan, "specification": _spec, "implementation": _phase})
    async with Engine(resolver=resolver, observers=[monitor, waiter]) as engine:
        handle = await engine.start_run(_example(), {"goal": "ship it"})
        await waiter.seen.wait()
        handle.approve("release", by="alice")
        result = await handle.wait()
    assert RunStatus.SUCCESS == result.status
    spans = tel.spans()
    names = {s.context.span_id: s.name for s in spans}
    assert [
        ("RUN feature-delivery", None),
        ("implementation", "RUN feature-delivery"),
        ("implementation", "RUN feature-delivery"),
        ("planning", "RUN feature-delivery"),
        ("release", "RUN feature-delivery"),
        ("specification", "RUN feature-delivery"),
    ] == sorted((s.name, names.get(s.parent.span_id) if s.parent else None) for s in spans)
    (run,) = tel.by_name("RUN feature-delivery")
    assert result.run_id == format_trace_id(run.context.trace_id)
    (release,) = tel.by_name("release")
    traceparent = (
        f"00-{result.run_id}-{format_span_id(release.context.span_id)}-"
        f"{release.context.trace_flags:02x}"
    )
    assert traceparent == result.outputs["release"]["stdout"]
    assert isinstance(release.attributes[t.STAGE_PID], int)
    by_id = {s.context.span_id: s for s in spans}
    assert [
        ("triggered_by", "implementation.0.1"),
        ("triggered_by", "implementation.1.1"),
    ] == sorted(
        (
            str(link.attributes[t.LINK_RELATION]),
            str(by_id[link.context.span_id].attributes[t.CICD_TASK_RUN_ID]),
        )
        for link in release.links
    )
    assert [t.EVENT_APPROVAL_REQUESTED, t.EVENT_APPROVAL_RESOLVED] == [
        e.name for e in run.events if e.name.startswith("approval.")
    ]
    (spec,) = tel.by_name("specification")
    assert 2 == sum(e.name == t.EVENT_PUBLISHED for e in spec.events)


async def test_engine_retry_then_success(tel: Telemetry) -> None:
    """Under retry, the engine's two attempts are two spans linked by previous_attempt."""
    calls = []

    async def flaky(ctx: StageContext) -> Mapping[str, Any]:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("flaky")
        return {}

    async def no_sleep(delay: float) -> None:
        await asyncio.sleep(0)

    pipeline = Pipeline(
        "retrying",
        (Stage("a", "python", (Manual(),)),),
        error_strategy=ErrorStrategy.RETRY,
        retry=RetryPolicy(max_attempts=3),
    )
    monitor = _monitor(tel)
    async with Engine(resolver=Resolver({"a": flaky}), observers=[monitor], sleep=no_sleep) as e:
        result = await e.run(pipeline)
    assert RunStatus.SUCCESS == result.status
    first, second = sorted(tel.by_name("a"), key=lambda s: s.attributes[t.STAGE_ATTEMPT])
    assert ("ConnectionError", StatusCode.ERROR, [t.EVENT_STAGE_INPUT, "exception"]) == (
        first.attributes[t.ERROR_TYPE],
        first.status.status_code,
        [e.name for e in first.events],
    )
    assert [(first.context.span_id, "previous_attempt")] == [
        (link.context.span_id, link.attributes[t.LINK_RELATION]) for link in second.links
    ]


async def test_engine_failure_skips_the_rest(tel: Telemetry) -> None:
    """Under fail, a failing stage fails the run and what follows gets skip spans."""

    async def broken(ctx: StageContext) -> Mapping[str, Any]:
        raise ValueError("no")

    monitor = _monitor(tel)
    async with Engine(resolver=Resolver({"a": broken}), observers=[monitor]) as engine:
        result = await engine.run(chain_pipeline())
    assert RunStatus.FAILURE == result.status
    results = {s.name: s.attributes.get(t.CICD_TASK_RUN_RESULT) for s in tel.spans()}
    assert {"a": "failure", "b": "skip", "c": "skip", "RUN chain": None} == results
    (run,) = tel.by_name("RUN chain")
    assert ("failure", StatusCode.ERROR) == (
        run.attributes[t.CICD_PIPELINE_RESULT],
        run.status.status_code,
    )


async def test_engine_timeout(tel: Telemetry) -> None:
    """A stage past its timeout is a timeout span with error.type timeout."""

    async def hang(ctx: StageContext) -> Mapping[str, Any]:
        await asyncio.Event().wait()
        return {}

    pipeline = Pipeline("slow", (Stage("a", "python", (Manual(),), timeout=0.05),))
    async with Engine(resolver=Resolver({"a": hang}), observers=[_monitor(tel)]) as engine:
        await engine.run(pipeline)
    (a,) = tel.by_name("a")
    assert ("timeout", "timeout", StatusCode.ERROR) == (
        a.attributes[t.CICD_TASK_RUN_RESULT],
        a.attributes[t.ERROR_TYPE],
        a.status.status_code,
    )


async def test_engine_cancellation(tel: Telemetry) -> None:
    """Cancelling a run ends its running stage and the run as cancellation, not error."""
    waiter = Waiter(StageStarted)

    async def hang(ctx: StageContext) -> Mapping[str, Any]:
        await asyncio.Event().wait()
        return {}

    monitor = _monitor(tel)
    async with Engine(resolver=Resolver({"a": hang}), observers=[monitor, waiter]) as engine:
        handle = await engine.start_run(chain_pipeline(("a", "b")))
        await waiter.seen.wait()
        handle.cancel()
        await handle.wait()
    spans: dict[str, ReadableSpan] = {s.name: s for s in tel.spans()}
    assert {
        "a": ("cancellation", StatusCode.UNSET),
        "b": ("skip", StatusCode.UNSET),
        "RUN chain": ("cancellation", StatusCode.UNSET),
    } == {
        name: (
            s.attributes.get(t.CICD_TASK_RUN_RESULT) or s.attributes.get(t.CICD_PIPELINE_RESULT),
            s.status.status_code,
        )
        for name, s in spans.items()
    }


async def test_engine_metrics_and_add_observer(tel: Telemetry) -> None:
    """A monitor added with add_observer counts the engine's runs and stage executions."""
    monitor = _monitor(tel)
    engine = Engine(resolver=Resolver({"a": _phase, "b": _phase}))
    engine.add_observer(monitor)
    async with engine:
        for _ in range(3):
            await engine.run(chain_pipeline(("a", "b")))
    assert {
        (("pipeline", "chain"), ("status", "success")): 3,
        (("pipeline", "chain"), ("status", "failure")): 0,
        (("pipeline", "chain"), ("status", "cancelled")): 0,
    } == tel.values(t.METRIC_EXECUTIONS)
    assert {
        (("pipeline", "chain"), ("stage", stage), ("status", status)): 3 * (status == "success")
        for stage in ("a", "b")
        for status in ("success", "failure", "timeout", "cancelled")
    } == tel.values(t.METRIC_STAGE_EXECUTIONS)
    snapshot = monitor.get_metrics()
    assert (3, 1.0, {"a": 3, "b": 3}) == (
        snapshot.total_runs,
        snapshot.success_rate,
        {name: s.count for name, s in snapshot.stages.items()},
    )


class ThreadRecorder(SpanProcessor):
    """A span processor noting on which thread each span starts, with an event per name."""

    def __init__(self) -> None:
        self.threads: dict[str, str] = {}
        self.started: dict[str, threading.Event] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.threads[span.name] = threading.current_thread().name
        self.started.setdefault(span.name, threading.Event()).set()

    def wait_for(self, name: str) -> bool:
        return self.started.setdefault(name, threading.Event()).wait(10)


async def test_stage_telemetry_is_made_off_the_engines_thread(tel: Telemetry) -> None:
    """While a stage waits, the monitor's worker thread makes the stage spans, not the loop."""
    recorder = ThreadRecorder()
    tel.tracer_provider.add_span_processor(recorder)
    monitor = _monitor(tel)

    async def waits_for_own_span(ctx: StageContext) -> Mapping[str, Any]:
        # The stage's own span appears while the handler is suspended: made elsewhere.
        assert await asyncio.to_thread(recorder.wait_for, ctx.stage)
        return {}

    handlers = {"a": waits_for_own_span, "b": waits_for_own_span}
    engine = Engine(resolver=Resolver(handlers), observers=[monitor])
    result = await engine.run(chain_pipeline(("a", "b")), {})
    monitor.close()
    assert RunStatus.SUCCESS == result.status
    assert {"a": "taskdaemon-monitor", "b": "taskdaemon-monitor"} == {
        name: recorder.threads[name] for name in ("a", "b")
    }


async def test_finished_run_telemetry_is_complete_when_run_returns(tel: Telemetry) -> None:
    """Nothing is left queued once engine.run returns: every span is ended and exported."""
    monitor = _monitor(tel)
    engine = Engine(resolver=Resolver({"a": _plan, "b": _plan, "c": _plan}), observers=[monitor])
    await engine.run(chain_pipeline(), {})
    assert ["a", "b", "c", "RUN chain"] == [span.name for span in tel.spans()]
    monitor.close()


async def test_close_is_safe_twice_and_the_worker_restarts_on_use(tel: Telemetry) -> None:
    """close() stops the worker; the next run starts it again and is recorded in full."""
    monitor = _monitor(tel)
    monitor.close()
    monitor.close()
    engine = Engine(resolver=Resolver({"a": _plan, "b": _plan, "c": _plan}), observers=[monitor])
    await engine.run(chain_pipeline(), {})
    monitor.close()
    assert 4 == len(tel.spans())


async def test_engine_run_links_to_the_callers_current_span(tel: Telemetry) -> None:
    """A run started by the engine inside the caller's span is a new trace linked to it."""
    monitor = _monitor(tel)
    engine = Engine(resolver=Resolver({"a": _plan}), observers=[monitor])
    tracer = tel.tracer_provider.get_tracer("caller")
    with tracer.start_as_current_span("request") as caller:
        result = await engine.run(chain_pipeline(("a",)), {})
    monitor.close()
    (run_span,) = tel.by_name("RUN chain")
    assert result.run_id == format_trace_id(run_span.context.trace_id)
    assert [(caller.get_span_context().span_id, t.LINK_PARENT)] == [
        (link.context.span_id, link.attributes[t.LINK_RELATION]) for link in run_span.links
    ]


async def test_a_run_the_monitor_named_starts_on_its_worker(tel: Telemetry) -> None:
    """``RunStarted`` of a run whose span the monitor started is queued for the worker, not
    handled on the loop: when the first stage starts, the loop has handled no record; the
    run span still links to the caller's span, read when the run was named."""
    monitor = _monitor(tel)
    by_caller: list[int] = []

    async def counts(ctx: StageContext) -> Mapping[str, Any]:
        by_caller.append(monitor._queue.stats()["by_caller"])
        return {}

    engine = Engine(resolver=Resolver({"a": counts}), observers=[monitor])
    with tel.tracer_provider.get_tracer("caller").start_as_current_span("request") as caller:
        await engine.run(chain_pipeline(("a",)), {})
    monitor.close()
    (run_span,) = tel.by_name("RUN chain")
    assert ([0], [(caller.get_span_context().span_id, t.LINK_PARENT)]) == (
        by_caller,
        [(link.context.span_id, link.attributes[t.LINK_RELATION]) for link in run_span.links],
    )


class _StartHook:
    """An event hook that takes every record and notes the thread each run start was on."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def __call__(self, event: EngineEvent, span: object) -> None:
        if isinstance(event, RunStarted):
            self.threads.append(threading.current_thread().name)


async def test_a_run_start_a_hook_takes_is_handled_on_the_loop(tel: Telemetry) -> None:
    """A hook that takes ``RunStarted`` (the run log's ``run ... started``) gets it at once, on
    the loop's thread: on the worker it came after what the run's handlers log themselves."""
    monitor = _monitor(tel)
    hook = _StartHook()
    monitor.add_event_hook(hook)
    engine = Engine(resolver=Resolver({"a": _plan}), observers=[monitor])
    await engine.run(chain_pipeline(("a",)), {})
    monitor.close()
    assert [threading.current_thread().name] == hook.threads
