"""Run-log rows go straight to the store's log writer when no other handler wants the record."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import SpanContext, TraceFlags

from taskdaemon.pipeline._record_queue import RecordQueue
from taskdaemon.pipeline.cli.pending_logs import PendingLogHandler
from taskdaemon.pipeline.cli.run_logging import install_run_logging
from taskdaemon.pipeline.events import RunFinished, StageFinished, StageStarted, TriggerEvaluated
from taskdaemon.pipeline.log_rows import row_sink_for
from taskdaemon.pipeline.logs import configure_logging, log_context
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.run_log import LIFECYCLE_LOGGER, RunLog
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.state import RunStatus, StageStatus

RUN = "0123456789abcdef0123456789abcdef"
SPAN = SpanContext(int(RUN, 16), 0x42, False, TraceFlags(TraceFlags.SAMPLED))


class _Wanting(logging.Handler):
    """A handler that wants every record (as the OTLP handler or ``caplog`` do)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _records_made() -> Iterator[list[logging.LogRecord]]:
    """Every ``LogRecord`` built meanwhile, through the record factory."""
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record)
        return record

    logging.setLogRecordFactory(counting)
    try:
        yield made
    finally:
        logging.setLogRecordFactory(factory)


@contextlib.contextmanager
def _runner_handlers_aside() -> Iterator[None]:
    """The test runner's root handlers (``caplog``'s, added around each test call) set aside,
    so that the store's writer is the only taker as in ``taskdaemon run``."""
    root = logging.getLogger()
    aside = [h for h in root.handlers if type(h).__module__.startswith("_pytest")]
    for handler in aside:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in aside:
            root.addHandler(handler)


