"""The common shape of a pipeline file read without PyYAML's nodes: block mappings and
sequences of one-line values, line by line.

Even PyYAML's C composer builds, per YAML node, a Python ``Node`` (its ``__init__`` is
Python), two ``Mark`` objects and a tag look-up; for a pipeline file that is most of what
loading it costs, and ``yaml_values.plain_tree`` then walks the nodes once more. Most pipeline
files are written in a small part of YAML: ``key: value`` lines, ``- `` entries, one-line flow
collections (``{stage: build}``), comments. :func:`quick_tree` reads exactly that part (one
``findall`` of a regular expression splits the text into rows, a line each, and one Python loop
builds the value) and gives up (:data:`~taskdaemon.pipeline.yaml_values.NOT_PLAIN`) at anything
else, the caller then composing the file as before; it gives the value
``plain_tree(compose_bounded(text))`` gives, or gives up. Why it is exact:

* Every character of a line it reads is printable ASCII (the line feed ends the line): no tab,
  carriage return, byte order mark or other line break YAML 1.1 knows (NEL, U+2028/9), nothing
  libyaml's reader refuses. A line the pattern does not read lands in the row's last group,
  which takes any line, so ``findall`` never skips one.
* Every line is blank, a comment, or ``INDENT [- ]KEY: [VALUE]`` / ``INDENT - VALUE`` with an
  optional `` #comment``; or the one content line is a flow mapping at column 0, the whole
  document (a one-line JSON file). A key is a plain word (``[A-Za-z_][A-Za-z0-9_-]*``, under
  libyaml's 1,024 characters of a simple key). A value is one of: a double-quoted string without
  ``\\``, a single-quoted one without ``'`` (both are their text between the quotes, tagged
  ``str`` since a quoted scalar is never resolved), a one-line flow collection of such quoted
  strings and plain words, or a plain scalar whose first character is no indicator (a ``-`` only
  before a digit: never an entry) and that holds no ``#``, no ``:`` before a space or at its end
  (no key, no comment inside); a plain word in a flow collection holds no ``,``, bracket or
  brace, and a ``:`` only between two of its characters (``m:f``, one scalar to libyaml and
  PyYAML alike). Nothing here is a tag, block scalar, directive, document marker, complex key
  or multi-line scalar: a line more indented than its block without a key waiting for a value
  (which would continue a plain scalar or be an error) gives up, so does a dedent to a column
  no open block has.
* Anchors and aliases of scalars: a line whose value (or item) is ``&NAME SCALAR`` or
  ``*NAME`` falls to the row's last group, and is read again by the row's pattern, the anchor
  or alias set aside: what comes before it must read as a row whose value (or item) it is, and
  the scalar after an anchor (with the same comment) as that row's value. An alias is the
  value of the scalar anchored before it, which the converter gives for it (a scalar's value
  does not depend on its anchor). It gives up at an anchor or alias anywhere else (on a key, a
  collection, in a flow collection), an alias of a name not anchored before, a name anchored
  twice (PyYAML refuses both), and aliases past ``yamlsafe``'s budget: each adds one node to
  the file's own (no depth), so a file whose aliases are more than ``max(ALIAS_BUDGET, 4 ×
  its own nodes)`` is refused there, and is given up here (its nodes are counted only past
  ``ALIAS_BUDGET`` aliases, by a walk of the value read).
* Flow collections: one without another inside (``{stage: build}``) is read by the row's pattern
  and split at its commas. A line whose value is a nested one (``triggers: [{on_completion:
  {stage: s0}}]``) falls to the row's last group, so that other lines pay nothing for it; a
  second pattern reads that line again, delimits the collection, and it is read token by token,
  each entry a key and a value (mappings) or a value (sequences), separated by commas, at most
  32 deep. A key is a plain word with ``: ``, or a quoted string (its text, never resolved) and
  a ``:`` with or without spaces around it, as JSON writes it (``"a":1``; libyaml and PyYAML
  read both so), of at most ``_LONGEST_KEY`` characters (libyaml's limit on a simple key). It
  gives up at a key without a value or a value without a key (``{a: }``, ``{a}``: YAML's nulls),
  a pair in a sequence (``[a: b]``, YAML's one-pair mapping), a trailing comma (YAML ignores it),
  any other character, and anything after the collection closes but spaces and a comment.
* Structure: a key without a value on its line takes the block on the next content line when
  that line is more indented (a mapping, or a sequence of ``- `` entries), or is a sequence
  starting at the key's own column (YAML's indentless sequence), else its value is null, as an
  empty plain scalar resolves. ``- KEY: ...`` opens a mapping whose column is the key's.
* Scalars are resolved as the composer resolves a plain scalar (implicit, not quoted), with
  ``yaml.resolver.Resolver``'s tables, which the composing loader uses: a word that matches none
  of the implicit patterns the resolver tries for its first character is a ``str`` (as the
  resolver finds), anything else is resolved by the resolver itself and constructed by
  PyYAML's safe constructor, as ``plain_tree`` does. A key that is not a ``str``, a duplicate
  key, a value the constructor refuses or 64 nested collections give up (``plain_tree`` would,
  or the converter words them as issues).
* Equal scalars of one file are resolved once (a per-call memo); their values are immutable
  (``str``, ``int``, ``float``, ``bool``, ``None``, dates), so sharing one is invisible.
* Equal lines of one file are matched once: the pattern runs over the file's distinct lines
  (joined by line feeds, in the order they first appear), and each line of the file takes its
  distinct line's row. That is the row ``findall`` of the whole text gives it: a row's match
  starts at a line's start and ends at its line feed or at the end of the text (no class of the
  pattern holds a line feed, and a line feed and the end are both accepted after a line), so a
  line's row depends on its characters alone; one row a line, in order, and at most one empty
  row after the last line (an empty match at the end), which ``zip`` leaves out and which was
  a blank row anyway. Pipeline files repeat most of their lines (``loop: python``,
  ``triggers:``), and a line costs the pattern many times the look-up of its row. A file of
  few equal lines (more than three in four distinct) is matched as one text, as before: its
  lines joined again and looked up would cost more than the matches they save. A large file
  is split and matched a piece of whole lines at a time, and the rows kept for repeated lines
  are dropped past a count: what the read holds beside the value it builds stays small.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from itertools import chain, filterfalse
from typing import Any, Final

import yaml
from yaml.nodes import ScalarNode

from taskdaemon.pipeline.yaml_values import NOT_PLAIN, REFUSED
from taskdaemon.pipeline.yamlsafe import ALIAS_BUDGET, MAX_YAML_BYTES

__all__ = ["quick_tree"]

_STR: Final = "tag:yaml.org,2002:str"
#: Nested collections past which the quick read gives up (``plain_tree`` allows 100).
_MAX_DEPTH: Final = 64

_KEY = r"[A-Za-z_][A-Za-z0-9_-]{0,200}"
#: The longest quoted key of a flow mapping read here: libyaml refuses a simple key of more than
#: 1,024 characters (quotes, spaces and the ``:`` included), which this read once took, so that
#: reading the file's lines again for an issue (libyaml's events) ended in a traceback.
_LONGEST_KEY: Final = 1000
_CHAR = r"[A-Za-z0-9_./()+,=$@%~^-]"  # inside a plain scalar (block context)
_FIRST = r"(?:[A-Za-z0-9_./(]|-(?=[0-9]))"  # its first: no indicator, ``-`` only before a digit
_WORD = rf"{_CHAR}+(?::{_CHAR}+)*"  # a ``:`` only between two characters
# Possessive: what may follow a plain scalar (a space before a comment, the line's end) never
# holds its characters, so giving some back could not let a line match.
_PLAIN = rf"{_FIRST}{_CHAR}*+(?::{_CHAR}++)*+(?:\ ++{_WORD})*+"
_FCHAR = r"[A-Za-z0-9_./()+=$@%~^-]"  # inside a plain scalar of a flow collection
# Possessive too, and the flow collections' repeats: what follows a flow scalar (spaces, then a
# comma or a closing bracket) or an entry (the same) never starts like one, so giving back
# could not let a line match; and ``re`` keeps no state for each entry of a possessive repeat,
# which it would otherwise pile up for every entry of a line (a long line's worth, many times
# over: benchmarks/big_pipeline_memory.py's ``worst`` shape).
# Words separated by a ``:`` (only between two characters, as in a block) or by spaces.
_FPLAIN = rf"{_FIRST}{_FCHAR}*+(?:(?::|\ ++){_FCHAR}++)*+"
_DQ = r'"[\ !\#-\[\]-~]*"'  # no quote, no backslash
_SQ = r"'[\ -&(-~]*'"  # no quote
_FVALUE = rf"(?:{_FPLAIN}|{_DQ}|{_SQ})"
_FPAIR = rf"{_KEY}:\ +{_FVALUE}"
_FMAP = rf"\{{\ *(?:{_FPAIR}(?:\ *,\ *{_FPAIR})*+\ *)?\}}"
_FSEQ = rf"\[\ *(?:{_FVALUE}(?:\ *,\ *{_FVALUE})*+\ *)?\]"
# A nested flow collection, only delimited here (``_flow`` reads its tokens, and gives up at
# anything else): from a bracket to the line's last closing bracket that only spaces and a
# comment follow. A comment that holds a bracket is taken in, and ``_flow`` gives up at it.
_FNEST = r"[\[{][\ -~]*[\]}]"
_VALUE = rf"(?:{_PLAIN}|{_DQ}|{_SQ}|{_FMAP}|{_FSEQ})"
_COMMENT = r"\#[\ -~]*"
#: A row a line: (indent, dash, key, value, item, a line not read). A row's match ends at a line
#: feed or the end, and a line the first branch does not read falls to the last group, which
#: takes any line: ``findall`` never skips one. (``(X|)`` rather than ``(X)?``: the same rows,
#: and ``re`` matches it with less work.)
_ROWS = re.compile(
    rf"""(?:(\ *)(?:
        (-\ +|)(?:({_KEY}):(?:\ +({_VALUE})|)|({_VALUE}))(?:\ +{_COMMENT}|)\ *
      | (?:{_COMMENT}|)
    )(?:\n|\Z)
    | ([^\n]+\n?))""",
    re.X,
)
# The pairs and items of a flow collection the row's pattern read: each ends at its comma, which
# no plain word holds and a quoted one holds only between its quotes, taken whole.
_FLOW_PAIRS = re.compile(rf"\ *({_KEY}):\ +({_FVALUE})\ *,?", re.X)
_FLOW_ITEMS = re.compile(rf"\ *({_FVALUE})\ *,?", re.X)
#: A line the row's pattern does not read, read again as one whose value is a nested flow
#: collection (only such lines pay for it): indent, dash, key, the collection.
_NESTED_ROW = rf"(\ *)(-\ +|)(?:({_KEY}):\ +|)({_FNEST})(?:\ +{_COMMENT}|)\ *\n?"
#: The characters of an anchor's or alias's name (YAML's: letters, digits, ``_`` and ``-``),
#: spelt out: importing ``string`` compiles its ``Template`` pattern, for every command.
_NAME: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
#: How deeply a nested flow collection may nest: with the blocks around it (at most
#: ``_MAX_DEPTH``), still below the 100 levels ``plain_tree`` reads.
_MAX_FLOW_DEPTH: Final = 32
# The tokens of a nested flow collection: a bracket or comma, a key with its ``: ``, a scalar,
# or any other character (which gives up). Each match starts where the last ended (every
# character is some token's, spaces before one included), so ``findall`` skips nothing.
_FLOW_TOKENS = rf"\ *(?:([\[\]{{}},])|({_KEY}):\ +|({_DQ}|{_SQ})(\ *:\ *|)|({_FPLAIN})|(.))"


def _patterns_by_first() -> dict[str, re.Pattern[str]]:
    """For each first character the resolver has implicit patterns for, one pattern that
    matches a word iff one of those (or of the wildcard ones, tried for every word) does."""
    tables = yaml.resolver.Resolver.yaml_implicit_resolvers
    wildcard = tables.get(None, [])
    found = {}
    for first, resolvers in tables.items():
        if first is None:
            continue
        parts = []
        for _tag, regexp in [*resolvers, *wildcard]:
            flags = "(?x:" if regexp.flags & re.X else "(?:"
            parts.append(f"{flags}{regexp.pattern})")
        found[first] = re.compile("|".join(parts))
    return found


_BY_FIRST = _patterns_by_first()
#: Whether the resolver has patterns for words of any first character (PyYAML's safe schema has
#: none): then every word is resolved by the resolver itself.
_WILDCARD = bool(yaml.resolver.Resolver.yaml_implicit_resolvers.get(None))


@functools.cache
def _nested_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The patterns of nested flow collections (a line's, its tokens'), compiled at the first
    such line: most files have none, and every command that imports this module would
    otherwise pay for compiling them."""
    return re.compile(_NESTED_ROW), re.compile(_FLOW_TOKENS)


