"""A stage as the definition's canonical JSON holds it (``Pipeline.canonical_json``).

``stage_payload(stage)`` is what ``dataclasses.asdict`` gave for the definition hash (records as
dicts, tuples and lists as lists, anything else as is, every field being immutable), with each
trigger under its kind (``{"manual": {...}}``), built without deep copies: the hash is taken
over every stage of the file once a run (``benchmarks/README.md``, "Per-stage cost").

``stage_json(stage)`` is that payload's text as the canonical JSON writes it
(``json.dumps(stage_payload(stage), sort_keys=True, separators=(",", ":"), default=str)``),
written directly for the values a loaded definition holds: each field's text put in its sorted
place with the encoder's own string function (C), no dict built, no generic walk. Every value
is taken only where its text cannot differ from ``json.dumps``'s: a string (or ``str``
subclass, such as the trigger mode) by the encoder's own function, ``None``, ``True`` and
``False`` by identity, a number only of exact type ``int`` or finite ``float``, a tuple or list
item by item, and a record only when its class has the expected field names (a stage, trigger,
mapping, retry policy or backoff). Anything else (a field added to a record, a value of
another type, a number that is not finite) sends that stage through ``stage_payload`` and
``json.dumps``, so the text is the same for every stage;
``tests/pipeline_stage_payload_json_test.py`` holds both ways to texts the old code wrote.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from taskdaemon.pipeline.record_fields import fields, is_record

__all__ = ["stage_json", "stage_payload"]


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


def stage_json(stage: Any) -> str:
    """``stage`` (a ``model.Stage``) as the canonical JSON's text of its entry (see the module
    docstring): the same text as ``json.dumps`` of :func:`stage_payload`."""
    if _field_names(type(stage)) == _STAGE_FIELDS:
        try:
            return _stage_text(stage)
        except _NotPlainError:
            pass
    return dumps(stage_payload(stage))


def dumps(value: object) -> str:
    """``value`` as canonical JSON: sorted keys, compact, anything else as its ``str``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


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


# --- the text written directly -------------------------------------------------------------

#: The encoder's string function (C when the ``_json`` accelerator is there, as for
#: ``json.dumps``); it raises TypeError for anything that is not a ``str``.
_string: Callable[[str], str] = json.encoder.encode_basestring_ascii

#: ``model.Stage``'s field names, in its order (compared as a tuple with the class's own).
_STAGE_FIELDS = (
    "name",
    "loop",
    "triggers",
    "trigger_mode",
    "inputs",
    "outputs",
    "parallel_instances",
    "timeout",
    "retry",
    "emits",
    "command",
    "handler",
    "description",
)


class _NotPlainError(Exception):
    """A value the direct text does not take: the stage goes the general way."""


def _stage_text(stage: Any) -> str:
    """The stage's entry, written directly. A one-trigger stage's text function is looked up
    and called inline, and an ``int`` ``parallel_instances`` written by ``int.__repr__``
    inline: what ``_trigger`` and ``_integer`` do for them, each a frame less; any other value
    still goes through those two, which raise for what the direct text does not take."""
    # Keys in sorted order, as ``sort_keys`` puts them.
    command, handler, timeout, retry = stage.command, stage.handler, stage.timeout, stage.retry
    inputs, outputs, emits, triggers = stage.inputs, stage.outputs, stage.emits, stage.triggers
    try:
        if type(triggers) is tuple and len(triggers) == 1:  # most stages: no list to join
            only = triggers[0]
            # ``_trigger(only)``, its look-up inline for a class already met (a frame less).
            text = _TRIGGER_TEXTS.get(type(only))
            trigger_texts = _trigger(only) if text is None else text(only)
        else:
            trigger_texts = ",".join([_trigger(t) for t in _items(triggers)])
        parallel = stage.parallel_instances
        return (
            f'{{"command":{"null" if command is None else _string(command)}'
            f',"description":{_string(stage.description)}'
            f',"emits":{"[]" if emits == () else _strings(emits)}'
            f',"handler":{"null" if handler is None else _string(handler)}'
            f',"inputs":{"[]" if inputs == () else _mappings(inputs)}'
            f',"loop":{_string(stage.loop)}'
            f',"name":{_string(stage.name)}'
            f',"outputs":{"null" if outputs is None else _mappings(outputs)}'
            # ``_integer(parallel)``, inline for an ``int`` (the function raises for the rest).
            f',"parallel_instances":'
            f"{int.__repr__(parallel) if type(parallel) is int else _integer(parallel)}"
            f',"retry":{"null" if retry is None else _retry(retry)}'
            f',"timeout":{"null" if timeout is None else _number(timeout)}'
            f',"trigger_mode":{_string(stage.trigger_mode)}'
            f',"triggers":[{trigger_texts}]}}'
        )
    except (TypeError, KeyError):  # not a string, not a known trigger
        raise _NotPlainError from None


