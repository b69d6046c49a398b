"""The functions a CEL expression may call, and the one line for a call to any other.

The binding compiles a call to any name (``len(x)``, ``x.lower()``) and fails only when it
evaluates it: ``Undefined variable or function: 'len'``. A condition's failure is "not
satisfied", and ``&&`` or ``||`` absorb it when the other side decides, so a file that calls a
function CEL lacks validated as OK and its stage was skipped at run time without a word. Such a
call can never succeed, so it is refused when the expression is compiled, as a variable outside
the context is (``expressions.compile_expression``), with the function meant when another
language's name for it is a common slip (``len``: ``size``).

:data:`FUNCTIONS` is what the binding (``common-expression-language`` 0.10) evaluates without
its opt-in Python library (``cel.stdlib``, which taskdaemon does not load):
``tests/pipeline_cel_functions_test.py`` evaluates every one of them, so a release that drops
one fails there; one that adds a function is refused here until it is listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.wording import close_match

__all__ = ["FUNCTIONS", "unknown_function"]

#: The named functions and methods the binding evaluates (macros such as ``has``, ``all``,
#: ``exists``, ``map`` and ``filter`` are expanded by the parser, and operators are named
#: ``_+_``, ``@in``: neither is a call it reports by name).
FUNCTIONS = frozenset(
    {
        *("size", "int", "uint", "double", "string", "bytes", "type", "dyn"),
        *("timestamp", "duration", "contains", "startsWith", "endsWith", "matches"),
        *("getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfYear"),
        *("getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds"),
        # optional.of(x), optional.none(), optional.ofNonZeroValue(x) and their methods
        *("of", "none", "ofNonZeroValue", "hasValue", "value", "or", "orValue"),
    }
)
#: Other languages' names for a CEL function.
_MEANT = {
    "len": "size",
    "length": "size",
    "count": "size",
    "str": "string",
    "float": "double",
    "startswith": "startsWith",
    "endswith": "endsWith",
    "includes": "contains",
}
_NAME = re.compile(r"[A-Za-z]\w*")


def unknown_function(source: str, called: Iterable[str]) -> str | None:
    """The issue of the first function of ``called`` (the compiled program's ``functions()``)
    that CEL lacks, with where ``source`` calls it, else None."""
    for name in sorted(called):
        if name in FUNCTIONS or not _NAME.fullmatch(name):
            continue
        meant = _MEANT.get(name) or next(iter(close_match(name, FUNCTIONS)), None)
        hint = f" (did you mean {meant!r}?)" if meant else ""
        call = re.search(rf"(?<![\w]){re.escape(name)}\s*\(", source)
        where = f" at {_position(source, call.start())}" if call else ""
        return f"unknown function {quote(name)}{where}{hint}"
    return None


def _position(source: str, offset: int) -> str:
    """``column C`` of ``offset`` in ``source``, ``line L, column C`` past its first line."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return f"column {column}" if line == 1 else f"line {line}, column {column}"