class _GiveUpError(Exception):
    """Raised inside :func:`quick_tree` at the first thing it does not read."""


class _Scalars:
    """The plain scalars of one file, resolved and constructed once each (see the module
    docstring)."""

    def __init__(self) -> None:
        self.memo: dict[str, Any] = {}
        # Made at the first word that needs them (most files have a few, or none), then
        # kept for the file: neither's answer for a scalar depends on the scalars before it.
        self.resolver: yaml.resolver.Resolver | None = None
        self.constructor: yaml.constructor.SafeConstructor | None = None
        self.anchors: dict[str, Any] = {}  # the value of each anchored scalar, by its name
        self.aliases = 0
        # Each line with an anchor or alias read (most repeat: ``handler: *h``), by its text.
        self.anchor_rows: dict[str, tuple[str, ...]] = {}

    def value(self, word: str) -> Any:
        pattern = _BY_FIRST.get(word[0])
        if not _WILDCARD and (pattern is None or pattern.match(word) is None):
            self.memo[word] = word  # no implicit pattern matches it: a str
            return word
        resolver = self.resolver
        if resolver is None:
            resolver = self.resolver = yaml.resolver.Resolver()
        tag = resolver.resolve(ScalarNode, word, (True, False))  # type: ignore[no-untyped-call]
        if tag == _STR:
            value: Any = word
        else:
            if self.constructor is None:
                self.constructor = yaml.constructor.SafeConstructor()
            try:
                value = self.constructor.construct_object(ScalarNode(tag, word))
            except REFUSED:
                raise _GiveUpError from None
        self.memo[word] = value
        return value

    def anchored(self, line: str) -> tuple[str, str, str, str, str] | None:
        """The row of a line whose value is an anchored scalar or an alias, as the row's
        pattern gives one (indent, dash, key, value, item; the value's text a name under which
        the memo holds its value), or None for another line."""
        found = self.anchor_rows.get(line)
        if found is None:
            if len(self.anchor_rows) > _KEPT_ROWS:
                self.anchor_rows = {}  # as the rows kept for repeated lines
            found = self.anchor_rows[line] = _anchor_row(line)
        if not found:
            return None
        spaces, dash, key, mark, name, scalar = found
        if mark == "*":
            if name not in self.anchors:
                raise _GiveUpError  # PyYAML's error: composed and worded
            self.aliases += 1
            value = self.anchors[name]
        else:
            if scalar[0] in "[{" or name in self.anchors:
                raise _GiveUpError  # an anchored collection; a name anchored twice (PyYAML's)
            value = self.anchors[name] = _scalar(scalar, self)
        # No scalar's text starts with ``&`` or ``*``: the text is this value's alone.
        text = mark + name
        self.memo[text] = value
        return (spaces, dash, key, text, "") if key else (spaces, dash, key, "", text)

    def key(self, word: str) -> str:
        key = self.memo.get(word, NOT_PLAIN)
        if key is NOT_PLAIN:
            key = self.value(word)
        if type(key) is not str:
            raise _GiveUpError
        return key


