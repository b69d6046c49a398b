"""The structured span values (telemetry_codec): result codes, trigger and edge specs written as
JSON items of string arrays (span schema 3), and the text forms of schema 1 and 2 still read.

Names with ``>``, spaces and quotes are the cases the text forms could not carry: the event type
``build>ready "v1"`` came back from ``describe()`` text as an unknown trigger.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import after, pipeline, stage
from pipeline_tracking_support import Backend, run_into_store, serve
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    Edge,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    Pipeline,
    Stage,
    Trigger,
    TriggerMode,
)
from taskdaemon.pipeline.records import EdgeRecord, RunRecord, TriggerRecord
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.telemetry_codec import (
    decode_edge,
    decode_trigger,
    edges_of,
    encode_edge,
    encode_trigger,
    run_result,
    run_status_of_result,
    stage_result,
    stage_status_of_result,
    trigger_from_description,
    trigger_record,
    triggers_of,
)
from taskdaemon.pipeline.tracking import (
    SpanStore,
    encode_traces,
    open_source,
    parse_traces,
    reconstruct_run,
)
from taskdaemon.pipeline.visualization import dag_snapshot, render_dot, render_json

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "spans"

EVENT = 'build>ready "v1"'
FILTER = 'event.tag == "x>y"'
CONDITION = 'stages.build.status == "success"'

#: Every trigger kind, with the characters the text forms mangled.
TRIGGERS: tuple[Trigger, ...] = (
    Manual(),
    Manual(approval_required=True, timeout=90.0),
    Manual(approval_required=True),
    OnCompletion("plan"),
    OnCompletion("plan", success_only=False),
    OnEvent(EVENT, FILTER),
    OnEvent("plain"),
    OnCondition(CONDITION),
)

#: The pipeline of the schema 2 fixture (tests/fixtures/spans/README.md), run again today.
PIPELINE = pipeline(
    stage("plan"),
    stage("build", *after("plan", success_only=False), emits=(EVENT,)),
    stage("test", OnEvent(EVENT, FILTER)),
    stage("gate", OnCondition(CONDITION), *after("test"), trigger_mode=TriggerMode.ALL),
    stage("deploy", Manual(True, 90.0), *after("gate"), trigger_mode=TriggerMode.ANY),
    name="legacy-demo",
)


def test_stage_result_codes_round_trip() -> None:
    """Every stage status maps to its semconv result and back; a status that is not an end is
    written as ``error``, which reads back as a failure."""
    assert {status: stage_status_of_result(stage_result(status)) for status in StageStatus} == {
        StageStatus.PENDING: "failure",
        StageStatus.WAITING: "failure",
        StageStatus.QUEUED: "failure",
        StageStatus.RUNNING: "failure",
        StageStatus.RETRYING: "failure",
        StageStatus.PAUSED: "failure",
        StageStatus.SUCCESS: "success",
        StageStatus.FAILURE: "failure",
        StageStatus.TIMEOUT: "timeout",
        StageStatus.CANCELLED: "cancelled",
        StageStatus.SKIPPED: "skipped",
    }


def test_run_result_codes_round_trip() -> None:
    """The three end states of a run map to their semconv results and back."""
    ends = (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELLED)
    assert [run_result(status) for status in ends] == ["success", "failure", "cancellation"]
    assert [run_status_of_result(run_result(status)) for status in ends] == list(ends)
    assert "error" == run_result(RunStatus.RUNNING)


def test_foreign_result_codes_are_read_or_refused() -> None:
    """Results other producers write map to the nearest status; anything else is None."""
    assert [
        stage_status_of_result("error"),
        run_status_of_result("error"),
        run_status_of_result("timeout"),
        run_status_of_result("skip"),
        stage_status_of_result("bogus"),
        run_status_of_result(3),
    ] == ["failure", "failure", "failure", "cancelled", None, None]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda trigger: trigger.describe())
def test_every_trigger_round_trips(trigger: Trigger) -> None:
    """A trigger's spec decodes to the trigger, whatever its names hold, with or without the
    span's description at hand."""
    spec = encode_trigger(trigger)
    assert [trigger_record(trigger)] * 2 == [
        decode_trigger(spec),
        decode_trigger(spec, trigger.describe()),
    ]