@pytest.fixture
def run_logging(tmp_path: Path) -> Iterator[tuple[RunLog, Any, Path, PendingLogHandler]]:
    """Logging as ``taskdaemon run`` sets it up (console, run-log slot, store writer), with
    the test runner's own root handlers set aside so that the writer is the only taker."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    db = tmp_path / "spans.db"
    settings = load_settings(span_source_url=f"sqlite:///{db}")
    stack = contextlib.ExitStack()
    monitor = PipelineMonitor(resource_sampling=False)
    try:
        installed = configure_logging(settings, stream=io.StringIO())
        slot = PendingLogHandler(keep=lambda item: False, settle=lambda: None)  # all handed over
        root.addHandler(slot)
        telemetry = SimpleNamespace(
            logger_provider=None, span_processors=(), meter_provider=NoOpMeterProvider()
        )
        writer = install_run_logging(settings, monitor, telemetry, stack, slot=slot)  # type: ignore[arg-type]
        hook = monitor._recorder.hooks[-1]
        assert isinstance(hook, RunLog)
        yield hook, writer, db, slot
    finally:
        stack.close()
        monitor.close()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in installed:
            handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def _stage(i: int) -> list[Any]:
    common: dict[str, Any] = {"run_id": RUN, "pipeline": "p", "stage": f"s{i}", "instance": 0}
    at = 1_700_000_000.25 + i
    return [
        StageStarted(
            **common,
            attempt=1,
            task_run_id=f"s{i}.0.1",
            loop="python",
            at=at,
            queued_at=at,
            considered_at=at,
            inputs={},
        ),
        StageFinished(
            **common,
            attempt=2,
            task_run_id=f"s{i}.0.2",
            status=StageStatus.FAILURE,
            at=at + 0.5,
            error="boom password=hunter2",
            error_type="ValueError",
        ),
    ]


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT trace_id, time_ns, severity, level, pipeline, stage, instance, attempt,"
            " span_id, scope, body, attributes FROM logs ORDER BY id"
        ).fetchall()


def test_rows_written_directly_equal_the_rows_of_the_logging_path(run_logging: Any) -> None:
    """With the writer the only taker, lifecycle records build no ``LogRecord`` and store the
    very rows (ids, time, level, body, redacted attributes) the ``logging`` path stores."""
    hook, writer, db, _ = run_logging
    with _runner_handlers_aside(), _records_made() as made:
        for event in _stage(0):
            hook(event, SPAN)
    assert made == []
    writer.flush()
    direct = _rows(db)
    wanting = _Wanting()
    logging.getLogger().addHandler(wanting)
    try:
        with _runner_handlers_aside():
            for event in _stage(0):
                hook(event, SPAN)
    finally:
        logging.getLogger().removeHandler(wanting)
    writer.flush()
    through_logging = _rows(db)[len(direct) :]
    assert len(wanting.records) == 2
    assert len(direct) == 2
    assert direct == through_logging
    assert "hunter2" not in repr(direct)


def test_a_run_level_record_takes_the_ids_of_its_context_as_before(run_logging: Any) -> None:
    """A record missing a stage inside a ``log_context(stage=...)`` goes through ``logging``,
    so ``ContextFilter`` still stamps it; outside any context it is written directly."""
    hook, writer, db, _ = run_logging
    finished = RunFinished(run_id=RUN, pipeline="p", status=RunStatus.SUCCESS, at=1.5)
    with _runner_handlers_aside():
        with _records_made() as made, log_context(stage="ambient"):
            hook(finished, SPAN)
        assert len(made) == 1
        with _records_made() as made:
            hook(finished, SPAN)
        assert made == []
    writer.flush()
    assert ["ambient", None] == [row[5] for row in _rows(db)]


def test_the_logging_path_stays_for_any_other_taker(run_logging: Any) -> None:
    """A handler that wants the record, a filter that does not say what it drops, the slot
    keeping records before the store opens, or a record the console prints: no direct row."""
    _, writer, _, slot = run_logging
    with _runner_handlers_aside():
        _check_routes(writer, slot)
    assert row_sink_for(logging.getLogger(LIFECYCLE_LOGGER), logging.INFO) is None  # caplog


def _check_routes(writer: Any, slot: PendingLogHandler) -> None:
    root = logging.getLogger()
    lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
    decision = logging.getLogger("taskdaemon.run.decision")
    assert row_sink_for(lifecycle, logging.INFO) is writer
    assert row_sink_for(decision, logging.DEBUG) is None  # the console prints decisions
    wanting = _Wanting()
    root.addHandler(wanting)
    assert row_sink_for(lifecycle, logging.INFO) is None
    wanting.setLevel(logging.ERROR)
    assert row_sink_for(lifecycle, logging.INFO) is writer
    root.removeHandler(wanting)
    slot.addFilter(lambda record: True)
    assert row_sink_for(lifecycle, logging.INFO) is None
    slot.filters.clear()
    target = slot.forwards_to
    assert target is not None
    slot.detach(target, writer)
    assert row_sink_for(lifecycle, logging.INFO) is None


class _Slotted:
    """A filter without a ``__dict__`` whose answer follows its own state."""

    __slots__ = ("drop",)

    def __init__(self) -> None:
        self.drop = False

    def keeps_logger(self, name: str) -> bool:
        return not self.drop

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.drop


def test_a_remembered_answer_follows_every_change_made_in_place(run_logging: Any) -> None:
    """A change made without ``addHandler`` / ``addFilter`` (lists edited in place, attributes
    set directly, a filter's own state) is seen at the next call: a remembered answer that is
    not checked against all of these fails here."""
    _, writer, _, slot = run_logging
    root = logging.getLogger()
    lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
    with _runner_handlers_aside():
        assert row_sink_for(lifecycle, logging.INFO) is writer
        wanting = _Wanting()
        root.handlers.append(wanting)  # in place, as some code does
        assert row_sink_for(lifecycle, logging.INFO) is None
        root.handlers.remove(wanting)
        assert row_sink_for(lifecycle, logging.INFO) is writer
        lifecycle.handlers.append(wanting)
        lifecycle.propagate = False  # the writer is on the root: now out of reach
        try:
            assert row_sink_for(lifecycle, logging.INFO) is None
            wanting.level = logging.CRITICAL  # set directly: drops the record now
            assert row_sink_for(lifecycle, logging.INFO) is None  # and nothing else takes it
        finally:
            lifecycle.propagate = True
            lifecycle.handlers.remove(wanting)
        assert row_sink_for(lifecycle, logging.INFO) is writer
        target = slot.forwards_to
        assert target is not None
        target.filters.append(lambda record: True)  # the store handler's filters, in place
        assert row_sink_for(lifecycle, logging.INFO) is None
        target.filters.pop()
        assert row_sink_for(lifecycle, logging.INFO) is writer
        target.row_sink = None  # type: ignore[attr-defined]
        assert row_sink_for(lifecycle, logging.INFO) is None
        target.row_sink = writer  # type: ignore[attr-defined]
        slotted = _Slotted()
        target.addFilter(slotted)
        try:
            assert row_sink_for(lifecycle, logging.INFO) is writer
            slotted.drop = True  # in no ``__dict__``
            assert row_sink_for(lifecycle, logging.INFO) is None
        finally:
            target.removeFilter(slotted)
        assert row_sink_for(lifecycle, logging.INFO) is writer


def test_a_handler_added_between_two_turns_sees_the_next_turns_records(run_logging: Any) -> None:
    """Where a row goes is asked once per turn of the monitor's record queue (``run_log``'s
    decision): a handler added after one turn gets the records of the next one, through
    ``logging``, and the store still gets every row. Fails when the answer of the first turn
    is kept for later turns."""
    hook, writer, db, _ = run_logging
    queue = RecordQueue(lambda event: hook(event, SPAN))
    wanting = _Wanting()
    try:
        with _runner_handlers_aside():
            with _records_made() as made:
                queue.handle_batch(_stage(0))  # one turn: the writer alone takes these
            assert made == []
            logging.getLogger().addHandler(wanting)
            queue.handle_batch(_stage(1))  # the next turn
    finally:
        logging.getLogger().removeHandler(wanting)
        queue.close()
    assert [record.getMessage() for record in wanting.records] == [
        "stage s1.0.1 started (attempt 1)",
        "stage s1.0.2 finished: failure: boom password=hunter2",
    ]
    writer.flush()
    assert [row[5] for row in _rows(db)] == ["s0", "s0", "s1", "s1"]


def test_a_turns_rows_keep_their_order_around_a_record_through_logging(run_logging: Any) -> None:
    """The direct rows of a turn are handed over together, but never after a record the hook
    writes through ``logging`` later in the same turn: the store keeps the records' order."""
    hook, writer, db, _ = run_logging
    queue = RecordQueue(lambda event: hook(event, SPAN))
    finished = RunFinished(run_id=RUN, pipeline="p", status=RunStatus.SUCCESS, at=1.5)
    try:
        with _runner_handlers_aside(), log_context(stage="ambient"), _records_made() as made:
            # Stage rows go directly; the run's record, lacking a stage, goes through
            # ``logging`` (ContextFilter stamps the ambient one), after them.
            queue.handle_batch([*_stage(0), finished])
    finally:
        queue.close()
    assert len(made) == 1
    writer.flush()
    assert [(row[5], row[10]) for row in _rows(db)] == [
        ("s0", "stage s0.0.1 started (attempt 1)"),
        ("s0", "stage s0.0.2 finished: failure: boom password=[REDACTED]"),
        ("ambient", f"run {RUN} finished: success"),
    ]


