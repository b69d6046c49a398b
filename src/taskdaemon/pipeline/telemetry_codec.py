"""What the structured span attributes hold, as encode/decode pairs (docs/architecture.md,
"Telemetry schema" and "Span schema versions"). ``telemetry`` names the attributes; this module
writes and reads the values that are more than a name or a number.

* Result codes: ``cicd.pipeline.task.run.result`` and ``cicd.pipeline.result`` from our stage
  and run statuses (:func:`stage_result`, :func:`run_result`), and back
  (:func:`stage_status_of_result`, :func:`run_status_of_result`). The semconv vocabulary is
  coarser (``error`` and ``timeout`` both end a run as ``failure``), so the way back is a map too.
* Triggers (``taskdaemon.stage.trigger_specs``, schema 3): one compact JSON array per trigger,
  its kind then its fields in a fixed order (:func:`encode_trigger`, :func:`decode_trigger`)::

      ["on_completion", stage, success_only]      ["on_event", type, filter or null]
      ["on_condition", expression]                ["manual", approval_required, timeout or null]

* Edges (``taskdaemon.pipeline.edge_specs``, schema 3): one compact JSON array per edge,
  ``[source, target, trigger]`` with the trigger as above (:func:`encode_edge`,
  :func:`decode_edge`).

Each value is a string array with one JSON document per item rather than one document for the
list: an attribute length limit (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` cuts each string of an
array) then spoils one item, read as an ``unknown`` trigger or a dropped edge, not the list; and
a trace viewer shows one trigger per line. OTel array attributes hold only primitives, hence
JSON inside them. Positional arrays rather than objects: a third of the size on every stage
span, and no ``"key":`` text, which sends each item through the span redactor's key-word scan
(benchmarks/README.md, "telemetry_codec.py", has the figures). A later schema may append
fields; readers ignore items past the ones they know.

Spans of schema 1 and 2 carry only ``describe()`` text for triggers and ``source>target>label``
for edges; :func:`trigger_from_description` and :func:`edge_from_legacy` read those (stored spans
outlive the code that wrote them). That text is ambiguous where names hold spaces or ``>``: what
it cannot say is read as ``unknown``, never guessed.

Pure: no OpenTelemetry; hostile values decode in linear time to ``unknown`` or None. Reading
spans written by taskdaemon does not import the model (``runs list`` and ``runs show`` start
without it and its CEL binding); writing, and describing a spec that came without its
description, do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.finite_number import is_finite_number
from taskdaemon.pipeline.records import EdgeRecord, TriggerRecord
from taskdaemon.pipeline.redaction import redact_text

if TYPE_CHECKING:
    from taskdaemon.pipeline.model import Edge, Trigger
    from taskdaemon.pipeline.state import RunStatus, StageStatus

__all__ = [
    "decode_edge",
    "decode_trigger",
    "edge_from_legacy",
    "edges_of",
    "encode_edge",
    "encode_edges",
    "encode_trigger",
    "encode_triggers",
    "run_result",
    "run_status_of_result",
    "stage_result",
    "stage_status_of_result",
    "trigger_from_description",
    "trigger_record",
    "triggers_of",
]

# --- result codes ---------------------------------------------------------------------------

# Keyed by the statuses' values (``StageStatus``/``RunStatus`` are StrEnums, so a member finds
# its value's entry): drawing a pipeline file (``taskdaemon dag``) needs ``trigger_record``
# from here, not the status state machines of ``state.py`` (start-up time).
_STAGE_RESULTS: Final[Mapping[str, str]] = {
    "success": t.RESULT_SUCCESS,
    "failure": t.RESULT_FAILURE,
    "timeout": t.RESULT_TIMEOUT,
    "cancelled": t.RESULT_CANCELLATION,
    "skipped": t.RESULT_SKIP,
}
_RUN_RESULTS: Final[Mapping[str, str]] = {
    "success": t.RESULT_SUCCESS,
    "failure": t.RESULT_FAILURE,
    "cancelled": t.RESULT_CANCELLATION,
}
# The way back accepts every semconv value, including those we never write (``error``, a
# run's ``timeout`` or ``skip``): spans from other producers use them.
_STAGE_STATUSES: Final[Mapping[str, str]] = {
    **{result: status for status, result in _STAGE_RESULTS.items()},
    t.RESULT_ERROR: "failure",
}
_RUN_STATUSES: Final[Mapping[str, str]] = {
    **{result: status for status, result in _RUN_RESULTS.items()},
    t.RESULT_ERROR: "failure",
    t.RESULT_TIMEOUT: "failure",
    t.RESULT_SKIP: "cancelled",
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
    return _STAGE_STATUSES.get(result) if isinstance(result, str) else None


def run_status_of_result(result: object) -> str | None:
    """The run status (a ``RunStatus`` value) a pipeline result stands for; None when
    ``result`` is not a semconv result."""
    return _RUN_STATUSES.get(result) if isinstance(result, str) else None


# --- triggers -------------------------------------------------------------------------------


def _dumps(value: object) -> str:
    # orjson is imported where used: readers of stored runs (``runs list``) never call this,
    # and orjson's own import loads uuid and platform.
    import orjson  # noqa: PLC0415

    return orjson.dumps(value).decode()  # compact; non-ASCII kept as it is


def _trigger_items(trigger: Trigger) -> list[Any]:
    # Dispatched on the kind string, not isinstance: this module does not import the model.
    kind, fields = trigger.kind, _any(trigger)
    if kind == "on_completion":
        return [kind, fields.stage, fields.success_only]
    if kind == "on_event":
        return [kind, fields.type, fields.filter]
    if kind == "on_condition":
        return [kind, fields.expression]
    return [kind, fields.approval_required, fields.timeout]


def _any(value: object) -> Any:
    return value


def encode_trigger(trigger: Trigger) -> str:
    """The ``taskdaemon.stage.trigger_specs`` item of ``trigger``: a compact JSON array, its
    kind and then its fields (``["manual",true,60.0]``; the module docstring has each kind)."""
    return _dumps(_trigger_items(trigger))


#: A character orjson writes other than as it is in a string (an escape: the quote, the
#: backslash, the C0 controls), or refuses (a lone surrogate). It leaves everything else as it
#: is, non-ASCII included: a string without these is written as ``"`` + itself + ``"``.
_NOT_PLAIN: Final = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')


def encode_triggers(triggers: Sequence[Trigger]) -> dict[int, str]:
    """``encode_trigger`` of each of ``triggers``, by the trigger's ``id`` (the caller keeps
    the triggers alive): the same texts, made for a whole definition at once.

    Why: a definition's run writes one spec per trigger and one per edge, and orjson's call
    per item (with its import statement, the items list and the decode) is most of their
    cost. The common triggers (a completion, an event without filter, a manual trigger without
    timeout) whose strings orjson writes as they are (``_NOT_PLAIN``: one search of all of
    them joined) are written here by hand, text for text; any other trigger, and every one of
    a batch with a string orjson would escape, goes through ``encode_trigger``."""
    found: dict[int, str] = {}
    names: list[str] = []
    slow: list[Trigger] = []
    for trigger in triggers:
        kind, fields = trigger.kind, _any(trigger)
        if kind == "on_completion":
            stage, success_only = fields.stage, fields.success_only
            if type(stage) is str and type(success_only) is bool:
                names.append(stage)
                flag = "true" if success_only else "false"
                found[id(trigger)] = f'["on_completion","{stage}",{flag}]'
                continue
        elif kind == "on_event":
            event_type = fields.type
            if type(event_type) is str and fields.filter is None:
                names.append(event_type)
                found[id(trigger)] = f'["on_event","{event_type}",null]'
                continue
        elif kind == "manual":
            approval = fields.approval_required
            if type(approval) is bool and fields.timeout is None:
                found[id(trigger)] = '["manual",true,null]' if approval else '["manual",false,null]'
                continue
        slow.append(trigger)
    if names and _NOT_PLAIN.search("".join(names)) is not None:
        slow = list(triggers)
    for trigger in slow:
        found[id(trigger)] = encode_trigger(trigger)
    return found


def trigger_record(trigger: Trigger) -> TriggerRecord:
    """``trigger`` as a ``TriggerRecord`` (its description is ``describe()``), its texts
    redacted: a condition or a filter may compare a secret with its literal (``request.token
    == '…'``), and every view of a definition the engine or a file holds (a live run's record
    and drawings, ``dag FILE``) reads its triggers from here; a stored one was redacted as its
    spans were written."""
    items = _trigger_items(trigger)
    kind, description = items[0], redact_text(trigger.describe())
    if kind == "on_completion":
        return TriggerRecord(kind, description, stage=items[1], success_only=items[2])
    if kind == "on_event":
        shown = None if items[2] is None else redact_text(items[2])
        return TriggerRecord(kind, description, event_type=items[1], filter=shown)
    if kind == "on_condition":
        return TriggerRecord(kind, description, expression=redact_text(items[1]))
    return TriggerRecord(kind, description, approval_required=items[1], timeout=items[2])


def _loads(text: object) -> Any:
    if not isinstance(text, str):
        return None
    from taskdaemon.pipeline.stored_json import loads  # noqa: PLC0415

    try:
        return loads(text)  # orjson's result (depth-limited), with no orjson import for a few
    except ValueError:
        return None


def _model_trigger(data: object) -> Trigger | None:
    """The model trigger of a decoded ``[kind, fields...]`` array, None unless every field it
    needs is there with its type (spans may come from another producer or be cut by a length
    limit). Items past the known fields are ignored: a later schema may append some."""
    if not isinstance(data, list) or not data:
        return None
    from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, OnEvent  # noqa: PLC0415

    kind, fields = data[0], data[1:]
    if kind == OnCondition.kind and len(fields) >= 1 and isinstance(fields[0], str):
        return OnCondition(fields[0])
    if len(fields) < 2:
        return None
    first, second = fields[0], fields[1]
    if kind == OnCompletion.kind and isinstance(first, str) and isinstance(second, bool):
        return OnCompletion(first, second)
    if kind == OnEvent.kind and isinstance(first, str) and isinstance(second, str | None):
        return OnEvent(first, second)
    if kind == Manual.kind and isinstance(first, bool) and _timeout(second):
        return Manual(first, None if second is None else float(second))
    return None


def decode_trigger(text: object, description: str | None = None) -> TriggerRecord | None:
    """The trigger an ``encode_trigger`` item holds; None for anything else.

    ``description``: the trigger's ``describe()`` text when the caller has it (the span's
    ``taskdaemon.stage.triggers`` item beside the spec), which saves building the model trigger
    to describe it: rebuilding a run decodes every trigger of every stage.
    """
    data = _loads(text)
    if description is None or type(data) is not list or not data:
        trigger = _model_trigger(data)
        return None if trigger is None else trigger_record(trigger)
    kind, count = data[0], len(data)
    first = data[1] if count > 1 else None
    second = data[2] if count > 2 else None
    # The checks of _model_trigger, without the model objects (orjson gives exact types).
    if kind == "on_condition" and type(first) is str:
        return TriggerRecord(kind, description, expression=first)
    if count < 3:
        return None
    if kind == "on_completion" and type(first) is str and type(second) is bool:
        return TriggerRecord(kind, description, stage=first, success_only=second)
    if kind == "on_event" and type(first) is str and (second is None or type(second) is str):
        return TriggerRecord(kind, description, event_type=first, filter=second)
    if kind == "manual" and type(first) is bool and _timeout(second):
        timeout = None if second is None else float(second)
        return TriggerRecord(kind, description, approval_required=first, timeout=timeout)
    return None


def _timeout(value: object) -> bool:
    """A manual trigger's timeout: None, or a finite number (``finite_number``'s rule: a crafted
    span's inf timeout was a traceback of ``dag --run``, which cannot write it as a time)."""
    return value is None or is_finite_number(value)


