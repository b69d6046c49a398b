"""A CEL expression that does not parse, or calls a function CEL lacks, said in the file's terms
(``cel_syntax``, ``cel_functions``). Before, the parser's own words reached the author
(``token recognition error at: '‘'``, ``mismatched input '<EOF>'``, ``extraneous input ')'
expecting <EOF>``, ``Failed to parse expression '...': ERROR: <input>:1:22: invalid int
literal``), and ``len(x)`` or ``foo(x)`` validated as OK, failing only at run time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline._cel import cel
from taskdaemon.pipeline.cel_functions import FUNCTIONS
from taskdaemon.pipeline.cel_syntax import described
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import ConfigError, ExpressionError
from taskdaemon.pipeline.expressions import compile_expression
from taskdaemon.pipeline.model import OnCondition, Pipeline, Stage
from taskdaemon.pipeline.validation import validate_pipeline

#: Broken expressions as authors write them, and what each is said to be.
_SAID = {
    "(stages.a.status == 'success'": "syntax error at column 30: ')' missing at the end",
    "stages.a.status == 'success')": "syntax error at column 29: unexpected ')' (nothing open "
    "to close)",
    "stages.a.status == 'success": "syntax error at column 20: the string opened with ' is "
    "never closed",
    "stages.a.outputs.n > 99999999999999999999999999": "syntax error at column 22: the integer "
    "is out of CEL's int range (64 bits)",
    "stages.a.outputs.n > 1e999": "syntax error at column 22: the number is out of CEL's double "
    "range",
    "stages.a.status == ‘success’": "syntax error at column 20: '‘' is not a quote in CEL "
    "(write ' or \")",
    "stages.a.status == 'succès' && é": "syntax error at column 32: unexpected 'é' (CEL's names "
    "are ASCII letters, digits and _)",
    "stages.a.status ==": "syntax error at column 19: the expression ends at '==', with "
    "nothing after it",
    "not stages.a.outputs.ok": "syntax error at column 5: unexpected 'not' (CEL's not is !)",
    "stages.a.outputs.x is None": "syntax error at column 20: unexpected 'is' (CEL compares "
    "with ==, and writes None as null)",
    "stages.a.outputs.n <> 1": "syntax error at column 21: unexpected '<>' (CEL's not-equal is !=)",
    "{'a': 1": "syntax error at column 8: the expression ends before the '}' that closes the "
    "'{' at column 1",
    "stages.a.outputs.n in [1,\n 2": "syntax error at line 2, column 3: the expression ends "
    "before the ']' that closes the '[' at column 23",
    "[1, 2,, 3]": "syntax error at column 7: unexpected ',' (']' expected)",
    "stages.a.outputs.ok ? 1": "syntax error at column 24: the '?' has no ':' and else-value",
    "stages.a.outputs.n > 1.2.3": "syntax error at column 25: unexpected '.3' after a complete "
    "expression",
    "stages.a.outputs.ok;": "syntax error at column 20: unexpected ';' (an expression has no ';')",
    '"a\\q" == stages.a.outputs.s': "syntax error at column 1: unknown escape '\\q' in a "
    "string (a backslash is written \\\\)",
    "": "syntax error at column 1: the expression is empty",
    "stages.a.status = 'success'": "syntax error at column 17: '=' (CEL compares with ==)",
    "stages.a.outputs.n > 1 € 2": "syntax error at column 24: unexpected character '€'",
    "[1, 2 3]": "syntax error at column 7: unexpected '3'",
    "stages.a.outputs.n >> 2": "syntax error at column 21: unexpected '>'",
    "!": "syntax error at column 2: the expression ends at '!', with nothing after it",
    "stages.a.outputs.n > 1 &&": "syntax error at column 26: the expression ends at '&&', with "
    "nothing after it",
    "true &&\n not stages.a.outputs.ok": "syntax error at line 2, column 6: unexpected 'not' "
    "(CEL's not is !)",
    # Brackets inside strings (an empty one, an escaped quote) are not counted; an X is a name.
    "stages.a.outputs.X in ['', 'it\\'s (', \"[\"] &&\n  size(stages.a.outputs.items,": "syntax "
    "error at line 2, column 31: the expression ends before the ')' that closes the '(' at "
    "line 2, column 7",
    "'' == stages.a.outputs.s && (": "syntax error at column 30: the expression ends before the "
    "')' that closes the '(' at column 29",
    "[stages.a.outputs.s, 'a('": "syntax error at column 26: the expression ends before the ']' "
    "that closes the '[' at column 1",
    # A string may hold the parser's own words ("expecting {", "' at '"): the token is whole.
    "'a expecting {b": "syntax error at column 1: the string opened with ' is never closed",
    "a 'x expecting y'": "syntax error at column 3: unexpected \"'x expecting y'\" after a "
    "complete expression",
    'a "x\' expecting y"': 'syntax error at column 3: unexpected "\\"x\' expecting y\\"" after '
    "a complete expression",
    "(a 'x expecting {y}'": "syntax error at column 4: unexpected \"'x expecting {y}'\"",
    "(a \"x' at 'y\"": 'syntax error at column 4: unexpected "\\"x\' at \'y\\""',
    "{'a' \"' at '\" 1}": "syntax error at column 6: ':' missing before '\"' at '\"'",
    "len(stages.a.outputs.items) > 0": "unknown function 'len' at column 1 (did you mean 'size'?)",
    "stages.a.outputs.s.lower() == 'x'": "unknown function 'lower' at column 20",
    "stages.a.outputs.s.startswith('x')": "unknown function 'startswith' at column 20 (did you "
    "mean 'startsWith'?)",
    # The line counted past the first, the column from the line's own start.
    "\nstages.a.outputs.ok &&\n  len(stages.a.outputs.items) > 0\n  && true": "unknown function "
    "'len' at line 3, column 3 (did you mean 'size'?)",
    "\n  len(stages.a.outputs.items) > 0": "unknown function 'len' at line 2, column 3 (did you "
    "mean 'size'?)",
    # A comment between the name and its '(': the call is refused, without a place.
    "stages.a.outputs.s.lower // why\n() == 'x'": "unknown function 'lower'",
}
#: What the parser calls things, which no message may show.
_INTERNAL = (
    "<EOF>",
    "mismatched",
    "extraneous",
    "token recognition",
    "viable",
    "ExprContext",
    "Failed to parse",
    "<input>",
    "expecting",
)


def test_each_broken_expression_is_said_in_plain_words() -> None:
    said = {}
    for source in _SAID:
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source)
        said[source] = str(caught.value).removeprefix("does not compile: ")
    assert _SAID == said


def test_no_message_names_the_parsers_internals() -> None:
    """Beyond the cases above: whatever the parser stops at, its words stay out."""
    sources = [*_SAID, "stages.a.", "stages..a", "== 1", "stages.a.outputs.n >> 2", "0x", "a.b("]
    for source in sources:
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source)
        # A word of the parser's that the author wrote, quoted back, is theirs.
        shown = [word for word in _INTERNAL if word in str(caught.value) and word not in source]
        assert (source, []) == (source, shown)


def test_every_listed_function_is_one_the_binding_evaluates() -> None:
    """A release of the binding that drops a function fails here, not in an author's run."""
    when = 'timestamp("2020-01-01T00:00:00Z")'
    calls = {
        "size": "size('ab')",
        "int": "int('1')",
        "uint": "uint(1)",
        "double": "double(1)",
        "string": "string(1)",
        "bytes": "bytes('a')",
        "type": "type(1)",
        "dyn": "dyn(1)",
        "timestamp": when,
        "duration": 'duration("1h")',
        "contains": "'ab'.contains('a')",
        "startsWith": "'ab'.startsWith('a')",
        "endsWith": "'ab'.endsWith('b')",
        "matches": "'ab'.matches('a.')",
        **{
            name: f"{when}.{name}()"
            for name in FUNCTIONS
            if name.startswith("get") and name != "getDate"
        },
        "getDate": f"{when}.getDate()",
        "of": "optional.of(1)",
        "none": "optional.none()",
        "ofNonZeroValue": "optional.ofNonZeroValue(1)",
        "hasValue": "optional.of(1).hasValue()",
        "value": "optional.of(1).value()",
        "or": "optional.none().or(optional.of(1)).value()",
        "orValue": "optional.none().orValue(1)",
    }
    assert set(calls) == FUNCTIONS
    for name, call in calls.items():
        program = cel.compile(call)
        assert name in program.functions()
        program.execute({})  # raises on a function the binding does not have
        if not call.startswith("optional."):  # `optional` reads as a variable outside the context
            compile_expression(call)


