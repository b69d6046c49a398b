"""A pipeline definition read back from its canonical JSON (``Pipeline.canonical_json``).

A run span records the definition it ran as canonical JSON, and its sha256 as
``taskdaemon.pipeline.definition_hash``; replay rebuilds the ``Pipeline`` from that text alone
(docs/architecture.md, "Telemetry schema"). ``pipeline_from_canonical`` is the exact inverse of
``Pipeline.canonical_json``: ``pipeline_from_canonical(p.canonical_json) == p``, so the rebuilt
definition hashes to the recorded hash, which is how a cut or altered text is detected.

``definition_changes`` says how two definitions differ, stage by stage, for a replay run with
a file that is not the recorded definition.

Pure: imports only the model, its validator (``validation``) and ``finite_number``. Errors are
``ValueError`` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from taskdaemon.pipeline.finite_number import is_finite_number
from taskdaemon.pipeline.model import (
    Backoff,
    ErrorStrategy,
    InputMapping,
    LoopDef,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    OutputMapping,
    Pipeline,
    RetryPolicy,
    Stage,
    Trigger,
    TriggerMode,
)
from taskdaemon.pipeline.validation import validate_pipeline

__all__ = ["DefinitionChanges", "definition_changes", "pipeline_from_canonical", "sha256_text"]


def sha256_text(text: str) -> str:
    """The hex sha256 of ``text`` as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# A field of the wrong type is refused here, where the text is read: the records do not check
# their types, and a name that is a number, or a timeout that is a string, would make a drawing
# of the definition a traceback (a crafted span store can record any text with its hash).


def _text(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _text(value)


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if not is_finite_number(value):
        raise TypeError(f"expected a finite number, got {value!r:.40}")
    return value


def _number_or_none(value: Any) -> float | None:
    return None if value is None else _number(value)


def _retry(data: Any) -> RetryPolicy:
    backoff = data["backoff"]
    return RetryPolicy(
        max_attempts=int(_number(data["max_attempts"])),
        backoff=Backoff(
            initial=_number(backoff["initial"]),
            factor=_number(backoff["factor"]),
            max=_number(backoff["max"]),
        ),
    )


def _trigger(data: Mapping[str, Any]) -> Trigger:
    ((kind, body),) = data.items()
    if kind == "on_completion":
        return OnCompletion(_text(body["stage"]), _flag(body["success_only"]))
    if kind == "on_event":
        return OnEvent(_text(body["type"]), _text_or_none(body["filter"]))
    if kind == "on_condition":
        return OnCondition(_text(body["expression"]))
    if kind == "manual":
        return Manual(_flag(body["approval_required"]), _number_or_none(body["timeout"]))
    raise ValueError(f"unknown trigger kind {kind!r}")


#: ``TriggerMode(value)`` as a dict: the enum's call is a tenth of building a stage.
_TRIGGER_MODES: dict[str, TriggerMode] = {mode.value: mode for mode in TriggerMode}


def _stage(data: Mapping[str, Any]) -> Stage:
    outputs = data["outputs"]
    return Stage(
        name=_text(data["name"]),
        loop=_text(data["loop"]),
        triggers=tuple([_trigger(t) for t in data["triggers"]]),
        trigger_mode=_TRIGGER_MODES[data["trigger_mode"]],
        inputs=tuple(
            [
                InputMapping(_text(i["name"]), _text(i["source"]), _flag(i["required"]))
                for i in data["inputs"]
            ]
        ),
        outputs=None
        if outputs is None
        else tuple(
            [
                OutputMapping(_text(o["name"]), _text(o["source"]), _flag(o["required"]))
                for o in outputs
            ]
        ),
        parallel_instances=int(_number(data["parallel_instances"])),
        timeout=_number_or_none(data["timeout"]),
        retry=None if data["retry"] is None else _retry(data["retry"]),
        emits=tuple([_text(event_type) for event_type in data["emits"]]),
        command=_text_or_none(data["command"]),
        handler=_text_or_none(data["handler"]),
        description=_text(data["description"]),
    )


def pipeline_from_canonical(
    text: str | Mapping[str, Any], *, source: str | None = None, ran: bool = False
) -> Pipeline:
    """The ``Pipeline`` whose ``canonical_json`` is ``text``, validated: as a file's
    definition, or, when ``ran``, as one a run recorded (``validate_pipeline(ran=True)``: the
    structure every pipeline the engine ran obeys, not the rules of a file that a pipeline built
    in code need not follow). The hash a caller checked ``text`` against proves nothing:
    whoever wrote the span store or the backend's answer wrote the hash too. ``text`` may also
    be that JSON already parsed, so a caller that parsed it to check it does not parse it twice
    (a 1,000-stage definition is about 260 KB).

    ``ValueError`` (one line) when ``text`` is not such a document (cut, edited, from a newer
    taskdaemon, or a field of another type than the model's) or the definition it holds is
    invalid.
    """
    try:
        data = orjson.loads(text) if isinstance(text, str) else text
        pipeline = Pipeline(
            name=_text(data["name"]),
            stages=tuple([_stage(s) for s in data["stages"]]),
            description=_text(data["description"]),
            concurrency=int(_number(data["concurrency"])),
            timeout=_number_or_none(data["timeout"]),
            error_strategy=ErrorStrategy(data["error_strategy"]),
            retry=_retry(data["retry"]),
            loops={
                name: LoopDef(
                    _text(name), _text_or_none(loop["handler"]), _text_or_none(loop["command"])
                )
                for name, loop in data["loops"].items()
            },
            external_events=tuple([_text(event_type) for event_type in data["external_events"]]),
            source=source,
        )
    except orjson.JSONDecodeError as error:
        raise ValueError(f"the recorded definition is not JSON ({error.msg})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        reason = f"the recorded definition is not a taskdaemon definition ({error!r})"
        raise ValueError(reason) from None
    issues = validate_pipeline(pipeline, registered_loops=_loops_used(pipeline), ran=ran)
    if issues:
        raise ValueError(f"the recorded definition is invalid: {issues[0]}")
    return pipeline


def _loops_used(pipeline: Pipeline) -> frozenset[str]:
    # The original run resolved every loop type it used; replay resolves them again later.
    return frozenset(stage.loop for stage in pipeline.stages)


@dataclass(frozen=True, slots=True)
class DefinitionChanges:
    """How a definition differs from a recorded one: stage names added, removed and changed
    (same name, other definition), and top-level fields changed (``concurrency``, …)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        """True when the definitions differ at all."""
        return bool(self.added or self.removed or self.changed or self.fields)

    def describe(self) -> str:
        """One line: ``stages added: x; removed: y; changed: z; fields changed: w``."""
        parts = []
        for label, names in (
            ("stages added", self.added),
            ("stages removed", self.removed),
            ("stages changed", self.changed),
            ("fields changed", self.fields),
        ):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return "; ".join(parts) or "no difference"


def definition_changes(recorded: Pipeline, other: Pipeline) -> DefinitionChanges:
    """What changes from ``recorded`` to ``other`` (compared through their canonical JSON)."""
    old = json.loads(recorded.canonical_json)
    new = json.loads(other.canonical_json)
    old_stages = {s["name"]: s for s in old.pop("stages")}
    new_stages = {s["name"]: s for s in new.pop("stages")}
    return DefinitionChanges(
        added=tuple(name for name in new_stages if name not in old_stages),
        removed=tuple(name for name in old_stages if name not in new_stages),
        changed=tuple(
            name
            for name, stage in new_stages.items()
            if name in old_stages and old_stages[name] != stage
        ),
        fields=tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))),
    )