def _anchor_row(line: str) -> tuple[str, ...]:
    """``line`` read as a row whose value (or item) is an anchored scalar or an alias: indent,
    dash, key, ``&`` or ``*``, the name and the anchored scalar's text (``""`` for an alias);
    or ``()`` when it is no such row. What comes before the anchor or alias must read as a row
    whose value it is (a placeholder word in its place does), and what comes after it as the
    rest of such a row: spaces and a comment after an alias, the scalar and those after an
    anchor."""
    text = line.rstrip("\n")
    at = min(found for found in (text.find("&"), text.find("*")) if found >= 0)
    end = at + 1
    while end < len(text) and text[end] in _NAME:
        end += 1
    prefix, name, rest = text[:at], text[at + 1 : end], text[end:]
    place = _ROWS.match(prefix + "x").groups("")  # type: ignore[union-attr]
    if not name or place[5] or (place[3] or place[4]) != "x":
        return ()
    if text[at] == "*":
        if _ROWS.match(prefix + "x" + rest).groups("") != place:  # type: ignore[union-attr]
            return ()
        return (*place[:3], "*", name, "")
    row = _ROWS.match(prefix + rest.lstrip(" ")).groups("")  # type: ignore[union-attr]
    scalar = row[3] or row[4]
    if not rest.startswith(" ") or row[5] or row[:3] != place[:3] or not scalar:
        return ()
    return (*place[:3], "&", name, scalar)


