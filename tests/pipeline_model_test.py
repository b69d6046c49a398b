"""The pipeline model: edges, topological order, definition hash and ``validate_pipeline``."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operation_count_support import steps
from taskdaemon.pipeline.errors import ValidationIssue
from taskdaemon.pipeline.model import (
    Edge,
    LoopDef,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    Pipeline,
    Stage,
    Trigger,
)
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.validation import validate_pipeline


def _stage(name: str, *triggers: Trigger, emits: tuple[str, ...] = ()) -> Stage:
    return Stage(name=name, loop="command", command="true", triggers=triggers, emits=emits)


def _fan_out() -> Pipeline:
    """plan -> spec --(spec.ready)--> impl -> release, with an external `push` entry."""
    return Pipeline(
        name="fan-out",
        external_events=("push",),
        stages=(
            _stage("release", OnCompletion("impl")),
            _stage("plan", Manual()),
            _stage("spec", OnCompletion("plan"), emits=("spec.ready",)),
            _stage("impl", OnEvent("spec.ready", "event.ok")),
            _stage("hook", OnEvent("push")),
        ),
    )


# --- edges and order ---------------------------------------------------------------------------


#: What a cycle ``a -> b -> a`` reported on ``a``'s trigger says to do.
_WAITS_B = " (none of them can start: 'a' waits for 'b' here; remove this trigger)"


def test_edges_come_from_completions_and_event_emitters() -> None:
    """on_completion makes an edge from its stage; on_event one from every emitter of its type."""
    expected = (
        Edge("impl", "release", OnCompletion("impl")),
        Edge("plan", "spec", OnCompletion("plan")),
        Edge("spec", "impl", OnEvent("spec.ready", "event.ok")),
    )
    assert expected == _fan_out().edges


def test_a_stage_emitting_its_own_trigger_type_has_no_self_edge() -> None:
    """A stage that re-publishes the event type it listens to does not depend on itself."""
    pipeline = Pipeline(
        name="p",
        stages=(
            _stage("seed", Manual(), emits=("tick",)),
            _stage("loop", OnEvent("tick"), emits=("tick",)),
        ),
    )
    assert (Edge("seed", "loop", OnEvent("tick")),) == pipeline.edges


def test_topological_order_puts_upstream_first_and_keeps_file_order_otherwise() -> None:
    """Each stage comes after its upstream stages; ties keep the file order."""
    assert _fan_out().topological_order == ("plan", "spec", "impl", "release", "hook")


def test_topological_order_refuses_a_cycle() -> None:
    """topological_order raises ValueError on a cycle (validation reports it first)."""
    pipeline = Pipeline(
        name="p", stages=(_stage("a", OnCompletion("b")), _stage("b", OnCompletion("a")))
    )
    with pytest.raises(ValueError, match="has a cycle"):
        _ = pipeline.topological_order


def test_upstream_and_downstream_are_distinct_stage_names() -> None:
    """upstream/downstream list each neighbour once, even with two triggers on it."""
    pipeline = Pipeline(
        name="p",
        stages=(
            _stage("a", Manual()),
            _stage("b", OnCompletion("a"), OnCompletion("a", success_only=False)),
        ),
    )
    assert (pipeline.upstream["b"], pipeline.downstream["a"]) == (("a",), ("b",))


def _earliest_ready_order(pipeline: Pipeline) -> tuple[str, ...] | None:
    """The order "always take the earliest ready stage in the file", the plain way (None on a
    cycle): what ``topological_order`` must give, by whichever way it computes it. A name
    given twice is placed where it is given last."""
    last = {stage.name: index for index, stage in enumerate(pipeline.stages)}
    names = sorted(last, key=last.__getitem__)
    waiting = {name: set(pipeline.upstream[name]) for name in names}
    order: list[str] = []
    while waiting:
        ready = [name for name in names if name in waiting and not waiting[name]]
        if not ready:
            return None
        order.append(ready[0])
        del waiting[ready[0]]
        for sources in waiting.values():
            sources.discard(ready[0])
    return tuple(order)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 7), st.lists(st.integers(0, 8), max_size=3)),
        min_size=1,
        max_size=8,
    )
)
def test_topological_order_is_the_earliest_ready_order(
    shape: list[tuple[int, list[int]]],
) -> None:
    """In file order or not, with cycles, duplicate names and unknown stages (``s8``)."""
    stages = tuple(
        _stage(f"s{name}", Manual(), *(OnCompletion(f"s{source}") for source in sources))
        for name, sources in shape
    )
    pipeline = Pipeline(name="p", stages=stages)
    expected = _earliest_ready_order(pipeline)
    if expected is None or len(expected) != len(pipeline.stage_map):
        with pytest.raises(ValueError, match="has a cycle"):
            _ = pipeline.topological_order
    else:
        assert pipeline.topological_order == expected


@pytest.mark.parametrize("shape", ["independent", "reversed chain", "root last"])
def test_topological_order_is_linear_in_the_number_of_stages(shape: str) -> None:
    """Ordering 10x the stages takes about 10x the Python steps (no quadratic re-sorts), both
    when the file's order is the answer and when the heap orders them: each stage waits for
    the next one in the file, or all wait for the last one (and are then ready at once).
    Steps are counted, not timed (``operation_count_support``)."""

    def order(count: int) -> int:
        def stage(i: int) -> Stage:
            if shape == "independent" or i == count - 1:
                return _stage(f"s{i}", Manual())
            upstream = i + 1 if shape == "reversed chain" else count - 1
            return _stage(f"s{i}", OnCompletion(f"s{upstream}"))

        pipeline = Pipeline(name="p", stages=tuple(stage(i) for i in range(count)))
        counted = steps(lambda: pipeline.topological_order)
        assert len(pipeline.topological_order) == count
        return counted

    assert order(10_000) / order(1000) < 12


# --- definition hash ---------------------------------------------------------------------------


def test_definition_hash_is_stable_across_processes() -> None:
    """The hash of a fixed definition is a fixed value (no ids, no set ordering)."""
    expected = "544b4b00c359cd8991290bea4f281c1e26385a21cea9fb6334d0b649bc66c498"
    assert expected == _fan_out().definition_hash


def test_definition_hash_ignores_source_and_loop_order() -> None:
    """Where a pipeline was loaded from and the order of `loops:` do not change its hash."""
    loops_ab = {"a": LoopDef("a", command="x"), "b": LoopDef("b", handler="m:f")}
    loops_ba = {"b": LoopDef("b", handler="m:f"), "a": LoopDef("a", command="x")}
    one = replace(_fan_out(), loops=loops_ab, source="one.yaml")
    two = replace(_fan_out(), loops=loops_ba, source="two.toml")
    assert one.definition_hash == two.definition_hash


def test_definition_hash_changes_with_the_definition() -> None:
    """Changing any field of a stage changes the hash."""
    changed = replace(
        _fan_out(),
        stages=(*_fan_out().stages[:-1], replace(_fan_out().stages[-1], timeout=5.0)),
    )
    assert _fan_out().definition_hash != changed.definition_hash


# --- validate_pipeline -------------------------------------------------------------------------


def test_valid_pipeline_has_no_issues() -> None:
    """A correct pipeline built in Python validates without issues."""
    assert validate_pipeline(_fan_out()) == []


def test_issues_of_python_built_pipelines_have_no_line() -> None:
    """validate_pipeline is pure: issues carry the pipeline's source as file and no line."""
    pipeline = replace(_fan_out(), concurrency=0, source="built-in")
    expected = [ValidationIssue("concurrency", "must be >= 1, got 0", file="built-in")]
    assert expected == validate_pipeline(pipeline)