def test_a_stopped_stages_row_says_cancelled_once(run_logging: Any) -> None:
    """A direct row of a stage a stop cancelled says its status once, as the record does."""
    hook, writer, db, _ = run_logging
    queue = RecordQueue(lambda event: hook(event, SPAN))
    stopped = StageFinished(
        run_id=RUN,
        pipeline="p",
        stage="s0",
        instance=0,
        attempt=1,
        task_run_id="s0.0.1",
        status=StageStatus.CANCELLED,
        at=1_700_000_000.5,
        error="cancelled: run cancelled",
    )
    try:
        with _runner_handlers_aside():
            queue.handle_batch([stopped])
    finally:
        queue.close()
    writer.flush()
    assert ["stage s0.0.1 finished: cancelled: run cancelled"] == [row[10] for row in _rows(db)]


class _Taking:
    """A hook that takes the record types in ``taking`` (``Recorder.handle`` asks ``takes``)."""

    def __init__(self, *taking: type) -> None:
        self.taking = set(taking)
        self.seen: list[type] = []

    def __call__(self, event: Any, span: Any) -> None:
        self.seen.append(type(event))

    def takes(self, kind: type) -> bool:
        return kind in self.taking


def test_the_monitor_calls_a_hook_for_what_it_takes_asked_each_turn() -> None:
    """A hook is called only for the types its ``takes`` answers True for, asked anew at each
    turn of the record queue (``monitor.on_events`` hands a batch over in one turn)."""
    monitor = PipelineMonitor(resource_sampling=False)
    hook = _Taking(StageStarted)
    monitor.add_event_hook(hook)
    try:
        monitor.on_events(_stage(0))
        hook.taking.add(StageFinished)
        monitor.on_events(_stage(1))
    finally:
        monitor.close()
    assert hook.seen == [StageStarted, StageStarted, StageFinished]


