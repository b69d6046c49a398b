"""Rebuilding a run from its spans alone: ``reconstruct_run(spans) -> RunRecord``.

Pure: the same spans (from any source) give an equal record. What comes from where:

- the run: the root span ``RUN {pipeline}`` (kind SERVER, ``cicd.pipeline.action.name=RUN``):
  pipeline, times, result, ``error.type``, ``taskdaemon.pipeline.*`` (stage order, DAG edges,
  definition hash, who started it, replay origin);
- stages: every span carrying ``cicd.pipeline.task.name`` is one attempt of one instance; a
  zero-length span with result ``skip`` marks a stage that never ran (no attempt);
- inputs/outputs: the ``stage.input`` / ``stage.output`` span events' ``taskdaemon.payload.json``;
- what the spans' source held and the reader left (``spans.bounded``): ``events_not_read``,
  ``links_not_read``, ``attributes_not_read``, summed over the spans; and what the SDK that
  recorded them dropped past its span limits (``spans``, "Dropped when written"):
  ``events_dropped_when_written`` and its two siblings, summed too.

Structured values (edges, triggers, result codes) are read by ``telemetry_codec``, in every
span schema version.

Run status: the root's ``cicd.pipeline.result`` (success → success; failure, error, timeout →
failure; cancellation → cancelled), the root's status code when no result was set; ``running``
while the root is open or absent (a backend receives the root only when it ends), unless the
caller knows the writer is gone (``interrupted=True``), then ``interrupted``. Open stage spans
get the same ``running`` / ``interrupted`` status. Stages named by the root but without any span
are ``pending`` in a running run (``waiting`` when the run span's latest approval event for them
is ``approval.requested``: the embedded store rewrites open spans as they gain events, a backend
sees the run span only once it ends) and ``skipped`` otherwise, except an execution a stop
cancelled, or the debugger skipped, while it was paused before its start: the run span's
``breakpoint.resumed`` event with action ``cancel`` or ``skip`` says so, and it counts as
``cancelled`` or ``skipped`` (``status_rules.halted_executions``); a stop's event also says why
(``taskdaemon.stage.cancel_reason``, ``.cancel_cause``), the stage's reason when no attempt of
it gives one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.landing import scheduled_at
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import (
    AttemptRecord,
    EdgeRecord,
    RunRecord,
    RunSummary,
    StageRecord,
    stage_cancel_cause,
    triggers_held,
)
from taskdaemon.pipeline.redaction import redact, redact_text
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.status_rules import (
    FAILED_STAGE_STATUSES,
    INTERRUPTED,
    NO_SPAN_REASON,
    OPEN_RUN_STATUSES,
    awaiting_approval,
    not_reached_reason,
    stage_status_of,
)
from taskdaemon.pipeline.telemetry_codec import (
    edges_of,
    run_status_of_result,
    stage_status_of_result,
    triggers_of,
)
from taskdaemon.pipeline.tracking._attribute_values import (
    float_attribute,
    int_attribute,
    strings_attribute,
    text_or_none,
)
from taskdaemon.pipeline.tracking._run_events import (
    Pause,
    approval_waits_of,
    halted_by_stops,
    latest_evaluations,
    paused_before_start_of,
    paused_executions,
    seconds_paused,
)
from taskdaemon.pipeline.tracking.spans import SpanRecord, epoch_seconds

__all__ = ["counted_status", "find_root", "reconstruct_run", "replay_of", "summarize_run"]


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else epoch_seconds(ns)


def replay_of(attributes: Mapping[str, Any]) -> str | None:
    """The run a run span's run replays (``taskdaemon.pipeline.replay_of``), None for a run
    that is no replay: what ``RunRecord.replay_of`` and the store's ``runs.replay_of`` hold."""
    return text_or_none(attributes.get(t.PIPELINE_REPLAY_OF))


def pipeline_of(root: SpanRecord | None, stage_groups: Iterable[list[SpanRecord]]) -> str:
    """The pipeline a run names. A run span with the ``RUN`` action, the one the writer keeps
    a ``runs`` row of, names its ``cicd.pipeline.name`` or none (""), as that row says: a
    foreign producer's or a crafted store's span named ``run`` would otherwise be pipeline
    ``run`` in ``runs show`` and nameless in ``runs list``, its filters and retention, which
    go by the row. A trace with no such span has no row to agree with: there the name comes
    from a stage span's attribute, else from a run span named ``RUN <pipeline>``."""
    attributes: Mapping[str, Any] = root.attributes if root is not None else {}
    named = text_or_none(attributes.get(t.CICD_PIPELINE_NAME))
    if named is not None or attributes.get(t.CICD_PIPELINE_ACTION_NAME) == t.RUN_ACTION:
        return named or ""
    for group in stage_groups:
        if pipeline := text_or_none(group[0].attributes.get(t.CICD_PIPELINE_NAME)):
            return pipeline
    return root.name.removeprefix(f"{t.RUN_ACTION} ") if root is not None else ""


