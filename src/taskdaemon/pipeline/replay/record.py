"""What a recorded run's spans say, in the form replay needs: ``read_recorded_run(spans)``.

Pure and linear in the number of spans and span events: it reads attributes, parses no
payload (values are parsed only when a replay feeds them). Every value recorded for replay is
a ``RecordedValue``: its text, and what the spans say about its full form (size, sha256,
``truncated`` / ``redacted``). ``RecordedValue.problem`` is the reason a value cannot be used
as it is, or None when the text is the exact value:

* the text does not hash to the recorded sha256: it was cut, by taskdaemon's cap
  (``truncated``) or on the way (a backend's attribute limit, Tempo's 2,048 bytes), or, when
  it holds ``[REDACTED]``, a secret in it was replaced before it was stored (the definition is
  hashed unredacted; span redaction replaces a secret written in a command, say);
* ``redacted``: some keys were replaced by ``[REDACTED]`` (named by path);
* version 1 spans have no request hash: a request that is not JSON was cut, and one holding
  ``[REDACTED]`` was redacted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.payloads import REDACTED
from taskdaemon.pipeline.status_rules import stage_status_of
from taskdaemon.pipeline.tracking.reconstruct import ended_attempt_status, find_root, is_skip
from taskdaemon.pipeline.tracking.spans import SpanRecord

__all__ = [
    "RecordedApproval",
    "RecordedEvent",
    "RecordedExecution",
    "RecordedIntervention",
    "RecordedRun",
    "RecordedValue",
    "read_recorded_run",
    "redacted_paths",
]


def redacted_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every ``[REDACTED]`` string inside ``value`` (``[i]`` for lists)."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            found.extend([path] if item == REDACTED else redacted_paths(item, path))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            path = f"{prefix}[{index}]"
            found.extend([path] if item == REDACTED else redacted_paths(item, path))
    return found


@dataclass(frozen=True, slots=True)
class RecordedValue:
    """One value as a span recorded it (see the module docstring)."""

    text: str | None
    size: int | None = None
    sha256: str | None = None
    truncated: bool = False
    redacted: bool | None = None  # None: version 1 spans do not say

    @property
    def kept(self) -> int:
        """UTF-8 bytes of the recorded text."""
        return 0 if self.text is None else len(self.text.encode("utf-8"))

    def problem(self) -> str | None:
        """Why the text is not the exact value (one phrase), or None when it is."""
        return self.check()[0]

    def check(self) -> tuple[str | None, Any]:
        """``(problem(), the parsed value)``: one hash and one parse for both."""
        if self.text is None:
            return "not recorded", None
        data = self.text.encode("utf-8")
        cut = self.truncated
        if self.sha256 is not None:
            if hashlib.sha256(data).hexdigest() != self.sha256:
                size = f" of {self.size}" if self.size is not None else ""
                if self.truncated:
                    return (
                        f"truncated at capture ({len(data)}{size} bytes kept; "
                        "TASKDAEMON_CAPTURE_MAX_BYTES sets the cap)"
                    ), None
                if REDACTED in self.text:  # not a size limit: Tempo's hint would mislead
                    return "redacted before it was stored (a secret in it became [REDACTED])", None
                return f"cut on the way to the span source ({len(data)}{size} bytes kept)", None
            cut = False
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            if cut or self.sha256 is None:
                return f"truncated ({len(data)} bytes kept)", None
            return "not JSON", None
        if cut:
            return f"truncated at capture ({len(data)} bytes kept)", None
        if self.redacted is not False and REDACTED in self.text:
            paths = redacted_paths(value)
            if paths:
                return f"redacted ({', '.join(paths)})", value
        return None, value

    def value(self) -> Any:
        """The parsed JSON (call only when ``problem()`` is None)."""
        return None if self.text is None else orjson.loads(self.text)

    def attributes(self) -> dict[str, Any]:
        """The ``taskdaemon.payload.*`` attributes this value was read from (``_payload``'s
        inverse), as a replay records a fed execution's inputs again: the text as kept, with
        the size, hash and flags of the value it was kept of."""
        found: dict[str, Any] = {t.PAYLOAD_TRUNCATED: self.truncated}
        if self.text is not None:
            found[t.PAYLOAD_JSON] = self.text
        if self.size is not None:
            found[t.PAYLOAD_SIZE] = self.size
        if self.sha256 is not None:
            found[t.PAYLOAD_SHA256] = self.sha256
        if self.redacted is not None:
            found[t.PAYLOAD_REDACTED] = self.redacted
        return found


def _payload(attributes: Mapping[str, Any]) -> RecordedValue:
    # Two per stage span: inlined checks and positional arguments (a third of the reading).
    get = attributes.get
    text = get(t.PAYLOAD_JSON)
    size = get(t.PAYLOAD_SIZE)
    sha256 = get(t.PAYLOAD_SHA256)
    redacted = get(t.PAYLOAD_REDACTED)
    return RecordedValue(
        None if text is None else str(text),
        size if type(size) is int else None,
        sha256 if type(sha256) is str and sha256 else None,
        get(t.PAYLOAD_TRUNCATED) is True,
        redacted if type(redacted) is bool else None,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A published event: type, id, publisher (``task_run_id``, None from outside), payload."""

    event_type: str
    event_id: int
    source: str | None
    payload: RecordedValue
    time_ns: int


