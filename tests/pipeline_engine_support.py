"""Helpers for the engine tests: a resolver over plain async functions, a recording observer,
a fake sleep that records delays, and short builders for stages and pipelines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from taskdaemon.pipeline.events import EngineEvent
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    Manual,
    OnCompletion,
    Pipeline,
    RetryPolicy,
    Stage,
    Trigger,
)

HandlerFn = Callable[[StageContext], Awaitable[Any]]


async def noop(ctx: StageContext) -> Mapping[str, Any]:
    """A handler that does nothing and returns no outputs."""
    return {}


async def fail(ctx: StageContext) -> Mapping[str, Any]:
    """A handler that always fails."""
    raise RuntimeError(f"{ctx.stage} broke")


class Resolver:
    """Resolves a stage to the handler registered under its name, else its loop, else noop."""

    def __init__(self, handlers: Mapping[str, HandlerFn] | None = None) -> None:
        self.handlers = dict(handlers or {})

    def resolve(self, pipeline: Pipeline, stage: Stage) -> HandlerFn:
        return self.handlers.get(stage.name) or self.handlers.get(stage.loop) or noop


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def on_event(self, event: EngineEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class FakeSleep:
    """Records each delay and returns at once (after one loop turn)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class Clock:
    """A clock that advances one second per reading."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def entry() -> Manual:
    """The trigger of a stage that starts with the run."""
    return Manual(approval_required=False)


def after(*names: str, success_only: bool = True) -> tuple[OnCompletion, ...]:
    """on_completion triggers on each name."""
    return tuple(OnCompletion(name, success_only) for name in names)


def stage(name: str, *triggers: Trigger, **fields: Any) -> Stage:
    """A python-loop stage with the given triggers (an entry stage without any)."""
    return Stage(
        name=name, loop=fields.pop("loop", "python"), triggers=triggers or (entry(),), **fields
    )


def pipeline(*stages: Stage, **fields: Any) -> Pipeline:
    """A pipeline called ``p`` with the given stages."""
    return Pipeline(name=fields.pop("name", "p"), stages=stages, **fields)


def retry(
    max_attempts: int, initial: float = 1.0, factor: float = 2.0, maximum: float = 30.0
) -> RetryPolicy:
    """A retry policy with an exponential backoff."""
    from taskdaemon.pipeline.model import Backoff

    return RetryPolicy(max_attempts, Backoff(initial, factor, maximum))


__all__ = [
    "Clock",
    "ErrorStrategy",
    "FakeSleep",
    "Recorder",
    "Resolver",
    "after",
    "entry",
    "fail",
    "noop",
    "pipeline",
    "retry",
    "stage",
]


def plain_context(loop: str = "python") -> StageContext:
    """A stage context of ``loop`` outside any engine (no inputs, plain callbacks that do
    nothing), for the tests that call a handler themselves."""
    return StageContext(
        run_id="r",
        pipeline="p",
        stage="s",
        loop=loop,
        instance=0,
        attempt=1,
        inputs={},
        publish=lambda kind, payload: None,
        report_process=lambda pid: None,
    )
