"""The one data model every renderer draws: a frozen snapshot of the DAG with its state overlay.

``dag_snapshot(pipeline, run)`` merges a definition (``model.Pipeline``) with a run rebuilt from
spans (``records.RunRecord``); either may be absent. With only a run, the DAG comes from the
record's stages and edges alone, with the triggers the record carries (``StageRecord.
trigger_specs``); a record that has only trigger descriptions (spans of
schema 1 and 2, records built by hand) has them read back by
``telemetry_codec.trigger_from_description``. With both, the definition gives the shape and the
run gives the states; stages or edges only the run knows (the definition changed since) are
kept, after the definition's.

Nodes hold the run's ``AttemptRecord`` objects and the snapshot its ``RunRecord``: renderers read
the records, there is no render copy of them. The definition's texts come redacted from
``_definition_texts``, once per definition rather than once per snapshot of a served run.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter

from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.ellipsis import cut_line
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.model import OnEvent, Pipeline, Stage, TriggerMode
from taskdaemon.pipeline.records import (
    AttemptRecord,
    EdgeRecord,
    PausedBeforeStart,
    RunRecord,
    StageRecord,
    TriggerRecord,
    stage_error,
)
from taskdaemon.pipeline.telemetry import STATUS_REPLAYED
from taskdaemon.pipeline.telemetry_codec import trigger_from_description
from taskdaemon.pipeline.value_methods import ValueMethods
from taskdaemon.pipeline.visualization._definition_texts import definition_texts

__all__ = [
    "STATES",
    "DagEdge",
    "DagGate",
    "DagNode",
    "DagSnapshot",
    "DagTrigger",
    "dag_snapshot",
    "format_duration",
    "gates",
    "title_case",
]

#: Every state a node can show, in legend order, with its fill colour (X11 names, so DOT stays
#: readable; Mermaid uses the same colours). Running is green as the DOT contract says, so
#: success takes a muted sea green to stay distinct from it.
STATES: dict[str, str] = {
    "pending": "white",
    "waiting": "lightyellow",
    "queued": "lightskyblue",
    "running": "green",
    "retrying": "gold",
    "paused": "orchid",
    "success": "darkseagreen",
    "failure": "tomato",
    "timeout": "orange",
    "cancelled": "grey70",
    "skipped": "grey90",
    "interrupted": "plum",
    "replayed": "lightcyan",  # fed from a recorded run by a replay
}

#: Hex values of ``STATES`` for renderers without X11 colour names (Mermaid, web pages).
STATE_HEX: dict[str, str] = {
    "white": "#ffffff",
    "lightyellow": "#ffffe0",
    "lightskyblue": "#87cefa",
    "green": "#00ff00",
    "gold": "#ffd700",
    "orchid": "#da70d6",
    "darkseagreen": "#8fbc8f",
    "tomato": "#ff6347",
    "orange": "#ffa500",
    "grey70": "#b3b3b3",
    "grey90": "#e5e5e5",
    "plum": "#dda0dd",
    "lightcyan": "#e0ffff",
}

_WORD_SPLIT = re.compile(r"[_-]+")
_SLUG = re.compile(r"[\w.-]+")


def title_case(name: str) -> str:
    """``feature_delivery`` or ``feature-delivery`` → ``Feature Delivery``.

    Only identifier-like names (letters, digits, ``_ . -``) are title-cased; any other name is
    shown as written, since its dashes or spaces are not word separators (``a -> b``).
    """
    if not _SLUG.fullmatch(name):
        return name
    words = [word for word in _WORD_SPLIT.split(name) if word]
    return " ".join(word[:1].upper() + word[1:] for word in words) or name


def wrap(text: str, width: int = 40, max_lines: int = 3) -> str:
    """``text`` folded at spaces into at most ``max_lines`` lines of about ``width`` characters
    (an ellipsis ends a cut text): expressions stay readable in a label without widening it."""
    lines = textwrap.wrap(
        " ".join(text.split()),
        width,
        max_lines=max_lines,
        placeholder=" …",
        break_on_hyphens=False,
        break_long_words=False,
    )
    return "\n".join(lines)


#: One trigger of a node: the records' trigger type (only the fields of its ``kind`` are set).
DagTrigger = TriggerRecord


@frozen
class DagNode(ValueMethods):
    """A stage. ``state`` is None without a run overlay; timings aggregate its attempts:
    ``start`` is the first attempt's start, ``end`` the last end once every attempt ended."""

    name: str
    title: str
    loop: str
    triggers: tuple[DagTrigger, ...]
    trigger_mode: str | None = TriggerMode.ANY.value  # None: unknown (spans from elsewhere)
    parallel_instances: int | None = None
    description: str = ""
    state: str | None = None
    attempts: tuple[AttemptRecord, ...] = ()  # in start order
    start: float | None = None
    end: float | None = None
    skip_reason: str | None = None
    cancel_reason: str | None = None  # why a stop of the run cancelled or skipped the stage
    cancel_cause: str | None = None  # the stage whose failure stopped the run
    # Positions in ``triggers`` of those found holding before the stage started (the run's
    # ``StageRecord.triggers_held``): what it no longer waits for.
    triggers_held: tuple[int, ...] = ()
    # Its executions paused now before their start (``StageRecord.paused_before_start``): they
    # have no attempt, and a view drawing a row per attempt draws one for each of them too.
    paused_before_start: tuple[PausedBeforeStart, ...] = ()

    @property
    def fed(self) -> bool:
        """Whether a replay fed the stage from its record (its attempts are ``replayed``): its
        handler did not run, and its stand-in's times are its wait in the replay."""
        return bool(self.attempts) and all(a.status == STATUS_REPLAYED for a in self.attempts)

    @property
    def duration(self) -> float | None:
        """Wall-clock seconds from the first start to the last end, None while open and for a
        fed stage, which has no duration of its own (``runs show`` reads ``-`` for it too)."""
        if self.start is None or self.end is None or self.fed:
            return None
        return max(0.0, self.end - self.start)

    @property
    def instances(self) -> int:
        """How many distinct instances ran."""
        return len({attempt.instance for attempt in self.attempts})

    @property
    def retries(self) -> int:
        """Attempts beyond the first of each instance."""
        return len(self.attempts) - self.instances

    @property
    def queue_time(self) -> float | None:
        """Seconds the attempts that ran spent waiting for a worker slot, None if none was
        recorded."""
        ran = [a for a in self.attempts if a.status != STATUS_REPLAYED]  # as ``duration``
        values = [a.queue_time for a in ran if a.queue_time is not None]
        return sum(values) if values else None

    @property
    def trigger_wait(self) -> float | None:
        """Trigger wait of the first attempt."""
        return self.attempts[0].trigger_wait if self.attempts else None

    @property
    def error(self) -> str | None:
        """The error of the stage's outcome: the last error of an instance whose final attempt
        failed (errors of attempts that a retry made good do not count), or why a stop
        cancelled it before it started (``records.stage_error``)."""
        return stage_error(self.state, self.attempts, self.cancel_reason)


