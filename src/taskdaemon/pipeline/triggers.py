"""Trigger evaluation: pure functions over one stage's triggers and the run's state.

The engine owns the run state; this module answers, for one trigger, "has it fired, can it still
fire, or will it never fire?" (:class:`TriggerState`) and combines a stage's answers under its
``trigger_mode`` (:func:`combine`). :class:`TriggerPlan` is the per-pipeline index the engine uses
to re-evaluate only the stages a change can affect: the dependents of a finished stage, the
listeners of an event type, the conditions that read a stage.

Semantics (the engine's docstring has the whole story):

* ``on_completion {stage, success_only}``: satisfied once ``stage`` is final with a result it
  accepts (``success`` only, or any result of a stage that *ran* when ``success_only`` is false);
  impossible once ``stage`` is final otherwise. A skipped stage never completed, so it never
  fires an ``on_completion`` trigger.
* ``on_condition {expression}``: satisfied while the CEL expression over ``{request, stages}``
  is true; an evaluation error counts as false and is reported in the detail. It becomes
  impossible only when the run can no longer change (the engine decides that).
* ``manual {approval_required: false}``: satisfied from the run start.
  ``manual {approval_required: true}``: pending until approved (satisfied) or rejected / timed
  out (impossible).
* ``on_event``: evaluated per published event by :func:`evaluate_filter`; the engine starts one
  instance per matching event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from taskdaemon.pipeline.errors import ExpressionError
from taskdaemon.pipeline.expressions import Expression, compile_expression
from taskdaemon.pipeline.frozen import frozen, lazy_maker
from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    Pipeline,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import ENDED_STAGE_STATUSES
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "ApprovalState",
    "CompiledStage",
    "TriggerPlan",
    "TriggerState",
    "combine",
    "evaluate_completion",
    "evaluate_condition",
    "evaluate_filter",
    "evaluate_manual",
    "expression_context",
]


class TriggerState(Enum):
    """One trigger's answer (or, from :func:`combine`, a whole stage's)."""

    PENDING = "pending"  # may still fire
    SATISFIED = "satisfied"  # fired (for a stage: ready to run)
    IMPOSSIBLE = "impossible"  # can never fire any more


class ApprovalState(Enum):
    """Where a ``manual {approval_required: true}`` trigger is."""

    NOT_REQUESTED = "not_requested"
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


PENDING = TriggerState.PENDING
SATISFIED = TriggerState.SATISFIED
IMPOSSIBLE = TriggerState.IMPOSSIBLE

# Statuses of a stage that ran to an end (skipped stages did not run).
_RAN = ENDED_STAGE_STATUSES


def evaluate_completion(
    trigger: OnCompletion, upstream_status: StageStatus | None
) -> tuple[TriggerState, str]:
    """Answer an ``on_completion`` trigger given the upstream stage's final status (None while it
    is not final). Returns the state and a detail for ``TriggerEvaluated``."""
    if upstream_status is None:
        return PENDING, f"{trigger.stage} not finished"
    if upstream_status is StageStatus.SUCCESS:
        return SATISFIED, f"{trigger.stage} succeeded"
    if not trigger.success_only and upstream_status in _RAN:
        return SATISFIED, f"{trigger.stage} ended {upstream_status}"
    return IMPOSSIBLE, f"{trigger.stage} ended {upstream_status}"


def evaluate_condition(
    expression: Expression, context: Mapping[str, Any]
) -> tuple[TriggerState, str]:
    """Answer an ``on_condition`` trigger: satisfied while the expression is true. A false value
    or an evaluation error is pending (the error text is the detail)."""
    try:
        value = expression.evaluate(context)
    except ExpressionError as exc:
        return PENDING, f"error: {exc}"
    return (SATISFIED if value is True else PENDING), f"value: {value!r}"


def evaluate_filter(expression: Expression | None, context: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether an ``on_event`` filter accepts an event (no filter accepts every event); an
    evaluation error rejects it and is reported in the detail."""
    if expression is None:
        return True, "no filter"
    try:
        value = expression.evaluate(context)
    except ExpressionError as exc:
        return False, f"error: {exc}"
    return value is True, f"filter: {value!r}"