def _value(text: str, scalars: _Scalars) -> Any:
    first = text[0]
    if first == "{":
        result: dict[str, Any] = {}
        memo = scalars.memo
        for word, value in _FLOW_PAIRS.findall(text, 1, len(text) - 1):
            key = memo.get(word, NOT_PLAIN)
            if key.__class__ is not str:
                key = scalars.key(word)
            if key in result:
                raise _GiveUpError
            found = memo.get(value, NOT_PLAIN)
            result[key] = _scalar(value, scalars) if found is NOT_PLAIN else found
        return result
    if first == "[":
        return [_scalar(word, scalars) for word in _FLOW_ITEMS.findall(text, 1, len(text) - 1)]
    return _scalar(text, scalars)


def _flow(text: str, scalars: _Scalars, room: int) -> Any:
    """A one-line flow collection of plain and quoted scalars, nested at most ``room`` deep.

    Gives up at anything else: a key that is neither a plain word nor quoted, a key without a
    value, a value without a key in a mapping, a pair in a sequence, two values or commas in a
    row, a trailing comma, unbalanced brackets, a token after the collection closes.
    """
    memo = scalars.memo
    missing = NOT_PLAIN
    root: Any = None
    top: Any = None
    outer: list[Any] = []
    key: Any = None  # the key of ``top`` (a mapping) waiting for its value
    after = False  # an entry of ``top`` was just read: a comma or its end comes next
    comma = False  # a comma was just read: an entry comes next
    tokens = _nested_patterns()[1]
    # A long line's tokens one at a time (``findall`` would hold a tuple for each at once).
    found: Iterable[Any] = (
        tokens.findall(text) if len(text) < _PIECE else map(_groups, tokens.finditer(text))
    )
    for mark, word, quoted, colon, plain, other in found:
        if other or root is not None:
            raise _GiveUpError  # a character no token takes, a token after the end
        if word or colon:
            if top.__class__ is not dict or key is not None or after:
                raise _GiveUpError
            if colon:  # a quoted key (``"a": b``, ``"a":b`` as JSON writes it): its text
                if len(quoted) > _LONGEST_KEY:
                    raise _GiveUpError  # libyaml refuses it: a syntax error, worded there
                name = quoted[1:-1]
            else:
                name = memo.get(word, missing)
                if name.__class__ is not str:
                    name = scalars.key(word)
            if name in top:
                raise _GiveUpError
            key = name
            continue
        if mark == ",":
            if not after:
                raise _GiveUpError
            after, comma = False, True
            continue
        if mark in {"]", "}"}:
            if key is not None or comma or (mark == "]") is not (top.__class__ is list):
                raise _GiveUpError
            if not outer:
                root = top
                continue
            top = outer.pop()
            after, comma = True, False
            continue
        if after or (top.__class__ is dict and key is None):
            raise _GiveUpError
        if mark:  # an opening bracket
            if len(outer) + (top is not None) >= room:  # the collections around it
                raise _GiveUpError
            value: Any = [] if mark == "[" else {}
        else:
            scalar = quoted or plain
            value = memo.get(scalar, missing)
            if value is missing:
                value = _scalar(scalar, scalars)
        if top.__class__ is dict:
            top[key] = value
            key = None
        elif top is not None:
            top.append(value)
        if mark:
            if top is not None:
                outer.append(top)
            top = value
            after = comma = False
        else:
            after, comma = True, False
    if root is None:
        raise _GiveUpError
    return root


