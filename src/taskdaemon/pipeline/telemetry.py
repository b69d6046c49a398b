"""The telemetry schema: span names, attribute keys, span event names, metric names, units and
histogram buckets (docs/architecture.md, "Telemetry schema"); every producer and consumer imports
them from here.

Pure constants: importing this module pulls in no OpenTelemetry code.
"""

from __future__ import annotations

from typing import Final

# --- instrumentation scope ------------------------------------------------------------------
SCOPE_NAME: Final = "taskdaemon.pipeline"
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.43.0"

# --- span names -----------------------------------------------------------------------------
RUN_ACTION: Final = "RUN"


def run_span_name(pipeline: str) -> str:
    """``RUN {pipeline}``: the name of a run's root span."""
    return f"{RUN_ACTION} {pipeline}"


def stage_span_name(stage: str) -> str:
    """The name of a stage attempt's span: the stage name (semconv: ``{task name}``)."""
    return stage


# --- CI/CD semantic conventions (release candidate since semconv 1.43) ----------------------
CICD_PIPELINE_NAME: Final = "cicd.pipeline.name"
CICD_PIPELINE_RUN_ID: Final = "cicd.pipeline.run.id"
CICD_PIPELINE_ACTION_NAME: Final = "cicd.pipeline.action.name"
CICD_PIPELINE_RESULT: Final = "cicd.pipeline.result"
CICD_PIPELINE_RUN_STATE: Final = "cicd.pipeline.run.state"
CICD_TASK_NAME: Final = "cicd.pipeline.task.name"
CICD_TASK_RUN_ID: Final = "cicd.pipeline.task.run.id"
CICD_TASK_RUN_RESULT: Final = "cicd.pipeline.task.run.result"
CICD_TASK_TYPE: Final = "cicd.pipeline.task.type"
ERROR_TYPE: Final = "error.type"

# cicd.pipeline.result / cicd.pipeline.task.run.result values
RESULT_SUCCESS: Final = "success"
RESULT_FAILURE: Final = "failure"
RESULT_ERROR: Final = "error"
RESULT_TIMEOUT: Final = "timeout"
RESULT_CANCELLATION: Final = "cancellation"
RESULT_SKIP: Final = "skip"

# --- taskdaemon run attributes --------------------------------------------------------------
PIPELINE_DEFINITION_HASH: Final = "taskdaemon.pipeline.definition_hash"
PIPELINE_STAGES: Final = "taskdaemon.pipeline.stages"  # string[] in definition order
# string[] aligned with PIPELINE_STAGES: each stage's loop type, so a stage that has no span yet
# (pending, waiting for an approval) is drawn with its loop from the run span alone.
PIPELINE_STAGE_LOOPS: Final = "taskdaemon.pipeline.stage_loops"
# string[], one compact JSON array per DAG edge (schema 3; telemetry_codec.encode_edge)
PIPELINE_EDGE_SPECS: Final = "taskdaemon.pipeline.edge_specs"
# Schema 1 and 2 only, read but no longer written: string[] "source>target>label".
PIPELINE_EDGES: Final = "taskdaemon.pipeline.edges"
PIPELINE_STARTED_BY: Final = "taskdaemon.pipeline.started_by"
PIPELINE_CONCURRENCY: Final = "taskdaemon.pipeline.concurrency"
PIPELINE_ERROR_STRATEGY: Final = "taskdaemon.pipeline.error_strategy"
PIPELINE_REPLAY_OF: Final = "taskdaemon.pipeline.replay_of"
# epoch nanoseconds: the time a schedule (``serve --pipeline``) meant the run to start, on a
# scheduled run only; the run span's start minus it is the run's landing delay (``landing``)
PIPELINE_SCHEDULED_AT: Final = "taskdaemon.pipeline.scheduled_at_ns"
PIPELINE_REQUEST: Final = "taskdaemon.pipeline.request"  # JSON, capped and redacted
# string[]: the threads stage code started (not daemon threads) still running as the run's end
# was recorded, each ``'name' (started by stage 'a', running m.f)``: the process's end waits
# for them a grace at most, then goes without them (``cli/process_end.py``)
PIPELINE_THREADS_LEFT: Final = "taskdaemon.pipeline.threads_left"
# The span schema version (docs/architecture.md, "Span schema versions"): 2 added what replay
# needs, 3 the structured edge and trigger specs. Spans without SCHEMA_VERSION are version 1.
SCHEMA_VERSION: Final = "taskdaemon.schema_version"
SPAN_SCHEMA_VERSION: Final = 3
PIPELINE_DEFINITION: Final = "taskdaemon.pipeline.definition"  # canonical JSON, capped
PIPELINE_DEFINITION_SIZE: Final = "taskdaemon.pipeline.definition_size"  # bytes of the full JSON
PIPELINE_DEFINITION_TRUNCATED: Final = "taskdaemon.pipeline.definition_truncated"
# the request's full (redacted) JSON: its size and sha256, and whether it was cut or redacted
PIPELINE_REQUEST_SIZE: Final = "taskdaemon.pipeline.request_size"
PIPELINE_REQUEST_SHA256: Final = "taskdaemon.pipeline.request_sha256"
PIPELINE_REQUEST_TRUNCATED: Final = "taskdaemon.pipeline.request_truncated"
PIPELINE_REQUEST_REDACTED: Final = "taskdaemon.pipeline.request_redacted"

