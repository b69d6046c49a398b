"""A stage span's end attributes: a plain success's, built already redacted
(``_stage_spans._succeeded``), record what the general way records, in the same order; every other
end still takes the general way."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_monitor_support import STAGE_END_KEYS, Feed, Telemetry, chain_pipeline
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import Manual, Pipeline, Stage
from taskdaemon.pipeline.state import RunStatus, StageStatus


@pytest.mark.parametrize(
    ("status", "finished", "expected"),
    [
        (StageStatus.SUCCESS, {}, [("success", "success")]),
        (
            StageStatus.SUCCESS,
            {"cpu_seconds": 0.25, "peak_memory_bytes": 4096},
            [("success", "success"), 0.25, 4096],
        ),
        (StageStatus.SUCCESS, {"cpu_seconds": 0.5}, [("success", "success"), 0.5, None]),
        (StageStatus.SUCCESS, {"peak_memory_bytes": 7}, [("success", "success"), None, 7]),
        # Not a float, not an int: the general way (the SDK records them as they are).
        (StageStatus.SUCCESS, {"cpu_seconds": 2}, [("success", "success"), 2, None]),
        (
            StageStatus.SUCCESS,
            {"peak_memory_bytes": True, "cpu_seconds": 0.125},
            [("success", "success"), 0.125, True],
        ),
        (
            StageStatus.SUCCESS,
            {"cancel_reason": "stop", "cancel_cause": "password=hunter2"},
            [("success", "success"), None, None, None, None, None, "stop", "password=[REDACTED]"],
        ),
        (
            StageStatus.FAILURE,
            {"error": "token=abc123", "error_type": "ValueError", "will_retry": True},
            [("failure", "failure"), None, None, True, "ValueError", "token=[REDACTED]"],
        ),
        (StageStatus.CANCELLED, {"cpu_seconds": 0.5}, [("cancellation", "cancelled"), 0.5]),
    ],
)
def test_end_attributes_in_order(
    tel: Telemetry, status: StageStatus, finished: dict[str, Any], expected: list[Any]
) -> None:
    """The end attributes of a stage span, key by key in ``end_stage_span``'s order (absent
    ones left out), for plain successes and the ends that take the general way."""
    feed = Feed(
        tel,
        Pipeline(name="ends", stages=(Stage("a", "python", (Manual(approval_required=False),)),)),
    )
    feed.start_run()
    feed.start("a")
    feed.finish("a", status=status, **finished)
    feed.finish_run(RunStatus.SUCCESS if status is StageStatus.SUCCESS else RunStatus.FAILURE)
    [span] = tel.by_name(t.stage_span_name("a"))
    result, stage_status = expected[0]
    values = [result, stage_status, *expected[1:]]
    want = [
        (key, value)
        for key, value in zip(STAGE_END_KEYS, values, strict=False)
        if value is not None
    ]
    got = [(key, value) for key, value in (span.attributes or {}).items() if key in STAGE_END_KEYS]
    assert got == want
    assert [type(value) for _, value in got] == [type(value) for _, value in want]
    start_keys = [key for key in (span.attributes or {}) if key not in STAGE_END_KEYS]
    assert list(span.attributes or {})[len(start_keys) :] == [key for key, _ in want]


def test_an_execution_is_kept_with_what_its_start_said(tel: Telemetry) -> None:
    """The books of an open execution hold its start record's stage, instance, attempt and
    time, its queue time and its span's context (its end, the metrics and the links read
    them); distinct values, so no two fields can trade places."""
    feed = Feed(tel, chain_pipeline(("a",)))
    run_id = feed.start_run()
    feed.tick(5)
    started = feed.start("a", instance=2, attempt=3, queue=0.25)
    execution = feed.monitor._recorder.runs[run_id].open[started.task_run_id]
    assert (
        execution.stage,
        execution.instance,
        execution.attempt,
        execution.started_at,
        execution.queue_time,
        execution.context,
    ) == (
        "a",
        2,
        3,
        started.at,
        started.at - started.queued_at,
        execution.span.get_span_context(),
    )
    assert execution.context.is_valid