def find_root(spans: Iterable[SpanRecord]) -> SpanRecord | None:
    """The run span of a trace: a parentless span with ``cicd.pipeline.action.name=RUN``, else
    a parentless span named ``RUN …``, else None."""
    candidates = [s for s in spans if s.parent_span_id is None]
    for span in candidates:
        if span.attributes.get(t.CICD_PIPELINE_ACTION_NAME) == t.RUN_ACTION:
            return span
    for span in candidates:
        if span.name.startswith(f"{t.RUN_ACTION} "):
            return span
    return None


def _redacted(text: str | None) -> str | None:
    """Secret-shaped values out of text read back: spans from other producers, or stored
    before taskdaemon redacted them, reach every view through here."""
    return None if text is None else redact_text(text)


def _run_error(status_message: str | None, attrs: Mapping[str, Any]) -> str | None:
    """The run's error: a failed run's status description, else a cancelled run's reason
    (``taskdaemon.stage.cancel_reason``: who cancelled it), as the engine's result says."""
    message = text_or_none(status_message) or text_or_none(attrs.get(t.STAGE_CANCEL_REASON))
    return _redacted(message)


def _payload(span: SpanRecord, event_name: str) -> str | None:
    for event in span.events:
        if event.name == event_name:
            value = event.attributes.get(t.PAYLOAD_JSON)
            return None if value is None else redact_text(str(value))
    return None


def _exception(span: SpanRecord) -> tuple[str | None, str | None]:
    for event in span.events:
        if event.name == "exception":
            return (
                text_or_none(event.attributes.get("exception.message")),
                text_or_none(event.attributes.get("exception.type")),
            )
    return None, None


def ended_attempt_status(attrs: Mapping[str, Any], status_code: str) -> str:
    """The status of an ended stage span: ``taskdaemon.stage.status``, else the mapped
    ``cicd.pipeline.task.run.result``, else failure/success by the span status code."""
    finer = attrs.get(t.STAGE_STATUS)
    if isinstance(finer, str) and finer:
        return finer
    result = stage_status_of_result(attrs.get(t.CICD_TASK_RUN_RESULT))
    if result is not None:
        return result
    return "failure" if status_code == "ERROR" else "success"


def ended_run_status(attrs: Mapping[str, Any], status_code: str) -> str:
    """The status of a run whose run span ended (see the module docstring)."""
    result = run_status_of_result(attrs.get(t.CICD_PIPELINE_RESULT))
    if result is not None:
        return result
    return "failure" if status_code == "ERROR" else "success"


def _attempt(
    span: SpanRecord, *, interrupted: bool, paused_time: Mapping[str, float]
) -> AttemptRecord:
    attrs = span.attributes
    task_run_id = str(attrs.get(t.CICD_TASK_RUN_ID) or span.span_id)
    if span.end_ns is None:
        status = INTERRUPTED if interrupted else StageStatus.RUNNING.value
    else:
        status = ended_attempt_status(attrs, span.status_code)
    exc_message, exc_type = _exception(span)
    error = text_or_none(attrs.get(t.STAGE_ERROR_MESSAGE)) or text_or_none(span.status_message)
    cancel_reason = text_or_none(attrs.get(t.STAGE_CANCEL_REASON))
    # A cancelled attempt, or one a replay fed from a cancelled one (``replayed``).
    cancelled = StageStatus.CANCELLED in (status, attrs.get(t.STAGE_REPLAYED_STATUS))
    if error is None and cancelled and cancel_reason:
        error = f"cancelled: {cancel_reason}"  # the same text the engine gives the attempt
    # Plain loops, not generators: most spans have a link or two and no published event.
    triggered_by: tuple[str, ...] = ()
    for link in span.links:
        if link.attributes.get(t.LINK_RELATION) == t.LINK_TRIGGERED_BY:
            triggered_by += (link.span_id,)
    published: tuple[tuple[float, str], ...] = ()
    for event in span.events:
        if event.name == t.EVENT_PUBLISHED:
            published += ((epoch_seconds(event.time_ns), published_type(event.attributes)),)
    if len(published) > 1:
        published = tuple(sorted(published))  # in time order, as Jaeger sorts events by name
    return AttemptRecord(
        task_run_id=task_run_id,
        instance=int_attribute(attrs.get(t.STAGE_INSTANCE), 0) or 0,
        attempt=int_attribute(attrs.get(t.STAGE_ATTEMPT), 1) or 1,
        status=status,
        start=epoch_seconds(span.start_ns),
        end=_seconds(span.end_ns),
        queue_time=float_attribute(attrs.get(t.STAGE_QUEUE_TIME)),
        trigger_wait=float_attribute(attrs.get(t.STAGE_TRIGGER_WAIT)),
        cpu_seconds=float_attribute(attrs.get(t.STAGE_CPU_TIME)),
        peak_memory_bytes=int_attribute(attrs.get(t.STAGE_PEAK_MEMORY)),
        inputs=_payload(span, t.EVENT_STAGE_INPUT),
        outputs=_payload(span, t.EVENT_STAGE_OUTPUT),
        error=_redacted(error or exc_message),
        error_type=text_or_none(attrs.get(t.ERROR_TYPE)) or exc_type,
        span_id=span.span_id,
        cancel_reason=cancel_reason,
        cancel_cause=text_or_none(attrs.get(t.STAGE_CANCEL_CAUSE)),
        paused_time=paused_time.get(task_run_id),
        replayed_attempts=int_attribute(attrs.get(t.STAGE_REPLAYED_ATTEMPTS)),
        replayed_status=text_or_none(attrs.get(t.STAGE_REPLAYED_STATUS)),
        triggered_by=triggered_by,
        published=published,
    )


