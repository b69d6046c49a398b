"""Immutable pipeline definitions: pipeline, stage, trigger, data mapping, retry policy.

These are plain frozen dataclasses: the loader (``config.py``) builds them from files, the engine
executes them, the renderers draw them. Everything here is pure and knows nothing of telemetry.

What makes a definition *valid* is ``validation.validate_pipeline``'s business, not this
module's: it depends on this module, never the reverse (a ``Pipeline`` does not validate itself
when built; whoever builds one calls the validator), so neither imports the other in a cycle
and nothing here re-exports it.

Dependency edges of the DAG come from two kinds of trigger:

* ``on_completion {stage}``: an edge ``stage -> this stage``;
* ``on_event {type}``: an edge from every stage that declares ``type`` in its ``emits``, since
  an event-triggered stage completes only once all its emitters have finished.

``on_condition`` and ``manual`` triggers add no edges.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from operator import methodcaller
from typing import ClassVar, TypeAlias

from taskdaemon.pipeline.frozen import field, frozen, lazy_maker
from taskdaemon.pipeline.record_fields import as_dict
from taskdaemon.pipeline.stage_payload import dumps, stage_json
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "BUILTIN_LOOPS",
    "FAN_OUT_OUTPUTS",
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


@frozen
class Backoff(ValueMethods):
    """Exponential backoff between attempts, in seconds."""

    initial: float = 1.0
    factor: float = 2.0
    max: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next."""
        return min(self.max, self.initial * self.factor ** (attempt - 1))


@frozen
class RetryPolicy(ValueMethods):
    """How many attempts a stage gets in all (1 = no retry) and how long to wait between them."""

    max_attempts: int = 1
    backoff: Backoff = field(default_factory=Backoff)


@frozen
class OnCompletion(ValueMethods):
    """Fires when ``stage`` finishes (only on success when ``success_only``)."""

    kind: ClassVar[str] = "on_completion"
    stage: str
    success_only: bool = True

    def describe(self) -> str:
        """A one-line human description, used in span attributes and renderers."""
        suffix = "" if self.success_only else " (any result)"
        return f"on completion of {self.stage}{suffix}"


@frozen
class OnEvent(ValueMethods):
    """Fires once per published event of ``type`` whose CEL ``filter`` (over ``event``) holds."""

    kind: ClassVar[str] = "on_event"
    type: str
    filter: str | None = None

    def describe(self) -> str:
        """A one-line human description, used in span attributes and renderers."""
        return f"on event {self.type}" + (f" if {self.filter}" if self.filter else "")


@frozen
class OnCondition(ValueMethods):
    """Fires when the CEL ``expression`` over the run context becomes true."""

    kind: ClassVar[str] = "on_condition"
    expression: str

    def describe(self) -> str:
        """A one-line human description, used in span attributes and renderers."""
        return f"on condition {self.expression}"


@frozen
class Manual(ValueMethods):
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


@frozen
class InputMapping(ValueMethods):
    """One stage input: ``name`` receives the value of the CEL expression ``source``."""

    name: str
    source: str
    required: bool = True


@frozen
class OutputMapping(ValueMethods):
    """One stage output: ``name`` receives the value of ``source`` (CEL over ``result``)."""

    name: str
    source: str
    required: bool = True


@frozen
class LoopDef(ValueMethods):
    """A loop type declared in the pipeline file: a Python ``handler`` or a shell ``command``."""

    name: str
    handler: str | None = None
    command: str | None = None


#: A stage with more than one instance has ``stages.X.outputs == {"instances": [the outputs of
#: each instance, in instance order]}`` (``engine/_dataflow.stage_outputs``): every key the
#: engine gives it, which ``validate`` knows beside the declared outputs.
FAN_OUT_OUTPUTS: tuple[str, ...] = ("instances",)


