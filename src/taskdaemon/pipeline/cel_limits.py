"""Static limits of CEL expressions, checked before the CEL library ever sees them.

The Rust CEL binding crashes the process on some inputs (a segfault on 22,000 ``+`` terms or a
21,000-deep field chain, a ``PanicException`` on 100,000 nested parentheses) and has no cost
limit, so an expression is first scanned here, in time linear in its length:

* :func:`check_limits` refuses an expression longer than :data:`MAX_LENGTH` characters, nested
  deeper than :data:`MAX_NESTING` brackets, with more than :data:`MAX_OPERATORS` operators,
  a member chain (``a.b[0].c()``) longer than :data:`MAX_CHAIN` or more than
  :data:`MAX_UNREADABLE` characters the binding's lexer cannot read;
* :func:`estimate_cost` estimates, like Kubernetes' static cost estimator, how many steps one
  evaluation takes: a comprehension (``all``, ``exists``, ``exists_one``, ``map``, ``filter``)
  costs its receiver's size times its body. A list or map literal has its own size; a list
  from the run's data (``request.items``) is assumed to hold :data:`ASSUMED_DATA_SIZE`
  elements. An estimate over :data:`COST_BUDGET` is refused when the pipeline is validated.
  A ``+`` chain joining more than :data:`IN_PROCESS_DATA_TERMS` values of the run's data is
  data-bound work as well: each ``+`` copies what came before, so its cost grows with the
  square of the terms times their real size, which only the evaluation knows. So are more
  than :data:`IN_PROCESS_DATA_READS` reads of the run's variables: the binding copies the
  value at each read. A read in a comprehension's body over a literal list counts once an
  element (the binding copies what the body reads at each one), and in a ``map``'s once
  more for each result before it (its growing result is copied too): a small filter reading
  the run's data stays in-process, hundreds of elements of it do not.

The numbers and their reasons are in docs/cel-limits.md. Pure: no CEL, no I/O.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

from taskdaemon.pipeline.ellipsis import cut_line
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "ASSUMED_DATA_SIZE",
    "COST_BUDGET",
    "IN_PROCESS_COST",
    "IN_PROCESS_DATA_READS",
    "IN_PROCESS_DATA_TERMS",
    "MAX_CHAIN",
    "MAX_LENGTH",
    "MAX_NESTING",
    "MAX_OPERATORS",
    "MAX_UNREADABLE",
    "CostEstimate",
    "LimitError",
    "check_limits",
    "clip",
    "estimate_cost",
    "tokens",
]

#: Longest expression, in characters.
MAX_LENGTH: Final = 8192
#: Deepest nesting of ``()``, ``[]`` and ``{}``.
MAX_NESTING: Final = 32
#: Most operators (``+ - * / % == != < <= > >= && || ! ? in``) in one expression.
MAX_OPERATORS: Final = 1000
#: Longest member chain: ``.field``, ``[index]`` and ``.method()`` steps after one operand.
MAX_CHAIN: Final = 64
#: Most characters the binding's lexer cannot read (outside strings and comments: ``‘``, ``é``,
#: ``#``, a lone ``=``). Its error text quotes the whole line again at each of them, so its
#: size grows with their number times the line's length; its parser stops at 32 errors of
#: its own, and so does this.
MAX_UNREADABLE: Final = 32
#: Largest static cost estimate accepted (Kubernetes' per-call limit, about 0.1 s).
COST_BUDGET: Final = 1_000_000
#: Estimates up to this, with no data-bound work (``iterates_data``), evaluate in-process.
IN_PROCESS_COST: Final = 10_000
#: The size assumed for a list or map taken from the run's data.
ASSUMED_DATA_SIZE: Final = 100
#: Most values of the run's data one ``+`` chain joins in-process. Joining that many copies each
#: value a few times, the order of the work of converting them for the binding; in a longer
#: chain of long strings or lists each ``+`` copies all that came before, on the event loop,
#: with no time or memory bound there: such a chain goes to the worker.
IN_PROCESS_DATA_TERMS: Final = 4
#: Most reads of the run's variables (``request``, ``stages``...) one expression makes
#: in-process. The binding copies the value read at each read: a condition reads a few, and
#: hundreds of reads of one long value (a list of it, an ``||`` over it) are copies of it.
IN_PROCESS_DATA_READS: Final = 16

_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
_OPERATORS: Final = frozenset(
    {"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "?", "in"}
)
_BINARY: Final = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "in": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
}
_OPENING: Final = {"(": ")", "[": "]", "{": "}"}
#: The tokenizer's pattern, compiled at the first check (``_tokens``): a pipeline without
#: expressions never needs it, and compiling it is a visible part of ``run``'s start-up.
_LEXEMES = r"""
    (?P<space>\s+|//[^\n]*)
    | (?P<string>[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"
                            |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[uU]?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])
    | (?P<other>.)
    """


class LimitError(ValueError):
    """An expression over a static limit; ``str()`` is one line."""


def clip(source: str, width: int) -> str:
    """``source`` on one line, cut to ``width`` characters with an ellipsis, for messages."""
    return cut_line(source, width)


@cache
def _lexer() -> re.Pattern[str]:
    return re.compile(_LEXEMES, re.VERBOSE)


def _tokens(source: str) -> list[str]:
    return [m.group() for m in _lexer().finditer(source) if m.lastgroup != "space"]


def tokens(source: str) -> list[str]:
    """``source``'s tokens as the limits read them: identifiers, literals (a string literal
    whole, quotes and prefix included), operators and brackets, without spaces and comments."""
    return _tokens(source)


def check_limits(source: str) -> None:
    """LimitError if ``source`` is over a size or nesting limit (module docstring)."""
    if len(source) > MAX_LENGTH:
        raise LimitError(f"is {len(source)} characters long (the limit is {MAX_LENGTH})")
    depth = operators = 0
    unreadable: list[int] = []  # where the characters CEL cannot read are
    chains = [0]
    previous = ""
    for match in _lexer().finditer(source):
        if match.lastgroup == "space":
            continue
        piece = match.group()
        if match.lastgroup == "other":
            unreadable.append(match.start())
            if len(unreadable) > MAX_UNREADABLE:
                first = unreadable[0]
                raise LimitError(
                    f"has more than {MAX_UNREADABLE} characters CEL cannot read outside "
                    f"strings (the first, {quote(source[first])}, at {_where(source, first)})"
                )
        if piece in _OPENING:
            if piece == "[" and _ends_operand(previous):
                chains[-1] += 1  # an index step of the current chain
            depth += 1
            if depth > MAX_NESTING:
                raise LimitError(f"nests brackets deeper than {MAX_NESTING} levels")
            chains.append(0)
        elif piece in (")", "]", "}"):
            depth = max(depth - 1, 0)
            if len(chains) > 1:
                chains.pop()
        elif piece == ".":
            chains[-1] += 1
        elif piece in _OPERATORS or piece in (",", ":"):
            chains[-1] = 0
            if piece in _OPERATORS:
                operators += 1
                if operators > MAX_OPERATORS:
                    raise LimitError(f"has more than {MAX_OPERATORS} operators")
        if chains[-1] > MAX_CHAIN:
            raise LimitError(f"has a member chain longer than {MAX_CHAIN} steps")
        previous = piece


def _where(source: str, index: int) -> str:
    """``column C`` of ``index`` (``line L, column C`` past the first line), from 1."""
    line = source.count("\n", 0, index) + 1
    column = index - source.rfind("\n", 0, index)
    return f"column {column}" if line == 1 else f"line {line}, column {column}"


def _ends_operand(piece: str) -> bool:
    return piece in (")", "]", "}") or (bool(piece) and (piece[0].isalnum() or piece[0] in "_'\""))


@frozen
class CostEstimate(ValueMethods):
    """The estimated steps of one evaluation; ``iterates_data``: some comprehension walks a
    collection from the run's data, a ``+`` chain joins more than
    :data:`IN_PROCESS_DATA_TERMS` of its values, or the run's variables are read more than
    :data:`IN_PROCESS_DATA_READS` times: work whose real size only the evaluation knows."""

    cost: int
    iterates_data: bool


@frozen
class _Est(ValueMethods):
    cost: int
    size: int  # elements, if a collection
    data: bool  # the size is an assumption (the value comes from the run's data)
    joined: int = 0  # values of the run's data a ``+`` chain joined into this one

    @property
    def terms(self) -> int:
        """The values of the run's data this one is made of."""
        return self.joined or int(self.data)