def test_registered_loops_are_passed_in() -> None:
    """A loop type is known only if built in, declared, or passed as registered."""
    pipeline = Pipeline(name="p", stages=(Stage("a", loop="ralph", triggers=(Manual(),)),))
    unknown = [
        ValidationIssue("stages[0].loop", "unknown loop type 'ralph' (known: command, python)")
    ]
    assert unknown == validate_pipeline(pipeline)
    assert validate_pipeline(pipeline, registered_loops={"ralph"}) == []


def test_cycle_through_event_edges_is_reported_with_its_path() -> None:
    """A cycle made of emitter edges is reported on the trigger that closes it."""
    pipeline = Pipeline(
        name="p",
        stages=(
            _stage("start", Manual()),
            _stage("a", OnCompletion("start"), OnEvent("b.done"), emits=("a.done",)),
            _stage("b", OnEvent("a.done"), emits=("b.done",)),
        ),
    )
    expected = [
        ValidationIssue("stages[1].triggers[1].on_event.type", "cycle: a -> b -> a" + _WAITS_B)
    ]
    assert expected == validate_pipeline(pipeline)


def test_a_cycle_beside_an_unknown_upstream_is_still_reported() -> None:
    """A stage waiting on an unknown stage leaves no order of every stage; the cycle found
    then is the real one, not the unknown edge."""
    pipeline = Pipeline(
        name="p",
        stages=(
            _stage("start", Manual()),
            _stage("lost", OnCompletion("nowhere")),
            _stage("a", OnCompletion("start"), OnCompletion("b")),
            _stage("b", OnCompletion("a")),
        ),
    )
    cycles = [issue for issue in validate_pipeline(pipeline) if "cycle" in issue.message]
    assert cycles == [
        ValidationIssue(
            "stages[2].triggers[1].on_completion.stage", "cycle: a -> b -> a" + _WAITS_B
        )
    ]
    assert not any("cycle" in issue.message for issue in validate_pipeline(_without_b(pipeline)))