_groups = re.Match.groups


def _scalar(text: str, scalars: _Scalars) -> Any:
    """A plain or quoted scalar's value (memoised under its text, quotes included)."""
    found = scalars.memo.get(text, NOT_PLAIN)
    if found is not NOT_PLAIN:
        return found
    if text[0] in "\"'":  # a quoted scalar (the pattern gave it both quotes)
        word = text[1:-1]
        scalars.memo[text] = word
        return word
    return scalars.value(text)


def quick_tree(text: str) -> Any:
    """The plain value of the YAML ``text``, or :data:`NOT_PLAIN` when it is not in the part
    of YAML this module reads (see the module docstring)."""
    if len(text) > MAX_YAML_BYTES:
        return NOT_PLAIN
    if ": |" in text or ": >" in text:
        # Most likely a block scalar, where the read would give up anyway, after reading the
        # lines before it (and maybe compiling the nested patterns): give up at once. Should
        # the text be elsewhere (a quoted string), the file is composed, as any other.
        return NOT_PLAIN
    try:
        return _read(chain.from_iterable(_rows(text)))
    except _GiveUpError:
        return NOT_PLAIN


#: The text is split and matched a piece of about this many characters at a time, and the rows
#: of at most this many distinct lines are kept for the lines that repeat them: what reading a
#: file holds beside its value stays this small whatever the file's size.
_PIECE: Final = 1 << 16
_KEPT_ROWS: Final = 1 << 14


