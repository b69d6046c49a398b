"""The pure trigger functions and the per-pipeline index the engine re-evaluates from."""

from __future__ import annotations

import pytest

from pipeline_engine_support import after, pipeline, stage
from taskdaemon.pipeline.errors import ExpressionError
from taskdaemon.pipeline.expressions import compile_expression
from taskdaemon.pipeline.model import (
    InputMapping,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    OutputMapping,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.record_fields import fields
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.triggers import (
    ApprovalState,
    CompiledStage,
    TriggerPlan,
    TriggerState,
    combine,
    evaluate_completion,
    evaluate_condition,
    evaluate_filter,
    evaluate_manual,
    expression_context,
)

P, S, X = TriggerState.PENDING, TriggerState.SATISFIED, TriggerState.IMPOSSIBLE


@pytest.mark.parametrize(
    ("mode", "states", "expected"),
    [
        (TriggerMode.ANY, [P, S], S),
        (TriggerMode.ANY, [P, X], P),
        (TriggerMode.ANY, [X, X], X),
        (TriggerMode.ALL, [S, S], S),
        (TriggerMode.ALL, [S, P], P),
        (TriggerMode.ALL, [S, X], X),
        (TriggerMode.ANY, [], X),
    ],
)
def test_combine_follows_any_and_all(
    mode: TriggerMode, states: list[TriggerState], expected: TriggerState
) -> None:
    """ANY needs one satisfied trigger and fails when all are impossible; ALL the reverse."""
    assert expected == combine(mode, states)


@pytest.mark.parametrize(
    ("success_only", "status", "expected"),
    [
        (True, None, P),
        (True, StageStatus.SUCCESS, S),
        (True, StageStatus.FAILURE, X),
        (False, StageStatus.FAILURE, S),
        (False, StageStatus.TIMEOUT, S),
        (False, StageStatus.SKIPPED, X),
    ],
)
def test_completion_trigger(
    success_only: bool, status: StageStatus | None, expected: TriggerState
) -> None:
    """on_completion fires on success, on any result that ran without success_only, never on
    a skipped upstream."""
    assert expected == evaluate_completion(OnCompletion("up", success_only), status)[0]


def test_condition_error_counts_as_false_with_detail() -> None:
    """A condition that cannot be evaluated is pending and its error is the detail."""
    expression = compile_expression("stages.a.outputs.n > 1")
    state, detail = evaluate_condition(expression, {"stages": {"a": {"outputs": {}}}})
    assert (P, "error: 'stages.a.outputs.n > 1': no such key 'n'") == (state, detail)
    assert (S, "value: True") == evaluate_condition(
        expression, {"stages": {"a": {"outputs": {"n": 2}}}}
    )


def test_filter_and_manual() -> None:
    """No filter accepts every event; manual triggers follow the approval state, and the detail
    (what trigger-evaluation events report) says why."""
    assert (True, "no filter") == evaluate_filter(None, {})
    assert not evaluate_filter(compile_expression("event.x == 1"), {"event": {"x": 2}})[0]
    assert [
        evaluate_manual(Manual(False), ApprovalState.NOT_REQUESTED),
        evaluate_manual(Manual(True), ApprovalState.NOT_REQUESTED),
        evaluate_manual(Manual(True), ApprovalState.REQUESTED),
        evaluate_manual(Manual(True), ApprovalState.APPROVED),
        evaluate_manual(Manual(True), ApprovalState.REJECTED),
    ] == [
        (S, "run started"),
        (P, "awaiting approval"),
        (P, "awaiting approval"),
        (S, "approved"),
        (X, "rejected"),
    ]


def test_filter_that_fails_to_evaluate_rejects_the_event() -> None:
    """A filter that cannot be evaluated on an event rejects it and says why; only a true value
    (not merely a truthy one) accepts."""
    expression = compile_expression("event.n > 2")
    assert (False, "error: 'event.n > 2': no such key 'n' (event has: 'x')") == evaluate_filter(
        expression, {"event": {"x": 1}}
    )
    assert (True, "filter: True") == evaluate_filter(expression, {"event": {"n": 3}})
    assert (False, "filter: 3") == evaluate_filter(
        compile_expression("event.n"), {"event": {"n": 3}}
    )


def test_condition_is_satisfied_only_by_true() -> None:
    """A condition whose value is truthy but not ``true`` stays pending."""
    assert (P, "value: 3") == evaluate_condition(
        compile_expression("request.n"), {"request": {"n": 3}}
    )


def test_expression_context_passes_only_the_named_stages() -> None:
    """The stages map handed to CEL is pruned to the stages the expression names."""
    expression = compile_expression("stages.a.status == 'success' && stages['b'].status != ''")
    plan = TriggerPlan.build(
        pipeline(
            stage("a"),
            stage("b"),
            stage("c"),
            stage("d", OnCondition(expression.source)),
        )
    )
    compiled = plan.stages["d"].conditions[0]
    assert frozenset({"a", "b"}) == compiled.refs
    context = expression_context(
        compiled.expression, compiled.refs, {}, {n: {"status": n} for n in "abc"}
    )
    assert {"stages": {"a": {"status": "a"}, "b": {"status": "b"}}} == context


def test_plan_indexes_dependents_listeners_and_readers() -> None:
    """The plan maps each stage to what a change of it must re-evaluate."""
    plan = TriggerPlan.build(
        pipeline(
            stage("a", emits=("e",)),
            stage("b", *after("a")),
            stage("c", OnEvent("e")),
            stage("d", OnCondition("stages.b.status == 'success'")),
            stage("z", OnCondition("size(stages) > 0")),
        )
    )
    assert (("b", 0),) == plan.completion_dependents["a"]
    assert (("c", 0),) == plan.event_listeners["e"]
    assert (("d", 0),) == plan.condition_readers["b"]
    assert (("z", 0),) == plan.opaque_conditions
    assert ("a",) == plan.stages["c"].event_emitters
    assert ("a", "d", "z") == plan.entry_stages


def test_plan_lists_the_stages_a_manual_trigger_starts_in_pipeline_order() -> None:
    """``manual_entries``: the stages with a manual trigger that needs no approval (what
    ``Stage.is_entry`` says), upstream or not, in the pipeline's order."""
    definition = pipeline(
        stage("z", *after("a"), Manual()),
        stage("a"),
        stage("b", *after("a")),
        stage("c", Manual(approval_required=True)),
        stage("d", OnEvent("e"), Manual()),
    )
    plan = TriggerPlan.build(definition)
    assert ("z", "a", "d") == plan.manual_entries
    assert plan.manual_entries == tuple(s.name for s in definition.stages if s.is_entry)


def test_plan_lists_each_stage_once_and_never_as_its_own_emitter() -> None:
    """A stage with two conditions is one condition stage; a stage listening to an event it
    emits itself does not wait for itself; each emitter is listed once."""
    plan = TriggerPlan.build(
        pipeline(
            stage("a", emits=("e", "f")),
            stage("loop", OnEvent("e"), OnEvent("f"), OnEvent("e", "event.n > 1"), emits=("e",)),
            stage("d", OnCondition("request.x == 1"), OnCondition("request.y == 2")),
            stage("b", *after("a")),
        )
    )
    looping = plan.stages["loop"]
    assert [
        plan.condition_stages,
        looping.event_emitters,
        looping.event_triggers,
        looping.other_triggers,
        plan.emitters,
        [(cs.index, cs.upstream, cs.downstream) for cs in plan.stages.values()],
    ] == [
        ("d",),
        ("a",),
        (0, 1, 2),
        (),
        {"e": ("a", "loop"), "f": ("a",)},
        [(0, (), ("loop", "b")), (1, ("a",), ()), (2, (), ()), (3, ("a",), ())],
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            stage("a", OnCondition("event.x == 1")),
            "stage 'a' trigger 0: 'event.x == 1': unknown variable 'event' "
            "(available: request, stages)",
        ),
        (
            stage("a", OnEvent("e", "result.x == 1")),
            "stage 'a' trigger 0: 'result.x == 1': unknown variable 'result' "
            "(available: event, request, stages)",
        ),
        (
            stage("a", inputs=(InputMapping("n", "event.n"),)),
            "stage 'a' input 'n': 'event.n': unknown variable 'event' (available: request, stages)",
        ),
        (
            stage("a", outputs=(OutputMapping("n", "stages.a"),)),
            "stage 'a' output 'n': 'stages.a': unknown variable 'stages' "
            "(available: request, result)",
        ),
    ],
)
def test_plan_rejects_a_variable_the_field_cannot_read(bad: Stage, message: str) -> None:
    """Each expression is compiled against the variables its field provides (no ``event``
    outside on_event stages, ``result`` only in outputs); the error names stage and field."""
    with pytest.raises(ExpressionError) as caught:
        TriggerPlan.build(pipeline(bad))
    assert message == str(caught.value)


