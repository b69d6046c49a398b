"""``taskdaemon run``'s stand-in monitor (``cli/deferred.py``): a run that starts before its
monitor exists is recorded as if the monitor had been there from the start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from cli_support import environment
from pipeline_monitor_support import chain_pipeline, started_record
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.cli import build_parser
from taskdaemon.pipeline.cli import deferred as deferred_module
from taskdaemon.pipeline.cli.deferred import DeferredMonitor
from taskdaemon.pipeline.cli.run import ApprovalPolicy, build_observers
from taskdaemon.pipeline.cli.run_ids import PresetIdGenerator, preset_span_id, preset_trace_id
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import OPTIONAL_RECORDS, StageFinished, StageQueued, StageStarted
from taskdaemon.pipeline.log_levels import TRACE
from taskdaemon.pipeline.loops import LoopRegistry, StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.run_log import RunLog
from taskdaemon.pipeline.run_log_scope import DECISION_LOGGER, EVENT_LOGGER
from taskdaemon.pipeline.run_log_scope import wants as run_log_wants
from taskdaemon.pipeline.stage_output import OutputBatch


class Spans:
    """A real tracer provider (the preset id generator) exporting to memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(id_generator=PresetIdGenerator())
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def monitor(self) -> PipelineMonitor:
        """A monitor on this provider (no metrics, no resource sampling)."""
        return PipelineMonitor(tracer_provider=self.provider, resource_sampling=False)


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Spans of one test; the provider shut down after it."""
    made = Spans()
    yield made
    made.provider.shutdown()


class Resolver:
    """Each stage runs ``handler``."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.registry = LoopRegistry()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return self.handler


async def run_late(
    spans: Spans, pipeline: Pipeline, *, read_environment: bool = False
) -> tuple[str, DeferredMonitor, PipelineMonitor, list[Mapping[str, str]]]:
    """Run ``pipeline`` with a stand-in whose monitor is made on a thread started by the first
    stage (so the run's start and that stage's start are kept, then handed over)."""
    deferred = DeferredMonitor(PayloadCapture())
    monitor = spans.monitor()
    loader = threading.Thread(
        target=deferred.started, args=(monitor, preset_trace_id, preset_span_id)
    )
    environments: list[Mapping[str, str]] = []

    async def handler(ctx: StageContext) -> Mapping[str, Any]:
        if not loader.is_alive() and loader.ident is None:
            loader.start()
        if read_environment:
            environments.append(dict(ctx.environment))
        return {}

    engine = Engine(resolver=Resolver(handler), observers=[deferred])
    async with engine:
        result = await engine.run(pipeline, {})
    loader.join()
    monitor.close()
    assert result.succeeded
    return result.run_id, deferred, monitor, environments


async def test_a_run_started_before_its_monitor_is_fully_recorded(spans: Spans) -> None:
    """Events kept before the monitor existed are handed over in order: one trace whose id is
    the run id, the run span its root, every stage span its child, each ended."""
    run_id, deferred, _, _ = await run_late(spans, chain_pipeline(("a", "b", "c")))
    finished = spans.exporter.get_finished_spans()
    run_span = next(s for s in finished if s.name.startswith("RUN "))
    stage_names = sorted(s.name for s in finished if s is not run_span)
    assert run_span.context is not None
    expected = (run_id, run_id, 3, {run_span.context.span_id}, 0)
    actual = (
        format_trace_id(run_span.context.trace_id),
        (run_span.attributes or {}).get(t.CICD_PIPELINE_RUN_ID),
        len(stage_names),
        {s.parent.span_id for s in finished if s is not run_span and s.parent is not None},
        deferred.lost,
    )
    assert expected == actual, stage_names
    assert {format_trace_id(s.context.trace_id) for s in finished if s.context} == {run_id}


async def test_a_stage_environment_carries_its_span(spans: Spans) -> None:
    """A stage reading its environment while the monitor may still be loading gets the
    ``TRACEPARENT`` of its own stage span."""
    run_id, _, _, environments = await run_late(
        spans, chain_pipeline(("a",)), read_environment=True
    )
    (stage_span,) = [s for s in spans.exporter.get_finished_spans() if not s.name.startswith("RUN")]
    assert stage_span.context is not None
    expected = [run_id, format_span_id(stage_span.context.span_id)]
    assert [expected] == [env.get("TRACEPARENT", "").split("-")[1:3] for env in environments]