def published_type(attrs: Mapping[str, Any] | None) -> str:
    """The event type named by a ``pipeline.event.published`` event's attributes ("" for
    none): the span store's writer reads the SDK's events with it, a rebuild the stored ones."""
    value = attrs.get(t.PUBLISHED_EVENT_TYPE) if attrs else None
    return value if isinstance(value, str) else ""


def _is_skip_span(span: SpanRecord) -> bool:
    return is_skip(span.attributes, span.start_ns, span.end_ns)


def is_skip(attrs: Mapping[str, Any], start_ns: int, end_ns: int | None) -> bool:
    """True for the zero-length ``skip`` span of a stage that never ran."""
    return end_ns == start_ns and attrs.get(t.CICD_TASK_RUN_RESULT) == t.RESULT_SKIP


def _stage_status(
    attempts: tuple[AttemptRecord, ...],
    to_retry: set[str],
    pending_retry: str,
    halted: Iterable[tuple[int, str]] = (),
) -> str:
    """The stage's status from its attempts. An instance whose last attempt failed with
    ``will_retry`` (its span id in ``to_retry``) and had no next one counts as
    ``pending_retry`` (see ``_retry_status``). ``halted``: ``(instance, status)`` of the
    instances whose latest execution ended while paused before its start (it has no span)."""
    if not to_retry and not halted:
        return stage_status_of((a.instance, a.status) for a in attempts)
    last = {a.instance: a for a in attempts}
    pairs = [
        (a.instance, pending_retry if a.span_id in to_retry and last[a.instance] is a else a.status)
        for a in attempts
    ]
    pairs += halted
    return stage_status_of(pairs)


def _retry_status(run_status: str) -> str:
    """What a stage left waiting for a retry is: ``retrying`` while its run goes, stopped in
    its backoff (``cancelled``, as the engine ends it) once the run ended, ``interrupted`` with
    an interrupted run. Its failed attempt stays a failure."""
    if run_status == INTERRUPTED:
        return INTERRUPTED
    if run_status in OPEN_RUN_STATUSES:
        return StageStatus.RETRYING.value
    return StageStatus.CANCELLED.value


def _edges(
    root_attrs: Mapping[str, Any], stages: tuple[StageRecord, ...]
) -> tuple[EdgeRecord, ...]:
    edges = edges_of(root_attrs)
    if edges is not None:
        return edges
    # Without the run span's edge list, fall back to what each stage span says of its upstream.
    return tuple(EdgeRecord(up, stage.name, "") for stage in stages for up in stage.upstream)


