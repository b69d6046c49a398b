"""The parts of its variables a CEL expression can read, told from its tokens.

The CEL binding converts every value it is given, whole, on every evaluation: a condition
reading ``request.go`` beside a 10 MB string elsewhere in the request converted (and copied)
the 10 MB each time, on the engine's loop. :func:`read_paths` tells, once when the expression
is compiled, which member paths of each variable it reads; :func:`prune` then gives the binding
only those parts, which yields the same result for every expression, because a part left out
is one the expression never reaches.

What counts as reading a path: a variable followed by field selections (``request.a.b``) and
indexes by a plain string literal (``request["a"]``). The path stops before a method call
(``request.items.size()``, a macro such as ``.all(x, ...)``), an index by anything else
(``request.a[0]``, ``request[key]``), an optional selection (``request.?a``) or anything else;
the part reached so far is then passed whole, so all that follows it sees the real data. A
variable used bare (``size(request)``, ``"a" in request``) is passed whole. ``has(request.a.b)``
reads the path ``a.b``: a key kept is kept with its value, an absent one stays absent.

When the paths cannot be told safely, :func:`read_paths` answers None and every variable is
passed whole, as before: a name the expression binds in a macro that is also a variable's
name, a root-scoped name (``.request``), a variable called as a function, or source the
tokenizer cannot read.

:func:`prune` only builds a smaller copy of a plain ``dict`` (what the engine's requests,
stage results and events are); any other value on a path (a list, a string, a mapping of
another type) is passed as it is, so the binding converts exactly what it converted before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Final, TypeAlias

from taskdaemon.pipeline.cel_limits import tokens

__all__ = ["MACRO_BINDING", "Paths", "Trie", "prune", "read_paths"]

#: A variable's paths: key → the paths read below it, None when the value there is read whole.
Trie: TypeAlias = "dict[str, Trie | None]"
#: Per variable: its paths, or None when the variable is read whole.
Paths: TypeAlias = "Mapping[str, Trie | None]"

_IDENT: Final = r"[A-Za-z_][A-Za-z0-9_]*"
#: A plain string literal, without escapes or prefix: the only index read as a path's key.
_KEY: Final = r"""'([^'\\\n]*)'|"([^"\\\n]*)\""""
#: A comprehension macro's binding of its own name (``list.map(x, ...)``): the name is no
#: variable of the context there.
MACRO_BINDING: Final = re.compile(r"\b(?:map|filter|all|exists|exists_one)\(\s*([A-Za-z_]\w*)\s*,")


def read_paths(source: str, variables: Iterable[str]) -> Paths | None:
    """The paths ``source`` reads of each of ``variables`` (module docstring); None when they
    cannot be told, and every variable must be passed whole."""
    names = frozenset(variables)
    if not names or names & set(MACRO_BINDING.findall(source)):
        return None
    # Compiled at the first expression read, not at import (``cel_limits`` does the same).
    ident, literal = _patterns()
    try:
        pieces = tokens(source)
    except Exception:  # a source the tokenizer cannot read: no pruning
        return None
    paths: dict[str, Trie | None] = {}
    count = len(pieces)
    for index, piece in enumerate(pieces):
        if piece not in names:
            continue
        if index and pieces[index - 1] == ".":
            if index >= 2 and _ends_operand(pieces[index - 2]):
                continue  # a field of something else that has a variable's name
            return None  # a root-scoped name (``.request``)
        if index + 1 < count and pieces[index + 1] == "(":
            return None  # called as a function: not the variable
        path: list[str] = []
        at = index + 1
        while at < count:
            step = pieces[at]
            if step == "." and at + 1 < count and ident.fullmatch(pieces[at + 1]):
                if at + 2 < count and pieces[at + 2] == "(":
                    break  # a method call or a macro: what it is called on is read whole
                path.append(pieces[at + 1])
                at += 2
            elif step == "[" and at + 2 < count and pieces[at + 2] == "]":
                key = literal.fullmatch(pieces[at + 1])
                if key is None:
                    break  # an index by anything but a plain string literal
                path.append(key[1] if key[1] is not None else key[2])
                at += 3
            else:
                break
        _add(paths, piece, path)
    return paths


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    return re.compile(_IDENT), re.compile(_KEY)


def _ends_operand(piece: str) -> bool:
    """Whether ``piece`` can end an operand (so a ``.`` after it selects a member)."""
    return piece in (")", "]", "}") or piece[0] in "'\"" or piece[0].isalnum() or piece[0] == "_"


def _add(paths: dict[str, Trie | None], name: str, path: list[str]) -> None:
    """Note that ``name``'s ``path`` is read (an empty path: the whole variable)."""
    if not path:
        paths[name] = None
        return
    if name in paths and paths[name] is None:
        return  # already read whole
    node = paths.setdefault(name, {})
    assert node is not None
    for key in path[:-1]:
        if key in node and node[key] is None:
            return  # a shorter path is read whole: it covers this one
        child = node.setdefault(key, {})
        assert child is not None
        node = child
    node[path[-1]] = None


def prune(value: Any, trie: Trie) -> Any:
    """``value`` with only the parts ``trie`` names, when it is a plain ``dict``; else
    ``value`` itself."""
    if type(value) is not dict:
        return value
    kept = {}
    for key, below in trie.items():
        if key in value:
            part = value[key]
            kept[key] = part if below is None else prune(part, below)
    return kept