async def test_a_monitor_that_never_loads_does_not_stop_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When loading fails the run still succeeds; the kept and later events are counted as
    lost and one warning says so with the reason."""
    deferred = DeferredMonitor(PayloadCapture())

    async def handler(ctx: StageContext) -> Mapping[str, Any]:
        deferred.failed("ImportError: no SDK")
        return {}

    engine = Engine(resolver=Resolver(handler), observers=[deferred])
    async with engine:
        result = await engine.run(chain_pipeline(("a", "b")), {})
    with caplog.at_level(logging.WARNING, logger="taskdaemon.run"):
        deferred.report()
    assert (True, True) == (result.succeeded, deferred.lost > 0)
    assert [f"{deferred.lost} engine events were not recorded"] == [
        r.getMessage().split(":")[0] for r in caplog.records
    ]
    assert "no SDK" in caplog.records[0].getMessage()


def test_run_ids_drawn_before_the_monitor_become_trace_ids(spans: Spans) -> None:
    """The preset id generator gives a span started inside ``preset_trace_id`` that trace id,
    and random ones outside."""
    tracer = spans.provider.get_tracer("test")
    run_id = "0af7651916cd43dd8448eb211c80319c"
    with preset_trace_id(run_id):
        inside = tracer.start_span("inside")
    outside = tracer.start_span("outside")
    inside.end()
    outside.end()
    ids = [format_trace_id(s.get_span_context().trace_id) for s in (inside, outside)]
    assert (run_id, False) == (ids[0], ids[1] == run_id)


def record(message: str, run_id: str | None) -> logging.LogRecord:
    """A record as ``logging`` makes it, with ``run_id`` as an extra when given."""
    extra = {"run_id": run_id} if run_id else None
    return logging.getLogger("test.pending").makeRecord(
        "test.pending", logging.INFO, __file__, 1, message, (), None, extra=extra
    )


class Collect(logging.Handler):
    """Keeps the messages it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Timeline(logging.Handler):
    """One list of what a monitor is handed (event types) and what the store's handler and
    writer are (record messages, output lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def on_event(self, event: object) -> None:
        self.seen.append(type(event).__name__)

    def on_events(self, events: list[object]) -> None:
        self.seen.extend(type(event).__name__ for event in events)

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())

    def write_output(self, batch: OutputBatch) -> None:
        self.seen.extend(f"{batch.stream} {text}" for text in batch.texts)


def test_run_records_and_output_kept_meanwhile_land_in_their_place() -> None:
    """A run's records and a command's output offered to the slot before the monitor has the
    kept events are handed over in their place among those events, also once the store's
    writer is attached; a record of no run is not kept; once live, each goes through."""
    deferred = DeferredMonitor(PayloadCapture())
    slot, timeline = deferred.slot, Timeline()
    deferred.on_event(started_record("a"))
    slot.handle(record("a logs", "r"))
    slot.handle(record("no run", None))
    deferred.on_event(started_record("b"))
    slot.write_output(OutputBatch("r", "p", "b", 0, 1, None, None, "stderr", ("b prints",)))
    slot.attach(timeline, timeline)
    slot.handle(record("kept still", "r"))
    deferred.on_event(started_record("c"))
    deferred.started(timeline, preset_trace_id, preset_span_id)  # type: ignore[arg-type]
    slot.handle(record("live", "r"))
    expected = ["StageStarted", "a logs", "StageStarted", "stderr b prints", "kept still"]
    assert ([*expected, "StageStarted", "live"], 0) == (timeline.seen, slot.dropped)


async def test_every_event_after_a_failed_load_is_counted_lost_at_once() -> None:
    """Once loading failed, no event is kept any more: each one the engine hands over from
    then on is counted lost as it comes, before the run ends."""
    deferred = DeferredMonitor(PayloadCapture())
    seen: list[tuple[str, int, int]] = []

    class Counter:
        def on_event(self, event: object) -> None:
            seen.append((type(event).__name__, deferred.lost, len(deferred._kept)))

    deferred.failed("ImportError: no SDK")

    async def handler(ctx: StageContext) -> Mapping[str, Any]:
        return {}

    # The counter is handed each event after the stand-in, so it sees what the stand-in did.
    engine = Engine(resolver=Resolver(handler), observers=[deferred, Counter()])
    async with engine:
        result = await engine.run(chain_pipeline(("a", "b")), {})
    assert result.succeeded
    assert [(name, number, 0) for number, (name, _, _) in enumerate(seen, 1)] == seen


def test_a_load_that_failed_or_was_abandoned_leaves_the_run_unstored() -> None:
    """What ``run`` says of its run as it ends (``unstored``): a load that failed, or was
    abandoned, left it in no store; one still to come, nothing yet."""
    failed = DeferredMonitor(PayloadCapture())
    failed.failed("ImportError: no SDK")
    abandoned = DeferredMonitor(PayloadCapture(), load_timeout=0.01)
    assert abandoned.wait() is None
    assert ("telemetry failed to start", "telemetry failed to start", None) == (
        failed.unstored(),
        abandoned.unstored(),
        DeferredMonitor(PayloadCapture()).unstored(),
    )


def test_why_telemetry_did_not_load_is_said_once_it_failed_or_was_given_up(spans: Spans) -> None:
    """``not_loaded``, what a debug dump of the run says it lacks spans for
    (``cli/_dump_hook.py``): the reason a load failed with, or the bound an abandoned load
    passed; None while loading and once loaded. mutmut makes no mutant of a property, so
    this pins it (docs/mutation.md)."""
    failed = DeferredMonitor(PayloadCapture())
    failed.failed("ImportError: no SDK")
    abandoned = DeferredMonitor(PayloadCapture(), load_timeout=0.01)
    assert abandoned.wait() is None
    loaded = DeferredMonitor(PayloadCapture())
    monitor = spans.monitor()
    try:
        assert loaded.started(monitor, preset_trace_id, preset_span_id)
    finally:
        monitor.close()
    expected = (
        "ImportError: no SDK",
        "it did not load within 0.01s, 12 x TASKDAEMON_EXPORT_TIMEOUT",
        None,
        None,
    )
    actual = (
        failed.not_loaded,
        abandoned.not_loaded,
        DeferredMonitor(PayloadCapture()).not_loaded,
        loaded.not_loaded,
    )
    assert expected == actual


def test_records_past_the_bound_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the stand-in counts the run's records instead of keeping them; what is
    kept and never written (loading failed) is counted then too."""
    monkeypatch.setattr(deferred_module, "MAX_KEPT_RECORDS", 2)
    deferred = DeferredMonitor(PayloadCapture())
    for index in range(5):
        deferred.slot.handle(record(f"r{index}", "run"))
    overflow = deferred.slot.dropped
    deferred.failed("ImportError: no SDK")
    assert (3, 5, False) == (overflow, deferred.slot.dropped, deferred.slot.attached)


