"""Engine basics: results, data flow, the events of a run, the public API and its errors (the
observers' hooks and run ids: ``pipeline_engine_observers_test.py``)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import (
    Clock,
    Recorder,
    Resolver,
    after,
    entry,
    fail,
    pipeline,
    stage,
)
from taskdaemon.pipeline.engine import Engine, RunResult
from taskdaemon.pipeline.errors import ApprovalError, PipelineError, RunNotFoundError
from taskdaemon.pipeline.events import (
    RunFinished,
    RunStarted,
    StageFinished,
    StageProcess,
    StageQueued,
    StageSkipped,
    StageStarted,
    StageWaiting,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    InputMapping,
    Manual,
    OnEvent,
    OutputMapping,
    TriggerMode,
)
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)

SRC = Path(__file__).parent.parent / "src" / "taskdaemon" / "pipeline"


async def test_linear_run_succeeds_and_returns_outputs() -> None:
    """A two-stage chain runs in order and the result carries each stage's outputs."""

    async def plan(ctx: StageContext) -> dict[str, Any]:
        return {"plan": f"plan for {ctx.inputs['goal']}"}

    async def spec(ctx: StageContext) -> dict[str, Any]:
        return {"specs": [ctx.inputs["plan"].upper()]}

    p = pipeline(
        stage("planning", inputs=(InputMapping("goal", "request.goal"),)),
        stage(
            "spec",
            *after("planning"),
            inputs=(InputMapping("plan", "stages.planning.outputs.plan"),),
        ),
    )
    async with Engine(resolver=Resolver({"planning": plan, "spec": spec})) as engine:
        result = await engine.run(p, {"goal": "x"})
    assert RunStatus.SUCCESS == result.status
    assert {"planning": {"plan": "plan for x"}, "spec": {"specs": ["PLAN FOR X"]}} == dict(
        result.outputs
    )
    assert {"planning": StageStatus.SUCCESS, "spec": StageStatus.SUCCESS} == dict(
        result.stage_status
    )


async def test_run_result_is_a_frozen_snapshot_with_executions_and_times() -> None:
    """RunResult lists every execution with its status and ordered timestamps."""
    async with Engine(resolver=Resolver(), clock=Clock()) as engine:
        result = await engine.run(pipeline(stage("a"), stage("b", *after("a"))))
    assert isinstance(result, RunResult)
    (a,) = result.executions["a"]
    (b,) = result.executions["b"]
    assert (0, 1, StageStatus.SUCCESS) == (a.instance, a.attempt, a.status)
    times = b.times
    stamps = [times.pending, times.considered, times.queued, times.running, times.ended]
    assert None not in stamps
    assert sorted(stamps) == stamps  # type: ignore[type-var]
    assert a.times.running == b.times.considered  # considered = start of the upstream stage
    with pytest.raises(AttributeError):
        result.status = RunStatus.FAILURE  # type: ignore[misc]


async def test_run_result_repr_leaves_out_the_stages_and_their_outputs() -> None:
    """A result's repr names the run, its status and error; not each stage's executions or
    the outputs, which a repr would hand past redaction to whatever prints it."""

    async def secret(ctx: StageContext) -> dict[str, str]:
        return {"note": "hunter2-output"}

    async with Engine(resolver=Resolver({"a": secret})) as engine:  # type: ignore[arg-type]
        result = await engine.run(pipeline(stage("a"), stage("b", *after("a"))))
    text = repr(result)
    assert text.startswith("RunResult(run_id=")
    for shown in (f"run_id={result.run_id!r}", "status=", "error=None"):
        assert shown in text
    for hidden in ("hunter2-output", "executions", "'b'"):
        assert hidden not in text
    assert {"note": "hunter2-output"} == dict(result.outputs["a"])


async def test_handler_results_are_normalised() -> None:
    """None becomes {} and a non-mapping value v becomes {"value": v}."""

    async def nothing(ctx: StageContext) -> None:
        return None

    async def number(ctx: StageContext) -> int:
        return 42

    resolver = Resolver({"a": nothing, "b": number})
    async with Engine(resolver=resolver) as engine:  # type: ignore[arg-type]
        result = await engine.run(pipeline(stage("a"), stage("b")))
    assert {"a": {}, "b": {"value": 42}} == dict(result.outputs)


