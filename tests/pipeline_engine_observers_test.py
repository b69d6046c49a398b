"""The engine's observers (``engine/_observers.py``): the guarded fan-out of records and the
optional hooks (run ids, the records wanted, a stage's environment), an observer that raises
or steers the run, and a sole observer that guards itself, called directly, getting the
records and the questions the guarded fan-out would give it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import (
    OPTIONAL_RECORDS,
    EngineEvent,
    StageQueued,
    StageStarted,
    StageWaiting,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Manual, TriggerMode
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)


class Guarding(Recorder):
    """A recorder that promises its entry points never raise."""

    guards_itself: ClassVar[bool] = True


class Declining(Recorder):
    """A recorder that declines every optional record and notes what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def wants_record(self, kind: type) -> bool:
        self.asked.append(kind.__name__)
        return False


class GuardingDeclining(Guarding, Declining):
    """A guarding recorder that declines every optional record and notes what it was asked."""


class Raising(Recorder):
    """A recorder that fails on every record after keeping it (and does not guard itself)."""

    def on_event(self, event: EngineEvent) -> None:
        super().on_event(event)
        raise RuntimeError("no")


PIPELINE = pipeline(stage("a"), stage("b", *after("a")), stage("c", *after("b")))


async def test_a_sole_guarding_observer_gets_what_the_fan_out_hands_out() -> None:
    """Called directly, a guarding observer receives the same records, in the same order, as
    one handed them by the fan-out."""
    guarding, plain = Guarding(), Recorder()
    for observer in (guarding, plain):
        async with Engine(resolver=Resolver(), observers=[observer]) as engine:
            await engine.run(PIPELINE)
    assert plain.names() == guarding.names()


def test_a_sole_guarding_observer_is_called_directly() -> None:
    """The engine hands records to a sole guarding observer's own ``on_event``."""
    guarding = Guarding()
    engine = Engine(resolver=Resolver(), observers=[guarding])
    assert guarding.on_event == engine._ctx.emit


def test_an_observer_that_does_not_guard_itself_goes_through_the_fan_out() -> None:
    """An observer without ``guards_itself`` is called through the guarding fan-out."""
    engine = Engine(resolver=Resolver(), observers=[Recorder()])
    assert engine._observers.emit == engine._ctx.emit


async def test_a_second_observer_brings_the_guarded_fan_out_back() -> None:
    """Beside a raising observer, a guarding one and the raising one each get every record
    and the run succeeds: the fan-out guards the raising one."""
    guarding, raising, alone = Guarding(), Raising(), Recorder()
    async with Engine(resolver=Resolver(), observers=[alone]) as engine:
        await engine.run(PIPELINE)
    async with Engine(resolver=Resolver(), observers=[guarding, raising]) as engine:
        result = await engine.run(PIPELINE)
    assert (True, alone.names(), alone.names()) == (
        result.succeeded,
        guarding.names(),
        raising.names(),
    )


def test_removing_the_other_observer_calls_the_guarding_one_directly_again() -> None:
    """Once the second observer is removed, the guarding one is called directly again."""
    guarding, other = Guarding(), Recorder()
    engine = Engine(resolver=Resolver(), observers=[guarding, other])
    engine.remove_observer(other)
    assert guarding.on_event == engine._ctx.emit


async def test_a_sole_guarding_observer_is_asked_which_records_it_wants() -> None:
    """A sole guarding observer's ``wants_record`` is asked for each optional record, and the
    records it declines are not built, as through the fan-out."""
    declining = GuardingDeclining()
    async with Engine(resolver=Resolver(), observers=[declining]) as engine:
        await engine.run(PIPELINE)
    assert ({kind.__name__ for kind in OPTIONAL_RECORDS}, []) == (
        set(declining.asked),
        declining.of(StageWaiting) + declining.of(StageQueued),
    )


async def test_a_sole_guarding_observer_without_the_hook_gets_every_record() -> None:
    """A sole guarding observer without ``wants_record`` gets the optional records too."""
    guarding = Guarding()
    async with Engine(resolver=Resolver(), observers=[guarding]) as engine:
        await engine.run(PIPELINE)
    assert (3, 3) == (len(guarding.of(StageQueued)), len(guarding.of(StageWaiting)))


