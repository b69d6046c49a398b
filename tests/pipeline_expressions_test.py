"""``expressions``: how an evaluation error reads where a pipeline's author meets it."""

from __future__ import annotations

import asyncio
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.cel_worker import shared_worker
from taskdaemon.pipeline.errors import ExpressionError
from taskdaemon.pipeline.expressions import Expression, compile_expression


@pytest.mark.slow
def test_a_condition_comparing_a_number_with_a_string_says_what_to_write(
    home: Path, tmp_path: Path
) -> None:
    """A newcomer's ``count > "3"`` over a command's ``{"count":5}`` skips its stage with the
    type mismatch and the hint to convert, whole: the binding's 400 characters of advice were
    cut to 200 in the skip reason, in the middle of its "common causes"."""
    write(
        tmp_path / "first.yaml",
        """\
        name: first
        stages:
          - name: fetch
            command: echo '{"count":5}'
            triggers: [{manual: {approval_required: false}}]
          - name: big
            command: "true"
            triggers: [{on_condition: {expression: 'stages.fetch.outputs.count > "3"'}}]
        """,
    )
    done = taskdaemon(home, "run", "-q", "first.yaml", cwd=tmp_path)
    assert 0 == done.returncode, done.stderr
    logs = taskdaemon(home, "logs", done.stdout.strip(), "--stage", "big")
    expected = (
        "stage big skipped: triggers can no longer fire: on condition "
        'stages.fetch.outputs.count > "3" (its last evaluation failed: No such overload: the '
        "operation is not defined for the given operand types (CEL converts no type: compare "
        "like with like, or convert with int(x), double(x) or string(x)))"
    )
    assert [expected] == [line.split("INFO    ", 1)[1] for line in logs.stdout.splitlines()]


@pytest.mark.slow
def test_a_key_a_stage_s_outputs_lack_names_the_keys_they_have(home: Path, tmp_path: Path) -> None:
    """A command that prints ``{count: 5}`` (the shell ate the quotes of ``echo {"count":5}``)
    gives no JSON object, so its outputs are ``stdout`` and ``exit_code``; the stage reading
    ``count`` from them fails naming the keys there are, which "no such key 'count'" alone
    left to be guessed."""
    write(
        tmp_path / "first.yaml",
        """\
        name: first
        stages:
          - name: fetch
            command: echo {"count":5}
            triggers: [{manual: {approval_required: false}}]
          - name: after
            command: "true"
            inputs: {n: stages.fetch.outputs.count}
            triggers: [{on_completion: {stage: fetch}}]
        """,
    )
    done = taskdaemon(home, "run", "-q", "first.yaml", cwd=tmp_path)
    expected = (
        f"taskdaemon run: run {done.stdout.strip()} failure: stage 'after' failure: missing "
        "required input 'n': 'stages.fetch.outputs.count': no such key 'count' "
        "(stages.fetch.outputs has: 'stdout', 'exit_code'; a command's result is the JSON object "
        'it prints, such as {"count": ...})'
    )
    assert (1, [expected]) == (done.returncode, done.stderr.splitlines())


#: Quadratic in the run's data: the estimate lets it through, 5,000 items take seconds, past
#: the CEL worker's 0.25 s limit.
PAIRS = "request.items.all(x, request.items.all(y, x + y >= 0))"


def messages(expression: Expression, *contexts: dict[str, Any]) -> list[str]:
    """The error each evaluation of ``expression`` over each context raises, as its type's
    name and its text."""
    said = []
    for context in contexts:
        with pytest.raises(ExpressionError) as caught:
            expression.evaluate(context)
        said.append(f"{type(caught.value).__name__}: {caught.value}")
    return said


def test_an_expression_over_the_time_limit_once_is_refused_after_without_evaluation() -> None:
    """The second evaluation of an expression that went over the worker's time limit is
    refused at once, saying so (a condition is evaluated again at every change of its run, and
    each attempt would cost the whole limit again), through ``evaluate_async`` too."""
    expression = compile_expression(PAIRS)
    big = {"request": {"items": list(range(5000))}}
    try:
        first, again = messages(expression, big, {"request": {"items": []}})
        with pytest.raises(ExpressionError) as in_async:
            asyncio.run(expression.evaluate_async({"request": {"items": []}}))
    finally:
        shared_worker().close()
    stopped = f"ExpressionError: {PAIRS!r}: evaluation stopped: over the time limit of 0.25 s"
    assert [stopped, f"{stopped} (not evaluated again)", f"{stopped} (not evaluated again)"] == [
        first,
        again,
        f"ExpressionError: {in_async.value}",
    ]