async def test_output_mapping_selects_from_result() -> None:
    """An outputs: mapping turns the handler's result into the stage outputs."""

    async def handler(ctx: StageContext) -> dict[str, Any]:
        return {"deep": {"x": 3}, "noise": 1}

    p = pipeline(
        stage(
            "a",
            outputs=(
                OutputMapping("x", "result.deep.x"),
                OutputMapping("y", "result.missing", required=False),
            ),
        )
    )
    async with Engine(resolver=Resolver({"a": handler})) as engine:
        result = await engine.run(p)
    assert {"x": 3} == dict(result.outputs["a"])


async def test_missing_required_input_fails_without_retry_and_names_the_path() -> None:
    """A missing required input fails the stage at once with the input's name and path."""
    calls = []

    async def handler(ctx: StageContext) -> dict[str, Any]:
        calls.append(ctx.stage)
        return {}

    p = pipeline(
        stage("planning"),
        stage(
            "spec",
            *after("planning"),
            inputs=(InputMapping("plan", "stages.planning.outputs.plan"),),
            retry=__import__("pipeline_engine_support").retry(3),
        ),
    )
    recorder = Recorder()
    async with Engine(resolver=Resolver({"spec": handler}), observers=[recorder]) as engine:
        result = await engine.run(p)
    expected = "missing required input 'plan': 'stages.planning.outputs.plan': no such key 'plan'"
    (execution,) = result.executions["spec"]
    assert expected == execution.error
    assert [] == calls
    assert RunStatus.FAILURE == result.status
    finished = [e for e in recorder.of(StageFinished) if e.stage == "spec"]
    assert [(StageStatus.FAILURE, False, "PipelineError")] == [
        (e.status, e.will_retry, e.error_type) for e in finished
    ]


async def test_optional_input_is_left_out_when_missing() -> None:
    """An input with required=false is simply absent when its path does not resolve."""
    seen: list[dict[str, Any]] = []

    async def handler(ctx: StageContext) -> None:
        seen.append(dict(ctx.inputs))

    p = pipeline(
        stage(
            "a",
            inputs=(
                InputMapping("goal", "request.goal"),
                InputMapping("extra", "request.extra", required=False),
            ),
        )
    )
    async with Engine(resolver=Resolver({"a": handler})) as engine:  # type: ignore[dict-item]
        await engine.run(p, {"goal": 1})
    assert [{"goal": 1}] == seen


async def test_publishing_an_undeclared_type_raises_inside_the_handler() -> None:
    """ctx.publish of a type outside the stage's emits raises PipelineError in the handler."""
    errors: list[str] = []

    async def handler(ctx: StageContext) -> None:
        try:
            ctx.publish("other.type", {})
        except PipelineError as exc:
            errors.append(str(exc))
            raise

    p = pipeline(stage("a", emits=("spec.ready",)))
    async with Engine(resolver=Resolver({"a": handler})) as engine:  # type: ignore[dict-item]
        result = await engine.run(p)
    assert [
        "stage 'a' cannot publish 'other.type': not in its emits (declared: spec.ready)"
    ] == errors
    assert StageStatus.FAILURE == result.stage_status["a"]