def evaluate_manual(trigger: Manual, approval: ApprovalState) -> tuple[TriggerState, str]:
    """Answer a ``manual`` trigger given the stage's approval state."""
    if not trigger.approval_required:
        return SATISFIED, "run started"
    if approval is ApprovalState.APPROVED:
        return SATISFIED, "approved"
    if approval is ApprovalState.REJECTED:
        return IMPOSSIBLE, "rejected"
    return PENDING, "awaiting approval"


def combine(mode: TriggerMode, states: list[TriggerState]) -> TriggerState:
    """A stage's readiness from its triggers' states: ANY is satisfied by one and impossible when
    all are impossible; ALL needs every one and is impossible as soon as one is. A stage with no
    (non-event) triggers is impossible."""
    if not states:
        return IMPOSSIBLE
    if mode is TriggerMode.ALL:
        if IMPOSSIBLE in states:
            return IMPOSSIBLE
        return SATISFIED if all(s is SATISFIED for s in states) else PENDING
    if SATISFIED in states:
        return SATISFIED
    return IMPOSSIBLE if all(s is IMPOSSIBLE for s in states) else PENDING


_STAGE_REF = re.compile(r"\bstages\s*(?:\.\s*([A-Za-z_][\w]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")
_BARE_STAGES = re.compile(r"\bstages\b")


def _stage_refs(expression: Expression) -> frozenset[str] | None:
    """The stage names an expression reads through ``stages``: an empty set when it does not
    read ``stages``, None when it reads it in a way we cannot see statically (then the whole
    ``stages`` map is passed and the expression is re-evaluated on every change)."""
    if "stages" not in expression.variables:
        return frozenset()
    source = expression.source
    names = {a or b for a, b in _STAGE_REF.findall(source)}
    if len(_BARE_STAGES.findall(source)) != len(_STAGE_REF.findall(source)):
        return None
    return frozenset(names)


