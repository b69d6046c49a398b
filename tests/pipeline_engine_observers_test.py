"""The engine's observers (``engine/_observers.py``): a sole observer that guards itself is
called directly, and gets the records and the questions the guarded fan-out would give it."""

from __future__ import annotations

import logging
from typing import ClassVar

import pytest

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import OPTIONAL_RECORDS, EngineEvent, StageQueued, StageWaiting

pytestmark = pytest.mark.timeout(10)


class Guarding(Recorder):
    """A recorder that promises its entry points never raise."""

    guards_itself: ClassVar[bool] = True


class GuardingDeclining(Guarding):
    """A guarding recorder that declines every optional record and notes what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def wants_record(self, kind: type) -> bool:
        self.asked.append(kind.__name__)
        return False


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