def test_a_missing_key_names_the_keys_beside_it_evaluated_in_or_out_of_process() -> None:
    """A key the data lacks names the keys of the mapping it was read from, ten at most and
    how many more, by their path; in the worker (a comprehension makes it isolated) too. A
    stage missing from ``stages`` names none (a condition waiting for it reads it so), and the
    first place the key is missing along the paths read is the one named, past a variable part
    it only tests with ``has``."""
    cfg = {f"k{n}": n for n in range(11)}
    near = compile_expression("request.cfg.count > 1")
    isolated = compile_expression("request.cfg.count > 1 || request.items.exists(i, i > 2)")
    assert isolated.isolated
    try:
        in_worker = asyncio.run(caught_async(isolated, {"request": {"cfg": cfg, "items": [1]}}))
    finally:
        shared_worker().close()
    missing = "no such key 'count' (request.cfg has: " + ", ".join(f"'k{n}'" for n in range(10))
    said = [
        *messages(
            near, {"request": {"cfg": cfg}}, {"request": {"cfg": dict(islice(cfg.items(), 10))}}
        ),
        in_worker,
        *messages(
            compile_expression("stages.fetch.outputs.n > 1"),
            {"stages": {"build": {"outputs": {}}}},
        ),
        *messages(
            compile_expression("has(request.opt) || request.cfg.count > 1"),
            {"request": {"cfg": {"cuont": 2}}},
        ),
    ]
    assert [
        f"MissingKeyError: 'request.cfg.count > 1': {missing} and 1 more)",
        f"MissingKeyError: 'request.cfg.count > 1': {missing})",
        "MissingKeyError: 'request.cfg.count > 1 || request.items.exists(i, i > 2)': "
        f"{missing} and 1 more)",
        "MissingKeyError: 'stages.fetch.outputs.n > 1': no such key 'fetch'",
        "MissingKeyError: 'has(request.opt) || request.cfg.count > 1': no such key 'count' "
        "(request.cfg has: 'cuont')",
    ] == said


async def caught_async(expression: Expression, context: dict[str, Any]) -> str:
    """The error ``evaluate_async`` raises, as :func:`messages` writes it."""
    with pytest.raises(ExpressionError) as caught:
        await expression.evaluate_async(context)
    return f"{type(caught.value).__name__}: {caught.value}"


def test_errors_of_compiling_and_of_types_say_what_is_wrong_in_one_line() -> None:
    """Compiling names the limit an expression is over, its estimated cost against the budget,
    or the parser's first line; evaluating a type mismatch gives the binding's first sentence
    and the hint to convert, its long advice left out; a long expression is quoted cut to 200
    characters."""
    refused = []
    for source in (
        "request." + ".".join(["a"] * 70),
        "request.items.map(x, request.items.map(y, request.items.map(z, x + y + z)))",
        "x(",
    ):
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source)
        refused.append(f"{type(caught.value).__name__}: {str(caught.value).splitlines()[0]}")
    long = "request.cfg.count > " + " + ".join(["1"] * 150)
    assert [
        "ExpressionLimitError: expression has a member chain longer than 64 steps",
        "ExpressionLimitError: estimated cost 7,040,402 is over the budget of 1,000,000 "
        "(a comprehension over a large list?)",
        "ExpressionError: does not compile: syntax error at column 3: the expression ends "
        "before the ')' that closes the '(' at column 2",
    ] == refused
    assert [
        "ExpressionError: 'request.n > \"3\"': No such overload: the operation is not defined "
        "for the given operand types (CEL converts no type: compare like with like, or convert "
        "with int(x), double(x) or string(x))",
        f"MissingKeyError: {long[:199] + '…'!r}: no such key 'count'",
    ] == [
        *messages(compile_expression('request.n > "3"'), {"request": {"n": 5}}),
        *messages(compile_expression(long), {"request": {"cfg": {}}}),
    ]
