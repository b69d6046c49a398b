"""A CEL expression that does not parse, said in its author's terms.

The binding's parser (ANTLR's) words its errors for those who wrote the grammar: ``token
recognition error at: '‘'``, ``mismatched input '<EOF>' expecting {'[', '{', ...}``,
``extraneous input ')' expecting <EOF>``, ``Failed to parse expression '...': ERROR:
<input>:1:22: invalid int literal``. :func:`described` keeps the position (the column inside
the expression, and its line when the expression has several) and says the problem in plain
words, the token it stopped at quoted (redacted and cut, as every message quotes what a user
wrote), with what the author most likely meant when the slip is a common one (``=`` for
``==``, Python's ``and``, a typographic quote, a bracket never closed). A problem it has no
words for is shown as the parser says it, without its list of expected tokens.

The caret of the parser's own text is not kept: a finding is one line (``FILE:LINE: PATH:
REASON``), and a caret needs a line of its own under the expression's.
"""

from __future__ import annotations

import re

from taskdaemon.pipeline.quoting import quote

__all__ = ["described", "message_position"]

_ERROR = re.compile(r"<input>:(\d+):(\d+): (Syntax error: )?([^\n]*)")
#: The position :func:`_where` says, at the start of a message of :func:`described`, or of
#: ``cel_functions.unknown_function``'s (whose name is a word: never a quote in it).
_POSITION = re.compile(
    r"(?:syntax error|unknown function '\w+') at (?:line (\d+), )?column (\d+)(?![\d,])"
)
#: The operators other languages spell with one character (or a word) where CEL doubles it.
_MEANT = {"=": "CEL compares with ==", "&": "CEL's and is &&", "|": "CEL's or is ||"}
_WORDS = {
    "and": "CEL's and is &&",
    "or": "CEL's or is ||",
    "is": "CEL compares with ==, and writes None as null",
    "not": "CEL's not is !",
}
_LONGEST_WORD = max(map(len, _WORDS))
_CURLY_QUOTES = frozenset("‘’‚“”„«»")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_LITERALS = {
    "invalid int literal": "the integer is out of CEL's int range (64 bits)",
    "invalid uint literal": "the integer is out of CEL's uint range (64 bits)",
    "invalid double literal": "the number is out of CEL's double range",
}


def described(source: str, error: str) -> str | None:
    """``syntax error at column C: PROBLEM`` (``line L, column C`` past the first line) for the
    first error of the binding's text ``error`` on ``source``, else None."""
    errors = list(_ERROR.finditer(error))
    # A syntax error first: the parser's own complaints beside it (``Incomplete
    # `ExprContext` for `_?_:_` expression!``) follow from it and name its internals.
    found = next((each for each in errors if each[3]), errors[0] if errors else None)
    if found is None:
        return None
    line, column, problem = int(found[1]), int(found[2]), found[4]
    before = _before(source, line, column)
    # The list follows the token's closing quote; the token (a string) may hold the words.
    cut = problem.rfind("' expecting {")
    if cut != -1:
        if problem.startswith("mismatched input '<EOF>'") and "':'" in problem[cut:]:
            return f"syntax error at {_where(line, column)}: the '?' has no ':' and else-value"
        problem = problem[: cut + 1]
    return f"syntax error at {_where(line, column)}: {_plain(problem, before)}"


def message_position(message: str) -> tuple[int, int] | None:
    """The line and column of the expression that a message of :func:`described`, or an
    unknown function's, names (``line 2, column 3``; ``column 3``: line 1), else None."""
    found = _POSITION.match(message)
    return None if found is None else (int(found[1] or 1), int(found[2]))


def _where(line: int, column: int) -> str:
    return f"column {column}" if line == 1 else f"line {line}, column {column}"


def _token(problem: str) -> str:
    """The token a parser's problem quotes first (``mismatched input ',' expecting ']'``:
    ``,``), which may hold a quote itself (``token recognition error at: ''abc'``)."""
    start = problem.find("'")
    if start == -1:
        return ""
    stop = problem.find("' at '") if problem.startswith("missing ") else -1
    if stop == -1:
        expecting = problem.rfind("' expecting ")
        stop = problem.rfind("'", start + 1, expecting + 1 if expecting != -1 else len(problem))
    return problem[start + 1 : stop] if stop > start else ""