def reconstruct_run(spans: Iterable[SpanRecord], *, interrupted: bool = False) -> RunRecord:
    """The ``RunRecord`` of one trace's spans (order does not matter; duplicates by span id are
    collapsed, an ended copy beating an open one).

    ``interrupted``: the caller knows no process is writing this run any more (see the module
    docstring). Raises ``ValueError`` for an empty span list.
    """
    by_id: dict[str, SpanRecord] = {}
    for span in spans:
        known = by_id.get(span.span_id)
        if known is None or (known.end_ns is None and span.end_ns is not None):
            by_id[span.span_id] = span
    if not by_id:
        raise ValueError("no spans to reconstruct a run from")
    all_spans = sorted(by_id.values(), key=lambda s: (s.start_ns, s.span_id))
    root = find_root(all_spans)
    root_attrs: Mapping[str, Any] = root.attributes if root is not None else {}

    stage_spans: dict[str, list[SpanRecord]] = {}
    for span in all_spans:
        if span is root:
            continue
        name = span.attributes.get(t.CICD_TASK_NAME)
        if isinstance(name, str) and name:
            stage_spans.setdefault(name, []).append(span)

    pipeline = pipeline_of(root, stage_spans.values())

    if root is not None and root.end_ns is not None:
        status = ended_run_status(root_attrs, root.status_code)
    else:
        status = INTERRUPTED if interrupted else RunStatus.RUNNING.value
    run_is_open = status in OPEN_RUN_STATUSES

    live = root is not None and status == RunStatus.RUNNING
    approvals = approval_waits_of(root)
    awaiting = awaiting_approval(approvals) if live else frozenset()
    paused = paused_executions(root) if live and root is not None else {}
    paused_stages = {pause.stage for pause in paused.values()}
    paused_in: dict[str, list[tuple[str, Pause]]] = {}
    for trid, pause in paused.items():
        paused_in.setdefault(pause.stage, []).append((trid, pause))
    if paused:
        status = RunStatus.PAUSED.value  # the run is paused while anything in it is
    paused_time = seconds_paused(root)
    halted, halted_causes = halted_by_stops(root, all_spans)
    evaluated: dict[str, dict[int, bool]] | None = None  # read once a stage not started needs it
    declared = strings_attribute(root_attrs.get(t.PIPELINE_STAGES))
    declared_loops = dict(
        zip(declared, strings_attribute(root_attrs.get(t.PIPELINE_STAGE_LOOPS)), strict=False)
    )
    # A set to look names up in: ``not in`` the list was a pass over the declared stages for
    # every stage with spans, quadratic in a run of thousands of stages.
    declared_names = set(declared)
    names = [*declared, *(name for name in stage_spans if name not in declared_names)]
    stages = []
    for name in names:
        group = stage_spans.get(name, [])
        real = [s for s in group if not _is_skip_span(s)]
        skips = [s for s in group if _is_skip_span(s)]
        first = real[0] if real else (skips[0] if skips else None)
        attrs: Mapping[str, Any] = first.attributes if first is not None else {}
        attempts = tuple(
            sorted(
                (_attempt(s, interrupted=interrupted, paused_time=paused_time) for s in real),
                key=lambda a: (a.start, a.instance, a.attempt, a.span_id),
            )
        )
        if paused:
            attempts = tuple(
                replace(
                    a,
                    status=StageStatus.PAUSED.value,
                    error=paused[a.task_run_id].error,
                    paused_since=paused[a.task_run_id].since,
                )
                if a.end is None and a.task_run_id in paused
                else a
                for a in attempts
            )
        skip_reason = None
        cancel_reason, cancel_cause = stage_cancel_cause(attempts)
        if not (cancel_reason or cancel_cause):  # cancelled by a stop while paused, if it was
            cancel_reason, cancel_cause = halted_causes.get(name, (None, None))
        halted_here = halted.get(name, {}).values()
        if name in paused_stages:
            stage_status = StageStatus.PAUSED.value
        elif attempts or halted_here:
            to_retry = {s.span_id for s in real if s.attributes.get(t.STAGE_WILL_RETRY) is True}
            stage_status = _stage_status(attempts, to_retry, _retry_status(status), halted_here)
            if skips and not attempts and stage_status == StageStatus.SKIPPED:
                # skipped at a breakpoint: the skip span says by whom
                skip_reason = text_or_none(skips[0].attributes.get(t.STAGE_SKIP_REASON))
                if skip_reason == not_reached_reason(status):  # it was reached
                    skip_reason = None
        elif skips:
            stage_status = StageStatus.SKIPPED.value
            skip_attrs = skips[0].attributes
            skip_reason = text_or_none(skip_attrs.get(t.STAGE_SKIP_REASON))
            cancel_reason = text_or_none(skip_attrs.get(t.STAGE_CANCEL_REASON))
            cancel_cause = text_or_none(skip_attrs.get(t.STAGE_CANCEL_CAUSE))
        elif run_is_open and status != INTERRUPTED:
            waiting = name in awaiting
            stage_status = (StageStatus.WAITING if waiting else StageStatus.PENDING).value
        else:
            stage_status = StageStatus.SKIPPED.value
            skip_reason = "run interrupted" if status == INTERRUPTED else NO_SPAN_REASON
        held: tuple[int, ...] = ()
        if not attempts:
            if evaluated is None:
                evaluated = latest_evaluations(root)
            held = triggers_held(evaluated.get(name, {}))
        stages.append(
            StageRecord(
                name=name,
                loop=str(attrs.get(t.STAGE_LOOP, "") or declared_loops.get(name, "")),
                status=stage_status,
                attempts=attempts,
                triggers=strings_attribute(attrs.get(t.STAGE_TRIGGERS)),
                trigger_specs=triggers_of(attrs),
                triggers_held=held,
                upstream=strings_attribute(attrs.get(t.STAGE_UPSTREAM)),
                skip_reason=skip_reason,
                trigger_mode=text_or_none(attrs.get(t.STAGE_TRIGGER_MODE)),
                cancel_reason=cancel_reason,
                cancel_cause=cancel_cause,
                paused_before_start=paused_before_start_of(paused_in[name], attempts)
                if name in paused_in
                else (),
            )
        )
    stage_tuple = tuple(stages)

    start_ns = root.start_ns if root is not None else all_spans[0].start_ns
    end_ns = None if run_is_open or root is None else root.end_ns
    return RunRecord(
        run_id=root.trace_id if root is not None else all_spans[0].trace_id,
        pipeline=pipeline,
        status=status,
        start=epoch_seconds(start_ns),  # the engine's started_at, exactly
        end=None if end_ns is None else epoch_seconds(end_ns),
        stages=stage_tuple,
        edges=_edges(root_attrs, stage_tuple),
        definition_hash=text_or_none(root_attrs.get(t.PIPELINE_DEFINITION_HASH)),
        started_by=text_or_none(root_attrs.get(t.PIPELINE_STARTED_BY)),
        error=None if root is None else _run_error(root.status_message, root_attrs),
        error_type=text_or_none(root_attrs.get(t.ERROR_TYPE)),
        replay_of=replay_of(root_attrs),
        # In key order: Jaeger sorts attribute lists by key, the store keeps the writer's order;
        # one order for every source makes ``runs show --json`` the same bytes from each.
        attributes=redact(dict(sorted(root_attrs.items()))),
        events_not_read=sum(span.dropped_events for span in all_spans),
        links_not_read=sum(span.dropped_links for span in all_spans),
        attributes_not_read=sum(span.dropped_attributes for span in all_spans),
        approvals=approvals,
        events_dropped_when_written=sum(span.events_dropped_when_written for span in all_spans),
        links_dropped_when_written=sum(span.links_dropped_when_written for span in all_spans),
        attributes_dropped_when_written=sum(
            span.attributes_dropped_when_written for span in all_spans
        ),
        last_seen=_latest_record(all_spans) if status == INTERRUPTED else None,
    )