async def test_external_publish_of_an_unknown_type_is_refused() -> None:
    """handle.publish refuses a type no stage listens to and that is not declared external."""
    gate = asyncio.Event()

    async def blocker(ctx: StageContext) -> None:
        await gate.wait()

    p = pipeline(
        stage("a"),
        stage("b", OnEvent("x.y")),
        external_events=("ext",),
    )
    async with Engine(resolver=Resolver({"a": blocker})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(p)
        with pytest.raises(PipelineError, match="no stage listening to 'nope'"):
            handle.publish("nope", {})
        handle.publish("ext", {})  # declared: accepted, starts nothing
        gate.set()
        result = await handle.wait()
    assert StageStatus.SKIPPED == result.stage_status["b"]


async def test_unknown_run_and_stage_are_clear_errors() -> None:
    """Unknown run ids raise RunNotFoundError; unknown stages and non-waiting approvals raise."""
    gate = asyncio.Event()

    async def blocker(ctx: StageContext) -> None:
        await gate.wait()

    async with Engine(resolver=Resolver({"a": blocker})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(pipeline(stage("a")))
        with pytest.raises(RunNotFoundError, match="no run 'nope'"):
            engine.approve("nope", "a")
        with pytest.raises(PipelineError, match="has no stage 'zz'"):
            engine.approve(handle.run_id, "zz")
        with pytest.raises(ApprovalError, match=r"stage 'a' .* is not waiting for an approval"):
            engine.approve(handle.run_id, "a")
        gate.set()
        await handle.wait()
        with pytest.raises(PipelineError, match="has finished"):
            handle.publish("x", {})
    assert handle is engine.get_run(handle.run_id)


async def test_invalid_pipelines_are_refused_at_start() -> None:
    """A reference to an unknown stage is a PipelineError when the run starts."""
    async with Engine(resolver=Resolver()) as engine:
        with pytest.raises(PipelineError, match="unknown stage 'ghost'"):
            await engine.start_run(pipeline(stage("a", *after("ghost"))))


async def test_several_runs_at_once_are_independent() -> None:
    """Two runs of one engine proceed independently and each is steered by its own id."""
    gates = {"one": asyncio.Event(), "two": asyncio.Event()}

    async def handler(ctx: StageContext) -> dict[str, Any]:
        await gates[ctx.inputs["who"]].wait()
        return {"who": ctx.inputs["who"]}

    p = pipeline(stage("a", inputs=(InputMapping("who", "request.who"),)))
    async with Engine(resolver=Resolver({"a": handler})) as engine:
        one = await engine.start_run(p, {"who": "one"})
        two = await engine.start_run(p, {"who": "two"})
        assert {one.run_id, two.run_id} == {h.run_id for h in engine.runs}
        gates["two"].set()
        second = await two.wait()
        assert not one.done
        engine.cancel(one.run_id, by="ops")
        first = await one.wait()
    assert (RunStatus.CANCELLED, RunStatus.SUCCESS) == (first.status, second.status)
    assert "run cancelled by ops" == first.error
    assert {"who": "two"} == dict(second.outputs["a"])


async def test_report_process_and_usage_reach_the_events() -> None:
    """ctx.report_process emits StageProcess; report_usage lands in StageFinished."""

    async def handler(ctx: StageContext) -> None:
        ctx.report_process(4242)
        ctx.report_usage(1.5, 2048)

    recorder = Recorder()
    engine = Engine(resolver=Resolver({"a": handler}), observers=[recorder])  # type: ignore[dict-item]
    async with engine:
        await engine.run(pipeline(stage("a")))
    (process,) = recorder.of(StageProcess)
    (finished,) = recorder.of(StageFinished)
    assert ("a.0.1", 4242) == (process.task_run_id, process.pid)
    assert (1.5, 2048) == (finished.cpu_seconds, finished.peak_memory_bytes)


async def test_stage_exception_is_recorded_unchanged() -> None:
    """StageFinished.exception is the very exception the handler raised."""
    boom = KeyError("k")

    async def handler(ctx: StageContext) -> None:
        raise boom

    recorder = Recorder()
    engine = Engine(resolver=Resolver({"a": handler}), observers=[recorder])  # type: ignore[dict-item]
    async with engine:
        await engine.run(pipeline(stage("a")))
    (finished,) = recorder.of(StageFinished)
    assert finished.exception is boom
    assert "KeyError" == finished.error_type


async def test_pause_gate_is_awaited_before_each_start() -> None:
    """pause_gate sees every execution after it got its slot and before StageStarted."""
    recorder = Recorder()
    gated: list[tuple[str, int]] = []

    async def gate(request: Any) -> None:
        gated.append((request.task_run_id, len(recorder.of(StageStarted))))

    engine = Engine(resolver=Resolver(), observers=[recorder], pause_gate=gate)
    async with engine:
        await engine.run(pipeline(stage("a"), stage("b", *after("a"))))
    assert [("a.0.1", 0), ("b.0.1", 1)] == gated


async def test_workspace_is_one_directory_per_run(tmp_path: Path) -> None:
    """With workspace= each run gets {workspace}/{run_id}, passed to handlers."""
    seen: list[str | None] = []

    async def handler(ctx: StageContext) -> None:
        seen.append(ctx.workspace)

    engine = Engine(resolver=Resolver({"a": handler}), workspace=tmp_path)  # type: ignore[dict-item]
    async with engine:
        result = await engine.run(pipeline(stage("a")))
    assert [str(tmp_path / result.run_id)] == seen
    assert (tmp_path / result.run_id).is_dir()


async def test_full_event_stream_of_plan_spec_fanout_release() -> None:
    """The ordered event stream of Plan → Spec → 2 implementation instances → Release."""

    async def spec(ctx: StageContext) -> dict[str, Any]:
        for n in (1, 2):
            ctx.publish("spec.ready", {"spec": {"n": n}})
        return {"specs": 2}

    async def implement(ctx: StageContext) -> dict[str, Any]:
        assert ctx.event is not None
        return {"done": ctx.inputs["spec"]["n"]}

    p = pipeline(
        stage("plan"),
        stage("spec", *after("plan"), emits=("spec.ready",)),
        stage(
            "impl",
            OnEvent("spec.ready"),
            parallel_instances=1,
            inputs=(InputMapping("spec", "event.spec"),),
        ),
        stage("release", *after("impl")),
        concurrency=1,
    )
    recorder = Recorder()
    engine = Engine(
        resolver=Resolver({"spec": spec, "impl": implement}),
        observers=[recorder],
        clock=Clock(),
    )
    async with engine:
        result = await engine.run(p)
    assert RunStatus.SUCCESS == result.status
    assert {"instances": [{"done": 1}, {"done": 2}]} == dict(result.outputs["impl"])

    def key(e: Any) -> tuple[Any, ...]:
        name = type(e).__name__
        if isinstance(e, StageWaiting | StageSkipped):
            return (name, e.stage)
        if isinstance(e, TriggerEvaluated):
            return (name, e.stage, e.trigger_type, e.satisfied, e.stage_ready)
        if isinstance(e, StageQueued | StageStarted):
            return (name, e.stage, e.instance, e.attempt)
        if isinstance(e, StageFinished):
            return (name, e.stage, e.instance, str(e.status))
        if hasattr(e, "event_type"):
            return (name, e.event_type, e.event_id, e.source.task_run_id)
        return (name, str(getattr(e, "status", "")))

    expected = [
        ("RunStarted", ""),
        ("StageWaiting", "plan"),
        ("TriggerEvaluated", "plan", "manual", True, True),
        ("StageQueued", "plan", 0, 1),
        ("StageStarted", "plan", 0, 1),
        ("StageWaiting", "spec"),
        ("TriggerEvaluated", "spec", "on_completion", False, False),
        ("StageFinished", "plan", 0, "success"),
        ("TriggerEvaluated", "spec", "on_completion", True, True),
        ("StageQueued", "spec", 0, 1),
        ("StageStarted", "spec", 0, 1),
        ("StageWaiting", "impl"),
        ("EventPublished", "spec.ready", 1, "spec.0.1"),
        ("TriggerEvaluated", "impl", "on_event", True, True),
        ("StageQueued", "impl", 0, 1),
        ("EventPublished", "spec.ready", 2, "spec.0.1"),
        ("TriggerEvaluated", "impl", "on_event", True, True),
        ("StageFinished", "spec", 0, "success"),
        ("StageStarted", "impl", 0, 1),
        ("StageWaiting", "release"),
        ("TriggerEvaluated", "release", "on_completion", False, False),
        ("StageFinished", "impl", 0, "success"),
        ("StageQueued", "impl", 1, 1),
        ("StageStarted", "impl", 1, 1),
        ("StageFinished", "impl", 1, "success"),
        ("TriggerEvaluated", "release", "on_completion", True, True),
        ("StageQueued", "release", 0, 1),
        ("StageStarted", "release", 0, 1),
        ("StageFinished", "release", 0, "success"),
        ("RunFinished", "success"),
    ]
    assert expected == [key(e) for e in recorder.events]
    started = {e.task_run_id: e for e in recorder.of(StageStarted)}
    assert (TaskRunRef("plan", 0, 1),) == started["spec.0.1"].fired_by
    assert (TaskRunRef("spec", 0, 1),) == started["impl.1.1"].fired_by
    assert {"spec": {"n": 2}} == dict(started["impl.1.1"].event or {})
    assert (TaskRunRef("impl", 0, 1), TaskRunRef("impl", 1, 1)) == started["release.0.1"].fired_by
    assert isinstance(recorder.events[0], RunStarted)
    assert isinstance(recorder.events[-1], RunFinished)


async def test_entry_trigger_and_manual_are_described() -> None:
    """StageStarted.triggers lists the descriptions of the satisfied triggers."""
    recorder = Recorder()
    p = pipeline(stage("a", entry(), Manual(approval_required=True), trigger_mode=TriggerMode.ANY))
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        handle = await engine.start_run(p)
        await handle.wait()
    (started,) = recorder.of(StageStarted)
    assert ("on run start",) == started.triggers


async def test_run_cancelled_when_engine_context_exits() -> None:
    """Leaving `async with Engine` cancels open runs: running stages end cancelled."""
    cleaned = asyncio.Event()
    started = asyncio.Event()

    async def handler(ctx: StageContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    async with Engine(resolver=Resolver({"a": handler})) as engine:  # type: ignore[dict-item]
        handle = await engine.start_run(pipeline(stage("a"), stage("b", *after("a"))))
        await started.wait()
    result = await handle.wait()
    assert cleaned.is_set()
    assert RunStatus.CANCELLED == result.status
    assert {"a": StageStatus.CANCELLED, "b": StageStatus.SKIPPED} == dict(result.stage_status)


def test_engine_modules_import_no_telemetry() -> None:
    """engine, triggers, model, state and events never import OTel, monitor, metrics, etc."""
    forbidden = ("opentelemetry", "monitor", "metrics", "tracking", "server", "cli")
    offenders = []
    files = [SRC / f"{name}.py" for name in ("triggers", "model", "state", "events")]
    files += sorted((SRC / "engine").glob("*.py"))  # the engine is a package
    assert len(files) > 5
    for path in files:
        module = path.stem if path.parent == SRC else f"engine.{path.stem}"
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "opentelemetry" or (
                    name.startswith("taskdaemon") and any(p in forbidden for p in parts)
                ):
                    offenders.append(f"{module}: {name}")
    assert [] == offenders


async def test_failing_stage_does_not_fail_the_engine() -> None:
    """A failing stage ends its run `failure` with the stage error; the engine stays usable."""
    async with Engine(resolver=Resolver({"a": fail})) as engine:
        result = await engine.run(pipeline(stage("a")))
        again = await engine.run(pipeline(stage("b")))
    assert "stage 'a' failure: a broke" == result.error
    assert RunStatus.SUCCESS == again.status


async def test_raising_pause_gate_fails_the_run_instead_of_hanging() -> None:
    """An exception escaping pause_gate ends the run failure with an internal error."""

    async def gate(request: Any) -> None:
        raise RuntimeError("debugger broke")

    engine = Engine(resolver=Resolver(), pause_gate=gate)
    handle = await engine.start_run(pipeline(stage("a"), stage("b")))
    result = await asyncio.wait_for(handle.wait(), timeout=5)
    assert RunStatus.FAILURE == result.status
    assert "internal error: RuntimeError('debugger broke')" in (result.error or "")
