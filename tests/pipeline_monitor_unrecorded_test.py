"""Records the monitor makes nothing of are dropped on arrival unless a hook wants them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from pipeline_monitor_support import Telemetry, chain_pipeline
from taskdaemon.pipeline import run_log
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import (
    OPTIONAL_RECORDS,
    EngineEvent,
    StageFinished,
    StageQueued,
    StageStarted,
    StageWaiting,
)
from taskdaemon.pipeline.log_levels import TRACE
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.run_log import DECISION_LOGGER, EVENT_LOGGER, RunLog
from taskdaemon.pipeline.run_log_scope import LOGGED

UNRECORDED = {StageQueued, StageWaiting}


class _Resolver:
    """Resolves every stage to a no-op async handler."""

    def resolve(self, pipeline: Any, stage: Any) -> Any:
        async def handler(ctx: StageContext) -> dict[str, Any]:
            return {}

        return handler


class _Hook:
    """Keeps the type of every record it is called with; ``answer`` is its ``wants``."""

    def __init__(self, answer: bool | None) -> None:
        self.kinds: list[type] = []
        if answer is not None:
            self.wants = lambda kind: answer

    def __call__(self, event: EngineEvent, span: Any) -> None:
        self.kinds.append(type(event))


def _run(monitor: PipelineMonitor) -> None:
    async def play() -> None:
        engine = Engine(resolver=_Resolver(), observers=[monitor])  # type: ignore[arg-type]
        await engine.run(chain_pipeline(), {})

    asyncio.run(play())
    monitor.flush()


def _span_shapes(tel: Telemetry) -> list[tuple[str, int, int, int]]:
    return [
        (span.name, len(span.attributes or {}), len(span.events), len(span.links))
        for span in tel.spans()
    ]


def test_the_monitor_ignores_exactly_the_waiting_records() -> None:
    """The records the recorder makes nothing of are the two waiting records of a stage."""
    assert PipelineMonitor()._unrecorded == UNRECORDED


def test_a_hook_without_wants_gets_every_record(tel: Telemetry) -> None:
    """A hook that does not say what it wants still gets the records the recorder ignores."""
    monitor = tel.monitor()
    hook = _Hook(None)
    monitor.add_event_hook(hook)
    _run(monitor)
    assert UNRECORDED <= set(hook.kinds)


def test_dropping_unwanted_records_leaves_the_spans_alone() -> None:
    """With every hook declining them, the waiting records are dropped, the hook gets the
    others, and the spans (names, attribute, event and link counts) are those of a run that
    handled them."""
    shapes = []
    for answer in (True, False):
        telemetry = Telemetry()
        try:
            monitor = telemetry.monitor()
            hook = _Hook(answer)
            monitor.add_event_hook(hook)
            _run(monitor)
            shapes.append(_span_shapes(telemetry))
        finally:
            telemetry.shutdown()
        assert bool(UNRECORDED & set(hook.kinds)) is answer
        assert len(hook.kinds) > 6
    assert shapes[0] == shapes[1]
    assert len(shapes[0]) == 4  # the run and its three stages


@pytest.mark.parametrize(
    ("logger", "level", "wanted"),
    [
        (DECISION_LOGGER, logging.INFO, set()),
        (DECISION_LOGGER, logging.DEBUG, {StageQueued}),
        (EVENT_LOGGER, TRACE, UNRECORDED),
    ],
)
def test_the_run_log_wants_waiting_records_only_at_their_levels(
    logger: str, level: int, wanted: set[type]
) -> None:
    """The run log asks for `StageQueued` at DEBUG (its slot wait) and for both waiting
    records at TRACE (every engine event), and for neither below."""
    target = logging.getLogger(logger)
    target.setLevel(level)
    try:
        assert {kind for kind in UNRECORDED if RunLog().wants(kind)} == wanted
    finally:
        target.setLevel(logging.NOTSET)


def test_the_monitor_tells_the_engine_which_records_to_skip() -> None:
    """``wants_record`` answers as ``on_event`` drops: the waiting records only when some hook
    wants them, every other record always; a hook without ``wants`` wants them all."""
    monitor = PipelineMonitor()
    monitor.add_event_hook(_Hook(False))
    assert not any(monitor.wants_record(kind) for kind in UNRECORDED)
    assert all(monitor.wants_record(kind) for kind in (StageStarted, StageFinished))
    monitor.add_event_hook(_Hook(None))
    assert all(monitor.wants_record(kind) for kind in UNRECORDED)


def test_the_run_log_s_scope_names_the_types_it_writes() -> None:
    """``run_log_scope.LOGGED`` (what ``taskdaemon run``'s stand-in answers from before the run
    log exists) is the run log's own list of handled types, and the optional records are the
    ones the monitor makes nothing of."""
    assert set(run_log._HANDLERS) == LOGGED
    assert OPTIONAL_RECORDS == UNRECORDED


class _FailingWants:
    """A hook whose ``wants`` raises."""

    def wants(self, kind: type) -> bool:
        raise RuntimeError("no")

    def __call__(self, event: EngineEvent, span: Any) -> None:
        pass


def test_a_hook_that_fails_on_wants_counts_as_wanting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook whose ``wants`` raises counts as wanting the record, logged once per type:
    ``wants_record`` never raises (the engine calls it directly: ``guards_itself``)."""
    monitor = PipelineMonitor(resource_sampling=False)
    monitor.add_event_hook(_FailingWants())
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.monitor"):
        answers = [monitor.wants_record(StageQueued), monitor.wants_record(StageQueued)]
    assert ([True, True], ["monitor failed asking a hook about a StageQueued record"]) == (
        answers,
        [r.getMessage() for r in caplog.records],
    )


def test_a_record_the_queue_fails_on_is_logged_once_and_not_raised(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record whose handling raises is logged once per type; ``on_event`` never raises."""
    monitor = PipelineMonitor(resource_sampling=False)

    def failing(record: object) -> None:
        raise RuntimeError("no")

    monkeypatch.setattr(monitor._queue, "handle_now", failing)
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.monitor"):
        for _ in range(2):
            monitor.on_event(StageFinished.__new__(StageFinished))
    assert ["monitor failed recording a StageFinished record"] == [
        r.getMessage() for r in caplog.records
    ]


def test_the_engine_calls_a_sole_monitor_directly() -> None:
    """As the only observer, the monitor (which guards itself) is handed records directly."""
    monitor = PipelineMonitor(resource_sampling=False)
    engine = Engine(resolver=_Resolver(), observers=[monitor])  # type: ignore[arg-type]
    assert (monitor.on_event, monitor.wants_record) == (
        engine._ctx.emit,
        engine._ctx.wants_record,
    )
