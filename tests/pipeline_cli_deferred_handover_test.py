"""``taskdaemon run``'s stand-in monitor (``cli/deferred.py``): what it keeps, what it hands
over and to whom, what it answers before and after the monitor exists, and how a load is
given up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline_monitor_support import chain_pipeline, started_record
from taskdaemon.pipeline import descriptor_reserve, secret_values
from taskdaemon.pipeline.cli import deferred as deferred_module
from taskdaemon.pipeline.cli import deferred_start, monitoring
from taskdaemon.pipeline.cli.deferred import LOAD_TIMEOUTS, DeferredMonitor
from taskdaemon.pipeline.cli.deferred_start import start_deferred_monitoring
from taskdaemon.pipeline.cli.run_ids import preset_span_id, preset_trace_id
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import (
    EngineEvent,
    EventPublished,
    RunFinished,
    StageQueued,
    StageStarted,
    StageWaiting,
)
from taskdaemon.pipeline.loops import LoopRegistry, StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.output_sinks import (
    OutputBatch,
    add_output_sink,
    output_sinks,
    remove_output_sink,
)
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.settings import Settings, load_settings
from taskdaemon.pipeline.state import RunStatus


class Recorder(logging.Handler):
    """A monitor and a store's writer in one: one list of what it is handed (events, record
    messages, output lines) and of what it is asked."""

    def __init__(self, wanted: frozenset[type] = frozenset()) -> None:
        super().__init__()
        self.seen: list[object] = []
        self.wanted = wanted
        self.flushes = 0

    def on_event(self, event: object) -> None:
        self.seen.append(event)

    def on_events(self, events: list[object]) -> None:
        self.seen.extend(events)

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())

    def write_output(self, batch: OutputBatch) -> None:
        self.seen.extend(f"{batch.stream} {text}" for text in batch.texts)

    def flush(self) -> None:
        self.flushes += 1

    def wants_record(self, kind: type) -> bool:
        return kind in self.wanted

    def allocate_run_id(
        self, pipeline: Pipeline, request: Mapping[str, Any], *, at: float | None = None
    ) -> str:
        self.seen.append(("allocate", pipeline, request, at))
        return "monitor's id"

    def stage_environment(self, event: StageStarted) -> Mapping[str, str]:
        return {"TRACEPARENT": "the monitor's"}


def start(deferred: DeferredMonitor, monitor: Recorder) -> bool:
    """Hand ``monitor`` to ``deferred`` as the loading thread does."""
    return deferred.started(monitor, preset_trace_id, preset_span_id)  # type: ignore[arg-type]


def batch(text: str) -> OutputBatch:
    """One stderr line of a command stage of run ``r``."""
    return OutputBatch("r", "p", "c", 0, 1, None, None, "stderr", (text,))


def record(message: str) -> logging.LogRecord:
    """A record of run ``r``, as ``logging`` makes it."""
    return logging.getLogger("test.handover").makeRecord(
        "test.handover", logging.INFO, __file__, 1, message, (), None, extra={"run_id": "r"}
    )


@pytest.fixture
def sinks() -> Iterator[list[Recorder]]:
    """Output sinks the test registers (``output_sinks``' process-wide list), removed after."""
    made: list[Recorder] = []
    yield made
    for sink in made:
        remove_output_sink(sink)


def test_a_batch_kept_meanwhile_reaches_the_sinks_registered_since_and_once_live(
    sinks: list[Recorder],
) -> None:
    """A command's output kept before the monitor exists goes to the store's writer and to
    every sink registered since (the log export made with the monitor), not to those that
    had it then; once live, a batch goes straight to the writer."""
    deferred = DeferredMonitor(PayloadCapture())
    slot = deferred.slot
    early, later, store = Recorder(), Recorder(), Recorder()
    sinks.extend([early, later])
    add_output_sink(slot)
    add_output_sink(early)
    try:
        slot.write_output(batch("kept"))
        add_output_sink(later)
        slot.attach(store, store)
        start(deferred, Recorder())
        slot.write_output(batch("live"))
    finally:
        remove_output_sink(slot)
    assert (["stderr kept", "stderr live"], ["stderr kept"], [], True) == (
        store.seen,
        later.seen,
        early.seen,
        slot.attached,
    )


def test_records_and_output_after_a_failed_load_are_dropped_quietly() -> None:
    """With no store's writer ever attached (loading failed), a run's records and output are
    dropped, without an error and without being counted as kept."""
    deferred = DeferredMonitor(PayloadCapture())
    deferred.failed("ImportError: no SDK")
    deferred.slot.handle(record("after"))
    deferred.slot.write_output(batch("after"))
    assert (0, False, None) == (
        deferred.slot.dropped,
        deferred.slot.attached,
        deferred.slot.forwards_to,
    )


def test_a_detached_writer_is_handed_nothing_more() -> None:
    """Detaching the store's writer (the store closing) stops records and output reaching it;
    detaching another leaves it attached."""
    deferred = DeferredMonitor(PayloadCapture())
    start(deferred, Recorder())
    slot, store, other = deferred.slot, Recorder(), Recorder()
    slot.attach(store, store)
    slot.detach(other, other)
    slot.handle(record("attached"))
    slot.write_output(batch("attached"))
    still = slot.forwards_to is store
    slot.detach(store, store)
    slot.handle(record("detached"))
    slot.write_output(batch("detached"))
    assert (True, ["attached", "stderr attached"], None) == (still, store.seen, slot.forwards_to)


def test_the_slot_waits_for_the_load_only_while_it_stands_in_on_the_root_logger() -> None:
    """A flush of the slot waits for the load (here given up at once) while the slot is a
    root handler, not once it is removed (``logging``'s flush at exit); both flush the
    store's writer."""
    deferred = DeferredMonitor(PayloadCapture(), load_timeout=0.0)
    slot, store = deferred.slot, Recorder()
    slot.attach(store, store)
    slot.flush()
    waited_removed = deferred.abandoned
    root = logging.getLogger()
    root.addHandler(slot)
    try:
        slot.flush()
    finally:
        root.removeHandler(slot)
    assert (False, True, 2) == (waited_removed, deferred.abandoned, store.flushes)


def test_a_flush_waits_for_the_monitor_and_flushes_it() -> None:
    """``flush`` (a debug dump asks first) flushes the monitor once it exists; after a failed
    load it has nothing to flush."""
    deferred, monitor = DeferredMonitor(PayloadCapture()), Recorder()
    start(deferred, monitor)
    deferred.flush()
    failed = DeferredMonitor(PayloadCapture())
    failed.failed("ImportError: no SDK")
    failed.flush()
    assert 1 == monitor.flushes


def test_a_run_id_asked_once_loaded_is_the_monitor_s() -> None:
    """Once the monitor exists a run id is its answer, for the same pipeline, request and
    start; after a failed load there is none."""
    deferred, monitor = DeferredMonitor(PayloadCapture()), Recorder()
    start(deferred, monitor)
    pipeline = chain_pipeline(("a",))
    answer = deferred.allocate_run_id(pipeline, {"k": 1}, at=5.0)
    failed = DeferredMonitor(PayloadCapture())
    failed.failed("ImportError: no SDK")
    assert ("monitor's id", [("allocate", pipeline, {"k": 1}, 5.0)], None) == (
        answer,
        monitor.seen,
        failed.allocate_run_id(pipeline, {}),
    )


def test_a_traceparent_drawn_here_is_the_same_each_time_and_one_an_execution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An execution's ``TRACEPARENT`` drawn before the monitor exists is the same each time it
    is asked (``logs.ContextFilter`` asks once a record), and another execution's differs."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    deferred = DeferredMonitor(PayloadCapture())
    run_id = deferred.allocate_run_id(chain_pipeline(("a",)), {})
    assert run_id is not None
    a, b = started_record("a", run_id), started_record("b", run_id)
    answers = [deferred.stage_environment(event)["TRACEPARENT"] for event in (a, a, b, a)]
    span_ids = [answer.split("-")[2] for answer in answers]
    assert (1, 2) == (len({*span_ids[:2], span_ids[3]}), len(set(span_ids))), answers


@pytest.mark.parametrize("case", ["sdk disabled", "id not drawn here", "load failed"])
def test_a_traceparent_not_foreseen_is_the_monitor_s(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """With the SDK disabled, for a run id the stand-in did not draw, or once the load
    failed, a ``TRACEPARENT`` is the monitor's answer: none when there is no monitor (here
    the load is given up at once)."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true" if case == "sdk disabled" else "false")
    deferred = DeferredMonitor(PayloadCapture(), load_timeout=0.0)
    run_id = deferred.allocate_run_id(chain_pipeline(("a",)), {})
    if case == "load failed":
        deferred.failed("ImportError: no SDK")
    other = "0af7651916cd43dd8448eb211c80319c"
    event = started_record("a", other if case == "id not drawn here" else run_id or "")
    assert {} == deferred.stage_environment(event)


@contextlib.contextmanager
def handover_held(deferred: DeferredMonitor, monitor: Recorder) -> Iterator[None]:
    """Hand ``monitor`` to ``deferred`` on a loading thread, held in its first batch of kept
    events for the ``with`` block; let go and joined after it."""
    holding, release = threading.Event(), threading.Event()
    seen = monitor.on_events

    def on_events(events: list[object]) -> None:
        holding.set()
        release.wait(10)
        seen(events)

    monitor.on_events = on_events  # type: ignore[method-assign]
    loader = threading.Thread(target=start, args=(deferred, monitor))
    loader.start()
    try:
        assert holding.wait(10)
        yield
    finally:
        release.set()
        loader.join()


def test_a_load_is_given_up_only_when_no_monitor_came() -> None:
    """A load is not given up (what a wait past ``load_timeout`` asks) while the monitor is
    being handed the kept events: it came in time, and the wait is for the handover; a
    failure after an abandoned load, or a second one, is not reported again."""
    deferred = DeferredMonitor(PayloadCapture(), load_timeout=0.0)
    kept, monitor = object(), Recorder()
    deferred.on_event(kept)  # type: ignore[arg-type]
    with handover_held(deferred, monitor):
        given_up = deferred.abandon()
    abandoned = DeferredMonitor(PayloadCapture(), load_timeout=0.0)
    abandoned.wait()
    failed = DeferredMonitor(PayloadCapture())
    assert (False, monitor, [kept], False, 0) == (
        given_up,
        deferred.wait(),
        monitor.seen,
        deferred.abandoned,
        deferred.lost,
    )
    assert ([False], [True, False]) == (
        [abandoned.failed("ImportError: late")],
        [failed.failed("ImportError: first"), failed.failed("ImportError: second")],
    )


def test_the_default_bound_on_a_load_is_the_default_settings() -> None:
    """Without ``load_timeout`` a wait gives the load up after ``LOAD_TIMEOUTS`` times the
    default ``TASKDAEMON_EXPORT_TIMEOUT``."""
    assert (
        LOAD_TIMEOUTS * Settings().export_timeout == DeferredMonitor(PayloadCapture()).load_timeout
    )


def test_loading_begins_after_its_delay_though_nothing_began_it() -> None:
    """The loading thread's wait for the first stage ends after its delay (a first stage
    waiting for an approval still lets telemetry load)."""
    deferred = DeferredMonitor(PayloadCapture())
    loader = threading.Thread(target=deferred.wait_to_begin, args=(0.01,))
    loader.start()
    loader.join(10)
    ended = not loader.is_alive()
    deferred.begin()
    loader.join()
    assert (True, True) == (ended, deferred.may_load)


def run_finished() -> RunFinished:
    return RunFinished(run_id="r", pipeline="p", status=RunStatus.SUCCESS, at=0.0)


def published(payload: Mapping[str, Any]) -> EventPublished:
    return EventPublished(
        run_id="r", pipeline="p", event_type="e", payload=payload, event_id=1, at=0.0
    )


@pytest.mark.parametrize(
    ("events", "waited"),
    [
        ([object(), object()], False),
        ([object(), object(), object()], True),
        ([published({"n": 1}), published({})], False),
        ([published({"n": 1}), published({"n": 2})], True),
        ([run_finished()], True),
    ],
)
def test_an_event_waits_for_the_monitor_at_its_bound_or_at_the_run_s_end(
    monkeypatch: pytest.MonkeyPatch, events: list[EngineEvent], waited: bool
) -> None:
    """Events are kept up to the bound (two events, one published with a payload here); the
    one past it, or ``RunFinished``, waits for the monitor (here given up at once, so every
    kept event and that one count as lost)."""
    monkeypatch.setattr(deferred_module, "MAX_KEPT_EVENTS", 2)
    monkeypatch.setattr(deferred_module, "MAX_KEPT_PAYLOADS", 1)
    deferred = DeferredMonitor(PayloadCapture(), load_timeout=0.0)
    for event in events:
        deferred.on_event(event)
    lost = len(events) if waited else 0
    assert (waited, lost, len(events) - lost) == (
        deferred.abandoned,
        deferred.lost,
        len(deferred._kept),
    )


def test_a_payload_published_after_a_failed_load_is_counted_lost_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a failed load an event published with a payload is counted lost like any
    other, with no warning of its own (the load's failure said why)."""
    deferred = DeferredMonitor(PayloadCapture())
    deferred.on_event(published({"n": 1}))
    deferred.failed("ImportError: no SDK")
    with caplog.at_level(logging.WARNING, logger="taskdaemon.run"):
        deferred.on_event(published({"n": 2}))
    assert (2, []) == (deferred.lost, caplog.records)


def test_a_payload_published_during_the_handover_is_kept_within_the_bound(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While the kept events are handed over, an event published with a payload is kept at
    once (below the bound, one payload here: the swap took the others) and handed over after
    them, with no warning and nothing lost."""
    monkeypatch.setattr(deferred_module, "MAX_KEPT_PAYLOADS", 1)
    deferred, monitor = DeferredMonitor(PayloadCapture()), Recorder()
    before, during = published({"n": 1}), published({"n": 2})
    deferred.on_event(before)
    engine = threading.Thread(target=deferred.on_event, args=(during,))
    with handover_held(deferred, monitor), caplog.at_level(logging.WARNING):
        engine.start()
        engine.join(5)
        kept_at_once = not engine.is_alive()
    engine.join()
    assert (True, [before, during], 0, []) == (
        kept_at_once,
        monitor.seen,
        deferred.lost,
        caplog.records,
    )


def test_records_the_handover_logs_land_at_once_in_their_place() -> None:
    """A run's record logged by the loading thread while it hands the kept events over (the
    run log's, for each event) is written at once, right after its event, not kept."""
    deferred = DeferredMonitor(PayloadCapture())
    monitor = Recorder()
    deferred.slot.attach(monitor, monitor)
    first, second = object(), object()
    deferred.on_event(first)  # type: ignore[arg-type]
    deferred.slot.handle(record("between"))
    deferred.on_event(second)  # type: ignore[arg-type]

    def on_events(events: list[object]) -> None:
        for event in events:
            monitor.seen.append(event)
            deferred.slot.handle(record(f"logged for {len(monitor.seen)}"))

    monitor.on_events = on_events  # type: ignore[method-assign]
    start(deferred, monitor)
    assert [first, "logged for 1", "between", second, "logged for 4"] == monitor.seen


def test_the_monitor_is_told_which_declined_records_it_wanted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Optional records the stand-in declined and the monitor wants are named in one warning,
    in order; one it declines too is not."""
    deferred = DeferredMonitor(PayloadCapture(), hooks_want=lambda kind: False)
    for kind in (StageWaiting, StageQueued):
        assert not deferred.wants_record(kind)
    with caplog.at_level(logging.WARNING, logger="taskdaemon.run"):
        start(deferred, Recorder(wanted=frozenset({StageQueued, StageWaiting})))
        start(DeferredMonitor(PayloadCapture()), Recorder())
    assert ["StageQueued, StageWaiting records were not built before telemetry loaded"] == [
        r.getMessage() for r in caplog.records
    ]


def test_a_record_the_monitor_fails_on_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one warning for a record the monitor failed on carries the error's traceback."""

    class Failing(Recorder):
        def on_event(self, event: object) -> None:
            raise RuntimeError("no")

    deferred = DeferredMonitor(PayloadCapture())
    start(deferred, Failing())
    with caplog.at_level(logging.WARNING, logger="taskdaemon.run"):
        deferred.on_event(started_record("a"))
    assert [RuntimeError] == [r.exc_info[0] for r in caplog.records if r.exc_info]


class Resolver:
    """Each stage returns nothing."""

    registry = LoopRegistry()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            await asyncio.sleep(0)
            return {}

        return handler


class Everything:
    """An engine observer keeping every event; ``ended`` is set at the run's end."""

    def __init__(self) -> None:
        self.seen: list[object] = []
        self.ended = threading.Event()

    def on_event(self, event: object) -> None:
        self.seen.append(event)
        if isinstance(event, RunFinished):
            self.ended.set()


async def test_a_run_s_kept_events_reach_the_monitor_all_in_the_engine_s_order() -> None:
    """A monitor that comes only at the run's end (which waits for it) is handed every event
    of the run, in the engine's order, the run's and stages' starts under their drawn ids
    among them."""
    deferred, everything, monitor = DeferredMonitor(PayloadCapture()), Everything(), Recorder()

    def load_at_the_end() -> None:
        if everything.ended.wait(60):
            start(deferred, monitor)

    loader = threading.Thread(target=load_at_the_end)
    loader.start()
    try:
        async with Engine(resolver=Resolver(), observers=[everything, deferred]) as engine:
            result = await engine.run(chain_pipeline(("a", "b", "c")), {})
    finally:
        everything.ended.set()
        loader.join()
    assert (True, False, everything.seen) == (result.succeeded, deferred.abandoned, monitor.seen)


def test_the_span_store_s_folder_is_made_private_and_a_failure_left_to_the_store(
    tmp_path: Path,
) -> None:
    """The store's folder is made 0700 before the run's workspace under it; a folder that
    cannot be made is left for the store to say why."""
    store = tmp_path / "home" / "runs" / "spans.db"
    deferred_start._store_directory(store)
    (tmp_path / "file").write_text("")
    deferred_start._store_directory(tmp_path / "file" / "runs" / "spans.db")
    assert 0o700 == stat.S_IMODE(store.parent.stat().st_mode)


@pytest.mark.usefixtures("process_state_put_back")
async def test_run_s_deferred_monitoring_sets_up_at_once_loads_alone_and_puts_back(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``start_deferred_monitoring`` masks under the configured secret keys and keeps the
    run's records and output (on the root logger, among the output sinks) at once; its
    telemetry loads by itself, though no stage starts, into the monitor that takes its
    configured capture; closing puts the keys back and takes the slot away."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    monkeypatch.setenv("TASKDAEMON_REDACT_PATTERNS", "custom_key")
    monkeypatch.setenv("TASKDAEMON_CAPTURE_MAX_BYTES", "100")
    monkeypatch.setenv("TASKDAEMON_EXPORT_TIMEOUT", "7")
    settings = load_settings()
    patterns_before = secret_values._registry.patterns
    async with contextlib.AsyncExitStack() as stack:
        deferred = start_deferred_monitoring(settings, stack)
        slot = deferred.slot
        at_once = (
            secret_values._registry.patterns,
            slot in logging.getLogger().handlers,
            slot in output_sinks(),
            deferred.wants_record(StageQueued),
            deferred.load_timeout,
        )
        loaded = await asyncio.to_thread(deferred._loaded.wait, 60)
        monitor = deferred._monitor
    folder = Path(settings.span_source[len("sqlite:///") :]).parent
    assert (settings.redact_patterns, True, True, False, LOAD_TIMEOUTS * 7.0) == at_once
    assert (True, None, True) == (loaded, deferred.unstored(), monitor is not None)
    assert monitor is not None
    assert (True, PayloadCapture(max_bytes=100, redact_patterns=settings.redact_patterns)) == (
        monitor.capture is deferred.capture,
        deferred.capture,
    )
    assert (patterns_before, False, False, 0o700) == (
        secret_values._registry.patterns,
        slot in logging.getLogger().handlers,
        slot in output_sinks(),
        stat.S_IMODE(folder.stat().st_mode),
    )


@pytest.mark.usefixtures("process_state_put_back")
async def test_a_load_that_fails_is_said_once_and_the_run_goes_on_unstored(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that raises is said in one warning with the error, the events it missed in one
    more at the end; the run is in no store."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no collector")

    monkeypatch.setattr(monitoring, "build_monitor", failing)
    said, logger = Recorder(), logging.getLogger("taskdaemon.run")
    logger.addHandler(said)
    try:
        async with contextlib.AsyncExitStack() as stack:
            deferred = start_deferred_monitoring(load_settings(), stack)
            deferred.on_event(object())  # type: ignore[arg-type]
    finally:
        logger.removeHandler(said)
    assert not descriptor_reserve.release_reserve(), "the reserve outlived the run's close"
    assert (
        [
            "telemetry failed to start; the run goes on without it: no collector",
            "1 engine events were not recorded: telemetry failed to start"
            " (RuntimeError: no collector)",
        ],
        "telemetry failed to start",
    ) == (said.seen, deferred.unstored())


@pytest.mark.usefixtures("process_state_put_back")
async def test_records_kept_past_the_bound_are_said_once_the_store_came(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's records dropped past the bound while telemetry loaded are counted in one
    warning at the end, once the store's writer came (else nothing was to be stored)."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    monkeypatch.setattr(deferred_module, "MAX_KEPT_RECORDS", 1)
    monkeypatch.setattr(deferred_start, "LOAD_DELAY", 60.0)  # loads when the end waits
    said, logger = Recorder(), logging.getLogger("taskdaemon.run")
    logger.addHandler(said)
    try:
        async with contextlib.AsyncExitStack() as stack:
            deferred = start_deferred_monitoring(load_settings(), stack)
            for message in ("kept", "dropped", "dropped too"):
                deferred.slot.handle(record(message))
    finally:
        logger.removeHandler(said)
    assert (True, ["2 run log records were not stored"]) == (deferred.slot.attached, said.seen)