class _Parser:
    """Precedence climbing over the tokens, computing estimates instead of a tree."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.at = 0
        self.iterates_data = False
        self.bound: list[str] = []  # the names the enclosing comprehensions bind
        self.reads = 0  # names read that no comprehension binds: the run's variables
        self.repeats = 1  # how many times the enclosing comprehensions' bodies are evaluated

    def peek(self) -> str:
        return self.tokens[self.at] if self.at < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        piece = self.peek()
        if not piece or (expected is not None and piece != expected):
            raise SyntaxError(f"expected {expected or 'more'} at piece {self.at}")
        self.at += 1
        return piece

    def expression(self) -> _Est:
        condition = self.binary(1)
        if self.peek() != "?":
            return condition
        self.take("?")
        then = self.expression()
        self.take(":")
        otherwise = self.expression()
        size = max(then.size, otherwise.size)
        cost = condition.cost + max(then.cost, otherwise.cost) + 1
        return _Est(cost, size, then.data or otherwise.data, max(then.joined, otherwise.joined))

    def binary(self, level: int) -> _Est:
        left = self.unary()
        while (op := self.peek()) in _BINARY and _BINARY[op] >= level:
            self.take()
            right = self.binary(_BINARY[op] + 1)
            if op != "+":
                left = _Est(left.cost + right.cost + 1, 1, False)
                continue
            joined = left.terms + right.terms
            self.iterates_data = self.iterates_data or joined > IN_PROCESS_DATA_TERMS
            size = left.size + right.size
            left = _Est(left.cost + right.cost + 1, size, left.data or right.data, joined)
        return left

    def unary(self) -> _Est:
        count = 0
        while self.peek() in ("!", "-"):
            self.take()
            count += 1
        operand = self.postfix(self.primary())
        if not count:
            return operand
        return _Est(operand.cost + count, operand.size, operand.data, operand.joined)

    def primary(self) -> _Est:
        piece = self.take()
        if piece == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if piece == "[":
            items = self.items("]", pairs=False)
            return _Est(1 + sum(i.cost for i in items), len(items), False)
        if piece == "{":
            items = self.items("}", pairs=True)
            return _Est(1 + sum(i.cost for i in items), len(items) // 2, False)
        if piece == ".":
            piece = self.take()  # a leading dot names the root namespace
        if piece[0].isalpha() or piece[0] == "_":
            if piece in ("true", "false", "null"):
                return _Est(1, 1, False)
            if self.peek() == "(":  # a global function: has(), size(), int()…
                self.take("(")
                args = self.items(")", pairs=False)
                return _Est(1 + sum(a.cost for a in args), ASSUMED_DATA_SIZE, True)
            if self.peek() == "{":  # a message literal: Name{field: value}
                self.take("{")
                items = self.items("}", pairs=True)
                return _Est(1 + sum(i.cost for i in items), 1, False)
            if piece not in self.bound:
                self.reads += self.repeats
            return _Est(1, ASSUMED_DATA_SIZE, True)
        if piece[0].isdigit() or piece[0] in "'\"" or piece[0] in "rRbB.":
            return _Est(1, 1, False)
        raise SyntaxError(f"unexpected {piece!r}")

    def postfix(self, operand: _Est) -> _Est:
        while self.peek() in (".", "["):
            if self.take() == "[":
                index = self.expression()
                self.take("]")
                operand = _Est(operand.cost + index.cost + 1, ASSUMED_DATA_SIZE, True)
                continue
            name = self.take()
            if self.peek() != "(":
                operand = _Est(operand.cost + 1, ASSUMED_DATA_SIZE, True)
                continue
            self.take("(")
            macro = name in _MACROS
            self.bound.append(self.peek() if macro else "")
            repeats = self.repeats
            if macro:
                self.repeats *= _body_repeats(name, operand.size)
            args = self.items(")", pairs=False)
            self.bound.pop()
            self.repeats = repeats
            body = 1 + sum(a.cost for a in args)
            if macro and args:
                self.iterates_data = self.iterates_data or operand.data
                cost = operand.cost + operand.size * body
                size = operand.size if name in ("map", "filter") else 1
                operand = _Est(cost, size, operand.data and name in ("map", "filter"))
            else:
                operand = _Est(operand.cost + body, ASSUMED_DATA_SIZE, True)
        return operand

    def items(self, closing: str, *, pairs: bool) -> list[_Est]:
        found: list[_Est] = []
        while self.peek() != closing:
            found.append(self.expression())
            if pairs:
                self.take(":")
                found.append(self.expression())
            if self.peek() != ",":
                break
            self.take(",")
        self.take(closing)
        return found


def _body_repeats(macro: str, size: int) -> int:
    """The reads a read in the body of ``macro`` over ``size`` elements stands for: the binding
    copies what the body reads at each element, and ``map`` copies its growing result (what
    the bodies returned so far) at each element too."""
    return size * (size + 1) // 2 if macro == "map" else size


def estimate_cost(source: str) -> CostEstimate | None:
    """The static cost estimate of ``source``; None if it could not be estimated (it does not
    parse as far as this estimator knows CEL: treat it as expensive)."""
    parser = _Parser(_tokens(source))
    try:
        estimate = parser.expression()
    except (SyntaxError, RecursionError):
        return None
    if parser.peek():
        return None
    data_bound = parser.iterates_data or parser.reads > IN_PROCESS_DATA_READS
    return CostEstimate(estimate.cost, data_bound)