def _without_b(pipeline: Pipeline) -> Pipeline:
    a = _stage("a", OnCompletion("start"))
    return Pipeline(name="p", stages=(*pipeline.stages[:2], a))


def test_each_cycle_is_reported_once() -> None:
    """Two separate cycles give two issues, one per cycle."""
    pipeline = Pipeline(
        name="p",
        stages=(
            _stage("start", Manual()),
            _stage("a", OnCompletion("b")),
            _stage("b", OnCompletion("a")),
            _stage("c", OnCompletion("c")),
        ),
    )
    expected = [
        "stages[1].triggers[0].on_completion.stage: cycle: a -> b -> a" + _WAITS_B,
        "stages[3].triggers[0].on_completion.stage: cycle: c -> c (none of them can start: 'c' "
        "waits for itself here; remove this trigger)",
    ]
    assert expected == [f"{i.path}: {i.message}" for i in validate_pipeline(pipeline)]


def test_on_condition_stage_is_an_entry_stage() -> None:
    """A stage with only an on_condition trigger and no upstream can start with the run."""
    pipeline = Pipeline(name="p", stages=(_stage("a", OnCondition("request.go == true")),))
    assert validate_pipeline(pipeline) == []


def test_expression_may_read_stages_by_index_syntax() -> None:
    """`stages["name"]` references are checked like `stages.name` ones."""
    pipeline = Pipeline(
        name="p",
        stages=(
            _stage("a-b", Manual()),
            _stage("c", OnCondition('stages["a-b"].status == "success"')),
            _stage("d", OnCondition('stages["a-c"].status == "success"')),
        ),
    )
    expected = [
        ValidationIssue(
            "stages[2].triggers[0].on_condition.expression",
            "reads unknown stage 'a-c' (did you mean 'a-b'?)",
        )
    ]
    assert expected == validate_pipeline(pipeline)


def test_unknown_stage_hint_prefers_the_stage_it_begins_as() -> None:
    """A wrong stage name is hinted as the close stage sharing its longest start, as a wrong
    key is: ``fetch`` means ``fetcher``, though difflib ranks ``etch`` closer."""
    pipeline = Pipeline(
        name="p",
        stages=(
            _stage("fetcher", Manual()),
            _stage("etch", Manual()),
            _stage("store", OnCompletion("fetch")),
        ),
    )
    expected = [
        ValidationIssue(
            "stages[2].triggers[0].on_completion.stage",
            "unknown stage 'fetch' (did you mean 'fetcher'?)",
        )
    ]
    assert expected == validate_pipeline(pipeline)