@dataclass(frozen=True, slots=True)
class RecordedApproval:
    """An approval decision on the run span."""

    stage: str
    approved: bool
    by: str
    timed_out: bool
    time_ns: int


@dataclass(frozen=True, slots=True)
class RecordedIntervention:
    """What a debugger did to an execution of the original: an input overridden, a stage
    skipped or retried at a breakpoint (a replay does not do it again)."""

    stage: str
    task_run_id: str
    what: str  # "had its input x overridden", "was skipped", "was retried"
    by: str


@dataclass(frozen=True, slots=True)
class RecordedExecution:
    """One attempt of one instance of a stage."""

    stage: str
    instance: int
    attempt: int
    status: str
    span_id: str
    start_ns: int
    end_ns: int | None
    inputs: RecordedValue | None
    outputs: RecordedValue | None
    events: tuple[RecordedEvent, ...]
    error: str | None
    #: (input, by) of each input a debugger overrode before the attempt ran.
    overrides: tuple[tuple[str, str], ...] = ()
    #: Its span's ``error.type`` when it failed (a fed failure raises under that name).
    error_type: str | None = None
    #: Fed by the replay this record is of: the attempts its own record made, which it stood for.
    replayed_attempts: int | None = None
    #: Why the stop of its run cancelled it (``run cancelled by alice``), when it did.
    cancel_reason: str | None = None
    #: The sha256 of the payload of the event that made this instance (``stage.input``'s
    #: ``taskdaemon.payload.event_sha256``); None when none did, or the record does not say.
    event_sha256: str | None = None
    #: Whether an event made this instance (its span has ``taskdaemon.stage.event_type``, as
    #: every record has had for it): an instance of a stage with ``on_event`` and another
    #: trigger that the other one started has no item, where a record without the item's hash
    #: cannot tell one from the other.
    by_event: bool = False

    @property
    def task_run_id(self) -> str:
        """``{stage}.{instance}.{attempt}``."""
        return f"{self.stage}.{self.instance}.{self.attempt}"

    @property
    def attempts_made(self) -> int:
        """The attempts the record made of this instance, when this is its last: its number,
        or for an execution a replay fed, the attempts it stood for (a replay of a replay
        still says how often the first run tried)."""
        return self.replayed_attempts or self.attempt