# --- taskdaemon stage attributes ------------------------------------------------------------
STAGE_LOOP: Final = "taskdaemon.stage.loop"
STAGE_ATTEMPT: Final = "taskdaemon.stage.attempt"
STAGE_INSTANCE: Final = "taskdaemon.stage.instance"
STAGE_UPSTREAM: Final = "taskdaemon.stage.upstream"  # string[] of upstream stage names
STAGE_TRIGGERS: Final = "taskdaemon.stage.triggers"  # string[] trigger descriptions, for people
# string[] aligned with STAGE_TRIGGERS: one compact JSON array per trigger (schema 3;
# telemetry_codec.encode_trigger), what readers rebuild triggers from
STAGE_TRIGGER_SPECS: Final = "taskdaemon.stage.trigger_specs"
STAGE_TRIGGER_MODE: Final = "taskdaemon.stage.trigger_mode"
STAGE_STATUS: Final = "taskdaemon.stage.status"  # our finer StageStatus value
STAGE_QUEUE_TIME: Final = "taskdaemon.stage.queue_time_s"
STAGE_TRIGGER_WAIT: Final = "taskdaemon.stage.trigger_wait_s"
STAGE_QUEUED_AT: Final = "taskdaemon.stage.queued_at_ns"
STAGE_CONSIDERED_AT: Final = "taskdaemon.stage.considered_at_ns"
STAGE_CPU_TIME: Final = "taskdaemon.stage.cpu_time_s"
STAGE_PEAK_MEMORY: Final = "taskdaemon.stage.peak_memory_bytes"
STAGE_SKIP_REASON: Final = "taskdaemon.stage.skip_reason"
STAGE_EVENT_TYPE: Final = "taskdaemon.stage.event_type"  # event that started an instance
STAGE_ERROR_MESSAGE: Final = "taskdaemon.stage.error"
# On a cancelled attempt's span and on a skip span, when a stop of the run caused them: why
# ("stage 'build' failed (error_strategy: fail)", "run cancelled"), and the stage whose failure
# stopped the run (absent for a cancel from outside).
STAGE_CANCEL_REASON: Final = "taskdaemon.stage.cancel_reason"
STAGE_CANCEL_CAUSE: Final = "taskdaemon.stage.cancel_cause"

# link attributes: why a span links to another
LINK_RELATION: Final = "taskdaemon.link.relation"
LINK_TRIGGERED_BY: Final = "triggered_by"
LINK_PREVIOUS_ATTEMPT: Final = "previous_attempt"
LINK_REPLAY_OF: Final = "replay_of"
LINK_PARENT: Final = "parent"  # run span -> the external parent context it was started under
# true on a replay link: the original root span id is not known, the link's span id is derived
# from the trace id (its low 64 bits); backends resolve the link by trace id
LINK_SPAN_ID_DERIVED: Final = "taskdaemon.link.span_id_derived"

# more stage attributes
STAGE_FIRED_TRIGGERS: Final = "taskdaemon.stage.fired_triggers"  # string[]: the ones satisfied
STAGE_WILL_RETRY: Final = "taskdaemon.stage.will_retry"
STAGE_PID: Final = "taskdaemon.stage.pid"  # a command stage's subprocess
# seconds the execution spent paused at a debugger breakpoint (kept out of queue_time_s)
STAGE_PAUSED_TIME: Final = "taskdaemon.stage.paused_s"