def _latest_record(spans: Iterable[SpanRecord]) -> float:
    """The time of the latest thing the spans record (a start, an end, an event)."""
    return epoch_seconds(
        max(
            max(span.start_ns, span.end_ns or 0, *(event.time_ns for event in span.events))
            for span in spans
        )
    )


def counted_status(status: str, replayed_status: object) -> str:
    """What an ended attempt counts as among its run's failed stages: its status, or for one a
    replay fed (``replayed``) the status the record gave it, which the replay's run took as the
    stage's outcome (docs/architecture.md, "Command line": FAILED)."""
    if status == t.STATUS_REPLAYED and isinstance(replayed_status, str) and replayed_status:
        return replayed_status
    return status


def _failed(stage: StageRecord) -> bool:
    if stage.status == t.STATUS_REPLAYED:
        stage_status = stage_status_of(
            (a.instance, counted_status(a.status, a.replayed_status)) for a in stage.attempts
        )
    else:
        stage_status = stage.status
    return stage_status in FAILED_STAGE_STATUSES


def summarize_run(record: RunRecord) -> RunSummary:
    """The history row of a run: its stage count and how many stages failed (or timed out), a
    stage a replay fed by the status it was fed (``counted_status``)."""
    return RunSummary(
        run_id=record.run_id,
        pipeline=record.pipeline,
        status=record.status,
        start=record.start,
        end=record.end,
        stage_count=len(record.stages),
        failed_stages=sum(1 for s in record.stages if _failed(s)),
        replay_of=record.replay_of,
        scheduled_at=scheduled_at(record.attributes),
        last_seen=record.last_seen,
    )
