"""What a replay reads of a recorded run: its values (and why one is not the exact value) and
the run, executions, events and approvals read from its spans."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.replay.record import (
    RecordedApproval,
    RecordedEvent,
    RecordedExecution,
    RecordedValue,
    read_recorded_run,
    redacted_paths,
)
from taskdaemon.pipeline.tracking.spans import SpanEventRecord, SpanRecord

FULL = '{"command": "echo password=hunter2secret"}'


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_value_redacted_on_its_way_to_the_store_is_not_called_cut() -> None:
    """A definition whose stored text had a secret replaced by ``[REDACTED]`` (it no longer
    hashes to its sha256) is reported as redacted, not as cut by a backend's size limit."""
    stored = FULL.replace("hunter2secret", "[REDACTED]")
    value = RecordedValue(stored, size=len(FULL), sha256=_sha256(FULL), redacted=False)
    expected = "redacted before it was stored (a secret in it became [REDACTED])"
    assert expected == value.problem()


def test_a_value_cut_on_its_way_is_still_called_cut() -> None:
    """A stored text shorter than the value, without ``[REDACTED]``, was cut on the way."""
    value = RecordedValue(FULL[:20], size=len(FULL), sha256=_sha256(FULL), redacted=False)
    assert f"cut on the way to the span source (20 of {len(FULL)} bytes kept)" == value.problem()


# ---------------------------------------------------------------------- RecordedValue


def test_a_value_without_text_is_not_recorded_and_keeps_nothing() -> None:
    """A value with no text is "not recorded" and keeps 0 bytes."""
    value = RecordedValue(None)
    assert ("not recorded", 0, None) == (value.problem(), value.kept, value.value())


def test_the_kept_size_counts_utf8_bytes() -> None:
    """``kept`` is the UTF-8 length of the text, not its characters."""
    assert 4 == RecordedValue('"é"').kept


def test_a_text_that_hashes_to_its_sha256_is_the_exact_value() -> None:
    """A text matching its hash has no problem and parses to the value, whatever the flags."""
    text = '{"a": [1, 2]}'
    value = RecordedValue(text, size=len(text), sha256=_sha256(text), truncated=True)
    assert (None, {"a": [1, 2]}) == value.check()


def test_a_text_cut_at_capture_says_how_much_of_how_much_was_kept() -> None:
    """A truncated text that misses its hash names the bytes kept, the full size and the
    setting that raises the cap."""
    value = RecordedValue(FULL[:10], size=len(FULL), sha256=_sha256(FULL), truncated=True)
    expected = (
        f"truncated at capture (10 of {len(FULL)} bytes kept; "
        "TASKDAEMON_CAPTURE_MAX_BYTES sets the cap)"
    )
    assert (expected, None) == value.check()


def test_a_text_cut_at_capture_without_a_size_says_what_was_kept() -> None:
    """Without a recorded size the message names only the bytes kept."""
    value = RecordedValue(FULL[:10], sha256=_sha256(FULL), truncated=True)
    expected = "truncated at capture (10 bytes kept; TASKDAEMON_CAPTURE_MAX_BYTES sets the cap)"
    assert expected == value.problem()


def test_a_cut_on_the_way_without_a_size_says_what_was_kept() -> None:
    """A text missing its hash, not truncated and without a size, was cut on the way."""
    value = RecordedValue(FULL[:20], sha256=_sha256(FULL))
    assert "cut on the way to the span source (20 bytes kept)" == value.problem()


def test_a_text_that_is_its_hash_but_not_json_is_not_json() -> None:
    """A text matching its hash that does not parse is "not JSON"."""
    assert "not JSON" == RecordedValue("{oops", sha256=_sha256("{oops")).problem()


def test_a_text_without_a_hash_that_does_not_parse_was_truncated() -> None:
    """Without a hash, a text that does not parse counts as truncated (version 1 spans)."""
    assert "truncated (5 bytes kept)" == RecordedValue("{oops").problem()