# attributes of span events
TRIGGER_INDEX: Final = "taskdaemon.trigger.index"
TRIGGER_TYPE: Final = "taskdaemon.trigger.type"
TRIGGER_DESCRIPTION: Final = "taskdaemon.trigger.description"
TRIGGER_SATISFIED: Final = "taskdaemon.trigger.satisfied"
TRIGGER_STAGE_READY: Final = "taskdaemon.trigger.stage_ready"
TRIGGER_DETAIL: Final = "taskdaemon.trigger.detail"
APPROVAL_TIMEOUT: Final = "taskdaemon.approval.timeout_s"
APPROVAL_APPROVED: Final = "taskdaemon.approval.approved"
APPROVAL_BY: Final = "taskdaemon.approval.by"
APPROVAL_TIMED_OUT: Final = "taskdaemon.approval.timed_out"
PUBLISHED_EVENT_TYPE: Final = "taskdaemon.event.type"
PUBLISHED_EVENT_ID: Final = "taskdaemon.event.id"
PUBLISHED_EVENT_SOURCE: Final = "taskdaemon.event.source"  # task_run_id of the publisher
RETRY_DELAY: Final = "taskdaemon.retry.delay_s"
BREAKPOINT_KIND: Final = "taskdaemon.breakpoint.kind"  # start | failure
BREAKPOINT_REASON: Final = "taskdaemon.breakpoint.reason"  # "#1 before build", "step", ...
BREAKPOINT_ACTION: Final = "taskdaemon.breakpoint.action"  # continue|step|skip|retry|cancel
BREAKPOINT_BY: Final = "taskdaemon.breakpoint.by"  # who resumed
BREAKPOINT_PAUSED: Final = "taskdaemon.breakpoint.paused_s"
OVERRIDE_INPUT: Final = "taskdaemon.override.input"
OVERRIDE_OLD_SHA256: Final = "taskdaemon.override.old_sha256"
OVERRIDE_NEW_SHA256: Final = "taskdaemon.override.new_sha256"
OVERRIDE_BY: Final = "taskdaemon.override.by"

# --- span events ----------------------------------------------------------------------------
EVENT_TRIGGER_EVALUATED: Final = "trigger.evaluated"
EVENT_STAGE_INPUT: Final = "stage.input"
EVENT_STAGE_OUTPUT: Final = "stage.output"
EVENT_APPROVAL_REQUESTED: Final = "approval.requested"
EVENT_APPROVAL_RESOLVED: Final = "approval.resolved"
EVENT_BREAKPOINT_HIT: Final = "breakpoint.hit"
EVENT_BREAKPOINT_RESUMED: Final = "breakpoint.resumed"
EVENT_INPUT_OVERRIDE: Final = "input.override"
EVENT_PUBLISHED: Final = "pipeline.event.published"
EVENT_STAGE_RETRYING: Final = "stage.retrying"
PAYLOAD_JSON: Final = "taskdaemon.payload.json"
PAYLOAD_SIZE: Final = "taskdaemon.payload.size"
PAYLOAD_SHA256: Final = "taskdaemon.payload.sha256"
PAYLOAD_TRUNCATED: Final = "taskdaemon.payload.truncated"
PAYLOAD_REDACTED: Final = "taskdaemon.payload.redacted"  # schema 2: some value was redacted
# On the ``stage.input`` of an event's instance: the sha256 of its event's payload, as
# ``PAYLOAD_SHA256`` hashes one (full, redacted JSON), which replay compares before it reuses
# the instance (``replay/reuse.py``).
PAYLOAD_EVENT_SHA256: Final = "taskdaemon.payload.event_sha256"

# --- what an SDK dropped past its span limits, as formats without OTLP's fields (Jaeger's
# model, Zipkin) carry it: span attributes, by the OTel specification's mapping to non-OTLP
# formats. Read, never written (tracking/otlp_json.py).
DROPPED_ATTRIBUTES_COUNT: Final = "otel.dropped_attributes_count"
DROPPED_EVENTS_COUNT: Final = "otel.dropped_events_count"
DROPPED_LINKS_COUNT: Final = "otel.dropped_links_count"

# --- replay (schema 2) ----------------------------------------------------------------------
# A stage fed from a recorded run during a replay: its span's taskdaemon.stage.status is
# "replayed", REPLAYED_STATUS keeps the original's status, REPLAYED_ATTEMPTS the attempts the
# original made of it (the one fed execution stands for them all), and it links the original span.
STATUS_REPLAYED: Final = "replayed"
STAGE_REPLAYED_STATUS: Final = "taskdaemon.stage.replayed_status"
STAGE_REPLAYED_ATTEMPTS: Final = "taskdaemon.stage.replayed_attempts"
LINK_REPLAYED_FROM: Final = "replayed_from"  # a replayed stage span -> the original span