@frozen
class DagEdge(ValueMethods):
    """A dependency edge: ``label`` is the DOT-contract label (``Edge.label``)."""

    source: str
    target: str
    trigger: str  # on_completion | on_event
    label: str
    description: str = ""
    event_type: str | None = None
    filter: str | None = None
    success_only: bool | None = None


@frozen
class DagSnapshot(ValueMethods):
    """The DAG (nodes in definition order, edges in definition order) and its run overlay."""

    pipeline: str
    nodes: tuple[DagNode, ...]
    edges: tuple[DagEdge, ...]
    description: str = ""
    definition: Pipeline | None = None  # the parsed definition, when drawn from one
    run: RunRecord | None = None  # the overlaid run

    @property
    def definition_hash(self) -> str | None:
        """The definition's hash (the parsed file's, else the run's): computed when a format
        shows it, so drawing DOT or Mermaid from a file needs no canonical JSON nor hashlib."""
        if self.definition is not None:
            return self.definition.definition_hash
        return self.run.definition_hash if self.run is not None else None

    def node(self, name: str) -> DagNode:
        """The node called ``name``; KeyError if there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


@frozen
class DagGate(ValueMethods):
    """A trigger source that is not a stage, drawn as a pseudo-node pointing at its stage:
    a CEL condition, a manual approval, or an event published from outside the run."""

    stage: str
    index: int  # position of the trigger in the stage's triggers
    kind: str  # condition | approval | external_event
    label: str  # the pseudo-node's text
    edge_label: str
    description: str


def gates(snapshot: DagSnapshot) -> tuple[DagGate, ...]:
    """The pseudo-nodes of ``snapshot``, in node then trigger order.

    Entry triggers (``manual`` without approval) get none: an entry stage simply has no inbound
    edge. An ``on_event`` trigger gets an ``external_event`` gate only when no stage emits its
    type (no edge brings it), since then the event can only come from outside the run.
    """
    fed = {(edge.target, edge.event_type) for edge in snapshot.edges if edge.trigger == "on_event"}
    result: list[DagGate] = []
    for node in snapshot.nodes:
        for index, trigger in enumerate(node.triggers):
            if trigger.kind == "on_condition" and trigger.expression is not None:
                result.append(
                    DagGate(
                        node.name,
                        index,
                        "condition",
                        f"condition\n{wrap(trigger.expression)}",
                        "on condition",
                        trigger.description,
                    )
                )
            elif trigger.kind == "manual" and trigger.approval_required:
                label = "manual approval"
                if trigger.timeout:
                    label += f"\ntimeout {format_duration(trigger.timeout)}"
                result.append(
                    DagGate(node.name, index, "approval", label, "approval", trigger.description)
                )
            elif trigger.kind == "on_event" and (node.name, trigger.event_type) not in fed:
                result.append(
                    DagGate(
                        node.name,
                        index,
                        "external_event",
                        f"external event\n{trigger.event_type}",
                        _event_label(trigger.event_type or "", trigger.filter),
                        trigger.description,
                    )
                )
    return tuple(result)


def _event_label(event_type: str, filter_: str | None) -> str:
    label = f"on event\n{event_type}"
    return label + (f"\n{wrap('if ' + filter_)}" if filter_ else "")


def edge_text(edge: DagEdge) -> str:
    """The label renderers draw on an edge: the contract label plus the event filter, if any."""
    return edge.label + (f"\n{wrap('if ' + edge.filter)}" if edge.filter else "")


def dag_snapshot(pipeline: Pipeline | None = None, run: RunRecord | None = None) -> DagSnapshot:
    """Merge a definition and/or a run record into one snapshot (at least one is required)."""
    if pipeline is None and run is None:
        raise ValueError("dag_snapshot needs a pipeline, a run record, or both")
    records = {stage.name: stage for stage in run.stages} if run is not None else {}
    nodes: list[DagNode] = []
    edges: list[DagEdge] = []
    texts = None
    if pipeline is not None:
        texts = definition_texts(pipeline)
        nodes.extend(
            _node_from_stage(stage, records.get(stage.name), triggers, description)
            for stage, triggers, description in zip(
                pipeline.stages, texts.triggers, texts.descriptions, strict=True
            )
        )
        edges.extend(
            _edge_from_trigger(edge.source, edge.target, trigger, edge.label)
            for edge, trigger in zip(pipeline.edges, texts.edge_triggers, strict=True)
        )
    if run is not None:
        known = {node.name for node in nodes}
        nodes.extend(_node_from_record(record) for record in run.stages if record.name not in known)
        by_name = {node.name: node for node in nodes}
        seen = {(edge.source, edge.target, edge.label) for edge in edges}
        for record_edge in run.edges:
            key = (record_edge.source, record_edge.target, record_edge.label)
            if key not in seen:
                seen.add(key)
                edges.append(_edge_from_record(record_edge, by_name.get(record_edge.target)))
    names = {node.name for node in nodes}
    for edge in edges:
        for name in (edge.source, edge.target):
            if name not in names:
                names.add(name)
                nodes.append(DagNode(name=name, title=title_case(name), loop="", triggers=()))
    if run is not None:
        # A stage the run has not reached yet (or whose span never got written) is pending.
        nodes = [node if node.state is not None else _with_state(node, "pending") for node in nodes]
    return DagSnapshot(
        pipeline=pipeline.name if pipeline is not None else run.pipeline if run else "",
        nodes=tuple(nodes),
        edges=tuple(edges),
        description=texts.description if texts is not None else "",
        definition=pipeline,
        run=run,
    )


def _with_state(node: DagNode, state: str) -> DagNode:
    return DagNode(
        name=node.name,
        title=node.title,
        loop=node.loop,
        triggers=node.triggers,
        trigger_mode=node.trigger_mode,
        parallel_instances=node.parallel_instances,
        description=node.description,
        state=state,
    )


def _attempts(record: StageRecord | None) -> tuple[AttemptRecord, ...]:
    if record is None:
        return ()
    return tuple(sorted(record.attempts, key=lambda a: (a.start, a.instance, a.attempt)))


def _timing(attempts: tuple[AttemptRecord, ...]) -> tuple[float | None, float | None]:
    if not attempts:
        return None, None
    start = min(a.start for a in attempts)
    ends = [a.end for a in attempts]
    end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
    return start, end


def _node_from_stage(
    stage: Stage, record: StageRecord | None, triggers: tuple[TriggerRecord, ...], description: str
) -> DagNode:
    """``stage``'s node: its ``triggers`` and ``description`` as ``definition_texts`` redacted
    them, once per definition."""
    attempts = _attempts(record)
    start, end = _timing(attempts)
    return DagNode(
        name=stage.name,
        title=title_case(stage.name),
        loop=stage.loop,
        triggers=triggers,
        trigger_mode=stage.trigger_mode.value,
        parallel_instances=stage.parallel_instances,
        description=description,
        state=record.status if record is not None else None,
        attempts=attempts,
        start=start,
        end=end,
        skip_reason=record.skip_reason if record is not None else None,
        cancel_reason=record.cancel_reason if record is not None else None,
        cancel_cause=record.cancel_cause if record is not None else None,
        triggers_held=record.triggers_held if record is not None else (),
        paused_before_start=record.paused_before_start if record is not None else (),
    )


def _node_from_record(record: StageRecord) -> DagNode:
    attempts = _attempts(record)
    start, end = _timing(attempts)
    return DagNode(
        name=record.name,
        title=title_case(record.name),
        loop=record.loop,
        triggers=record.trigger_specs or tuple(map(trigger_from_description, record.triggers)),
        trigger_mode=record.trigger_mode,
        state=record.status,
        attempts=attempts,
        start=start,
        end=end,
        skip_reason=record.skip_reason,
        cancel_reason=record.cancel_reason,
        cancel_cause=record.cancel_cause,
        triggers_held=record.triggers_held,
        paused_before_start=record.paused_before_start,
    )


def _edge_from_trigger(source: str, target: str, trigger: TriggerRecord, label: str) -> DagEdge:
    if trigger.kind == OnEvent.kind:
        return DagEdge(
            source,
            target,
            trigger.kind,
            label,
            trigger.description,
            event_type=trigger.event_type,
            filter=trigger.filter,
        )
    return DagEdge(
        source, target, trigger.kind, label, trigger.description, success_only=trigger.success_only
    )


def _edge_from_record(edge: EdgeRecord, node: DagNode | None) -> DagEdge:
    # The label says which trigger of the target makes the edge (it is ``model.Edge.label``,
    # a closed vocabulary); the target's trigger gives the rest.
    source, target, label = edge.source, edge.target, edge.label
    if not label:
        # Spans without edge labels: name the edge after the trigger of the target that waits
        # for ``source`` (a completion trigger names it; otherwise it must be an event).
        triggers = node.triggers if node else ()
        if not any(t.kind == "on_completion" and t.stage == source for t in triggers):
            events = [t for t in triggers if t.kind == "on_event" and t.event_type]
            if events:
                label = f"on event\n{events[0].event_type}"
        label = label or "on completion"
    if label.startswith("on event"):
        event_type = label.partition("\n")[2] or None
        found = [
            t
            for t in (node.triggers if node else ())
            if t.kind == "on_event" and t.event_type == event_type
        ]
        filter_ = found[0].filter if found else None
        description = found[0].description if found else f"on event {event_type}"
        return DagEdge(
            source, target, "on_event", label, description, event_type=event_type, filter=filter_
        )
    success_only = "(any result)" not in label
    description = f"on completion of {source}" + ("" if success_only else " (any result)")
    return DagEdge(source, target, "on_completion", label, description, success_only=success_only)


def node_summary(node: DagNode) -> str | None:
    """The run line of a node's label: state (unless success), instances, attempts, duration.

    E.g. ``3 instances · 1.2s``, ``failure · 2 attempts · 400ms``, ``skipped``. None without
    a run overlay. The state word is there so the label reads without colour. Attempts is the
    most one instance needed, shown when a retry happened (its meaning in every CLI table).
    """
    if node.state is None:
        return None
    parts: list[str] = []
    if node.state != "success":
        parts.append(node.state)
    if node.instances > 1:
        parts.append(f"{node.instances} instances")
    most = max((attempt.attempts_made for attempt in node.attempts), default=1)
    if most > 1:
        parts.append(f"{most} attempts")
    if node.duration is not None:
        parts.append(format_duration(node.duration))
    return " · ".join(parts) or None


def node_label_lines(node: DagNode) -> list[str]:
    """The lines of a node's box, the same in every renderer: title, ``(LOOP loop)``,
    ``(all triggers)`` when more than one trigger must hold, then the ``node_summary`` line."""
    lines = [node.title]
    if node.loop:
        lines.append(f"({node.loop} loop)")
    if node.trigger_mode == "all" and len(node.triggers) > 1:
        lines.append("(all triggers)")
    summary = node_summary(node)
    if summary:
        lines.append(summary)
    return lines


def node_tooltip(node: DagNode) -> str:
    """A multi-line hover text: triggers, fan-out, skip reason and last error."""
    lines = [f"{node.name} ({node.loop} loop)" if node.loop else node.name]
    if node.description:
        lines.append(node.description)
    if node.triggers:
        modes = {TriggerMode.ALL.value: " (all of)", TriggerMode.ANY.value: " (any of)"}
        mode = modes.get(node.trigger_mode or "", "")
        lines.append(f"triggers{mode}:" if len(node.triggers) > 1 else "trigger:")
        lines.extend(f"  {t.description}" for t in node.triggers)
    if node.parallel_instances and node.parallel_instances > 1:
        lines.append(f"up to {node.parallel_instances} instances at once")
    if node.state is not None:
        lines.append(f"state: {node.state}")
    if node.skip_reason:
        lines.append(f"skipped: {node.skip_reason}")
    if node.error:
        lines.append(f"error: {cut_line(node.error, 200)}")
    if len(node.attempts) > 1 or (node.attempts and node.attempts[0].error):
        lines.append("attempts:")
        for attempt in node.attempts[:_TOOLTIP_ATTEMPTS]:
            took = format_duration(attempt.duration) if attempt.duration is not None else "open"
            took = "-" if attempt.status == STATUS_REPLAYED else took
            line = f"  {attempt.task_run_id} {attempt.status} {took}"
            lines.append(line + (f": {cut_line(attempt.error, 80)}" if attempt.error else ""))
        if len(node.attempts) > _TOOLTIP_ATTEMPTS:
            lines.append(f"  … {len(node.attempts) - _TOOLTIP_ATTEMPTS} more")
    return "\n".join(lines)


_TOOLTIP_ATTEMPTS = 20


def run_title(snapshot: DagSnapshot) -> str:
    """The graph title: pipeline name, then run id, status and duration when overlaid."""
    title = snapshot.pipeline
    if snapshot.run is not None:
        parts = [f"run {snapshot.run.run_id}", snapshot.run.status]
        if snapshot.run.duration is not None:
            parts.append(format_duration(snapshot.run.duration))
        title += "\n" + " · ".join(parts)
    return title


def states_present(snapshot: DagSnapshot) -> tuple[str, ...]:
    """The node states of ``snapshot`` in legend order (unknown states last, sorted)."""
    present = {node.state for node in snapshot.nodes if node.state is not None}
    known = [state for state in STATES if state in present]
    return tuple(known + sorted(present - set(STATES)))


def state_colour(state: str) -> str:
    """The fill colour of ``state`` (an unknown state is drawn like pending)."""
    return STATES.get(state, STATES["pending"])


#: The most stages a chain may hold and still be drawn left to right: at Graphviz's sizes a
#: stage and its edge take about 2.3 inches across, so six fill a laptop's screen.
ACROSS_MAX = 6


def direction(snapshot: DagSnapshot) -> str:
    """``LR`` (left to right, the contract's layout) or ``TB`` (top to bottom) for a DAG whose
    longest chain holds more than ``ACROSS_MAX`` stages and more than its widest rank does.

    Drawn left to right, a chain of 300 stages was one row 690 inches wide, read by scrolling
    sideways; top to bottom it scrolls down, as a page does. A wide fan-out stays left to
    right: its rank is a column there, and would be a row as wide top to bottom."""
    ranks = _ranks(snapshot)
    depth = max(ranks.values(), default=0) + 1
    breadth = max(Counter(ranks.values()).values(), default=0)
    return "TB" if depth > max(ACROSS_MAX, breadth) else "LR"


def _ranks(snapshot: DagSnapshot) -> dict[str, int]:
    """Each stage's rank, as ``dot`` ranks them: the longest chain of edges that ends at it.
    Stages on a cycle (which a foreign source's spans may claim) are not ranked past it."""
    after: dict[str, list[str]] = {node.name: [] for node in snapshot.nodes}
    waiting = dict.fromkeys(after, 0)
    for edge in snapshot.edges:
        after[edge.source].append(edge.target)
        waiting[edge.target] += 1
    ranks = dict.fromkeys(after, 0)
    ready = [name for name, count in waiting.items() if count == 0]
    while ready:
        name = ready.pop()
        for target in after[name]:
            ranks[target] = max(ranks[target], ranks[name] + 1)
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return ranks