def _before(source: str, line: int, column: int) -> str:
    """The text of ``source`` before the error's position (its line and column, from 1)."""
    lines = source.split("\n")
    if line > len(lines):
        return source
    return "\n".join([*lines[: line - 1], lines[line - 1][: column - 1]])


def _plain(problem: str, before: str) -> str:
    """The parser's ``problem`` in plain words; ``before``: the expression up to it."""
    if problem in _LITERALS:
        return _LITERALS[problem]
    text = _token(problem)
    if problem.startswith("token recognition error"):
        return _unrecognised(text)
    at_end = text == "<EOF>"
    if problem.startswith("missing "):
        tail = problem.split(" at ", 1)[-1]  # a grammar's token, then the user's
        place = "at the end" if tail == "'<EOF>'" else f"before {tail}"
        return f"{quote(text)} missing {place}"
    if at_end:
        return _ended(before)
    said = f"unexpected {quote(text)}"
    if problem.endswith("expecting <EOF>"):
        closes = text in _CLOSERS.values()
        return said + (" (nothing open to close)" if closes else " after a complete expression")
    # Only a short word matters: the end of a long one is read, never the whole (an anchored
    # pattern searched over ``before`` would try again from each of its characters).
    word = re.search(r"\w+$", before.rstrip()[-_LONGEST_WORD - 1 :])
    if text in _WORDS:
        return f"{said} ({_WORDS[text]})"
    if word and word[0] in _WORDS:  # `not x`: the parser stops at x, after the word
        return f"unexpected {quote(word[0])} ({_WORDS[word[0]]})"
    if text == ">" and before.endswith("<"):
        return "unexpected '<>' (CEL's not-equal is !=)"
    expecting = re.search(r" expecting ('[^']+')$", problem)
    return said + (f" ({expecting[1]} expected)" if expecting else "")


def _unrecognised(text: str) -> str:
    """A character the lexer could not start a token with (``text``: from it on)."""
    first = text[:1]
    if first in _MEANT:
        return f"{quote(first)} ({_MEANT[first]})"
    if first in {"'", '"'}:
        escape = re.search(r"\\(.)", text)
        if escape:
            return f"unknown escape {quote(escape[0])} in a string (a backslash is written \\\\)"
        return f"the string opened with {first} is never closed"
    if first in _CURLY_QUOTES:
        return f"{quote(first)} is not a quote in CEL (write ' or \")"
    if first == ";":
        return "unexpected ';' (an expression has no ';')"
    if not first.isascii() and first.isalnum():
        return f"unexpected {quote(first)} (CEL's names are ASCII letters, digits and _)"
    return f"unexpected character {quote(first)}"


def _ended(before: str) -> str:
    """The expression ended where more was needed: a bracket still open, else what it ended
    after."""
    if not before.strip():
        return "the expression is empty"
    opened = _open_bracket(before)
    if opened is not None:
        char, where = opened
        closer = quote(_CLOSERS[char])
        return f"the expression ends before the {closer} that closes the {quote(char)} at {where}"
    return f"the expression ends at {quote(before.rsplit(maxsplit=1)[-1])}, with nothing after it"


def _open_bracket(text: str) -> tuple[str, str] | None:
    """The innermost bracket of ``text`` never closed, with where it is (``column 3``, or
    ``line 2, column 3`` in an expression of several lines), outside strings."""
    stack: list[tuple[str, str]] = []
    quote_char = ""
    escaped = False
    line, column = 1, 0
    for char in text:
        if char == "\n":
            line, column = line + 1, 0
            continue
        column += 1
        if quote_char:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote_char:
                quote_char = ""
        elif char in "'\"":
            quote_char = char
        elif char in _CLOSERS:
            stack.append(
                (char, f"column {column}" if line == 1 else f"line {line}, column {column}")
            )
        elif stack and char == _CLOSERS[stack[-1][0]]:
            stack.pop()
    return stack[-1] if stack else None