@dataclass(frozen=True)
class RecordedRun:
    """A run as its spans recorded it, for replay."""

    run_id: str
    pipeline: str
    schema_version: int
    status: str
    definition: RecordedValue | None
    definition_hash: str | None
    request: RecordedValue | None
    executions: Mapping[str, tuple[RecordedExecution, ...]]
    external_events: tuple[RecordedEvent, ...] = ()
    approvals: tuple[RecordedApproval, ...] = ()
    skipped: tuple[str, ...] = ()
    spans: tuple[SpanRecord, ...] = field(default=(), repr=False)
    interventions: tuple[RecordedIntervention, ...] = ()
    #: Why the run was cancelled (``run cancelled by alice``), when it was.
    cancel_reason: str | None = None

    @cached_property
    def final(self) -> Mapping[str, dict[int, RecordedExecution]]:
        """Each stage's last attempt of each instance."""
        result: dict[str, dict[int, RecordedExecution]] = {}
        for stage, executions in self.executions.items():
            per_instance: dict[int, RecordedExecution] = {}
            for execution in executions:
                known = per_instance.get(execution.instance)
                if known is None or known.attempt < execution.attempt:
                    per_instance[execution.instance] = execution
            result[stage] = per_instance
        return result

    def stage_status(self, stage: str) -> str:
        """The stage's recorded status: its instances' last attempts aggregated (``status_rules``'s
        ``stage_status_of``: success only if every instance's last attempt was)."""
        finals = self.final.get(stage)
        if not finals:
            return "skipped"
        return stage_status_of((instance, ex.status) for instance, ex in finals.items())


def _events(span: SpanRecord) -> list[RecordedEvent]:
    found = []
    for event in span.events:
        if event.name != t.EVENT_PUBLISHED:
            continue
        attributes = event.attributes
        found.append(
            RecordedEvent(
                event_type=str(attributes.get(t.PUBLISHED_EVENT_TYPE, "")),
                event_id=_int(attributes.get(t.PUBLISHED_EVENT_ID)) or 0,
                source=_str(attributes.get(t.PUBLISHED_EVENT_SOURCE)),
                payload=_payload(attributes),
                time_ns=event.time_ns,
            )
        )
    return found


def _execution(span: SpanRecord, stage: str) -> RecordedExecution:
    attributes = span.attributes
    inputs = outputs = event_sha256 = None
    overrides = []
    for event in span.events:
        if event.name == t.EVENT_STAGE_INPUT:
            inputs = _payload(event.attributes)
            event_sha256 = _str(event.attributes.get(t.PAYLOAD_EVENT_SHA256))
        elif event.name == t.EVENT_STAGE_OUTPUT:
            outputs = _payload(event.attributes)
        elif event.name == t.EVENT_INPUT_OVERRIDE:
            overrides.append(
                (
                    str(event.attributes.get(t.OVERRIDE_INPUT, "")),
                    str(event.attributes.get(t.OVERRIDE_BY, "")),
                )
            )
    status = (
        "running" if span.end_ns is None else ended_attempt_status(attributes, span.status_code)
    )
    if status == t.STATUS_REPLAYED:  # a replay of a replay: the status it stood for
        status = str(attributes.get(t.STAGE_REPLAYED_STATUS, "success"))
    return RecordedExecution(
        stage=stage,
        instance=_int(attributes.get(t.STAGE_INSTANCE)) or 0,
        attempt=_int(attributes.get(t.STAGE_ATTEMPT)) or 1,
        status=status,
        span_id=span.span_id,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        inputs=inputs,
        outputs=outputs,
        events=tuple(_events(span)),
        error=_str(attributes.get(t.STAGE_ERROR_MESSAGE)) or _str(span.status_message),
        overrides=tuple(overrides),
        error_type=_str(attributes.get(t.ERROR_TYPE)),
        replayed_attempts=_int(attributes.get(t.STAGE_REPLAYED_ATTEMPTS)),
        cancel_reason=_str(attributes.get(t.STAGE_CANCEL_REASON)),
        event_sha256=event_sha256,
        by_event=t.STAGE_EVENT_TYPE in attributes,
    )