# --- metrics: OTel instrument name -> Prometheus name in comments ---------------------------
METRIC_EXECUTIONS: Final = "pipeline.executions"  # pipeline_executions_total
METRIC_EXECUTION_DURATION: Final = "pipeline.execution.duration"  # ..._duration_seconds
METRIC_ACTIVE_EXECUTIONS: Final = "pipeline.active.executions"  # pipeline_active_executions
METRIC_STAGE_EXECUTIONS: Final = "pipeline.stage.executions"  # pipeline_stage_executions_total
METRIC_STAGE_DURATION: Final = "pipeline.stage.duration"  # pipeline_stage_duration_seconds
METRIC_STAGE_QUEUE_TIME: Final = "pipeline.stage.queue.time"  # ..._queue_time_seconds
METRIC_TRIGGER_EVALUATIONS: Final = "pipeline.trigger.evaluations"  # ..._evaluations_total
METRIC_TRIGGER_WAIT_TIME: Final = "pipeline.trigger.wait.time"  # ..._wait_time_seconds
METRIC_MEMORY_USAGE: Final = "pipeline.memory.usage"  # pipeline_memory_usage_bytes
METRIC_CPU_USAGE: Final = "pipeline.cpu.usage"  # pipeline_cpu_usage_percent
# Label values the metrics' label guard folded into ``#other#``, per label (attribute
# ``label``: a label key, or a stage instrument's label keys joined by commas when its series
# budget folded a whole new series). Counted once per new label combination, not per record.
METRIC_LABELS_FOLDED: Final = "pipeline.labels.folded"  # pipeline_labels_folded_total
# Spans the embedded span store could not keep: a write failed (full disk) or the store could
# not be opened. Monotonic, per process.
METRIC_SPANS_DROPPED: Final = "taskdaemon.spans.dropped"  # taskdaemon_spans_dropped_total
# Spans whose export failed, per exporter (attribute ``exporter``: ``otlp``, ``console``): the
# exporter answered an error or raised. Monotonic, per process.
METRIC_SPANS_EXPORT_FAILED: Final = "taskdaemon.spans.export_failed"
# Run log records the embedded store's log writer could not keep: its queue was full, or a
# write failed (full disk). Monotonic, per process.
METRIC_LOGS_DROPPED: Final = "taskdaemon.logs.dropped"  # taskdaemon_logs_dropped_total
# Log records whose OTLP (or console) export failed, per exporter (attribute ``exporter``): the
# collector was down or answered an error. Monotonic, per process.
METRIC_LOGS_EXPORT_FAILED: Final = "taskdaemon.logs.export_failed"
# Scheduled runs (``taskdaemon serve --pipeline``) that could not start, per pipeline: the
# engine refused them before any span (their workspace could not be made: a read-only or full
# home), so no pipeline.* series counts them. Monotonic, per process.
METRIC_RUNS_NOT_STARTED: Final = "taskdaemon.runs.not_started"  # ..._runs_not_started_total

# semconv CI/CD run metrics
METRIC_CICD_RUN_DURATION: Final = "cicd.pipeline.run.duration"
METRIC_CICD_RUN_ACTIVE: Final = "cicd.pipeline.run.active"
METRIC_CICD_RUN_ERRORS: Final = "cicd.pipeline.run.errors"

UNIT_SECONDS: Final = "s"
UNIT_BYTES: Final = "By"
UNIT_PERCENT: Final = "%"
UNIT_ONE: Final = "1"
# annotations: shown by OTel backends, stripped by the Prometheus exporter
UNIT_EXECUTIONS: Final = "{execution}"
UNIT_EVALUATIONS: Final = "{evaluation}"
UNIT_RUNS: Final = "{run}"
UNIT_ERRORS: Final = "{error}"
UNIT_SPANS: Final = "{span}"
UNIT_LOG_RECORDS: Final = "{record}"
UNIT_FOLDS: Final = "{fold}"

# metric label keys
LABEL_PIPELINE: Final = "pipeline"
LABEL_STAGE: Final = "stage"
LABEL_STATUS: Final = "status"
LABEL_TRIGGER_TYPE: Final = "trigger_type"
LABEL_LABEL: Final = "label"  # pipeline.labels.folded: the label whose value was folded
OTHER_LABEL_VALUE: Final = "#other#"

# Seconds, from a millisecond to four hours: no-op stages through long agent loops.
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
)  # fmt: skip