def test_trigger_specs_are_kind_then_fields() -> None:
    """Each kind is written as the documented array: its kind, then its fields in order."""
    assert [encode_trigger(trigger) for trigger in TRIGGERS[1:6]] == [
        '["manual",true,90.0]',
        '["manual",true,null]',
        '["on_completion","plan",true]',
        '["on_completion","plan",false]',
        '["on_event","build>ready \\"v1\\"","event.tag == \\"x>y\\""]',
    ]
    assert '["on_condition","stages.build.status == \\"success\\""]' == encode_trigger(TRIGGERS[7])


def test_fields_a_later_schema_appends_are_ignored() -> None:
    """A spec with more items than this reader knows still gives the trigger."""
    assert TriggerRecord(
        "on_completion", "on completion of a (any result)", stage="a", success_only=False
    ) == decode_trigger('["on_completion","a",false,{"later":1}]')


def test_edge_labels_with_gt_and_quotes_round_trip() -> None:
    """An event edge whose type holds ``>`` and quotes keeps its label; so does a completion
    edge that accepts any result."""
    edges = (
        Edge("build", "test", OnEvent(EVENT, FILTER)),
        Edge("a", "b", OnCompletion("a", False)),
    )
    assert [decode_edge(encode_edge(edge)) for edge in edges] == [
        EdgeRecord("build", "test", 'on event\nbuild>ready "v1"'),
        EdgeRecord("a", "b", "on completion\n(any result)"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        encode_trigger(OnEvent(EVENT, FILTER))[:25],  # cut by an attribute length limit
        "[" * 100_000 + "]" * 100_000,  # nested past orjson's depth limit
        '["on_completion",1,true]',
        '["on_completion","a"]',
        '["on_event","x",false]',
        '["manual",true,true]',
        '["manual","yes",null]',
        '["on_condition"]',
        '["later_kind","x","y"]',
        '{"on_condition":"x"}',
        "[]",
        "null",
    ],
)
def test_malformed_trigger_specs_are_refused(text: str) -> None:
    """Cut, nested, mistyped or unknown specs decode to None, never to an exception, with or
    without a description."""
    assert (None, None) == (decode_trigger(text), decode_trigger(text, "on run start"))


def test_a_bad_spec_item_falls_back_to_its_description() -> None:
    """One spoiled item is read from the description at its place; the others from specs."""
    attributes = {
        t.STAGE_TRIGGERS: ("on completion of plan", "on condition x > 1", "something else"),
        t.STAGE_TRIGGER_SPECS: (encode_trigger(OnCompletion("plan")), '{"on_cond', "{}"),
    }
    assert triggers_of(attributes) == (
        TriggerRecord("on_completion", "on completion of plan", stage="plan", success_only=True),
        TriggerRecord("on_condition", "on condition x > 1", expression="x > 1"),
        TriggerRecord("unknown", "something else"),
    )


def test_edge_specs_win_and_bad_items_are_dropped() -> None:
    """Schema 3 edges come from the specs, an item that does not decode is left out, and a
    span without either form gives None (the caller then reads the upstream lists)."""
    good = encode_edge(Edge("a", "b", OnEvent("x>y")))
    assert edges_of({t.PIPELINE_EDGE_SPECS: (good, '["a","b",["on_condition","x"]]', "[")}) == (
        EdgeRecord("a", "b", "on event\nx>y"),
    )
    assert edges_of({t.PIPELINE_EDGES: ("a>b>on event\nx>y", "nonsense")}) == (
        EdgeRecord("a", "b", "on event\nx>y"),
    )
    assert edges_of({}) is None


class _Handlers:
    """``build`` publishes the event ``test`` waits for; the other stages do nothing."""

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def build(ctx: StageContext) -> Mapping[str, Any]:
            ctx.publish(EVENT, {"tag": "x>y"})
            return {}

        async def noop(ctx: StageContext) -> Mapping[str, Any]:
            return {}

        return build if stage.name == "build" else noop


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, str]:
    """PIPELINE run through the real engine and monitor into an embedded store."""
    db = tmp_path / "spans.db"
    return db, asyncio.run(run_into_store(db, PIPELINE, _Handlers()))


def _expected_triggers() -> list[tuple[TriggerRecord, ...]]:
    return [tuple(map(trigger_record, s.triggers)) for s in PIPELINE.stages]