@pytest.mark.slow
def test_validate_says_each_in_the_files_terms(home: Path, tmp_path: Path) -> None:
    """Through the real command: ``FILE:LINE: PATH: REASON``, one line per broken expression,
    the line of its own trigger; a syntax error's ``FILE:LINE:COLUMN:``, the column of its
    place in the file."""
    broken = ["stages.a.status = 'success'", "len(stages.a.outputs.items) > 0", "(true"]
    lines = ["name: demo", "stages:", "  - name: a", "    command: 'true'"]
    lines += ["    triggers: [{manual: {}}]"]
    for index, source in enumerate(broken):
        lines += [f"  - name: s{index}", "    command: 'true'", "    triggers:"]
        lines += ["      - on_condition:", f"          expression: {json.dumps(source)}"]
    path = write(tmp_path / "broken.yaml", "\n".join(lines) + "\n")
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    assert (2, "") == (done.returncode, done.stderr)
    where = "triggers[0].on_condition.expression"
    assert [
        f"{path}:10:40: stages[1].{where}: syntax error at column 17: '=' (CEL compares with ==)",
        f"{path}:15:24: stages[2].{where}: unknown function 'len' at column 1 "
        "(did you mean 'size'?)",
        f"{path}:20:28: stages[3].{where}: syntax error at column 6: ')' missing at the end",
    ] == done.stdout.splitlines()


