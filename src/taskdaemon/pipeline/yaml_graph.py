"""A YAML file with aliases or ``<<`` merge keys, read from the parser's events without nodes.

Composing such a file kept a Python ``Node`` and two ``Mark`` objects for every value, and
``yaml_values.NodeConverter`` a line for every field path, all at once: many times the file's
value. :func:`graph_tree` reads the parser's events once and builds the value the converter
gives, keeping beside it only what a later alias needs: each anchored value, with its expanded
size and depth. It gives up (:data:`~taskdaemon.pipeline.yaml_values.NOT_PLAIN`) at anything
the converter would word as an issue, or might (the test is cautious), and the caller then
composes the file as before. Why the value is the converter's:

* Scalars: a tag, an alias or a collection as a key, a key that does not resolve to a string,
  a value the safe constructor refuses, a duplicate key of a mapping's own, give up. Any other
  scalar's tag is the composer's (``resolve`` of a plain scalar, ``str`` of any other), and its
  value the constructor's.
* Aliases: an alias of a name not anchored, or anchored on a collection still open (a recursive
  alias), or a name anchored twice, gives up (PyYAML refuses the first and the last, the
  converter words the second). An alias is read as the converter reads the node it refers to
  again: a scalar's value, a fresh copy of a collection's. The anchored value is complete when
  its alias comes (its collection closed before), and holds no issue (it would have given up).
* ``<<`` merge keys (a plain ``<<``, which the resolver tags ``merge``): the mapping's value is
  the converter's ``pairs()`` assigned in order, merged pairs first: the sources of each ``<<``
  (a mapping, or the mappings of a list, last first, as ``pairs()`` reverses them) in the keys'
  order, then the mapping's own pairs. A source's value is its own pairs expanded, last-wins,
  so assigning its items gives what assigning its pairs gives, and the key order too. A source
  that is not a mapping gives up.
* Limits: ``yamlsafe``'s. Each alias adds its target's expanded size (counted once, when the
  anchored node closes), each own node one: the expanded tree's size and the file's own nodes,
  as ``yamlsafe._check`` counts them. Over its budget, the text is refused with its message
  (:class:`~taskdaemon.pipeline.yamlsafe.YamlLimitError`) once it is read without another
  reason to give up; collections nested 64 deep in the expanded tree give up (the converter
  allows 100). Copies are made when an alias is read while the aliases so far are within the
  budget of the own nodes so far, else after the whole text was read and found within it: the
  copying is bounded by the budget, however the file is built.

:func:`graph_lines` finds the lines of chosen field paths of such a file, as the converter
records them, again from the events: it keeps a node-free outline (lines and keys) of the
anchored collections and the merge sources only, and places each alias and merged pair as the
converter walks them (merged pairs before the mapping's own, whose lines win).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

from taskdaemon.pipeline.yaml_values import NOT_PLAIN
from taskdaemon.pipeline.yamlsafe import (
    ALIAS_BUDGET,
    MAX_YAML_BYTES,
    YamlLimitError,
    parser_of,
)

__all__ = ["graph_lines", "graph_tree"]

_STR: Final = "tag:yaml.org,2002:str"
#: Collections nested in the expanded tree past which the read gives up (the converter: 100).
_MAX_DEPTH: Final = 64
_MERGE: Final = "<<"


class _GiveUpError(Exception):
    """Raised inside :func:`graph_tree` at the first thing it does not read."""


def graph_tree(text: str) -> Any:
    """The value ``yaml_values.NodeConverter`` gives of the composed ``text``, or
    :data:`NOT_PLAIN` when it would report an issue (or might), or the text is not one YAML
    document. Raises ``YamlLimitError`` as ``yamlsafe.compose_bounded`` does when the aliases
    expand the text past its budget."""
    if len(text) > MAX_YAML_BYTES:
        return NOT_PLAIN
    parser = parser_of(text)
    try:
        return _Values(parser.get_event, len(text)).document()
    except (_GiveUpError, yaml.YAMLError):
        return NOT_PLAIN
    finally:
        parser.dispose()


class _Values:
    """One read of the events of a text, into its value (see the module docstring)."""

    def __init__(self, get: Callable[[], Any], size: int) -> None:
        self.get = get
        self.size = size  # the text's, which bounds the nodes still to come
        self.memo: dict[str, Any] = {}  # each plain scalar's value, by its text
        self.resolver: yaml.resolver.Resolver | None = None
        self.constructor: yaml.constructor.SafeConstructor | None = None
        # The value, expanded size and depth (in collections) of each closed anchored node.
        self.anchors: dict[str, tuple[Any, int, int]] = {}
        self.named: set[str] = set()  # every name anchored so far, closed or not
        self.own = 0  # nodes of the file's own
        self.shared = 0  # nodes the aliases add (their targets' expanded sizes)
        self.deepest = 0  # the deepest collection of the expanded tree so far, in collections
        # Copies of aliased collections left until the budget is known: (container, key, value).
        self.later: list[tuple[Any, Any, Any]] = []

    def document(self) -> Any:
        get = self.get
        if get().__class__ is not StreamStartEvent:  # pragma: no cover - the parser's first
            raise _GiveUpError
        if get().__class__ is not DocumentStartEvent:
            raise _GiveUpError  # no document: the caller words an empty file
        value = self.node(get(), 0)
        if get().__class__ is not DocumentEndEvent or get().__class__ is not StreamEndEvent:
            raise _GiveUpError  # another document (PyYAML refuses it)
        allowed = self.own + max(ALIAS_BUDGET, 4 * self.own)
        expanded = self.own + self.shared
        if expanded > allowed:
            raise YamlLimitError(
                f"aliases and merge keys expand {self.own} nodes to {expanded} "
                f"(the limit is {allowed}: is this an alias bomb?)",
                1,
            )
        for container, key, shared in self.later:
            container[key] = _copy(shared)
        return value

    def node(self, event: Any, level: int) -> Any:
        """The value of the node ``event`` starts, ``level`` collections deep."""
        kind = event.__class__
        if kind is ScalarEvent:
            self.own += 1
            value = self.scalar(event)
            if event.anchor is not None:
                self.anchor(event.anchor)
                self.anchors[event.anchor] = (value, 1, 0)
            return value
        if kind is AliasEvent:
            return self.alias(event, level)
        anchor = event.anchor
        if event.tag is not None:
            raise _GiveUpError
        if anchor is None:
            return self.collection(kind, level + 1)
        self.anchor(anchor)
        before, deepest = self.own + self.shared, self.deepest
        self.deepest = level
        value = self.collection(kind, level + 1)
        depth = self.deepest - level
        self.deepest = max(deepest, self.deepest)
        self.anchors[anchor] = (value, self.own + self.shared - before, depth)
        return value

    def anchor(self, name: str) -> None:
        if name in self.named:
            raise _GiveUpError  # a name anchored twice (PyYAML refuses it)
        self.named.add(name)

    def alias(self, event: Any, level: int) -> Any:
        """The anchored value the alias ``event`` refers to, read again ``level`` collections
        deep; a collection is copied now, or (past the budget so far) listed for a copy later
        by the caller (``self.pending``)."""
        found = self.anchors.get(event.anchor)
        if found is None:
            raise _GiveUpError  # not anchored, or on a collection still open
        value, size, depth = found
        self.shared += size
        if self.shared > ALIAS_BUDGET and self.shared > 4 * self.own:
            self.beyond(event)
        if depth:
            if level + depth > self.deepest:
                self.deepest = level + depth
                if self.deepest >= _MAX_DEPTH:
                    raise _GiveUpError
            return self.fresh(value)
        return value

    def beyond(self, event: Any) -> None:
        """Give up once the aliases so far are past the budget of any file the rest of the text
        could make (at most two nodes a character: ``{a,b}``): the composer, whose aliases
        cost no Python call, refuses it sooner, with the whole file's figures."""
        rest = self.size - event.end_mark.index
        if self.shared > 4 * (self.own + 2 * rest):
            raise _GiveUpError

    def fresh(self, value: Any) -> Any:
        """A copy of the shared collection ``value`` while the aliases so far are within the
        budget of the nodes so far (which only grows), else ``value`` itself, marked for a
        copy once the budget is known."""
        if self.shared <= max(ALIAS_BUDGET, 4 * self.own):
            return _copy(value)
        self.pending = True
        return value

    pending = False

    def collection(self, kind: type, level: int) -> Any:
        if level > self.deepest:
            self.deepest = level
            if level >= _MAX_DEPTH:
                raise _GiveUpError
        self.own += 1
        if kind is SequenceStartEvent:
            return self.sequence(level)
        return self.mapping(level)

    def sequence(self, level: int) -> list[Any]:
        get = self.get
        result: list[Any] = []
        while True:
            event = get()
            kind = event.__class__
            if kind is ScalarEvent and event.anchor is None:
                self.own += 1
                result.append(self.scalar(event))
            elif kind is SequenceEndEvent:
                return result
            else:
                result.append(self.node(event, level))
                if self.pending:
                    self.pending = False
                    self.later.append((result, len(result) - 1, result[-1]))

    def mapping(self, level: int) -> dict[str, Any]:
        get = self.get
        memo = self.memo
        result: dict[str, Any] = {}
        merged: dict[str, Any] | None = None
        while True:
            event = get()
            kind = event.__class__
            if kind is MappingEndEvent:
                break
            if kind is not ScalarEvent or event.tag is not None:
                raise _GiveUpError  # a collection, an alias or a tagged scalar as a key
            self.own += 1
            text = event.value
            if event.implicit[0]:  # plain: resolved
                if text == _MERGE:
                    if event.anchor is not None:
                        raise _GiveUpError
                    merged = self.merge(merged, get(), level)
                    continue
                key = memo.get(text, NOT_PLAIN)
                if key.__class__ is not str:
                    key = self.value(text)
                    if key.__class__ is not str:
                        raise _GiveUpError  # the converter's "keys must be strings"
            else:
                key = text
            if event.anchor is not None:
                self.anchor(event.anchor)
                self.anchors[event.anchor] = (key, 1, 0)
            if key in result:
                raise _GiveUpError  # a duplicate key
            event = get()
            if event.__class__ is ScalarEvent and event.anchor is None:
                self.own += 1
                result[key] = self.scalar(event)
            else:
                result[key] = self.node(event, level)
                if self.pending:
                    self.pending = False
                    self.later.append((result, key, result[key]))
        if merged is None:
            return result
        own = dict(result)
        result.clear()
        for key, value in merged.items():
            if key not in own:
                result[key] = self.fresh(value) if value.__class__ in {dict, list} else value
                if self.pending:
                    self.pending = False
                    self.later.append((result, key, value))
            else:
                result[key] = None  # its place; the mapping's own value below
        result.update(own)
        return result

    def merge(self, merged: dict[str, Any] | None, event: Any, level: int) -> dict[str, Any]:
        """``merged`` (the pairs merged so far, last-wins) with those of the ``<<`` value
        ``event`` starts; its values are shared with their sources (copied by the caller)."""
        if merged is None:
            merged = {}
        kind = event.__class__
        if kind is AliasEvent:
            found = self.anchors.get(event.anchor)
            if found is None:
                raise _GiveUpError
            value, size, depth = found
            self.shared += size
            if self.shared > ALIAS_BUDGET and self.shared > 4 * self.own:
                self.beyond(event)
            if level + depth > self.deepest:
                self.deepest = level + depth
                if self.deepest >= _MAX_DEPTH:
                    raise _GiveUpError
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            value = self.node(event, level)
            self.pending = False  # its values are copied where they are merged
        else:
            raise _GiveUpError  # a scalar: the converter's "<< merges mappings only"
        sources = value if value.__class__ is list else [value]
        for source in reversed(sources):
            if source.__class__ is not dict:
                raise _GiveUpError
            merged.update(source)
        return merged

    def scalar(self, event: Any) -> Any:
        if event.tag is not None:
            raise _GiveUpError
        text = event.value
        if not event.implicit[0]:  # quoted, or a block scalar: a str
            return text
        found = self.memo.get(text, NOT_PLAIN)
        return self.value(text) if found is NOT_PLAIN else found

    def value(self, text: str) -> Any:
        """A plain scalar's value, as the composer tags it and the constructor builds it."""
        if self.resolver is None:
            self.resolver = yaml.resolver.Resolver()
        tag = self.resolver.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag == _STR:
            value: Any = text
        else:
            if self.constructor is None:
                self.constructor = yaml.constructor.SafeConstructor()
            try:
                value = self.constructor.construct_object(ScalarNode(tag, text))
            except (yaml.YAMLError, ValueError, OverflowError):
                raise _GiveUpError from None
        self.memo[text] = value
        return value