@cache
def _description_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    # Compiled on first use: only spans of schema 1 and 2 are read this way, and the commands
    # that import this module (dag, runs) mostly read none.
    return (
        re.compile(r"manual approval(?: \(timeout (?P<timeout>[0-9.e+]+)s\))?"),
        re.compile(r"on completion of (?P<stage>.+?)(?P<any> \(any result\))?", re.DOTALL),
        re.compile(r"on event (?P<type>\S+)(?: if (?P<filter>.+))?", re.DOTALL),
    )


def trigger_from_description(description: str) -> TriggerRecord:
    """A trigger read back from its ``describe()`` text, as spans of schema 1 and 2 carry it
    (``unknown`` when the text does not say: an event type with a space, a foreign text)."""
    if description == "on run start":
        return TriggerRecord("manual", description, approval_required=False)
    approval, completion, event = _description_patterns()
    if match := approval.fullmatch(description):
        try:  # ``1.2.3`` fits the pattern, and ``1e400`` is inf: neither is a time
            timeout = float(match["timeout"]) if match["timeout"] else None
        except ValueError:
            timeout = math.nan
        if timeout is None or timeout < math.inf:
            return TriggerRecord("manual", description, approval_required=True, timeout=timeout)
    if description.startswith("on condition "):
        expression = description.removeprefix("on condition ")
        return TriggerRecord("on_condition", description, expression=expression)
    if match := completion.fullmatch(description):
        success_only = match["any"] is None
        return TriggerRecord(
            "on_completion", description, stage=match["stage"], success_only=success_only
        )
    if match := event.fullmatch(description):
        return TriggerRecord(
            "on_event", description, event_type=match["type"], filter=match["filter"]
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
        text = descriptions[index] if index < len(descriptions) else None
        decoded = decode_trigger(specs[index], text) if index < len(specs) else None
        found.append(decoded or trigger_from_description(text or ""))
    return tuple(found)


# --- edges ----------------------------------------------------------------------------------


def encode_edges(edges: Sequence[Edge], specs: Mapping[int, str]) -> list[str]:
    """``encode_edge`` of each of ``edges``, given ``encode_triggers`` of their triggers
    (``specs``, by ``id``): the same texts, the trigger's text reused as it is (orjson writes a
    list as its items' texts joined), the two names written by hand when orjson would write
    them as they are (``encode_triggers`` says why); else each edge through ``encode_edge``."""
    texts: list[str] = []
    names: list[str] = []
    for edge in edges:
        spec, source, target = specs.get(id(edge.trigger)), edge.source, edge.target
        if spec is None or type(source) is not str or type(target) is not str:
            texts.append(encode_edge(edge))
            continue
        names += (source, target)
        texts.append(f'["{source}","{target}",{spec}]')
    if names and _NOT_PLAIN.search("".join(names)) is not None:
        return [encode_edge(edge) for edge in edges]
    return texts


def encode_edge(edge: Edge) -> str:
    """The ``taskdaemon.pipeline.edge_specs`` item of ``edge``: a compact JSON array
    ``[source, target, trigger]``, the trigger that makes the edge as ``encode_trigger`` writes
    it."""
    return _dumps([edge.source, edge.target, _trigger_items(edge.trigger)])


def decode_edge(text: object) -> EdgeRecord | None:
    """The edge an ``encode_edge`` item holds, labelled from its trigger (``model.Edge.label``);
    None for anything else (only an ``on_completion`` or ``on_event`` trigger makes an edge)."""
    data = _loads(text)
    if type(data) is not list or len(data) < 3:
        return None
    source, target, trigger = data[0], data[1], data[2]
    if type(source) is not str or type(target) is not str:
        return None
    # The label of model.Edge, without building the model objects (one edge per stage).
    if type(trigger) is not list or len(trigger) < 3 or type(trigger[1]) is not str:
        return None
    kind, first, second = trigger[0], trigger[1], trigger[2]
    if kind == "on_completion" and type(second) is bool:
        label = "on completion" if second else "on completion\n(any result)"
    elif kind == "on_event" and (second is None or type(second) is str):
        label = f"on event\n{first}"
    else:
        return None
    return EdgeRecord(source, target, label)


def edge_from_legacy(text: str) -> EdgeRecord | None:
    """An edge of schema 1 and 2, ``source>target>label``: stage names hold no ``>``, so the
    first two split it and the label keeps the rest. None without a target."""
    parts = text.split(">", 2)
    if len(parts) < 2:
        return None
    return EdgeRecord(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


@cache
def _plain_edge() -> re.Pattern[str]:
    """A line that is an ``encode_edge`` item of a completion or event trigger whose strings
    orjson wrote as they are (none holds a ``_NOT_PLAIN`` character, so each JSON string's
    value is its text between the quotes), and nothing else: what ``decode_edge`` reads as an
    edge, groups (source, target, ``true`` / ``false`` for a completion, else the event type).
    Compiled on first use: most commands that import this module read no run span's edges."""
    return re.compile(
        r'^\["([^\x00-\x1f"\\\ud800-\udfff]*+)","([^\x00-\x1f"\\\ud800-\udfff]*+)",\['
        r'(?:"on_completion","[^\x00-\x1f"\\\ud800-\udfff]*+",(true|false)'
        r'|"on_event","([^\x00-\x1f"\\\ud800-\udfff]*+)",(?:null|"[^\x00-\x1f"\\\ud800-\udfff]*+"))'
        r"\]\]$",
        re.MULTILINE,
    )


_COMPLETION_LABELS: Final = {"true": "on completion", "false": "on completion\n(any result)"}


def _plain_edges(specs: tuple[str, ...]) -> tuple[EdgeRecord, ...] | None:
    """``decode_edge`` of each of ``specs`` in one pass of ``_plain_edge`` over them joined by
    line feeds, when every one is such a line; else None (the caller decodes them one by one).

    A run span has an item an edge, and decoding each (a JSON document, its checks, its label)
    was most of what an ended run cost the span store's writer a stage. Exact: no item holds a
    line feed (the joined text has one fewer than the items: none, for no item, which this
    leaves to the caller), so the lines are the items, and a match is a whole line; as many
    matches as items is every item matched. A matched item is a
    JSON array whose strings hold no escape, so ``decode_edge`` reads the texts between the
    quotes, and its label is the one ``decode_edge`` writes from the trigger's fields."""
    joined = "\n".join(specs)
    if joined.count("\n") != len(specs) - 1:
        return None
    found = _plain_edge().findall(joined)
    if len(found) != len(specs):
        return None
    labels = _COMPLETION_LABELS
    return tuple(
        [
            EdgeRecord(source, target, labels[done] if done else f"on event\n{event}")
            for source, target, done, event in found
        ]
    )


def edges_of(attributes: Mapping[str, Any]) -> tuple[EdgeRecord, ...] | None:
    """A run span's DAG edges: from ``taskdaemon.pipeline.edge_specs`` (schema 3), else from
    ``taskdaemon.pipeline.edges`` (schema 1 and 2; a span has one or the other). Items that do
    not decode are left out; None when no edge is left, so the caller can fall back to the
    stage spans' upstream lists."""
    specs = _strings(attributes.get(t.PIPELINE_EDGE_SPECS))
    decoded: tuple[EdgeRecord | None, ...] = _plain_edges(specs) or tuple(map(decode_edge, specs))
    decoded += tuple(map(edge_from_legacy, _strings(attributes.get(t.PIPELINE_EDGES))))
    edges = tuple(edge for edge in decoded if edge is not None)
    return edges or None


def recorded_request(attributes: Mapping[str, Any]) -> str | None:
    """A run span's recorded request (``taskdaemon.pipeline.request``: JSON, capped and
    redacted when captured) as the views show it, None for a run started with none, one whose
    capture was off, or a foreign producer's value that is no text."""
    text = attributes.get(t.PIPELINE_REQUEST)
    return text if isinstance(text, str) and text not in ("", "{}") else None