async def test_the_fan_out_still_logs_a_raising_observer_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a guarding observer beside it, a raising observer is logged once per record type."""
    with caplog.at_level(logging.ERROR, logger="taskdaemon.pipeline.engine"):
        async with Engine(resolver=Resolver(), observers=[Guarding(), Raising()]) as engine:
            await engine.run(PIPELINE)
    messages = [r.getMessage() for r in caplog.records]
    assert 1 == sum("failed on StageStarted" in message for message in messages)


class _Closed(logging.Handler):
    """A handler whose stream is gone, as stderr closed by stage code: every record raises."""

    def emit(self, record: logging.LogRecord) -> None:
        raise ValueError("I/O operation on closed file.")


async def test_a_raising_observer_whose_log_line_raises_does_not_stop_the_run() -> None:
    """The observer's failure, logged to a handler that raises, raised out of the dispatch:
    the stage's end was lost (``taskdaemon run`` hung on ``sys.stderr.close()``)."""
    closed = _Closed()
    engine_logger = logging.getLogger("taskdaemon.pipeline.engine")
    engine_logger.addHandler(closed)
    try:
        async with Engine(resolver=Resolver(), observers=[Guarding(), Raising()]) as engine:
            result = await asyncio.wait_for(engine.run(PIPELINE), 5)
    finally:
        engine_logger.removeHandler(closed)
    assert RunStatus.SUCCESS == result.status


async def test_run_id_comes_from_the_first_observer_that_answers() -> None:
    """allocate_run_id: a raising or invalid answer is skipped, the first 32-hex wins."""

    class Broken(Recorder):
        def allocate_run_id(self, pipeline: Any, request: Any) -> str:
            raise RuntimeError("no")

    class Invalid(Recorder):
        def allocate_run_id(self, pipeline: Any, request: Any) -> str:
            return "not-hex"

    class Good(Recorder):
        def allocate_run_id(self, pipeline: Any, request: Any) -> str:
            return "ab" * 16

    engine = Engine(resolver=Resolver(), observers=[Broken(), Invalid(), Good()])
    async with engine:
        result = await engine.run(pipeline(stage("a")))
    assert "ab" * 16 == result.run_id