def test_validating_is_linear_in_the_number_of_stages() -> None:
    """Validating a chain of 10x the stages takes about 10x the Python steps, not 100x.
    Steps are counted, not timed (``operation_count_support``)."""

    def validate(count: int) -> int:
        stages = [_stage("s0", Manual())]
        stages += [_stage(f"s{i}", OnCompletion(f"s{i - 1}")) for i in range(1, count)]
        pipeline = Pipeline(name="p", stages=tuple(stages))
        issues: list[ValidationIssue] = []
        counted = steps(lambda: issues.extend(validate_pipeline(pipeline)))
        assert [] == issues
        return counted

    assert validate(10_000) / validate(1000) < 12


# --- properties over random DAGs ---------------------------------------------------------------


@st.composite
def _dags(draw: st.DrawFn) -> Pipeline:
    """A random acyclic pipeline: stage k may depend on any stage before it in a hidden
    order, by on_completion or through an event that stage emits; the file order is shuffled."""
    count = draw(st.integers(min_value=1, max_value=12))
    upstream = [
        draw(st.lists(st.integers(0, k - 1), unique=True, max_size=3)) if k else []
        for k in range(count)
    ]
    by_event = [[draw(st.booleans()) for _ in sources] for sources in upstream]
    stages = []
    for k in range(count):
        triggers: list[Trigger] = [
            OnEvent(f"e{source}") if event else OnCompletion(f"s{source}")
            for source, event in zip(upstream[k], by_event[k], strict=True)
        ]
        if not triggers:
            triggers.append(Manual())
        stages.append(_stage(f"s{k}", *triggers, emits=(f"e{k}",)))
    file_order = draw(st.permutations(stages))
    return Pipeline(name="random", stages=tuple(file_order))


@settings(max_examples=150, deadline=None)
@given(_dags())
def test_topological_order_puts_every_stage_after_its_upstream(pipeline: Pipeline) -> None:
    """For any acyclic graph, every edge goes forward in the topological order."""
    position = {name: i for i, name in enumerate(pipeline.topological_order)}
    assert sorted(position) == sorted(stage.name for stage in pipeline.stages)
    assert all(position[edge.source] < position[edge.target] for edge in pipeline.edges)
    assert validate_pipeline(pipeline) == []


@settings(max_examples=150, deadline=None)
@given(_dags(), st.data())
def test_a_back_edge_always_yields_a_real_cycle(pipeline: Pipeline, data: st.DataObject) -> None:
    """Adding an edge from a stage to one of its ancestors yields a cycle issue whose path is a
    real cycle of the new graph."""
    order = pipeline.topological_order
    target = data.draw(st.sampled_from(order))
    # Everything reachable from ``target`` (itself included): an edge back to ``target`` from any
    # of them closes a cycle.
    reachable, frontier = {target}, [target]
    while frontier:
        for nxt in pipeline.downstream[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    source = data.draw(st.sampled_from(sorted(reachable)))
    stages = tuple(
        replace(s, triggers=(*s.triggers, OnCompletion(source))) if s.name == target else s
        for s in pipeline.stages
    )
    cyclic = replace(pipeline, stages=stages)
    cycles = [issue for issue in validate_pipeline(cyclic) if issue.message.startswith("cycle: ")]
    assert len(cycles) == 1
    names = cycles[0].message.removeprefix("cycle: ").split(" (")[0].split(" -> ")
    edges = {(edge.source, edge.target) for edge in cyclic.edges}
    assert names[0] == names[-1]
    assert all(pair in edges for pair in itertools.pairwise(names))
    where = re.match(r"stages\[(\d+)\]", cycles[0].path)
    assert where is not None
    assert names[0] == cyclic.stages[int(where.group(1))].name