def test_spans_give_back_the_definition_triggers_and_edges(stored: tuple[Path, str]) -> None:
    """From the spans alone, every trigger and edge is the definition's, and the DAG drawn
    from them has the definition's nodes and edges."""
    db, run_id = stored
    with SpanStore(db) as store:
        run = store.get_run(run_id)
    assert [s.trigger_specs for s in run.stages] == _expected_triggers()
    assert [(e.source, e.target, e.label) for e in run.edges] == [
        (e.source, e.target, e.label) for e in PIPELINE.edges
    ]
    from_spans, from_file = dag_snapshot(run=run), dag_snapshot(PIPELINE, run)
    assert (from_spans.edges, [n.triggers for n in from_spans.nodes]) == (
        from_file.edges,
        [n.triggers for n in from_file.nodes],
    )


@pytest.mark.slow
def test_tempo_payload_carries_the_specs_as_array_values(stored: tuple[Path, str]) -> None:
    """The run served as a Tempo v2 trace (base64 ids, enum numbers, ``arrayValue`` of
    ``stringValue`` specs) rebuilds to the store's run, specs included."""
    db, run_id = stored
    with SpanStore(db) as store:
        spans, expected = store.get_trace(run_id), store.get_run(run_id)
    body = {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}
    encoded = body["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    (edge_specs,) = (
        a["value"]
        for span in encoded
        for a in span["attributes"]
        if a["key"] == t.PIPELINE_EDGE_SPECS
    )
    assert {"stringValue": encode_edge(PIPELINE.edges[0])} == edge_specs["arrayValue"]["values"][0]
    with serve(Backend()) as tempo:
        tempo.route(f"/api/v2/traces/{run_id}", body)
        source = open_source(f"tempo+{tempo.url}")
        try:
            run = source.get_run(run_id)
        finally:
            source.close()
    assert expected == run
    assert [s.trigger_specs for s in run.stages] == _expected_triggers()


def _schema2_run() -> RunRecord:
    return reconstruct_run(parse_traces(json.loads((FIXTURES / "schema2_run.json").read_text())))


def test_spans_of_schema_2_are_still_read() -> None:
    """Spans written by the previous schema (text triggers, ``source>target>label`` edges) give
    their edges and the triggers their text can say; the spaced event type stays unknown."""
    run = _schema2_run()
    assert 2 == run.attributes[t.SCHEMA_VERSION]
    assert [(e.source, e.target, e.label) for e in run.edges] == [
        (e.source, e.target, e.label) for e in PIPELINE.edges
    ]
    expected = _expected_triggers()
    expected[2] = (TriggerRecord("unknown", OnEvent(EVENT, FILTER).describe()),)
    assert [s.trigger_specs for s in run.stages] == expected


def test_renders_of_schema_2_spans_are_unchanged() -> None:
    """DOT and JSON drawn from the schema 2 spans are the bytes the previous code drew."""
    run = _schema2_run()
    assert (FIXTURES / "schema2_run.dot").read_text() == render_dot(run=run)
    assert (FIXTURES / "schema2_run.dag.json").read_text() == render_json(run=run)


def test_an_unhashable_result_code_is_refused() -> None:
    """A result attribute that is an array (another producer's span) reads as no status, for a
    stage and for a run, rather than raising."""
    assert (None, None) == (stage_status_of_result(["success"]), run_status_of_result(["success"]))


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        (
            "manual approval",
            TriggerRecord("manual", "manual approval", approval_required=True, timeout=None),
        ),
        (
            "on event deploy",
            TriggerRecord("on_event", "on event deploy", event_type="deploy", filter=None),
        ),
        (
            "on event deploy if event.env == 'prod'",
            TriggerRecord(
                "on_event",
                "on event deploy if event.env == 'prod'",
                event_type="deploy",
                filter="event.env == 'prod'",
            ),
        ),
    ],
)
def test_schema_2_descriptions_of_approvals_and_events_are_read(
    description: str, expected: TriggerRecord
) -> None:
    """The ``describe()`` text of an approval without timeout and of an event trigger, with
    and without its filter, reads back as that trigger."""
    assert expected == trigger_from_description(description)


def test_a_spec_keeps_the_description_the_span_gives_beside_it() -> None:
    """A decoded spec is described by the span's own text at its place, not by the text this
    version's ``describe()`` would write."""
    attributes = {
        t.STAGE_TRIGGERS: ("when the plan is done",),
        t.STAGE_TRIGGER_SPECS: (encode_trigger(OnCompletion("plan")),),
    }
    assert (
        TriggerRecord("on_completion", "when the plan is done", stage="plan", success_only=True),
    ) == triggers_of(attributes)


