"""``encode_triggers`` and ``encode_edges``: a whole definition's trigger and edge specs at once,
text for text what ``encode_trigger`` and ``encode_edge`` (orjson) write for each.

The batch writes the common triggers by hand when orjson would write their strings as they are;
these tests hold it to orjson for every character class orjson escapes or refuses, for those it
leaves alone (non-ASCII, DEL, the line separators), and for every kind and field shape.
"""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.model import Edge, Manual, OnCompletion, OnCondition, OnEvent, Trigger
from taskdaemon.pipeline.telemetry_codec import (
    encode_edge,
    encode_edges,
    encode_trigger,
    encode_triggers,
)

# Characters orjson escapes (quote, backslash, the C0 controls), and some it leaves as they are.
_ESCAPED = ['"', "\\", "\x00", "\n", "\t", "\x1f"]
_PLAIN = ["", "a", "s-1.x_y", "\x7f", "\x85", "\u2028", "\u2029", "/", "<&>", "é", "\U0001f600"]


def _triggers(name: str) -> list[Trigger]:
    return [
        OnCompletion(name),
        OnCompletion(name, success_only=False),
        OnEvent(name),
        OnEvent(name, f"event.x == '{name}'"),
        OnEvent("plain", name),
        OnCondition(name),
        Manual(),
        Manual(approval_required=True),
        Manual(approval_required=True, timeout=60.0),
        Manual(approval_required=False, timeout=1e20),
    ]


def _edges(name: str, triggers: list[Trigger]) -> list[Edge]:
    made = [t for t in triggers if isinstance(t, OnCompletion | OnEvent)]
    return [Edge(name, "target", t) for t in made] + [Edge("source", name, t) for t in made]


@pytest.mark.parametrize("name", _ESCAPED + _PLAIN + [f"x{c}y" for c in _ESCAPED + _PLAIN])
def test_batch_specs_are_the_specs_one_by_one(name: str) -> None:
    triggers = _triggers(name) + _triggers("ok")
    specs = encode_triggers(triggers)
    assert [specs[id(t)] for t in triggers] == [encode_trigger(t) for t in triggers]
    edges = _edges(name, triggers) + _edges("ok", triggers)
    assert encode_edges(edges, specs) == [encode_edge(e) for e in edges]


@pytest.mark.parametrize("name", ["\ud800", "a\udfffb"])
def test_a_lone_surrogate_is_refused_as_orjson_refuses_it(name: str) -> None:
    with pytest.raises(TypeError):
        encode_trigger(OnCompletion(name))
    with pytest.raises(TypeError):
        encode_triggers([OnCompletion("ok"), OnCompletion(name)])
    specs = encode_triggers([OnCompletion("ok")])
    with pytest.raises(TypeError):
        encode_edges([Edge(name, "t", OnCompletion("ok"))], specs)


def test_an_edge_whose_trigger_was_not_given_is_encoded_alone() -> None:
    edge = Edge("a", "b", OnEvent("t"))
    assert encode_edges([edge], {}) == [encode_edge(edge)]


def test_fields_of_other_types_go_through_orjson() -> None:
    # Not what the model's types say, but what a Pipeline built by hand may hold.
    odd: list[Trigger] = [OnCompletion("a", 1), Manual(1), OnEvent(("t",))]  # type: ignore[arg-type]
    specs = encode_triggers(odd)
    assert [specs[id(t)] for t in odd] == [
        '["on_completion","a",1]',
        '["manual",1,null]',
        '["on_event",["t"],null]',
    ]


def test_an_edge_after_one_encoded_alone_is_still_written() -> None:
    """An edge whose trigger was not given does not end the batch: the edges after it are
    written too, each as ``encode_edge`` writes it."""
    given, alone = OnCompletion("a"), OnEvent("t")
    edges = [Edge("a", "b", alone), Edge("a", "c", given)]
    assert encode_edges(edges, encode_triggers([given])) == [encode_edge(e) for e in edges]


def test_edge_names_of_other_types_go_through_orjson() -> None:
    """An edge whose source or target is not a string (a Pipeline built by hand) is written as
    orjson writes it, not quoted by hand."""
    trigger = OnCompletion("a")
    odd = [Edge("a", 2, trigger), Edge(1, "b", trigger)]  # type: ignore[arg-type]
    assert encode_edges(odd, encode_triggers([trigger])) == [
        '["a",2,["on_completion","a",true]]',
        '[1,"b",["on_completion","a",true]]',
    ]


def test_a_completion_of_a_stage_name_of_another_type_goes_through_orjson() -> None:
    """A completion trigger whose stage is not a string is written as orjson writes it."""
    odd = OnCompletion(3)  # type: ignore[arg-type]
    assert {id(odd): '["on_completion",3,true]'} == encode_triggers([odd])
