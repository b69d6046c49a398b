"""A stage as the definition's canonical JSON holds it (``Pipeline.canonical_json``).

``stage_payload(stage)`` is what ``dataclasses.asdict`` gave for the definition hash (records as
dicts, tuples and lists as lists, anything else as is, every field being immutable), with each
trigger under its kind (``{"manual": {...}}``), built without deep copies: the hash is taken
over every stage of the file once a run (``benchmarks/README.md``, "Per-stage cost").
"""

from __future__ import annotations

from typing import Any

from taskdaemon.pipeline.record_fields import fields, is_record

__all__ = ["stage_payload"]


def stage_payload(stage: Any) -> dict[str, object]:
    """``stage`` (a ``model.Stage``) as the canonical JSON's stage entry."""
    payload: dict[str, object] = {}
    for name in _field_names(type(stage)) or ():
        if name == "triggers":  # converted once, under its kind
            payload[name] = [{t.kind: _plain(t)} for t in stage.triggers]
            continue
        item = getattr(stage, name)
        payload[name] = item if type(item) in _LEAVES else _plain(item)
    return payload


# Each type's field names, None for a type that is no record (remembered too: most values
# converted are tuples, enums and None, and ``is_record`` is a few attribute look-ups).
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(kind: type) -> tuple[str, ...] | None:
    try:
        return _FIELD_NAMES[kind]
    except KeyError:
        names = tuple(f.name for f in fields(kind)) if is_record(kind) else None
        _FIELD_NAMES[kind] = names
        return names


def _plain(value: object) -> Any:
    """Records as dicts, tuples and lists item by item, anything else as is."""
    kind = type(value)
    names = _FIELD_NAMES[kind] if kind in _FIELD_NAMES else _field_names(kind)
    # Most fields are plain scalars: taken as they are, without a call that would only return
    # its argument (most of the calls of a large file's hash were such calls).
    if names is not None:
        result = {}
        for name in names:
            item = getattr(value, name)
            result[name] = item if type(item) in _LEAVES else _plain(item)
        return result
    if kind is tuple or kind is list:
        items: Any = value
        return [item if type(item) in _LEAVES else _plain(item) for item in items]
    return value


_LEAVES: frozenset[type] = frozenset({str, int, float, bool, type(None)})