def test_specs_past_the_descriptions_are_described_by_their_trigger() -> None:
    """A span with more specs than descriptions reads every spec; those without a description
    get the trigger's ``describe()`` text."""
    attributes = {
        t.STAGE_TRIGGERS: ("on completion of plan",),
        t.STAGE_TRIGGER_SPECS: (
            encode_trigger(OnCompletion("plan")),
            encode_trigger(OnCondition("x > 1")),
        ),
    }
    assert (
        TriggerRecord("on_completion", "on completion of plan", stage="plan", success_only=True),
        TriggerRecord("on_condition", "on condition x > 1", expression="x > 1"),
    ) == triggers_of(attributes)


def test_a_bad_spec_without_a_description_is_an_unknown_trigger_with_no_text() -> None:
    """A spec that does not decode, with no description at its place, is ``unknown`` with an
    empty description."""
    assert (TriggerRecord("unknown", ""),) == triggers_of({t.STAGE_TRIGGER_SPECS: ("[",)})


def test_a_single_string_attribute_is_one_item() -> None:
    """A trigger attribute given as one string (not an array) is read as a one-item array."""
    assert (TriggerRecord("manual", "on run start", approval_required=False),) == triggers_of(
        {t.STAGE_TRIGGERS: "on run start"}
    )


@pytest.mark.parametrize(
    "text",
    [
        '["a",5,["on_completion","a",true]]',
        '["a","b",["on_event","x",true]]',
        '["a","b",["manual","x",null]]',
    ],
)
def test_edge_specs_of_the_wrong_shape_are_refused(text: str) -> None:
    """An edge spec whose target is not a string, or whose trigger's fields are not those of a
    completion or an event, decodes to None."""
    assert decode_edge(text) is None


def test_a_schema_2_edge_without_a_label_has_an_empty_label() -> None:
    """``source>target`` (no label part) is the edge with an empty label."""
    assert edges_of({t.PIPELINE_EDGES: ("a>b",)}) == (EdgeRecord("a", "b", ""),)


_PLAIN_ITEMS = (
    '["a","b",["on_completion","a",true]]',
    '["a","c",["on_completion","a",false]]',
    '["é","\x7f",["on_event","",null]]',
    '["","d",["on_event","x>y","data.n == 1"]]',
)


def test_a_span_of_plain_edge_specs_reads_as_each_decoded() -> None:
    """A list whose every item is plain (no escape, a completion or event trigger of three
    fields) is read in one pass: the same edges and labels as each item decoded."""
    got = edges_of({t.PIPELINE_EDGE_SPECS: _PLAIN_ITEMS})
    assert got == tuple(map(decode_edge, _PLAIN_ITEMS))
    assert [edge.label for edge in got or ()] == [
        "on completion",
        "on completion\n(any result)",
        "on event\n",
        "on event\nx>y",
    ]


@pytest.mark.parametrize(
    "items",
    [
        # A line feed in one item and an empty one: as many lines as items, none an item.
        (f"{_PLAIN_ITEMS[0]}\n{_PLAIN_ITEMS[1]}", ""),
        # One item not plain but an edge (a later schema's field, an escape, a space).
        (_PLAIN_ITEMS[0], '["a","e",["on_completion","a",true,7]]'),
        (_PLAIN_ITEMS[0], '["a\\"","e",["on_event","t",null]]'),
        (_PLAIN_ITEMS[0], '["a", "e",["on_event","t",null]]'),
        # Items that are no edge beside plain ones: a lone surrogate, a bad field, a cut item.
        (_PLAIN_ITEMS[1], '["a","\ud800",["on_event","t",null]]'),
        (_PLAIN_ITEMS[1], '["a","b",["on_event","t",true]]'),
        (_PLAIN_ITEMS[2], '["a","b",["on_completion","a",true]'),
        # Quotes split across items: joined, the texts read as other arrays.
        ('["a","b', '",["on_completion","a",true]]'),
    ],
)
def test_edge_specs_not_all_plain_read_item_by_item(items: tuple[str, ...]) -> None:
    """A list with an item that is not a plain edge line gives what each item decodes to."""
    decoded = tuple(edge for edge in map(decode_edge, items) if edge is not None)
    assert edges_of({t.PIPELINE_EDGE_SPECS: items}) == (decoded or None)
