"""``run_log``: the decision and lifecycle records each engine event writes through ``logging``:
their message, level and fields, with values as redacted, bounded JSON."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanContext, TraceFlags

from taskdaemon.pipeline import run_log_emit
from taskdaemon.pipeline._record_queue import RecordQueue
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageSkipped,
    StageStarted,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.log_levels import TRACE
from taskdaemon.pipeline.model import Manual, OnCondition, OnEvent, Pipeline, Stage
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.run_log import (
    DECISION_LOGGER,
    EVENT_LOGGER,
    LIFECYCLE_LOGGER,
    MAX_VALUE_CHARS,
    RunLog,
)
from taskdaemon.pipeline.state import RunStatus, StageStatus

RUN = "0123456789abcdef0123456789abcdef"
SPAN = SpanContext(int(RUN, 16), 0x42, False, TraceFlags(TraceFlags.SAMPLED))
#: The ids of stage build's first execution.
IDS: dict[str, Any] = {
    "run_id": RUN,
    "pipeline": "ship",
    "stage": "build",
    "instance": 0,
    "attempt": 1,
}
PIPELINE = Pipeline(
    "ship",
    (
        Stage("build", "python", (Manual(approval_required=False),)),
        Stage(
            "deploy",
            "python",
            (OnCondition("outputs.build.ok"), OnEvent("push", filter="event.branch == 'main'")),
        ),
    ),
)


class _Keeping(logging.Handler):
    """A handler keeping every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """The records of the lifecycle and decision loggers, both at DEBUG (engine events off)."""
    keeping = _Keeping()
    loggers = [logging.getLogger(n) for n in (LIFECYCLE_LOGGER, DECISION_LOGGER, EVENT_LOGGER)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(keeping)
    try:
        yield keeping.records
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(keeping)
            logger.setLevel(level)


def _shown(records: list[logging.LogRecord], *names: str) -> list[tuple[Any, ...]]:
    """Each record's logger, level, message and the fields ``names``."""
    return [
        (r.name, r.levelname, r.getMessage(), *(getattr(r, n, "-") for n in names)) for r in records
    ]


def _started(queued_at: float = 10.25, **inputs: Any) -> StageStarted:
    """Stage build's first execution started at 10.5 s, queued at ``queued_at``, with
    ``inputs``."""
    return StageStarted(
        **IDS,
        task_run_id="build.0.1",
        loop="python",
        at=10.5,
        queued_at=queued_at,
        considered_at=10.0,
        inputs=inputs,
    )


def _inputs_message(records: list[logging.LogRecord]) -> str:
    """The message of the record of the resolved inputs."""
    (message,) = [r.getMessage() for r in records if getattr(r, "event", "") == "inputs.resolved"]
    return message


def test_a_queued_stage_is_a_decision_record(records: list[logging.LogRecord]) -> None:
    """Waiting for a worker slot is one DEBUG record with the stage's ids."""
    RunLog()(StageQueued(**IDS, at=5.0, task_run_id="build.0.1"), SPAN)
    assert [
        (
            DECISION_LOGGER,
            "DEBUG",
            "build.0.1 waits for a worker slot",
            "slot.waiting",
            RUN,
            "ship",
            "build",
            0,
            1,
        )
    ] == _shown(records, "event", "run_id", "pipeline", "stage", "instance", "attempt")


def test_a_started_stage_records_its_wait_for_a_slot(records: list[logging.LogRecord]) -> None:
    """The slot record gives the time from queueing to start, in the message to the
    millisecond and as a field to the microsecond."""
    RunLog()(_started(queued_at=10.2499998), SPAN)
    (slot,) = [r for r in records if getattr(r, "event", "") == "slot.acquired"]
    assert ("DEBUG", "build.0.1 got a worker slot after 0.250s", 0.25) == (
        slot.levelname,
        slot.getMessage(),
        getattr(slot, "wait_s", None),
    )


def test_the_resolved_inputs_are_sorted_json_with_text_as_it_is(
    records: list[logging.LogRecord],
) -> None:
    """Inputs are JSON with sorted keys, non-ASCII text kept and other objects as text, in the
    message and in the field ``inputs`` (a JSON log reader had them in the text only, where
    a trigger's ``values`` are a field)."""
    RunLog()(_started(b=1, a="été", path=Path("/srv/x")), SPAN)
    text = '{"a": "été", "b": 1, "path": "/srv/x"}'
    assert f"build.0.1 resolved inputs {text}" == _inputs_message(records)
    assert [text] == [r.inputs for r in records if getattr(r, "event", "") == "inputs.resolved"]


def test_inputs_of_the_longest_json_kept_are_whole(records: list[logging.LogRecord]) -> None:
    """Inputs whose JSON is exactly the bound long are logged whole."""
    text = "x" * (MAX_VALUE_CHARS - len('{"k": ""}'))
    RunLog()(_started(k=text), SPAN)
    assert f'build.0.1 resolved inputs {{"k": "{text}"}}' == _inputs_message(records)


def test_longer_inputs_are_cut_to_the_bound_with_an_ellipsis(
    records: list[logging.LogRecord],
) -> None:
    """Inputs past the bound are cut so that, with the ellipsis, they are the bound long."""
    text = "x" * (MAX_VALUE_CHARS - len('{"k": ""}') + 1)
    RunLog()(_started(k=text), SPAN)
    expected = f'{{"k": "{text}"}}'[: MAX_VALUE_CHARS - 1] + "…"
    assert f"build.0.1 resolved inputs {expected}" == _inputs_message(records)


def test_inputs_that_are_no_json_are_shown_by_repr(records: list[logging.LogRecord]) -> None:
    """Inputs that cannot be made JSON (a loop of references) are logged as their repr."""
    loop: dict[str, Any] = {}
    loop["self"] = loop
    RunLog()(_started(loop=loop), SPAN)
    assert f"build.0.1 resolved inputs {{'loop': {loop!r}}}" == _inputs_message(records)


def test_a_successful_stage_records_its_mapped_outputs(records: list[logging.LogRecord]) -> None:
    """A success writes its outputs as JSON in a DEBUG record before the lifecycle one, in its
    message and its field ``outputs``."""
    finished = StageFinished(
        **IDS,
        task_run_id="build.0.1",
        status=StageStatus.SUCCESS,
        at=11.0,
        outputs={"ok": True},
    )
    RunLog()(finished, SPAN)
    assert [
        (
            DECISION_LOGGER,
            "DEBUG",
            'build.0.1 mapped outputs {"ok": true}',
            "outputs.mapped",
            '{"ok": true}',
        ),
        (LIFECYCLE_LOGGER, "INFO", "stage build.0.1 finished: success", "stage.finished", "-"),
    ] == _shown(records, "event", "outputs")


def test_a_stopped_stage_says_cancelled_once(records: list[logging.LogRecord]) -> None:
    """A stage a stop cancelled, whose error begins with its status, says the status once."""
    finished = StageFinished(
        **IDS,
        task_run_id="build.0.1",
        status=StageStatus.CANCELLED,
        at=11.0,
        error="cancelled: run cancelled",
    )
    RunLog()(finished, SPAN)
    assert [
        (LIFECYCLE_LOGGER, "WARNING", "stage build.0.1 finished: cancelled: run cancelled"),
    ] == _shown(records)


def test_a_skipped_stage_is_a_lifecycle_record(records: list[logging.LogRecord]) -> None:
    """A skipped stage is one INFO record naming the stage and the reason."""
    skipped = StageSkipped(
        run_id=RUN, pipeline="ship", stage="deploy", reason="upstream build failed", at=12.0
    )
    RunLog()(skipped, SPAN)
    assert [
        (
            LIFECYCLE_LOGGER,
            "INFO",
            "stage deploy skipped: upstream build failed",
            "stage.skipped",
            "deploy",
        )
    ] == _shown(records, "event", "stage")


def _evaluated(index: int, satisfied: bool, **more: Any) -> TriggerEvaluated:
    """Trigger ``index`` of stage deploy evaluated."""
    return TriggerEvaluated(
        run_id=RUN,
        pipeline="ship",
        stage="deploy",
        trigger_index=index,
        trigger_type="on_condition",
        description="when ok",
        satisfied=satisfied,
        stage_ready=satisfied,
        at=12.0,
        **more,
    )


def _run_log_of_ship() -> RunLog:
    """A run log that has seen the run of pipeline ``ship`` start (with no record kept)."""
    run_log = RunLog()
    lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
    level = lifecycle.level
    lifecycle.setLevel(logging.ERROR)
    try:
        run_log(RunStarted(run_id=RUN, pipeline=PIPELINE, request={}, at=1.0), SPAN)
    finally:
        lifecycle.setLevel(level)
    return run_log


def test_a_trigger_evaluation_records_its_verdict_and_fields(
    records: list[logging.LogRecord],
) -> None:
    """A satisfied condition is a DEBUG record with its description, type, result, readiness,
    expression and the values it read as JSON."""
    _run_log_of_ship()(_evaluated(0, True, detail="true", values={"ok": True}), SPAN)
    assert [
        (
            DECISION_LOGGER,
            "DEBUG",
            "deploy trigger 0 (when ok): satisfied (true)",
            "trigger.evaluated",
            "when ok",
            "on_condition",
            True,
            True,
            "outputs.build.ok",
            '{"ok": true}',
        )
    ] == _shown(
        records, "event", "trigger", "trigger_type", "result", "stage_ready", "expression", "values"
    )


def test_a_trigger_not_satisfied_says_so(records: list[logging.LogRecord]) -> None:
    """An unsatisfied trigger's message says ``not satisfied``."""
    _run_log_of_ship()(_evaluated(0, False), SPAN)
    assert ["deploy trigger 0 (when ok): not satisfied ()"] == [r.getMessage() for r in records]


def test_an_event_triggers_expression_is_its_filter(records: list[logging.LogRecord]) -> None:
    """For an ``on_event`` trigger the record's expression is the event filter."""
    _run_log_of_ship()(_evaluated(1, True), SPAN)
    assert ["event.branch == 'main'"] == [getattr(r, "expression", None) for r in records]


@pytest.mark.parametrize("index", [2, -1])
def test_a_trigger_index_past_the_stages_triggers_has_no_expression(
    records: list[logging.LogRecord], index: int
) -> None:
    """An index the stage has no trigger at gives a record without an expression."""
    _run_log_of_ship()(_evaluated(index, True), SPAN)
    assert [None] == [getattr(r, "expression", None) for r in records]


def test_a_trigger_of_a_run_not_seen_starting_has_no_expression(
    records: list[logging.LogRecord],
) -> None:
    """Without the run's pipeline the record has no expression (and no error)."""
    RunLog()(_evaluated(0, True), SPAN)
    assert [None] == [getattr(r, "expression", None) for r in records]


def test_an_approval_request_records_its_timeout(records: list[logging.LogRecord]) -> None:
    """Asking for approval is a DEBUG record with the timeout in seconds."""
    RunLog()(
        ApprovalRequested(run_id=RUN, pipeline="ship", stage="deploy", at=12.0, timeout=30.0),
        SPAN,
    )
    assert [
        (DECISION_LOGGER, "DEBUG", "deploy asks for approval", "approval.requested", 30.0)
    ] == _shown(records, "event", "timeout_s")


@pytest.mark.parametrize(
    ("approved", "by", "timed_out", "message"),
    [
        (True, "alice", False, "deploy approval approved by alice"),
        (False, "bob", False, "deploy approval rejected by bob"),
        (False, "", True, "deploy approval timed out"),
    ],
)
def test_an_approval_resolved_says_how_and_by_whom(
    records: list[logging.LogRecord], approved: bool, by: str, timed_out: bool, message: str
) -> None:
    """The resolution is approved, rejected or timed out, with who decided as a field."""
    resolved = ApprovalResolved(
        run_id=RUN,
        pipeline="ship",
        stage="deploy",
        approved=approved,
        at=12.0,
        by=by,
        timed_out=timed_out,
    )
    RunLog()(resolved, SPAN)
    assert [(DECISION_LOGGER, "DEBUG", message, "approval.resolved", approved, by)] == _shown(
        records, "event", "approved", "by"
    )


def test_an_engine_event_at_trace_is_its_type_and_fields(records: list[logging.LogRecord]) -> None:
    """With the event logger at TRACE, an event is one record of its type and its fields as
    JSON, without the run id and pipeline (ids of every record) or an exception."""
    event_logger = logging.getLogger(EVENT_LOGGER)
    event_logger.setLevel(TRACE)
    RunLog()(StageQueued(**IDS, at=5.0, task_run_id="build.0.1"), SPAN)
    fields = (
        '{"at": 5.0, "attempt": 1, "instance": 0, "stage": "build", "task_run_id": "build.0.1"}'
    )
    assert (EVENT_LOGGER, "TRACE", f"engine event StageQueued {fields}", "engine.StageQueued") == (
        _shown(records, "event")[0]
    )


@pytest.mark.parametrize(
    ("status", "error", "level", "message"),
    [
        (
            RunStatus.FAILURE,
            "stage build failed",
            "ERROR",
            f"run {RUN} finished: failure: stage build failed",
        ),
        (RunStatus.CANCELLED, None, "WARNING", f"run {RUN} finished: cancelled"),
        (RunStatus.CANCELLED, "cancelled", "WARNING", f"run {RUN} finished: cancelled"),
        (
            RunStatus.CANCELLED,
            "cancelled: run cancelled",
            "WARNING",
            f"run {RUN} finished: cancelled: run cancelled",
        ),
        (RunStatus.SUCCESS, None, "INFO", f"run {RUN} finished: success"),
    ],
)
def test_a_finished_run_is_logged_at_its_outcomes_level(
    records: list[logging.LogRecord],
    status: RunStatus,
    error: str | None,
    level: str,
    message: str,
) -> None:
    """A failed run is an ERROR with its error, a cancelled one a WARNING, a success INFO."""
    RunLog()(RunFinished(run_id=RUN, pipeline="ship", status=status, at=20.0, error=error), SPAN)
    assert [(LIFECYCLE_LOGGER, level, message, "run.finished", str(status))] == _shown(
        records, "event", "status"
    )


def test_a_record_carries_the_events_time(records: list[logging.LogRecord]) -> None:
    """A record's creation time is the event's, milliseconds included."""
    RunLog()(StageQueued(**IDS, at=1_700_000_000.25, task_run_id="build.0.1"), SPAN)
    (record,) = records
    assert (1_700_000_000.25, 250.0) == (record.created, record.msecs)


def test_a_record_names_the_run_log_module_as_its_source(records: list[logging.LogRecord]) -> None:
    """The records' code location (exported as ``code.file.path``) is the run log's module that
    writes them, with no line (none exported: ``logs.OTelLogHandler``)."""
    RunLog()(StageQueued(**IDS, at=5.0, task_run_id="build.0.1"), SPAN)
    (record,) = records
    assert (run_log_emit.__file__, 0) == (record.pathname, record.lineno)


def test_a_finished_runs_pipeline_is_forgotten(records: list[logging.LogRecord]) -> None:
    """After its run finishes, a trigger of that run has no expression: the run log keeps no
    pipeline of a run that ended."""
    run_log = _run_log_of_ship()
    lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
    lifecycle.setLevel(logging.ERROR)
    run_log(RunFinished(run_id=RUN, pipeline="ship", status=RunStatus.SUCCESS, at=20.0), SPAN)
    run_log(_evaluated(0, True), SPAN)
    assert [None] == [getattr(r, "expression", None) for r in records]


def test_in_a_queue_turn_an_engine_event_at_trace_is_still_written(
    records: list[logging.LogRecord],
) -> None:
    """Within a turn of the monitor's record queue, TRACE on for the event logger (decisions
    off) keeps a stage's start off the lifecycle-only path: its engine event is written."""
    logging.getLogger(EVENT_LOGGER).setLevel(TRACE)
    logging.getLogger(DECISION_LOGGER).setLevel(logging.INFO)
    run_log = RunLog()
    queue = RecordQueue(lambda event: run_log(event, SPAN))
    try:
        queue.handle_batch([_started()])
    finally:
        queue.close()
    assert ["engine.StageStarted", "stage.started"] == [getattr(r, "event", "") for r in records]


def _each_kind() -> list[Any]:
    """One event of each kind that writes a record."""
    return [
        StageQueued(**IDS, at=5.0, task_run_id="build.0.1"),
        _started(),
        StageFinished(**IDS, task_run_id="build.0.1", status=StageStatus.SUCCESS, at=11.0),
        StageSkipped(run_id=RUN, pipeline="ship", stage="deploy", reason="upstream", at=12.0),
        _evaluated(0, True),
        ApprovalRequested(run_id=RUN, pipeline="ship", stage="deploy", at=12.0),
        ApprovalResolved(run_id=RUN, pipeline="ship", stage="deploy", approved=True, at=13.0),
        RunFinished(run_id=RUN, pipeline="ship", status=RunStatus.SUCCESS, at=20.0),
    ]


@pytest.mark.parametrize("event", _each_kind(), ids=lambda event: type(event).__name__)
def test_every_record_carries_the_spans_ids(records: list[logging.LogRecord], event: Any) -> None:
    """Each record an event writes (engine event at TRACE included) names the trace and the
    span it belongs to."""
    logging.getLogger(EVENT_LOGGER).setLevel(TRACE)
    RunLog()(event, SPAN)
    ids = {(getattr(r, "trace_id", None), getattr(r, "span_id", None)) for r in records}
    assert {(RUN, "0000000000000042")} == ids


def test_a_failed_stages_engine_event_leaves_its_exception_out(
    records: list[logging.LogRecord],
) -> None:
    """The TRACE record of a stage that raised lists its fields but not the exception
    object (its error text is a field of its own)."""
    logging.getLogger(EVENT_LOGGER).setLevel(TRACE)
    failed = StageFinished(
        **IDS,
        task_run_id="build.0.1",
        status=StageStatus.FAILURE,
        at=11.0,
        error="boom",
        exception=ValueError("raised object"),
    )
    RunLog()(failed, SPAN)
    (trace,) = [r.getMessage() for r in records if r.levelname == "TRACE"]
    assert (True, False) == ('"error": "boom"' in trace, "raised object" in trace)


def test_an_engine_events_references_read_as_task_run_ids(
    records: list[logging.LogRecord],
) -> None:
    """The executions an event refers to (``fired_by``, ``previous_attempt``, an event's
    ``source``) read as the task run ids spans and other records name them (``a.0.1``), not as
    Python's text of the object (``TaskRunRef(stage='a', ...)``)."""
    logging.getLogger(EVENT_LOGGER).setLevel(TRACE)
    started = replace(
        _started(),
        task_run_id="build.0.2",
        attempt=2,
        fired_by=(TaskRunRef(stage="plan", instance=0, attempt=1),),
        previous_attempt=TaskRunRef(stage="build", instance=0, attempt=1),
    )
    RunLog()(started, SPAN)
    (trace,) = [r.getMessage() for r in records if r.levelname == "TRACE"]
    assert ('"fired_by": ["plan.0.1"]', '"previous_attempt": "build.0.1"') == (
        trace[trace.index('"fired_by"') :].split(", ")[0],
        trace[trace.index('"previous_attempt"') :].split(", ")[0],
    )