def test_a_truncated_text_without_a_hash_that_does_not_parse_was_truncated() -> None:
    """A truncated text that does not parse says how much was kept."""
    value = RecordedValue('{"a', truncated=True, sha256=None)
    assert "truncated (3 bytes kept)" == value.problem()


def test_a_truncated_text_without_a_hash_that_parses_was_still_cut_at_capture() -> None:
    """The truncated flag without a hash wins over a text that happens to parse."""
    value = RecordedValue("[1]", truncated=True)
    assert ("truncated at capture (3 bytes kept)", None) == value.check()


def test_a_value_with_redacted_keys_names_their_paths() -> None:
    """A value whose keys were replaced by ``[REDACTED]`` names each path, with the value."""
    text = '{"token": "[REDACTED]", "list": [1, "[REDACTED]"]}'
    value = RecordedValue(text, redacted=True)
    parsed = {"token": "[REDACTED]", "list": [1, "[REDACTED]"]}
    assert ("redacted (token, list[1])", parsed) == value.check()


def test_a_version_1_value_holding_redacted_is_redacted() -> None:
    """Without the ``redacted`` flag (version 1), a ``[REDACTED]`` value counts as redacted."""
    value = RecordedValue('{"k": "[REDACTED]"}')
    assert "redacted (k)" == value.problem()


def test_a_value_recorded_unredacted_may_hold_the_redacted_marker() -> None:
    """``redacted=False`` says nothing was replaced: a literal marker is the exact value."""
    value = RecordedValue('{"k": "[REDACTED]"}', redacted=False)
    assert (None, {"k": "[REDACTED]"}) == value.check()


def test_a_marker_inside_a_longer_string_is_not_a_redacted_key() -> None:
    """``[REDACTED]`` inside a longer string names no path, so the value is exact."""
    value = RecordedValue('{"k": "x [REDACTED] y"}', redacted=True)
    assert (None, {"k": "x [REDACTED] y"}) == value.check()


def test_redacted_paths_dot_nested_keys_and_index_lists() -> None:
    """Paths join keys with dots (under a prefix when given) and items with ``[i]``."""
    value = {"a": {"b": "[REDACTED]", "c": ["[REDACTED]", {"d": "[REDACTED]"}]}, 1: "ok"}
    expected = ["top.a.b", "top.a.c[0]", "top.a.c[1].d"]
    assert expected == redacted_paths(value, "top")


def test_redacted_paths_of_a_list_at_the_top() -> None:
    """A list at the top gives paths starting with its index."""
    assert ["[1]", "[2].k"] == redacted_paths([1, "[REDACTED]", {"k": "[REDACTED]"}])


# ---------------------------------------------------------------------- read_recorded_run

TRACE = "ab" * 16


def run_span(*events: SpanEventRecord, end_ns: int | None = 900, **attributes: Any) -> SpanRecord:
    """The run span of pipeline ``p`` (action RUN), with the attributes and events given."""
    return SpanRecord(
        TRACE,
        "root",
        None,
        "RUN p",
        "INTERNAL",
        100,
        end_ns,
        attributes={t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION, **attributes},
        events=events,
    )


def stage_span(
    span_id: str,
    stage: str,
    *events: SpanEventRecord,
    start_ns: int = 200,
    end_ns: int | None = 300,
    status_code: str = "UNSET",
    status_message: str = "",
    **attributes: Any,
) -> SpanRecord:
    """A stage span of ``stage`` under the run span."""
    return SpanRecord(
        TRACE,
        span_id,
        "root",
        f"TASK {stage}",
        "INTERNAL",
        start_ns,
        end_ns,
        status_code,
        status_message,
        attributes={t.CICD_TASK_NAME: stage, **attributes},
        events=events,
    )


def payload_event(name: str, text: str, **attributes: Any) -> SpanEventRecord:
    """A span event carrying a payload's JSON text."""
    return SpanEventRecord(name, 250, {t.PAYLOAD_JSON: text, **attributes})