def test_the_run_log_takes_trigger_evaluations_only_with_decisions_on() -> None:
    """At INFO the run log writes nothing for a trigger evaluation, so it does not take one;
    with the decision logger at DEBUG it does. Run starts and ends it always takes."""
    decision = logging.getLogger("taskdaemon.run.decision")
    lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
    saved = decision.level, lifecycle.level
    try:
        decision.setLevel(logging.INFO)
        lifecycle.setLevel(logging.ERROR)
        assert not RunLog.takes(TriggerEvaluated)
        assert RunLog.takes(StageStarted)
        assert RunLog.takes(RunFinished)
        decision.setLevel(logging.DEBUG)
        assert RunLog.takes(TriggerEvaluated)
    finally:
        decision.setLevel(saved[0])
        lifecycle.setLevel(saved[1])


def _varied() -> list[tuple[Any, SpanContext | None]]:
    """Lifecycle records of every level and shape, each with its span: two stages alike (the
    second one's attributes remembered), a retried failure, a failure, a timeout, a
    cancellation, a start without a span and one with an invalid span."""
    spans = [SpanContext(int(RUN, 16), 0x100 + i, False, TraceFlags(1)) for i in range(6)]
    invalid = SpanContext(0, 0, False, TraceFlags(0))
    at = 1_700_000_000.125

    def started(i: int, loop: str) -> StageStarted:
        return StageStarted(
            run_id=RUN,
            pipeline="p",
            stage=f"s{i}",
            instance=i % 2,
            attempt=1,
            task_run_id=f"s{i}.0.1",
            loop=loop,
            at=at + i,
            queued_at=at,
            considered_at=at,
            inputs={},
        )

    def finished(i: int, status: StageStatus, **more: Any) -> StageFinished:
        common = {"run_id": RUN, "pipeline": "p", "stage": f"s{i}", "instance": i % 2}
        return StageFinished(
            **common, attempt=1, task_run_id=f"s{i}.0.1", status=status, at=at + i + 0.5, **more
        )

    failed = {"error": "boom password=hunter2", "error_type": "ValueError"}
    return [
        (started(0, "python"), spans[0]),
        (finished(0, StageStatus.SUCCESS), spans[0]),
        (started(1, "python"), spans[1]),
        (finished(1, StageStatus.SUCCESS), spans[1]),
        (started(2, "thread"), spans[2]),
        (finished(2, StageStatus.FAILURE, will_retry=True, **failed), spans[2]),
        (finished(2, StageStatus.FAILURE, **failed), spans[2]),
        (finished(3, StageStatus.TIMEOUT, error="late", error_type=None), spans[3]),
        (finished(4, StageStatus.CANCELLED, error=None, error_type="Cancelled"), spans[4]),
        (started(5, "python"), None),
        (started(6, "python"), invalid),
        (finished(6, StageStatus.SUCCESS), spans[5]),
    ]


