"""JSON: the snapshot as data, for web pages, APIs and other tools.

The document (``version`` 1) has ``pipeline`` (name, description, definition hash), ``run``
(null without an overlay), ``nodes`` (name, title, loop type, state, trigger mode, fan-out,
triggers, timings, attempts, ``cancel_reason``/``cancel_cause`` when a stop of the run
cancelled or skipped the stage, and ``paused_before_start`` while executions of it are paused
at a breakpoint before their first attempt, which no attempt shows) and ``edges`` (from, to,
trigger, label, description, event type, filter). Times are epoch seconds, durations
seconds. It validates against the JSON Schema shipped as
``taskdaemon/pipeline/schemas/dag.schema.json`` (``dag_schema()``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from taskdaemon.pipeline.record_fields import as_dict
from taskdaemon.pipeline.records import AttemptRecord
from taskdaemon.pipeline.terminal_text import json_shown
from taskdaemon.pipeline.visualization._snapshot import (
    DagEdge,
    DagNode,
    DagSnapshot,
    DagTrigger,
)

__all__ = [
    "FORMAT_VERSION",
    "dag_schema",
    "render_json_snapshot",
    "snapshot_to_dict",
    "validate_dag",
]

FORMAT_VERSION = 1


def _seconds(value: float | None) -> float | None:
    # Differences of epoch floats carry binary noise (0.9000000953674316); microseconds suffice.
    return None if value is None else round(value, 6)


def _trigger(trigger: DagTrigger) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": trigger.kind, "description": trigger.description}
    for key in (
        "stage",
        "success_only",
        "event_type",
        "filter",
        "expression",
        "approval_required",
        "timeout",
    ):
        value = getattr(trigger, key)
        if value is not None:
            data[key] = value
    return data


def _attempt(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "task_run_id": attempt.task_run_id,
        "instance": attempt.instance,
        "attempt": attempt.attempt,
        "status": attempt.status,
        "start": attempt.start,
        "end": attempt.end,
        "duration": _seconds(attempt.duration),
        "queue_time": _seconds(attempt.queue_time),
        "trigger_wait": _seconds(attempt.trigger_wait),
        "error": attempt.error,
        "error_type": attempt.error_type,
    }


def _node(node: DagNode) -> dict[str, Any]:
    data = {
        "name": node.name,
        "title": node.title,
        "loop": node.loop,
        "state": node.state,
        "description": node.description,
        "trigger_mode": node.trigger_mode,
        "parallel_instances": node.parallel_instances,
        "triggers": [_trigger(t) for t in node.triggers],
        "timings": {
            "start": node.start,
            "end": node.end,
            "duration": _seconds(node.duration),
            "queue_time": _seconds(node.queue_time),
            "trigger_wait": _seconds(node.trigger_wait),
        },
        "instances": node.instances,
        "attempt_count": len(node.attempts),
        "retries": node.retries,
        "attempts": [_attempt(a) for a in node.attempts],
        "skip_reason": node.skip_reason,
        "error": node.error,
        "cancel_reason": node.cancel_reason,
        "cancel_cause": node.cancel_cause,
    }
    if node.paused_before_start:  # only then: every other node's document stays as it was
        data["paused_before_start"] = [as_dict(pause) for pause in node.paused_before_start]
    return data


def _edge(edge: DagEdge) -> dict[str, Any]:
    data: dict[str, Any] = {
        "from": edge.source,
        "to": edge.target,
        "trigger": edge.trigger,
        "label": edge.label,
        "description": edge.description,
    }
    if edge.event_type is not None:
        data["event_type"] = edge.event_type
    if edge.filter is not None:
        data["filter"] = edge.filter
    if edge.success_only is not None:
        data["success_only"] = edge.success_only
    return data


def snapshot_to_dict(snapshot: DagSnapshot) -> dict[str, Any]:
    """The JSON document of ``snapshot`` as plain dicts and lists."""
    return {
        **_head(snapshot),
        "nodes": [_node(node) for node in snapshot.nodes],
        "edges": [_edge(edge) for edge in snapshot.edges],
    }


def _head(snapshot: DagSnapshot) -> dict[str, Any]:
    """The document's fields before ``nodes`` and ``edges``."""
    run = snapshot.run
    return {
        "version": FORMAT_VERSION,
        "pipeline": {
            "name": snapshot.pipeline,
            "description": snapshot.description,
            "definition_hash": snapshot.definition_hash,
        },
        "run": None
        if run is None
        else {
            "run_id": run.run_id,
            "status": run.status,
            "start": run.start,
            "end": run.end,
            "duration": _seconds(run.duration),
            "started_by": run.started_by,
            "error": run.error,
            "error_type": run.error_type,
            "replay_of": run.replay_of,
            "definition_hash": run.definition_hash,
        },
    }


def render_json_snapshot(snapshot: DagSnapshot, *, indent: int | None = 2) -> str:
    """The JSON text of ``snapshot``: UTF-8, keys in document order, final newline.

    ``indent=None`` gives compact text several times faster (the standard library's C encoder
    only runs without indentation): use it for APIs and live streams.
    """
    if indent is None:
        text = json.dumps(snapshot_to_dict(snapshot), separators=(",", ":"), ensure_ascii=False)
        return json_shown(text) + "\n"
    # Indented, ``json`` encodes in Python and keeps every piece of the text in one list until
    # it joins them, tens of pieces a node: several times the text's size in memory, for the
    # largest pipeline files more than a gigabyte. Each node and edge is encoded alone
    # instead, its text indented to its place, with no document of them all built first.
    encoder = json.JSONEncoder(indent=indent, ensure_ascii=False)
    out = io.StringIO()
    out.write(encoder.encode(_head(snapshot)).removesuffix("\n}"))
    _write_items(out, encoder, "nodes", map(_node, snapshot.nodes), indent)
    _write_items(out, encoder, "edges", map(_edge, snapshot.edges), indent)
    out.write("\n}\n")
    return json_shown(out.getvalue())  # printed to a terminal as often as read by a program


def _write_items(
    out: io.StringIO,
    encoder: json.JSONEncoder,
    key: str,
    items: Iterator[dict[str, Any]],
    indent: int,
) -> None:
    """``,"key": [items]`` as ``json.dumps`` indents it at the document's first level (JSON
    text holds no newline but those of its indentation, so each is indented by replacing it)."""
    out.write(f",\n{' ' * indent}{json.dumps(key)}: [")
    item_pad = "\n" + " " * (2 * indent)
    empty = True
    for item in items:
        out.write(("" if empty else ",") + item_pad + encoder.encode(item).replace("\n", item_pad))
        empty = False
    out.write("]" if empty else f"\n{' ' * indent}]")


@cache
def dag_schema() -> dict[str, Any]:
    """The shipped JSON Schema (draft 2020-12) of the JSON format."""
    from importlib import resources  # noqa: PLC0415 - rendering needs no schema (start-up time)

    source = resources.files("taskdaemon.pipeline").joinpath("schemas/dag.schema.json")
    schema: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return schema


def validate_dag(document: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``document`` (parsed JSON) follows the schema."""
    import jsonschema  # noqa: PLC0415 - only validation needs it; rendering stays dependency-light

    jsonschema.Draft202012Validator(
        dag_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)