@frozen
class Stage(ValueMethods):
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
    def awaits_approval(self) -> bool:
        """True if the stage has a ``manual`` trigger that waits for an approval."""
        return any(isinstance(t, Manual) and t.approval_required for t in self.triggers)

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types that trigger this stage."""
        return tuple(t.type for t in self.triggers if isinstance(t, OnEvent))

    @property
    def provided_outputs(self) -> tuple[str, ...]:
        """The outputs the engine gives the stage beside its ``outputs:`` mapping: an
        ``on_event`` stage runs one instance per event, and with more than one its outputs
        are :data:`FAN_OUT_OUTPUTS` (whatever its ``parallel_instances``, which only bounds
        how many run at once)."""
        return FAN_OUT_OUTPUTS if self.event_types else ()


@frozen
class Edge(ValueMethods):
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


#: ``Pipeline.edges`` builds one ``Edge`` a dependency (a chain: one a stage), through its
#: maker, compiled when a pipeline's edges are first listed.
_make_edge = lazy_maker(Edge)


@frozen(slots=False)
class Pipeline(ValueMethods):
    """A validated pipeline definition. Build it with ``load_pipeline`` or ``Pipeline(...)``
    followed by ``validation.validate_pipeline``."""

    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    concurrency: int = 4
    timeout: float | None = None
    error_strategy: ErrorStrategy = ErrorStrategy.FAIL
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    loops: Mapping[str, LoopDef] = field(default_factory=dict)
    external_events: tuple[str, ...] = ()
    # The file it was loaded from, for messages; not part of the definition, so a YAML file and
    # its TOML twin load to equal pipelines.
    source: str | None = field(default=None, compare=False)

    @cached_property
    def stage_map(self) -> Mapping[str, Stage]:
        """Stages by name."""
        return {stage.name: stage for stage in self.stages}

    def stage(self, name: str) -> Stage:
        """The stage called ``name``; KeyError if there is none."""
        return self.stage_map[name]

    def runs_command(self, stage: Stage) -> bool:
        """Whether ``stage`` runs a shell command: the built-in ``command`` loop type, or one
        the file declares with a ``command`` and no ``handler`` (``loops.LoopRegistry`` resolves
        them so)."""
        if stage.loop == "command":
            return True
        declared = self.loops.get(stage.loop)
        return declared is not None and not declared.handler and bool(declared.command)

    def effective_timeout(self, stage: Stage) -> float | None:
        """Seconds a stage attempt may run: the stage's timeout, else the pipeline's, else None."""
        return stage.timeout if stage.timeout is not None else self.timeout

    def effective_retry(self, stage: Stage) -> RetryPolicy:
        """The stage's retry policy, else the pipeline's."""
        return stage.retry if stage.retry is not None else self.retry

    @cached_property
    def edges(self) -> tuple[Edge, ...]:
        """Every dependency edge, in stage then trigger order."""
        emitters: dict[str, list[str]] = {}
        for stage in self.stages:
            for event_type in stage.emits:
                emitters.setdefault(event_type, []).append(stage.name)
        edges: list[Edge] = []
        make_edge = _make_edge()
        for stage in self.stages:
            for trigger in stage.triggers:
                if isinstance(trigger, OnCompletion):
                    edges.append(make_edge(trigger.stage, stage.name, trigger))
                elif isinstance(trigger, OnEvent):
                    edges.extend(
                        make_edge(emitter, stage.name, trigger)
                        for emitter in emitters.get(trigger.type, ())
                        if emitter != stage.name
                    )
        return tuple(edges)

    @cached_property
    def upstream(self) -> Mapping[str, tuple[str, ...]]:
        """For each stage, the distinct stages it depends on."""
        # Dicts as ordered sets: a membership test in a list made 40,000 fan-in edges quadratic.
        result: dict[str, dict[str, None]] = {stage.name: {} for stage in self.stages}
        for edge in self.edges:
            if edge.source in result:
                result[edge.target][edge.source] = None
        return {name: tuple(sources) for name, sources in result.items()}

    @cached_property
    def downstream(self) -> Mapping[str, tuple[str, ...]]:
        """For each stage, the distinct stages that depend on it."""
        # Dicts as ordered sets: a membership test in a list made 40,000 fan-out edges quadratic.
        result: dict[str, dict[str, None]] = {stage.name: {} for stage in self.stages}
        for edge in self.edges:
            if edge.source in result:
                result[edge.source][edge.target] = None
        return {name: tuple(targets) for name, targets in result.items()}

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """Stage names with every stage after its upstream stages (stable: file order breaks ties).

        Raises ValueError on a cycle; ``validation.validate_pipeline`` reports cycles with their
        path first.
        """
        # A heap keyed by file position: the same order as "always take the earliest ready
        # stage", in O(E + V log V) instead of re-sorting the ready list after every pop.
        upstream = self.upstream
        position = {stage.name: i for i, stage in enumerate(self.stages)}
        if len(position) == len(self.stages) and all(
            position[source] < index
            for index, name in enumerate(position)
            for source in upstream[name]
        ):
            # Every stage after its upstream stages in the file (most files): the earliest
            # ready stage is always the next one, so the order is the file's.
            return tuple(position)
        remaining = {name: len(sources) for name, sources in upstream.items()}
        names = {i: name for name, i in position.items()}
        order: list[str] = []
        ready = [position[name] for name, count in remaining.items() if count == 0]
        heapq.heapify(ready)
        while ready:
            name = names[heapq.heappop(ready)]
            order.append(name)
            for target in self.downstream[name]:
                remaining[target] -= 1
                if remaining[target] == 0:
                    heapq.heappush(ready, position[target])
        if len(order) != len(self.stage_map):
            raise ValueError(f"pipeline {self.name!r} has a cycle")
        return tuple(order)

    @cached_property
    def trigger_descriptions(self) -> tuple[tuple[str, ...], ...]:
        """Each stage's triggers' ``describe()``, in stage and trigger order. The trigger plan
        and the monitor's stage attributes both show them: made once per definition, not once
        by each (a definition of thousands of stages pays them per stage)."""
        describe = methodcaller("describe")
        # The usual stage has one trigger: its description in a tuple, without a ``map``.
        return tuple(
            [
                (stage.triggers[0].describe(),)
                if len(stage.triggers) == 1
                else tuple(map(describe, stage.triggers))
                for stage in self.stages
            ]
        )

    @cached_property
    def definition_hash(self) -> str:
        """sha256 (hex) of ``canonical_json``: equal definitions, equal hashes."""
        import hashlib  # noqa: PLC0415 - OpenSSL's start-up, paid only when a hash is asked

        return hashlib.sha256(self.canonical_json.encode()).hexdigest()

    @cached_property
    def canonical_json(self) -> str:
        """The definition as canonical JSON (sorted keys, compact): what a run span records
        and ``taskdaemon.pipeline.definition.pipeline_from_canonical`` reads back."""
        # Every key but ``stages`` and ``timeout`` sorts before them: the text of the rest,
        # then the stages' texts (``stage_json``, the bulk), then the timeout, is the text of
        # the whole payload (``tests/pipeline_stage_payload_json_test.py`` holds it to the
        # old code's texts).
        head = {
            "name": self.name,
            "description": self.description,
            "concurrency": self.concurrency,
            "error_strategy": str(self.error_strategy),
            "retry": as_dict(self.retry),
            "loops": {name: as_dict(loop) for name, loop in sorted(self.loops.items())},
            "external_events": list(self.external_events),
        }
        stages = ",".join([stage_json(stage) for stage in self.stages])
        return f'{dumps(head)[:-1]},"stages":[{stages}],"timeout":{dumps(self.timeout)}}}'