def test_a_turns_lifecycle_rows_equal_the_rows_of_each_record_asked_alone(
    run_logging: Any,
) -> None:
    """In a turn with neither TRACE nor DEBUG on, a stage's start and end take the run log's
    lean path (its answers kept for the turn, a row built at once); outside a turn every
    record is asked alone and built through the general ``_emit``, and with another taker it
    goes through ``logging``. The three store the same rows, column for column."""
    hook, writer, db, _ = run_logging
    records = _varied()
    queue = RecordQueue(lambda pair: hook(*pair))
    wanting = _Wanting()
    try:
        with _runner_handlers_aside(), _records_made() as made:
            queue.handle_batch(records)  # one turn
            for event, span in records:  # outside a turn
                hook(event, span)
        assert made == []
        logging.getLogger().addHandler(wanting)
        with _runner_handlers_aside():
            queue.handle_batch(records)  # through logging
    finally:
        logging.getLogger().removeHandler(wanting)
        queue.close()
    assert len(wanting.records) == len(records)
    writer.flush()
    rows = _rows(db)
    count = len(records)
    assert len(rows) == 3 * count
    lean, alone, through_logging = (rows[i : i + count] for i in (0, count, 2 * count))
    assert lean == alone
    assert lean == through_logging
    assert [row[3] for row in lean] == [
        *["INFO"] * 5,
        "WARNING",
        "ERROR",
        "ERROR",
        "WARNING",
        *["INFO"] * 3,
    ]
    assert [row[8] for row in lean[9:]] == [None, None, "0000000000000105"]
    assert "hunter2" not in repr(rows)


def test_levels_changed_between_two_turns_hold_from_the_next_turn(run_logging: Any) -> None:
    """The lean path's levels are asked once per turn (``run_log``'s decision): DEBUG switched
    on after a turn brings the next turn's decision records, and the lifecycle logger raised
    to WARNING drops the next turn's INFO rows. Fails when a turn's answers outlive it."""
    hook, writer, db, _ = run_logging
    decision = logging.getLogger("taskdaemon.run.decision")
    lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
    saved = decision.level, lifecycle.level
    queue = RecordQueue(lambda event: hook(event, SPAN))
    try:
        with _runner_handlers_aside():
            queue.handle_batch(_stage(0))
            decision.setLevel(logging.DEBUG)
            queue.handle_batch(_stage(1))
            decision.setLevel(saved[0])
            lifecycle.setLevel(logging.WARNING)
            queue.handle_batch(_stage(2))
    finally:
        decision.setLevel(saved[0])
        lifecycle.setLevel(saved[1])
        queue.close()
    writer.flush()
    assert [(row[5], row[9].rsplit(".", 1)[1], row[3]) for row in _rows(db)] == [
        ("s0", "lifecycle", "INFO"),
        ("s0", "lifecycle", "ERROR"),
        ("s1", "decision", "DEBUG"),
        ("s1", "decision", "DEBUG"),
        ("s1", "lifecycle", "INFO"),
        ("s1", "lifecycle", "ERROR"),
        ("s2", "lifecycle", "ERROR"),
    ]


def _first_row_of_a_turn(run_logging: Any, span: SpanContext | None) -> tuple[Any, Any]:
    """The span id and attributes stored for a turn whose only record is a stage start with a
    loop name new to the process (attributes the writer has never encoded), under ``span``."""
    hook, writer, db, _ = run_logging
    started = StageStarted(
        run_id=RUN,
        pipeline="p",
        stage="s0",
        instance=0,
        attempt=1,
        task_run_id="s0.0.1",
        loop=f"loop{uuid.uuid4().hex}",  # never encoded before, whatever ran in this process
        at=1_700_000_000.5,
        queued_at=1_700_000_000.5,
        considered_at=1_700_000_000.5,
        inputs={},
    )
    queue = RecordQueue(lambda event: hook(event, span))
    try:
        with _runner_handlers_aside():
            queue.handle_batch([started])
    finally:
        queue.close()
    writer.flush()
    ((span_id, attributes),) = [(row[8], row[11]) for row in _rows(db)]
    return span_id, (started.loop, json.loads(attributes))


def test_a_turns_first_row_of_new_attributes_stores_them(run_logging: Any) -> None:
    """A stage start whose attributes the writer has never encoded, the first row of a turn,
    is stored with them."""
    span_id, (loop, attributes) = _first_row_of_a_turn(run_logging, SPAN)
    assert ("0000000000000042", {"event": "stage.started", "loop": loop}) == (span_id, attributes)


def test_a_turns_first_row_without_a_span_has_no_span_id(run_logging: Any) -> None:
    """A stage start without a span, the first row of a turn, is stored without a span id."""
    span_id, (loop, attributes) = _first_row_of_a_turn(run_logging, None)
    assert (None, {"event": "stage.started", "loop": loop}) == (span_id, attributes)