def expression_context(
    expression: Expression,
    refs: frozenset[str] | None,
    request: Mapping[str, Any],
    stages: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables ``expression`` reads, with ``stages`` pruned to the stages it names (the
    CEL binding converts its whole input on every call, so a 10,000-stage map would cost)."""
    context: dict[str, Any] = {}
    variables = expression.variables
    if "request" in variables:
        context["request"] = request
    if "stages" in variables:
        context["stages"] = (
            stages if refs is None else {name: stages[name] for name in refs if name in stages}
        )
    if extra:
        for key, value in extra.items():
            if key in variables:
                context[key] = value
    return context


@frozen
class CompiledExpression(ValueMethods):
    """An expression with the stage names it reads (None: unknown, read them all)."""

    expression: Expression
    refs: frozenset[str] | None


def _compile(source: str, allowed: frozenset[str]) -> CompiledExpression:
    expression = compile_expression(source, allowed)
    if expression.isolated:
        # Imported here: only isolated expressions need the worker (pickle, a subprocess).
        from taskdaemon.pipeline.cel_worker import shared_worker  # noqa: PLC0415

        shared_worker().start()  # now, so that it is ready by the first evaluation
    return CompiledExpression(expression, _stage_refs(expression))


@frozen
class CompiledStage(ValueMethods):
    """Everything the engine needs about one stage, computed once per pipeline."""

    stage: Stage
    index: int
    upstream: tuple[str, ...]
    downstream: tuple[str, ...]
    has_events: bool
    other_triggers: tuple[int, ...]  # indexes of the non-event triggers
    event_triggers: tuple[int, ...]
    approval_trigger: int | None  # index of the manual{approval_required: true} trigger
    conditions: Mapping[int, CompiledExpression]
    filters: Mapping[int, CompiledExpression | None]
    inputs: tuple[tuple[str, CompiledExpression, bool], ...]
    outputs: tuple[tuple[str, CompiledExpression, bool], ...] | None
    descriptions: tuple[str, ...]
    event_emitters: tuple[str, ...]  # stages that emit one of this stage's event types
    # The descriptions of ``other_triggers``, in their order: what a stage that fires with all
    # of them satisfied reports in ``StageStarted.triggers`` (made once here, not per firing).
    other_descriptions: tuple[str, ...] = ()


@frozen(slots=False)
class TriggerPlan(ValueMethods):
    """A pipeline compiled for execution: expressions compiled once, and the indexes that let
    each change re-evaluate only the stages it can affect."""

    stages: Mapping[str, CompiledStage]
    #: stage -> [(dependent stage, trigger index)] for on_completion triggers
    completion_dependents: Mapping[str, tuple[tuple[str, int], ...]]
    #: event type -> [(listening stage, trigger index)]
    event_listeners: Mapping[str, tuple[tuple[str, int], ...]]
    #: stage -> [(stage with a condition reading it, trigger index)]
    condition_readers: Mapping[str, tuple[tuple[str, int], ...]]
    #: conditions that read stages in ways we cannot see: re-evaluated on every change
    opaque_conditions: tuple[tuple[str, int], ...]
    #: stages with an on_condition trigger (re-evaluated when an event is published)
    condition_stages: tuple[str, ...]
    #: event type -> stages that emit it
    emitters: Mapping[str, tuple[str, ...]]
    entry_stages: tuple[str, ...]  # no upstream: considered at run start
    #: stages with a manual trigger that needs no approval (``Stage.is_entry``), in pipeline
    #: order: considered at run start after ``entry_stages`` (asked once here, not every run)
    manual_entries: tuple[str, ...] = ()

    @classmethod
    def build(cls, pipeline: Pipeline) -> TriggerPlan:
        """Compile ``pipeline``; ExpressionError names the stage and field of a bad expression.

        Built in one loop over the stages, without a generator a stage: ``Stage.is_entry`` is
        "a ``manual`` trigger without approval", which the loop's ``Manual`` branch notes as it
        goes; the descriptions are the pipeline's (``Pipeline.trigger_descriptions``, which the
        monitor reads too); a stage whose triggers are all non-event ones has every description
        as its ``other_descriptions``, in the same order; a trigger's error location is only
        ever read in an error, so it is made only for an expression. Each ``CompiledStage``
        comes from ``frozen.maker``: the record its class call would give
        (:func:`_make_compiled_stage`).
        """
        emitters: dict[str, list[str]] = {}
        for stage in pipeline.stages:
            for event_type in stage.emits:
                emitters.setdefault(event_type, []).append(stage.name)
        upstream = pipeline.upstream
        downstream = pipeline.downstream
        completion: dict[str, list[tuple[str, int]]] = {}
        listeners: dict[str, list[tuple[str, int]]] = {}
        readers: dict[str, list[tuple[str, int]]] = {}
        opaque: list[tuple[str, int]] = []
        condition_stages: list[str] = []
        compiled: dict[str, CompiledStage] = {}
        base = frozenset({"request", "stages"})
        entry_stages: list[str] = []
        manual_entries: list[str] = []
        make = _make_compiled_stage()
        described = pipeline.trigger_descriptions
        for position, stage in enumerate(pipeline.stages):
            name = stage.name
            if not upstream[name]:
                entry_stages.append(name)
            conditions: dict[int, CompiledExpression] = {}
            filters: dict[int, CompiledExpression | None] = {}
            others: list[int] = []
            events: list[int] = []
            approval: int | None = None
            entry = False  # ``stage.is_entry``, read off the loop over its triggers
            event_emitters: list[str] = []
            triggers = stage.triggers
            for index, trigger in enumerate(triggers):
                if isinstance(trigger, OnEvent):
                    events.append(index)
                    listeners.setdefault(trigger.type, []).append((stage.name, index))
                    filters[index] = (
                        None
                        if trigger.filter is None
                        else _compiled(trigger.filter, base | {"event"}, _where(name, index))
                    )
                    for emitter in emitters.get(trigger.type, ()):
                        if emitter != stage.name and emitter not in event_emitters:
                            event_emitters.append(emitter)
                    continue
                others.append(index)
                if isinstance(trigger, OnCompletion):
                    completion.setdefault(trigger.stage, []).append((stage.name, index))
                elif isinstance(trigger, OnCondition):
                    expr = _compiled(trigger.expression, base, _where(name, index))
                    conditions[index] = expr
                    if expr.refs is None:
                        opaque.append((stage.name, index))
                    else:
                        for ref in expr.refs:
                            readers.setdefault(ref, []).append((stage.name, index))
                    if stage.name not in condition_stages:
                        condition_stages.append(stage.name)
                elif isinstance(trigger, Manual):
                    if trigger.approval_required:
                        approval = index
                    else:
                        entry = True
            if entry:
                manual_entries.append(name)
            inputs: tuple[tuple[str, CompiledExpression, bool], ...] = ()
            if stage.inputs:  # most stages have none: no generator made for an empty tuple
                input_vars = base | ({"event"} if events else set())
                inputs = tuple(
                    (
                        m.name,
                        _compiled(m.source, input_vars, f"stage {stage.name!r} input {m.name!r}"),
                        m.required,
                    )
                    for m in stage.inputs
                )
            outputs = (
                None
                if stage.outputs is None
                else tuple(
                    (
                        m.name,
                        _compiled(
                            m.source,
                            frozenset({"result", "request"}),
                            f"stage {stage.name!r} output {m.name!r}",
                        ),
                        m.required,
                    )
                    for m in stage.outputs
                )
            )
            descriptions = described[position]
            compiled[name] = make(
                stage=stage,
                index=position,
                upstream=upstream[stage.name],
                downstream=downstream[stage.name],
                has_events=bool(events),
                other_triggers=tuple(others),
                event_triggers=tuple(events),
                approval_trigger=approval,
                conditions=conditions,
                filters=filters,
                inputs=inputs,
                outputs=outputs,
                descriptions=descriptions,
                event_emitters=tuple(event_emitters),
                # Every trigger is a non-event one (the usual case): all the descriptions.
                other_descriptions=(
                    descriptions
                    if len(others) == len(descriptions)
                    else tuple([descriptions[i] for i in others])
                ),
            )
        return cls(
            stages=compiled,
            completion_dependents={k: tuple(v) for k, v in completion.items()},
            event_listeners={k: tuple(v) for k, v in listeners.items()},
            condition_readers={k: tuple(v) for k, v in readers.items()},
            opaque_conditions=tuple(opaque),
            condition_stages=tuple(condition_stages),
            emitters={k: tuple(v) for k, v in emitters.items()},
            entry_stages=tuple(entry_stages),
            manual_entries=tuple(manual_entries),
        )


def _where(stage: str, index: int) -> str:
    """The place a trigger's expression error names (made only for an expression)."""
    return f"stage {stage!r} trigger {index}"


#: A plan builds one ``CompiledStage`` (fifteen fields) a stage of the pipeline: through its
#: maker, compiled at the first plan built.
_make_compiled_stage = lazy_maker(CompiledStage)


def _compiled(source: str, allowed: frozenset[str] | set[str], where: str) -> CompiledExpression:
    try:
        return _compile(source, frozenset(allowed))
    except ExpressionError as exc:
        from taskdaemon.pipeline.quoting import quoted  # noqa: PLC0415 - a failure only

        raise ExpressionError(f"{where}: {quoted(source)}: {exc}") from None
