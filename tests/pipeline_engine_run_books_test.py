"""The run's own books on its hot path: the shortcuts held to the general code's answers.

* ``Triggers.update`` gives a one-trigger stage its ``fired_by`` without
  ``collect_fired_by``: the records must carry what that method answers;
* a run's fields are slots (``RunBase.__slots__``; its parts add none);
* the engine's resolver is asked once a run, and each stage's handler resolved once a run.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver, after, entry, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.engine._run import Run
from taskdaemon.pipeline.events import StageStarted, TaskRunRef
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import OnEvent, Pipeline, Stage, TriggerMode

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
