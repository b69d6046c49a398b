"""The lines of chosen field paths of a YAML file, read from the parser's events.

A pipeline file's lines are needed only to word its issues, and only for their paths (and the
paths around them, where a missing field is placed). Composing the text to find them kept a
node and two marks for every value and ``NodeConverter`` a line for every path, all at once:
for a file of millions of one-character stages, far more than the file's value.
:func:`tree_lines` walks the events once, keeps a path's line only when it was asked for, and
skips what lies under a collection that holds no such path (and a list's items past the last
asked for) without building their paths: what it holds beside the text is the open
collections and the answer. :func:`graph_lines` does the same for a file with aliases of
collections or ``<<`` merge keys (one ``yaml_graph.graph_tree`` read), keeping besides a
node-free outline (lines and keys) of the anchored collections and the merge sources only, and
placing each alias and merged pair as the converter walks them (merged pairs before the
mapping's own, whose lines win).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.yamlsafe import MAX_YAML_DEPTH, parser_of

__all__ = ["graph_lines", "tree_lines"]

_STARTS = (MappingStartEvent, SequenceStartEvent)
_MERGE: Final = "<<"
_ENDS = (MappingEndEvent, SequenceEndEvent)

#: A path's alias: its line and column, its anchor's name, and the path's line where the anchor
#: writes it (``config_text.Through``).
_Through = tuple[int, int, str, int]


def tree_lines(
    text: str,
    wanted: Collection[str],
    max_depth: int = MAX_YAML_DEPTH,
    scalars: dict[str, ScalarEvent] | None = None,
    through: dict[str, _Through] | None = None,
) -> dict[str, int]:
    """The 1-based line of each path of ``wanted`` that ``text`` has, as
    ``yaml_values.NodeConverter`` records it: a mapping field's is its key's line, a list
    item's and the whole document's (``""``) the line its value starts on; a collection
    ``max_depth`` collections deep has a line, what it holds none.

    For a text that composes to a tree of string keys but for aliases of scalars (no alias of a
    collection, no ``<<`` merge, no key of another type: what ``quick_tree``, ``plain_tree`` and
    JSON read). An alias in a list is on its anchored scalar's line, as the converter places the
    node it refers to; ``through``, when given, gets each wanted path an alias gives its value,
    as :func:`graph_lines` does. A later duplicate key and what it holds are passed over, as the
    converter passes them over. Raises ``ValueError`` at an alias of anything else or a key that
    is not a scalar, and ``yaml.YAMLError`` as composing would.

    ``scalars``, when given, gets the event of each wanted path's scalar (not an alias's), for
    a place inside its value (``yaml_places.yaml_value_lines``).
    """
    last = _last_items(wanted)
    lines: dict[str, int] = {}
    anchored: dict[str, int] = {}  # the line of each anchored scalar, by its name
    parser = parser_of(text)
    try:
        get = parser.get_event
        # The innermost open collection: its path, its keys so far (None for a list), its key
        # waiting for a value and that key's line, or its next item's index and the last
        # index asked for; the collections around it, each as such a tuple.
        path = ""
        keys: set[str] | None = None
        key: str | None = None
        key_line = index = stop = 0
        outer: list[tuple[str, set[str] | None, str | None, int, int, int]] = []
        level = 0  # open collections
        skip = 0  # open collections inside a skipped one, itself included
        while True:
            event = get()  # type: ignore[no-untyped-call]
            kind = event.__class__
            if skip:
                if kind in _STARTS:
                    skip += 1
                elif kind in _ENDS:
                    skip -= 1
                    level -= not skip  # the skipped collection's own end
                elif kind is ScalarEvent and event.anchor is not None:
                    anchored[event.anchor] = event.start_mark.line + 1  # for a later alias
                continue
            if kind in _ENDS:
                level -= 1
                if not level:
                    break  # the document's collection ends
                path, keys, key, key_line, index, stop = outer.pop()
                continue
            if kind is StreamEndEvent or kind is DocumentEndEvent:
                break
            if kind is AliasEvent:
                if event.anchor not in anchored:
                    raise ValueError(f"an alias of a collection (*{event.anchor}): not a tree")
                kind = ScalarEvent  # read as the scalar it refers to, on that one's line
                start = anchored[event.anchor]
            elif kind is ScalarEvent or kind in _STARTS:
                start = event.start_mark.line + 1
                if event.anchor is not None and kind is ScalarEvent:
                    anchored[event.anchor] = start
            else:
                continue  # the stream's and the document's start
            if not level:  # the document's value
                here, line = "", start
            elif keys is not None:  # a mapping's key, or its value
                if key is None:
                    if kind is not ScalarEvent:
                        raise ValueError("a key that is not a scalar")
                    if event.__class__ is not ScalarEvent:
                        raise ValueError("an alias as a key")
                    key, key_line = event.value, start
                    continue
                here = f"{path}.{key}" if path else key
                line = key_line
                duplicate = key in keys
                keys.add(key)
                key = None
                if duplicate:  # not the converter's: passed over
                    if kind is not ScalarEvent:
                        skip, level = 1, level + 1
                    continue
            else:  # a list's item
                if index > stop:  # past the last item asked for: pass over the list's rest
                    if level == 1:
                        break
                    skip = 1 + (kind is not ScalarEvent)
                    path, keys, key, key_line, index, stop = outer.pop()
                    continue
                here = f"{path}[{index}]"
                line = start
                index += 1
            if here in wanted:
                lines[here] = line
                if scalars is not None and event.__class__ is ScalarEvent:
                    scalars[here] = event
                elif through is not None and event.__class__ is AliasEvent:
                    alias_line, column, name = _via(event)
                    through[here] = (alias_line, column, name, anchored[name])
            if kind is ScalarEvent:
                if not level:
                    break  # the document is one scalar
                continue
            if here not in wanted or level >= max_depth:
                # Nothing asked for inside, or a collection the converter does not go into.
                if not level:
                    break
                skip, level = 1, level + 1
                continue
            if level:
                outer.append((path, keys, key, key_line, index, stop))
            level += 1
            path, key, index = here, None, 0
            keys = set() if kind is MappingStartEvent else None
            stop = -1 if keys is not None else last.get(here, -1)
    finally:
        parser.dispose()
    return lines


def _last_items(wanted: Collection[str]) -> dict[str, int]:
    """The largest index asked for in each list (by the list's path), from the paths that end
    with an index (a key that holds brackets may add one that is no list's: it only makes
    the walk read further)."""
    last: dict[str, int] = {}
    for path in wanted:
        if path.endswith("]"):
            cut = path.rfind("[")
            number = path[cut + 1 : -1]
            if cut >= 0 and ascii_digits(number):
                last[path[:cut]] = max(last.get(path[:cut], -1), int(number))
    return last


#: An outline of a node for :func:`graph_lines`: a scalar is its line; a collection
#: ``(True, line, pairs)`` for a mapping (``(key, key's line, outline)`` each, merged pairs
#: expanded first, as the converter's ``pairs()`` gives them) or ``(False, line, items)``.
_Outline = Any
#: An alias being followed: its line, column and name.
_Via = tuple[int, int, str]
_NOTHING: Final[frozenset[str]] = frozenset()


def graph_lines(
    text: str,
    wanted: Collection[str],
    scalars: dict[str, ScalarEvent] | None = None,
    through: dict[str, _Through] | None = None,
) -> dict[str, int]:
    """The 1-based line of each path of ``wanted`` that ``text`` (a text
    ``yaml_graph.graph_tree`` read) has, as ``yaml_values.NodeConverter`` records it: a mapping
    field's is its key's line, a list item's and the whole document's (``""``) the line its node
    starts on, an alias the node it refers to, a merged field its key's line in the mapping it
    was merged from; when both the merged pairs and the mapping's own pairs give a path a line
    (the same key, or a key holding a ``.``), the own one's.

    ``wanted`` holds each path's ancestors too (what ``config_issues.FileIssues.placed``
    asks): nothing under a collection whose path is not wanted is followed, but for its
    anchors. ``scalars``, when given, gets the event of each wanted path's scalar written at
    its own place (not an alias's, nor a merged pair's), as :func:`tree_lines` does.

    ``through``, when given, gets each wanted path reached through an alias (``*name``, or a
    ``<<: *name`` merge): the alias's line and column and name, and the path's line where the
    anchor writes it (an alias's own path: its anchored node's first line), which
    ``config_issues.FileIssues.placed`` puts the path's issues on and names.
    """
    parser = parser_of(text)
    try:
        get: Callable[[], Any] = parser.get_event
        lines = _Lines(get, wanted, {} if scalars is None else scalars)
        if through is not None:
            lines.through = through
        get()  # the stream's start
        get()  # the document's
        lines.node(get(), "", None, keep=False)
    finally:
        parser.dispose()
    return lines.lines


class _Lines:
    """One read of the events of a text ``yaml_graph.graph_tree`` read, for the lines of
    ``wanted``."""

    def __init__(
        self, get: Callable[[], Any], wanted: Collection[str], scalars: dict[str, ScalarEvent]
    ) -> None:
        self.get = get
        self.wanted = wanted
        self.scalars = scalars
        self.lines: dict[str, int] = {}
        self.written: list[str] = []  # every path given a line, in order
        self.anchors: dict[str, _Outline] = {}
        self.through: dict[str, _Through] = {}
        self.via: _Via | None = None  # the alias followed by ``walk``, if any

    def record(self, path: str, line: int, skip: Collection[str]) -> None:
        if path in self.wanted and path not in skip:
            via = self.via
            self.lines[path] = line
            if via is None:
                self.through.pop(path, None)
            else:
                self.through[path] = (*via, line)
            self.written.append(path)

    def follow(
        self,
        via: _Via | None,
        outline: _Outline,
        path: str,
        key_line: int | None,
        skip: Collection[str],
    ) -> None:
        """:meth:`walk` ``outline`` under ``path``, reached through the alias ``via``."""
        self.via = via
        try:
            self.walk(outline, path, key_line, skip)
        finally:
            self.via = None

    def node(self, event: Any, path: str | None, key_line: int | None, keep: bool) -> _Outline:
        """Read the node ``event`` starts: record the lines under ``path`` (None: none), and
        give its outline when ``keep`` or anchored (else None)."""
        kind = event.__class__
        if kind is AliasEvent:
            target = self.anchors[event.anchor]
            if path is not None:
                via = _via(event)
                self.follow(via, target, path, key_line, _NOTHING)
                if path in self.through:  # its anchor writes it where its node starts
                    start = target if target.__class__ is int else target[1]
                    self.through[path] = (*via, start)
            return target
        start = event.start_mark.line + 1
        if kind is ScalarEvent:
            if event.anchor is not None:
                self.anchors[event.anchor] = start
            if path is not None:
                self.record(path, start if key_line is None else key_line, _NOTHING)
                if path in self.wanted:
                    self.scalars[path] = event
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
        sources: list[tuple[_Outline, _Via | None]] = []
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
                sources.extend(self.sources(get()))
                continue
            here = None if path is None else (f"{path}.{key}" if path else key)
            value = self.node(get(), here, key_line, keep)
            if keep:
                pairs.append((key, key_line, value))
        if sources:
            merged: list[tuple[str, int, _Outline, _Via | None]] = []
            for source, via in sources:
                for mapping, each in reversed(
                    [(source, via)] if source[0] else [(item, via) for item in source[2]]
                ):
                    merged.extend((*pair, each) for pair in mapping[2])
            if path is not None:
                # The converter walks the merged pairs first: the own ones' lines win.
                own = set(self.written[first:])
                for key, key_line, value, via in merged:
                    self.follow(via, value, f"{path}.{key}" if path else key, key_line, own)
            pairs = [pair[:3] for pair in merged] + pairs
        return (True, start, pairs) if keep else None

    def sources(self, event: Any) -> list[tuple[_Outline, _Via | None]]:
        """The mappings a ``<<`` merges (its value starts at ``event``: a mapping, an alias of
        one, or a list of them), each with the alias it is written as (None: written there)."""
        if event.__class__ is SequenceStartEvent and event.anchor is None:
            found = []
            while (item := self.get()).__class__ is not SequenceEndEvent:
                found.extend(self.sources(item))
            return [(outline, via) for outline, via in reversed(found)]
        outline = self.node(event, None, None, keep=True)
        return [(outline, _via(event) if event.__class__ is AliasEvent else None)]

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


def _via(alias: Any) -> _Via:
    """The line, column and name of the alias whose event is ``alias``."""
    mark = alias.start_mark
    return mark.line + 1, mark.column + 1, alias.anchor