def _items(value: Any) -> Any:
    if type(value) is tuple or type(value) is list:
        return value
    raise _NotPlainError


def _strings(value: Any) -> str:
    return f"[{','.join([_string(item) for item in _items(value)])}]"


def _boolean(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise _NotPlainError


def _integer(value: Any) -> str:
    if type(value) is int:
        return int.__repr__(value)
    raise _NotPlainError


def _number(value: Any) -> str:
    kind = type(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    raise _NotPlainError


def _record(value: Any, names: tuple[str, ...]) -> None:
    if _field_names(type(value)) != names:
        raise _NotPlainError


def _mappings(value: Any) -> str:
    texts = []
    for item in _items(value):
        _record(item, ("name", "source", "required"))
        texts.append(
            f'{{"name":{_string(item.name)},"required":{_boolean(item.required)}'
            f',"source":{_string(item.source)}}}'
        )
    return f"[{','.join(texts)}]"


def _retry(retry: Any) -> str:
    _record(retry, ("max_attempts", "backoff"))
    backoff = retry.backoff
    _record(backoff, ("initial", "factor", "max"))
    return (
        f'{{"backoff":{{"factor":{_number(backoff.factor)},"initial":{_number(backoff.initial)}'
        f',"max":{_number(backoff.max)}}},"max_attempts":{_integer(retry.max_attempts)}}}'
    )


def _on_completion(trigger: Any) -> str:
    success_only = trigger.success_only
    return (
        f'{{"on_completion":{{"stage":{_string(trigger.stage)}'
        f',"success_only":{"true" if success_only is True else _boolean(success_only)}}}}}'
    )


def _on_event(trigger: Any) -> str:
    found = trigger.filter
    return (
        f'{{"on_event":{{"filter":{"null" if found is None else _string(found)}'
        f',"type":{_string(trigger.type)}}}}}'
    )


def _on_condition(trigger: Any) -> str:
    return f'{{"on_condition":{{"expression":{_string(trigger.expression)}}}}}'


def _manual(trigger: Any) -> str:
    timeout = trigger.timeout
    return (
        f'{{"manual":{{"approval_required":{_boolean(trigger.approval_required)}'
        f',"timeout":{"null" if timeout is None else _number(timeout)}}}}}'
    )


#: Each trigger kind's field names and text; a trigger class is taken when both match.
_TRIGGER_FORMS: dict[tuple[str, tuple[str, ...] | None], Callable[[Any], str]] = {
    ("on_completion", ("stage", "success_only")): _on_completion,
    ("on_event", ("type", "filter")): _on_event,
    ("on_condition", ("expression",)): _on_condition,
    ("manual", ("approval_required", "timeout")): _manual,
}
#: The text function of each trigger class met (KeyError for one whose form is unknown).
_TRIGGER_TEXTS: dict[type, Callable[[Any], str]] = {}


def _trigger(trigger: Any) -> str:
    kind = type(trigger)
    text = _TRIGGER_TEXTS.get(kind)
    if text is None:
        form = (getattr(kind, "kind", None), _field_names(kind))
        text = _TRIGGER_TEXTS[kind] = _TRIGGER_FORMS.get(form, _not_plain)  # type: ignore[arg-type]
    return text(trigger)


def _not_plain(trigger: Any) -> str:
    raise _NotPlainError