def published(event_type: str, event_id: Any, time_ns: int, **attributes: Any) -> SpanEventRecord:
    """A ``pipeline.event.published`` span event."""
    return SpanEventRecord(
        t.EVENT_PUBLISHED,
        time_ns,
        {
            t.PUBLISHED_EVENT_TYPE: event_type,
            t.PUBLISHED_EVENT_ID: event_id,
            t.PAYLOAD_JSON: "{}",
            **attributes,
        },
    )


def test_spans_without_a_run_span_are_refused() -> None:
    """A trace with no run span is a ValueError saying it is not a taskdaemon run."""
    with pytest.raises(ValueError, match="no run span") as refused:
        read_recorded_run([stage_span("s1", "a")])
    expected = "the trace has no run span (RUN …): it is not a taskdaemon run"
    assert expected == str(refused.value)


def test_the_run_span_gives_the_run_id_pipeline_and_version() -> None:
    """The run is the trace id; the pipeline is its attribute; the schema version is read."""
    run = read_recorded_run([run_span(**{t.CICD_PIPELINE_NAME: "named", t.SCHEMA_VERSION: 3})])
    assert (TRACE, "named", 3) == (run.run_id, run.pipeline, run.schema_version)


def test_without_its_attributes_the_pipeline_is_the_span_name_and_version_1() -> None:
    """Without a pipeline attribute the name comes from ``RUN name``; the version is 1."""
    run = read_recorded_run([run_span()])
    assert ("p", 1) == (run.pipeline, run.schema_version)


@pytest.mark.parametrize(
    ("result", "end_ns", "status"),
    [
        ("success", 900, "success"),
        ("cancellation", 900, "cancelled"),
        ("failure", 900, "failure"),
        ("error", 900, "failure"),
        ("success", None, "running"),
    ],
)
def test_the_run_status_is_read_from_its_result(
    result: str, end_ns: int | None, status: str
) -> None:
    """An ended run is success, cancelled or failure by its result; an open one is running."""
    run = read_recorded_run([run_span(end_ns=end_ns, **{t.CICD_PIPELINE_RESULT: result})])
    assert status == run.status


def test_the_definition_is_read_with_its_size_hash_and_cut() -> None:
    """The run's definition keeps its text, size, hash and truncation, never redacted."""
    run = read_recorded_run(
        [
            run_span(
                **{
                    t.PIPELINE_DEFINITION: '{"name": "p"}',
                    t.PIPELINE_DEFINITION_SIZE: 40,
                    t.PIPELINE_DEFINITION_HASH: "h1",
                    t.PIPELINE_DEFINITION_TRUNCATED: True,
                }
            )
        ]
    )
    expected = RecordedValue('{"name": "p"}', 40, "h1", True, False)
    assert (expected, "h1") == (run.definition, run.definition_hash)


def test_a_run_without_a_definition_has_none() -> None:
    """No definition attribute: no definition and no hash."""
    run = read_recorded_run([run_span()])
    assert (None, None) == (run.definition, run.definition_hash)


def test_the_request_is_read_with_its_size_hash_cut_and_redaction() -> None:
    """The run's request keeps its text, size, sha256, truncation and redacted flag."""
    run = read_recorded_run(
        [
            run_span(
                **{
                    t.PIPELINE_REQUEST: '{"n": 1}',
                    t.PIPELINE_REQUEST_SIZE: 8,
                    t.PIPELINE_REQUEST_SHA256: "s1",
                    t.PIPELINE_REQUEST_TRUNCATED: True,
                    t.PIPELINE_REQUEST_REDACTED: True,
                }
            )
        ]
    )
    assert RecordedValue('{"n": 1}', 8, "s1", True, True) == run.request


def test_a_run_without_a_request_recorded_an_empty_one() -> None:
    """No request attribute: ``{}``, its redaction unknown when not a bool."""
    run = read_recorded_run([run_span(**{t.PIPELINE_REQUEST_REDACTED: "yes"})])
    assert RecordedValue("{}") == run.request


