"""The monitor's books: what it keeps per pipeline definition and per open run.

``PipelineInfo`` is computed once per definition (the run span's start attributes, each stage's
static span attributes); ``Run`` holds one open run's spans and what its later records need to
find (open and ended executions, attempts, the last status and success per stage, skips).
These are bookkeeping only: they make no span and record no metric. The worker
(``_worker.Recorder``) fills them, the manual feed (``_feed``) reads them to synthesise records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import StageSkipped, TaskRunRef
from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.model import OnEvent, Pipeline
from taskdaemon.pipeline.redaction import mappings_unchanged
from taskdaemon.pipeline.span_redaction import RedactingSpan, redact_attributes
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.telemetry_codec import encode_edges, encode_triggers

__all__ = [
    "Execution",
    "PipelineInfo",
    "Run",
    "StageInfo",
    "link_to",
    "open_span_of",
    "pipeline_info",
    "stage_info",
    "stage_static",
]


class StageInfo(NamedTuple):
    """What a stage's spans say about its definition (computed once per pipeline).

    A named tuple, not a frozen dataclass: one is made for every stage of a definition when
    its first run starts, and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, a call per field that costs several times the whole tuple. As
    immutable; only the monitor reads one, by field name, and none is compared or printed."""

    loop: str
    is_command: bool
    event_type: str | None
    static: Mapping[str, Any]  # attributes that do not depend on the run
    #: ``static`` through ``span_redaction.redact_attributes``: a stage span records these
    #: as they are, so they are redacted once per definition, not once per span.
    redacted_static: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    """A definition's run span start attributes and its stages' ``StageInfo``."""

    run_attributes: Mapping[str, Any]
    stages: Mapping[str, StageInfo]
    #: ``run_attributes`` through ``span_redaction.redact_attributes``, recorded as they are
    #: on every run span of the definition: redacted once per definition, not once per run
    #: (the definition's text and its three lists of a name per stage or edge).
    redacted_run_attributes: Mapping[str, Any] = field(repr=False, compare=False)
    #: ``masked_values.MASKED.generation`` when the redacted forms were made: a value known as
    #: a secret since (a stage's output under ``token``, that the definition's text also holds)
    #: was not masked in them, and a span started from now on needs them made again.
    masked: int = field(default=0, repr=False, compare=False)


@dataclass(slots=True)
class Execution:
    """One open stage execution (attempt x instance) and its span."""

    span: RedactingSpan
    context: SpanContext  # ``span``'s, kept: several records of the execution look it up
    stage: str
    instance: int
    attempt: int
    started_at: float
    queue_time: float
    fed: bool = False  # a replay's fed execution: no work, recorded as ``replayed`` only
    published_bytes: int = 0  # payload JSON of its published events (``SPAN_PAYLOAD_BYTES``)


@dataclass(slots=True)
class Run:
    """One open run: its span, its executions, and what later records of it look up."""

    run_id: str
    pipeline: Pipeline
    info: PipelineInfo
    span: Span
    context: Context
    span_context: SpanContext  # ``span``'s, kept: every record not of an execution looks it up
    started_at: float
    open: dict[str, Execution] = field(default_factory=dict)
    ended: dict[str, SpanContext] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)
    skipped: dict[str, StageSkipped] = field(default_factory=dict)
    attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    last_status: dict[tuple[str, int], StageStatus] = field(default_factory=dict)
    #: The latest successful execution of each stage, as ``TaskRunRef``'s fields (stage,
    #: instance, attempt): one a stage is kept, and only the manual feed makes the reference
    #: (``TaskRunRef(*fields)``), when a stage it starts links to its upstream stages.
    last_success: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    stage_static: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: ``MASKED.generation`` when the run span's start attributes were redacted: a value
    #: known as a secret since then is masked in them again when the run ends.
    span_masked: int = 0
    #: Payload JSON of the run span's published events (``_spans.SPAN_PAYLOAD_BYTES``).
    published_bytes: int = 0


def pipeline_info(pipeline: Pipeline, extra: Mapping[str, Any] | None = None) -> PipelineInfo:
    """The definition's span attributes: ``extra`` (recorded definition attributes) first.

    One pass over the stages, the model's own properties inlined (``Stage.event_types``, which
    builds a tuple for its first item, and the loop's command look-up) and each ``StageInfo``
    built with positional arguments: this runs once per definition, but a definition of
    thousands of stages pays it per stage. The trigger and edge specs come from
    ``telemetry_codec.encode_triggers`` / ``encode_edges``, made for all of them at once, and
    their descriptions are the pipeline's (``Pipeline.trigger_descriptions``), which the
    trigger plan made already."""
    masked = MASKED.generation  # read first: a value learnt meanwhile makes it stale
    stages_of = pipeline.stages
    name = pipeline.name
    specs = encode_triggers([trigger for stage in stages_of for trigger in stage.triggers])
    run_attributes: dict[str, Any] = {
        **(extra or {}),
        t.CICD_PIPELINE_NAME: name,
        t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
        t.PIPELINE_DEFINITION_HASH: pipeline.definition_hash,
        t.PIPELINE_STAGES: [stage.name for stage in stages_of],
        t.PIPELINE_STAGE_LOOPS: [stage.loop for stage in stages_of],
        t.PIPELINE_EDGE_SPECS: encode_edges(pipeline.edges, specs),
        t.PIPELINE_CONCURRENCY: pipeline.concurrency,
        t.PIPELINE_ERROR_STRATEGY: str(pipeline.error_strategy),
    }
    upstream = pipeline.upstream
    spec_of = specs.__getitem__
    # Each stage's two lists of a value per trigger made by ``map`` (C), not comprehensions:
    # two frames a stage fewer, the same lists.
    statics = [
        {
            t.CICD_PIPELINE_NAME: name,
            t.CICD_TASK_NAME: stage.name,
            t.STAGE_LOOP: stage.loop,
            t.STAGE_UPSTREAM: list(upstream.get(stage.name, ())),
            t.STAGE_TRIGGERS: list(described),
            t.STAGE_TRIGGER_SPECS: list(map(spec_of, map(id, stage.triggers))),
            t.STAGE_TRIGGER_MODE: str(stage.trigger_mode),
        }
        for stage, described in zip(stages_of, pipeline.trigger_descriptions, strict=True)
    ]
    loops = pipeline.loops
    stages: dict[str, StageInfo] = {}
    for stage, static, redacted in zip(stages_of, statics, _redacted_each(statics), strict=True):
        event_type = None
        for trigger in stage.triggers:
            if isinstance(trigger, OnEvent):
                event_type = trigger.type
                break
        loop = stage.loop
        is_command = stage.command is not None or loop == "command"
        if not is_command:
            loop_def = loops.get(loop)
            is_command = loop_def is not None and loop_def.command is not None
        stages[stage.name] = StageInfo(loop, is_command, event_type, static, redacted)
    return PipelineInfo(run_attributes, stages, _redacted_run(run_attributes), masked)


def _redacted_run(run_attributes: dict[str, Any]) -> Mapping[str, Any]:
    """``redact_attributes(run_attributes)``, with the three lists of a name per stage or edge
    shown to be left as they are by one pre-check of their texts (``_redacted_each``'s), and
    the rest (the definition's text among them) redacted as before. Order kept."""
    lists = {key: value for key, value in run_attributes.items() if type(value) is list}
    if not lists or not mappings_unchanged((lists,)):
        walked: Mapping[str, Any] = redact_attributes(run_attributes)
        return walked
    rest = {key: value for key, value in run_attributes.items() if key not in lists}
    redacted = redact_attributes(rest)
    if redacted is rest:
        return run_attributes
    return {key: redacted[key] if key in rest else value for key, value in run_attributes.items()}


def _redacted_each(statics: list[dict[str, Any]]) -> list[Mapping[str, Any]]:
    """``redact_attributes`` of each stage's static attributes, which nearly always leaves
    them as they are: shown for all of them at once by one pre-check of their texts
    (``redaction.mappings_unchanged``, exact), else decided one by one as before."""
    if mappings_unchanged(statics):
        return list(statics)
    return [redact_attributes(static) for static in statics]


def _unknown_stage(pipeline: str, stage: str, loop: str = "") -> StageInfo:
    static = {
        t.CICD_PIPELINE_NAME: pipeline,
        t.CICD_TASK_NAME: stage,
        t.STAGE_LOOP: loop,
        t.STAGE_UPSTREAM: [],
        t.STAGE_TRIGGERS: [],
        t.STAGE_TRIGGER_SPECS: [],
        t.STAGE_TRIGGER_MODE: "any",
    }
    return StageInfo(
        loop=loop,
        is_command=loop == "command",
        event_type=None,
        static=static,
        redacted_static=redact_attributes(static),
    )


def stage_info(run: Run, stage: str, loop: str) -> StageInfo:
    """The stage's info; a stage the definition does not name (the manual API allows it) gets
    empty attributes."""
    return run.info.stages.get(stage) or _unknown_stage(run.pipeline.name, stage, loop)


def stage_static(run: Run, stage: str, loop: str) -> tuple[StageInfo, Mapping[str, Any]]:
    """The stage's info and its run-wide span attributes (built once per run and stage); a
    stage the definition does not name (the manual API allows it) gets empty ones."""
    info = stage_info(run, stage, loop)
    static = run.stage_static.get(stage)
    if static is None:
        static = dict(info.static)
        static[t.CICD_PIPELINE_RUN_ID] = run.run_id
        run.stage_static[stage] = static
    return info, static


def link_to(run: Run, ref: TaskRunRef) -> SpanContext | None:
    """The span context of the execution ``ref`` names, ended or open; None if unknown."""
    ended = run.ended.get(ref.task_run_id)
    if ended is not None:
        return ended
    execution = run.open.get(ref.task_run_id)
    return execution.context if execution is not None else None


def open_span_of(run: Run, stage: str) -> Span | None:
    """The span of the stage's latest started open execution, if any."""
    found = None
    for execution in run.open.values():
        if execution.stage == stage:
            found = execution.span  # the latest started wins
    return found