class Probe:
    """An engine observer noting, at each event, whether the stand-in lets loading begin."""

    def __init__(self, deferred: DeferredMonitor) -> None:
        self.deferred = deferred
        self.seen: list[tuple[str, bool]] = []

    def on_event(self, event: object) -> None:
        self.seen.append((type(event).__name__, self.deferred.may_load))


async def test_loading_begins_when_the_first_stage_starts() -> None:
    """The loading thread is held until the run's first stage has started (it would share the
    interpreter with the run's start otherwise): not at ``StageStarted`` itself but from the
    loop's next turn, so the stage's own start goes first."""
    deferred = DeferredMonitor(PayloadCapture())
    probe = Probe(deferred)
    in_stage: list[bool] = []

    def load() -> None:
        deferred.wait_to_begin(60.0)
        deferred.failed("not loaded in this test")

    loader = threading.Thread(target=load)
    loader.start()

    async def handler(ctx: StageContext) -> Mapping[str, Any]:
        if not in_stage:  # the first stage
            in_stage.append(deferred.may_load)
            await asyncio.sleep(0)  # one turn of the loop
            in_stage.append(deferred.may_load)
        return {}

    engine = Engine(resolver=Resolver(handler), observers=[deferred, probe])
    try:
        async with engine:
            result = await engine.run(chain_pipeline(("a", "b")), {})
    finally:
        deferred.begin()
        loader.join()
    started = [name for name, _ in probe.seen].index("StageStarted") + 1
    assert result.succeeded
    assert ([False] * started, [False, True]) == (
        [may for _, may in probe.seen[:started]],
        in_stage,
    ), probe.seen