def test_an_execution_is_read_from_its_stage_span() -> None:
    """A stage span gives its stage, instance, attempt, status, ids, times, payloads, events
    and error."""
    span = stage_span(
        "s1",
        "build",
        payload_event(t.EVENT_STAGE_INPUT, '{"i": 1}', **{t.PAYLOAD_SIZE: 8}),
        payload_event(
            t.EVENT_STAGE_OUTPUT,
            '{"o": 2}',
            **{
                t.PAYLOAD_SHA256: "so",
                t.PAYLOAD_TRUNCATED: True,
                t.PAYLOAD_REDACTED: False,
            },
        ),
        published("go", 4, 260, **{t.PUBLISHED_EVENT_SOURCE: "build.1.2"}),
        **{
            t.STAGE_INSTANCE: 1,
            t.STAGE_ATTEMPT: 2,
            t.STAGE_STATUS: "failure",
            t.STAGE_ERROR_MESSAGE: "broke",
        },
    )
    run = read_recorded_run([run_span(), span])
    expected = RecordedExecution(
        stage="build",
        instance=1,
        attempt=2,
        status="failure",
        span_id="s1",
        start_ns=200,
        end_ns=300,
        inputs=RecordedValue('{"i": 1}', 8),
        outputs=RecordedValue('{"o": 2}', None, "so", True, False),
        events=(RecordedEvent("go", 4, "build.1.2", RecordedValue("{}"), 260),),
        error="broke",
    )
    assert {"build": (expected,)} == run.executions


def test_an_execution_without_its_numbers_is_instance_0_attempt_1() -> None:
    """Missing (or boolean) instance and attempt read as 0 and 1; no payload events: None."""
    span = stage_span("s1", "a", **{t.STAGE_INSTANCE: True, t.STAGE_ATTEMPT: "2"})
    (execution,) = read_recorded_run([run_span(), span]).executions["a"]
    assert (0, 1, None, None) == (
        execution.instance,
        execution.attempt,
        execution.inputs,
        execution.outputs,
    )


def test_payload_fields_of_the_wrong_type_are_left_out() -> None:
    """A size that is not an int, an empty or non-text hash and a non-bool redacted flag read
    as unknown; a truncated flag other than True is False."""
    span = stage_span(
        "s1",
        "a",
        payload_event(
            t.EVENT_STAGE_OUTPUT,
            "[1]",
            **{
                t.PAYLOAD_SIZE: "3",
                t.PAYLOAD_SHA256: "",
                t.PAYLOAD_TRUNCATED: "true",
                t.PAYLOAD_REDACTED: 1,
            },
        ),
    )
    (execution,) = read_recorded_run([run_span(), span]).executions["a"]
    assert RecordedValue("[1]") == execution.outputs


def test_an_open_stage_span_is_running() -> None:
    """A stage span that has not ended is a running execution."""
    span = stage_span("s1", "a", end_ns=None, **{t.STAGE_STATUS: "success"})
    (execution,) = read_recorded_run([run_span(), span]).executions["a"]
    assert ("running", None) == (execution.status, execution.end_ns)


def test_a_replayed_execution_stands_for_the_status_it_replayed() -> None:
    """A span of a replayed stage reads as the status it stood for (success by default)."""
    spans = [
        run_span(),
        stage_span("s1", "a", **{t.STAGE_STATUS: "replayed", t.STAGE_REPLAYED_STATUS: "failure"}),
        stage_span("s2", "b", **{t.STAGE_STATUS: "replayed"}),
    ]
    run = read_recorded_run(spans)
    assert ("failure", "success") == (
        run.executions["a"][0].status,
        run.executions["b"][0].status,
    )


