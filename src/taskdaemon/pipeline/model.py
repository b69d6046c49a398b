"""Immutable pipeline definitions: pipeline, stage, trigger, data mapping, retry policy.

These are plain frozen dataclasses: the loader (``config.py``) builds them from files, the engine
executes them, the renderers draw them. Everything here is pure and knows nothing of telemetry.

Dependency edges of the DAG come from two kinds of trigger:

* ``on_completion {stage}``: an edge ``stage -> this stage``;
* ``on_event {type}``: an edge from every stage that declares ``type`` in its ``emits``, since
  an event-triggered stage completes only once all its emitters have finished.

``on_condition`` and ``manual`` triggers add no edges.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import ClassVar, TypeAlias

__all__ = [
    "BUILTIN_LOOPS",
    "Backoff",
    "Edge",
    "ErrorStrategy",
    "InputMapping",
    "LoopDef",
    "Manual",
    "OnCompletion",
    "OnCondition",
    "OnEvent",
    "OutputMapping",
    "Pipeline",
    "RetryPolicy",
    "Stage",
    "Trigger",
    "TriggerMode",
]

BUILTIN_LOOPS = frozenset({"python", "command"})


class ErrorStrategy(StrEnum):
    """What a failed stage does to its run."""

    FAIL = "fail"  # stop the run: cancel what runs, skip what has not started
    RETRY = "retry"  # retry the stage per its RetryPolicy, then fail the run
    CONTINUE = "continue"  # mark the stage failed, run everything that does not depend on it


class TriggerMode(StrEnum):
    """How several triggers of one stage combine."""

    ANY = "any"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between attempts, in seconds."""

    initial: float = 1.0
    factor: float = 2.0
    max: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next."""
        return min(self.max, self.initial * self.factor ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a stage gets in all (1 = no retry) and how long to wait between them."""

    max_attempts: int = 1
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True, slots=True)
class OnCompletion:
    """Fires when ``stage`` finishes (only on success when ``success_only``)."""

    kind: ClassVar[str] = "on_completion"
    stage: str
    success_only: bool = True

    def describe(self) -> str:
        """A one-line human description, used in span attributes and renderers."""
        suffix = "" if self.success_only else " (any result)"
        return f"on completion of {self.stage}{suffix}"


@dataclass(frozen=True, slots=True)
class OnEvent:
    """Fires once per published event of ``type`` whose CEL ``filter`` (over ``event``) holds."""

    kind: ClassVar[str] = "on_event"
    type: str
    filter: str | None = None

    def describe(self) -> str:
        """A one-line human description, used in span attributes and renderers."""
        return f"on event {self.type}" + (f" if {self.filter}" if self.filter else "")


@dataclass(frozen=True, slots=True)
class OnCondition:
    """Fires when the CEL ``expression`` over the run context becomes true."""

    kind: ClassVar[str] = "on_condition"
    expression: str

    def describe(self) -> str:
        """A one-line human description, used in span attributes and renderers."""
        return f"on condition {self.expression}"


@dataclass(frozen=True, slots=True)
class Manual:
    """``approval_required=False``: an entry stage; ``True``: waits for an approval."""

    kind: ClassVar[str] = "manual"
    approval_required: bool = False
    timeout: float | None = None

    def describe(self) -> str:
        """A one-line human description, used in span attributes and renderers."""
        if not self.approval_required:
            return "on run start"
        return "manual approval" + (f" (timeout {self.timeout:g}s)" if self.timeout else "")


Trigger: TypeAlias = OnCompletion | OnEvent | OnCondition | Manual


@dataclass(frozen=True, slots=True)
class InputMapping:
    """One stage input: ``name`` receives the value of the CEL expression ``source``."""

    name: str
    source: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class OutputMapping:
    """One stage output: ``name`` receives the value of ``source`` (CEL over ``result``)."""

    name: str
    source: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class LoopDef:
    """A loop type declared in the pipeline file: a Python ``handler`` or a shell ``command``."""

    name: str
    handler: str | None = None
    command: str | None = None