def _copy(value: Any) -> Any:
    """A fresh copy of a value read (its scalars are immutable, and shared)."""
    if value.__class__ is dict:
        return {key: _copy(item) for key, item in value.items()}
    if value.__class__ is list:
        return [_copy(item) for item in value]
    return value


# --- lines ---------------------------------------------------------------------------------

#: An outline of a node for :func:`graph_lines`: a scalar is its line; a collection
#: ``(True, line, pairs)`` for a mapping (``(key, key's line, outline)`` each, merged pairs
#: expanded first, as the converter's ``pairs()`` gives them) or ``(False, line, items)``.
_Outline = Any
_NOTHING: Final[frozenset[str]] = frozenset()


def graph_lines(text: str, wanted: Collection[str]) -> dict[str, int]:
    """The 1-based line of each path of ``wanted`` that ``text`` (a text :func:`graph_tree`
    read) has, as ``yaml_values.NodeConverter`` records it: a mapping field's is its key's
    line, a list item's and the whole document's (``""``) the line its node starts on, an alias
    the node it refers to, a merged field its key's line in the mapping it was merged from;
    when both the merged pairs and the mapping's own pairs give a path a line (the same key, or
    a key holding a ``.``), the own one's.

    ``wanted`` holds each path's ancestors too (what ``config._Reader.placed`` asks): nothing
    under a collection whose path is not wanted is followed, but for its anchors.
    """
    parser = parser_of(text)
    try:
        get: Callable[[], Any] = parser.get_event
        lines = _Lines(get, wanted)
        get()  # the stream's start
        get()  # the document's
        lines.node(get(), "", None, keep=False)
    finally:
        parser.dispose()
    return lines.lines