async def test_only_the_first_stage_start_schedules_the_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the monitor loads, the first kept ``StageStarted`` schedules the loading's start
    on the loop; the later ones schedule nothing more (a callback a stage, for nothing)."""
    deferred = DeferredMonitor(PayloadCapture())
    loop = asyncio.get_running_loop()
    scheduled: list[object] = []
    call_soon = loop.call_soon

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(callback)
        return call_soon(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", counting)
    for stage in ("a", "b", "c"):
        deferred.on_event(started_record(stage))
        await asyncio.sleep(0)
    monkeypatch.undo()
    begins = [callback for callback in scheduled if callback == deferred._begin.set]
    assert (1, True) == (len(begins), deferred.may_load)


def test_waiting_for_the_monitor_lets_loading_begin() -> None:
    """Whatever needs the monitor (a stage's TRACEPARENT, a flush, the run's end) lets loading
    begin at once instead of waiting for the first stage."""
    deferred = DeferredMonitor(PayloadCapture(), load_timeout=0.0)
    before = deferred.may_load
    assert deferred.wait() is None
    assert (False, True) == (before, deferred.may_load)


def test_a_load_that_does_not_end_in_time_is_abandoned() -> None:
    """A wait for the load past ``load_timeout`` abandons it: the kept events count as lost,
    later ones are lost at once, and a monitor that comes late is refused, handed nothing."""
    deferred = DeferredMonitor(PayloadCapture(), load_timeout=0.0)
    deferred.on_event(started_record("a"))
    deferred.on_event(started_record("b"))
    assert deferred.wait() is None
    deferred.on_event(started_record("c"))
    late = GatedMonitor()
    refused = not deferred.started(late, preset_trace_id, preset_span_id)  # type: ignore[arg-type]
    assert (True, True, 3, []) == (refused, deferred.abandoned, deferred.lost, late.seen)


class GatedMonitor:
    """A monitor stand-in that records what it is handed and holds the first event until
    ``release`` is set."""

    def __init__(self) -> None:
        self.seen: list[object] = []
        self.holding = threading.Event()
        self.release = threading.Event()

    def on_event(self, event: object) -> None:
        if not self.seen:
            self.holding.set()
            self.release.wait(10)
        self.seen.append(event)

    def on_events(self, events: list[object]) -> None:
        for event in events:
            self.on_event(event)


def test_the_engine_keeps_running_while_kept_events_are_handed_over() -> None:
    """While the loading thread hands the kept events to the monitor, a new engine event is
    kept at once (the engine does not wait for the whole handover), and the monitor still
    sees every event in the engine's order."""
    deferred = DeferredMonitor(PayloadCapture())
    monitor = GatedMonitor()
    first, second, during, after = object(), object(), object(), object()
    deferred.on_event(first)  # type: ignore[arg-type]
    deferred.on_event(second)  # type: ignore[arg-type]
    loader = threading.Thread(
        target=deferred.started, args=(monitor, preset_trace_id, preset_span_id)
    )
    loader.start()
    try:
        assert monitor.holding.wait(10)
        engine = threading.Thread(target=deferred.on_event, args=(during,))
        engine.start()
        engine.join(5)
        kept_at_once = not engine.is_alive()
    finally:
        monitor.release.set()
        loader.join()
    engine.join()
    deferred.on_event(after)  # type: ignore[arg-type]
    assert (True, [first, second, during, after]) == (kept_at_once, monitor.seen)


