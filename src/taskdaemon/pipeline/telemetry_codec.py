"""What the structured span attributes hold, as encode/decode pairs (docs/architecture.md,
"Telemetry schema" and "Span schema versions"). ``telemetry`` names the attributes; this module
writes and reads the values that are more than a name or a number.

* Result codes: ``cicd.pipeline.task.run.result`` and ``cicd.pipeline.result`` from our stage
  and run statuses (:func:`stage_result`, :func:`run_result`), and back
  (:func:`stage_status_of_result`, :func:`run_status_of_result`). The semconv vocabulary is
  coarser (``error`` and ``timeout`` both end a run as ``failure``), so the way back is a map too.
* Triggers (``taskdaemon.stage.trigger_specs``, schema 3): one compact JSON object per trigger,
  in the form the canonical definition uses, ``{"on_event":{"filter":null,"type":"x"}}``
  (:func:`encode_trigger`, :func:`decode_trigger`).
* Edges (``taskdaemon.pipeline.edge_specs``, schema 3): one compact JSON object per edge,
  ``{"source":"a","target":"b","trigger":{...}}`` with the trigger as above
  (:func:`encode_edge`, :func:`decode_edge`).

Each value is a string array with one JSON document per item rather than one document for the
list: an attribute length limit (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` cuts each string of an
array) then spoils one item, read as an ``unknown`` trigger or a dropped edge, not the list; and
a trace viewer shows one trigger per line. OTel array attributes hold only primitives, hence
JSON inside them.

Spans of schema 1 and 2 carry only ``describe()`` text for triggers and ``source>target>label``
for edges; :func:`trigger_from_description` and :func:`edge_from_legacy` read those (stored spans
outlive the code that wrote them). That text is ambiguous where names hold spaces or ``>``: what
it cannot say is read as ``unknown``, never guessed.

Pure: no OpenTelemetry; hostile values decode in linear time to ``unknown`` or None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import Edge, Manual, OnCompletion, OnCondition, OnEvent, Trigger
from taskdaemon.pipeline.records import EdgeRecord, TriggerRecord
from taskdaemon.pipeline.state import RunStatus, StageStatus

__all__ = [
    "decode_edge",
    "decode_trigger",
    "edge_from_legacy",
    "edges_of",
    "encode_edge",
    "encode_trigger",
    "run_result",
    "run_status_of_result",
    "stage_result",
    "stage_status_of_result",
    "trigger_from_description",
    "trigger_record",
    "triggers_of",
]

# --- result codes ---------------------------------------------------------------------------

_STAGE_RESULTS: Final[Mapping[StageStatus, str]] = {
    StageStatus.SUCCESS: t.RESULT_SUCCESS,
    StageStatus.FAILURE: t.RESULT_FAILURE,
    StageStatus.TIMEOUT: t.RESULT_TIMEOUT,
    StageStatus.CANCELLED: t.RESULT_CANCELLATION,
    StageStatus.SKIPPED: t.RESULT_SKIP,
}
_RUN_RESULTS: Final[Mapping[RunStatus, str]] = {
    RunStatus.SUCCESS: t.RESULT_SUCCESS,
    RunStatus.FAILURE: t.RESULT_FAILURE,
    RunStatus.CANCELLED: t.RESULT_CANCELLATION,
}
# The way back accepts every semconv value, including those we never write (``error``, a
# run's ``timeout`` or ``skip``): spans from other producers use them.
_STAGE_STATUSES: Final[Mapping[str, StageStatus]] = {
    **{result: status for status, result in _STAGE_RESULTS.items()},
    t.RESULT_ERROR: StageStatus.FAILURE,
}
_RUN_STATUSES: Final[Mapping[str, RunStatus]] = {
    **{result: status for status, result in _RUN_RESULTS.items()},
    t.RESULT_ERROR: RunStatus.FAILURE,
    t.RESULT_TIMEOUT: RunStatus.FAILURE,
    t.RESULT_SKIP: RunStatus.CANCELLED,
}


def stage_result(status: StageStatus) -> str:
    """The ``cicd.pipeline.task.run.result`` of a stage attempt that ended with ``status``
    (``error`` for a status that is not an end)."""
    return _STAGE_RESULTS.get(status, t.RESULT_ERROR)


def run_result(status: RunStatus) -> str:
    """The ``cicd.pipeline.result`` of a run that ended with ``status`` (``error`` for a status
    that is not an end)."""
    return _RUN_RESULTS.get(status, t.RESULT_ERROR)


def stage_status_of_result(result: object) -> str | None:
    """The stage status (a ``StageStatus`` value) a task run result stands for; None when
    ``result`` is not a semconv result."""
    status = _STAGE_STATUSES.get(result) if isinstance(result, str) else None
    return None if status is None else status.value


def run_status_of_result(result: object) -> str | None:
    """The run status (a ``RunStatus`` value) a pipeline result stands for; None when
    ``result`` is not a semconv result."""
    status = _RUN_STATUSES.get(result) if isinstance(result, str) else None
    return None if status is None else status.value


# --- triggers -------------------------------------------------------------------------------


def _dumps(value: object) -> str:
    # The canonical definition's JSON settings: sorted keys, compact, non-ASCII kept.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _trigger_body(trigger: Trigger) -> dict[str, dict[str, Any]]:
    if isinstance(trigger, OnCompletion):
        body: dict[str, Any] = {"stage": trigger.stage, "success_only": trigger.success_only}
    elif isinstance(trigger, OnEvent):
        body = {"type": trigger.type, "filter": trigger.filter}
    elif isinstance(trigger, OnCondition):
        body = {"expression": trigger.expression}
    else:
        body = {"approval_required": trigger.approval_required, "timeout": trigger.timeout}
    return {trigger.kind: body}


def encode_trigger(trigger: Trigger) -> str:
    """The ``taskdaemon.stage.trigger_specs`` item of ``trigger``: compact JSON, keys sorted,
    the trigger as the canonical definition writes it (``{"manual":{"approval_required":true,
    "timeout":60.0}}``)."""
    return _dumps(_trigger_body(trigger))


def trigger_record(trigger: Trigger) -> TriggerRecord:
    """``trigger`` as a ``TriggerRecord`` (its description is ``describe()``)."""
    description = trigger.describe()
    if isinstance(trigger, OnCompletion):
        return TriggerRecord(
            trigger.kind, description, stage=trigger.stage, success_only=trigger.success_only
        )
    if isinstance(trigger, OnEvent):
        return TriggerRecord(
            trigger.kind, description, event_type=trigger.type, filter=trigger.filter
        )
    if isinstance(trigger, OnCondition):
        return TriggerRecord(trigger.kind, description, expression=trigger.expression)
    return TriggerRecord(
        trigger.kind,
        description,
        approval_required=trigger.approval_required,
        timeout=trigger.timeout,
    )


def _loads(text: object) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return orjson.loads(text)  # depth-limited, unlike json.loads (RecursionError)
    except orjson.JSONDecodeError:
        return None


def _model_trigger(data: object) -> Trigger | None:
    """The model trigger of a decoded ``{kind: body}`` object, None unless every field has
    its type (spans may come from another producer or be cut by a length limit)."""
    if not isinstance(data, dict) or len(data) != 1:
        return None
    ((kind, body),) = data.items()
    if not isinstance(body, dict):
        return None
    if kind == OnCompletion.kind:
        stage, success_only = body.get("stage"), body.get("success_only", True)
        if isinstance(stage, str) and isinstance(success_only, bool):
            return OnCompletion(stage, success_only)
    elif kind == OnEvent.kind:
        type_, filter_ = body.get("type"), body.get("filter")
        if isinstance(type_, str) and isinstance(filter_, str | None):
            return OnEvent(type_, filter_)
    elif kind == OnCondition.kind:
        expression = body.get("expression")
        if isinstance(expression, str):
            return OnCondition(expression)
    elif kind == Manual.kind:
        approval, timeout = body.get("approval_required", False), body.get("timeout")
        number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if isinstance(approval, bool) and (timeout is None or number):
            return Manual(approval, None if timeout is None else float(timeout))
    return None


def decode_trigger(text: object) -> TriggerRecord | None:
    """The trigger an ``encode_trigger`` item holds; None for anything else."""
    trigger = _model_trigger(_loads(text))
    return None if trigger is None else trigger_record(trigger)


_COMPLETION = re.compile(r"on completion of (?P<stage>.+?)(?P<any> \(any result\))?", re.DOTALL)
_EVENT = re.compile(r"on event (?P<type>\S+)(?: if (?P<filter>.+))?", re.DOTALL)
_APPROVAL = re.compile(r"manual approval(?: \(timeout (?P<timeout>[0-9.e+]+)s\))?")


def trigger_from_description(description: str) -> TriggerRecord:
    """A trigger read back from its ``describe()`` text, as spans of schema 1 and 2 carry it
    (``unknown`` when the text does not say: an event type with a space, a foreign text)."""
    if description == "on run start":
        return TriggerRecord(Manual.kind, description, approval_required=False)
    if match := _APPROVAL.fullmatch(description):
        timeout = float(match["timeout"]) if match["timeout"] else None
        return TriggerRecord(Manual.kind, description, approval_required=True, timeout=timeout)
    if description.startswith("on condition "):
        expression = description.removeprefix("on condition ")
        return TriggerRecord(OnCondition.kind, description, expression=expression)
    if match := _COMPLETION.fullmatch(description):
        success_only = match["any"] is None
        return TriggerRecord(
            OnCompletion.kind, description, stage=match["stage"], success_only=success_only
        )
    if match := _EVENT.fullmatch(description):
        return TriggerRecord(
            OnEvent.kind, description, event_type=match["type"], filter=match["filter"]
        )
    return TriggerRecord("unknown", description)


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, tuple | list):
        return tuple(str(item) for item in value)
    return (str(value),)


def triggers_of(attributes: Mapping[str, Any]) -> tuple[TriggerRecord, ...]:
    """A stage span's triggers: from ``taskdaemon.stage.trigger_specs`` (schema 3), item by
    item; an item that does not decode, and every trigger of older spans, from the description
    at the same place in ``taskdaemon.stage.triggers``."""
    descriptions = _strings(attributes.get(t.STAGE_TRIGGERS))
    specs = _strings(attributes.get(t.STAGE_TRIGGER_SPECS))
    found: list[TriggerRecord] = []
    for index in range(max(len(descriptions), len(specs))):
        decoded = decode_trigger(specs[index]) if index < len(specs) else None
        if decoded is None:
            text = descriptions[index] if index < len(descriptions) else ""
            decoded = trigger_from_description(text)
        found.append(decoded)
    return tuple(found)


# --- edges ----------------------------------------------------------------------------------


def encode_edge(edge: Edge) -> str:
    """The ``taskdaemon.pipeline.edge_specs`` item of ``edge``: compact JSON with ``source``,
    ``target`` and the ``trigger`` that makes the edge, as ``encode_trigger`` writes it."""
    return _dumps(
        {"source": edge.source, "target": edge.target, "trigger": _trigger_body(edge.trigger)}
    )


def decode_edge(text: object) -> EdgeRecord | None:
    """The edge an ``encode_edge`` item holds, labelled from its trigger (``model.Edge.label``);
    None for anything else (only an ``on_completion`` or ``on_event`` trigger makes an edge)."""
    data = _loads(text)
    if not isinstance(data, dict):
        return None
    source, target = data.get("source"), data.get("target")
    trigger = _model_trigger(data.get("trigger"))
    if not (isinstance(source, str) and isinstance(target, str)):
        return None
    if not isinstance(trigger, OnCompletion | OnEvent):
        return None
    return EdgeRecord(source, target, Edge(source, target, trigger).label)


def edge_from_legacy(text: str) -> EdgeRecord | None:
    """An edge of schema 1 and 2, ``source>target>label``: stage names hold no ``>``, so the
    first two split it and the label keeps the rest. None without a target."""
    parts = text.split(">", 2)
    if len(parts) < 2:
        return None
    return EdgeRecord(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def edges_of(attributes: Mapping[str, Any]) -> tuple[EdgeRecord, ...] | None:
    """A run span's DAG edges: from ``taskdaemon.pipeline.edge_specs`` (schema 3), else from
    ``taskdaemon.pipeline.edges`` (schema 1 and 2; a span has one or the other). Items that do
    not decode are left out; None when no edge is left, so the caller can fall back to the
    stage spans' upstream lists."""
    decoded = tuple(map(decode_edge, _strings(attributes.get(t.PIPELINE_EDGE_SPECS))))
    decoded += tuple(map(edge_from_legacy, _strings(attributes.get(t.PIPELINE_EDGES))))
    edges = tuple(edge for edge in decoded if edge is not None)
    return edges or None