def _rows(text: str) -> Iterator[Iterable[tuple[str, ...]]]:
    """The rows of ``text``'s lines, a piece of whole lines at a time (see the module
    docstring: a line's row depends on its characters alone, so any piece gives it)."""
    by_line: dict[str, tuple[str, ...]] = {}
    start = 0
    while start >= 0:
        end = text.find("\n", start + _PIECE)
        piece = text[start:end] if end >= 0 else text[start:]
        start = end if end < 0 else end + 1
        lines = piece.split("\n")
        distinct = dict.fromkeys(lines)
        if len(distinct) * 4 > len(lines) * 3:  # few equal lines: the piece at once is cheaper
            yield _ROWS.findall(piece)
            continue
        if len(by_line) > _KEPT_ROWS:
            by_line = {}  # the last piece's rows are all read: most lines that repeat come back
        new = list(filterfalse(by_line.__contains__, distinct))
        by_line.update(zip(new, _ROWS.findall("\n".join(new)), strict=False))
        yield map(by_line.__getitem__, lines)  # one row a line, each looked up in C


def _read(rows: Iterable[tuple[str, ...]]) -> Any:
    scalars = _Scalars()
    memo = scalars.memo
    missing = NOT_PLAIN
    root: dict[str, Any] = {}
    # The innermost open block (``top``, at ``top_col``) and the blocks around it.
    top: Any = root
    top_col = 0
    cols: list[int] = []
    blocks: list[Any] = []
    started = False
    waiting: dict[str, Any] | None = None  # the mapping whose last key waits for a value
    waiting_key = ""
    waiting_col = 0
    for spaces, dash, key, value, item, other in rows:
        if not key:
            if other:  # a nested flow collection, an anchor or alias, or a line not read here
                row = scalars.anchored(other) if "&" in other or "*" in other else None
                if row is not None:
                    spaces, dash, key, value, item = row  # noqa: PLW2901 - the row, read again
                elif "[" not in other and "{" not in other:
                    raise _GiveUpError  # no collection: not worth compiling the patterns
                else:
                    nested = _nested_patterns()[0].fullmatch(other)
                    if nested is None:
                        raise _GiveUpError
                    spaces, dash, key, flow = nested.groups()  # noqa: PLW2901 - read again
                    # Its value is found in the memo as any other (always this line's own: the
                    # line is read again at each occurrence, no scalar starts with a bracket).
                    memo[flow] = _flow(flow, scalars, _MAX_FLOW_DEPTH)
                    value, item = (flow, "") if key else ("", flow)  # noqa: PLW2901 - the same
            elif not item:
                continue  # blank or comment
        col = len(spaces)
        if waiting is not None:
            if col > waiting_col or (col == waiting_col and dash):
                if len(cols) >= _MAX_DEPTH:
                    raise _GiveUpError
                block: Any = [] if dash else {}
                waiting[waiting_key] = block
                cols.append(top_col)
                blocks.append(top)
                top, top_col = block, col
            waiting = None  # else its value stays null
        elif not started:  # the first content line: a key of the root mapping at column 0
            if col or dash:
                raise _GiveUpError
            started = True
            if not key:  # or a flow mapping, the whole document
                if item[0] != "{":
                    raise _GiveUpError
                found = memo.get(item, missing)
                root = _value(item, scalars) if found is missing else found
                top_col = -1  # a later content line is at a column no block has: gives up
                continue
        if col != top_col:
            while top_col > col:
                top_col = cols.pop()
                top = blocks.pop()
            if top_col != col:
                raise _GiveUpError
        if dash:
            if top.__class__ is not list:
                raise _GiveUpError
            if not key:
                found = memo.get(item, missing)
                top.append(_value(item, scalars) if found is missing else found)
                continue
            if len(cols) >= _MAX_DEPTH:
                raise _GiveUpError
            mapping: dict[str, Any] = {}
            top.append(mapping)
            cols.append(top_col)
            blocks.append(top)
            top = mapping
            top_col = col = col + len(dash)
        else:
            if top.__class__ is list:  # an indentless sequence ends at its mapping's next key
                if not cols or cols[-1] != col:
                    raise _GiveUpError
                top_col = cols.pop()
                top = blocks.pop()
            if not key:
                raise _GiveUpError  # a scalar on a line of its own
            mapping = top
        name = memo.get(key, missing)
        if name.__class__ is not str:
            name = scalars.key(key)
        if name in mapping:
            raise _GiveUpError
        if value:
            found = memo.get(value, missing)
            mapping[name] = _value(value, scalars) if found is missing else found
        else:
            mapping[name] = None
            waiting, waiting_key, waiting_col = mapping, name, col
    if not started:
        raise _GiveUpError  # no content: the caller words an empty file
    aliases = scalars.aliases
    if aliases > ALIAS_BUDGET and aliases > 4 * (_nodes(root) - aliases):
        raise _GiveUpError  # over yamlsafe's budget: composed and refused there
    return root


def _nodes(value: Any) -> int:
    """The nodes the composer makes of ``value`` (as ``_read`` builds one): one a scalar, one
    a collection and one each key; an alias one, the node it refers to."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        count += 1
        if item.__class__ is dict:
            count += len(item)
            stack.extend(item.values())
        elif item.__class__ is list:
            stack.extend(item)
    return count
