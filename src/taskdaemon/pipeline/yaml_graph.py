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
  as ``yamlsafe._check`` counts them. Once the aliases add more than four times the own nodes
  read so far, and :data:`_SPARE` more, the file may be over the budget: in the text's first
  third it gives up (the composer, whose aliases cost no Python call, refuses a bomb in less
  time than reading it takes, and the floor of ``ALIAS_BUDGET`` lets a file of few own nodes
  through, which it composes in little memory); past it, reading the rest costs less than the
  composer's whole read, so the rest's nodes are counted, and the text refused with the
  composer's message (:class:`~taskdaemon.pipeline.yamlsafe.YamlLimitError`) or, within the
  budget after all, given up. Collections nested 64 deep in the expanded tree give up (the
  converter allows 100). An alias of a collection is copied when it is read while the aliases
  are within four times the own nodes, else once the whole text is read: a file refused costs
  no copy past that.

The lines of such a file's field paths are found, for the paths of its issues only, by
``yaml_lines.graph_lines``.
"""

from __future__ import annotations

from collections.abc import Callable
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

from taskdaemon.pipeline.errors import MAX_ISSUES, ValidationIssue
from taskdaemon.pipeline.yaml_values import NOT_PLAIN, REFUSED, kind_of, refusal
from taskdaemon.pipeline.yamlsafe import (
    ALIAS_BUDGET,
    MAX_YAML_BYTES,
    YamlLimitError,
    parser_of,
)

__all__ = ["graph_read", "graph_tree"]

_STR: Final = "tag:yaml.org,2002:str"
#: Collections nested in the expanded tree past which the read gives up (the converter: 100).
_MAX_DEPTH: Final = 64
_MERGE: Final = "<<"
#: The events that may carry an anchor.
_NAMED: Final = frozenset({ScalarEvent, MappingStartEvent, SequenceStartEvent})
#: Nodes the aliases may add beyond four times the own nodes read so far (module docstring).
_SPARE: Final = 1_000
#: What the issues' read gives for a collection (it builds no value).
_MAPPING: Final = ("mapping",)
_LIST: Final = ("list",)


class _GiveUpError(Exception):
    """Raised inside :func:`graph_tree` at the first thing it does not read."""


class _IssueError(_GiveUpError):
    """Raised inside :func:`graph_tree` at a mistake the converter words, which
    :func:`graph_read` may word too."""


def graph_tree(text: str) -> Any:
    """The value ``yaml_values.NodeConverter`` gives of the composed ``text``, or
    :data:`NOT_PLAIN` when it would report an issue (or might), or the text is not one YAML
    document. Raises ``YamlLimitError`` as ``yamlsafe.compose_bounded`` does for a text its
    aliases expand past the budget, when it finds so (see the module docstring)."""
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
        self.size = size  # the text's
        # The open anchored collections: name, own and shared nodes before, level, deepest
        # around (for :meth:`count_rest`).
        self.open: list[tuple[str, int, int, int]] = []
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
        self.open.append((anchor, before, level + 1, deepest))
        value = self.collection(kind, level + 1)
        self.open.pop()
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
        if self.shared > 4 * self.own + _SPARE:
            self.over(event, level)
        if depth:
            if level + depth > self.deepest:
                self.deepest = level + depth
                if self.deepest >= _MAX_DEPTH:
                    raise _GiveUpError
            return self.fresh(value)
        return value

    def over(self, event: Any, level: int) -> None:
        """The aliases so far add more than four times the own nodes read and :data:`_SPARE`:
        give up while less than a third of the text is read (the composer refuses a file over
        the budget in less time than reading it, its aliases costing no Python call); past
        that, reading the rest costs less than the composer's whole read, so count its nodes
        (:meth:`count_rest`) and refuse the text over the budget, or give up within it."""
        if event.end_mark.index * 3 < self.size:
            raise _GiveUpError
        self.count_rest(level)

    def count_rest(self, level: int) -> None:
        """Count the nodes of the rest of the text, after an alias ``level`` collections deep,
        as ``yamlsafe._check`` does; raise ``YamlLimitError`` as ``compose_bounded`` when they
        are over the budget, else give up. Gives up at what :meth:`node` gives up at."""
        get, anchors, opened = self.get, self.anchors, self.open
        own, shared, deepest = self.own, self.shared, self.deepest
        while True:
            event = get()
            kind = event.__class__
            anchor = event.anchor if kind in _NAMED else None
            if anchor is not None:
                self.anchor(anchor)
            if kind is ScalarEvent:
                own += 1
                if anchor is not None:
                    anchors[anchor] = (None, 1, 0)
            elif kind is AliasEvent:
                found = anchors.get(event.anchor)
                if found is None:
                    raise _GiveUpError
                shared += found[1]
                deepest = max(deepest, level + found[2])
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                own += 1
                level += 1
                if anchor is not None:
                    opened.append((anchor, own + shared - 1, level, deepest))
                    deepest = level - 1
                deepest = max(deepest, level)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                if opened and opened[-1][2] == level:
                    name, before, _, around = opened.pop()
                    anchors[name] = (None, own + shared - before, deepest - level + 1)
                    deepest = max(around, deepest)
                level -= 1
            elif kind is DocumentEndEvent:
                break
            if deepest >= _MAX_DEPTH:
                raise _GiveUpError
        if get().__class__ is not StreamEndEvent:
            raise _GiveUpError
        allowed = own + max(ALIAS_BUDGET, 4 * own)
        if own + shared > allowed:
            raise YamlLimitError(
                f"aliases and merge keys expand {own} nodes to {own + shared} "
                f"(the limit is {allowed}: is this an alias bomb?)",
                1,
            )
        raise _GiveUpError

    def fresh(self, value: Any) -> Any:
        """A copy of the shared collection ``value`` while the aliases so far are within four
        times the nodes so far, else ``value`` itself, marked for a copy once the text is read
        (see the module docstring)."""
        if self.shared <= 4 * self.own:
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
                if kind is MappingStartEvent or kind is SequenceStartEvent:
                    raise _IssueError  # a collection as a key
                raise _GiveUpError  # an alias or a tagged scalar as a key
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
                        raise _IssueError  # the converter's "keys must be strings"
            else:
                key = text
            if event.anchor is not None:
                self.anchor(event.anchor)
                self.anchors[event.anchor] = (key, 1, 0)
            if key in result:
                raise _IssueError  # a duplicate key
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
                result[key] = self.fresh(value) if value.__class__ in _COLLECTIONS else value
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
            if self.shared > 4 * self.own + _SPARE:
                self.over(event, level)
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
            except REFUSED:
                raise _IssueError from None
        self.memo[text] = value
        return value


def _copy(value: Any) -> Any:
    """A fresh copy of a value read (its scalars are immutable, and shared: no call for one)."""
    if value.__class__ is dict:
        return {
            key: _copy(item) if item.__class__ in _COLLECTIONS else item
            for key, item in value.items()
        }
    if value.__class__ is list:
        return [_copy(item) if item.__class__ in _COLLECTIONS else item for item in value]
    return value


_COLLECTIONS: Final = frozenset({dict, list})


def graph_read(text: str, file: str) -> tuple[Any, list[ValidationIssue]] | None:
    """``text``'s value and no issue (as :func:`graph_tree`), or None and the converter's
    issues of a mistake in its YAML (a duplicate key, a key that is not a string, a scalar its
    tag refuses) outside anchored collections and merge sources, in the converter's order and
    words; or None where the converter or the composer must read it. Raises
    ``YamlLimitError`` as :func:`graph_tree`."""
    if len(text) > MAX_YAML_BYTES:
        return None
    parser = parser_of(text)
    try:
        return _Values(parser.get_event, len(text)).document(), []
    except _IssueError:
        pass  # read again below, for the issues
    except (_GiveUpError, yaml.YAMLError):
        return None
    finally:
        parser.dispose()
    parser = parser_of(text)
    try:
        issues = _Issues(parser.get_event, len(text), file).document()
    except (_GiveUpError, yaml.YAMLError):
        return None
    finally:
        parser.dispose()
    return (None, issues) if issues else None


class _Issues(_Values):
    """A second read of a text the first met a mistake in, for the converter's issues: paths
    built, no value (a collection is :data:`_MAPPING` or :data:`_LIST`). It gives up at a
    mistake inside an anchored node or a merge source (the converter words it again at each
    alias, in words that may depend on where), at a merge of anything but a mapping and at what
    :func:`graph_tree` gives up at but mistakes. The converter passes over a duplicate key's
    value and a key that is not a string with its value: so does this read, wording nothing in
    them (but within the limits, and giving up at a mistake in an anchored node there)."""

    def __init__(self, get: Callable[[], Any], size: int, file: str) -> None:
        super().__init__(get, size)
        self.file = file
        self.issues: list[ValidationIssue] = []
        self.inside = 0  # anchored nodes and merge sources open around the read
        self.quiet = 0  # values the converter passes over open around it
        self.tags: dict[str, str] = {}  # each plain scalar's resolved tag, by its text

    def document(self) -> Any:
        get = self.get
        if get().__class__ is not StreamStartEvent or get().__class__ is not DocumentStartEvent:
            raise _GiveUpError
        self.read(get(), 0, "")
        if get().__class__ is not DocumentEndEvent or get().__class__ is not StreamEndEvent:
            raise _GiveUpError
        return self.issues

    def issue(self, path: str, message: str, line: int) -> None:
        if self.inside:
            raise _GiveUpError
        if not self.quiet and len(self.issues) <= MAX_ISSUES:  # as the converter counts
            self.issues.append(ValidationIssue(path, message, file=self.file, line=line))

    def read(self, event: Any, level: int, path: str) -> Any:
        """Read the node ``event`` starts at ``path``, ``level`` collections deep."""
        kind = event.__class__
        if kind is AliasEvent:
            found = self.anchors.get(event.anchor)
            if found is None:
                raise _GiveUpError
            value, size, depth = found
            self.shared += size
            if self.shared > 4 * self.own + _SPARE:
                raise _GiveUpError
            if level + depth >= _MAX_DEPTH:
                raise _GiveUpError
            return value
        anchor = event.anchor
        if anchor is None:
            if kind is ScalarEvent:
                self.own += 1
                return self.checked(event, path)
            return self.collection_at(kind, level + 1, path)
        self.anchor(anchor)
        before, deepest = self.own + self.shared, self.deepest
        self.deepest = level
        self.inside += 1
        try:
            if kind is ScalarEvent:
                self.own += 1
                value = self.checked(event, path)
            else:
                value = self.collection_at(kind, level + 1, path)
        finally:
            self.inside -= 1
        depth = self.deepest - level
        self.deepest = max(deepest, self.deepest)
        self.anchors[anchor] = (value, self.own + self.shared - before, depth)
        return value

    def passed(self, event: Any, level: int) -> None:
        """Read a node the converter passes over (a duplicate key's value, a collection key)."""
        self.quiet += 1
        try:
            self.read(event, level, "")
        finally:
            self.quiet -= 1

    def collection_at(self, kind: type, level: int, path: str) -> Any:
        if level > self.deepest:
            self.deepest = level
            if level >= _MAX_DEPTH:
                raise _GiveUpError
        self.own += 1
        get = self.get
        if kind is SequenceStartEvent:
            index = 0
            while (event := get()).__class__ is not SequenceEndEvent:
                self.read(event, level, f"{path}[{index}]")
                index += 1
            return _LIST
        own: set[str] = set()
        while (event := get()).__class__ is not MappingEndEvent:
            kind = event.__class__
            if kind is AliasEvent:
                raise _GiveUpError  # an alias as a key (worded on its anchor's line)
            line = event.start_mark.line + 1
            if kind is not ScalarEvent:  # a collection as a key, which is never converted
                got = "list" if kind is SequenceStartEvent else "mapping"
                self.issue(path, f"keys must be strings, got {got}", line)
                self.passed(event, level)
                self.passed(get(), level)
                continue
            if event.tag is None and event.implicit[0] and event.value == _MERGE:
                if event.anchor is not None:
                    raise _GiveUpError
                self.own += 1
                self.merged(get(), level)
                continue
            key = self.read(event, level, path)
            if key.__class__ is not str:
                self.issue(path, f"keys must be strings, got {kind_of(key)}", line)
                self.passed(get(), level)
                continue
            field = f"{path}.{key}" if path else key
            if key in own:
                self.issue(field, "duplicate key", line)
                self.passed(get(), level)
                continue
            own.add(key)
            self.read(get(), level, field)
        return _MAPPING

    def merged(self, event: Any, level: int) -> None:
        """Read a ``<<`` value: mappings only (else the converter's "<< merges mappings
        only"), with no mistake inside."""
        self.inside += 1
        try:
            if event.__class__ is SequenceStartEvent and event.anchor is None:
                if level + 1 >= _MAX_DEPTH:
                    raise _GiveUpError
                self.own += 1
                while (item := self.get()).__class__ is not SequenceEndEvent:
                    if self.read(item, level + 1, "") is not _MAPPING:
                        raise _GiveUpError
            elif self.read(event, level, "") is not _MAPPING:
                raise _GiveUpError
        finally:
            self.inside -= 1

    def checked(self, event: Any, path: str) -> Any:
        """A scalar's value, as the converter constructs it (an issue where it refuses)."""
        tag, text = event.tag, event.value
        if tag is None:
            if not event.implicit[0]:
                return text
            found = self.memo.get(text, NOT_PLAIN)
            if found is not NOT_PLAIN:
                return found
            tag = self.tags.get(text)
            if tag is None:
                if self.resolver is None:
                    self.resolver = yaml.resolver.Resolver()
                resolve = self.resolver.resolve
                tag = self.tags[text] = resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        elif tag == "!":
            raise _GiveUpError  # the non-specific tag: resolved otherwise
        if tag == _STR:
            return text
        if self.constructor is None:
            self.constructor = yaml.constructor.SafeConstructor()
        try:
            return self.constructor.construct_object(ScalarNode(tag, text))
        except REFUSED as exc:
            self.issue(path, refusal(exc, tag, text), event.start_mark.line + 1)
            return None