def read_recorded_run(spans: Iterable[SpanRecord]) -> RecordedRun:
    """The ``RecordedRun`` of one trace's spans; ``ValueError`` when there is no run span."""
    by_id: dict[str, SpanRecord] = {}
    for span in spans:
        known = by_id.get(span.span_id)
        if known is None or (known.end_ns is None and span.end_ns is not None):
            by_id[span.span_id] = span
    root = find_root(by_id.values())
    if root is None:
        raise ValueError("the trace has no run span (RUN …): it is not a taskdaemon run")
    attributes = root.attributes
    executions: dict[str, list[RecordedExecution]] = {}
    skipped: list[str] = []
    for span in by_id.values():
        if span is root:
            continue
        stage = span.attributes.get(t.CICD_TASK_NAME)
        if not isinstance(stage, str) or not stage:
            continue
        if is_skip(span.attributes, span.start_ns, span.end_ns):
            skipped.append(stage)
            continue
        executions.setdefault(stage, []).append(_execution(span, stage))
    interventions = [
        RecordedIntervention(
            stage=execution.stage,
            task_run_id=execution.task_run_id,
            what=f"had its input {name} overridden",
            by=by,
        )
        for found in executions.values()
        for execution in found
        for name, by in execution.overrides
    ]
    approvals = []
    for event in root.events:
        action = event.attributes.get(t.BREAKPOINT_ACTION)
        if event.name == t.EVENT_BREAKPOINT_RESUMED and action in ("skip", "retry"):
            interventions.append(
                RecordedIntervention(
                    stage=str(event.attributes.get(t.CICD_TASK_NAME, "")),
                    task_run_id=str(event.attributes.get(t.CICD_TASK_RUN_ID, "")),
                    what="was skipped" if action == "skip" else "was retried",
                    by=str(event.attributes.get(t.BREAKPOINT_BY, "")),
                )
            )
        if event.name == t.EVENT_APPROVAL_RESOLVED:
            approvals.append(
                RecordedApproval(
                    stage=str(event.attributes.get(t.CICD_TASK_NAME, "")),
                    approved=event.attributes.get(t.APPROVAL_APPROVED) is True,
                    by=str(event.attributes.get(t.APPROVAL_BY, "")),
                    timed_out=event.attributes.get(t.APPROVAL_TIMED_OUT) is True,
                    time_ns=event.time_ns,
                )
            )
    definition = None
    if t.PIPELINE_DEFINITION in attributes:
        definition = RecordedValue(
            text=str(attributes[t.PIPELINE_DEFINITION]),
            size=_int(attributes.get(t.PIPELINE_DEFINITION_SIZE)),
            sha256=_str(attributes.get(t.PIPELINE_DEFINITION_HASH)),
            truncated=attributes.get(t.PIPELINE_DEFINITION_TRUNCATED) is True,
            redacted=False,
        )
    request_text = attributes.get(t.PIPELINE_REQUEST)
    redacted = attributes.get(t.PIPELINE_REQUEST_REDACTED)
    request = RecordedValue(
        text="{}" if request_text is None else str(request_text),
        size=_int(attributes.get(t.PIPELINE_REQUEST_SIZE)),
        sha256=_str(attributes.get(t.PIPELINE_REQUEST_SHA256)),
        truncated=attributes.get(t.PIPELINE_REQUEST_TRUNCATED) is True,
        redacted=redacted if isinstance(redacted, bool) else None,
    )
    version = _int(attributes.get(t.SCHEMA_VERSION)) or 1
    status = "running"
    if root.end_ns is not None:
        result = attributes.get(t.CICD_PIPELINE_RESULT)
        status = {"success": "success", "cancellation": "cancelled"}.get(str(result), "failure")
    return RecordedRun(
        run_id=root.trace_id,
        pipeline=str(attributes.get(t.CICD_PIPELINE_NAME) or root.name.removeprefix("RUN ")),
        schema_version=version,
        status=status,
        definition=definition,
        definition_hash=_str(attributes.get(t.PIPELINE_DEFINITION_HASH)),
        request=request,
        executions={
            stage: tuple(sorted(found, key=lambda e: (e.instance, e.attempt, e.start_ns)))
            for stage, found in executions.items()
        },
        external_events=tuple(e for e in sorted(_events(root), key=lambda e: e.event_id)),
        approvals=tuple(sorted(approvals, key=lambda a: a.time_ns)),
        skipped=tuple(skipped),
        spans=tuple(by_id.values()),
        interventions=tuple(interventions),
        cancel_reason=_str(attributes.get(t.STAGE_CANCEL_REASON)),
    )
