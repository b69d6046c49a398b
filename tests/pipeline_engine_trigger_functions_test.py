"""The pure trigger functions and the per-pipeline index the engine re-evaluates from."""

from __future__ import annotations

import pytest

from pipeline_engine_support import after, pipeline, stage
from taskdaemon.pipeline.expressions import compile_expression
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, OnEvent, TriggerMode
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.triggers import (
    ApprovalState,
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
    """No filter accepts every event; manual triggers follow the approval state."""
    assert (True, "no filter") == evaluate_filter(None, {})
    assert not evaluate_filter(compile_expression("event.x == 1"), {"event": {"x": 2}})[0]
    assert S == evaluate_manual(Manual(False), ApprovalState.NOT_REQUESTED)[0]
    assert P == evaluate_manual(Manual(True), ApprovalState.REQUESTED)[0]
    assert X == evaluate_manual(Manual(True), ApprovalState.REJECTED)[0]


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