@dataclass(frozen=True, slots=True)
class Stage:
    """One node of the DAG."""

    name: str
    loop: str
    triggers: tuple[Trigger, ...]
    trigger_mode: TriggerMode = TriggerMode.ANY
    inputs: tuple[InputMapping, ...] = ()
    outputs: tuple[OutputMapping, ...] | None = None
    parallel_instances: int = 1
    timeout: float | None = None
    retry: RetryPolicy | None = None
    emits: tuple[str, ...] = ()
    command: str | None = None
    handler: str | None = None
    description: str = ""

    @property
    def is_entry(self) -> bool:
        """True if the stage starts with the run (a ``manual`` trigger without approval)."""
        return any(isinstance(t, Manual) and not t.approval_required for t in self.triggers)

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types that trigger this stage."""
        return tuple(t.type for t in self.triggers if isinstance(t, OnEvent))


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency edge of the DAG and the trigger that makes it."""

    source: str
    target: str
    trigger: OnCompletion | OnEvent

    @property
    def label(self) -> str:
        """The edge label of the DOT format: ``on completion`` or ``on event\\n<type>``."""
        if isinstance(self.trigger, OnEvent):
            return f"on event\n{self.trigger.type}"
        return "on completion" if self.trigger.success_only else "on completion\n(any result)"


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline definition. Build it with ``load_pipeline`` or ``Pipeline(...)``
    followed by ``validate_pipeline``."""

    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    concurrency: int = 4
    timeout: float | None = None
    error_strategy: ErrorStrategy = ErrorStrategy.FAIL
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    loops: Mapping[str, LoopDef] = field(default_factory=dict)
    external_events: tuple[str, ...] = ()
    source: str | None = None  # the file it was loaded from, for messages

    @cached_property
    def stage_map(self) -> Mapping[str, Stage]:
        """Stages by name."""
        return {stage.name: stage for stage in self.stages}

    def stage(self, name: str) -> Stage:
        """The stage called ``name``; KeyError if there is none."""
        return self.stage_map[name]

    @cached_property
    def edges(self) -> tuple[Edge, ...]:
        """Every dependency edge, in stage then trigger order."""
        emitters: dict[str, list[str]] = {}
        for stage in self.stages:
            for event_type in stage.emits:
                emitters.setdefault(event_type, []).append(stage.name)
        edges: list[Edge] = []
        for stage in self.stages:
            for trigger in stage.triggers:
                if isinstance(trigger, OnCompletion):
                    edges.append(Edge(trigger.stage, stage.name, trigger))
                elif isinstance(trigger, OnEvent):
                    edges.extend(
                        Edge(emitter, stage.name, trigger)
                        for emitter in emitters.get(trigger.type, ())
                        if emitter != stage.name
                    )
        return tuple(edges)

    @cached_property
    def upstream(self) -> Mapping[str, tuple[str, ...]]:
        """For each stage, the distinct stages it depends on."""
        result: dict[str, list[str]] = {stage.name: [] for stage in self.stages}
        for edge in self.edges:
            if edge.source in result and edge.source not in result[edge.target]:
                result[edge.target].append(edge.source)
        return {name: tuple(sources) for name, sources in result.items()}

    @cached_property
    def downstream(self) -> Mapping[str, tuple[str, ...]]:
        """For each stage, the distinct stages that depend on it."""
        result: dict[str, list[str]] = {stage.name: [] for stage in self.stages}
        for edge in self.edges:
            if edge.source in result and edge.target not in result[edge.source]:
                result[edge.source].append(edge.target)
        return {name: tuple(targets) for name, targets in result.items()}

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """Stage names with every stage after its upstream stages (stable: file order breaks ties).

        Raises ValueError on a cycle; ``validate_pipeline`` reports cycles with their path first.
        """
        remaining = {name: len(sources) for name, sources in self.upstream.items()}
        order: list[str] = []
        ready = [stage.name for stage in self.stages if remaining[stage.name] == 0]
        position = {stage.name: i for i, stage in enumerate(self.stages)}
        while ready:
            name = ready.pop(0)
            order.append(name)
            released = []
            for target in self.downstream[name]:
                remaining[target] -= 1
                if remaining[target] == 0:
                    released.append(target)
            ready.extend(released)
            ready.sort(key=position.__getitem__)
        if len(order) != len(self.stages):
            raise ValueError(f"pipeline {self.name!r} has a cycle")
        return tuple(order)

    @cached_property
    def definition_hash(self) -> str:
        """sha256 (hex) of the definition's canonical JSON: equal definitions, equal hashes."""
        payload = {
            "name": self.name,
            "description": self.description,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "error_strategy": str(self.error_strategy),
            "retry": asdict(self.retry),
            "loops": {name: asdict(loop) for name, loop in sorted(self.loops.items())},
            "external_events": list(self.external_events),
            "stages": [_stage_payload(stage) for stage in self.stages],
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _stage_payload(stage: Stage) -> dict[str, object]:
    payload = asdict(stage)
    payload["triggers"] = [{t.kind: asdict(t)} for t in stage.triggers]
    return payload