def test_the_error_falls_back_to_the_span_status_message() -> None:
    """Without an error attribute the error is the span's status message; none when empty."""
    spans = [
        run_span(),
        stage_span("s1", "a", status_code="ERROR", status_message="exit 2"),
        stage_span("s2", "b"),
    ]
    run = read_recorded_run(spans)
    assert ("exit 2", None) == (run.executions["a"][0].error, run.executions["b"][0].error)


def test_executions_are_ordered_by_instance_attempt_and_start() -> None:
    """A stage's executions are sorted by instance, then attempt, then start time."""
    spans = [
        run_span(),
        stage_span("s1", "a", start_ns=500, **{t.STAGE_INSTANCE: 1, t.STAGE_ATTEMPT: 1}),
        stage_span("s2", "a", start_ns=400, **{t.STAGE_INSTANCE: 0, t.STAGE_ATTEMPT: 2}),
        stage_span("s3", "a", start_ns=300, **{t.STAGE_INSTANCE: 0, t.STAGE_ATTEMPT: 1}),
        stage_span("s4", "a", start_ns=200, **{t.STAGE_INSTANCE: 1, t.STAGE_ATTEMPT: 1}),
    ]
    run = read_recorded_run(spans)
    assert ["s3", "s2", "s4", "s1"] == [e.span_id for e in run.executions["a"]]


def test_a_span_seen_open_and_ended_counts_once_as_ended() -> None:
    """The same span read open and then ended (or the other way) is one ended execution."""
    open_span = stage_span("s1", "a", end_ns=None)
    ended = stage_span("s1", "a", end_ns=300)
    first = read_recorded_run([run_span(), open_span, ended]).executions["a"]
    second = read_recorded_run([run_span(), ended, open_span]).executions["a"]
    assert ([300], [300]) == ([e.end_ns for e in first], [e.end_ns for e in second])


def test_skip_spans_and_spans_without_a_stage_are_not_executions() -> None:
    """A zero-length skip span names a skipped stage; a span without a stage name is ignored."""
    spans = [
        run_span(),
        stage_span("s1", "a", start_ns=300, end_ns=300, **{t.CICD_TASK_RUN_RESULT: "skip"}),
        stage_span("s2", "", end_ns=300),
        stage_span("s3", "c", start_ns=300, end_ns=300),
    ]
    run = read_recorded_run(spans)
    assert (("a",), ["c"]) == (run.skipped, list(run.executions))


def test_approvals_are_read_from_the_run_span_in_time_order() -> None:
    """Each ``approval.resolved`` event is an approval (stage, approved, by, timed out)."""
    resolved = t.EVENT_APPROVAL_RESOLVED
    root = run_span(
        SpanEventRecord(
            resolved,
            700,
            {t.CICD_TASK_NAME: "b", t.APPROVAL_APPROVED: "yes", t.APPROVAL_TIMED_OUT: True},
        ),
        SpanEventRecord(
            resolved, 600, {t.CICD_TASK_NAME: "a", t.APPROVAL_APPROVED: True, t.APPROVAL_BY: "al"}
        ),
        SpanEventRecord("approval.requested", 500, {t.CICD_TASK_NAME: "a"}),
    )
    expected = (
        RecordedApproval("a", True, "al", False, 600),
        RecordedApproval("b", False, "", True, 700),
    )
    assert expected == read_recorded_run([root]).approvals


def test_external_events_are_read_from_the_run_span_by_id() -> None:
    """Events on the run span are the external ones, ordered by id; a missing id is 0 and an
    empty source None."""
    root = run_span(
        published("b", 2, 100, **{t.PUBLISHED_EVENT_SOURCE: ""}),
        published("a", 1, 200),
        published("z", False, 300),
        SpanEventRecord("other", 50, {}),
    )
    events = read_recorded_run([root]).external_events
    assert [("z", 0, None), ("a", 1, None), ("b", 2, None)] == [
        (e.event_type, e.event_id, e.source) for e in events
    ]