def test_the_stand_in_keeps_every_record_until_its_monitor_answers(spans: Spans) -> None:
    """Before its monitor exists the stand-in wants every record (which ones the monitor's
    hooks will want is not known yet); then it answers as the monitor does."""
    deferred = DeferredMonitor(PayloadCapture())
    assert [True, True] == [deferred.wants_record(kind) for kind in (StageQueued, StageStarted)]
    monitor = spans.monitor()
    deferred.started(monitor, preset_trace_id, preset_span_id)
    try:
        answers = [deferred.wants_record(kind) for kind in (StageQueued, StageStarted)]
        assert [monitor.wants_record(StageQueued), True] == answers
    finally:
        monitor.close()


class Declining:
    """An observer that declines the waiting records and notes every record it gets."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def wants_record(self, kind: type) -> bool:
        return False

    def on_event(self, event: object) -> None:
        self.kinds.append(type(event).__name__)


async def test_run_s_observers_decline_the_waiting_records_with_the_monitor(
    spans: Spans,
) -> None:
    """``taskdaemon run``'s observers (its approval policy, the stand-in) build no
    ``StageWaiting`` or ``StageQueued`` once the monitor declines them: the policy reads only
    approval requests, so it does not ask for every record on its own."""
    deferred = DeferredMonitor(PayloadCapture())
    monitor = spans.monitor()
    deferred.started(monitor, preset_trace_id, preset_span_id)
    probe = Declining()

    async def handler(ctx: StageContext) -> Mapping[str, Any]:
        return {}

    observers = [ApprovalPolicy(), deferred, probe]
    try:
        async with Engine(resolver=Resolver(handler), observers=observers) as engine:
            result = await engine.run(chain_pipeline(("a", "b")), {})
    finally:
        monitor.close()
    assert result.succeeded
    assert 2 == probe.kinds.count("StageStarted")
    assert [] == [kind for kind in probe.kinds if kind in {"StageWaiting", "StageQueued"}]


@pytest.mark.parametrize(
    ("logger", "level"),
    [(DECISION_LOGGER, logging.INFO), (DECISION_LOGGER, logging.DEBUG), (EVENT_LOGGER, TRACE)],
)
def test_the_stand_in_declines_what_its_monitor_will_decline(logger: str, level: int) -> None:
    """Before its monitor exists, ``run``'s stand-in answers for the optional records as the
    monitor with its run log hook (what ``cli/monitoring.build_monitor`` makes) will, at each
    level, and keeps every other record."""
    target = logging.getLogger(logger)
    target.setLevel(level)
    try:
        deferred = DeferredMonitor(PayloadCapture(), hooks_want=run_log_wants)
        kinds = [*OPTIONAL_RECORDS, StageStarted, StageFinished]
        early = [deferred.wants_record(kind) for kind in kinds]
        monitor = PipelineMonitor()
        monitor.add_event_hook(RunLog())
        assert [monitor.wants_record(kind) for kind in kinds] == early
    finally:
        target.setLevel(logging.NOTSET)
    assert early[-2:] == [True, True]


def test_the_stand_in_says_when_its_monitor_wanted_what_it_declined(
    spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    """A monitor that wants a record type the stand-in declined (its hooks changed between
    the two answers) gets a warning naming the type: those records were never built."""
    deferred = DeferredMonitor(PayloadCapture(), hooks_want=lambda kind: False)
    assert not deferred.wants_record(StageQueued)
    monitor = spans.monitor()
    monitor.add_event_hook(lambda event, span: None)  # no ``wants``: wants every record
    with caplog.at_level(logging.WARNING, logger="taskdaemon"):
        deferred.started(monitor, preset_trace_id, preset_span_id)
    monitor.close()
    assert ["StageQueued records were not built before telemetry loaded"] == [
        r.getMessage() for r in caplog.records
    ]


@pytest.mark.usefixtures("process_state_put_back")
@pytest.mark.parametrize(
    ("flags", "observes", "hint"),
    [
        ((), False, True),
        (("--approve", "deploy"), True, True),
        (("--auto-approve",), True, True),
        ((), False, False),
    ],
)
async def test_the_approval_policy_observes_only_when_it_grants(
    home: Any, monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], observes: bool, hint: bool
) -> None:
    """``run``'s approval policy is among the engine's observers only when the command line
    grants an approval: one that grants nothing would be offered every record for nothing.
    The others of a ``-q`` run: its approval-wait hint (when a stage waits for an approval
    the command line does not grant: ``hint``) and the monitor."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    argv = ["run", "pipeline.yaml", "-q", *flags]
    args = build_parser(argv).parse_args(argv)
    approvals = ApprovalPolicy(args.approve, approve_all=args.auto_approve)
    async with contextlib.AsyncExitStack() as stack:
        observers = build_observers(
            args,
            progress=None,
            approvals=approvals,
            stack=stack,
            hint_approvals=hint,
        )
    others = [type(observer).__name__ for observer in observers if observer is not approvals]
    expected = ["ApprovalHint", "DeferredMonitor"] if hint else ["DeferredMonitor"]
    assert (observes, expected) == (approvals in observers, others)


