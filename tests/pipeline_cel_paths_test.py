"""In-process CEL evaluations are given only the parts of their variables they can read."""

from __future__ import annotations

import re
from typing import Any

import pytest

from taskdaemon.pipeline.cel_paths import read_paths
from taskdaemon.pipeline.errors import ExpressionError
from taskdaemon.pipeline.expressions import CONTEXT_VARIABLES, Expression, compile_expression

REQUEST: dict[str, Any] = {
    "go": True,
    "n": 2,
    "k": "b",
    "s": "text",
    "l": [1, 2, 3],
    "a": {"b": "x", "c": {"d": 4}, "e": None},
    "m": {"a": 1, "b": 2},
    "a-b": {"c": 5},
    "big": "x" * 1000,
}
STAGES: dict[str, Any] = {"s": {"status": "success", "outputs": {"v": 3, "request": 7}}}
EVENT: dict[str, Any] = {"type": "t", "payload": {"ok": True, "items": [1]}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("request.go", {"request": {"go": None}}),
        ("has(request.a.b)", {"request": {"a": {"b": None}}}),
        ("request['a-b'].c", {"request": {"a-b": {"c": None}}}),
        ("request.a.b || request.a", {"request": {"a": None}}),
        ("request.a.size() > 0", {"request": {"a": None}}),
        ("request.l[0] == 1", {"request": {"l": None}}),
        ("request.m[request.k] == 2", {"request": {"m": None, "k": None}}),
        ("size(request) > 0", {"request": None}),
        ("'request.x' == request.s", {"request": {"s": None}}),
        ("stages.s.outputs.request > 1", {"stages": {"s": {"outputs": {"request": None}}}}),
        ("[1, 2].map(request, request + 1) == [2, 3]", None),
    ],
)
def test_the_paths_read_are_told_from_the_tokens(
    source: str, expected: dict[str, Any] | None
) -> None:
    """Each variable's paths stop where a read is no longer a plain member (None: all whole)."""
    assert expected == read_paths(source, CONTEXT_VARIABLES)


def whole(expression: Expression) -> Expression:
    """``expression`` as it was evaluated before: every variable given whole."""
    return Expression(
        expression.source,
        expression.variables,
        expression._program,
        expression.isolated,
        expression.cost,
    )


def outcome(expression: Expression, context: dict[str, Any]) -> object:
    """The value of ``expression`` over ``context``, or its error's type and message."""
    try:
        return expression.evaluate(context)
    except ExpressionError as exc:
        # Without the keys a missing key's mapping has: they are found along the paths the
        # expression reads, and :func:`whole` has none.
        return (type(exc).__name__, re.sub(r" \([\w.]+ has: .*\)$", "", str(exc)))


@pytest.mark.parametrize(
    "source",
    [
        "request.go",
        "request.n + 1",
        "request.a.b == 'x'",
        "request.a.c.d * 2",
        "request['a']['c']['d']",
        "request['a-b'].c",
        "has(request.a.b)",
        "has(request.a.zz)",
        "has(request.a.c.d) && !has(request.a.c.zz)",
        "has(request.nope)",
        "request.a.e == null",
        "request.nope.x",
        "request.a.zz",
        "request.s.x",
        "request.a.b + 1",
        "request.a.b.size()",
        "request.m[request.k]",
        "request.m[request.s]",
        "request.l[1]",
        "request.l[7]",
        "size(request.m) + size(request)",
        "'b' in request.m && 'zz' in request.m",
        "request.a.b == 'x' ? request.a.c : request.m",
        "[1, 2, 3].exists(x, x == 2) == (request.n > 0)",
        "[1, 2].map(x, x + 1) == [request.a.c.d, 3]",
        "{'k': request.a.c}.k.d",
        "request.go && stages.s.outputs.v > 2 && stages.s.status == 'success'",
        "stages.s.outputs.request",
        "has(stages.s.outputs.zz)",
        "event.payload.ok && size(event.payload.items) == 1",
        "request",
        "request.a",
    ],
)
def test_an_expression_reads_the_same_from_the_parts(source: str) -> None:
    """Given only the parts it reads, an expression has the value or error it had given all."""
    expression = compile_expression(source)
    context = {"request": REQUEST, "stages": STAGES, "event": EVENT}
    context = {name: value for name, value in context.items() if name in expression.variables}
    assert (False, outcome(whole(expression), context)) == (
        expression.isolated,
        outcome(expression, context),
    )


def test_a_part_not_read_is_not_converted() -> None:
    """A value the binding cannot convert, where the expression never reads, is not converted."""
    expression = compile_expression("request.go")
    assert True is expression.evaluate({"request": {"go": True, "other": object()}})


@pytest.mark.usefixtures("cel_worker")
def test_the_worker_is_sent_only_the_parts_an_expression_reads() -> None:
    """An expression evaluated in the CEL worker (a comprehension over the run's data) is sent
    only the parts it reads: a value that cannot be pickled beside them no longer fails it,
    and the answer is the one the whole request gives."""
    expression = compile_expression("request.l.exists(x, x == 2) && request.go")
    readable = {"request": {"l": [1, 2], "go": True, "a": {"b": 1}}}
    beside = {"request": {**readable["request"], "handle": lambda: None}}
    expected = (True, True, True)
    assert expected == (
        expression.isolated,
        expression.evaluate(readable),
        expression.evaluate(beside),
    )


@pytest.mark.usefixtures("cel_worker")
async def test_the_worker_is_sent_only_the_parts_read_when_awaited() -> None:
    """``evaluate_async`` sends the worker the same parts as ``evaluate``."""
    expression = compile_expression("request.l.exists(x, x == 2)")
    context = {"request": {"l": [1, 2], "handle": lambda: None}}
    assert True is await expression.evaluate_async(context)