def test_plan_accepts_the_request_in_inputs_and_outputs() -> None:
    """Inputs and outputs may read the request; an event stage's inputs may read the event."""
    plan = TriggerPlan.build(
        pipeline(
            stage("a", emits=("e",), outputs=(OutputMapping("id", "request.id"),)),
            stage("b", OnEvent("e"), inputs=(InputMapping("n", "event.n + request.k"),)),
        )
    )
    assert (("id",), ("n",)) == (
        tuple(name for name, _, _ in plan.stages["a"].outputs or ()),
        tuple(name for name, _, _ in plan.stages["b"].inputs),
    )


def test_plan_describes_each_stage_s_triggers_in_order() -> None:
    """``descriptions``: every trigger's, in order; ``other_descriptions``: the non-event
    triggers' (all of them when the stage has no event trigger, none for no trigger). Each
    compiled stage is the record its class builds from the same fields."""
    plan = TriggerPlan.build(
        pipeline(
            stage("a", emits=("e",)),
            stage("b", *after("a")),
            stage("c", OnEvent("e"), *after("a"), Manual(approval_required=True)),
            stage("d", OnCondition("request.x == 1"), OnCompletion("b", success_only=False)),
            stage("f", OnEvent("e", "event.n > 1")),
        )
    )
    described = {name: (cs.descriptions, cs.other_descriptions) for name, cs in plan.stages.items()}
    assert described == {
        "a": (("on run start",), ("on run start",)),
        "b": (("on completion of a",), ("on completion of a",)),
        "c": (
            ("on event e", "on completion of a", "manual approval"),
            ("on completion of a", "manual approval"),
        ),
        "d": (
            ("on condition request.x == 1", "on completion of b (any result)"),
            ("on condition request.x == 1", "on completion of b (any result)"),
        ),
        "f": (("on event e if event.n > 1",), ()),
    }
    for cs in plan.stages.values():
        rebuilt = CompiledStage(**{f.name: getattr(cs, f.name) for f in fields(cs)})
        assert type(cs) is CompiledStage
        assert cs == rebuilt