async def test_records_no_observer_wants_are_not_built(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """wants_record: StageWaiting and StageQueued are built only when some observer wants
    them; an observer without the hook wants every record, and a raising hook counts as
    wanting (logged once). Other records never ask."""

    class RaisingHook(Declining):
        def wants_record(self, kind: type) -> bool:
            raise RuntimeError("no")

    p = pipeline(stage("a"), stage("b", *after("a")))
    declining = Declining()
    async with Engine(resolver=Resolver(), observers=[declining]) as engine:
        await engine.run(p)
    assert [] == declining.of(StageWaiting) + declining.of(StageQueued)
    assert {kind.__name__ for kind in OPTIONAL_RECORDS} == set(declining.asked)
    assert 2 == len(declining.of(StageStarted))

    declining, keeping = Declining(), Recorder()
    async with Engine(resolver=Resolver(), observers=[declining, keeping]) as engine:
        await engine.run(p)
    assert keeping.names() == declining.names()
    assert 2 == len(keeping.of(StageQueued))

    raising = RaisingHook()
    with caplog.at_level(logging.ERROR, logger="taskdaemon.pipeline.engine"):
        async with Engine(resolver=Resolver(), observers=[raising]) as engine:
            await engine.run(p)
    assert 2 == len(raising.of(StageQueued))
    assert 1 == sum("wants_record failed on StageQueued" in r.getMessage() for r in caplog.records)


async def test_default_run_id_is_32_hex() -> None:
    """Without an allocating observer the run id is 32 lowercase hex digits."""
    async with Engine(resolver=Resolver()) as engine:
        result = await engine.run(pipeline(stage("a")))
    assert 32 == len(result.run_id)
    assert set(result.run_id) <= set("0123456789abcdef")


async def test_raising_observer_is_logged_once_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observer that raises on every event is logged once per event type; the run is intact."""

    class Angry:
        def on_event(self, event: Any) -> None:
            raise ValueError("boom")

    recorder = Recorder()
    p = pipeline(stage("a"), stage("b", *after("a")), stage("c", *after("b")))
    with caplog.at_level(logging.ERROR, logger="taskdaemon.pipeline.engine"):
        async with Engine(resolver=Resolver(), observers=[Angry(), recorder]) as engine:
            result = await engine.run(p)
    assert RunStatus.SUCCESS == result.status
    started = [r for r in caplog.records if "StageStarted" in r.getMessage()]
    assert 1 == len(started)
    assert "RunFinished" == type(recorder.events[-1]).__name__


async def test_stage_environment_answers_are_merged_into_the_context() -> None:
    """stage_environment answers of observers reach ctx.environment, after StageStarted."""
    seen: list[dict[str, str]] = []

    class Env(Recorder):
        def stage_environment(self, event: StageStarted) -> dict[str, str]:
            return {"TRACEPARENT": f"tp-{event.task_run_id}"}

    class Env2(Recorder):
        def stage_environment(self, event: StageStarted) -> dict[str, str]:
            return {"OTHER": "1"}

    async def handler(ctx: StageContext) -> None:
        seen.append(dict(ctx.environment))

    engine = Engine(resolver=Resolver({"a": handler}), observers=[Env(), Env2()])  # type: ignore[dict-item]
    async with engine:
        await engine.run(pipeline(stage("a")))
    assert [{"TRACEPARENT": "tp-a.0.1", "OTHER": "1"}] == seen


async def test_stage_environment_is_asked_only_when_a_handler_reads_it() -> None:
    """Hooks run on the first read of ctx.environment, once; a handler that never reads it
    never makes an observer answer (nothing on the critical path for most Python stages)."""
    asked: list[str] = []

    class Env(Recorder):
        def stage_environment(self, event: StageStarted) -> dict[str, str]:
            asked.append(event.stage)
            return {"TRACEPARENT": "tp"}

    async def reads(ctx: StageContext) -> None:
        assert "tp" == ctx.environment["TRACEPARENT"]
        assert {"TRACEPARENT": "tp"} == dict(ctx.environment)

    async def ignores(ctx: StageContext) -> None:
        return None

    handlers = {"a": ignores, "b": reads}
    engine = Engine(resolver=Resolver(handlers), observers=[Env()])  # type: ignore[arg-type]
    async with engine:
        result = await engine.run(pipeline(stage("a"), stage("b", *after("a"))))
    assert RunStatus.SUCCESS == result.status
    assert ["b"] == asked


async def test_observers_can_be_added_and_removed_twice() -> None:
    """add_observer and remove_observer are idempotent."""
    recorder = Recorder()
    engine = Engine(resolver=Resolver())
    engine.add_observer(recorder)
    engine.add_observer(recorder)
    async with engine:
        await engine.run(pipeline(stage("a")))
    count = len(recorder.events)
    assert 1 == recorder.names().count("RunStarted")
    engine.remove_observer(recorder)
    engine.remove_observer(recorder)
    async with engine:
        await engine.run(pipeline(stage("a")))
    assert count == len(recorder.events)


async def test_observer_may_steer_the_run_from_inside_on_event() -> None:
    """An observer that approves on ApprovalRequested (re-entrantly) gets the stage started."""

    class AutoApprove:
        def __init__(self) -> None:
            self.engine: Engine | None = None

        def on_event(self, event: Any) -> None:
            if type(event).__name__ == "ApprovalRequested":
                assert self.engine is not None
                self.engine.approve(event.run_id, event.stage, by="bot")

    observer = AutoApprove()
    engine = Engine(resolver=Resolver(), observers=[observer])
    observer.engine = engine
    approval = Manual(approval_required=True)
    p = pipeline(stage("a"), stage("b", *after("a"), approval, trigger_mode=TriggerMode.ALL))
    result = await asyncio.wait_for(engine.run(p), timeout=5)
    assert {"a": StageStatus.SUCCESS, "b": StageStatus.SUCCESS} == dict(result.stage_status)