def test_an_unknown_function_is_on_its_call_s_line_and_column() -> None:
    """An unknown function's call on the second line of a TOML string is on the file's line
    and column of it, as a syntax error is."""
    text = (
        'name = "p"\n[[stages]]\nname = "a"\ncommand = "true"\n'
        'triggers = [{on_condition = {expression = """\ntrue &&\n  len("x") > 0\n"""}}]\n'
    )
    with pytest.raises(ConfigError) as raised:
        parse_pipeline(text, fmt="toml", source="p.toml", registered_loops=())
    assert [
        "p.toml:7:3: stages[0].triggers[0].on_condition.expression: unknown function 'len' at "
        "line 2, column 3 (did you mean 'size'?)"
    ] == [str(issue) for issue in raised.value.issues]


def _binding_error(source: str) -> str:
    try:
        cel.compile(source)
    except BaseException as exc:  # the binding's ValueError
        return str(exc)
    raise AssertionError(f"{source!r} compiled")


def test_a_long_word_before_the_error_is_read_in_time_linear_in_it() -> None:
    """An error after a word of 8,000 characters (the most ``cel_limits`` lets through): the
    plain words take no time. Before, the check for a word such as ``not`` before the error
    was a pattern anchored at the end, tried again from each character of the word: time
    by the square of its length, and ``validate`` said it twice."""
    source = "f(" + "a" * 8000 + " ,,)"
    error = _binding_error(source)
    started = time.process_time()
    said = described(source, error)
    assert time.process_time() - started < 0.1
    assert said == "syntax error at column 8005: unexpected ','"


def test_validate_compiles_a_broken_expression_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The binding's error on a long line quotes the line at each of its errors, long to
    make: ``validate`` now says it from the one compilation. Before, it compiled the
    expression again to say it."""
    compiled: list[str] = []
    real = cel.compile

    def counted(source: str) -> object:
        compiled.append(source)
        return real(source)

    monkeypatch.setattr(cel, "compile", counted)
    stage = Stage(name="a", loop="command", command="true", triggers=(OnCondition("x ‘‘ 1"),))
    issues = validate_pipeline(Pipeline(name="p", stages=(stage,)))
    assert [issue.message for issue in issues] == [
        "syntax error at column 3: '‘' is not a quote in CEL (write ' or \")"
    ]
    assert compiled == ["x ‘‘ 1"]