def test_the_stand_in_counts_a_record_its_monitor_fails_on_and_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A record the monitor raises on is counted lost and logged once per type; ``on_event``
    never raises (the engine calls it directly: ``guards_itself``)."""

    class Failing:
        def on_event(self, event: object) -> None:
            raise RuntimeError("no")

    deferred = DeferredMonitor(PayloadCapture())
    deferred.started(Failing(), preset_trace_id, preset_span_id)  # type: ignore[arg-type]  # a stand-in
    with caplog.at_level(logging.WARNING, logger="taskdaemon.run"):
        deferred.on_event(started_record("a"))
        deferred.on_event(started_record("b"))
    assert (2, ["telemetry failed recording a StageStarted record (ignored)"]) == (
        deferred.lost,
        [r.getMessage() for r in caplog.records],
    )


def test_the_stand_in_wants_a_record_its_hook_fails_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook that raises when asked about a record counts as wanting it, logged once per
    type; ``wants_record`` never raises."""

    def failing(kind: type) -> bool:
        raise RuntimeError("no")

    deferred = DeferredMonitor(PayloadCapture(), hooks_want=failing)
    with caplog.at_level(logging.WARNING, logger="taskdaemon.run"):
        answers = [deferred.wants_record(StageQueued), deferred.wants_record(StageQueued)]
    assert ([True, True], ["telemetry failed asking for a StageQueued record (ignored)"]) == (
        answers,
        [r.getMessage() for r in caplog.records],
    )


def test_the_engine_calls_run_s_stand_in_directly() -> None:
    """As the only observer, the stand-in (which guards itself) is handed records directly."""
    deferred = DeferredMonitor(PayloadCapture())
    engine = Engine(resolver=Resolver(None), observers=[deferred])
    assert (deferred.on_event, deferred.wants_record) == (
        engine._ctx.emit,
        engine._ctx.wants_record,
    )


_BOUND_AT_ONCE = """
import asyncio, contextlib
from taskdaemon.pipeline import output_sinks
from taskdaemon.pipeline.cli.deferred_start import start_deferred_monitoring
from taskdaemon.pipeline.settings import load_settings

async def main():
    async with contextlib.AsyncExitStack() as stack:
        start_deferred_monitoring(load_settings(), stack)
        print(output_sinks.capture_limits().stdout_max_bytes)
    print(output_sinks.capture_limits().stdout_max_bytes)

asyncio.run(main())
"""


def test_captures_are_bounded_as_configured_before_telemetry_loads(tmp_path: Path) -> None:
    """``run``'s deferred monitoring sets the configured capture bounds at once, not once
    telemetry has loaded on its thread (a stage may start first, and telemetry may fail to
    load), and sets the previous ones again when it closes."""
    done = subprocess.run(
        [sys.executable, "-c", _BOUND_AT_ONCE],
        env=environment(tmp_path / "home", TASKDAEMON_STDOUT_MAX_BYTES="100"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    default = str(64 * 1024 * 1024)
    assert (0, ["100", default]) == (done.returncode, done.stdout.split()), done.stderr