class _Lines:
    """One read of the events of a text :func:`graph_tree` read, for the lines of ``wanted``."""

    def __init__(self, get: Callable[[], Any], wanted: Collection[str]) -> None:
        self.get = get
        self.wanted = wanted
        self.lines: dict[str, int] = {}
        self.written: list[str] = []  # every path given a line, in order
        self.anchors: dict[str, _Outline] = {}

    def record(self, path: str, line: int, skip: Collection[str]) -> None:
        if path in self.wanted and path not in skip:
            self.lines[path] = line
            self.written.append(path)

    def node(self, event: Any, path: str | None, key_line: int | None, keep: bool) -> _Outline:
        """Read the node ``event`` starts: record the lines under ``path`` (None: none), and
        give its outline when ``keep`` or anchored (else None)."""
        kind = event.__class__
        if kind is AliasEvent:
            target = self.anchors[event.anchor]
            if path is not None:
                self.walk(target, path, key_line, _NOTHING)
            return target
        start = event.start_mark.line + 1
        if kind is ScalarEvent:
            if event.anchor is not None:
                self.anchors[event.anchor] = start
            if path is not None:
                self.record(path, start if key_line is None else key_line, _NOTHING)
            return start
        anchor = event.anchor
        keep = keep or anchor is not None
        if path is not None:
            self.record(path, start if key_line is None else key_line, _NOTHING)
            if path not in self.wanted:
                path = None  # nothing asked for inside
        if kind is MappingStartEvent:
            outline = self.mapping(path, start, keep)
        else:
            outline = self.sequence(path, start, keep)
        if anchor is not None:
            self.anchors[anchor] = outline
        return outline

    def sequence(self, path: str | None, start: int, keep: bool) -> _Outline:
        get = self.get
        items: list[_Outline] = []
        index = 0
        while True:
            event = get()
            if event.__class__ is SequenceEndEvent:
                return (False, start, items) if keep else None
            here = None if path is None else f"{path}[{index}]"
            item = self.node(event, here, None, keep)
            if keep:
                items.append(item)
            index += 1

    def mapping(self, path: str | None, start: int, keep: bool) -> _Outline:
        get = self.get
        pairs: list[tuple[str, int, _Outline]] = []
        sources: list[_Outline] = []
        first = len(self.written)
        while True:
            event = get()
            if event.__class__ is MappingEndEvent:
                break
            key = event.value
            key_line = event.start_mark.line + 1
            if event.anchor is not None:
                self.anchors[event.anchor] = key_line
            if key == _MERGE and event.implicit[0]:
                sources.append(self.node(get(), None, None, keep=True))
                continue
            here = None if path is None else (f"{path}.{key}" if path else key)
            value = self.node(get(), here, key_line, keep)
            if keep:
                pairs.append((key, key_line, value))
        if sources:
            merged: list[tuple[str, int, _Outline]] = []
            for source in sources:
                for mapping in reversed(source[2] if not source[0] else [source]):
                    merged.extend(mapping[2])
            if path is not None:
                # The converter walks the merged pairs first: the own ones' lines win.
                own = set(self.written[first:])
                for key, key_line, value in merged:
                    self.walk(value, f"{path}.{key}" if path else key, key_line, own)
            pairs = merged + pairs
        return (True, start, pairs) if keep else None

    def walk(
        self, outline: _Outline, path: str, key_line: int | None, skip: Collection[str]
    ) -> None:
        """Record the lines under ``path`` of a node read again (an alias, a merged value),
        but those of ``skip``."""
        if outline.__class__ is int:
            self.record(path, outline if key_line is None else key_line, skip)
            return
        is_mapping, start, children = outline
        self.record(path, start if key_line is None else key_line, skip)
        if path not in self.wanted:
            return
        if is_mapping:
            for key, line, value in children:
                self.walk(value, f"{path}.{key}" if path else key, line, skip)
        else:
            for index, item in enumerate(children):
                self.walk(item, f"{path}[{index}]", None, skip)
