"""A trigger list item read in one pass when it has no mistake (the pipeline loader's common case).

``config_reader.ConfigReader.trigger`` checks every field of a trigger through its typed
accessors, each a call with its own field path, so that a wrong trigger gets one issue per
mistake. Nearly every trigger of a real file is right, and a chain of N stages has N of them.
:func:`quick_trigger` reads such an item with a few type tests and no path, and answers None for
anything it does not accept without doubt; the reader then reads that item again the thorough
way, which finds the same trigger or words the issues. So the quick test may refuse too much (a
duration written as text, which only the reader parses), never too little: it accepts exactly
the values the reader would take without an issue, and builds the trigger the reader would
build from them.
"""

from __future__ import annotations

from typing import Any, Final, TypeGuard

from taskdaemon.pipeline.frozen import lazy_maker
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, OnEvent, Trigger

__all__ = ["TRIGGER_KEYS", "quick_trigger"]

#: Each trigger kind and the keys of its body, in the order the reader's messages list them.
TRIGGER_KEYS: Final = {
    "on_completion": ("stage", "success_only"),
    "on_event": ("type", "filter"),
    "on_condition": ("expression",),
    "manual": ("approval_required", "timeout"),
}
_BODY_KEYS: Final = {kind: frozenset(keys) for kind, keys in TRIGGER_KEYS.items()}


def quick_trigger(item: Any) -> Trigger | None:
    """The trigger that the list item ``item`` describes if the reader would take it without an
    issue; None when in doubt (the reader then reads it, see the module docstring)."""
    if type(item) is not dict or len(item) != 1:
        return None
    (kind,) = item  # its one key
    body = item[kind]
    if kind == "on_completion" and type(body) is dict and len(body) == 1:
        # ``{stage: NAME}``, the most common trigger of all: no look-ups beyond its one key.
        stage = body.get("stage")
        if type(stage) is str and stage.strip():
            return _make_on_completion()(stage, True)
    if body is None and kind == "manual":
        body = {}
    allowed = _BODY_KEYS.get(kind)
    if allowed is None or type(body) is not dict or not body.keys() <= allowed:
        return None
    get = body.get
    if kind == "on_completion":
        stage, success_only = get("stage"), get("success_only")
        if _is_name(stage) and (success_only is None or isinstance(success_only, bool)):
            return _make_on_completion()(stage, True if success_only is None else success_only)
    elif kind == "on_event":
        event_type, event_filter = get("type"), get("filter")
        if _is_name(event_type) and (event_filter is None or isinstance(event_filter, str)):
            return OnEvent(event_type, event_filter)
    elif kind == "on_condition":
        expression = get("expression")
        if isinstance(expression, str):
            return OnCondition(expression)
    else:
        approval = get("approval_required")
        if get("timeout") is None and (approval is None or isinstance(approval, bool)):
            return Manual(approval_required=bool(approval))
    return None


#: A chain's file has one ``{stage: NAME}`` trigger a stage: built through its maker,
#: compiled at the first such trigger read.
_make_on_completion = lazy_maker(OnCompletion)


def _is_name(value: Any) -> TypeGuard[str]:
    """A non-empty string, as the reader's ``name`` accessor takes it."""
    return isinstance(value, str) and bool(value.strip())
