"""The monitor calls the run log only with the records it may write something for."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from pipeline_monitor_support import Telemetry, chain_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, TriggerEvaluated
from taskdaemon.pipeline.log_levels import TRACE
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.run_log import RunLog


class _Resolver:
    """Resolves every stage to a no-op async handler."""

    def resolve(self, pipeline: Any, stage: Any) -> Any:
        async def handler(ctx: StageContext) -> dict[str, Any]:
            return {}

        return handler


class _Counted(RunLog):
    """The run log, keeping the type of every record it is called with."""

    def __init__(self, *, take_all: bool) -> None:
        super().__init__()
        self.kinds: list[type] = []
        if take_all:  # as before ``takes``: every record the monitor handles
            self.takes = lambda kind: True  # type: ignore[method-assign]

    def __call__(self, event: EngineEvent, span: Any) -> None:
        self.kinds.append(type(event))
        super().__call__(event, span)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(TRACE)
        self.lines: list[tuple[str, Any, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        span = getattr(record, "span_id", None) is not None
        self.lines.append((record.name, getattr(record, "stage", None), span))


def _play(take_all: bool) -> tuple[list[type], list[tuple[str, Any, bool]]]:
    """A monitored chain run: the kinds the run log was called with, and the logger, stage
    and presence of a span id of each record it wrote."""
    telemetry = Telemetry()
    keep = _Keep()
    logger = logging.getLogger("taskdaemon.run")
    logger.addHandler(keep)
    try:
        monitor = telemetry.monitor()
        hook = _Counted(take_all=take_all)
        monitor.add_event_hook(hook)

        async def play() -> None:
            engine = Engine(resolver=_Resolver(), observers=[monitor])  # type: ignore[arg-type]
            await engine.run(chain_pipeline(), {})

        asyncio.run(play())
        monitor.flush()
    finally:
        logger.removeHandler(keep)
        telemetry.shutdown()
    return hook.kinds, keep.lines


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG, TRACE])
def test_records_the_run_log_skips_change_nothing_it_writes(level: int) -> None:
    """At INFO the trigger evaluations never reach the run log (nor is their span looked up);
    at DEBUG and TRACE they do. What it writes is the same as when it is called with every
    record."""
    logger = logging.getLogger("taskdaemon.run")
    logger.setLevel(level)
    try:
        kinds, lines = _play(take_all=False)
        all_kinds, all_lines = _play(take_all=True)
    finally:
        logger.setLevel(logging.NOTSET)
    assert (TriggerEvaluated in kinds) is (level < logging.INFO)
    assert TriggerEvaluated in all_kinds
    assert lines == all_lines
    assert len(lines) > 0
