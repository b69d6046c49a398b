"""The run's own books on its hot path: the shortcuts held to the general code's answers.

* ``Triggers.update`` gives a one-trigger stage its ``fired_by`` without
  ``collect_fired_by``: the records must carry what that method answers;
* a run's fields are slots (``RunBase.__slots__``; its parts add none);
* the engine's resolver is asked once a run, and each stage's handler resolved once a run;
* ``StageRun.ready``, which ``Triggers.record`` keeps, is always ``readiness()``.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver, after, entry, fail, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.engine._run import Run
from taskdaemon.pipeline.events import EngineEvent, StageStarted, TaskRunRef, TriggerEvaluated
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    OnCondition,
    OnEvent,
    Pipeline,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)


async def _spec(ctx: StageContext) -> dict[str, Any]:
    for n in (1, 2):
        ctx.publish("spec.ready", {"n": n})
    return {}


def _fan() -> Pipeline:
    """Stages of one trigger (a manual one, on one upstream instance, on two), of two in mode
    ``any`` and ``all``, and an event stage with two instances."""
    return pipeline(
        stage("plan"),
        stage("spec", *after("plan"), emits=("spec.ready",)),
        stage("impl", OnEvent("spec.ready")),
        stage("release", *after("impl")),
        stage("either", *after("plan", "spec")),
        stage("both", *after("spec", "release"), trigger_mode=TriggerMode.ALL),
        stage("solo", entry()),
    )


async def test_a_one_trigger_stage_is_fired_by_what_collect_fired_by_answers() -> None:
    recorder = Recorder()
    runs: list[Run] = []
    engine = Engine(resolver=Resolver({"spec": _spec}), observers=[recorder])
    async with engine:
        handle = await engine.start_run(_fan())
        runs.append(handle._run)
        await handle.wait()
    run = runs[0]
    started = {e.stage: e.fired_by for e in recorder.of(StageStarted) if e.stage != "impl"}
    assert {
        "plan": (),
        "solo": (),
        "spec": (TaskRunRef("plan", 0, 1),),
        "release": (TaskRunRef("impl", 0, 1), TaskRunRef("impl", 1, 1)),
        "either": (TaskRunRef("plan", 0, 1),),
        "both": (TaskRunRef("spec", 0, 1), TaskRunRef("release", 0, 1)),
    } == started
    # The shortcut (the one-trigger stages above) and the general method agree on each stage;
    # the run's books still hold what the stage fired on.
    for name, fired_by in started.items():
        assert run.collect_fired_by(run.stages[name]) == fired_by, name


def test_a_run_keeps_its_fields_in_slots() -> None:
    for part in Run.__mro__[:-1]:
        assert "__slots__" in vars(part), part
    assert "__dict__" not in dir(Run)


class CountingResolver:
    def __init__(self) -> None:
        self.resolved: list[str] = []
        self.inner = Resolver()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        self.resolved.append(stage.name)
        return self.inner.resolve(pipeline, stage)


async def test_each_run_resolves_each_stage_once() -> None:
    resolver = CountingResolver()
    asked = 0

    class Counted(Engine):
        def _resolver_or_default(self) -> Any:
            nonlocal asked
            asked += 1
            return super()._resolver_or_default()

    chain = pipeline(stage("a"), stage("b", *after("a")), stage("c", *after("b")))
    async with Counted(resolver=resolver) as engine:
        await engine.run(chain)
        await engine.run(chain)
    assert ["a", "b", "c", "a", "b", "c"] == resolver.resolved
    assert 2 == asked  # the engine's resolver, asked once a run


async def test_a_stages_ready_is_its_readiness_after_every_record() -> None:
    """Stages that become ready, impossible (a failed upstream, in either mode) and stay
    pending, by completion, condition and event triggers: after every record, each stage's
    kept ``ready`` is what ``readiness()`` computes from its counters."""
    engine: Engine
    checked: list[str] = []

    class Check:
        def on_event(self, event: EngineEvent) -> None:
            run = engine.get_run(event.run_id)._run
            for name, srt in run.stages.items():
                assert srt.ready is srt.readiness(), (type(event).__name__, name)
            if isinstance(event, TriggerEvaluated):
                checked.append(f"{event.stage} {event.satisfied} {event.stage_ready}")

    p = pipeline(
        *_fan().stages,
        stage("broken", entry()),
        stage("after_broken", *after("broken")),
        stage("any_broken", *after("broken", "plan")),
        stage("all_broken", *after("plan", "broken"), trigger_mode=TriggerMode.ALL),
        stage("cond", OnCondition("stages.plan.status == 'success'")),
        stage("never", OnCondition("request.go == true")),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    engine = Engine(resolver=Resolver({"spec": _spec, "broken": fail}), observers=[Check()])
    async with engine:
        result = await engine.run(p, {"go": False})
    assert RunStatus.FAILURE == result.status
    assert {
        "after_broken": StageStatus.SKIPPED,
        "any_broken": StageStatus.SUCCESS,
        "all_broken": StageStatus.SKIPPED,
        "cond": StageStatus.SUCCESS,
        "never": StageStatus.SKIPPED,
        "both": StageStatus.SUCCESS,
    }.items() <= dict(result.stage_status).items()
    assert "all_broken False False" in checked  # impossible: stage_ready stays false
    assert "cond True True" in checked