def test_the_spans_read_are_kept_once_each() -> None:
    """``spans`` holds each span once (the ended copy of a duplicate)."""
    ended = stage_span("s1", "a")
    root = run_span()
    run = read_recorded_run([root, stage_span("s1", "a", end_ns=None), ended])
    assert (root, ended) == run.spans


def test_the_root_is_found_by_its_name_without_the_action_attribute() -> None:
    """A parentless span named ``RUN …`` is the run span when none has the action."""
    root = SpanRecord(TRACE, "root", None, "RUN legacy", "INTERNAL", 1, 2)
    assert "legacy" == read_recorded_run([root, stage_span("s1", "a")]).pipeline


def test_a_stage_status_is_its_instances_last_attempts() -> None:
    """``stage_status`` aggregates the last attempt of each instance; a stage with no
    execution is skipped."""
    spans = [
        run_span(),
        stage_span("s1", "a", **{t.STAGE_ATTEMPT: 1, t.STAGE_STATUS: "failure"}),
        stage_span("s2", "a", **{t.STAGE_ATTEMPT: 2, t.STAGE_STATUS: "success"}),
        stage_span("s3", "b", **{t.STAGE_INSTANCE: 1, t.STAGE_STATUS: "failure"}),
        stage_span("s4", "b", **{t.STAGE_INSTANCE: 0, t.STAGE_STATUS: "success"}),
    ]
    run = read_recorded_run(spans)
    assert ("success", "failure", "skipped") == (
        run.stage_status("a"),
        run.stage_status("b"),
        run.stage_status("c"),
    )


def test_the_final_attempt_of_each_instance_is_the_highest() -> None:
    """``final`` keeps each instance's highest attempt, whatever order the spans came in."""
    spans = [
        run_span(),
        stage_span("s2", "a", start_ns=100, **{t.STAGE_ATTEMPT: 2}),
        stage_span("s1", "a", start_ns=900, **{t.STAGE_ATTEMPT: 1}),
        stage_span("s3", "a", start_ns=50, **{t.STAGE_INSTANCE: 1, t.STAGE_ATTEMPT: 3}),
    ]
    final = read_recorded_run(spans).final
    assert {"a": {0: "s2", 1: "s3"}} == {
        stage: {i: e.span_id for i, e in per.items()} for stage, per in final.items()
    }


def test_a_payload_event_without_its_text_is_not_recorded() -> None:
    """An input event without the payload's JSON gives a value with no text."""
    span = stage_span("s1", "a", SpanEventRecord(t.EVENT_STAGE_INPUT, 250, {}))
    (execution,) = read_recorded_run([run_span(), span]).executions["a"]
    assert RecordedValue(None) == execution.inputs


def test_an_event_or_approval_without_its_names_reads_them_empty() -> None:
    """A published event without a type and an approval without a stage read as ``""``."""
    root = run_span(
        SpanEventRecord(t.EVENT_PUBLISHED, 100, {t.PUBLISHED_EVENT_ID: 1}),
        SpanEventRecord(t.EVENT_APPROVAL_RESOLVED, 200, {}),
    )
    run = read_recorded_run([root])
    assert ("", "") == (run.external_events[0].event_type, run.approvals[0].stage)


def test_an_ended_span_without_a_status_reads_its_status_code() -> None:
    """A stage span with no status attribute or result is a failure when its span status is
    ERROR, else a success."""
    spans = [
        run_span(),
        stage_span("s1", "a", status_code="ERROR"),
        stage_span("s2", "b", status_code="OK"),
    ]
    run = read_recorded_run(spans)
    assert ("failure", "success") == (run.executions["a"][0].status, run.executions["b"][0].status)


def test_of_two_ended_copies_of_a_span_the_first_is_kept() -> None:
    """A span read twice ended (a store and a backend, say) counts as its first copy."""
    first = stage_span("s1", "a", end_ns=300)
    second = stage_span("s1", "a", end_ns=400)
    (execution,) = read_recorded_run([run_span(), first, second]).executions["a"]
    assert 300 == execution.end_ns
